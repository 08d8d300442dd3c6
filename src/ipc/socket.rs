//! Datagram sockets: receive one datagram and learn its real length, so a
//! datagram longer than the buffer is seen as such instead of cut silently;
//! a Unix datagram socket bound at a path (the `socket` channel's server),
//! a client connected to it, and the removal of the socket file.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag, lstat, umask};
use nix::unistd::unlink;

use super::fifo::file_type;
use super::{UmaskCleared, cvt};

/// `recv(fd, buf, len, MSG_TRUNC)`: take one datagram into `buf` and
/// return its full length. A datagram longer than `buf` is cut to fit (the
/// rest is lost), and the returned length, larger than `buf.len()`, says
/// so; std's `recv` returns only what was copied.
///
/// # Errors
/// The errno of recv(2): EINTR when a signal came first, EAGAIN on a
/// non-blocking socket with nothing queued, ENOTCONN, EBADF.
///
/// # References
/// [recv(2)](https://man7.org/linux/man-pages/man2/recv.2.html) (MSG_TRUNC
/// for UNIX datagram sockets since Linux 3.4)
pub fn recv_datagram(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes during the
    // call, and `fd` is a descriptor the caller keeps open (borrowed).
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
        )
    };
    cvt(n).map(|n| n as usize)
}

/// Which file a path named when it was looked at: a socket file bound by
/// us is known by its device and inode, so a socket bound again at the
/// same path by someone else is not taken for ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

/// What is at a path, without following a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Missing,
    Socket(FileId),
    /// Something else, named for messages: "a regular file", ...
    Other(&'static str),
}

/// `lstat(path)`: a socket (and which), something else, or nothing.
///
/// # Errors
/// The `lstat` errno other than ENOENT (EACCES on the directory, ...).
///
/// # References
/// [lstat(2)](https://man7.org/linux/man-pages/man2/lstat.2.html)
pub fn look(path: &Path) -> Result<Found, Errno> {
    match lstat(path) {
        Ok(st)
            if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFSOCK =>
        {
            Ok(Found::Socket(FileId {
                dev: st.st_dev,
                ino: st.st_ino,
            }))
        }
        Ok(st) => Ok(Found::Other(file_type(&st))),
        Err(Errno::ENOENT) => Ok(Found::Missing),
        Err(e) => Err(e),
    }
}

/// The longest path a socket address holds: `sun_path` is 108 bytes, with
/// the NUL.
pub const PATH_MAX: usize = 107;

/// ENAMETOOLONG for a path no socket address holds. std refuses it with
/// an error that carries no errno, which would read as EIO.
fn fits(path: &Path) -> Result<(), Errno> {
    if path.as_os_str().len() > PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

fn errno(e: &io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// A datagram socket bound at a path, non-blocking, and the socket file
/// the bind made. Closed in `Drop`, never unlinked: the file stays, stale,
/// until [`remove_if`] removes it (`--clean`, or the next server).
#[derive(Debug)]
pub struct Bound {
    sock: UnixDatagram,
    file: FileId,
}

impl Bound {
    /// `socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC)`, then `bind(path)`
    /// under the umask `!mode`, so the socket file is made with exactly
    /// `mode` (its permission bits say who may connect) and never exists
    /// with more; then `lstat` to learn which file it made. bind(2) never
    /// replaces nor follows what is at the path: EADDRINUSE.
    ///
    /// # Errors
    /// EADDRINUSE when anything is at `path` (a socket, a file, a dangling
    /// symlink); ENOENT (no such directory), EACCES, EROFS, ENAMETOOLONG
    /// (above [`PATH_MAX`] bytes); the `lstat`'s.
    ///
    /// # References
    /// [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html),
    /// [bind(2)](https://man7.org/linux/man-pages/man2/bind.2.html),
    /// [umask(2)](https://man7.org/linux/man-pages/man2/umask.2.html)
    pub fn bind(path: &Path, mode: u32) -> Result<Bound, Errno> {
        fits(path)?;
        let sock = {
            // Restored on drop, as for every other creator here.
            let _umask = UmaskCleared(umask(Mode::from_bits_truncate(!mode & 0o777)));
            UnixDatagram::bind(path).map_err(|e| errno(&e))?
        };
        sock.set_nonblocking(true).map_err(|e| errno(&e))?;
        match look(path)? {
            Found::Socket(file) => Ok(Bound { sock, file }),
            // Swapped away right after our bind: not ours to serve.
            Found::Missing | Found::Other(_) => Err(Errno::ENOENT),
        }
    }

    /// The socket file the bind made.
    pub fn file(&self) -> FileId {
        self.file
    }

    /// [`recv_datagram`] on the socket.
    ///
    /// # Errors
    /// EAGAIN when nothing is queued; EINTR.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        recv_datagram(self.sock.as_fd(), buf)
    }
}

impl AsFd for Bound {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// An unbound datagram socket `connect`ed to `path`, non-blocking: a send
/// with the server's queue full fails with EAGAIN, and poll's POLLOUT
/// waits for room in it (connected sockets only).
///
/// # Errors
/// ECONNREFUSED when no socket is bound there (a stale socket file, or any
/// other file); ENOENT; EPROTOTYPE for a stream socket; EACCES;
/// ENAMETOOLONG above [`PATH_MAX`] bytes.
///
/// # References
/// [connect(2)](https://man7.org/linux/man-pages/man2/connect.2.html),
/// [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn connect(path: &Path) -> Result<UnixDatagram, Errno> {
    fits(path)?;
    let sock = UnixDatagram::unbound().map_err(|e| errno(&e))?;
    sock.connect(path).map_err(|e| errno(&e))?;
    sock.set_nonblocking(true).map_err(|e| errno(&e))?;
    Ok(sock)
}

/// `send` of one datagram on a connected socket.
///
/// # Errors
/// EAGAIN (queue full), EMSGSIZE (above the send buffer), ECONNREFUSED
/// (the server closed), EINTR.
///
/// # References
/// [send(2)](https://man7.org/linux/man-pages/man2/send.2.html)
pub fn send(sock: &UnixDatagram, msg: &[u8]) -> Result<usize, Errno> {
    sock.send(msg).map_err(|e| errno(&e))
}

/// Whether `file` is still what `path` names (`lstat`).
///
/// # Errors
/// The `lstat` errno other than ENOENT.
///
/// # References
/// [lstat(2)](https://man7.org/linux/man-pages/man2/lstat.2.html)
pub fn still_at(path: &Path, file: FileId) -> Result<bool, Errno> {
    Ok(look(path)? == Found::Socket(file))
}

/// `unlink(path)` of the socket file `file` if the path still names it:
/// `false` when it is gone or another file. (Between the look and the
/// unlink the path could change; only who can write the directory can.)
///
/// # Errors
/// EACCES on the directory; the `lstat`'s.
///
/// # References
/// [unlink(2)](https://man7.org/linux/man-pages/man2/unlink.2.html)
pub fn remove_if(path: &Path, file: FileId) -> Result<bool, Errno> {
    if !still_at(path, file)? {
        return Ok(false);
    }
    match unlink(path) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}
