//! `SemFile`: the file behind a glibc named semaphore, `/dev/shm/sem.NAME`,
//! read and checked with `fstat` and `pread`, never through a mapping.
//!
//! glibc's `sem_open` maps that file and its `sem_*` calls trust what they
//! find there: an empty file kills the caller with SIGBUS at the first access,
//! and a garbage `private` word makes the futex call fail, which glibc answers
//! with abort(). So every user of a semaphore file (`ls`, `--stat`, the
//! server's polling, and the clients before they map it) checks it here first.
//!
//! The layout is glibc's `struct new_sem` on 64-bit targets (`__HAVE_64B_ATOMICS`):
//! a `uint64_t data` whose low 32 bits are the value and high 32 bits the number
//! of waiters, then `int private`, the futex flag `sem_open` sets to
//! `FUTEX_SHARED` (128). Other C libraries, or 32-bit glibc, lay it out otherwise.

use std::fmt;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// `sizeof(sem_t)`: glibc's semaphore file is one sem_t.
pub const SEM_T_SIZE: usize = size_of::<libc::sem_t>();

/// The `private` word `sem_open` writes: glibc's FUTEX_SHARED, which is
/// FUTEX_PRIVATE_FLAG, because the futex op is `(op | FUTEX_PRIVATE_FLAG) ^ private`.
/// Any other value but 0 turns that op into one the kernel refuses, and glibc
/// aborts; 0 makes process-private futexes on shared memory, so a waiter in
/// one process is never woken by a post in another.
pub const SEM_OPEN_PRIVATE: u32 = 128;

/// `SEM_VALUE_MAX`: a larger value cannot have come from `sem_post`.
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// What a valid semaphore file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemWord {
    pub value: u32,
    pub waiters: u32,
}

/// Why a file is not a semaphore glibc may map and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A directory, FIFO, device...: not something sem_open makes.
    NotAFile,
    /// Shorter than a sem_t (empty, truncated, or never a semaphore): a
    /// mapped access past its end is SIGBUS.
    Short(u64),
    /// A `private` word that makes glibc's futex calls fail (abort).
    Private(u32),
    /// A value above SEM_VALUE_MAX.
    Value(u32),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NotAFile => f.write_str("not a regular file"),
            Invalid::Short(len) => write!(f, "{len} bytes, a sem_t needs {SEM_T_SIZE}"),
            Invalid::Private(p) => write!(
                f,
                "its private word is {p:#x}, sem_open semaphores have {SEM_OPEN_PRIVATE:#x}"
            ),
            Invalid::Value(v) => {
                write!(f, "its value is {v}, above SEM_VALUE_MAX ({SEM_VALUE_MAX})")
            }
        }
    }
}

/// The file of semaphore `name` (with its leading '/'): glibc keeps it in
/// /dev/shm under a `sem.` prefix.
pub fn path_of(name: &str) -> String {
    format!("/dev/shm/sem.{}", name.strip_prefix('/').unwrap_or(name))
}

/// An open semaphore file, closed in `Drop`; never mapped here.
#[derive(Debug)]
pub struct SemFile {
    file: File,
    path: String,
}

impl SemFile {
    /// `open(path, O_RDONLY or O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)`:
    /// never creates; O_NOFOLLOW as sem_open itself opens, O_NONBLOCK so a
    /// FIFO planted there cannot hang the open.
    ///
    /// # Errors
    /// The `open` errno: ENOENT (no such semaphore), EACCES (mode), ELOOP
    /// (a symlink).
    ///
    /// # References
    /// [open(2)](https://man7.org/linux/man-pages/man2/open.2.html)
    pub fn open(path: &str, write: bool) -> io::Result<SemFile> {
        let file = File::options()
            .read(true)
            .write(write)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(Path::new(path))?;
        Ok(SemFile {
            file,
            path: path.to_string(),
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// `fstat` of the open file: owner, mode, size.
    ///
    /// # Errors
    /// The `fstat` errno (EIO).
    ///
    /// # References
    /// [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html)
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.file.metadata()
    }

    /// Check the file: `fstat` (a regular file), then `pread` of the first
    /// sem_t, whose length, private word and value must be what glibc relies
    /// on. Reads, never maps, so a file shrinking meanwhile is a short read.
    ///
    /// # Errors
    /// The `fstat` or `pread` errno (EIO, ...); a file that is not a valid
    /// semaphore is `Ok(Err(Invalid))`.
    ///
    /// # References
    /// [pread(2)](https://man7.org/linux/man-pages/man2/pread.2.html)
    pub fn check(&self) -> io::Result<Result<SemWord, Invalid>> {
        self.check_as(&self.file.metadata()?)
    }

    /// [`check`](Self::check) with `meta`, this open file's own `fstat`
    /// ([`metadata`](Self::metadata)) taken by the caller, so `ls` needs
    /// one `fstat` per semaphore, not two.
    ///
    /// # Errors
    /// The `pread` errno; a file that is not a valid semaphore is
    /// `Ok(Err(Invalid))`.
    ///
    /// # References
    /// [pread(2)](https://man7.org/linux/man-pages/man2/pread.2.html)
    pub fn check_as(&self, meta: &Metadata) -> io::Result<Result<SemWord, Invalid>> {
        if !meta.file_type().is_file() {
            return Ok(Err(Invalid::NotAFile));
        }
        let mut buf = [0u8; SEM_T_SIZE];
        let mut len = 0;
        while len < buf.len() {
            match self.file.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if len < SEM_T_SIZE {
            return Ok(Err(Invalid::Short(len as u64)));
        }
        Ok(parse(&buf))
    }

    /// Whether the path still leads to this file (not unlinked or replaced):
    /// `fstat` of ours against `lstat` of the path.
    ///
    /// # Errors
    /// The `fstat` errno of our own file.
    ///
    /// # References
    /// [lstat(2)](https://man7.org/linux/man-pages/man2/lstat.2.html)
    pub fn still_linked(&self) -> io::Result<bool> {
        let own = self.file.metadata()?;
        Ok(std::fs::symlink_metadata(&self.path)
            .is_ok_and(|now| now.ino() == own.ino() && now.dev() == own.dev()))
    }
}

impl AsFd for SemFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// `struct new_sem` from the bytes of a sem_t.
fn parse(buf: &[u8; SEM_T_SIZE]) -> Result<SemWord, Invalid> {
    let mut data = [0u8; 8];
    data.copy_from_slice(&buf[..8]);
    let data = u64::from_ne_bytes(data);
    let mut private = [0u8; 4];
    private.copy_from_slice(&buf[8..12]);
    let private = u32::from_ne_bytes(private);
    if private != SEM_OPEN_PRIVATE {
        return Err(Invalid::Private(private));
    }
    let word = SemWord {
        value: (data & 0xffff_ffff) as u32,
        waiters: (data >> 32) as u32,
    };
    if word.value > SEM_VALUE_MAX {
        return Err(Invalid::Value(word.value));
    }
    Ok(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sem(value: u32, waiters: u32, private: u32) -> [u8; SEM_T_SIZE] {
        let mut buf = [0u8; SEM_T_SIZE];
        let data = u64::from(value) | (u64::from(waiters) << 32);
        buf[..8].copy_from_slice(&data.to_ne_bytes());
        buf[8..12].copy_from_slice(&private.to_ne_bytes());
        buf
    }

    #[test]
    fn glibc_layout_is_read_and_checked() {
        assert_eq!(SEM_T_SIZE, 32);
        assert_eq!(
            parse(&sem(3, 1, 128)),
            Ok(SemWord {
                value: 3,
                waiters: 1
            })
        );
        assert_eq!(
            parse(&sem(0, 0, 0x4141_4141)),
            Err(Invalid::Private(0x4141_4141))
        );
        assert_eq!(parse(&sem(0, 0, 0)), Err(Invalid::Private(0)));
        assert_eq!(parse(&sem(u32::MAX, 0, 128)), Err(Invalid::Value(u32::MAX)));
        assert_eq!(Invalid::Short(0).to_string(), "0 bytes, a sem_t needs 32");
        assert_eq!(
            Invalid::Private(0x4141_4141).to_string(),
            "its private word is 0x41414141, sem_open semaphores have 0x80"
        );
    }
}
