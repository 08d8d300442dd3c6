//! `sysv sem`: server, client, `--clean` and `--stat` of a System V
//! semaphore set of one semaphore, over the `ipc::sysv_sem` handle.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;

use crate::cli::{Mode, SysvSemArgs};
use crate::error::{fail_with_hint, hinted, usage};
use crate::ipc::sysv_sem::{SEMVMX, Sem, SemSet, op_flags as flags};
use crate::ipc::{Creation, OpenError, Owned};
use crate::output::Out;
use crate::serve::{Flow, Server};
use crate::sys::secs;
use crate::sysv::common::{Addr, addr, clean, limit_hint, stat};
use crate::target::{FileMode, SysvKey};

/// The outcome of taking a unit.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// Value 0 and no wait asked for, or the wait timed out.
    Busy,
}

/// Create the set and give it its first value, or open the existing one.
/// Returns whether this call created it.
///
/// The creator initialises the set (`SemSet::init`: the value, then the
/// semop that marks it ready) and removes it again if that fails; a process
/// that opens an existing set waits for that mark (`ready`).
fn open_or_create(key: SysvKey, mode: FileMode, value: u32) -> Result<(SemSet, bool)> {
    let opened =
        SemSet::open(key.raw(), Creation::OpenOrCreate, mode.bits()).map_err(|e| match e {
            OpenError::Create(e @ Errno::ENOSPC) => hinted(e, limit_hint("semaphore", "sem"))
                .context(format!("cannot create semaphore {key}")),
            OpenError::Create(e) => {
                anyhow::Error::new(e).context(format!("cannot create semaphore {key}"))
            }
            OpenError::Open(e) => {
                anyhow::Error::new(e).context(format!("cannot open semaphore {key}"))
            }
            OpenError::Vanished => {
                anyhow!("cannot open semaphore {key}: it was removed while opening it")
            }
        })?;
    if !opened.created {
        ready(&opened.handle, key)?;
        return Ok((opened.handle, false));
    }
    // Never leave a half-made semaphore behind.
    let set = Owned::new(opened.handle);
    set.init(value)
        .with_context(|| format!("cannot set the value of semaphore {key} to {value}"))?;
    Ok((set.release(), true))
}

/// How long an opener waits, at most, for a creator to finish initialising.
const READY_WAIT: Duration = Duration::from_secs(1);

/// Wait until a set we did not create is initialised (`SemSet::wait_ready`).
fn ready(set: &SemSet, key: SysvKey) -> Result<()> {
    set.wait_ready(READY_WAIT)
        .with_context(|| format!("cannot open semaphore {key}"))
}

/// Open an existing set (clients never create one), ready to use.
fn open(key: SysvKey) -> Result<SemSet> {
    let set = SemSet::open_existing(key.raw())
        .map_err(|e| match e {
            Errno::ENOENT => fail_with_hint(
                "no such semaphore",
                format!("a client never creates one: start the server first (examples-ipc sysv sem -s -k {key})"),
            ),
            e => e.into(),
        })
        .with_context(|| format!("cannot open semaphore {key}"))?;
    ready(&set, key)?;
    Ok(set)
}

pub fn run(args: &SysvSemArgs, out: &mut Out) -> Result<ExitCode> {
    let mode = args.mode.mode();
    let at = addr(&args.target, mode)?;
    match mode {
        Mode::Server => server(args, out),
        Mode::Client => client(args, out),
        Mode::Clean => clean::<Sem>(at, out),
        Mode::Stat => stat_cmd(at, out),
    }
}

fn removed(key: SysvKey, e: Errno) -> anyhow::Error {
    match e {
        Errno::EINVAL | Errno::EIDRM => anyhow!("semaphore {key} was removed (IPC_RMID)"),
        e => anyhow::Error::new(e).context(format!("cannot use semaphore {key}")),
    }
}

fn server(args: &SysvSemArgs, out: &mut Out) -> Result<ExitCode> {
    let key = args.target.key;
    if args.sem.value > SEMVMX {
        return Err(usage(format!(
            "--value {} is above SEMVMX ({SEMVMX}), the largest System V semaphore value",
            args.sem.value
        )));
    }
    let mut server = Server::new(out, &args.serve)?;
    let (set, created) = open_or_create(key, args.create.mode, args.sem.value)?;
    let interval = args.sem.interval.duration();
    let verb = if created { "created" } else { "opened" };
    let flow = server.start(
        format_args!(
            "sysv sem {key} (id {}): {verb}{}; printing the value when it changes (polling every {} s)",
            set.id(),
            if created { format!(" with value {}", args.sem.value) } else { String::new() },
            secs(interval)
        ),
        |f| {
            f.insert("mechanism".into(), "sysv-sem".into());
            f.insert("key".into(), key.to_string().into());
            f.insert("id".into(), set.id().into());
            f.insert("created".into(), created.into());
        },
    )?;
    if flow == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    server.watch_value(interval, || {
        let value = set
            .value()
            .map_err(|e| removed(key, e))
            .map_err(|e| e.context("the server stops"))?;
        Ok(i64::from(value))
    })
}

fn client(args: &SysvSemArgs, out: &mut Out) -> Result<ExitCode> {
    let key = args.target.key;
    let timeout = args.serve.timeout.map(|s| s.duration());
    if timeout.is_some() && !args.sem.wait {
        return Err(usage("--timeout goes with --wait for a semaphore client"));
    }
    let set = open(key)?;
    let undo_note = if args.undo {
        " (SEM_UNDO: the kernel reverts it when this process exits)"
    } else {
        ""
    };
    // The line after a unit was taken or given back, with the value now.
    let done = |out: &mut Out, kind: &str, did: &str| -> Result<ExitCode> {
        let value = set.value().map_err(|e| removed(key, e))?;
        out.event(
            kind,
            format_args!("{did} {key}; semaphore: {value}{undo_note}"),
            |f| {
                f.insert("key".into(), key.to_string().into());
                f.insert("id".into(), set.id().into());
                f.insert("value".into(), value.into());
                f.insert("undo".into(), args.undo.into());
            },
        )?;
        Ok(ExitCode::SUCCESS)
    };
    if args.sem.release {
        set.op(&[(0, 1, flags(false, args.undo))], None)
            .map_err(|e| match e {
                Errno::ERANGE => anyhow!("the value is at SEMVMX ({SEMVMX})"),
                e => removed(key, e),
            })
            .with_context(|| format!("cannot give a unit back to {key}"))?;
        return done(out, "released", "gave one unit back to");
    }
    let took = if args.sem.wait {
        out.flush()?;
        take_waiting(&set, args.undo, timeout).map_err(|e| removed(key, e))?
    } else {
        match set.op(&[(0, -1, flags(true, args.undo))], None) {
            Ok(()) => Take::Taken,
            Err(Errno::EAGAIN) => Take::Busy,
            Err(e) => return Err(removed(key, e)),
        }
    };
    if took == Take::Busy {
        let (cause, hint) = match timeout {
            Some(t) => (
                format!(
                    "semaphore is busy: no unit within {} s (--timeout)",
                    secs(t)
                ),
                "a unit comes back when a holder releases it (-r)",
            ),
            None => (
                "semaphore is busy (value 0)".to_string(),
                "wait for a unit with --wait, or give one back with -r",
            ),
        };
        return Err(fail_with_hint(cause, hint))
            .with_context(|| format!("cannot take a unit of {key}"));
    }
    done(out, "taken", "took one unit of")
}

/// Block in semop (or semtimedop until the deadline). The client installs no
/// signal handler, so Ctrl-C ends the wait at once with the default action;
/// an EINTR from a stop/continue signal retries with the time that is left.
fn take_waiting(set: &SemSet, undo: bool, timeout: Option<Duration>) -> Result<Take, Errno> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match set.op(&[(0, -1, flags(false, undo))], left) {
            Ok(()) => return Ok(Take::Taken),
            Err(Errno::EAGAIN) => return Ok(Take::Busy),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn stat_cmd(at: Addr, out: &mut Out) -> Result<ExitCode> {
    stat::<Sem>(at, out, |set, ds, s| {
        let sems = set
            .semaphores()
            .with_context(|| format!("cannot read the values of semaphore ({at})"))?;
        let values: Vec<u16> = sems.iter().map(|s| s.value).collect();
        s.number("nsems", sems.len() as u64);
        let shown: Vec<String> = values.iter().map(u16::to_string).collect();
        s.line("values", shown.join(" "), values.into());
        s.time("otime", ds.otime);
        s.time("ctime", ds.ctime);
        s.table(
            "sems",
            &["semnum", "value", "ncount", "zcount", "pid"],
            sems.iter().map(|m| {
                [
                    m.semnum.into(),
                    m.value.into(),
                    m.ncount.into(),
                    m.zcount.into(),
                    m.pid.into(),
                ]
            }),
            sems.iter().map(|m| m.to_json()).collect::<Vec<_>>().into(),
        );
        Ok(())
    })
}
