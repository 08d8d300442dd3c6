//! What the three System V kinds share: the handle `Sysv<K>` (open by key,
//! address by id, IPC_STAT, IPC_RMID) over each kind's calls (`SysvKind`),
//! the `ipc_perm` part of a stat, the create-or-open by key, and the key a
//! run may take for itself.
//!
//! nix has no System V IPC, and no well-kept crate wraps it safely, so the
//! kinds in `sysv_msq`, `sysv_shm` and `sysv_sem` call libc. An id is not a
//! process resource (nothing to close), so a handle is `Copy` and has no
//! `Drop`; a segment's attachment is a `Mapping`, and has.

use std::fmt;
use std::marker::PhantomData;

use nix::errno::Errno;

use super::{Creation, Id, Key, OpenError, Opened, Remove, cvt};

/// `IPC_PRIVATE`: the key that always makes a new object nobody else can
/// find by key.
pub const IPC_PRIVATE: Key = libc::IPC_PRIVATE;

/// The key as ipcs prints it, `0x` and eight hex digits, for any key
/// (also IPC_PRIVATE).
pub fn key_hex(key: Key) -> String {
    format!("0x{:08x}", key as u32)
}

/// The `ipc_perm` fields of a System V object, copied out of the kernel's
/// struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    pub key: Key,
    pub id: Id,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u16,
}

impl Perm {
    pub(crate) fn from_raw(p: &libc::ipc_perm, id: Id) -> Perm {
        Perm {
            key: p.__key,
            id,
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
            mode: p.mode,
        }
    }

    /// The permission bits as ipcs prints them, `0644`.
    pub fn perms(&self) -> String {
        format!("{:04o}", self.mode & 0o777)
    }
}

/// One System V kind (`Msq`, `Shm`, `Sem`): its three calls on a key or
/// an id, and what its IPC_STAT holds. The handle is `Sysv<K>`.
pub trait SysvKind {
    /// The IPC_STAT, as plain values.
    type Stat: Copy;
    /// `Kind::SysvMsq`, ...: its names (`sysv-msq`, "queue") are spelled
    /// there.
    const KIND: crate::object::Kind;

    /// The kernel's `msqid_ds`, `shmid_ds` or `semid_ds`.
    type Raw: Zeroed;

    /// `msgget`, `shmget` or `semget` of an existing object (`(key, 0, 0)`).
    fn get_existing(key: Key) -> Result<Id, Errno>;

    /// `msgctl(id, cmd, buf)`, `shmctl(id, cmd, buf)` or
    /// `semctl(id, 0, cmd, buf)`: the raw return value.
    ///
    /// # Safety
    /// `buf` is null or points to a valid, writable `Raw`, and `cmd` is one
    /// that reads or writes at most that struct (IPC_STAT, IPC_SET,
    /// IPC_RMID).
    unsafe fn ctl(id: Id, cmd: libc::c_int, buf: *mut Self::Raw) -> libc::c_int;

    /// The stat's plain values, out of what IPC_STAT filled in.
    fn from_raw(raw: &Self::Raw, id: Id) -> Self::Stat;

    /// The `ipc_perm` part of a stat.
    fn perm(stat: &Self::Stat) -> &Perm;
}

/// A System V object of kind `K`, by id. An id is not a process resource
/// (nothing to close), so the handle is `Copy` and has no `Drop`.
pub struct Sysv<K> {
    id: Id,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Sysv<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Sysv<K> {}

impl<K> fmt::Debug for Sysv<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sysv").field("id", &self.id).finish()
    }
}

impl<K: SysvKind> Sysv<K> {
    /// A handle on an id as given: only a later call shows whether it exists.
    pub fn with_id(id: Id) -> Self {
        Sysv {
            id,
            kind: PhantomData,
        }
    }

    pub fn id(&self) -> Id {
        self.id
    }

    /// The existing object of `key`: `msgget`, `shmget` or `semget` with
    /// size 0 and no flags, so an object of any size is found.
    ///
    /// # Errors
    /// ENOENT when there is none; EACCES without permission.
    ///
    /// # References
    /// [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html),
    /// [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html),
    /// [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
    pub fn open_existing(key: Key) -> Result<Self, Errno> {
        K::get_existing(key).map(Sysv::with_id)
    }

    /// `msgctl`, `shmctl` or `semctl` with IPC_STAT: needs read permission.
    ///
    /// # Errors
    /// EINVAL or EIDRM when the id is not (or no longer) in use; EACCES.
    ///
    /// # References
    /// [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html),
    /// [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html),
    /// [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
    pub fn stat(&self) -> Result<K::Stat, Errno> {
        Ok(K::from_raw(&self.stat_raw()?, self.id))
    }

    /// IPC_STAT as the kernel's struct, for a later IPC_SET of it.
    pub(crate) fn stat_raw(&self) -> Result<K::Raw, Errno> {
        let mut ds = K::Raw::zeroed();
        // SAFETY: ds is a valid, writable struct of the kind's own type for
        // the kernel to fill.
        cvt(unsafe { K::ctl(self.id, libc::IPC_STAT, &mut ds) })?;
        Ok(ds)
    }
}

impl<K: SysvKind> Remove for Sysv<K> {
    type Error = Errno;

    /// `msgctl`, `shmctl` or `semctl` with IPC_RMID: a queue or set goes at
    /// once (blocked callers wake with EIDRM), a segment at its last detach.
    ///
    /// # Errors
    /// EINVAL or EIDRM when there is no such object; EPERM when this user
    /// is neither its owner nor its creator.
    fn remove(&self) -> Result<(), Errno> {
        // SAFETY: IPC_RMID reads no buffer; null is allowed.
        cvt(unsafe { K::ctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) })?;
        Ok(())
    }
}

/// All zero bytes are a valid value: the kernel's `*id_ds` structs, which
/// hold only integers, before IPC_STAT fills them.
///
/// # Safety
/// The implementor is plain old data without references or niches.
pub unsafe trait Zeroed: Sized {
    fn zeroed() -> Self {
        // SAFETY: the implementor guarantees that all-zero bytes are valid.
        unsafe { std::mem::zeroed() }
    }
}

// SAFETY: integers and an ipc_perm of integers only.
unsafe impl Zeroed for libc::msqid_ds {}
// SAFETY: as above.
unsafe impl Zeroed for libc::shmid_ds {}
// SAFETY: as above.
unsafe impl Zeroed for libc::semid_ds {}

/// Open `key` by `creation` with a kind's get call, which takes the flags:
/// `IPC_CREAT|IPC_EXCL|mode` to create (so that success means this call
/// made it; System V creation ignores the umask, so `mode` applies as
/// given), `0` to open what exists.
pub(crate) fn get_by<T>(
    creation: Creation,
    mode: u32,
    get: impl Fn(libc::c_int) -> Result<T, Errno>,
) -> Result<Opened<T>, OpenError<Errno>> {
    let create = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int;
    creation.apply(|| get(create), || get(0))
}

/// A key derived from `seed` (the tour uses its pid) that no object of
/// kind `T` uses now: a user's key 200 or another run's objects are never
/// touched. On a taken key the next candidate is tried.
pub fn free_key<K: SysvKind>(seed: u32) -> Key {
    let base = 0x7e00_0000u32 | (seed.wrapping_mul(2_654_435_761) >> 8);
    for step in 0..4096u32 {
        let key = base.wrapping_add(step.wrapping_mul(0x9e37)) as Key;
        if key == IPC_PRIVATE {
            continue;
        }
        if K::get_existing(key).is_err() {
            return key;
        }
    }
    base as Key
}

/// The System V calls a blocked thread can sit in, by the syscall number
/// /proc/PID/syscall shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedIn {
    /// msgsnd or msgrcv: the first argument is a msqid.
    Msq,
    /// semop or semtimedop: the first argument is a semid.
    Sem,
}

impl BlockedIn {
    /// Which call syscall number `nr` is, if it is one of them.
    pub fn from_nr(nr: i64) -> Option<BlockedIn> {
        match nr {
            libc::SYS_msgrcv | libc::SYS_msgsnd => Some(BlockedIn::Msq),
            libc::SYS_semop | libc::SYS_semtimedop => Some(BlockedIn::Sem),
            _ => None,
        }
    }

    /// The number of the call's first member (msgrcv, semop), for tests.
    pub fn nr(self) -> i64 {
        match self {
            BlockedIn::Msq => libc::SYS_msgrcv,
            BlockedIn::Sem => libc::SYS_semop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_calls() {
        assert_eq!(key_hex(200), "0x000000c8");
        assert_eq!(key_hex(-1), "0xffffffff");
        assert_eq!(
            BlockedIn::from_nr(BlockedIn::Msq.nr()),
            Some(BlockedIn::Msq)
        );
        assert_eq!(
            BlockedIn::from_nr(BlockedIn::Sem.nr()),
            Some(BlockedIn::Sem)
        );
        assert_eq!(BlockedIn::from_nr(0), None);
    }
}
