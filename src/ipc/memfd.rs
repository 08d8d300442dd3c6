//! memfd: anonymous memory with a descriptor, `memfd_create`, sized with
//! `posix_fallocate`, sealed with `fcntl(F_ADD_SEALS)`, mapped shared.
//!
//! A memfd has no name anywhere: it lives exactly as long as some process
//! holds a descriptor or a mapping of it, so there is nothing to remove.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl, open};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::stat::{Mode, fstat};

use super::mapping::Mapping;

/// An anonymous memory file, closed in `Drop`. Closing the last descriptor
/// (and unmapping the last mapping) frees it.
#[derive(Debug)]
pub struct Memfd {
    fd: OwnedFd,
}

impl Memfd {
    /// `memfd_create(label, MFD_CLOEXEC|MFD_ALLOW_SEALING)`: an empty file;
    /// `label` only shows in /proc/PID/fd as `/memfd:LABEL`.
    ///
    /// # Errors
    /// EMFILE, ENFILE, ENOMEM; EINVAL for a label over 249 bytes.
    ///
    /// # References
    /// [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
    pub fn create(label: &str) -> Result<Memfd, Errno> {
        let fd = memfd_create(label, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
        Ok(Memfd { fd })
    }

    /// `open(path, O_RDWR|O_CLOEXEC)` of another process's memfd through
    /// `/proc/PID/fd/N`: the very same memory (same-user access only, as
    /// ptrace rules decide).
    ///
    /// # Errors
    /// ENOENT when that process or descriptor is gone; EACCES.
    ///
    /// # References
    /// [proc_pid_fd(5)](https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html)
    pub fn open_proc(path: &Path) -> Result<Memfd, Errno> {
        let fd = open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
        Ok(Memfd { fd })
    }

    /// `posix_fallocate(fd, 0, len)`: size it with pages backed now, so a
    /// full tmpfs fails here and not with SIGBUS in a mapping later.
    ///
    /// # Errors
    /// ENOSPC or ENOMEM without room; EFBIG (also for `len` above i64::MAX).
    ///
    /// # References
    /// [posix_fallocate(3)](https://man7.org/linux/man-pages/man3/posix_fallocate.3.html)
    pub fn allocate(&self, len: u64) -> Result<(), Errno> {
        let len = i64::try_from(len).map_err(|_| Errno::EFBIG)?;
        nix::fcntl::posix_fallocate(self.fd.as_fd(), 0, len)
    }

    /// `fcntl(F_ADD_SEALS, seals)`.
    ///
    /// # Errors
    /// EPERM when F_SEAL_SEAL is set already; EBUSY for F_SEAL_WRITE with a
    /// writable mapping.
    ///
    /// # References
    /// [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
    pub fn seal(&self, seals: SealFlag) -> Result<(), Errno> {
        fcntl(self.fd.as_fd(), FcntlArg::F_ADD_SEALS(seals)).map(|_| ())
    }

    /// `fcntl(F_GET_SEALS)`.
    ///
    /// # Errors
    /// EINVAL for a file that does not support seals.
    ///
    /// # References
    /// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    pub fn seals(&self) -> Result<SealFlag, Errno> {
        let bits = fcntl(self.fd.as_fd(), FcntlArg::F_GET_SEALS)?;
        Ok(SealFlag::from_bits_truncate(bits))
    }

    /// The size now (`fstat`).
    ///
    /// # Errors
    /// The `fstat` errno.
    ///
    /// # References
    /// [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html)
    pub fn size(&self) -> Result<u64, Errno> {
        Ok(fstat(self.fd.as_fd())?.st_size as u64)
    }

    /// `ftruncate(fd, len)`.
    ///
    /// # Errors
    /// EPERM when a seal forbids it (F_SEAL_SHRINK, F_SEAL_GROW).
    ///
    /// # References
    /// [ftruncate(2)](https://man7.org/linux/man-pages/man2/ftruncate.2.html)
    pub fn truncate(&self, len: u64) -> Result<(), Errno> {
        let len = i64::try_from(len).map_err(|_| Errno::EFBIG)?;
        nix::unistd::ftruncate(self.fd.as_fd(), len)
    }

    /// `mmap(MAP_SHARED)` of the first `len` bytes ([`Mapping::of_file`]).
    /// Only safe from SIGBUS while the file cannot shrink (F_SEAL_SHRINK).
    ///
    /// # Errors
    /// As for [`Mapping::of_file`].
    ///
    /// # References
    /// [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
    pub fn map(&self, len: usize) -> Result<Mapping, Errno> {
        Mapping::of_file(self.fd.as_fd(), len)
    }
}

impl AsFd for Memfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Memfd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
