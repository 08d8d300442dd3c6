//! A SIGBUS inside a semaphore's mapping, turned into the tool's error line.
//!
//! A client checks the semaphore file before it maps it, but another process
//! can still truncate the file after that: between the check and a `sem_*`
//! call, or while the client is blocked in `sem_timedwait`, after which glibc
//! touches the mapping again. An access to a mapped page past the end of the
//! file is SIGBUS, which would end the process with no word of why. This
//! handler recognises a fault inside the one range it guards, writes
//! `error: FILE is not a valid semaphore: N bytes, ...` and exits 1. Any other
//! SIGBUS gets the default action, as before.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The guarded range `[START, END)`; empty when nothing is guarded.
static START: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
/// The file behind the range, for its size at the time of the fault.
static FD: AtomicI32 = AtomicI32::new(-1);
/// The error line around the size: built before the range is guarded,
/// because a signal handler may not allocate.
static HEAD: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static HEAD_LEN: AtomicUsize = AtomicUsize::new(0);
static TAIL: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static TAIL_LEN: AtomicUsize = AtomicUsize::new(0);

/// Guards one range while it lives (one at a time: a client has one semaphore).
pub struct BusGuard {
    start: usize,
}

impl BusGuard {
    /// Install the handler (`sigaction(SIGBUS, SA_SIGINFO)`) and guard
    /// `[start, start + len)`, the mapping of `fd`. On a fault there the
    /// handler writes `head`, the file's size, `tail` and a newline.
    ///
    /// # Errors
    ///
    /// The `sigaction` errno (none expected for SIGBUS).
    ///
    /// # References
    /// [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html)
    pub fn arm(
        start: *const u8,
        len: usize,
        fd: BorrowedFd<'_>,
        head: String,
        tail: String,
    ) -> Result<BusGuard, Errno> {
        let start = start as usize;
        // Leaked on purpose: the handler may read them at any time from now on.
        let head: &'static [u8] = Box::leak(head.into_bytes().into_boxed_slice());
        let tail = format!("{tail}\n");
        let tail: &'static [u8] = Box::leak(tail.into_bytes().into_boxed_slice());
        HEAD_LEN.store(head.len(), Ordering::SeqCst);
        HEAD.store(head.as_ptr().cast_mut(), Ordering::SeqCst);
        TAIL_LEN.store(tail.len(), Ordering::SeqCst);
        TAIL.store(tail.as_ptr().cast_mut(), Ordering::SeqCst);
        FD.store(fd.as_raw_fd(), Ordering::SeqCst);
        END.store(start + len, Ordering::SeqCst);
        START.store(start, Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::SigAction(on_sigbus),
            SaFlags::SA_SIGINFO | SaFlags::SA_ONSTACK,
            SigSet::empty(),
        );
        // SAFETY: on_sigbus is async-signal-safe: it reads atomics and calls
        // only fstat, write, signal and _exit.
        unsafe { sigaction(Signal::SIGBUS, &action) }?;
        Ok(BusGuard { start })
    }
}

impl Drop for BusGuard {
    fn drop(&mut self) {
        // Only this guard's range: the handler itself stays, harmless.
        if START
            .compare_exchange(self.start, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            END.store(0, Ordering::SeqCst);
        }
    }
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t, and for
    // SIGBUS si_addr is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    let (start, end) = (START.load(Ordering::SeqCst), END.load(Ordering::SeqCst));
    if start <= addr && addr < end {
        write_stderr(HEAD.load(Ordering::SeqCst), HEAD_LEN.load(Ordering::SeqCst));
        let mut digits = [0u8; 20];
        let size = file_size(FD.load(Ordering::SeqCst));
        let at = format_u64(size, &mut digits);
        write_stderr(digits[at..].as_ptr().cast_mut(), digits.len() - at);
        write_stderr(TAIL.load(Ordering::SeqCst), TAIL_LEN.load(Ordering::SeqCst));
        // SAFETY: _exit ends the process at once, as a signal handler may.
        unsafe { libc::_exit(1) };
    }
    // Not ours: back to the default action, which the faulting access,
    // run again on return, then gets.
    // SAFETY: signal(2) is async-signal-safe and only changes the disposition.
    unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
}

/// `fstat(fd).st_size`, 0 when that fails: the page behind the fault is
/// past the end of the file, which on tmpfs means an empty file.
fn file_size(fd: RawFd) -> u64 {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a struct stat to a valid out-pointer, or fails.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: fstat returned 0, so it filled st.
    let st = unsafe { st.assume_init() };
    u64::try_from(st.st_size).unwrap_or(0)
}

/// Decimal digits of `n` at the end of `buf`; returns where they start.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return at;
        }
    }
}

fn write_stderr(mut ptr: *mut u8, mut len: usize) {
    while len > 0 && !ptr.is_null() {
        // SAFETY: ptr/len describe a live (leaked or stack) byte buffer.
        let n = unsafe { libc::write(libc::STDERR_FILENO, ptr.cast(), len) };
        if n <= 0 {
            return;
        }
        let n = n as usize;
        // SAFETY: n <= len, so this stays inside the buffer.
        ptr = unsafe { ptr.add(n) };
        len -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_without_allocation() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 32, 4096, u64::MAX] {
            let at = format_u64(n, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[at..]).unwrap(), n.to_string());
        }
    }
}
