//! What every demo shares: an anonymous shared mapping made before `fork`,
//! process-shared semaphores inside it, a named semaphore that is unlinked as
//! soon as every process has it, and the child processes themselves.
//!
//! This file holds all the `unsafe` of the demos. Anonymous `MAP_SHARED`
//! memory has no name, so nothing can be left behind by a crash or Ctrl-C:
//! the kernel frees it when the last process that maps it exits.

use std::cell::UnsafeCell;
use std::ffi::CString;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::getpid;

use crate::ipc::process::{self, ChildGuard, Pid};
use crate::signal::{Cancel, Wake};

/// "EIPCDEMO" in the first eight bytes of every layout, so a dump of the
/// memory says what it is.
pub const MAGIC: u64 = u64::from_be_bytes(*b"EIPCDEMO");
/// Bumped whenever a layout changes: a process built from other code refuses it.
pub const VERSION: u32 = 1;

/// Types that may live in shared memory: `#[repr(C)]`, valid when all bytes
/// are zero (anonymous mappings start zeroed), and changed only through
/// atomics or `SemCell`, so a `&T` seen by several processes is sound.
///
/// # Safety
/// The implementor guarantees the three properties above.
pub unsafe trait Shared {}

// SAFETY: atomics are repr(transparent) integers, valid at zero, interior-mutable.
unsafe impl Shared for AtomicU64 {}
// SAFETY: as above.
unsafe impl Shared for AtomicU32 {}
// SAFETY: as above.
unsafe impl Shared for std::sync::atomic::AtomicI64 {}

/// The start of every demo layout: magic number, layout version, which demo,
/// and the size of the whole region, checked by every process that attaches.
#[repr(C)]
pub struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    kind: AtomicU32,
    size: AtomicU64,
}

// SAFETY: only atomics, valid at zero.
unsafe impl Shared for Header {}

impl Header {
    /// Written by the process that made the region, before any other attaches.
    pub fn init(&self, kind: u32, size: usize) {
        self.kind.store(kind, Ordering::Relaxed);
        self.size.store(size as u64, Ordering::Relaxed);
        self.version.store(VERSION, Ordering::Relaxed);
        // Release: whoever sees the magic sees the rest.
        self.magic.store(MAGIC, Ordering::Release);
    }

    /// Refuse a region that is not this demo's layout at this version.
    pub fn check(&self, kind: u32, size: usize) -> Result<()> {
        let magic = self.magic.load(Ordering::Acquire);
        ensure!(
            magic == MAGIC,
            "bad magic number {magic:#018x}, expected {MAGIC:#018x}"
        );
        let version = self.version.load(Ordering::Relaxed);
        ensure!(
            version == VERSION,
            "layout version {version}, this program knows {VERSION}"
        );
        let k = self.kind.load(Ordering::Relaxed);
        ensure!(k == kind, "the region belongs to demo {k}, not {kind}");
        let s = self.size.load(Ordering::Relaxed);
        ensure!(s == size as u64, "the region is {s} bytes, expected {size}");
        Ok(())
    }
}

/// An anonymous `MAP_SHARED` mapping, unmapped in `Drop`. Made before `fork`,
/// it is the same memory in every child.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

impl Region {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0)`;
    /// the pages start zeroed.
    pub fn new(len: usize) -> Result<Region> {
        let length = NonZeroUsize::new(len).ok_or_else(|| anyhow!("empty shared region"))?;
        // SAFETY: a new mapping at an address the kernel picks aliases no Rust
        // memory; `Region` unmaps it exactly once, in Drop.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .with_context(|| format!("cannot map {len} bytes of shared memory"))?;
        Ok(Region {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The `T` at `offset`, bounds and alignment checked.
    pub fn at<T: Shared>(&self, offset: usize) -> Result<&T> {
        Ok(&self.slice::<T>(offset, 1)?[0])
    }

    /// `n` consecutive `T`s at `offset`, bounds and alignment checked.
    pub fn slice<T: Shared>(&self, offset: usize, n: usize) -> Result<&[T]> {
        let bytes = n
            .checked_mul(size_of::<T>())
            .and_then(|b| b.checked_add(offset));
        ensure!(
            bytes.is_some_and(|end| end <= self.len),
            "layout does not fit the region"
        );
        ensure!(offset % align_of::<T>() == 0, "misaligned layout");
        // SAFETY: in bounds and aligned (checked above); `T: Shared` is valid
        // for any bytes the demos write and is only changed through atomics,
        // so shared references are sound; the borrow ends before the unmap.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<T>(), n) })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no borrow outlives `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// Round `n` up to a multiple of 64 (a cache line), for the next part of a layout.
pub fn align64(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// An unnamed process-shared semaphore living inside a `Region`.
#[repr(C)]
pub struct SemCell(UnsafeCell<libc::sem_t>);

// SAFETY: sem_t is plain bytes until sem_init; it is used only through the
// sem_* calls, which are made for concurrent use by several processes.
unsafe impl Shared for SemCell {}

impl SemCell {
    fn ptr(&self) -> *mut libc::sem_t {
        self.0.get()
    }

    /// `sem_init(sem, pshared = 1, value)`: once, before `fork`.
    pub fn init(&self, value: u32) -> Result<()> {
        // SAFETY: the sem_t lies in a MAP_SHARED region, as pshared requires,
        // and no other process uses it yet.
        Errno::result(unsafe { libc::sem_init(self.ptr(), 1, value) })
            .context("cannot initialise a semaphore")?;
        Ok(())
    }

    /// `sem_wait`, retried on EINTR.
    pub fn wait(&self) -> Result<(), Errno> {
        loop {
            // SAFETY: initialised by `init` before any process waits on it.
            match Errno::result(unsafe { libc::sem_wait(self.ptr()) }) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// `sem_post`
    pub fn post(&self) -> Result<(), Errno> {
        // SAFETY: initialised by `init`.
        Errno::result(unsafe { libc::sem_post(self.ptr()) }).map(drop)
    }
}

/// A POSIX named semaphore that exists by name only between `create` and
/// `unlink_now`: processes forked in between inherit it, and afterwards no
/// crash or Ctrl-C can leave it in /dev/shm. `sem_close`d in `Drop`.
pub struct NamedSem {
    sem: NonNull<libc::sem_t>,
    name: CString,
    linked: bool,
}

impl NamedSem {
    /// `sem_open(name, O_CREAT|O_EXCL, 0600, value)`. A semaphore left by an
    /// earlier run that crashed between its create and its unlink (same pid,
    /// so same name) is stale: it is unlinked and replaced. Returns whether
    /// that happened.
    pub fn create(name: &str, value: u32) -> Result<(NamedSem, bool)> {
        let c_name = CString::new(name).map_err(|_| anyhow!("NUL in semaphore name"))?;
        let mut replaced = false;
        for _ in 0..2 {
            // SAFETY: c_name is a valid C string; with O_CREAT sem_open reads a
            // mode (as c_uint, by default promotion) and an unsigned value.
            let sem = unsafe {
                libc::sem_open(
                    c_name.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL,
                    0o600 as libc::c_uint,
                    value,
                )
            };
            if sem != libc::SEM_FAILED {
                let sem = NonNull::new(sem).ok_or_else(|| anyhow!("sem_open returned NULL"))?;
                return Ok((
                    NamedSem {
                        sem,
                        name: c_name,
                        linked: true,
                    },
                    replaced,
                ));
            }
            match Errno::last() {
                Errno::EEXIST => {
                    // SAFETY: c_name is a valid C string.
                    unsafe { libc::sem_unlink(c_name.as_ptr()) };
                    replaced = true;
                }
                e => return Err(e).with_context(|| format!("cannot create semaphore {name}")),
            }
        }
        bail!("cannot create semaphore {name}: it keeps reappearing")
    }

    /// `sem_unlink`: the name goes, the semaphore lives on in every process
    /// that has it open.
    pub fn unlink_now(&mut self) -> Result<()> {
        if self.linked {
            // SAFETY: self.name is a valid C string.
            Errno::result(unsafe { libc::sem_unlink(self.name.as_ptr()) }).with_context(|| {
                format!("cannot unlink semaphore {}", self.name.to_string_lossy())
            })?;
            self.linked = false;
        }
        Ok(())
    }

    /// `sem_wait`, retried on EINTR.
    pub fn wait(&self) -> Result<(), Errno> {
        loop {
            // SAFETY: self.sem is an open semaphore.
            match Errno::result(unsafe { libc::sem_wait(self.sem.as_ptr()) }) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// `sem_post`
    pub fn post(&self) -> Result<(), Errno> {
        // SAFETY: self.sem is an open semaphore.
        Errno::result(unsafe { libc::sem_post(self.sem.as_ptr()) }).map(drop)
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: from a successful sem_open, closed once. Drop never unlinks
        // (the owner calls `unlink_now`); see `OwnedName` for the guard.
        unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
}

/// Guard of a name a demo created: unlinks it when the demo ends, however it ends.
pub struct UnlinkSemOnDrop(pub String);

impl Drop for UnlinkSemOnDrop {
    fn drop(&mut self) {
        if let Ok(c) = CString::new(self.0.as_str()) {
            // SAFETY: c is a valid C string; a missing name (already unlinked) is fine.
            unsafe { libc::sem_unlink(c.as_ptr()) };
        }
    }
}

/// The children of a demo. Every child holds the write end of `done`, so the
/// read end reports EOF once all have exited: the parent polls it together
/// with the signal pipe. `Drop` kills and reaps whatever still runs.
pub struct Children {
    guards: Vec<ChildGuard>,
    done: OwnedFd,
}

/// How waiting for the children ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Done,
    Canceled,
}

/// Fork `n` children running `body(i)`; each exits with its return value and
/// never returns into `main`. The caller flushes its output first, or the
/// child's copy of the buffer would be lost (it is never flushed: `_exit`).
pub fn spawn(n: usize, mut body: impl FnMut(usize) -> i32) -> Result<Children> {
    let (done_r, done_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    let parent = getpid();
    let mut children = Children {
        guards: Vec::with_capacity(n),
        done: done_r,
    };
    let mut done_w = Some(done_w);
    for i in 0..n {
        let pid = process::fork(|| {
            // Die with the parent, and let Ctrl-C end a child at once (the
            // parent does the reporting and the cleanup).
            let code = process::child_setup(parent)
                .map(|()| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(i)))
                        .unwrap_or(101)
                })
                .unwrap_or(1);
            drop(done_w.take());
            code
        })
        .context("cannot fork")?;
        children.guards.push(ChildGuard::new(pid));
    }
    drop(done_w);
    Ok(children)
}

impl Children {
    pub fn pid(&self, i: usize) -> Option<Pid> {
        self.guards.get(i).map(ChildGuard::pid)
    }

    /// Wait until every child has exited or a signal arrives, calling
    /// `tick` every `period` meanwhile. A child that fails ends the wait
    /// with its error at once (the others are killed in `Drop`).
    pub fn wait(
        &mut self,
        cancel: &Cancel,
        period: Duration,
        mut tick: impl FnMut() -> Result<()>,
    ) -> Result<Ended> {
        loop {
            if let Some(ended) = self.wait_once(cancel, period)? {
                return Ok(ended);
            }
            tick()?;
        }
    }

    /// One wait of at most `timeout`: `None` when it passed and every child
    /// still runs or has exited successfully.
    pub fn wait_once(&mut self, cancel: &Cancel, timeout: Duration) -> Result<Option<Ended>> {
        match cancel
            .wait(Some((self.done.as_fd(), PollFlags::POLLIN)), Some(timeout))
            .context("cannot wait for the children")?
        {
            Wake::Ready => Ok(Some(if self.reap(true)? {
                Ended::Canceled
            } else {
                Ended::Done
            })),
            Wake::Canceled => Ok(Some(Ended::Canceled)),
            Wake::TimedOut => Ok(if self.reap(false)? {
                Some(Ended::Canceled)
            } else {
                None
            }),
        }
    }

    /// Collect exited children (all of them when `block`); the first failure
    /// is the error. Returns whether a child died of SIGINT or SIGTERM: Ctrl-C
    /// reaches the whole process group, and the children may die before the
    /// parent's own handler has run.
    fn reap(&mut self, block: bool) -> Result<bool> {
        let mut interrupted = false;
        for (i, guard) in self.guards.iter_mut().enumerate() {
            if guard.is_reaped() {
                continue;
            }
            let pid = guard.pid();
            let status = guard
                .wait(block)
                .with_context(|| format!("cannot wait for child {pid}"))?;
            match status {
                None | Some(WaitStatus::Exited(_, 0)) => {}
                Some(WaitStatus::Exited(_, code)) => {
                    bail!("child {i} (pid {pid}) failed with exit status {code}");
                }
                Some(WaitStatus::Signaled(_, Signal::SIGINT | Signal::SIGTERM, _)) => {
                    interrupted = true;
                }
                Some(WaitStatus::Signaled(_, sig, _)) => {
                    bail!("child {i} (pid {pid}) was killed by {sig}");
                }
                Some(_) => {}
            }
        }
        Ok(interrupted)
    }
}

/// A small fast generator for the demos' numbers (splitmix64).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether process `pid` has ended (gone, or a zombie not yet reaped).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => true,
    }
}

/// Spin on `f` with a pause, yielding the CPU now and then: on a 2-core
/// machine the process we wait for may need our core.
pub fn spin_until(mut f: impl FnMut() -> bool) -> u64 {
    let mut spins = 0u64;
    while !f() {
        spins += 1;
        if spins % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    spins
}
