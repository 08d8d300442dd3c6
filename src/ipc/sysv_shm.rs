//! System V shared memory: `shmget`, `shmat`, `shmdt`, `shmctl`.
//!
//! A segment never changes size, so unlike a POSIX mapping an attachment
//! can never fault with SIGBUS; removal (IPC_RMID) is what a reader must
//! notice, and `SegmentStat::removed` tells.

use nix::errno::Errno;

use super::mapping::{Mapping, Release, View};
use crate::object::Kind;

use super::sysv::{IPC_PRIVATE, Perm, Sysv, SysvKind, get_by};
use super::{Creation, Id, Key, OpenError, Opened, cvt, cvt_ptr};

/// `SHM_DEST` in `shm_perm.mode`: IPC_RMID was called while attached; the
/// segment goes away at the last detach. Not exported by the libc crate.
const SHM_DEST: u16 = 0o1000;

/// The System V shared memory kind.
#[derive(Debug, Clone, Copy)]
pub struct Shm;

/// A System V shared memory segment, by id. An id is not a process
/// resource: the attachment is what `Drop` must release.
pub type SysvSegment = Sysv<Shm>;

/// A segment's `shmid_ds`, as plain values.
#[derive(Debug, Clone, Copy)]
pub struct SegmentStat {
    pub perm: Perm,
    /// Bytes (`shm_segsz`).
    pub size: usize,
    /// Attachments (`shm_nattch`).
    pub nattch: u64,
    /// Creator and last shmat/shmdt.
    pub cpid: i32,
    pub lpid: i32,
    /// Last attach, detach and change; 0 for never.
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    /// IPC_RMID was called while attached (`SHM_DEST`): freed at the last
    /// detach.
    pub dest: bool,
}

impl SegmentStat {
    /// Whether the segment was removed (IPC_RMID) while some process keeps
    /// it attached: marked SHM_DEST, and its key reset to IPC_PRIVATE.
    pub fn removed(&self) -> bool {
        self.dest || self.perm.key == IPC_PRIVATE
    }
}

impl SysvSegment {
    /// `shmget(key, size, flags)` by `creation`: `IPC_CREAT|IPC_EXCL|mode`
    /// to create (the kernel zero-fills the pages), `0` to open a segment of
    /// any size (an existing one keeps its size).
    ///
    /// # Errors
    /// EEXIST (`CreateNew`) or ENOENT (`OpenOnly`); EACCES; EINVAL when
    /// `size` is outside SHMMIN..SHMMAX; ENOSPC when shmmni segments or
    /// shmall pages are taken.
    ///
    /// # References
    /// [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
    pub fn open(
        key: Key,
        creation: Creation,
        size: usize,
        mode: u32,
    ) -> Result<Opened<SysvSegment>, OpenError<Errno>> {
        // An existing segment is opened at any size (0).
        get_by(creation, mode, |flags| {
            let size = if flags == 0 { 0 } else { size };
            shmget(key, size, flags).map(Sysv::with_id)
        })
    }

    /// `shmat(id, NULL, readonly ? SHM_RDONLY : 0)` of the whole segment
    /// (its size from IPC_STAT), detached (`shmdt`) when the mapping drops,
    /// never removed.
    ///
    /// # Errors
    /// EACCES without the permission asked for; EINVAL or EIDRM when the
    /// segment is gone; ENOMEM.
    ///
    /// # References
    /// [shmat(2)](https://man7.org/linux/man-pages/man2/shmat.2.html)
    pub fn attach(&self, readonly: bool) -> Result<Mapping, Errno> {
        let len = self.stat()?.size;
        let flags = if readonly { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel pick a free range, so the
        // new mapping cannot alias Rust memory. (void *) -1 means failure.
        let ptr = unsafe { libc::shmat(self.id(), std::ptr::null(), flags) };
        let ptr = cvt_ptr(ptr, usize::MAX as *mut libc::c_void)?;
        // SAFETY: shmat mapped the whole segment, `len` bytes (a segment
        // never changes size, and IPC_RMID keeps it until the last detach),
        // writable unless SHM_RDONLY; it stays until the Mapping detaches it,
        // once, with shmdt.
        Ok(unsafe { Mapping::from_view(View::new(ptr.cast(), len, !readonly), Release::Shmdt) })
    }
}

impl SysvSegment {
    /// All of the segment's bytes, copied out of a read-only attachment
    /// (`shmat(id, NULL, SHM_RDONLY)`, then `shmdt`) and bounded by
    /// `shm_segsz`: a System V segment never changes size, so the copy
    /// cannot fault. Attaching sets `shm_atime` and `shm_lpid`, as any
    /// reader's does.
    ///
    /// # Errors
    /// As for [`SysvSegment::attach`]: EACCES without read permission;
    /// EINVAL or EIDRM when the segment is gone.
    ///
    /// # References
    /// [shmat(2)](https://man7.org/linux/man-pages/man2/shmat.2.html)
    pub fn read_all(&self) -> Result<Vec<u8>, Errno> {
        let map = self.attach(true)?;
        let mut bytes = vec![0; map.len()];
        map.read_at(0, &mut bytes);
        Ok(bytes)
    }

    /// Write `bytes` at `offset` through a read-write attachment (`shmat`,
    /// then `shmdt`).
    ///
    /// # Errors
    /// EACCES without write permission; EINVAL when `bytes` does not fit
    /// at `offset` (nothing is written) or the segment is gone; EIDRM.
    ///
    /// # References
    /// [shmat(2)](https://man7.org/linux/man-pages/man2/shmat.2.html)
    pub fn write_all_at(&self, bytes: &[u8], offset: usize) -> Result<(), Errno> {
        self.attach(false)?.write_at(offset, bytes)
    }
}

/// `shmget(key, size, flags)`
fn shmget(key: Key, size: usize, flags: libc::c_int) -> Result<Id, Errno> {
    // SAFETY: shmget takes plain integers and touches no memory of ours.
    cvt(unsafe { libc::shmget(key, size, flags) })
}

impl SysvKind for Shm {
    type Stat = SegmentStat;
    type Raw = libc::shmid_ds;
    const KIND: Kind = Kind::SysvShm;

    fn get_existing(key: Key) -> Result<Id, Errno> {
        shmget(key, 0, 0)
    }

    unsafe fn ctl(id: Id, cmd: libc::c_int, buf: *mut libc::shmid_ds) -> libc::c_int {
        // SAFETY: the caller passes a null or valid buf for cmd.
        unsafe { libc::shmctl(id, cmd, buf) }
    }

    fn from_raw(ds: &libc::shmid_ds, id: Id) -> SegmentStat {
        #[allow(
            clippy::useless_conversion,
            reason = "shmatt_t is u32 on 32-bit targets"
        )]
        SegmentStat {
            perm: Perm::from_raw(&ds.shm_perm, id),
            size: ds.shm_segsz,
            nattch: u64::from(ds.shm_nattch),
            cpid: ds.shm_cpid,
            lpid: ds.shm_lpid,
            atime: ds.shm_atime,
            dtime: ds.shm_dtime,
            ctime: ds.shm_ctime,
            dest: ds.shm_perm.mode & SHM_DEST != 0,
        }
    }

    fn perm(stat: &SegmentStat) -> &Perm {
        &stat.perm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::Owned;

    #[test]
    fn whole_segment_is_read_and_written_within_its_size() {
        let seg = SysvSegment::open(IPC_PRIVATE, Creation::CreateNew, 5000, 0o600).unwrap();
        let seg = Owned::new(seg.handle);
        seg.write_all_at(b"\x00\xffend", 4995).unwrap();
        assert_eq!(seg.write_all_at(b"toolong", 4995), Err(Errno::EINVAL));
        let bytes = seg.read_all().unwrap();
        assert_eq!(bytes.len(), 5000);
        assert_eq!(&bytes[4995..], b"\x00\xffend");
        assert!(bytes[..4995].iter().all(|&b| b == 0));
        assert_eq!(seg.stat().unwrap().nattch, 0);
    }
}
