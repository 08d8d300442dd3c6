//! `sysv msq`: server, client, `--clean` and `--stat` of a System V message
//! queue, over the `ipc::sysv_msq` handle.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use nix::sys::signal::{SigEvent, SigevNotify, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::ClockId;

use crate::cli::{Mode, SysvMsqArgs};
use crate::error::{fail_with_hint, hinted, undo_create, usage};
use crate::ipc::sysv_msq::{MsgBuf, Msq, SysvQueue};
use crate::ipc::{Creation, Remove};
use crate::output::{Out, Payload};
use crate::serve::{Flow, Messages, Server, Waited};
use crate::sys::read_proc_u64;
use crate::sysv::common::{Addr, addr, clean, limit_hint, stat};
use crate::target::{FileMode, SysvKey};

/// A one-shot SIGALRM that bounds how long a blocking msgrcv can miss a
/// cancel signal (see `server`). A POSIX timer (nix, deleted in its `Drop`),
/// with a SIGALRM handler that only exists so that the signal interrupts the
/// call instead of killing the process.
struct Alarm {
    timer: Timer,
}

impl Alarm {
    fn new() -> Result<Alarm> {
        // Registered before any timer exists: SIGALRM's default action is to
        // terminate. The flag itself is not needed, only the EINTR.
        signal_hook::flag::register(
            signal_hook::consts::SIGALRM,
            Arc::new(AtomicBool::new(false)),
        )
        .context("cannot install a SIGALRM handler")?;
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

pub fn run(args: &SysvMsqArgs, out: &mut Out) -> Result<ExitCode> {
    let mode = args.mode.mode();
    let at = addr(&args.target, mode)?;
    match mode {
        Mode::Server => server(args, out),
        Mode::Client => client(args, out),
        Mode::Clean => clean::<Msq>(at, out),
        Mode::Stat => stat_cmd(at, out),
    }
}

fn open_or_create(key: SysvKey, mode: FileMode) -> Result<(SysvQueue, bool)> {
    SysvQueue::open(key.raw(), Creation::OpenOrCreate, mode.bits())
        .map(|o| (o.handle, o.created))
        .map_err(Errno::from)
        .map_err(|e| match e {
            Errno::ENOSPC => hinted(e, limit_hint("queue count", "msgmni")),
            e => e.into(),
        })
        .with_context(|| format!("cannot open queue {key}"))
}

fn server(args: &SysvMsqArgs, out: &mut Out) -> Result<ExitCode> {
    let key = args.target.key;
    let selector = args.r#type.unwrap_or(0);
    let mut server = Server::new(out, &args.serve)?;
    let (q, created) = open_or_create(key, args.create.mode)?;
    let ds = q
        .stat()
        .with_context(|| format!("cannot read attributes of queue {key}"))?;
    let verb = if created { "created" } else { "opened" };
    let which = match selector {
        0 => "any type".to_string(),
        t if t > 0 => format!("type {t}"),
        t => format!("the lowest type up to {}", t.unsigned_abs()),
    };
    let flow = server.start(
        format_args!(
            "sysv msq {key} (id {}): {verb} (qbytes {}, msgmax {}, {} queued); waiting for messages of {which}",
            q.id(),
            ds.qbytes,
            msgmax(),
            ds.qnum
        ),
        |f| {
            f.insert("mechanism".into(), "sysv-msq".into());
            f.insert("key".into(), key.to_string().into());
            f.insert("id".into(), q.id().into());
            f.insert("created".into(), created.into());
            f.insert("qbytes".into(), ds.qbytes.into());
            f.insert("qnum".into(), ds.qnum.into());
            f.insert("type".into(), selector.into());
        },
    )?;
    if flow == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    // msgrcv has no descriptor to poll together with the signal pipe, but a
    // blocking msgrcv fails with EINTR when the SIGINT/SIGTERM handler runs:
    // System V IPC calls are never restarted, SA_RESTART or not (signal(7)).
    // That alone has a race: a signal that lands after our check of the
    // cancel flag and before msgrcv blocks is consumed by the handler, and
    // the server would sleep until the next message. So every blocking
    // msgrcv runs under a one-shot SIGALRM of TICK: in that rare case the
    // server notices within TICK, and the tick also lets it check --timeout.
    // Messages are printed as soon as they come (no polling delay), a busy
    // queue is drained with IPC_NOWAIT, and an idle server wakes 1/TICK
    // times a second.
    const TICK: Duration = Duration::from_millis(100);
    let mut alarm = Alarm::new()?;
    let mut buf = MsgBuf::with_capacity(usize::try_from(msgmax().max(1)).unwrap_or(8192));
    let mut wait = false;
    loop {
        if wait {
            alarm.set(TICK)?;
        }
        let got = q.recv(&mut buf, selector, wait);
        if wait {
            alarm.set(Duration::ZERO)?;
        }
        match got {
            Ok((mtype, len)) => {
                wait = false;
                let payload = Payload(buf.text(len));
                let flow =
                    server.event("message", format_args!("type {mtype}: {payload}"), |f| {
                        f.insert("type".into(), mtype.into());
                        f.insert("size".into(), len.into());
                        payload.insert_into(f);
                    })?;
                if flow == Flow::Done {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            // Queue empty, or a signal or the alarm interrupted the wait:
            // flush, see whether we were canceled or idle too long (without
            // waiting), then block again.
            Err(Errno::ENOMSG | Errno::EINTR) => {
                wait = true;
                match server.wait(None, Some(Duration::ZERO))? {
                    Waited::Canceled => return server.canceled(),
                    Waited::Ready | Waited::Tick => {}
                }
            }
            // msgmax was raised after we sized the buffer: grow and retry.
            Err(Errno::E2BIG) => buf = MsgBuf::with_capacity(buf.capacity().saturating_mul(2)),
            Err(Errno::EIDRM | Errno::EINVAL) => {
                return Err(anyhow!(
                    "queue {key} was removed (IPC_RMID) under the server"
                ));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot receive from queue {key}")),
        }
    }
}

fn client(args: &SysvMsqArgs, out: &mut Out) -> Result<ExitCode> {
    let key = args.target.key;
    let mtype = args.r#type.unwrap_or(1);
    if mtype < 1 {
        return Err(usage(format!(
            "--type {mtype}: a sent message needs a type of at least 1 (0 and negative types only select when receiving)"
        )));
    }
    let messages = Messages::new(args.serve.count, args.send.message.as_deref());
    let count = messages.count;
    let (q, created) = open_or_create(key, args.create.mode)?;
    let ds = q
        .stat()
        .with_context(|| format!("cannot read attributes of queue {key}"))?;
    // The longest message is the fixed text or the last {"count":N}. The
    // kernel refuses anything above msgmax (EINVAL), and a message above
    // msg_qbytes could never fit, so msgsnd would block forever: refuse both
    // before anything is sent, so a run never stops half-way.
    let longest = messages.longest();
    let qbytes = ds.qbytes;
    let max = msgmax();
    let limit = qbytes.min(max);
    if count > 0 && longest as u64 > limit {
        let which = if qbytes <= max {
            format!("the queue's msg_qbytes of {qbytes} bytes")
        } else {
            format!("the kernel's msgmax of {max} bytes (/proc/sys/kernel/msgmax)")
        };
        // Refused before anything is sent: a queue this call created goes again.
        let refused = fail_with_hint(
            format!("a message of {longest} bytes is larger than {which}"),
            format!("send at most {limit} bytes (msg_qbytes {qbytes}, msgmax {max})"),
        )
        .context(format!("cannot send to queue {key}"));
        return Err(undo_create(refused, created, "queue", || {
            q.remove()
                .with_context(|| format!("cannot remove queue {key}"))
        }));
    }
    let interval = args.send.interval.duration();
    let mut buf = MsgBuf::with_capacity(longest);
    let mut msg = Vec::with_capacity(longest);
    for i in 1..=count {
        messages.write(i, &mut msg);
        buf.fill(mtype, &msg);
        send(&q, &buf, msg.len(), args.send.nonblock, out)
            .with_context(|| format!("cannot send to queue {key}"))?;
        let payload = Payload(&msg);
        out.event("sent", format_args!("sent type {mtype}: {payload}"), |f| {
            f.insert("type".into(), mtype.into());
            f.insert("size".into(), msg.len().into());
            payload.insert_into(f);
        })?;
        if i < count && !interval.is_zero() {
            out.flush()?;
            std::thread::sleep(interval);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Send one message; on a full queue block in msgsnd unless `nonblock`. The
/// client installs no signal handler, so Ctrl-C ends a blocked send at once.
fn send(q: &SysvQueue, buf: &MsgBuf, len: usize, nonblock: bool, out: &mut Out) -> Result<()> {
    // Try without blocking first, so output is flushed only before a wait.
    let mut wait = false;
    loop {
        match q.send(buf, len, !wait) {
            Ok(()) => return Ok(()),
            Err(Errno::EAGAIN) if !nonblock && !wait => {
                out.flush()?;
                wait = true;
            }
            Err(Errno::EAGAIN) => {
                return Err(fail_with_hint(
                    "queue is full",
                    "a server (-s) drains it; without --nonblock the client waits for room",
                ));
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EIDRM) => {
                return Err(anyhow!("the queue was removed while waiting for room"));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn stat_cmd(at: Addr, out: &mut Out) -> Result<ExitCode> {
    stat::<Msq>(at, out, |_, ds, s| {
        s.number("qnum", ds.qnum);
        s.number("qbytes", ds.qbytes);
        s.number("cbytes", ds.cbytes);
        s.number("lspid", ds.lspid);
        s.number("lrpid", ds.lrpid);
        s.time("stime", ds.stime);
        s.time("rtime", ds.rtime);
        s.time("ctime", ds.ctime);
        Ok(())
    })
}
