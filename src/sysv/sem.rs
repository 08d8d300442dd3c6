//! System V semaphore set of one semaphore: `semget`, `semop`,
//! `semtimedop`, `semctl`.
//!
//! The libc crate declares semctl (variadic) but not semtimedop, which glibc
//! has had since 2.3.3; it is declared below. All `unsafe` is in `SemSet`.
//! A semaphore id is not a process resource, so `SemSet` has no `Drop`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;

use crate::cli::{Mode, SysvSemArgs};
use crate::error::{fail_with_hint, hinted, usage};
use crate::output::Out;
use crate::serve::{Flow, Server};
use crate::sys::secs;
use crate::sysv::common::{Addr, Perm, StatLines, SysvObject, addr, clean, find, limit_hint};
use crate::target::{FileMode, SysvKey};

/// SEMVMX on Linux: the largest value a System V semaphore holds.
pub const SEMVMX: u32 = 32767;

unsafe extern "C" {
    /// glibc: `int semtimedop(int, struct sembuf *, size_t, const struct timespec *)`.
    fn semtimedop(
        semid: libc::c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> libc::c_int;
}

/// The fourth argument of semctl. glibc reads it with `va_arg(ap, union
/// semun)`, so it is passed as that union, not as a bare int or pointer
/// (which differ from the union on some ABIs).
#[repr(C)]
#[derive(Clone, Copy)]
union Semun {
    val: libc::c_int,
    buf: *mut libc::semid_ds,
    array: *mut libc::c_ushort,
}

/// A System V semaphore set, by id; this tool uses semaphore 0.
#[derive(Debug, Clone, Copy)]
pub struct SemSet {
    id: libc::c_int,
}

/// One semaphore of a set: what `ipcs -s -i` prints for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Semaphore {
    pub semnum: u32,
    pub value: u16,
    /// Processes waiting for the value to increase (GETNCNT).
    pub ncount: i32,
    /// Processes waiting for the value to become zero (GETZCNT).
    pub zcount: i32,
    /// The last process that operated on it (GETPID), 0 if none.
    pub pid: i32,
}

impl Semaphore {
    /// `{"semnum":0,"value":1,"ncount":0,"zcount":0,"pid":123}`
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "semnum": self.semnum, "value": self.value,
            "ncount": self.ncount, "zcount": self.zcount, "pid": self.pid,
        })
    }
}

/// The outcome of taking a unit.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// Value 0 and no wait asked for, or the wait timed out.
    Busy,
}

impl SemSet {
    /// `semget(key, 1, IPC_CREAT|IPC_EXCL|mode)`: EEXIST when the key is taken.
    ///
    /// # References
    /// [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
    pub fn create(key: SysvKey, mode: FileMode) -> Result<SemSet, Errno> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | mode.bits() as libc::c_int;
        // SAFETY: semget takes plain integers and touches no memory of ours.
        let id = Errno::result(unsafe { libc::semget(key.raw(), 1, flags) })?;
        Ok(SemSet { id })
    }

    /// `semctl(GETVAL)` of semaphore 0.
    pub fn value(&self) -> Result<i32, Errno> {
        // SAFETY: GETVAL reads no fourth argument.
        Errno::result(unsafe { libc::semctl(self.id, 0, libc::GETVAL) })
    }

    /// `semctl(GETALL)`: every value of the set, `nsems` long, where
    /// `nsems` is the set's `sem_nsems` (IPC_STAT).
    fn values(&self, nsems: usize) -> Result<Vec<u16>, Errno> {
        // One element at least, so the pointer is never dangling.
        let mut values = vec![0 as libc::c_ushort; nsems.max(1)];
        let arg = Semun {
            array: values.as_mut_ptr(),
        };
        // SAFETY: GETALL writes sem_nsems unsigned shorts through the union's
        // array; `values` has at least that many (nsems comes from IPC_STAT
        // of this id, and a set never changes its size).
        Errno::result(unsafe { libc::semctl(self.id, 0, libc::GETALL, arg) })?;
        values.truncate(nsems);
        Ok(values)
    }

    /// `semctl(cmd)` for semaphore `num`, for the commands that read no
    /// fourth argument and return a count or pid: GETNCNT, GETZCNT, GETPID.
    fn per_semaphore(&self, num: u32, cmd: libc::c_int) -> Result<i32, Errno> {
        let num = libc::c_int::try_from(num).map_err(|_| Errno::EINVAL)?;
        // SAFETY: GETNCNT, GETZCNT and GETPID read no fourth argument.
        Errno::result(unsafe { libc::semctl(self.id, num, cmd) })
    }

    /// Every semaphore of the set as `ipcs -s -i` shows it: IPC_STAT for
    /// the size, `semctl(GETALL)` for the values, then GETNCNT, GETZCNT and
    /// GETPID of each.
    ///
    /// # Errors
    /// EACCES without read permission; EINVAL or EIDRM when the set is gone.
    ///
    /// # References
    /// [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
    pub fn semaphores(&self) -> Result<Vec<Semaphore>, Errno> {
        let nsems = self.stat()?.sem_nsems as usize;
        let values = self.values(nsems)?;
        (0u32..)
            .zip(values)
            .map(|(semnum, value)| {
                Ok(Semaphore {
                    semnum,
                    value,
                    ncount: self.per_semaphore(semnum, libc::GETNCNT)?,
                    zcount: self.per_semaphore(semnum, libc::GETZCNT)?,
                    pid: self.per_semaphore(semnum, libc::GETPID)?,
                })
            })
            .collect()
    }

    /// `semctl(SETVAL)` of semaphore 0 (ERANGE above SEMVMX).
    pub fn set_value(&self, value: u32) -> Result<(), Errno> {
        let arg = Semun {
            val: libc::c_int::try_from(value).map_err(|_| Errno::ERANGE)?,
        };
        // SAFETY: SETVAL reads the union's val.
        Errno::result(unsafe { libc::semctl(self.id, 0, libc::SETVAL, arg) })?;
        Ok(())
    }

    /// `semop`, or `semtimedop` with `timeout`, of `ops` (sem_num, sem_op,
    /// sem_flg) applied atomically. Never restarted after a signal handler
    /// (signal(7)): EINTR is the caller's to handle; EAGAIN means IPC_NOWAIT
    /// found the value too low or the timeout passed.
    pub fn op(&self, ops: &[(u16, i16, i16)], timeout: Option<Duration>) -> Result<(), Errno> {
        let mut sops: Vec<libc::sembuf> = ops
            .iter()
            .map(|&(sem_num, sem_op, sem_flg)| libc::sembuf {
                sem_num,
                sem_op,
                sem_flg,
            })
            .collect();
        let ret = match timeout {
            Some(t) => {
                let ts = libc::timespec {
                    tv_sec: t.as_secs() as libc::time_t,
                    tv_nsec: t.subsec_nanos() as libc::c_long,
                };
                // SAFETY: sops holds sops.len() sembufs and ts is a valid
                // relative timeout; both outlive the call.
                unsafe { semtimedop(self.id, sops.as_mut_ptr(), sops.len(), &ts) }
            }
            // SAFETY: sops holds sops.len() sembufs that outlive the call.
            None => unsafe { libc::semop(self.id, sops.as_mut_ptr(), sops.len()) },
        };
        Errno::result(ret)?;
        Ok(())
    }
}

/// Flags of one semop.
fn flags(nowait: bool, undo: bool) -> i16 {
    let mut f = 0;
    if nowait {
        f |= libc::IPC_NOWAIT;
    }
    if undo {
        f |= libc::SEM_UNDO;
    }
    f as i16
}

/// Create the set and give it its first value, or open the existing one.
/// Returns whether this call created it.
///
/// The classic System V initialisation race: semget(IPC_CREAT) and SETVAL are
/// two calls, so another process may see the set between them, with value 0.
/// The creator (IPC_EXCL tells it that it is the creator) sets the value and
/// then performs one semop that leaves the value unchanged (-1 then +1, or +1
/// then -1 at 0), which makes `sem_otime` non-zero: the sign that the set is
/// ready. A process that opens an existing set waits for that sign, see
/// `wait_ready`.
fn open_or_create(key: SysvKey, mode: FileMode, value: u32) -> Result<(SemSet, bool)> {
    for _ in 0..2 {
        match SemSet::create(key, mode) {
            Ok(set) => {
                // -1 then +1 needs a unit, +1 then -1 needs room below
                // SEMVMX; one of the two always works, even if a process that
                // does not wait for sem_otime changed the value meanwhile.
                let nowait = flags(true, false);
                let init = set.set_value(value).and_then(|()| {
                    set.op(&[(0, -1, nowait), (0, 1, nowait)], None)
                        .or_else(|_| set.op(&[(0, 1, nowait), (0, -1, nowait)], None))
                });
                if let Err(e) = init {
                    // Never leave a half-made semaphore behind.
                    let _ = set.remove();
                    return Err(e).with_context(|| {
                        format!("cannot set the value of semaphore {key} to {value}")
                    });
                }
                return Ok((set, true));
            }
            Err(Errno::EEXIST) => {}
            Err(e @ Errno::ENOSPC) => {
                return Err(hinted(e, limit_hint("semaphore", "sem")))
                    .with_context(|| format!("cannot create semaphore {key}"));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create semaphore {key}")),
        }
        match open(key) {
            Ok(set) => return Ok((set, false)),
            Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::ENOENT) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(anyhow!(
        "cannot open semaphore {key}: it was removed while opening it"
    ))
}

/// How long an opener waits, at most, for a creator to finish initialising.
const READY_WAIT: Duration = Duration::from_secs(1);

/// Open an existing set and wait until it is initialised, briefly and boundedly.
///
/// Ready means `sem_otime != 0` (a creator following the protocol has done
/// its semop). `ipcmk -S`, Python's `sysv_ipc` and many C programs never do
/// that semop, so their sets keep `sem_otime == 0` until first used; they
/// must still work. So the wait ends as soon as `sem_otime` is set, or once
/// the set was last changed (`sem_ctime`: creation or SETVAL) READY_WAIT ago
/// or more, which no creator in mid-initialisation can be; the whole wait is
/// capped at READY_WAIT, polling every 10 ms.
fn wait_ready(set: &SemSet) -> Result<(), Errno> {
    let start = Instant::now();
    loop {
        let ds = set.stat()?;
        if ds.sem_otime != 0 {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let age = now.saturating_sub(ds.sem_ctime);
        if age > READY_WAIT.as_secs() as i64 || start.elapsed() >= READY_WAIT {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Open an existing set (clients never create one), ready to use.
fn open(key: SysvKey) -> Result<SemSet> {
    let set = SemSet::open(key)
        .map_err(|e| match e {
            Errno::ENOENT => fail_with_hint(
                "no such semaphore",
                format!("a client never creates one: start the server first (examples-ipc sysv sem -s -k {key})"),
            ),
            e => e.into(),
        })
        .with_context(|| format!("cannot open semaphore {key}"))?;
    wait_ready(&set).with_context(|| format!("cannot open semaphore {key}"))?;
    Ok(set)
}

impl SysvObject for SemSet {
    type Ds = libc::semid_ds;
    const WHAT: &'static str = "semaphore";
    const MECHANISM: &'static str = "sysv-sem";

    /// `semget(key, 0, 0)`: an existing set; ENOENT when there is none.
    fn open(key: SysvKey) -> Result<Self, Errno> {
        // SAFETY: semget takes plain integers and touches no memory of ours.
        let id = Errno::result(unsafe { libc::semget(key.raw(), 0, 0) })?;
        Ok(SemSet { id })
    }

    fn with_id(id: libc::c_int) -> Self {
        SemSet { id }
    }

    fn id(&self) -> libc::c_int {
        self.id
    }

    /// `semctl(IPC_STAT)`
    fn stat(&self) -> Result<libc::semid_ds, Errno> {
        // SAFETY: semid_ds is plain old data (integers only): all zero is valid.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        let arg = Semun { buf: &mut ds };
        // SAFETY: IPC_STAT reads the union's buf, a valid writable semid_ds.
        Errno::result(unsafe { libc::semctl(self.id, 0, libc::IPC_STAT, arg) })?;
        Ok(ds)
    }

    /// `semctl(IPC_RMID)`: wakes every waiter with EIDRM.
    fn remove(&self) -> Result<(), Errno> {
        // SAFETY: IPC_RMID reads no fourth argument.
        Errno::result(unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) })?;
        Ok(())
    }
}

pub fn run(args: &SysvSemArgs, out: &mut Out) -> Result<ExitCode> {
    let mode = args.mode.mode();
    let at = addr(&args.target, mode)?;
    match mode {
        Mode::Server => server(args, out),
        Mode::Client => client(args, out),
        Mode::Clean => clean::<SemSet>(at, out),
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
    if args.sem.release {
        set.op(&[(0, 1, flags(false, args.undo))], None)
            .map_err(|e| match e {
                Errno::ERANGE => anyhow!("the value is at SEMVMX ({SEMVMX})"),
                e => removed(key, e),
            })
            .with_context(|| format!("cannot give a unit back to {key}"))?;
        let value = set.value().map_err(|e| removed(key, e))?;
        out.event(
            "released",
            format_args!("gave one unit back to {key}; semaphore: {value}{undo_note}"),
            |f| {
                f.insert("key".into(), key.to_string().into());
                f.insert("id".into(), set.id().into());
                f.insert("value".into(), value.into());
                f.insert("undo".into(), args.undo.into());
            },
        )?;
        return Ok(ExitCode::SUCCESS);
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
    let value = set.value().map_err(|e| removed(key, e))?;
    out.event(
        "taken",
        format_args!("took one unit of {key}; semaphore: {value}{undo_note}"),
        |f| {
            f.insert("key".into(), key.to_string().into());
            f.insert("id".into(), set.id().into());
            f.insert("value".into(), value.into());
            f.insert("undo".into(), args.undo.into());
        },
    )?;
    Ok(ExitCode::SUCCESS)
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
    let (set, ds) = find::<SemSet>(at).with_context(|| format!("cannot stat semaphore ({at})"))?;
    let sems = set
        .semaphores()
        .with_context(|| format!("cannot read the values of semaphore ({at})"))?;
    let values: Vec<u16> = sems.iter().map(|s| s.value).collect();
    let perm = Perm::from_raw(&ds.sem_perm, set.id());
    let mut s = StatLines::new("sysv-sem", "sysv sem", &perm);
    s.number("nsems", sems.len() as u64);
    let shown: Vec<String> = values.iter().map(u16::to_string).collect();
    s.line("values", shown.join(" "), values.into());
    s.time("otime", ds.sem_otime);
    s.time("ctime", ds.sem_ctime);
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
    let (text, json) = s.into_parts();
    out.record(text, || json)?;
    Ok(ExitCode::SUCCESS)
}
