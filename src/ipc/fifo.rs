//! FIFO (named pipe): `mkfifo`, `open` that never follows a symlink and
//! checks what it opened, `read`, `unlink`. All of it is nix's safe calls.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, lstat};
use nix::unistd::mkfifo;

use super::UmaskCleared;

/// What is at a path, without following a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Missing,
    Fifo,
    /// Something else, named for messages: "a regular file", ...
    Other(&'static str),
}

fn is_fifo(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFIFO
}

/// Whether a file is a regular file (a segment, a snapshot file).
pub fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG
}

/// What a file is, in words for messages: "a regular file", "a directory"...
pub fn file_type(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFIFO => "a FIFO",
        _ => "an unknown kind of file",
    }
}

/// `lstat(path)`: a FIFO, something else, or nothing.
///
/// # Errors
/// The `lstat` errno other than ENOENT (EACCES on the directory, ...).
///
/// # References
/// [lstat(2)](https://man7.org/linux/man-pages/man2/lstat.2.html)
pub fn look(path: &Path) -> Result<Found, Errno> {
    match lstat(path) {
        Ok(st) if is_fifo(&st) => Ok(Found::Fifo),
        Ok(st) => Ok(Found::Other(file_type(&st))),
        Err(Errno::ENOENT) => Ok(Found::Missing),
        Err(e) => Err(e),
    }
}

/// `mkfifo(path, mode)` with the umask cleared; `false` when something is
/// there already (EEXIST: `Fifo::open` then checks what it is).
///
/// # Errors
/// EACCES, ENOENT (no such directory), ENOSPC, EROFS.
///
/// # References
/// [mkfifo(3)](https://man7.org/linux/man-pages/man3/mkfifo.3.html)
pub fn create(path: &Path, mode: u32) -> Result<bool, Errno> {
    let made = {
        let _umask = UmaskCleared::new();
        mkfifo(path, Mode::from_bits_truncate(mode))
    };
    match made {
        Ok(()) => Ok(true),
        Err(Errno::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why a FIFO could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFifoError {
    /// The `open` or `fstat` errno: ELOOP for a symlink, ENXIO for a
    /// write end without a reader, ENOENT, EACCES.
    Os(Errno),
    /// The path led to something else (swapped in after a check).
    NotAFifo(&'static str),
}

impl fmt::Display for OpenFifoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenFifoError::Os(e) => e.fmt(f),
            OpenFifoError::NotAFifo(what) => write!(f, "it is {what}, not a FIFO"),
        }
    }
}

impl std::error::Error for OpenFifoError {}

/// Which end of a FIFO to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Read,
    Write,
    /// Both: the opener is a writer itself, so the read end never sees
    /// EOF when the last other writer leaves.
    ReadWrite,
}

/// An open FIFO, closed in `Drop`, never unlinked. Opened non-blocking.
#[derive(Debug)]
pub struct Fifo {
    fd: OwnedFd,
}

impl Fifo {
    /// `open(path, end | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)`, then `fstat`
    /// of the descriptor: a symlink is refused, and so is anything that
    /// turned out not to be a FIFO (checked on the open descriptor, so a
    /// swap between a check and the open cannot fool us). O_NONBLOCK makes a
    /// write end without a reader fail (ENXIO) instead of hang.
    ///
    /// # Errors
    /// [`OpenFifoError`].
    ///
    /// # References
    /// [open(2)](https://man7.org/linux/man-pages/man2/open.2.html),
    /// [fifo(7)](https://man7.org/linux/man-pages/man7/fifo.7.html)
    pub fn open(path: &Path, end: End) -> Result<Fifo, OpenFifoError> {
        let access = match end {
            End::Read => OFlag::O_RDONLY,
            End::Write => OFlag::O_WRONLY,
            End::ReadWrite => OFlag::O_RDWR,
        };
        let fd = open(
            path,
            access | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(OpenFifoError::Os)?;
        let st = fstat(fd.as_fd()).map_err(OpenFifoError::Os)?;
        if !is_fifo(&st) {
            return Err(OpenFifoError::NotAFifo(file_type(&st)));
        }
        Ok(Fifo { fd })
    }

    /// `fcntl(F_SETFL, 0)`: from now on reads and writes wait, as a full or
    /// empty pipe should make them.
    ///
    /// # Errors
    /// None expected for an open descriptor.
    ///
    /// # References
    /// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    pub fn set_blocking(&self) -> Result<(), Errno> {
        fcntl(self.fd.as_fd(), FcntlArg::F_SETFL(OFlag::empty())).map(|_| ())
    }

    /// `fcntl(F_GETPIPE_SZ)`: the bytes the pipe holds when full.
    ///
    /// # Errors
    /// None expected for an open FIFO.
    ///
    /// # References
    /// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    pub fn capacity(&self) -> Result<usize, Errno> {
        fcntl(self.fd.as_fd(), FcntlArg::F_GETPIPE_SZ).map(|n| n.max(0) as usize)
    }

    /// Whether the FIFO still has a name: `fstat` of the descriptor counts
    /// its links, 0 once the path was removed.
    ///
    /// # Errors
    /// None expected for an open descriptor.
    ///
    /// # References
    /// [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html)
    pub fn linked(&self) -> Result<bool, Errno> {
        Ok(fstat(self.fd.as_fd())?.st_nlink > 0)
    }

    /// The descriptor as a `File`, for `Read`/`Write`.
    pub fn into_file(self) -> File {
        File::from(self.fd)
    }

    /// The descriptor itself.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Fifo {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `unlink(path)` of a FIFO.
///
/// # Errors
/// ENOENT; EACCES on the directory.
///
/// # References
/// [unlink(2)](https://man7.org/linux/man-pages/man2/unlink.2.html)
pub fn remove(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)
}
