//! System V shared memory: `shmget`, `shmat`, `shmdt`, `shmctl`.
//!
//! A segment never changes size, so unlike a POSIX mapping an attachment
//! can never fault with SIGBUS; removal (IPC_RMID) is what a reader must
//! notice, and `SegmentStat::removed` tells.

use std::ops::Deref;

use nix::errno::Errno;

use super::mapping::View;
use super::sysv::{IPC_PRIVATE, Perm, SysvObject, get_by};
use super::{Creation, Id, Key, OpenError, Opened, Remove, cvt, cvt_ptr};

/// `SHM_DEST` in `shm_perm.mode`: IPC_RMID was called while attached; the
/// segment goes away at the last detach. Not exported by the libc crate.
const SHM_DEST: u16 = 0o1000;

/// A System V shared memory segment, by id. An id is not a process
/// resource: the attachment is what `Drop` must release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysvSegment {
    id: Id,
}

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
        get_by(creation, mode, |flags| {
            let size = if flags == 0 { 0 } else { size };
            // SAFETY: shmget takes plain integers and touches no memory of ours.
            let id = cvt(unsafe { libc::shmget(key, size, flags) })?;
            Ok(SysvSegment { id })
        })
    }

    /// `shmat(id, NULL, readonly ? SHM_RDONLY : 0)` of the whole segment
    /// (its size from IPC_STAT), detached when the attachment drops.
    ///
    /// # Errors
    /// EACCES without the permission asked for; EINVAL or EIDRM when the
    /// segment is gone; ENOMEM.
    ///
    /// # References
    /// [shmat(2)](https://man7.org/linux/man-pages/man2/shmat.2.html)
    pub fn attach(&self, readonly: bool) -> Result<Attachment, Errno> {
        let len = self.stat()?.size;
        let flags = if readonly { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel pick a free range, so the
        // new mapping cannot alias Rust memory. (void *) -1 means failure.
        let ptr = unsafe { libc::shmat(self.id, std::ptr::null(), flags) };
        let ptr = cvt_ptr(ptr, usize::MAX as *mut libc::c_void)?;
        // SAFETY: shmat mapped the whole segment, `len` bytes (a segment
        // never changes size, and IPC_RMID keeps it until the last detach),
        // writable unless SHM_RDONLY; it stays until Drop detaches it.
        let view = unsafe { View::new(ptr.cast(), len, !readonly) };
        Ok(Attachment { view })
    }
}

/// An attachment of a whole segment, detached (`shmdt`) in `Drop`, never
/// removed.
pub struct Attachment {
    view: View,
}

impl Deref for Attachment {
    type Target = View;

    fn deref(&self) -> &View {
        &self.view
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: the address one successful shmat returned, detached
        // exactly once, here; no borrow of the view outlives self.
        unsafe { libc::shmdt(self.view.as_ptr().as_ptr().cast()) };
    }
}

impl Remove for SysvSegment {
    type Error = Errno;

    /// `shmctl(IPC_RMID)`: the segment goes when the last process detaches.
    ///
    /// # Errors
    /// EINVAL or EIDRM when there is no such segment; EPERM when this user
    /// is neither its owner nor its creator.
    ///
    /// # References
    /// [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    fn remove(&self) -> Result<(), Errno> {
        // SAFETY: IPC_RMID reads no buffer; null is allowed.
        cvt(unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) })?;
        Ok(())
    }
}

impl SysvObject for SysvSegment {
    type Stat = SegmentStat;
    const WHAT: &'static str = "segment";
    const MECHANISM: &'static str = "sysv-shm";

    /// `shmget(key, 0, 0)`: an existing segment of any size.
    fn open_existing(key: Key) -> Result<Self, Errno> {
        Ok(SysvSegment::open(key, Creation::OpenOnly, 0, 0)?.handle)
    }

    fn with_id(id: Id) -> Self {
        SysvSegment { id }
    }

    fn id(&self) -> Id {
        self.id
    }

    /// `shmctl(IPC_STAT)`
    ///
    /// # References
    /// [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    fn stat(&self) -> Result<SegmentStat, Errno> {
        // SAFETY: shmid_ds is plain old data (integers only): all zero is valid.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: ds is a valid, writable shmid_ds for the kernel to fill.
        cvt(unsafe { libc::shmctl(self.id, libc::IPC_STAT, &mut ds) })?;
        #[allow(
            clippy::useless_conversion,
            reason = "shmatt_t is u32 on 32-bit targets"
        )]
        Ok(SegmentStat {
            perm: Perm::from_raw(&ds.shm_perm, self.id),
            size: ds.shm_segsz,
            nattch: u64::from(ds.shm_nattch),
            cpid: ds.shm_cpid,
            lpid: ds.shm_lpid,
            atime: ds.shm_atime,
            dtime: ds.shm_dtime,
            ctime: ds.shm_ctime,
            dest: ds.shm_perm.mode & SHM_DEST != 0,
        })
    }
}
