//! Child processes: `fork` into a closure that ends in `_exit`, the setup a
//! child does so that it dies with its parent, the guard that kills and
//! reaps a child on every early return, and a pidfd to poll for its exit.

use std::fmt;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, getppid};

pub use nix::unistd::Pid;

use super::cvt;

/// Why `fork` refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkError {
    /// The process runs other threads (or their number cannot be read):
    /// the child would have only this one, and a lock another thread held
    /// at the fork would stay locked in it forever.
    Threads(Option<usize>),
    /// `fork` itself failed: EAGAIN (process limit), ENOMEM.
    Os(Errno),
}

impl fmt::Display for ForkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForkError::Threads(Some(n)) => write!(
                f,
                "the process runs {n} threads, and a forked child would have only one"
            ),
            ForkError::Threads(None) => {
                f.write_str("cannot read the number of threads from /proc/self/status")
            }
            ForkError::Os(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ForkError {}

/// How long `fork` waits for threads that were joined but have not left
/// /proc yet (a joined thread is gone from the kernel's list a moment later).
const THREADS_SETTLE: Duration = Duration::from_millis(200);

/// The `Threads:` line of /proc/self/status.
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// `fork()`: runs `child` in the new process, which then ends with
/// `_exit(code)` (101 if `child` panics) and never returns into the
/// caller's code; the parent gets the child's pid. The caller flushes its
/// buffered output first, or the child's copy is lost (`_exit` never
/// flushes it).
///
/// Only a single-threaded process may fork and run ordinary code in the
/// child, so the thread count is checked first.
///
/// # Errors
/// [`ForkError::Threads`] when other threads run; [`ForkError::Os`] with
/// EAGAIN (RLIMIT_NPROC or the pid limit) or ENOMEM.
///
/// # References
/// [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html)
pub fn fork(child: impl FnOnce() -> i32) -> Result<Pid, ForkError> {
    let start = Instant::now();
    loop {
        match threads() {
            Some(1) => break,
            n if start.elapsed() >= THREADS_SETTLE || n.is_none() => {
                return Err(ForkError::Threads(n));
            }
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    // SAFETY: this process has one thread (checked just above, and only it
    // could start another), so the child may run ordinary Rust code; it
    // leaves with _exit and never returns into the caller's control flow.
    match unsafe { nix::unistd::fork() }.map_err(ForkError::Os)? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            exit_now(code)
        }
    }
}

/// `_exit(code)`: end this process at once, without atexit handlers and
/// without flushing buffers copied from the parent.
///
/// # References
/// [_exit(2)](https://man7.org/linux/man-pages/man2/_exit.2.html)
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only ends the calling process.
    unsafe { libc::_exit(code) }
}

/// In a forked child: die with the parent (`prctl(PR_SET_PDEATHSIG,
/// SIGKILL)`), make sure the parent did not die before that, and let
/// SIGINT and SIGTERM end the child at once (the parent's handlers write to
/// the parent's signal pipe; the parent does the reporting and cleanup).
///
/// # Errors
/// ESRCH when `parent` is no longer the parent; the prctl or sigaction errno.
///
/// # References
/// [PR_SET_PDEATHSIG(2const)](https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html)
pub fn child_setup(parent: Pid) -> Result<(), Errno> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // The parent may have died before the prctl: then nobody would kill us.
    if getppid() != parent {
        return Err(Errno::ESRCH);
    }
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: restoring the default disposition installs no handler.
        unsafe { signal(sig, SigHandler::SigDfl) }?;
    }
    Ok(())
}

/// A child that must not outlive the code that started it: `Drop` kills it
/// (SIGKILL) and reaps it, unless it was reaped already. For children this
/// process forked, and for those `std::process::Command` spawned (by pid).
#[derive(Debug)]
pub struct ChildGuard {
    pid: Pid,
    reaped: bool,
}

impl ChildGuard {
    pub fn new(pid: Pid) -> Self {
        ChildGuard { pid, reaped: false }
    }

    /// Guard a child `std::process::Command` spawned; reap it through this
    /// guard only (std's `Child::wait` would then find nothing).
    pub fn spawned(child: &std::process::Child) -> Self {
        // A pid always fits in pid_t; std keeps it as u32.
        ChildGuard::new(Pid::from_raw(child.id() as i32))
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether the child's end was collected already (nothing left to do).
    pub fn is_reaped(&self) -> bool {
        self.reaped
    }

    /// `waitpid(pid, WNOHANG when !block)`: the child's status once it has
    /// ended (it is then reaped), `None` while it runs. Stop and continue
    /// statuses and EINTR are waited past when blocking.
    ///
    /// # Errors
    /// ECHILD when it is not our child (or was reaped elsewhere).
    ///
    /// # References
    /// [waitpid(2)](https://man7.org/linux/man-pages/man2/waitpid.2.html)
    pub fn wait(&mut self, block: bool) -> Result<Option<WaitStatus>, Errno> {
        let flags = (!block).then_some(WaitPidFlag::WNOHANG);
        loop {
            match waitpid(self.pid, flags) {
                Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    self.reaped = true;
                    return Ok(Some(s));
                }
                Ok(WaitStatus::StillAlive) => return Ok(None),
                Ok(_) | Err(Errno::EINTR) if block => continue,
                Ok(_) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Block until the child ends (`waitpid`); its status.
    ///
    /// # Errors
    /// As for [`ChildGuard::wait`].
    ///
    /// # References
    /// [waitpid(2)](https://man7.org/linux/man-pages/man2/waitpid.2.html)
    pub fn reap(&mut self) -> Result<WaitStatus, Errno> {
        loop {
            if let Some(status) = self.wait(true)? {
                return Ok(status);
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = self.reap();
        }
    }
}

/// A wait status as `std::process` reports it (`exit status: 1`,
/// `signal: 9 (SIGKILL)`); `None` for a stopped or continued child.
pub fn exit_status(status: WaitStatus) -> Option<ExitStatus> {
    // The encoding of wait(2): exit code in bits 8..16, else the signal
    // number with the core-dump flag 0x80.
    match status {
        WaitStatus::Exited(_, code) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
        WaitStatus::Signaled(_, sig, core) => Some(ExitStatus::from_raw(
            sig as i32 | if core { 0x80 } else { 0 },
        )),
        _ => None,
    }
}

/// `pidfd_open(pid, 0)`: a descriptor that polls readable once the child
/// has exited, to wait for it together with other descriptors.
///
/// # Errors
/// ESRCH when there is no such process; ENOSYS before Linux 5.3.
///
/// # References
/// [pidfd_open(2)](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags, no pointers.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) })?;
    // SAFETY: a fresh descriptor that nothing else owns (a descriptor
    // number always fits in an int).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_std_prints_them() {
        let pid = Pid::from_raw(1);
        let exited = exit_status(WaitStatus::Exited(pid, 3)).unwrap();
        assert_eq!(exited.to_string(), "exit status: 3");
        let killed = exit_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false)).unwrap();
        assert_eq!(killed.to_string(), "signal: 9 (SIGKILL)");
    }
}
