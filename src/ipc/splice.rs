//! `vmsplice`: hand a pipe the caller's own pages instead of a copy.

use std::io::IoSlice;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::fcntl::SpliceFFlags;

/// `vmsplice(fd, [buf], 0)`: append `buf` to the pipe whose write end is
/// `fd` by reference to the pages that hold it, without copying it into the
/// pipe. Returns how many bytes went in (fewer than `buf.len()` when the
/// pipe filled up).
///
/// The pipe reads those pages when its reader reads, which may be long
/// after this call returned: until then the caller must not change the
/// bytes, or the reader gets the changed ones. The kernel does not enforce
/// that; the caller's protocol must (a reply that proves the reader read).
///
/// # Errors
/// The errno of vmsplice(2): EINTR, EAGAIN on a non-blocking pipe that is
/// full, EBADF when `fd` is not a pipe's write end, ENOMEM.
///
/// # References
/// [vmsplice(2)](https://man7.org/linux/man-pages/man2/vmsplice.2.html)
pub fn vmsplice(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    nix::fcntl::vmsplice(fd, &[IoSlice::new(buf)], SpliceFFlags::empty())
}
