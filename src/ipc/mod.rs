//! One RAII handle per kernel object. Every `libc::` call and every `unsafe`
//! block of the crate lives below this module, each with its `// SAFETY:`.
//!
//! The rules every handle follows:
//! - `Drop` only releases what this process holds: close, munmap, shmdt,
//!   sem_close. Removing the object is an explicit `remove`, and removing
//!   one that is not there is an error ("no such"), never silently fine.
//!   [`Owned`] is the guard that removes on `Drop` where a command must not
//!   leave what it made.
//! - How an object is opened is a value, [`Creation`]; opening says whether
//!   this call created the object ([`Opened`]). The race between "it exists"
//!   and "it was removed before we opened it" is handled once, in
//!   [`Creation::apply`].
//! - Inspection (stat, value, size) never maps what it only reads: it uses
//!   `pread`, `IPC_STAT` or `GETALL`, so a damaged or shrinking object is an
//!   error, not SIGBUS.
//! - Errors are the errno (`nix::errno::Errno`), or `io::Error` where the
//!   wrapped crate speaks it (posixmq, `File`); the commands turn them into
//!   the user's words and hints.

pub mod cpu;
pub mod fifo;
pub mod futex;
pub mod mapping;
pub mod memfd;
pub mod namespace;
pub mod owned;
pub mod posix_mq;
pub mod posix_sem;
pub mod posix_shm;
pub mod process;
pub mod semfile;
mod sigbus;
pub mod socket;
pub mod splice;
pub mod sysv;
pub mod sysv_msq;
pub mod sysv_sem;
pub mod sysv_shm;
pub mod terminal;

use std::io;
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::sys::stat::{Mode, umask};

pub use owned::{Owned, Remove};

/// A System V IPC key (`key_t`).
pub type Key = i32;

/// A System V object id (msqid, shmid, semid: an `int`).
pub type Id = i32;

/// How a handle's `open` treats an object that exists, or does not
/// (iceoryx2's `CreationMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// Create it; fail (EEXIST) when it exists.
    CreateNew,
    /// Open it if it exists, else create it.
    OpenOrCreate,
    /// Open it; fail (ENOENT) when it does not exist.
    OpenOnly,
}

/// A handle and whether this call created its object.
#[derive(Debug)]
pub struct Opened<T> {
    pub handle: T,
    pub created: bool,
}

/// Why an open by [`Creation`] failed, and at which step.
#[derive(Debug)]
pub enum OpenError<E> {
    /// The create call failed (`CreateNew`, or the first step of
    /// `OpenOrCreate`): EEXIST for `CreateNew`, EACCES, a limit...
    Create(E),
    /// Opening the existing object failed: ENOENT for `OpenOnly`, EACCES...
    Open(E),
    /// `OpenOrCreate` only: twice, the object existed when we tried to
    /// create it and was gone when we tried to open it.
    Vanished,
}

impl<E> OpenError<E> {
    /// The error of either step; `vanished` stands for `Vanished`.
    pub fn into_inner(self, vanished: impl FnOnce() -> E) -> E {
        match self {
            OpenError::Create(e) | OpenError::Open(e) => e,
            OpenError::Vanished => vanished(),
        }
    }
}

/// `Vanished` is ENOENT: the object is not there.
impl From<OpenError<Errno>> for Errno {
    fn from(e: OpenError<Errno>) -> Errno {
        e.into_inner(|| Errno::ENOENT)
    }
}

/// The two errors [`Creation::apply`] must tell apart.
pub trait Race {
    /// The create step found the object there (EEXIST).
    fn exists(&self) -> bool;
    /// The open step found it gone (ENOENT).
    fn missing(&self) -> bool;
}

impl Race for Errno {
    fn exists(&self) -> bool {
        *self == Errno::EEXIST
    }

    fn missing(&self) -> bool {
        *self == Errno::ENOENT
    }
}

impl Race for io::Error {
    fn exists(&self) -> bool {
        self.kind() == io::ErrorKind::AlreadyExists
    }

    fn missing(&self) -> bool {
        self.kind() == io::ErrorKind::NotFound
    }
}

impl Creation {
    /// Run this policy with the kind's two calls: `create` (exclusive, so
    /// that success means this call made the object) and `open` (of an
    /// existing object). `OpenOrCreate` goes two rounds, because the object
    /// may be removed between our EEXIST and our open; every kind shares
    /// this one loop.
    ///
    /// # Errors
    /// [`OpenError`]: which step failed with which error, or `Vanished`.
    pub fn apply<T, E: Race>(
        self,
        mut create: impl FnMut() -> Result<T, E>,
        mut open: impl FnMut() -> Result<T, E>,
    ) -> Result<Opened<T>, OpenError<E>> {
        let made = |handle| Opened {
            handle,
            created: true,
        };
        let found = |handle| Opened {
            handle,
            created: false,
        };
        match self {
            Creation::CreateNew => create().map(made).map_err(OpenError::Create),
            Creation::OpenOnly => open().map(found).map_err(OpenError::Open),
            Creation::OpenOrCreate => {
                for _ in 0..2 {
                    match create() {
                        Ok(handle) => return Ok(made(handle)),
                        Err(e) if e.exists() => {}
                        Err(e) => return Err(OpenError::Create(e)),
                    }
                    match open() {
                        Ok(handle) => return Ok(found(handle)),
                        Err(e) if e.missing() => {}
                        Err(e) => return Err(OpenError::Open(e)),
                    }
                }
                Err(OpenError::Vanished)
            }
        }
    }
}

/// The one "-1 means errno" check of the crate (nix's `Errno::result`),
/// for every C call that reports failure as -1.
#[inline]
pub(crate) fn cvt<T: nix::errno::ErrnoSentinel + PartialEq<T>>(ret: T) -> Result<T, Errno> {
    Errno::result(ret)
}

/// The same for calls that return a pointer and report failure with a
/// sentinel (`(void *) -1` from shmat, `SEM_FAILED` from sem_open).
#[inline]
pub(crate) fn cvt_ptr<T>(ret: *mut T, failed: *mut T) -> Result<NonNull<T>, Errno> {
    if ret == failed {
        return Err(Errno::last());
    }
    NonNull::new(ret).ok_or(Errno::EINVAL)
}

/// Clears the umask while it lives, so that a mode given to a create call
/// applies exactly: the process umask would otherwise silently remove bits.
/// The tool is single-threaded where it creates objects.
pub(crate) struct UmaskCleared(Mode);

impl UmaskCleared {
    pub(crate) fn new() -> Self {
        UmaskCleared(umask(Mode::empty()))
    }
}

impl Drop for UmaskCleared {
    fn drop(&mut self) {
        umask(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn open_or_create_goes_two_rounds_then_gives_up() {
        let calls = Cell::new(0);
        let r: Result<Opened<()>, _> = Creation::OpenOrCreate.apply(
            || {
                calls.set(calls.get() + 1);
                Err(Errno::EEXIST)
            },
            || Err(Errno::ENOENT),
        );
        assert!(matches!(r, Err(OpenError::Vanished)));
        assert_eq!(calls.get(), 2);
        let r = Creation::OpenOrCreate.apply(|| Err(Errno::EEXIST), || Ok(7));
        assert!(matches!(
            r,
            Ok(Opened {
                handle: 7,
                created: false
            })
        ));
        let r = Creation::OpenOrCreate.apply(|| Err(Errno::EACCES), || Ok(7));
        assert!(matches!(r, Err(OpenError::Create(Errno::EACCES))));
        let r: Result<Opened<i32>, _> = Creation::OpenOnly.apply(|| Ok(1), || Err(Errno::ENOENT));
        assert_eq!(Errno::from(r.unwrap_err()), Errno::ENOENT);
        let r = Creation::CreateNew.apply(|| Ok::<_, Errno>(1), || Ok(2));
        assert!(matches!(
            r,
            Ok(Opened {
                handle: 1,
                created: true
            })
        ));
    }
}
