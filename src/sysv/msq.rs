//! `sysv msq`: server, client and `--stat` of a System V message queue,
//! over the `ipc::sysv_msq` handle.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use nix::sys::signal::{SigEvent, SigevNotify, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::ClockId;
use serde::Serialize;

use crate::error::{fail_with_hint, hinted, removed_under_server, undo_create};
use crate::ipc::Remove;
use crate::ipc::sysv_msq::{MsgBuf, Msq, SysvQueue};
use crate::object::{Addr, Kind};
use crate::output::Out;
use crate::record::stat::{StatBody, StatText, time_rfc3339};
use crate::record::{At, Message, Opened, Record};
use crate::serve::recv::{Source, receive_all};
use crate::serve::send::{Messages, Sink, send_all};
use crate::serve::{Flow, Server, Wait};
use crate::spec::{Create, SysvMsq, SysvMsqRole};
use crate::sys::read_proc_u64;
use crate::target::SysvKey;

/// A one-shot SIGALRM that bounds a blocking msgrcv or msgsnd, which has
/// no descriptor to poll with a deadline: the call fails with EINTR when the
/// handler runs (System V calls are never restarted, signal(7)). Armed only
/// for a wait with a limit (`--timeout`, the client's wait before its
/// "queue is full" note), never as a periodic tick: an idle server stays in
/// msgrcv, where `ls` sees it as the queue's reader. SIGINT and SIGTERM end
/// the server's wait through its [`crate::signal::Interrupter`]. A POSIX
/// timer (nix, deleted in its `Drop`).
struct Alarm {
    timer: Timer,
}

impl Alarm {
    fn new() -> Result<Alarm> {
        // Before any timer exists: SIGALRM's default action is to terminate.
        crate::signal::catch_alarm().context("cannot install a SIGALRM handler")?;
        let timer = Timer::new(
            ClockId::CLOCK_MONOTONIC,
            SigEvent::new(SigevNotify::SigevSignal {
                signal: Signal::SIGALRM,
                si_value: 0,
            }),
        )
        .context("cannot create a timer")?;
        Ok(Alarm { timer })
    }

    /// Fire once after `after` (a zero time disarms).
    fn set(&mut self, after: Duration) -> Result<()> {
        self.timer
            .set(
                Expiration::OneShot(TimeSpec::from_duration(after)),
                TimerSetTimeFlags::empty(),
            )
            .context("cannot set a timer")
    }
}

/// The kernel's per-message limit, /proc/sys/kernel/msgmax (8192 by default).
fn msgmax() -> u64 {
    read_proc_u64("/proc/sys/kernel/msgmax").unwrap_or(8192)
}

pub fn run(spec: &SysvMsq, out: &mut Out) -> Result<ExitCode> {
    let key = spec.key;
    match &spec.role {
        SysvMsqRole::Server { serve: s, selector } => {
            let mut server = Server::new(out, s)?;
            let (q, created) = open_or_create(key, &spec.create)?;
            let ds = q
                .stat()
                .with_context(|| format!("cannot read attributes of queue {key}"))?;
            let start = Start {
                opened: Opened {
                    mechanism: Kind::SysvMsq,
                    at: At::Key { key, id: q.id() },
                    created,
                },
                qbytes: ds.qbytes,
                qnum: ds.qnum,
                selector: *selector,
            };
            if server.start(&start)? == Flow::Done {
                return Ok(ExitCode::SUCCESS);
            }
            let mut source = Queue {
                q,
                key,
                buf: MsgBuf::with_capacity(usize::try_from(msgmax().max(1)).unwrap_or(8192)),
                mtype: *selector,
                alarm: Alarm::new()?,
            };
            // Lives until the loop is done with msgrcv.
            let _interrupter = server.interrupter()?;
            receive_all(&mut server, &mut source)
        }
        SysvMsqRole::Client { send, mtype } => {
            let (q, created) = open_or_create(key, &spec.create)?;
            let longest = Messages::new(send).longest();
            check_fits(q, key, longest, send.count, created)?;
            let mut sink = Queue {
                q,
                key,
                buf: MsgBuf::with_capacity(longest),
                mtype: *mtype,
                alarm: Alarm::new()?,
            };
            send_all(out, &mut sink, send, b"")
        }
    }
}

fn open_or_create(key: SysvKey, create: &Create<()>) -> Result<(SysvQueue, bool)> {
    SysvQueue::open(key.raw(), create.policy, create.mode.bits())
        .map(|o| (o.handle, o.created))
        .map_err(Errno::from)
        .map_err(|e| match e {
            Errno::ENOSPC => hinted(e, super::limit_hint("queue count", "msgmni")),
            e => e.into(),
        })
        .with_context(|| format!("cannot open queue {key}"))
}

/// The longest message is the fixed text or the last {"count":N}. The
/// kernel refuses anything above msgmax (EINVAL), and a message above
/// msg_qbytes could never fit, so msgsnd would block forever: both are
/// refused before anything is sent, so a run never stops half-way, and a
/// queue this call created goes again.
fn check_fits(q: SysvQueue, key: SysvKey, longest: usize, count: u64, created: bool) -> Result<()> {
    let qbytes = q
        .stat()
        .with_context(|| format!("cannot read attributes of queue {key}"))?
        .qbytes;
    let max = msgmax();
    let limit = qbytes.min(max);
    if count == 0 || longest as u64 <= limit {
        return Ok(());
    }
    let which = if qbytes <= max {
        format!("the queue's msg_qbytes of {qbytes} bytes")
    } else {
        format!("the kernel's msgmax of {max} bytes (/proc/sys/kernel/msgmax)")
    };
    let refused = fail_with_hint(
        format!("a message of {longest} bytes is larger than {which}"),
        format!("send at most {limit} bytes (msg_qbytes {qbytes}, msgmax {max})"),
    )
    .context(format!("cannot send to queue {key}"));
    Err(undo_create(refused, created, "queue", || {
        q.remove()
            .with_context(|| format!("cannot remove queue {key}"))
    }))
}

/// The queue of a server (`mtype` is its msgrcv selector) or a client
/// (the type it sends).
struct Queue {
    q: SysvQueue,
    key: SysvKey,
    buf: MsgBuf,
    mtype: i64,
    alarm: Alarm,
}

impl Queue {
    fn removed(&self) -> anyhow::Error {
        removed_under_server(
            "queue",
            format_args!("{} (id {})", self.key, self.q.id()),
            "IPC_RMID",
        )
    }

    /// `call` (msgrcv or msgsnd on the queue and the buffer) under the
    /// alarm for `limit`, if any; None when no time is left.
    fn alarmed<T>(
        &mut self,
        limit: Option<Duration>,
        call: impl FnOnce(&SysvQueue, &mut MsgBuf) -> T,
    ) -> Result<Option<T>> {
        if limit.is_some_and(|l| l.is_zero()) {
            return Ok(None);
        }
        if let Some(limit) = limit {
            self.alarm.set(limit)?;
        }
        let done = call(&self.q, &mut self.buf);
        if limit.is_some() {
            self.alarm.set(Duration::ZERO)?;
        }
        Ok(Some(done))
    }
}

impl Source for Queue {
    /// IPC_NOWAIT, or a msgrcv that blocks as `wait` says: messages are
    /// printed as soon as they come (no polling delay), a busy queue is
    /// drained without waiting, and an idle server sleeps in msgrcv until
    /// a message, a signal, or the alarm of `--timeout`.
    fn take(&mut self, wait: Wait) -> Result<Option<impl Record + '_>> {
        let limit = match wait {
            Wait::For(left) => Some(left),
            Wait::No | Wait::Forever => None,
        };
        let mtype = self.mtype;
        loop {
            let Some(got) = self.alarmed(limit, |q, buf| q.recv(buf, mtype, wait != Wait::No))?
            else {
                return Ok(None);
            };
            return match got {
                Ok((mtype, len)) => Ok(Some(Message::new(
                    false,
                    MsgType { mtype },
                    self.buf.text(len),
                ))),
                // Empty, or a signal or the alarm ended the wait.
                Err(Errno::ENOMSG | Errno::EINTR) => Ok(None),
                // msgmax was raised after we sized the buffer: grow and retry.
                Err(Errno::E2BIG) => {
                    self.buf = MsgBuf::with_capacity(self.buf.capacity().saturating_mul(2));
                    continue;
                }
                Err(Errno::EIDRM | Errno::EINVAL) => Err(self.removed()),
                Err(e) => Err(e).with_context(|| format!("cannot receive from queue {}", self.key)),
            };
        }
    }

    fn ready(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// msgrcv itself fails once the queue is removed.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

impl Sink for Queue {
    /// IPC_NOWAIT, or a blocking msgsnd; a wait with a limit runs under
    /// the alarm, which ends it with EINTR. The client installs no handler
    /// for SIGINT, so Ctrl-C ends a blocked send at once.
    fn send(&mut self, msg: &[u8], wait: Wait) -> Result<bool> {
        let deadline = wait.deadline();
        let mtype = self.mtype;
        self.buf.fill(mtype, msg);
        loop {
            let left = deadline.map(|end| end.saturating_duration_since(Instant::now()));
            let Some(sent) =
                self.alarmed(left, |q, buf| q.send(buf, msg.len(), wait == Wait::No))?
            else {
                return Ok(false);
            };
            match sent {
                Ok(()) => return Ok(true),
                Err(Errno::EAGAIN) => return Ok(false),
                // The alarm, or a stop and continue: go on until the limit.
                Err(Errno::EINTR) => {}
                Err(Errno::EIDRM) => {
                    return Err(anyhow!("the queue was removed while waiting for room"));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn full(&self) -> String {
        match self.q.stat() {
            Ok(ds) => format!(
                "queue {} is full ({} of {} bytes)",
                self.key, ds.cbytes, ds.qbytes
            ),
            Err(_) => format!("queue {} is full", self.key),
        }
    }

    fn failed(&self) -> String {
        format!("cannot send to queue {}", self.key)
    }

    fn sent<'a>(&'a self, msg: &'a [u8]) -> impl Record + 'a {
        Message::new(true, MsgType { mtype: self.mtype }, msg)
    }
}

/// `--stat`: what `ipcs -q -i` shows.
pub fn stat(addr: &Addr, out: &mut Out) -> Result<ExitCode> {
    let (_, ds) = super::find::<Msq>(addr)?;
    let body = QueueStat {
        qnum: ds.qnum,
        qbytes: ds.qbytes,
        cbytes: ds.cbytes,
        lspid: ds.lspid,
        lrpid: ds.lrpid,
        stime: time_rfc3339(ds.stime),
        rtime: time_rfc3339(ds.rtime),
        ctime: time_rfc3339(ds.ctime),
    };
    super::print_stat::<Msq>(out, &ds, body)
}

// ---- Records ----

/// `sysv msq 0x000000c8 (id 3): created (qbytes 16384, msgmax 8192, 0
/// queued); waiting for messages of any type`
#[derive(Serialize)]
struct Start<'a> {
    #[serde(flatten)]
    opened: Opened<'a>,
    qbytes: u64,
    qnum: u64,
    #[serde(rename = "type")]
    selector: i64,
}

impl fmt::Display for Start<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (qbytes {}, msgmax {}, {} queued); waiting for messages of ",
            self.opened,
            self.qbytes,
            msgmax(),
            self.qnum
        )?;
        match self.selector {
            0 => f.write_str("any type"),
            t if t > 0 => write!(f, "type {t}"),
            t => write!(f, "the lowest type up to {}", t.unsigned_abs()),
        }
    }
}

crate::record_kind!(Start<'_>, "start");

/// A message's head: its type, `type 1: ` before the payload.
#[derive(Serialize)]
struct MsgType {
    #[serde(rename = "type")]
    mtype: i64,
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type {}: ", self.mtype)
    }
}

/// What `--stat` shows of a queue after the `ipc_perm` head: the
/// msqid_ds fields.
#[derive(Serialize)]
struct QueueStat {
    qnum: u64,
    qbytes: u64,
    cbytes: u64,
    lspid: i32,
    lrpid: i32,
    stime: Option<String>,
    rtime: Option<String>,
    ctime: Option<String>,
}

impl StatBody for QueueStat {
    fn text(&self, t: &mut StatText) {
        t.line("qnum", self.qnum);
        t.line("qbytes", self.qbytes);
        t.line("cbytes", self.cbytes);
        t.line("lspid", self.lspid);
        t.line("lrpid", self.lrpid);
        t.time("stime", self.stime.as_deref());
        t.time("rtime", self.rtime.as_deref());
        t.time("ctime", self.ctime.as_deref());
    }
}
