//! `limits`: the kernel limits that decide whether an object can be made,
//! each with its current usage where the kernel shows it.

use std::fmt;
use std::process::ExitCode;

use anyhow::Result;
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
use serde::{Serialize, Serializer};

use crate::mq_attrs::{AttrLimits, HARD_MSGMAX, HARD_MSGSIZEMAX, queue_cost};
use crate::mqfs::{self, MqEntry};
use crate::output::{Out, human, or_unknown};
use crate::procfs;
use crate::sys::read_proc_u64;

fn mq(f: &str) -> Option<u64> {
    read_proc_u64(&format!("/proc/sys/fs/mqueue/{f}"))
}

fn kernel(f: &str) -> Option<u64> {
    read_proc_u64(&format!("/proc/sys/kernel/{f}"))
}

/// What a queue costs against its creator's RLIMIT_MSGQUEUE (0 for the
/// attributes this user may not read).
fn cost(q: &MqEntry) -> u64 {
    let u32_of = |v: i64| u32::try_from(v).unwrap_or(0);
    q.attr
        .map_or(0, |a| queue_cost(u32_of(a.maxmsg), u32_of(a.msgsize)))
}

/// A /proc/sysvipc table: its number of objects, and the values of one
/// column (lines where it does not parse left out).
fn sysvipc(file: &str, column: &str) -> Option<(u64, Vec<u64>)> {
    let text = procfs::read_sysvipc(file).ok()?;
    let table = procfs::Table::parse(&text);
    Some((table.len(), table.column_u64(column)))
}

/// The pages System V segments of these sizes take, as the kernel counts
/// them against shmall (`shm_tot`, "pages allocated" in `ipcs -u`): each
/// segment is rounded up to whole pages on its own, so three 100-byte
/// segments take 3 pages, not 1.
fn shm_pages(sizes: &[u64], page: u64) -> u64 {
    sizes
        .iter()
        .map(|s| s.div_ceil(page.max(1)))
        .fold(0, u64::saturating_add)
}

/// What bounds the number of further queues of one size, by one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// This limit does not apply to this process.
    None,
    /// This many more, then the limit refuses.
    Known(u64),
    /// A number it depends on could not be read.
    Unknown,
}

/// How many more queues of `max_msgs` x `msg_size` this process can create
/// now, by the rules of ipc/mqueue.c: the attributes within msg_max and
/// msgsize_max (HARD_MSGMAX and HARD_MSGSIZEMAX with CAP_SYS_RESOURCE),
/// fewer than queues_max queues in the namespace (unless CAP_SYS_RESOURCE),
/// and the queue's cost within what RLIMIT_MSGQUEUE leaves of this user's
/// charge.
#[derive(Debug)]
struct QueueRoom {
    attrs: AttrLimits,
    max_msgs: u32,
    msg_size: u32,
    queues_max: Option<u64>,
    queues: Option<u64>,
    /// Soft RLIMIT_MSGQUEUE, RLIM_INFINITY when unlimited.
    rlimit: u64,
    /// What this user's queues are charged now.
    used: Option<u64>,
}

/// The answer of `QueueRoom::room`.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    /// `n` more, then `limit` refuses; for 0, `why` says why none.
    Fit {
        n: u64,
        limit: &'static str,
        why: String,
    },
    /// No limit of the three applies to this process.
    Unbounded,
    /// Some limit could not be evaluated (and none says 0).
    Unknown,
}

impl QueueRoom {
    fn cost(&self) -> u64 {
        queue_cost(self.max_msgs, self.msg_size)
    }

    fn room(&self) -> Room {
        if let Some((limit, why)) = self.attrs.refusal(self.max_msgs, self.msg_size) {
            return Room::Fit {
                n: 0,
                limit: limit.name(),
                why,
            };
        }
        if !self.attrs.cap_sys_resource
            && (self.attrs.msg_max.is_none() || self.attrs.msgsize_max.is_none())
        {
            return Room::Unknown;
        }
        let cost = self.cost();
        let by_rlimit = if self.rlimit == RLIM_INFINITY {
            Bound::None
        } else if cost > self.rlimit {
            Bound::Known(0)
        } else {
            self.used.map_or(Bound::Unknown, |u| {
                Bound::Known(self.rlimit.saturating_sub(u) / cost.max(1))
            })
        };
        let by_queues = if self.attrs.cap_sys_resource {
            Bound::None
        } else {
            match (self.queues_max, self.queues) {
                (Some(m), Some(q)) => Bound::Known(m.saturating_sub(q)),
                (Some(0), None) => Bound::Known(0),
                _ => Bound::Unknown,
            }
        };
        let bounds = [(by_rlimit, "rlimit_msgqueue"), (by_queues, "queues_max")];
        let known = bounds
            .iter()
            .filter_map(|&(b, limit)| match b {
                Bound::Known(n) => Some((n, limit)),
                _ => None,
            })
            .min_by_key(|&(n, _)| n);
        match known {
            Some((0, limit)) => Room::Fit {
                n: 0,
                limit,
                why: self.none_because(limit),
            },
            _ if bounds.iter().any(|(b, _)| *b == Bound::Unknown) => Room::Unknown,
            Some((n, limit)) => Room::Fit {
                n,
                limit,
                why: String::new(),
            },
            None => Room::Unbounded,
        }
    }

    /// Why not even one more queue fits under `limit`.
    fn none_because(&self, limit: &str) -> String {
        if limit == "queues_max" {
            return format!(
                "queues_max ({}) queues exist and this process lacks CAP_SYS_RESOURCE",
                or_unknown(self.queues_max)
            );
        }
        let cost = self.cost();
        match self.used {
            Some(used) if cost <= self.rlimit => format!(
                "it costs {cost} bytes and this user's queues leave {} bytes of RLIMIT_MSGQUEUE",
                self.rlimit.saturating_sub(used)
            ),
            _ => format!(
                "it costs {cost} bytes, more than RLIMIT_MSGQUEUE ({} bytes)",
                self.rlimit
            ),
        }
    }
}

/// `fit` (how many more; null when unknown or unbounded) and `limit`
/// (the limit that stops the count).
impl Serialize for Room {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Fit {
            fit: Option<u64>,
            limit: Option<&'static str>,
        }
        let (fit, limit) = match self {
            Room::Fit { n, limit, .. } => (Some(*n), Some(*limit)),
            Room::Unbounded | Room::Unknown => (None, None),
        };
        Fit { fit, limit }.serialize(s)
    }
}

impl Room {
    /// How the limits line says it: `9 more fit, then RLIMIT_MSGQUEUE
    /// refuses`, `none fit: ...`.
    fn text(&self) -> String {
        match self {
            Room::Fit { n: 0, why, .. } => format!("none fit: {why}"),
            Room::Fit { n, limit, .. } => {
                let limit = if *limit == "rlimit_msgqueue" {
                    "RLIMIT_MSGQUEUE"
                } else {
                    limit
                };
                format!("{n} more fit, then {limit} refuses")
            }
            Room::Unbounded => {
                "no limit on how many more fit (RLIMIT_MSGQUEUE unlimited, CAP_SYS_RESOURCE)".into()
            }
            Room::Unknown => {
                "how many more fit is unknown (this user's queues or a limit could not be read)"
                    .into()
            }
        }
    }
}

/// RLIM_INFINITY as null, a number otherwise (serde's `serialize_with`).
fn rlim<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    if *v == RLIM_INFINITY {
        s.serialize_none()
    } else {
        s.serialize_u64(*v)
    }
}

/// What `limits` was asked for: the queue whose cost and room are shown
/// (None: what mq_open gives a queue created without attributes).
pub struct LimitsOptions {
    pub max_msgs: Option<u32>,
    pub msg_size: Option<u32>,
    /// `-A`: the limits of every IPC namespace on the host.
    pub all_namespaces: bool,
}

pub fn run(opts: &LimitsOptions, out: &mut Out) -> Result<ExitCode> {
    if opts.all_namespaces {
        return run_all(opts, out);
    }
    let limits = Limits::read(opts);
    out.record(&limits, || &limits)?;
    Ok(ExitCode::SUCCESS)
}

/// One namespace's limits as its child read them: the table and the JSON.
#[derive(Serialize, serde::Deserialize)]
struct Read {
    text: String,
    json: serde_json::Value,
}

impl Read {
    fn here(opts: &LimitsOptions) -> Result<Read> {
        let limits = Limits::read(opts);
        Ok(Read {
            text: limits.to_string(),
            json: serde_json::to_value(&limits)?,
        })
    }
}

/// One namespace's record of `limits -A`.
#[derive(Serialize)]
struct NsRecord<'a> {
    namespace: u64,
    pid: i32,
    container: Option<String>,
    current: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The sysctls of /proc/sys/kernel (msg*, shm*, sem) and /proc/sys/fs/mqueue
/// are those of the reader's IPC namespace, /dev/shm that of its mount
/// namespace: a child joins both for each namespace but the current one.
fn run_all(opts: &LimitsOptions, out: &mut Out) -> Result<ExitCode> {
    let found = crate::namespaces::discover();
    for ns in &found.list {
        let read = if ns.current {
            Read::here(opts).map_err(|e| format!("{e:#}"))
        } else {
            crate::ls::in_namespace(ns.inode, || Ok(serde_json::to_vec(&Read::here(opts)?)?))
                .and_then(|b| serde_json::from_slice::<Read>(&b).map_err(|e| e.to_string()))
        };
        let pid = ns.representative().unwrap_or(0);
        let container = ns.container.as_ref().map(ToString::to_string);
        let head = format!(
            "IPC namespace ipc:[{}] (pid {pid}{}{})",
            ns.inode,
            container
                .as_deref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default(),
            if ns.current { ", current" } else { "" }
        );
        let record = NsRecord {
            namespace: ns.inode,
            pid,
            container: container.clone(),
            current: ns.current,
            limits: read.as_ref().ok().map(|r| &r.json),
            error: read.as_ref().err().map(String::as_str),
        };
        let text = match &read {
            Ok(r) => format!("{head}\n{}", r.text.trim_end()),
            Err(why) => format!("{head}\ncould not read: {why}"),
        };
        out.record(text, || &record)?;
    }
    if let Some(note) = found.unreadable_note() {
        out.flush()?;
        eprintln!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Everything `limits` shows, read once: the JSON document, and the table
/// its `Display` prints.
#[derive(Serialize)]
struct Limits {
    posix_mqueue: PosixMqueue,
    rlimit_msgqueue: RlimitMsgqueue,
    sysv_msg: SysvMsg,
    sysv_shm: SysvShm,
    sysv_sem: SysvSem,
    dev_shm: DevShm,
}

/// The POSIX queue sysctls of /proc/sys/fs/mqueue, and the queues there are.
#[derive(Serialize)]
struct PosixMqueue {
    msg_max: Option<u64>,
    msgsize_max: Option<u64>,
    msg_default: Option<u64>,
    msgsize_default: Option<u64>,
    queues_max: Option<u64>,
    /// None when the queues cannot be listed.
    queues: Option<u64>,
    cap_sys_resource: bool,
}

/// RLIMIT_MSGQUEUE, what this user's queues are charged, and the room for
/// one more queue.
#[derive(Serialize)]
struct RlimitMsgqueue {
    #[serde(serialize_with = "rlim")]
    soft: u64,
    #[serde(serialize_with = "rlim")]
    hard: u64,
    used: Option<u64>,
    queue: Queue,
}

/// The queue whose cost and room are shown.
#[derive(Serialize)]
struct Queue {
    max_msgs: u32,
    msg_size: u32,
    cost: u64,
    #[serde(flatten)]
    room: Room,
}

#[derive(Serialize)]
struct SysvMsg {
    msgmax: Option<u64>,
    msgmnb: Option<u64>,
    msgmni: Option<u64>,
    queues: Option<u64>,
}

#[derive(Serialize)]
struct SysvShm {
    shmmax: Option<u64>,
    shmall: Option<u64>,
    shmmni: Option<u64>,
    segments: Option<u64>,
    bytes: Option<u64>,
    /// Pages as the kernel counts them against shmall.
    pages: Option<u64>,
    page_size: u64,
}

/// /proc/sys/kernel/sem and the sets there are.
#[derive(Serialize)]
struct SysvSem {
    semmsl: Option<u64>,
    semmns: Option<u64>,
    semopm: Option<u64>,
    semmni: Option<u64>,
    sets: Option<u64>,
    semaphores: Option<u64>,
}

#[derive(Serialize)]
struct DevShm {
    size: Option<u64>,
    free: Option<u64>,
    used: Option<u64>,
    objects: Option<u64>,
}

impl Limits {
    fn read(opts: &LimitsOptions) -> Limits {
        let attrs = AttrLimits::here();
        // Queues are listed through the mqueue filesystem (maybe a private mount).
        let euid = nix::unistd::geteuid().as_raw();
        let (queues, used) = match mqfs::list() {
            Ok(list) => (
                Some(list.queues.len() as u64),
                Some(list.queues.iter().filter(|q| q.uid == euid).map(cost).sum()),
            ),
            Err(_) => (None, None),
        };
        let posix_mqueue = PosixMqueue {
            msg_max: mq("msg_max"),
            msgsize_max: mq("msgsize_max"),
            msg_default: mq("msg_default"),
            msgsize_default: mq("msgsize_default"),
            queues_max: mq("queues_max"),
            queues,
            cap_sys_resource: attrs.cap_sys_resource,
        };
        Limits {
            rlimit_msgqueue: RlimitMsgqueue::read(opts, attrs, &posix_mqueue, used),
            posix_mqueue,
            sysv_msg: SysvMsg::read(),
            sysv_shm: SysvShm::read(),
            sysv_sem: SysvSem::read(),
            dev_shm: DevShm::read(),
        }
    }
}

impl RlimitMsgqueue {
    /// RLIMIT_MSGQUEUE, and the room for the queue of `opts` given what
    /// this user's queues use.
    fn read(
        opts: &LimitsOptions,
        attrs: AttrLimits,
        m: &PosixMqueue,
        used: Option<u64>,
    ) -> RlimitMsgqueue {
        // Without --max-msgs/--msg-size: the queue mq_open makes when given
        // no attributes.
        let (default_msgs, default_size) = attrs.defaults(m.msg_default, m.msgsize_default);
        let max_msgs = opts
            .max_msgs
            .or_else(|| u32::try_from(default_msgs).ok())
            .unwrap_or(10);
        let msg_size = opts
            .msg_size
            .or_else(|| u32::try_from(default_size).ok())
            .unwrap_or(8192);
        let (soft, hard) =
            getrlimit(Resource::RLIMIT_MSGQUEUE).unwrap_or((RLIM_INFINITY, RLIM_INFINITY));
        let room = QueueRoom {
            attrs,
            max_msgs,
            msg_size,
            queues_max: m.queues_max,
            queues: m.queues,
            rlimit: soft,
            used,
        }
        .room();
        RlimitMsgqueue {
            soft,
            hard,
            used,
            queue: Queue {
                max_msgs,
                msg_size,
                cost: queue_cost(max_msgs, msg_size),
                room,
            },
        }
    }
}

impl SysvMsg {
    fn read() -> SysvMsg {
        SysvMsg {
            msgmax: kernel("msgmax"),
            msgmnb: kernel("msgmnb"),
            msgmni: kernel("msgmni"),
            queues: sysvipc("msg", "qnum").map(|(count, _)| count),
        }
    }
}

impl SysvShm {
    fn read() -> SysvShm {
        let shm = sysvipc("shm", "size");
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |p| p as u64);
        SysvShm {
            shmmax: kernel("shmmax"),
            shmall: kernel("shmall"),
            shmmni: kernel("shmmni"),
            segments: shm.as_ref().map(|(count, _)| *count),
            bytes: shm
                .as_ref()
                .map(|(_, sizes)| sizes.iter().fold(0, |a: u64, b| a.saturating_add(*b))),
            pages: shm.as_ref().map(|(_, sizes)| shm_pages(sizes, page_size)),
            page_size,
        }
    }
}

impl SysvSem {
    fn read() -> SysvSem {
        // semmsl, semmns, semopm, semmni.
        let limits: Vec<Option<u64>> = std::fs::read_to_string("/proc/sys/kernel/sem")
            .map(|s| s.split_ascii_whitespace().map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        let at = |i: usize| limits.get(i).copied().flatten();
        let sem = sysvipc("sem", "nsems");
        SysvSem {
            semmsl: at(0),
            semmns: at(1),
            semopm: at(2),
            semmni: at(3),
            sets: sem.as_ref().map(|(count, _)| *count),
            semaphores: sem.as_ref().map(|(_, n)| n.iter().sum::<u64>()),
        }
    }
}

impl DevShm {
    /// Size, room and objects of /dev/shm.
    fn read() -> DevShm {
        let vfs = nix::sys::statvfs::statvfs("/dev/shm").ok();
        let size = vfs.as_ref().map(|v| v.blocks() * v.fragment_size());
        let free = vfs
            .as_ref()
            .map(|v| v.blocks_available() * v.fragment_size());
        DevShm {
            size,
            free,
            used: size.zip(free).map(|(s, f)| s.saturating_sub(f)),
            objects: std::fs::read_dir("/dev/shm").ok().map(|d| d.count() as u64),
        }
    }
}

/// The table: one line per limit with its value and what it bounds.
impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.posix_mqueue.fmt(f)?;
        self.rlimit_msgqueue.fmt(f)?;
        self.sysv_msg.fmt(f)?;
        self.sysv_shm.fmt(f)?;
        self.sysv_sem.fmt(f)?;
        // The last line ends the record: Out adds its line break.
        let d = &self.dev_shm;
        writeln!(f, "/dev/shm (POSIX shared memory and semaphores)")?;
        write!(
            f,
            "  size {}, free {}, {} objects",
            d.size.map_or_else(|| "?".into(), human),
            d.free.map_or_else(|| "?".into(), human),
            or_unknown(d.objects)
        )
    }
}

impl fmt::Display for PosixMqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "POSIX message queues (/proc/sys/fs/mqueue)")?;
        let max = "without CAP_SYS_RESOURCE";
        row(
            f,
            "msg_max",
            self.msg_max,
            &format!("largest --max-msgs {max}"),
        )?;
        row(
            f,
            "msgsize_max",
            self.msgsize_max,
            &format!("largest --msg-size {max}"),
        )?;
        let default =
            |field, cap| format!("{field} when mq_open gets no attributes (at most {cap})");
        row(
            f,
            "msg_default",
            self.msg_default,
            &default("mq_maxmsg", "msg_max"),
        )?;
        let note = default("mq_msgsize", "msgsize_max");
        row(f, "msgsize_default", self.msgsize_default, &note)?;
        let in_use = match self.queues {
            Some(n) => format!("in use: {n}"),
            None => "in use: unknown (mount /dev/mqueue, or run as root)".into(),
        };
        row(
            f,
            "queues_max",
            self.queues_max,
            &format!("queues; {in_use}"),
        )?;
        if self.cap_sys_resource {
            writeln!(
                f,
                "  this process has CAP_SYS_RESOURCE: up to {HARD_MSGMAX} messages of {HARD_MSGSIZEMAX} bytes, \
                 and past queues_max"
            )
        } else {
            writeln!(
                f,
                "  this process lacks CAP_SYS_RESOURCE: msg_max, msgsize_max and queues_max bind it \
                 (being root is not enough)"
            )
        }
    }
}

impl fmt::Display for RlimitMsgqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "RLIMIT_MSGQUEUE (ulimit -q)")?;
        writeln!(
            f,
            "  soft {}, hard {}; this user's queues use {}",
            limit(self.soft),
            limit(self.hard),
            self.used
                .map_or_else(|| "?".into(), |u| format!("{u} bytes"))
        )?;
        let q = &self.queue;
        writeln!(
            f,
            "  a queue of {} x {} bytes costs {} bytes; {}",
            q.max_msgs,
            q.msg_size,
            q.cost,
            q.room.text()
        )
    }
}

impl fmt::Display for SysvMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "System V message queues (/proc/sys/kernel)")?;
        row(f, "msgmax", self.msgmax, "largest message")?;
        row(f, "msgmnb", self.msgmnb, "bytes a new queue holds (qbytes)")?;
        row(f, "msgmni", self.msgmni, &in_use("queues", self.queues))
    }
}

impl fmt::Display for SysvShm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "System V shared memory")?;
        row(f, "shmmax", self.shmmax, "largest segment in bytes")?;
        let pages = format!(
            "pages in all segments; in use: {} ({}-byte pages)",
            or_unknown(self.pages),
            self.page_size
        );
        row(f, "shmall", self.shmall, &pages)?;
        row(f, "shmmni", self.shmmni, &in_use("segments", self.segments))
    }
}

impl fmt::Display for SysvSem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "System V semaphores (/proc/sys/kernel/sem)")?;
        row(f, "semmsl", self.semmsl, "semaphores per set")?;
        let all = in_use("semaphores in all", self.semaphores);
        row(f, "semmns", self.semmns, &all)?;
        row(f, "semopm", self.semopm, "operations per semop call")?;
        row(f, "semmni", self.semmni, &in_use("sets", self.sets))
    }
}

/// `queues; in use: 3`
fn in_use(what: &str, n: Option<u64>) -> String {
    format!("{what}; in use: {}", or_unknown(n))
}

/// One line of the table: name, value right-aligned, what it limits.
fn row(f: &mut fmt::Formatter<'_>, name: &str, value: Option<u64>, note: &str) -> fmt::Result {
    writeln!(f, "  {name:<16} {:>20}  {note}", or_unknown(value))
}

/// An RLIMIT as text: `unlimited` or `N bytes`.
fn limit(v: u64) -> String {
    if v == RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        format!("{v} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_segment_is_rounded_up_to_whole_pages() {
        assert_eq!(shm_pages(&[100, 100, 100], 4096), 3);
        assert_eq!(shm_pages(&[4096, 4097, 1], 4096), 4);
        assert_eq!(shm_pages(&[], 4096), 0);
        assert_eq!(shm_pages(&[0], 4096), 0);
    }

    fn room(cap: bool, max_msgs: u32, rlimit: u64, used: Option<u64>, queues: Option<u64>) -> Room {
        QueueRoom {
            attrs: AttrLimits {
                msg_max: Some(10),
                msgsize_max: Some(8192),
                cap_sys_resource: cap,
            },
            max_msgs,
            msg_size: 8192,
            queues_max: Some(256),
            queues,
            rlimit,
            used,
        }
        .room()
    }

    fn fit(r: &Room) -> (u64, &'static str) {
        match r {
            Room::Fit { n, limit, .. } => (*n, *limit),
            r => panic!("no fit: {r:?}"),
        }
    }

    #[test]
    fn the_rlimit_bounds_the_number() {
        let cost = queue_cost(10, 8192);
        assert_eq!(
            fit(&room(false, 10, 819_200, Some(0), Some(0))),
            (9, "rlimit_msgqueue")
        );
        assert_eq!(
            fit(&room(false, 10, 819_200, Some(819_200 - cost), Some(3))),
            (1, "rlimit_msgqueue")
        );
        let r = room(false, 10, 1000, Some(0), Some(0));
        assert_eq!(fit(&r), (0, "rlimit_msgqueue"));
        assert!(r.text().starts_with("none fit: it costs"), "{}", r.text());
        // Too small for one queue, whatever this user's queues use.
        assert_eq!(fit(&room(false, 10, 1000, None, None)).0, 0);
        // Otherwise an unknown use gives no number.
        assert_eq!(room(false, 10, 819_200, None, Some(0)), Room::Unknown);
    }

    #[test]
    fn queues_max_binds_without_the_capability_only() {
        let r = room(false, 1, RLIM_INFINITY, Some(0), Some(250));
        assert_eq!(fit(&r), (6, "queues_max"));
        assert_eq!(r.text(), "6 more fit, then queues_max refuses");
        let r = room(false, 1, RLIM_INFINITY, Some(0), Some(256));
        assert_eq!(fit(&r), (0, "queues_max"));
        assert!(r.text().contains("CAP_SYS_RESOURCE"), "{}", r.text());
        assert_eq!(
            room(true, 1, RLIM_INFINITY, Some(0), Some(256)),
            Room::Unbounded
        );
    }

    #[test]
    fn attributes_above_the_limits_fit_nowhere() {
        let r = room(false, 11, 819_200, Some(0), Some(0));
        assert_eq!(fit(&r), (0, "msg_max"));
        assert!(r.text().contains("msg_max (10)"), "{}", r.text());
        // CAP_SYS_RESOURCE lifts msg_max, not the rlimit.
        assert_eq!(
            fit(&room(true, 11, 819_200, Some(0), Some(0))),
            (8, "rlimit_msgqueue")
        );
        assert_eq!(
            fit(&room(true, 70_000, 819_200, Some(0), Some(0))),
            (0, "hard_msgmax")
        );
    }
}
