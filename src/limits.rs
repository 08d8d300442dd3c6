//! `limits`: the kernel limits that decide whether an object can be made,
//! each with its current usage where the kernel shows it.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
use serde_json::{Value, json};

use crate::cli::LimitsArgs;
use crate::ls::{self, human};
use crate::mq_attrs::{AttrLimits, HARD_MSGMAX, HARD_MSGSIZEMAX, queue_cost};
use crate::output::Out;
use crate::procfs;
use crate::sys::read_proc_u64;

fn mq(f: &str) -> Option<u64> {
    read_proc_u64(&format!("/proc/sys/fs/mqueue/{f}"))
}

fn kernel(f: &str) -> Option<u64> {
    read_proc_u64(&format!("/proc/sys/kernel/{f}"))
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
                show(self.queues_max)
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

/// RLIM_INFINITY as null, a number otherwise.
fn rlim(v: u64) -> Value {
    if v == RLIM_INFINITY {
        Value::Null
    } else {
        v.into()
    }
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

pub fn run(args: &LimitsArgs, out: &mut Out) -> Result<ExitCode> {
    let s = Snapshot::read(args);
    let mut t = String::new();
    s.text_posix(&mut t);
    s.text_sysv(&mut t);
    out.record(t.trim_end(), || s.json())?;
    Ok(ExitCode::SUCCESS)
}

/// The POSIX queue sysctls of /proc/sys/fs/mqueue.
struct MqSysctls {
    msg_max: Option<u64>,
    msgsize_max: Option<u64>,
    msg_default: Option<u64>,
    msgsize_default: Option<u64>,
    queues_max: Option<u64>,
}

/// Everything `limits` shows, read once.
struct Snapshot {
    attrs: AttrLimits,
    sysctls: MqSysctls,
    /// The queue whose cost and room are shown.
    max_msgs: u32,
    msg_size: u32,
    cost: u64,
    /// RLIMIT_MSGQUEUE, soft and hard.
    soft: u64,
    hard: u64,
    /// Whether the queues could be listed; how many; what this user's cost.
    queues_listed: bool,
    mq_count: Option<u64>,
    mq_used: Option<u64>,
    room: Room,
    msg_queues: Option<u64>,
    shm_segments: Option<u64>,
    shm_bytes: Option<u64>,
    shm_pages: Option<u64>,
    page: u64,
    sem_sets: Option<u64>,
    sem_count: Option<u64>,
    /// /proc/sys/kernel/sem: semmsl, semmns, semopm, semmni.
    sem_limits: Vec<Option<u64>>,
    dev_shm_size: Option<u64>,
    dev_shm_free: Option<u64>,
    dev_shm_objects: Option<u64>,
}

impl Snapshot {
    fn read(args: &LimitsArgs) -> Snapshot {
        let attrs = AttrLimits::here();
        let sysctls = MqSysctls {
            msg_max: mq("msg_max"),
            msgsize_max: mq("msgsize_max"),
            msg_default: mq("msg_default"),
            msgsize_default: mq("msgsize_default"),
            queues_max: mq("queues_max"),
        };
        // Without --max-msgs/--msg-size: the queue mq_open makes when given
        // no attributes.
        let (default_msgs, default_size) =
            attrs.defaults(sysctls.msg_default, sysctls.msgsize_default);
        let max_msgs = args
            .max_msgs
            .or_else(|| u32::try_from(default_msgs).ok())
            .unwrap_or(10);
        let msg_size = args
            .msg_size
            .or_else(|| u32::try_from(default_size).ok())
            .unwrap_or(8192);
        let (soft, hard) =
            getrlimit(Resource::RLIMIT_MSGQUEUE).unwrap_or((RLIM_INFINITY, RLIM_INFINITY));
        let euid = nix::unistd::geteuid().as_raw();
        // Queues are listed through the mqueue filesystem (maybe a private mount).
        let queues = ls::posix_queues();
        let (mq_count, mq_used) = match &queues {
            Ok(list) => (
                Some(list.len() as u64),
                Some(
                    list.iter()
                        .filter(|q| q.uid == euid)
                        .map(|q| queue_cost(q.maxmsg.unwrap_or(0), q.msgsize.unwrap_or(0)))
                        .sum::<u64>(),
                ),
            ),
            Err(_) => (None, None),
        };
        let room = QueueRoom {
            attrs,
            max_msgs,
            msg_size,
            queues_max: sysctls.queues_max,
            queues: mq_count,
            rlimit: soft,
            used: mq_used,
        }
        .room();
        let mut s = Snapshot {
            attrs,
            sysctls,
            max_msgs,
            msg_size,
            cost: queue_cost(max_msgs, msg_size),
            soft,
            hard,
            queues_listed: queues.is_ok(),
            mq_count,
            mq_used,
            room,
            msg_queues: None,
            shm_segments: None,
            shm_bytes: None,
            shm_pages: None,
            page: 4096,
            sem_sets: None,
            sem_count: None,
            sem_limits: Vec::new(),
            dev_shm_size: None,
            dev_shm_free: None,
            dev_shm_objects: None,
        };
        s.read_sysv();
        s.read_dev_shm();
        s
    }

    /// What System V objects exist, from /proc/sysvipc, and the sem limits.
    fn read_sysv(&mut self) {
        self.msg_queues = sysvipc("msg", "qnum").map(|(count, _)| count);
        let shm = sysvipc("shm", "size");
        self.shm_segments = shm.as_ref().map(|(count, _)| *count);
        self.shm_bytes = shm
            .as_ref()
            .map(|(_, sizes)| sizes.iter().fold(0, |a: u64, b| a.saturating_add(*b)));
        self.page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |p| p as u64);
        self.shm_pages = shm.as_ref().map(|(_, sizes)| shm_pages(sizes, self.page));
        let sem = sysvipc("sem", "nsems");
        self.sem_sets = sem.as_ref().map(|(count, _)| *count);
        self.sem_count = sem.as_ref().map(|(_, n)| n.iter().sum::<u64>());
        self.sem_limits = std::fs::read_to_string("/proc/sys/kernel/sem")
            .map(|s| s.split_ascii_whitespace().map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
    }

    /// Size, room and objects of /dev/shm.
    fn read_dev_shm(&mut self) {
        let vfs = nix::sys::statvfs::statvfs("/dev/shm").ok();
        self.dev_shm_size = vfs.as_ref().map(|v| v.blocks() * v.fragment_size());
        self.dev_shm_free = vfs
            .as_ref()
            .map(|v| v.blocks_available() * v.fragment_size());
        self.dev_shm_objects = std::fs::read_dir("/dev/shm").ok().map(|d| d.count() as u64);
    }

    fn sem_at(&self, i: usize) -> Option<u64> {
        self.sem_limits.get(i).copied().flatten()
    }

    fn json(&self) -> Value {
        let (fit, fit_limit) = match &self.room {
            Room::Fit { n, limit, .. } => (Some(*n), Some(*limit)),
            Room::Unbounded | Room::Unknown => (None, None),
        };
        let m = &self.sysctls;
        let (size, free) = (self.dev_shm_size, self.dev_shm_free);
        json!({
            "posix_mqueue": {
                "msg_max": m.msg_max, "msgsize_max": m.msgsize_max,
                "msg_default": m.msg_default, "msgsize_default": m.msgsize_default,
                "queues_max": m.queues_max, "queues": self.mq_count,
                "cap_sys_resource": self.attrs.cap_sys_resource,
            },
            "rlimit_msgqueue": {
                "soft": rlim(self.soft), "hard": rlim(self.hard), "used": self.mq_used,
                "queue": {"max_msgs": self.max_msgs, "msg_size": self.msg_size, "cost": self.cost, "fit": fit, "limit": fit_limit},
            },
            "sysv_msg": {"msgmax": kernel("msgmax"), "msgmnb": kernel("msgmnb"), "msgmni": kernel("msgmni"), "queues": self.msg_queues},
            "sysv_shm": {
                "shmmax": kernel("shmmax"), "shmall": kernel("shmall"), "shmmni": kernel("shmmni"),
                "segments": self.shm_segments, "bytes": self.shm_bytes, "pages": self.shm_pages, "page_size": self.page,
            },
            "sysv_sem": {
                "semmsl": self.sem_at(0), "semmns": self.sem_at(1), "semopm": self.sem_at(2), "semmni": self.sem_at(3),
                "sets": self.sem_sets, "semaphores": self.sem_count,
            },
            "dev_shm": {"size": size, "free": free, "used": size.zip(free).map(|(s, f)| s - f), "objects": self.dev_shm_objects},
        })
    }

    /// The POSIX queue limits and RLIMIT_MSGQUEUE, as table lines.
    fn text_posix(&self, t: &mut String) {
        let m = &self.sysctls;
        let _ = writeln!(t, "POSIX message queues (/proc/sys/fs/mqueue)");
        row(
            t,
            "msg_max",
            show(m.msg_max),
            "largest --max-msgs without CAP_SYS_RESOURCE",
        );
        row(
            t,
            "msgsize_max",
            show(m.msgsize_max),
            "largest --msg-size without CAP_SYS_RESOURCE",
        );
        row(
            t,
            "msg_default",
            show(m.msg_default),
            "mq_maxmsg when mq_open gets no attributes (at most msg_max)",
        );
        row(
            t,
            "msgsize_default",
            show(m.msgsize_default),
            "mq_msgsize when mq_open gets no attributes (at most msgsize_max)",
        );
        let queues_note = if self.queues_listed {
            format!("in use: {}", show(self.mq_count))
        } else {
            "in use: unknown (mount /dev/mqueue, or run as root)".into()
        };
        row(
            t,
            "queues_max",
            show(m.queues_max),
            &format!("queues; {queues_note}"),
        );
        if self.attrs.cap_sys_resource {
            let _ = writeln!(
                t,
                "  this process has CAP_SYS_RESOURCE: up to {HARD_MSGMAX} messages of {HARD_MSGSIZEMAX} bytes, \
                 and past queues_max"
            );
        } else {
            let _ = writeln!(
                t,
                "  this process lacks CAP_SYS_RESOURCE: msg_max, msgsize_max and queues_max bind it \
                 (being root is not enough)"
            );
        }
        let _ = writeln!(t, "RLIMIT_MSGQUEUE (ulimit -q)");
        let _ = writeln!(
            t,
            "  soft {}, hard {}; this user's queues use {}",
            limit(self.soft),
            limit(self.hard),
            self.mq_used
                .map_or_else(|| "?".into(), |u| format!("{u} bytes"))
        );
        let _ = writeln!(
            t,
            "  a queue of {} x {} bytes costs {} bytes; {}",
            self.max_msgs,
            self.msg_size,
            self.cost,
            self.room.text()
        );
    }

    /// The System V limits and /dev/shm, as table lines.
    fn text_sysv(&self, t: &mut String) {
        let _ = writeln!(t, "System V message queues (/proc/sys/kernel)");
        row(t, "msgmax", show(kernel("msgmax")), "largest message");
        row(
            t,
            "msgmnb",
            show(kernel("msgmnb")),
            "bytes a new queue holds (qbytes)",
        );
        let in_use = |what: &str, n: Option<u64>| format!("{what}; in use: {}", show(n));
        row(
            t,
            "msgmni",
            show(kernel("msgmni")),
            &in_use("queues", self.msg_queues),
        );
        let _ = writeln!(t, "System V shared memory");
        row(
            t,
            "shmmax",
            show(kernel("shmmax")),
            "largest segment in bytes",
        );
        let pages = format!(
            "pages in all segments; in use: {} ({}-byte pages)",
            show(self.shm_pages),
            self.page
        );
        row(t, "shmall", show(kernel("shmall")), &pages);
        row(
            t,
            "shmmni",
            show(kernel("shmmni")),
            &in_use("segments", self.shm_segments),
        );
        let _ = writeln!(t, "System V semaphores (/proc/sys/kernel/sem)");
        row(t, "semmsl", show(self.sem_at(0)), "semaphores per set");
        row(
            t,
            "semmns",
            show(self.sem_at(1)),
            &in_use("semaphores in all", self.sem_count),
        );
        row(
            t,
            "semopm",
            show(self.sem_at(2)),
            "operations per semop call",
        );
        row(
            t,
            "semmni",
            show(self.sem_at(3)),
            &in_use("sets", self.sem_sets),
        );
        let _ = writeln!(t, "/dev/shm (POSIX shared memory and semaphores)");
        let _ = writeln!(
            t,
            "  size {}, free {}, {} objects",
            self.dev_shm_size.map_or_else(|| "?".into(), human),
            self.dev_shm_free.map_or_else(|| "?".into(), human),
            show(self.dev_shm_objects)
        );
    }
}

/// One line of the table: name, value right-aligned, what it limits.
fn row(t: &mut String, name: &str, value: String, note: &str) {
    let _ = writeln!(t, "  {name:<16} {value:>20}  {note}");
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
