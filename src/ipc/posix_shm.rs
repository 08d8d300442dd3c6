//! POSIX shared memory: `shm_open`, `posix_fallocate`, `fallocate`,
//! `pread`/`pwrite`, `fstat`, `shm_unlink`.
//!
//! The handle reads and writes the segment through its descriptor, never
//! through a mapping: a segment that is sparse on a full /dev/shm, or shrunk
//! by another process, then gives an error (ENOSPC, a short read) where a
//! mapping would die of SIGBUS. All of it is nix's safe calls.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, OFlag, fallocate, posix_fallocate};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{FileStat, Mode, fstat, stat};
use nix::sys::uio::{pread, pwrite};

use super::{Creation, OpenError, Opened, Remove, UmaskCleared};

/// An open segment: the descriptor, closed in `Drop`. Never unlinks.
#[derive(Debug)]
pub struct PosixShm {
    fd: OwnedFd,
    name: String,
}

/// `/dev/shm/NAME` for a name with its leading '/'.
fn path_of(name: &str) -> String {
    format!("/dev/shm/{}", name.strip_prefix('/').unwrap_or(name))
}

impl PosixShm {
    /// `shm_open(name, O_RDWR, ...)` by `creation`: with
    /// `O_CREAT|O_EXCL` and `mode` (the umask cleared) to create an empty
    /// segment, without to open an existing one. A new segment has size 0:
    /// see [`PosixShm::allocate`].
    ///
    /// # Errors
    /// EEXIST (`CreateNew`) or ENOENT (`OpenOnly`); EACCES; EINVAL for a
    /// bad name; EMFILE or ENFILE.
    ///
    /// # References
    /// [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html)
    pub fn open(
        name: &str,
        creation: Creation,
        mode: u32,
    ) -> Result<Opened<PosixShm>, OpenError<Errno>> {
        let handle = |fd| PosixShm {
            fd,
            name: name.to_string(),
        };
        creation.apply(
            || {
                let _umask = UmaskCleared::new();
                shm_open(
                    name,
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
                    Mode::from_bits_truncate(mode),
                )
                .map(handle)
            },
            || shm_open(name, OFlag::O_RDWR, Mode::empty()).map(handle),
        )
    }

    /// `shm_unlink(name)`: the name goes; open descriptors and mappings
    /// keep the memory until they are closed.
    ///
    /// # Errors
    /// ENOENT when there is no such segment; EACCES.
    ///
    /// # References
    /// [shm_unlink(3)](https://man7.org/linux/man-pages/man3/shm_unlink.3.html)
    pub fn remove_name(name: &str) -> Result<(), Errno> {
        shm_unlink(name)
    }

    /// `stat(/dev/shm/NAME)`: owner, mode and size without opening the
    /// segment, so it needs no permission on the segment itself.
    ///
    /// # Errors
    /// ENOENT when there is no such segment.
    ///
    /// # References
    /// [stat(2)](https://man7.org/linux/man-pages/man2/stat.2.html)
    pub fn stat_name(name: &str) -> Result<FileStat, Errno> {
        stat(path_of(name).as_str())
    }

    /// `posix_fallocate(fd, 0, len)`: give the segment `len` bytes, backed by
    /// pages now, so that a full /dev/shm fails here instead of with SIGBUS
    /// or a short write later.
    ///
    /// # Errors
    /// ENOSPC when /dev/shm has no room; EFBIG above the file size limit
    /// (or `len` above `i64::MAX`).
    ///
    /// # References
    /// [posix_fallocate(3)](https://man7.org/linux/man-pages/man3/posix_fallocate.3.html)
    pub fn allocate(&self, len: u64) -> Result<(), Errno> {
        let len = i64::try_from(len).map_err(|_| Errno::EFBIG)?;
        posix_fallocate(self.fd.as_fd(), 0, len)
    }

    /// `fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, len)`: back bytes `0..len`
    /// with pages without changing the size or any content. EINTR is retried.
    ///
    /// # Errors
    /// ENOSPC when /dev/shm has no room (tmpfs gives back what it
    /// allocated: nothing changed); EOPNOTSUPP on a file system without it.
    ///
    /// # References
    /// [fallocate(2)](https://man7.org/linux/man-pages/man2/fallocate.2.html)
    pub fn allocate_range(&self, len: u64) -> Result<(), Errno> {
        let len = i64::try_from(len).map_err(|_| Errno::EFBIG)?;
        loop {
            match fallocate(self.fd.as_fd(), FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, len) {
                Err(Errno::EINTR) => {}
                done => return done,
            }
        }
    }

    /// `fstat` of the segment.
    ///
    /// # Errors
    /// The `fstat` errno (EIO).
    ///
    /// # References
    /// [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html)
    pub fn stat(&self) -> Result<FileStat, Errno> {
        fstat(self.fd.as_fd())
    }

    /// `pread`: up to `buf.len()` bytes at `offset`; fewer past the end.
    ///
    /// # Errors
    /// EINTR; EIO.
    ///
    /// # References
    /// [pread(2)](https://man7.org/linux/man-pages/man2/pread.2.html)
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let offset = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        pread(self.fd.as_fd(), buf, offset)
    }

    /// `pwrite`: up to `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    /// ENOSPC on a full /dev/shm (pages not allocated before); EINTR;
    /// EFBIG.
    ///
    /// # References
    /// [pwrite(2)](https://man7.org/linux/man-pages/man2/pwrite.2.html)
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize, Errno> {
        let offset = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        pwrite(self.fd.as_fd(), buf, offset)
    }

    /// `lseek(fd, offset, SEEK_DATA)`: where the next bytes that were ever
    /// written (or allocated) start at or after `offset`; `None` when only a
    /// hole follows, to the end. tmpfs reports holes exactly, so a save
    /// skips the unused part of a sparse segment without reading it.
    ///
    /// # Errors
    /// EINVAL for an offset past `i64::MAX`; ENXIO (past the end) is `None`.
    ///
    /// # References
    /// [lseek(2)](https://man7.org/linux/man-pages/man2/lseek.2.html)
    pub fn next_data(&self, offset: u64) -> Result<Option<u64>, Errno> {
        let at = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        match nix::unistd::lseek(self.fd.as_fd(), at, nix::unistd::Whence::SeekData) {
            Ok(next) => Ok(u64::try_from(next).ok()),
            Err(Errno::ENXIO) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `pread` until `buf` is full or the segment ends: the number of
    /// bytes read, fewer than `buf.len()` only at the end. EINTR is
    /// retried. A segment shrunk by another process meanwhile just ends
    /// sooner: this never faults, unlike a copy out of a mapping.
    ///
    /// # Errors
    /// As for [`PosixShm::read_at`] (EIO).
    ///
    /// # References
    /// [pread(2)](https://man7.org/linux/man-pages/man2/pread.2.html)
    pub fn read_full_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// `pwrite` until all of `buf` is written at `offset`; EINTR is
    /// retried. Back the range first ([`PosixShm::allocate`]) so that a full
    /// /dev/shm is refused before anything is written.
    ///
    /// # Errors
    /// ENOSPC on a full /dev/shm (also for a write that makes no progress);
    /// EFBIG.
    ///
    /// # References
    /// [pwrite(2)](https://man7.org/linux/man-pages/man2/pwrite.2.html)
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<(), Errno> {
        let mut done = 0;
        while done < buf.len() {
            match self.write_at(&buf[done..], offset + done as u64) {
                Ok(0) => return Err(Errno::ENOSPC),
                Ok(n) => done += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The text at offset 0 up to the first NUL (or `limit` bytes), read
    /// with `pread` in pages so that a large segment costs only its text.
    /// Unlike a read through a mapping, this cannot die of SIGBUS when
    /// another process shrinks the segment meanwhile: the text just ends.
    ///
    /// # Errors
    /// As for [`PosixShm::read_at`].
    ///
    /// # References
    /// [pread(2)](https://man7.org/linux/man-pages/man2/pread.2.html)
    pub fn read_text(&self, text: &mut Vec<u8>, limit: usize) -> Result<(), Errno> {
        const CHUNK: usize = 4096;
        text.clear();
        while text.len() < limit {
            let start = text.len();
            let want = CHUNK.min(limit - start);
            text.resize(start + want, 0);
            let n = self.read_at(&mut text[start..], start as u64)?;
            text.truncate(start + n);
            if let Some(nul) = text[start..].iter().position(|&b| b == 0) {
                text.truncate(start + nul);
                return Ok(());
            }
            if n < want {
                break;
            }
        }
        Ok(())
    }

    /// The length of the text at offset 0: the offset of the first NUL, or
    /// `limit` when there is none. Reads page by page with `pread`, keeping
    /// nothing; holes of a sparse segment read as zeros and allocate nothing.
    ///
    /// # Errors
    /// As for [`PosixShm::read_at`].
    ///
    /// # References
    /// [pread(2)](https://man7.org/linux/man-pages/man2/pread.2.html)
    pub fn text_len(&self, limit: usize) -> Result<usize, Errno> {
        let mut chunk = [0u8; 4096];
        let mut at = 0;
        while at < limit {
            let want = chunk.len().min(limit - at);
            let n = self.read_at(&mut chunk[..want], at as u64)?;
            if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
                return Ok(at + nul);
            }
            if n == 0 {
                break;
            }
            at += n;
        }
        Ok(at)
    }

    /// Whether /dev/shm/NAME is still this segment (`own` is its `fstat`):
    /// not unlinked, nor replaced by another one of the same name. `stat`
    /// of /dev/shm/NAME; a failed one means "not linked".
    ///
    /// # References
    /// [stat(2)](https://man7.org/linux/man-pages/man2/stat.2.html)
    pub fn still_linked(&self, own: &FileStat) -> bool {
        match stat(path_of(&self.name).as_str()) {
            Ok(now) => now.st_ino == own.st_ino && now.st_dev == own.st_dev,
            Err(_) => false,
        }
    }
}

impl Remove for PosixShm {
    type Error = Errno;

    /// `shm_unlink` of this segment's name, but only while the name still
    /// leads to this segment: one that replaced it is not ours to remove.
    ///
    /// # Errors
    /// The `fstat` or `shm_unlink` errno (EACCES).
    ///
    /// # References
    /// [shm_unlink(3)](https://man7.org/linux/man-pages/man3/shm_unlink.3.html)
    fn remove(&self) -> Result<(), Errno> {
        let own = self.stat()?;
        if self.still_linked(&own) {
            shm_unlink(self.name.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::Owned;

    #[test]
    fn full_reads_end_early_on_a_shrunk_segment() {
        let name = format!("/eipc-test-{}-unit-shm-read", std::process::id());
        let shm = PosixShm::open(&name, Creation::CreateNew, 0o600).unwrap();
        let shm = Owned::new(shm.handle);
        shm.allocate(10_000).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        shm.write_all_at(&data, 0).unwrap();
        let mut back = vec![0; 12_000];
        assert_eq!(shm.read_full_at(&mut back, 0), Ok(10_000));
        assert_eq!(&back[..10_000], &data[..]);
        // Another process shrinks it: a read just ends there.
        std::fs::OpenOptions::new()
            .write(true)
            .open(path_of(&name))
            .unwrap()
            .set_len(100)
            .unwrap();
        assert_eq!(shm.read_full_at(&mut back, 0), Ok(100));
        assert_eq!(shm.read_full_at(&mut back, 5000), Ok(0));
    }
}
