//! POSIX semaphores: a named one (`NamedSem`: `sem_open` to create,
//! `sem_post`, `sem_wait`, `sem_trywait`, `sem_timedwait`, `sem_getvalue`,
//! `sem_unlink`), the checked kind a client of someone else's semaphore uses
//! (`CheckedSem`), and an unnamed process-shared one inside shared memory
//! (`SemCell`). nix has none of these calls.
//!
//! glibc's `sem_*` calls trust the file they map, so an existing semaphore
//! is opened by hand: its file is checked with `pread` (`SemFile`), and only
//! then mapped, the same inode that was checked, with a SIGBUS guard over
//! the mapping (`sigbus`) for a truncation after the check.

use std::cell::UnsafeCell;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::time::Duration;

use nix::errno::Errno;

use super::mapping::{Mapping, Shared};
use super::semfile::{Invalid, SEM_T_SIZE, SemFile, SemWord};
use super::sigbus::BusGuard;
use super::{Remove, UmaskCleared, cvt, cvt_ptr};

/// How this process reaches the semaphore.
enum Backing {
    /// `sem_open`'s own mapping, released with `sem_close`.
    Opened,
    /// Our mapping of a checked file, unmapped when dropped; the guard
    /// (dropped first) stops reporting faults in it.
    Mapped { _guard: BusGuard, _map: Mapping },
}

/// An open named semaphore. `Drop` closes or unmaps, never unlinks.
pub struct NamedSem {
    sem: NonNull<libc::sem_t>,
    backing: Backing,
    name: String,
}

// SAFETY: the sem_* calls are thread-safe on a sem_t; the pointer stays valid
// for the life of the handle, whichever thread holds it.
unsafe impl Send for NamedSem {}
// SAFETY: as above: every method goes through a thread-safe sem_* call.
unsafe impl Sync for NamedSem {}

impl NamedSem {
    /// `sem_open(name, O_CREAT|O_EXCL, mode, value)` with the umask
    /// cleared: a new semaphore, reached through glibc's own mapping. glibc
    /// builds the file under a temporary name and links it in whole, so no
    /// one ever sees it half-made.
    ///
    /// # Errors
    /// EEXIST when it exists; EACCES; EINVAL for a value above
    /// SEM_VALUE_MAX or a bad name; ENOSPC or EMFILE.
    ///
    /// # References
    /// [sem_open(3)](https://man7.org/linux/man-pages/man3/sem_open.3.html)
    pub fn create(name: &str, mode: u32, value: u32) -> Result<NamedSem, Errno> {
        let c_name = CString::new(name).map_err(|_| Errno::EINVAL)?;
        let made = {
            let _umask = UmaskCleared::new();
            // SAFETY: c_name is a valid C string; with O_CREAT sem_open reads
            // exactly two more variadic arguments, a mode_t (passed as c_uint,
            // as default promotion requires) and an unsigned value.
            unsafe {
                libc::sem_open(
                    c_name.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL,
                    mode as libc::c_uint,
                    value as libc::c_uint,
                )
            }
        };
        let sem = cvt_ptr(made, libc::SEM_FAILED)?;
        Ok(NamedSem {
            sem,
            backing: Backing::Opened,
            name: name.to_string(),
        })
    }

    /// `sem_unlink(name)`: the name goes; processes that have the semaphore
    /// open keep it.
    ///
    /// # Errors
    /// ENOENT when there is no such semaphore; EACCES.
    ///
    /// # References
    /// [sem_unlink(3)](https://man7.org/linux/man-pages/man3/sem_unlink.3.html)
    pub fn remove_name(name: &str) -> Result<(), Errno> {
        let c_name = CString::new(name).map_err(|_| Errno::EINVAL)?;
        // SAFETY: c_name is a valid C string.
        cvt(unsafe { libc::sem_unlink(c_name.as_ptr()) })?;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `sem_post`: give a unit back.
    ///
    /// # Errors
    /// EOVERFLOW at SEM_VALUE_MAX.
    ///
    /// # References
    /// [sem_post(3)](https://man7.org/linux/man-pages/man3/sem_post.3.html)
    #[inline]
    pub fn post(&self) -> Result<(), Errno> {
        // SAFETY: self.sem is an open (or mapped and checked) sem_t.
        cvt(unsafe { libc::sem_post(self.sem.as_ptr()) })?;
        Ok(())
    }

    /// `sem_wait`: take a unit, waiting for one.
    ///
    /// # Errors
    /// EINTR when a signal handler ran: the caller's to retry (or not).
    ///
    /// # References
    /// [sem_wait(3)](https://man7.org/linux/man-pages/man3/sem_wait.3.html)
    #[inline]
    pub fn wait(&self) -> Result<(), Errno> {
        // SAFETY: as in post.
        cvt(unsafe { libc::sem_wait(self.sem.as_ptr()) })?;
        Ok(())
    }

    /// `sem_trywait`: take a unit now; `false` when the value is 0.
    ///
    /// # Errors
    /// EINTR.
    ///
    /// # References
    /// [sem_wait(3)](https://man7.org/linux/man-pages/man3/sem_wait.3.html)
    pub fn try_wait(&self) -> Result<bool, Errno> {
        // SAFETY: as in post.
        match cvt(unsafe { libc::sem_trywait(self.sem.as_ptr()) }) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `sem_timedwait` with a deadline `wait` from now on CLOCK_REALTIME (as
    /// sem_timedwait requires); EINTR is retried with the same deadline.
    /// `false` when the time passed without a unit.
    ///
    /// # Errors
    /// EINVAL for a deadline the call refuses.
    ///
    /// # References
    /// [sem_timedwait(3)](https://man7.org/linux/man-pages/man3/sem_wait.3.html)
    pub fn timed_wait(&self, wait: Duration) -> Result<bool, Errno> {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
        let end = Duration::from(now) + wait;
        let ts = libc::timespec {
            tv_sec: end.as_secs() as libc::time_t,
            tv_nsec: end.subsec_nanos() as libc::c_long,
        };
        loop {
            // SAFETY: as in post; ts is a valid timespec for the call.
            match cvt(unsafe { libc::sem_timedwait(self.sem.as_ptr(), &ts) }) {
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => continue,
                Err(Errno::ETIMEDOUT) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// `sem_getvalue`
    ///
    /// # Errors
    /// None on Linux for a valid semaphore.
    ///
    /// # References
    /// [sem_getvalue(3)](https://man7.org/linux/man-pages/man3/sem_getvalue.3.html)
    pub fn value(&self) -> Result<i32, Errno> {
        let mut value: libc::c_int = 0;
        // SAFETY: as in post; value is a valid out-pointer.
        cvt(unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut value) })?;
        Ok(value)
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        if let Backing::Opened = self.backing {
            // SAFETY: from a successful sem_open, closed once. A mapped one is
            // unmapped by its Mapping, after its guard.
            unsafe { libc::sem_close(self.sem.as_ptr()) };
        }
    }
}

impl Remove for NamedSem {
    type Error = Errno;

    /// `sem_unlink` of this semaphore's name ([`NamedSem::remove_name`]).
    ///
    /// # Errors
    /// ENOENT when it is gone; EACCES.
    fn remove(&self) -> Result<(), Errno> {
        NamedSem::remove_name(&self.name)
    }
}

/// Why a semaphore file could not be mapped for use.
#[derive(Debug)]
pub enum MapError {
    /// Reading or mapping the file failed.
    Io(io::Error),
    /// The file is not a semaphore glibc may use.
    Invalid(Invalid),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Io(e) => e.fmt(f),
            MapError::Invalid(why) => why.fmt(f),
        }
    }
}

/// The text of the error line a fault in the mapping prints: `head`, the
/// file's size at the time, `tail` (built beforehand: a signal handler
/// may not allocate).
pub struct FaultText {
    pub head: String,
    pub tail: String,
}

/// An existing semaphore opened as `sem_open` would, but checked first: its
/// file (kept, to check again) and our own shared mapping of that file.
pub struct CheckedSem {
    /// Declared before `file`: the guard names the file's descriptor.
    sem: NamedSem,
    file: SemFile,
}

impl CheckedSem {
    /// Check `file` ([`SemFile::check`]), then `mmap(MAP_SHARED)` one sem_t
    /// of it, which is all `sem_open` does for an existing semaphore, and
    /// guard the mapping: a fault in it after a truncation prints `fault`
    /// and the file's size, and exits 1.
    ///
    /// # Errors
    /// [`MapError::Invalid`] for a file that is not a valid semaphore;
    /// [`MapError::Io`] with the `pread`, `mmap` or `sigaction` error.
    ///
    /// # References
    /// [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html)
    pub fn map(name: &str, file: SemFile, fault: FaultText) -> Result<CheckedSem, MapError> {
        file.check()
            .map_err(MapError::Io)?
            .map_err(MapError::Invalid)?;
        let map = Mapping::of_file(file.as_fd(), SEM_T_SIZE).map_err(|e| MapError::Io(e.into()))?;
        let start = map.as_ptr();
        let guard = BusGuard::arm(
            start.as_ptr(),
            SEM_T_SIZE,
            file.as_fd(),
            fault.head,
            fault.tail,
        )
        .map_err(|e| MapError::Io(e.into()))?;
        let sem = NamedSem {
            sem: start.cast(),
            backing: Backing::Mapped {
                _guard: guard,
                _map: map,
            },
            name: name.to_string(),
        };
        Ok(CheckedSem { sem, file })
    }

    /// The file checked again with `pread` (not through the mapping): the
    /// value and waiters, or why it is no longer a valid semaphore.
    ///
    /// # Errors
    /// As for [`SemFile::check`].
    ///
    /// # References
    /// [pread(2)](https://man7.org/linux/man-pages/man2/pread.2.html)
    pub fn check(&self) -> io::Result<Result<SemWord, Invalid>> {
        self.file.check()
    }

    pub fn file(&self) -> &SemFile {
        &self.file
    }
}

impl Deref for CheckedSem {
    type Target = NamedSem;

    fn deref(&self) -> &NamedSem {
        &self.sem
    }
}

/// An unnamed process-shared semaphore living inside shared memory made
/// before `fork` (a [`Mapping`]).
#[repr(C)]
pub struct SemCell(UnsafeCell<libc::sem_t>);

// SAFETY: sem_t is plain bytes until sem_init; it is used only through the
// sem_* calls, which are made for concurrent use by several processes, and
// all zero bytes are a valid (uninitialised) sem_t to hold.
unsafe impl Shared for SemCell {}

impl SemCell {
    fn ptr(&self) -> *mut libc::sem_t {
        self.0.get()
    }

    /// `sem_init(sem, pshared = 1, value)`: once, before `fork`.
    ///
    /// # Errors
    /// EINVAL for a value above SEM_VALUE_MAX.
    ///
    /// # References
    /// [sem_init(3)](https://man7.org/linux/man-pages/man3/sem_init.3.html)
    pub fn init(&self, value: u32) -> Result<(), Errno> {
        // SAFETY: the sem_t lies in a MAP_SHARED region, as pshared requires,
        // and no other process uses it yet.
        cvt(unsafe { libc::sem_init(self.ptr(), 1, value) })?;
        Ok(())
    }

    /// `sem_wait`, retried on EINTR.
    ///
    /// # Errors
    /// EINVAL for a semaphore never initialised.
    ///
    /// # References
    /// [sem_wait(3)](https://man7.org/linux/man-pages/man3/sem_wait.3.html)
    pub fn wait(&self) -> Result<(), Errno> {
        loop {
            // SAFETY: initialised by `init` before any process waits on it.
            match cvt(unsafe { libc::sem_wait(self.ptr()) }) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// `sem_post`
    ///
    /// # Errors
    /// EOVERFLOW at SEM_VALUE_MAX.
    ///
    /// # References
    /// [sem_post(3)](https://man7.org/linux/man-pages/man3/sem_post.3.html)
    pub fn post(&self) -> Result<(), Errno> {
        // SAFETY: initialised by `init`.
        cvt(unsafe { libc::sem_post(self.ptr()) })?;
        Ok(())
    }
}
