//! POSIX message queue over posixmq: `mq_open`, `mq_send`, `mq_receive`,
//! `mq_getattr`, `mq_unlink`.
//!
//! posixmq already is the safe handle (it closes in `Drop` and never
//! unlinks); `PosixQueue` adds the open policy, the name (for removal) and
//! the descriptor for `poll`. Errors are posixmq's `io::Error`s.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd};

use nix::errno::Errno;
use nix::sys::stat::{FileStat, fstat};
use posixmq::{OpenOptions, PosixMq};

pub use posixmq::Attributes;

use super::{Creation, OpenError, Opened, Remove, UmaskCleared};

/// Which end of the queue a handle uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

/// How a queue is opened: its end, whether calls block, and what a queue
/// this call creates gets.
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    pub access: Access,
    /// `O_NONBLOCK`: send and receive fail with EAGAIN instead of waiting.
    pub nonblocking: bool,
    /// Permission bits of a new queue (the umask is cleared for it).
    pub mode: u32,
    /// `mq_maxmsg` and `mq_msgsize` of a new queue.
    pub capacity: usize,
    pub msg_size: usize,
}

/// An open queue, closed (`mq_close`) in `Drop`, never unlinked.
#[derive(Debug)]
pub struct PosixQueue {
    mq: PosixMq,
    name: String,
}

impl PosixQueue {
    /// `mq_open(name, flags, mode, attr)` by `creation`: with
    /// `O_CREAT|O_EXCL`, `options.mode` and the capacity and message size of
    /// `options` to create, without to open an existing queue as it is.
    ///
    /// # Errors
    /// AlreadyExists (EEXIST, `CreateNew`) or NotFound (ENOENT,
    /// `OpenOnly`); PermissionDenied (EACCES); EINVAL for attributes above
    /// msg_max or msgsize_max; EMFILE when RLIMIT_MSGQUEUE or the open-file
    /// limit is reached; ENOSPC at queues_max.
    ///
    /// # References
    /// [mq_open(3)](https://man7.org/linux/man-pages/man3/mq_open.3.html)
    pub fn open(
        name: &str,
        creation: Creation,
        options: &QueueOptions,
    ) -> Result<Opened<PosixQueue>, OpenError<io::Error>> {
        let base = || {
            let mut o = match options.access {
                Access::Read => OpenOptions::readonly(),
                Access::Write => OpenOptions::writeonly(),
                Access::ReadWrite => OpenOptions::readwrite(),
            };
            if options.nonblocking {
                o.nonblocking();
            }
            o
        };
        let handle = |mq| PosixQueue {
            mq,
            name: name.to_string(),
        };
        creation.apply(
            || {
                let mut o = base();
                o.create_new()
                    .mode(options.mode)
                    .capacity(options.capacity)
                    .max_msg_len(options.msg_size);
                let _umask = UmaskCleared::new();
                o.open(name).map(handle)
            },
            || base().existing().open(name).map(handle),
        )
    }

    /// [`PosixQueue::open`] of an existing queue, non-blocking, as it is.
    ///
    /// # Errors
    /// NotFound (ENOENT); PermissionDenied (EACCES) for an end the mode
    /// does not allow.
    ///
    /// # References
    /// [mq_open(3)](https://man7.org/linux/man-pages/man3/mq_open.3.html)
    pub fn open_existing(name: &str, access: Access) -> io::Result<PosixQueue> {
        let options = QueueOptions {
            access,
            nonblocking: true,
            mode: 0,
            capacity: 0,
            msg_size: 0,
        };
        PosixQueue::open(name, Creation::OpenOnly, &options)
            .map(|opened| opened.handle)
            .map_err(|e| e.into_inner(|| io::ErrorKind::NotFound.into()))
    }

    /// `mq_unlink(name)`: the name goes; open descriptors keep the queue
    /// until closed.
    ///
    /// # Errors
    /// NotFound (ENOENT) when there is no such queue; PermissionDenied.
    ///
    /// # References
    /// [mq_unlink(3)](https://man7.org/linux/man-pages/man3/mq_unlink.3.html)
    pub fn remove_name(name: &str) -> io::Result<()> {
        posixmq::remove_queue(name)
    }

    /// `mq_send` of `msg` with `priority`.
    ///
    /// # Errors
    /// WouldBlock (EAGAIN) on a full non-blocking queue; Interrupted
    /// (EINTR); EMSGSIZE above the queue's message size.
    ///
    /// # References
    /// [mq_send(3)](https://man7.org/linux/man-pages/man3/mq_send.3.html)
    #[inline]
    pub fn send(&self, priority: u32, msg: &[u8]) -> io::Result<()> {
        self.mq.send(priority, msg)
    }

    /// `mq_receive` into `buf` (at least the queue's message size): the
    /// message's priority and length.
    ///
    /// # Errors
    /// WouldBlock (EAGAIN) on an empty non-blocking queue; Interrupted
    /// (EINTR); EMSGSIZE when `buf` is too small.
    ///
    /// # References
    /// [mq_receive(3)](https://man7.org/linux/man-pages/man3/mq_receive.3.html)
    #[inline]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(u32, usize)> {
        self.mq.recv(buf)
    }

    /// `mq_getattr`: capacity, message size, messages queued.
    ///
    /// # Errors
    /// None expected for an open queue.
    ///
    /// # References
    /// [mq_getattr(3)](https://man7.org/linux/man-pages/man3/mq_getattr.3.html)
    pub fn attributes(&self) -> io::Result<Attributes> {
        self.mq.attributes()
    }

    /// `mq_setattr` of O_NONBLOCK.
    ///
    /// # Errors
    /// None expected for an open queue.
    ///
    /// # References
    /// [mq_setattr(3)](https://man7.org/linux/man-pages/man3/mq_getattr.3.html)
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.mq.set_nonblocking(nonblocking)
    }

    /// The queue's descriptor, to `poll` it (POLLIN: a message waits,
    /// POLLOUT: there is room).
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: on Linux an mqd_t is a file descriptor, owned by `mq`,
        // which outlives the borrow.
        unsafe { BorrowedFd::borrow_raw(self.mq.as_raw_fd()) }
    }

    /// `fstat` of the queue: owner and mode.
    ///
    /// # Errors
    /// The `fstat` errno.
    ///
    /// # References
    /// [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html)
    pub fn stat(&self) -> Result<FileStat, Errno> {
        fstat(self.fd())
    }
}

/// `mq_getattr` of a queue's file in a mounted mqueue filesystem, opened
/// with `open(2)`: on Linux that descriptor is a queue descriptor, so `ls`
/// reads a queue's status line, owner and attributes through one open
/// instead of an `mq_open` besides. The descriptor is closed.
///
/// # Errors
/// EBADF when `file` is not on an mqueue filesystem.
///
/// # References
/// [mq_getattr(3)](https://man7.org/linux/man-pages/man3/mq_getattr.3.html),
/// [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
/// ("Linux implementation of message queue descriptors")
pub fn file_attributes(file: File) -> io::Result<Attributes> {
    // SAFETY: the descriptor is `file`'s own, handed over whole: PosixMq
    // closes it once in Drop (mq_close is close on Linux), and mq_getattr
    // on a descriptor of any other file only fails with EBADF.
    let mq = unsafe { PosixMq::from_raw_fd(file.into_raw_fd()) };
    mq.attributes()
}

impl Remove for PosixQueue {
    type Error = io::Error;

    /// `mq_unlink` of this queue's name ([`PosixQueue::remove_name`]).
    ///
    /// # Errors
    /// NotFound when it is gone; PermissionDenied.
    fn remove(&self) -> io::Result<()> {
        PosixQueue::remove_name(&self.name)
    }
}
