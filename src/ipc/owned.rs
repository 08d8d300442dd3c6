//! `Owned<T>`: the guard that removes an object when a command must not
//! leave it behind (iceoryx2's `has_ownership` / `release_ownership`).
//!
//! A handle's own `Drop` never removes: the tool's contract leaves objects in
//! place for other processes. Where a run makes an object only for itself (a
//! benchmark's private queue, a demo's semaphore, a segment that could not be
//! sized), it wraps the handle in `Owned`, which removes it in `Drop`, or
//! lets go of it with `release()` once it is meant to stay.

use std::ops::Deref;

use nix::errno::Errno;

use super::posix_mq::PosixQueue;
use super::posix_sem::NamedSem;
use super::posix_shm::PosixShm;
use super::sysv::{Sysv, SysvKind};
use super::sysv_msq::Msq;
use super::sysv_sem::Sem;
use super::sysv_shm::Shm;
use crate::object::{Addr, Kind, ObjectRef};

/// A handle whose object can be removed: unlink the name, IPC_RMID the id.
pub trait Remove {
    type Error;

    /// Remove the object (not just this handle). "No such" is an error.
    fn remove(&self) -> Result<(), Self::Error>;
}

/// Owns the object behind `T`: removes it in `Drop` unless released.
///
/// Only the process that made the guard removes: a forked child that
/// unwinds through a copy of it leaves its parent's object alone.
pub struct Owned<T: Remove> {
    handle: Option<T>,
    owner: u32,
}

impl<T: Remove> Owned<T> {
    pub fn new(handle: T) -> Self {
        Owned {
            handle: Some(handle),
            owner: std::process::id(),
        }
    }

    /// Keep the object: the guard lets go, the handle stays open.
    pub fn release(mut self) -> T {
        match self.handle.take() {
            Some(handle) => handle,
            // `handle` is only taken here and in Drop, both by value.
            None => unreachable!("an Owned guard always holds its handle until released"),
        }
    }

    /// Remove the object now and report how that went; on success the guard
    /// has nothing left to do, on failure `Drop` tries once more.
    ///
    /// # Errors
    /// The handle's `remove` error.
    pub fn remove_now(&mut self) -> Result<(), T::Error> {
        if let Some(handle) = &self.handle {
            handle.remove()?;
            self.owner = 0;
        }
        Ok(())
    }
}

impl<T: Remove> Deref for Owned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.handle {
            Some(handle) => handle,
            None => unreachable!("an Owned guard always holds its handle until released"),
        }
    }
}

impl<T: Remove> Drop for Owned<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            if self.owner == std::process::id() {
                // Nothing to report to at this point; an object that is
                // already gone is what we wanted anyway.
                let _ = handle.remove();
            }
        }
    }
}

/// Any object by its identity: `Owned<ObjectRef>` removes whatever it
/// names (the tests' clean-up does so).
impl Remove for ObjectRef {
    type Error = Errno;

    /// `mq_unlink`, `shm_unlink` or `sem_unlink` of a POSIX name; IPC_RMID
    /// of a System V id, or of the object a key finds (`*get` first).
    ///
    /// # Errors
    /// ENOENT for a name or key nothing has, EINVAL or EIDRM for an unused
    /// id; EACCES or EPERM; EINVAL for an address the kind has not (a POSIX
    /// object by key).
    fn remove(&self) -> Result<(), Errno> {
        match (self.kind, &self.addr) {
            (Kind::PosixMsq, Addr::Name(name)) => PosixQueue::remove_name(name.as_str())
                .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)),
            (Kind::PosixShm, Addr::Name(name)) => PosixShm::remove_name(name.as_str()),
            (Kind::PosixSem, Addr::Name(name)) => NamedSem::remove_name(name.as_str()),
            (Kind::SysvMsq, addr) => remove_sysv::<Msq>(addr),
            (Kind::SysvShm, addr) => remove_sysv::<Shm>(addr),
            (Kind::SysvSem, addr) => remove_sysv::<Sem>(addr),
            // A POSIX object has no key or id; named so that a new kind
            // is a compile error here.
            (Kind::PosixMsq | Kind::PosixShm | Kind::PosixSem, Addr::Key(_) | Addr::Id(_)) => {
                Err(Errno::EINVAL)
            }
        }
    }
}

fn remove_sysv<K: SysvKind>(addr: &Addr) -> Result<(), Errno> {
    match addr {
        Addr::Key(key) => Sysv::<K>::open_existing(key.raw())?.remove(),
        Addr::Id(id) => Sysv::<K>::with_id(id.0).remove(),
        Addr::Name(_) => Err(Errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Counted<'a>(&'a Cell<u32>);

    impl Remove for Counted<'_> {
        type Error = ();
        fn remove(&self) -> Result<(), ()> {
            self.0.set(self.0.get() + 1);
            Ok(())
        }
    }

    #[test]
    fn removes_unless_released() {
        let n = Cell::new(0);
        drop(Owned::new(Counted(&n)));
        assert_eq!(n.get(), 1);
        let _kept = Owned::new(Counted(&n)).release();
        assert_eq!(n.get(), 1);
        let mut once = Owned::new(Counted(&n));
        assert!(once.remove_now().is_ok());
        drop(once);
        assert_eq!(n.get(), 2);
    }
}
