//! What the three System V kinds share: the `SysvObject` trait (open by
//! key, address by id, IPC_STAT, IPC_RMID), the `ipc_perm` part of a stat,
//! the create-or-open by key, and the key a run may take for itself.
//!
//! nix has no System V IPC, and no well-kept crate wraps it safely, so the
//! handles in `sysv_msq`, `sysv_shm` and `sysv_sem` call libc. An id is not
//! a process resource (nothing to close), so they are `Copy` and have no
//! `Drop`; an attachment (`sysv_shm::Attachment`) is, and has.

use nix::errno::Errno;

use super::{Creation, Id, Key, OpenError, Opened, Remove};

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

/// What the three System V handles share, so that addressing by key or
/// id, removal and the stat lookup are written once for all of them.
/// Removal is `Remove::remove`: `IPC_RMID`.
pub trait SysvObject: Remove<Error = Errno> + Copy {
    /// The kind's IPC_STAT, as plain values.
    type Stat;
    /// "queue", "segment" or "semaphore", for messages.
    const WHAT: &'static str;
    /// `sysv-msq`, `sysv-shm` or `sysv-sem`, for JSON.
    const MECHANISM: &'static str;

    /// The existing object of `key` (`*get(key, 0, 0)`).
    ///
    /// # Errors
    /// ENOENT when there is none; EACCES without permission.
    fn open_existing(key: Key) -> Result<Self, Errno>;

    /// A handle on an id as given: only a later call shows whether it exists.
    fn with_id(id: Id) -> Self;

    fn id(&self) -> Id;

    /// `*ctl(IPC_STAT)`: needs read permission.
    ///
    /// # Errors
    /// EINVAL or EIDRM when the id is not (or no longer) in use; EACCES.
    fn stat(&self) -> Result<Self::Stat, Errno>;
}

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
pub fn free_key<T: SysvObject>(seed: u32) -> Key {
    let base = 0x7e00_0000u32 | (seed.wrapping_mul(2_654_435_761) >> 8);
    for step in 0..4096u32 {
        let key = base.wrapping_add(step.wrapping_mul(0x9e37)) as Key;
        if key == IPC_PRIVATE {
            continue;
        }
        if T::open_existing(key).is_err() {
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
    #[cfg(test)]
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
