//! Datagram sockets: receive one datagram and learn its real length, so a
//! datagram longer than the buffer is seen as such instead of cut silently.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use super::cvt;

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
