//! `limits`: the kernel limits that decide whether an object can be made,
//! each with its current usage where the kernel shows it.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use nix::sys::resource::{Resource, getrlimit};
use serde_json::{Value, json};

use crate::cli::LimitsArgs;
use crate::ls::{self, human};
use crate::output::Out;
use crate::posix::msq::queue_cost;
use crate::sys::read_proc_u64;

fn mq(f: &str) -> Option<u64> {
    read_proc_u64(&format!("/proc/sys/fs/mqueue/{f}"))
}

fn kernel(f: &str) -> Option<u64> {
    read_proc_u64(&format!("/proc/sys/kernel/{f}"))
}

/// Data lines of a /proc/sysvipc table, and the sum of one column.
fn sysvipc(file: &str, column: &str) -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{file}")) else {
        return (None, None);
    };
    let mut lines = text.lines();
    let col = lines
        .next()
        .and_then(|h| h.split_ascii_whitespace().position(|c| c == column));
    let mut count = 0;
    let mut sum = 0u64;
    for l in lines {
        count += 1;
        if let Some(v) = col
            .and_then(|i| l.split_ascii_whitespace().nth(i))
            .and_then(|v| v.parse::<u64>().ok())
        {
            sum = sum.saturating_add(v);
        }
    }
    (Some(count), Some(sum))
}

/// RLIM_INFINITY as null, a number otherwise.
fn rlim(v: u64) -> Value {
    if v == libc::RLIM_INFINITY {
        Value::Null
    } else {
        v.into()
    }
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

pub fn run(args: &LimitsArgs, out: &mut Out) -> Result<ExitCode> {
    let max_msgs = args
        .max_msgs
        .or_else(|| mq("msg_default").and_then(|v| u32::try_from(v).ok()))
        .unwrap_or(10);
    let msg_size = args
        .msg_size
        .or_else(|| mq("msgsize_default").and_then(|v| u32::try_from(v).ok()))
        .unwrap_or(8192);
    let cost = queue_cost(max_msgs, msg_size);
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_MSGQUEUE).unwrap_or((libc::RLIM_INFINITY, libc::RLIM_INFINITY));
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
    let fit = (soft != libc::RLIM_INFINITY && cost > 0)
        .then(|| soft.saturating_sub(mq_used.unwrap_or(0)) / cost);
    let (msg_queues, _) = sysvipc("msg", "qnum");
    let (shm_segments, shm_bytes) = sysvipc("shm", "size");
    let (sem_sets, sem_count) = sysvipc("sem", "nsems");
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as u64);
    let shm_pages = shm_bytes.map(|b| b.div_ceil(page));
    let sem: Vec<Option<u64>> = std::fs::read_to_string("/proc/sys/kernel/sem")
        .map(|s| s.split_ascii_whitespace().map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let sem_at = |i: usize| sem.get(i).copied().flatten();
    let vfs = nix::sys::statvfs::statvfs("/dev/shm").ok();
    let shm_size = vfs.as_ref().map(|v| v.blocks() * v.fragment_size());
    let shm_free = vfs
        .as_ref()
        .map(|v| v.blocks_available() * v.fragment_size());
    let shm_objects = std::fs::read_dir("/dev/shm").ok().map(|d| d.count() as u64);

    let doc = json!({
        "posix_mqueue": {
            "msg_max": mq("msg_max"), "msgsize_max": mq("msgsize_max"),
            "msg_default": mq("msg_default"), "msgsize_default": mq("msgsize_default"),
            "queues_max": mq("queues_max"), "queues": mq_count,
        },
        "rlimit_msgqueue": {
            "soft": rlim(soft), "hard": rlim(hard), "used": mq_used,
            "queue": {"max_msgs": max_msgs, "msg_size": msg_size, "cost": cost, "fit": fit},
        },
        "sysv_msg": {"msgmax": kernel("msgmax"), "msgmnb": kernel("msgmnb"), "msgmni": kernel("msgmni"), "queues": msg_queues},
        "sysv_shm": {
            "shmmax": kernel("shmmax"), "shmall": kernel("shmall"), "shmmni": kernel("shmmni"),
            "segments": shm_segments, "bytes": shm_bytes, "pages": shm_pages, "page_size": page,
        },
        "sysv_sem": {
            "semmsl": sem_at(0), "semmns": sem_at(1), "semopm": sem_at(2), "semmni": sem_at(3),
            "sets": sem_sets, "semaphores": sem_count,
        },
        "dev_shm": {"size": shm_size, "free": shm_free, "used": shm_size.zip(shm_free).map(|(s, f)| s - f), "objects": shm_objects},
    });

    let mut t = String::new();
    let limit = |v: u64| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            format!("{v} bytes")
        }
    };
    let _ = writeln!(t, "POSIX message queues (/proc/sys/fs/mqueue)");
    let _ = writeln!(
        t,
        "  msg_max          {:>20}  largest --max-msgs",
        show(mq("msg_max"))
    );
    let _ = writeln!(
        t,
        "  msgsize_max      {:>20}  largest --msg-size",
        show(mq("msgsize_max"))
    );
    let _ = writeln!(
        t,
        "  msg_default      {:>20}  mq_maxmsg when mq_open gets no attributes",
        show(mq("msg_default"))
    );
    let _ = writeln!(
        t,
        "  msgsize_default  {:>20}  mq_msgsize when mq_open gets no attributes",
        show(mq("msgsize_default"))
    );
    let queues_note = match &queues {
        Ok(_) => format!("in use: {}", show(mq_count)),
        Err(_) => "in use: unknown (mount /dev/mqueue, or run as root)".into(),
    };
    let _ = writeln!(
        t,
        "  queues_max       {:>20}  queues; {queues_note}",
        show(mq("queues_max"))
    );
    let _ = writeln!(t, "RLIMIT_MSGQUEUE (ulimit -q)");
    let _ = writeln!(
        t,
        "  soft {}, hard {}; this user's queues use {}",
        limit(soft),
        limit(hard),
        mq_used.map_or_else(|| "?".into(), |u| format!("{u} bytes"))
    );
    let _ = writeln!(
        t,
        "  a queue of {max_msgs} x {msg_size} bytes costs {cost} bytes{}",
        fit.map_or_else(String::new, |n| format!("; {n} more fit"))
    );
    let _ = writeln!(t, "System V message queues (/proc/sys/kernel)");
    let _ = writeln!(
        t,
        "  msgmax           {:>20}  largest message",
        show(kernel("msgmax"))
    );
    let _ = writeln!(
        t,
        "  msgmnb           {:>20}  bytes a new queue holds (qbytes)",
        show(kernel("msgmnb"))
    );
    let _ = writeln!(
        t,
        "  msgmni           {:>20}  queues; in use: {}",
        show(kernel("msgmni")),
        show(msg_queues)
    );
    let _ = writeln!(t, "System V shared memory");
    let _ = writeln!(
        t,
        "  shmmax           {:>20}  largest segment in bytes",
        show(kernel("shmmax"))
    );
    let _ = writeln!(
        t,
        "  shmall           {:>20}  pages in all segments; in use: {} ({page}-byte pages)",
        show(kernel("shmall")),
        show(shm_pages)
    );
    let _ = writeln!(
        t,
        "  shmmni           {:>20}  segments; in use: {}",
        show(kernel("shmmni")),
        show(shm_segments)
    );
    let _ = writeln!(t, "System V semaphores (/proc/sys/kernel/sem)");
    let _ = writeln!(
        t,
        "  semmsl           {:>20}  semaphores per set",
        show(sem_at(0))
    );
    let _ = writeln!(
        t,
        "  semmns           {:>20}  semaphores in all; in use: {}",
        show(sem_at(1)),
        show(sem_count)
    );
    let _ = writeln!(
        t,
        "  semopm           {:>20}  operations per semop call",
        show(sem_at(2))
    );
    let _ = writeln!(
        t,
        "  semmni           {:>20}  sets; in use: {}",
        show(sem_at(3)),
        show(sem_sets)
    );
    let _ = writeln!(t, "/dev/shm (POSIX shared memory and semaphores)");
    let _ = writeln!(
        t,
        "  size {}, free {}, {} objects",
        shm_size.map_or_else(|| "?".into(), human),
        shm_free.map_or_else(|| "?".into(), human),
        show(shm_objects)
    );
    out.record(t.trim_end(), || doc)?;
    Ok(ExitCode::SUCCESS)
}
