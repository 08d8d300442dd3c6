//! Saving and restoring a queue's messages.
//!
//! [`save_queue`] is the algorithm, over a small [`QueueSource`] trait so it
//! is tested with an in-memory queue whose file fails half-way:
//! 1. take the messages without blocking, at most as many as were queued
//!    when the save began (a live sender cannot keep it draining forever),
//!    each written to the temporary file before the next is taken, so a
//!    save killed midway leaves them there, not only in its memory;
//! 2. then commit (fsync, link into place, fsync the directory): only then
//!    is the save a success;
//! 3. on any failure, taking or writing, put every taken message back in
//!    its original order, with its priority or type, and say whether all
//!    of them went back.
//!
//! Putting back appends at the tail: messages other processes sent while
//! the save ran end up before the returned ones (of the same priority, for
//! POSIX). Within the saved messages, the order is kept.
//!
//! [`PosixSource`] and [`SysvSource`] are the real queues; [`peek_all`]
//! is the `--keep` snapshot of a System V queue (MSG_COPY), and
//! [`restore`] sends a file's messages in order.

use std::fmt;
use std::io::{self, BufRead};

use nix::errno::Errno;

use super::file::Commit;
use super::{Attrs, Header, Message, Origin, Reader, SnapshotError, Tag, Writer};
use crate::ipc::posix_mq::{Access, PosixQueue, QueueOptions};
use crate::ipc::sysv_msq::{MsgBuf, SysvQueue};
use crate::ipc::{Creation, Key, OpenError, Opened, Owned};

/// A queue the savers take from and put into, without ever waiting.
pub trait QueueSource {
    /// Take the next message (the oldest; POSIX: of the highest priority);
    /// `None` when the queue is empty.
    ///
    /// # Errors
    /// The receive error (the queue was removed, no permission).
    fn take(&mut self) -> io::Result<Option<Message>>;

    /// Send `msg` to the tail of the queue, with its priority or type:
    /// to put a taken message back, or to restore one.
    ///
    /// # Errors
    /// The send error: WouldBlock on a full queue, EMSGSIZE, EIDRM...
    fn put(&mut self, msg: &Message) -> io::Result<()>;
}

/// What a save or restore moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub messages: u64,
    pub bytes: u64,
}

impl Saved {
    fn of(msgs: &[Message]) -> Saved {
        Saved {
            messages: msgs.len() as u64,
            bytes: msgs.iter().map(|m| m.bytes.len() as u64).sum(),
        }
    }
}

/// A save that failed, and what became of the messages it had taken.
#[derive(Debug)]
pub struct SaveError {
    /// Why the save failed.
    pub error: io::Error,
    /// Messages taken from the queue before it failed.
    pub taken: u64,
    /// Messages that could not be put back, in their order: empty when
    /// nothing was lost. The caller must show or keep them somewhere.
    pub stranded: Vec<Message>,
    /// Why the first of `stranded` could not be put back.
    pub put_back_error: Option<io::Error>,
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = crate::error::io_error_text;
        f.write_str(&text(&self.error))?;
        match (&self.put_back_error, self.taken) {
            (None, 0) => Ok(()),
            (None, 1) => f.write_str(" (the message taken was put back)"),
            (None, n) => write!(f, " (the {n} messages taken were put back, in order)"),
            (Some(e), 1) => write!(f, " (the message taken could not be put back: {})", text(e)),
            (Some(e), n) => write!(
                f,
                " ({} of the {n} messages taken could not be put back: {})",
                self.stranded.len(),
                text(e)
            ),
        }
    }
}

// No source: Display already writes the error, as every OS error is
// written (`No space left on device (ENOSPC)`), once.
impl std::error::Error for SaveError {}

/// Drain `source` (at most `limit` messages), write them under `header`
/// to `out` and commit; on failure put them back. See the module doc.
///
/// Each message reaches the file (a `write`, so the kernel has it) before
/// the next is taken: a save killed midway (`kill -9`) leaves every message
/// it took but the one in flight in `out`'s temporary file, never only in
/// this process's memory. The header counts `limit` messages; when fewer
/// were there (another reader took some), the file is written again with
/// the right count before the commit.
///
/// `stop` is asked before each take: once it says yes (Ctrl-C), the save
/// takes no more and commits what it took, under their count, as when
/// fewer were there.
///
/// # Errors
/// [`SaveError`]: the take, write or commit error, and which messages (if
/// any) could not be put back.
pub fn save_queue<S: QueueSource, W: Commit>(
    source: &mut S,
    mut header: Header,
    out: W,
    limit: u64,
    stop: &dyn Fn() -> bool,
) -> Result<Saved, SaveError> {
    header.messages = Some(limit);
    let mut taken = Vec::new();
    let result = Writer::new(out, &header).and_then(|mut w| {
        take_all(source, limit, stop, &mut w, &mut taken)?;
        let mut out = w.into_inner();
        if taken.len() as u64 != limit {
            out.restart()?;
            return write(header, &taken, out);
        }
        out.commit()?;
        Ok(Saved::of(&taken))
    });
    result.map_err(|error| put_back_all(source, taken, error))
}

/// Take up to `limit` messages into `taken`, each written and flushed to
/// `w` before the next is taken, until `stop` says so. After a failed
/// write the rest are still taken, unwritten: put back behind them, the
/// messages left in the queue would change the order.
fn take_all<S: QueueSource, W: Commit>(
    source: &mut S,
    limit: u64,
    stop: &dyn Fn() -> bool,
    w: &mut Writer<W>,
    taken: &mut Vec<Message>,
) -> io::Result<()> {
    while (taken.len() as u64) < limit && !stop() {
        let Some(msg) = source.take()? else { break };
        let written = w.message(&msg).and_then(|()| w.flush());
        taken.push(msg);
        if let Err(e) = written {
            while (taken.len() as u64) < limit {
                match source.take() {
                    Ok(Some(msg)) => taken.push(msg),
                    _ => break,
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Write `msgs` under `header` (its message count set here) and commit:
/// also the `--keep` save, of copies that never left the queue.
///
/// # Errors
/// The write or commit error; nothing is then visible under the target.
pub fn write<W: Commit>(mut header: Header, msgs: &[Message], out: W) -> io::Result<Saved> {
    header.messages = Some(msgs.len() as u64);
    let mut w = Writer::new(out, &header)?;
    for msg in msgs {
        w.message(msg)?;
    }
    w.into_inner().commit()?;
    Ok(Saved::of(msgs))
}

/// Put `taken` back in order; stop at the first failure, since sending the
/// later ones would change the order.
fn put_back_all<S: QueueSource>(
    source: &mut S,
    taken: Vec<Message>,
    error: io::Error,
) -> SaveError {
    let count = taken.len() as u64;
    let mut rest = taken.into_iter();
    let mut put_back_error = None;
    let mut stranded = Vec::new();
    while let Some(msg) = rest.next() {
        if let Err(e) = source.put(&msg) {
            put_back_error = Some(e);
            stranded.push(msg);
            stranded.extend(rest);
            break;
        }
    }
    SaveError {
        error,
        taken: count,
        stranded,
        put_back_error,
    }
}

/// A restore that stopped: how many messages went in before the error.
#[derive(Debug)]
pub struct RestoreError {
    pub sent: u64,
    pub error: SnapshotOrIo,
}

/// The file was bad, or the queue refused a message.
#[derive(Debug)]
pub enum SnapshotOrIo {
    Snapshot(SnapshotError),
    Io(io::Error),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            SnapshotOrIo::Snapshot(e) => write!(f, "{e}")?,
            SnapshotOrIo::Io(e) => f.write_str(&crate::error::io_error_text(e))?,
        }
        match self.sent {
            0 => Ok(()),
            1 => f.write_str(" (after 1 message was restored)"),
            n => write!(f, " (after {n} messages were restored)"),
        }
    }
}

impl std::error::Error for RestoreError {}

/// Send the messages of `reader` to `target` in the file's order. Read the
/// file once with [`Reader::check_to_end`] before, so that a bad file
/// changes nothing; this call still checks every line.
///
/// # Errors
/// [`RestoreError`]: the file's or the queue's error, and how many went in.
pub fn restore<S: QueueSource, R: BufRead>(
    target: &mut S,
    reader: &mut Reader<R>,
) -> Result<Saved, RestoreError> {
    let mut done = Saved {
        messages: 0,
        bytes: 0,
    };
    let fail = |sent, error| RestoreError { sent, error };
    while let Some(msg) = reader
        .message()
        .map_err(|e| fail(done.messages, SnapshotOrIo::Snapshot(e)))?
    {
        target
            .put(&msg)
            .map_err(|e| fail(done.messages, SnapshotOrIo::Io(e)))?;
        done.messages += 1;
        done.bytes += msg.bytes.len() as u64;
    }
    Ok(done)
}

/// A POSIX queue as a source: non-blocking receives and sends.
pub struct PosixSource<'q> {
    queue: &'q PosixQueue,
    buf: Vec<u8>,
}

impl<'q> PosixSource<'q> {
    /// Makes the queue's descriptor non-blocking (`mq_setattr`), and a
    /// buffer of its message size (`mq_getattr`).
    ///
    /// # Errors
    /// The `mq_getattr` or `mq_setattr` error.
    pub fn new(queue: &'q PosixQueue) -> io::Result<PosixSource<'q>> {
        queue.set_nonblocking(true)?;
        let size = queue.attributes()?.max_msg_len;
        Ok(PosixSource {
            queue,
            buf: vec![0; size],
        })
    }
}

impl QueueSource for PosixSource<'_> {
    fn take(&mut self) -> io::Result<Option<Message>> {
        match self.queue.recv(&mut self.buf) {
            Ok((priority, n)) => Ok(Some(Message {
                tag: Tag::Priority(priority),
                bytes: self.buf[..n].to_vec(),
            })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&mut self, msg: &Message) -> io::Result<()> {
        let Tag::Priority(priority) = msg.tag else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a System V message has no POSIX priority",
            ));
        };
        self.queue.send(priority, &msg.bytes)
    }
}

/// A System V queue as a source: msgrcv of any type in queue order and
/// msgsnd, both with IPC_NOWAIT.
pub struct SysvSource {
    queue: SysvQueue,
    buf: MsgBuf,
}

/// The buffer a System V message is first read into; a larger one grows it.
const FIRST_BUF: usize = 8192;

/// Past this, a growing buffer gives up: far above any msgmax.
const MAX_BUF: usize = 1 << 30;

impl SysvSource {
    pub fn new(queue: SysvQueue) -> SysvSource {
        SysvSource {
            queue,
            buf: MsgBuf::with_capacity(FIRST_BUF),
        }
    }

    /// Double the buffer after E2BIG; false when it cannot grow.
    fn grow(buf: &mut MsgBuf) -> bool {
        if buf.capacity() >= MAX_BUF {
            return false;
        }
        *buf = MsgBuf::with_capacity(buf.capacity() * 2);
        true
    }
}

impl QueueSource for SysvSource {
    fn take(&mut self) -> io::Result<Option<Message>> {
        loop {
            match self.queue.recv(&mut self.buf, 0, false) {
                Ok((mtype, n)) => {
                    return Ok(Some(Message {
                        tag: Tag::Type(mtype),
                        bytes: self.buf.text(n).to_vec(),
                    }));
                }
                Err(Errno::ENOMSG) => return Ok(None),
                Err(Errno::EINTR) => {}
                Err(Errno::E2BIG) if Self::grow(&mut self.buf) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn put(&mut self, msg: &Message) -> io::Result<()> {
        let Tag::Type(mtype) = msg.tag else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a POSIX message has no System V type",
            ));
        };
        let mut buf = MsgBuf::with_capacity(msg.bytes.len());
        buf.fill(mtype, &msg.bytes);
        loop {
            match self.queue.send(&buf, msg.bytes.len(), true) {
                Err(Errno::EINTR) => {}
                done => return done.map_err(io::Error::from),
            }
        }
    }
}

/// Tries of [`peek_all`] before it gives up on a busy queue.
const PEEK_TRIES: u32 = 3;

/// Copies of all messages of a System V queue, in order, leaving the queue
/// as it is (MSG_COPY by index). Another process receiving meanwhile
/// shifts the indexes, so the walk is retried while the queue's stat
/// (count, last pids and times) changed under it.
///
/// # Errors
/// ENOSYS without MSG_COPY (a kernel without CONFIG_CHECKPOINT_RESTORE);
/// EAGAIN when the queue changed during every try; EACCES, EIDRM.
pub fn peek_all(queue: SysvQueue) -> Result<Vec<Message>, Errno> {
    let mark = |q: SysvQueue| {
        q.stat()
            .map(|s| (s.qnum, s.lspid, s.lrpid, s.stime, s.rtime))
    };
    let mut buf = MsgBuf::with_capacity(FIRST_BUF);
    for _ in 0..PEEK_TRIES {
        let before = mark(queue)?;
        let mut msgs = Vec::new();
        loop {
            match queue.peek(msgs.len(), &mut buf) {
                Ok((mtype, n)) => msgs.push(Message {
                    tag: Tag::Type(mtype),
                    bytes: buf.text(n).to_vec(),
                }),
                Err(Errno::ENOMSG) => break,
                Err(Errno::E2BIG) if SysvSource::grow(&mut buf) => {}
                Err(e) => return Err(e),
            }
        }
        if mark(queue)? == before && msgs.len() as u64 == before.0 {
            return Ok(msgs);
        }
    }
    Err(Errno::EAGAIN)
}

/// The header of a POSIX queue's snapshot (`mq_getattr`, `fstat`), and
/// the number of messages queued now: the save's limit.
///
/// # Errors
/// The `mq_getattr` or `fstat` error.
pub fn posix_header(name: &str, queue: &PosixQueue) -> io::Result<(Header, u64)> {
    let attrs = queue.attributes()?;
    let st = queue.stat()?;
    let header = Header::new(
        Origin::Name(name.to_string()),
        Attrs::PosixMsq {
            maxmsg: attrs.capacity as u64,
            msgsize: attrs.max_msg_len as u64,
        },
        st.st_mode & 0o7777,
        st.st_uid,
        st.st_gid,
    );
    Ok((header, attrs.current_messages as u64))
}

/// The header of a System V queue's snapshot (IPC_STAT), and the number
/// of messages queued now.
///
/// # Errors
/// The IPC_STAT errno (EACCES, EIDRM).
pub fn sysv_header(queue: SysvQueue) -> Result<(Header, u64), Errno> {
    let st = queue.stat()?;
    let header = Header::new(
        Origin::Key(st.perm.key),
        Attrs::SysvMsq { qbytes: st.qbytes },
        u32::from(st.perm.mode) & 0o777,
        st.perm.uid,
        st.perm.gid,
    );
    Ok((header, st.qnum))
}

/// The POSIX queue `name` to restore `header` into: opened read-write and
/// non-blocking, or created with the header's maxmsg, msgsize and mode
/// when missing.
///
/// # Errors
/// The `mq_open` error (EINVAL for attributes above msg_max or
/// msgsize_max, EMFILE at RLIMIT_MSGQUEUE); InvalidInput for a header
/// that is not a POSIX queue's.
pub fn open_posix_for_restore(
    name: &str,
    header: &Header,
) -> Result<Opened<PosixQueue>, OpenError<io::Error>> {
    let Some(Attrs::PosixMsq { maxmsg, msgsize }) = header.attrs() else {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "not a POSIX queue's snapshot");
        return Err(OpenError::Open(e));
    };
    let too_big = || OpenError::Create(io::Error::from(Errno::EINVAL));
    let options = QueueOptions {
        access: Access::ReadWrite,
        nonblocking: true,
        mode: header.mode,
        capacity: usize::try_from(maxmsg).map_err(|_| too_big())?,
        msg_size: usize::try_from(msgsize).map_err(|_| too_big())?,
    };
    PosixQueue::open(name, Creation::OpenOrCreate, &options)
}

/// The System V queue of `key` to restore `header` into: opened, or
/// created with the header's mode and then given its qbytes (IPC_SET). A
/// queue this call created is removed again when setting qbytes fails.
///
/// # Errors
/// The `msgget` or IPC_SET errno (EPERM for qbytes above msgmnb without
/// CAP_SYS_RESOURCE); EINVAL for a header that is not a System V queue's.
pub fn open_sysv_for_restore(key: Key, header: &Header) -> Result<Opened<SysvQueue>, Errno> {
    let Some(Attrs::SysvMsq { qbytes }) = header.attrs() else {
        return Err(Errno::EINVAL);
    };
    let opened = SysvQueue::open(key, Creation::OpenOrCreate, header.mode)?;
    if !opened.created {
        return Ok(opened);
    }
    let made = Owned::new(opened.handle);
    if made.stat()?.qbytes != qbytes {
        made.set_qbytes(qbytes)?;
    }
    Ok(Opened {
        handle: made.release(),
        created: true,
    })
}

#[cfg(test)]
mod tests;
