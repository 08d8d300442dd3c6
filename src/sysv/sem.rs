//! `sysv sem`: server, client and `--stat` of a System V
//! semaphore set of one semaphore, over the `ipc::sysv_sem` handle.

use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use serde::Serialize;

use super::limit_hint;
use crate::error::{fail_with_hint, hinted, removed_under_server};
use crate::ipc::sysv_sem::{Sem, SemSet, Semaphore, op_flags as flags};
use crate::ipc::{OpenError, Owned};
use crate::object::{Addr, Kind};
use crate::output::Out;
use crate::record::stat::{StatBody, StatText, time_rfc3339};
use crate::record::{At, Did, Opened, Record, SemStart, sysv_key};
use crate::serve::Server;
use crate::serve::sem::{Take, Unit};
use crate::spec::{Create, Sem as SemSpec, SemAttrs, SemClient, SemRole, Serve};
use crate::target::SysvKey;

/// Create the set and give it its first value, or open the existing one.
/// Returns whether this call created it.
///
/// The creator initialises the set (`SemSet::init`: the value, then the
/// semop that marks it ready) and removes it again if that fails; a process
/// that opens an existing set waits for that mark (`ready`).
fn open_or_create(key: SysvKey, create: &Create<SemAttrs>) -> Result<(SemSet, bool)> {
    let value = create.attrs.value;
    let opened =
        SemSet::open(key.raw(), create.policy, create.mode.bits()).map_err(|e| match e {
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

pub fn run(spec: &SemSpec<SysvKey>, out: &mut Out) -> Result<ExitCode> {
    let key = spec.target;
    match &spec.role {
        SemRole::Server {
            create,
            serve,
            interval,
        } => server(key, create, serve, *interval, out),
        SemRole::Client(client) => run_client(key, client, out),
    }
}

/// A failed semop or GETVAL: the set went away (EINVAL, EIDRM), or another
/// failure.
fn failed(key: SysvKey, e: Errno) -> anyhow::Error {
    match e {
        Errno::EINVAL | Errno::EIDRM => anyhow!("semaphore {key} was removed (IPC_RMID)"),
        e => anyhow::Error::new(e).context(format!("cannot use semaphore {key}")),
    }
}

fn server(
    key: SysvKey,
    create: &Create<SemAttrs>,
    serve: &Serve,
    interval: Duration,
    out: &mut Out,
) -> Result<ExitCode> {
    let mut server = Server::new(out, serve)?;
    let (set, created) = open_or_create(key, create)?;
    let opened = Opened {
        mechanism: Kind::SysvSem,
        at: At::Key { key, id: set.id() },
        created,
    };
    let start = SemStart::new(opened, create, interval);
    server.serve_value(&start, || match set.value() {
        Ok(value) => Ok(i64::from(value)),
        Err(Errno::EINVAL | Errno::EIDRM) => Err(removed_under_server(
            "semaphore",
            format_args!("{key} (id {})", set.id()),
            "IPC_RMID",
        )),
        Err(e) => Err(failed(key, e)),
    })
}

fn run_client(key: SysvKey, client: &SemClient, out: &mut Out) -> Result<ExitCode> {
    let set = open(key)?;
    let undo = client.undo;
    // The line after a unit was taken or given back, with the value now.
    let done = |out: &mut Out, did: Did| -> Result<ExitCode> {
        let value = set.value().map_err(|e| failed(key, e))?;
        out.event(&Done {
            did,
            key,
            id: set.id(),
            value,
            undo,
        })?;
        Ok(ExitCode::SUCCESS)
    };
    let unit = Client {
        set: &set,
        key,
        undo,
    };
    crate::serve::sem::client(&unit, client.action, &key, out, done)
}

/// Semaphore 0 of a set as the client uses it (`semop`), with or without
/// SEM_UNDO.
struct Client<'a> {
    set: &'a SemSet,
    key: SysvKey,
    undo: bool,
}

impl Unit for Client<'_> {
    fn give(&self) -> Result<()> {
        self.set
            .op(&[(0, 1, flags(false, self.undo))], None)
            .map_err(|e| match e {
                Errno::ERANGE => {
                    anyhow!("the value is at SEMVMX ({})", crate::ipc::sysv_sem::SEMVMX)
                }
                e => failed(self.key, e),
            })
    }

    fn try_take(&self) -> Result<Take> {
        match self.set.op(&[(0, -1, flags(true, self.undo))], None) {
            Ok(()) => Ok(Take::Taken),
            Err(Errno::EAGAIN) => Ok(Take::Busy),
            Err(e) => Err(failed(self.key, e)),
        }
    }

    /// Block in semop (or semtimedop until the deadline). The client
    /// installs no signal handler, so Ctrl-C ends the wait at once with the
    /// default action; an EINTR from a stop/continue signal retries with
    /// the time that is left.
    fn take_waiting(&self, timeout: Option<Duration>) -> Result<Take> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match self.set.op(&[(0, -1, flags(false, self.undo))], left) {
                Ok(()) => return Ok(Take::Taken),
                Err(Errno::EAGAIN) => return Ok(Take::Busy),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(failed(self.key, e)),
            }
        }
    }
}

/// `--stat`: what `ipcs -s -i` shows, each semaphore's line included.
pub fn stat(addr: &Addr, out: &mut Out) -> Result<ExitCode> {
    let (set, ds) = super::find::<Sem>(addr)?;
    let sems = set
        .semaphores()
        .with_context(|| format!("cannot read the values of semaphore ({addr})"))?;
    let body = SetStat {
        nsems: sems.len() as u64,
        values: sems.iter().map(|s| s.value).collect(),
        otime: time_rfc3339(ds.otime),
        ctime: time_rfc3339(ds.ctime),
        sems,
    };
    super::print_stat::<Sem>(out, &ds, body)
}

// ---- Records ----

/// `took one unit of 0x000000c8; semaphore: 1 (SEM_UNDO: ...)`
#[derive(Serialize)]
struct Done {
    #[serde(skip)]
    did: Did,
    #[serde(serialize_with = "sysv_key")]
    key: SysvKey,
    id: crate::ipc::Id,
    value: i32,
    undo: bool,
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}; semaphore: {}", self.did, self.key, self.value)?;
        if self.undo {
            f.write_str(" (SEM_UNDO: the kernel reverts it when this process exits)")?;
        }
        Ok(())
    }
}

impl Record for Done {
    fn kind(&self) -> &'static str {
        self.did.kind()
    }
}

/// What `--stat` shows of a set after the `ipc_perm` head: the values,
/// and a line per semaphore as `ipcs -s -i` prints them.
#[derive(Serialize)]
struct SetStat {
    nsems: u64,
    values: Vec<u16>,
    otime: Option<String>,
    ctime: Option<String>,
    sems: Vec<Semaphore>,
}

impl StatBody for SetStat {
    fn text(&self, t: &mut StatText) {
        t.line("nsems", self.nsems);
        t.line("values", Values(&self.values));
        t.time("otime", self.otime.as_deref());
        t.time("ctime", self.ctime.as_deref());
        t.table(
            &["semnum", "value", "ncount", "zcount", "pid"],
            self.sems.iter().map(|m| {
                [
                    m.semnum.into(),
                    m.value.into(),
                    m.ncount.into(),
                    m.zcount.into(),
                    m.pid.into(),
                ]
            }),
        );
    }
}

/// `0 2 5`: the values, space-separated.
struct Values<'a>(&'a [u16]);

impl fmt::Display for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}
