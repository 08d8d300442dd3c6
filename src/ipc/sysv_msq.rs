//! System V message queue: `msgget`, `msgsnd`, `msgrcv`, `msgctl`.

use nix::errno::Errno;

use crate::object::Kind;

use super::sysv::{Perm, Sysv, SysvKind, get_by};
use super::{Creation, Id, Key, OpenError, Opened, cvt};

/// `MSG_COPY` (linux/msg.h): msgrcv copies the message at an index and
/// leaves it queued. Not exported by the libc crate.
const MSG_COPY: libc::c_int = 0o40000;

/// The System V message queue kind.
#[derive(Debug, Clone, Copy)]
pub struct Msq;

/// A System V message queue, by id.
pub type SysvQueue = Sysv<Msq>;

/// A queue's `msqid_ds`, as plain values.
#[derive(Debug, Clone, Copy)]
pub struct QueueStat {
    pub perm: Perm,
    /// Messages queued (`msg_qnum`).
    pub qnum: u64,
    /// The queue's byte limit (`msg_qbytes`).
    pub qbytes: u64,
    /// Bytes queued (`__msg_cbytes`).
    pub cbytes: u64,
    /// Last sender and receiver.
    pub lspid: i32,
    pub lrpid: i32,
    /// Last send, receive and change; 0 for never.
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
}

/// A message buffer laid out as `struct msgbuf { long mtype; char mtext[]; }`.
/// Backed by `c_long`s so that `mtype` is properly aligned.
pub struct MsgBuf {
    words: Vec<libc::c_long>,
    cap: usize,
}

const LONG: usize = size_of::<libc::c_long>();

impl MsgBuf {
    /// Room for a message of `cap` bytes.
    pub fn with_capacity(cap: usize) -> MsgBuf {
        MsgBuf {
            words: vec![0; 1 + cap.div_ceil(LONG)],
            cap,
        }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    fn mtext_mut(&mut self) -> &mut [u8] {
        let cap = self.cap;
        // SAFETY: the words after the first hold at least `cap` bytes; u8
        // has no alignment or validity requirement, and the slice borrows
        // `self` mutably, so nothing else aliases it.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().add(1).cast::<u8>(), cap) }
    }

    fn mtext(&self) -> &[u8] {
        // SAFETY: as in mtext_mut, read-only.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().add(1).cast::<u8>(), self.cap) }
    }

    /// Put `mtype` and `text` in; `text` must fit (`len <= capacity`).
    #[inline]
    pub fn fill(&mut self, mtype: i64, text: &[u8]) {
        self.words[0] = mtype as libc::c_long;
        self.mtext_mut()[..text.len()].copy_from_slice(text);
    }

    /// The first `len` bytes of the text (at most the capacity).
    #[inline]
    pub fn text(&self, len: usize) -> &[u8] {
        &self.mtext()[..len.min(self.cap)]
    }
}

impl SysvQueue {
    /// `msgget(key, flags)` by `creation`: `IPC_CREAT|IPC_EXCL|mode` to
    /// create, `0` to open.
    ///
    /// # Errors
    /// EEXIST (`CreateNew`) or ENOENT (`OpenOnly`); EACCES without
    /// permission; ENOSPC when msgmni queues exist already.
    ///
    /// # References
    /// [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html)
    pub fn open(
        key: Key,
        creation: Creation,
        mode: u32,
    ) -> Result<Opened<SysvQueue>, OpenError<Errno>> {
        get_by(creation, mode, |flags| {
            msgget(key, flags).map(Sysv::with_id)
        })
    }

    /// `msgget(IPC_PRIVATE, IPC_CREAT|mode)`: a new queue no one can find by
    /// key, only by the id (inherited over fork).
    ///
    /// # Errors
    /// ENOSPC when msgmni queues exist already.
    ///
    /// # References
    /// [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html)
    pub fn private(mode: u32) -> Result<SysvQueue, Errno> {
        let flags = libc::IPC_CREAT | (mode & 0o777) as libc::c_int;
        msgget(libc::IPC_PRIVATE, flags).map(Sysv::with_id)
    }

    /// `msgsnd` of the first `len` bytes of `buf`'s text, with its mtype.
    ///
    /// # Errors
    /// EAGAIN with `nowait` on a full queue; EINTR when a signal handler
    /// ran (System V calls are never restarted, signal(7)): the caller's
    /// to retry; EIDRM when the queue was removed while waiting; EINVAL
    /// for a message above msgmax or a removed queue.
    ///
    /// # References
    /// [msgsnd(2)](https://man7.org/linux/man-pages/man2/msgsnd.2.html)
    #[inline]
    pub fn send(&self, buf: &MsgBuf, len: usize, nowait: bool) -> Result<(), Errno> {
        let len = len.min(buf.cap);
        let flags = if nowait { libc::IPC_NOWAIT } else { 0 };
        // SAFETY: buf.words starts with the long mtype followed by at least
        // `len` bytes of mtext, exactly what msgsnd reads.
        cvt(unsafe { libc::msgsnd(self.id(), buf.words.as_ptr().cast(), len, flags) })?;
        Ok(())
    }

    /// `msgrcv` of a message selected by `mtype` (0 any, > 0 that type,
    /// < 0 the lowest type up to |mtype|): its type and length.
    ///
    /// # Errors
    /// ENOMSG without `wait` (IPC_NOWAIT) when none is queued; EINTR when
    /// a signal handler ran while waiting (never restarted, signal(7));
    /// E2BIG when the message is larger than `buf` (it stays queued);
    /// EIDRM or EINVAL when the queue was removed.
    ///
    /// # References
    /// [msgrcv(2)](https://man7.org/linux/man-pages/man2/msgrcv.2.html)
    #[inline]
    pub fn recv(&self, buf: &mut MsgBuf, mtype: i64, wait: bool) -> Result<(i64, usize), Errno> {
        let flags = if wait { 0 } else { libc::IPC_NOWAIT };
        // SAFETY: buf.words holds a long and `cap` bytes, the size passed;
        // the kernel writes at most that much.
        let n = cvt(unsafe {
            libc::msgrcv(
                self.id(),
                buf.words.as_mut_ptr().cast(),
                buf.cap,
                mtype as libc::c_long,
                flags,
            )
        })?;
        #[allow(clippy::useless_conversion, reason = "c_long is i32 on 32-bit targets")]
        let mtype = i64::from(buf.words[0]);
        Ok((mtype, n as usize))
    }
}
impl SysvQueue {
    /// `msgrcv(id, buf, cap, index, MSG_COPY | IPC_NOWAIT)`: a copy of the
    /// message at position `index` (0 is the oldest), its type and length.
    /// The queue is left as it was, its `msg_rtime` and `msg_lrpid` too.
    /// Indexes shift when another process receives meanwhile: compare the
    /// queue's stat before and after a walk over all of them.
    ///
    /// # Errors
    /// ENOMSG when `index` is past the last message; ENOSYS on a kernel
    /// built without `CONFIG_CHECKPOINT_RESTORE`, which has no MSG_COPY;
    /// E2BIG when the message is larger than `buf`; EACCES without read
    /// permission; EIDRM or EINVAL when the queue was removed.
    ///
    /// # References
    /// [msgrcv(2)](https://man7.org/linux/man-pages/man2/msgrcv.2.html)
    pub fn peek(&self, index: usize, buf: &mut MsgBuf) -> Result<(i64, usize), Errno> {
        let index = libc::c_long::try_from(index).map_err(|_| Errno::ENOMSG)?;
        // SAFETY: buf.words holds a long and `cap` bytes, the size passed;
        // the kernel writes at most that much.
        let n = cvt(unsafe {
            libc::msgrcv(
                self.id(),
                buf.words.as_mut_ptr().cast(),
                buf.cap,
                index,
                MSG_COPY | libc::IPC_NOWAIT,
            )
        })?;
        #[allow(clippy::useless_conversion, reason = "c_long is i32 on 32-bit targets")]
        let mtype = i64::from(buf.words[0]);
        Ok((mtype, n as usize))
    }

    /// `msgctl(id, IPC_SET)` of `msg_qbytes`, the queue's byte limit; the
    /// owner, group and mode are written back as IPC_STAT read them.
    ///
    /// # Errors
    /// EPERM when this user is neither the owner nor the creator, or when
    /// `qbytes` is above msgmnb without CAP_SYS_RESOURCE; EINVAL or EIDRM
    /// for a removed queue. Linux takes 0 (no message fits then).
    ///
    /// # References
    /// [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
    pub fn set_qbytes(&self, qbytes: u64) -> Result<(), Errno> {
        let mut ds = self.stat_raw()?;
        #[allow(
            clippy::useless_conversion,
            reason = "c_ulong is u32 on 32-bit targets"
        )]
        let qbytes = qbytes.try_into().map_err(|_| Errno::EINVAL)?;
        ds.msg_qbytes = qbytes;
        // SAFETY: ds is a valid msqid_ds; IPC_SET only reads it.
        cvt(unsafe { Msq::ctl(self.id(), libc::IPC_SET, &mut ds) })?;
        Ok(())
    }
}

/// `msgget(key, flags)`
fn msgget(key: Key, flags: libc::c_int) -> Result<Id, Errno> {
    // SAFETY: msgget takes plain integers and touches no memory of ours.
    cvt(unsafe { libc::msgget(key, flags) })
}

impl SysvKind for Msq {
    type Stat = QueueStat;
    type Raw = libc::msqid_ds;
    const KIND: Kind = Kind::SysvMsq;

    fn get_existing(key: Key) -> Result<Id, Errno> {
        msgget(key, 0)
    }

    unsafe fn ctl(id: Id, cmd: libc::c_int, buf: *mut libc::msqid_ds) -> libc::c_int {
        // SAFETY: the caller passes a null or valid buf for cmd.
        unsafe { libc::msgctl(id, cmd, buf) }
    }

    fn from_raw(ds: &libc::msqid_ds, id: Id) -> QueueStat {
        #[allow(
            clippy::useless_conversion,
            reason = "c_ulong is u32 on 32-bit targets"
        )]
        QueueStat {
            perm: Perm::from_raw(&ds.msg_perm, id),
            qnum: u64::from(ds.msg_qnum),
            qbytes: u64::from(ds.msg_qbytes),
            cbytes: u64::from(ds.__msg_cbytes),
            lspid: ds.msg_lspid,
            lrpid: ds.msg_lrpid,
            stime: ds.msg_stime,
            rtime: ds.msg_rtime,
            ctime: ds.msg_ctime,
        }
    }

    fn perm(stat: &QueueStat) -> &Perm {
        &stat.perm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::Owned;

    #[test]
    fn peek_copies_by_index_and_leaves_the_queue_as_it_was() {
        let q = Owned::new(SysvQueue::private(0o600).unwrap());
        let mut buf = MsgBuf::with_capacity(64);
        for (t, text) in [(5, &b"first"[..]), (2, b"\xff\x00bin"), (5, b"")] {
            buf.fill(t, text);
            q.send(&buf, text.len(), true).unwrap();
        }
        let mut seen = Vec::new();
        let mut out = MsgBuf::with_capacity(64);
        for index in 0.. {
            match q.peek(index, &mut out) {
                Ok((t, n)) => seen.push((t, out.text(n).to_vec())),
                Err(Errno::ENOMSG) => break,
                // A kernel without CONFIG_CHECKPOINT_RESTORE: nothing to check.
                Err(Errno::ENOSYS) => return,
                Err(e) => panic!("peek {index}: {e}"),
            }
        }
        assert_eq!(
            seen,
            [
                (5, b"first".to_vec()),
                (2, b"\xff\x00bin".to_vec()),
                (5, Vec::new())
            ]
        );
        assert_eq!(q.stat().unwrap().qnum, 3);
        let mut small = MsgBuf::with_capacity(2);
        assert_eq!(q.peek(0, &mut small), Err(Errno::E2BIG));
        assert_eq!(q.peek(usize::MAX, &mut out), Err(Errno::ENOMSG));
        // Still the same first message, taken for real now.
        assert_eq!(q.recv(&mut out, 0, false), Ok((5, 5)));
        assert_eq!(q.stat().unwrap().qnum, 2);
    }

    #[test]
    fn qbytes_is_set_and_refused_once_removed() {
        let q = Owned::new(SysvQueue::private(0o640).unwrap());
        q.set_qbytes(1000).unwrap();
        let st = q.stat().unwrap();
        assert_eq!(st.qbytes, 1000);
        assert_eq!(st.perm.mode & 0o777, 0o640);
        let gone = *q;
        drop(q);
        assert!(gone.set_qbytes(1000).is_err());
    }
}
