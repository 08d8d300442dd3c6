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
    // One line of the table: name, value right-aligned, what it limits.
    let row = |t: &mut String, name: &str, value: String, note: &str| {
        let _ = writeln!(t, "  {name:<16} {value:>20}  {note}");
    };
    let _ = writeln!(t, "POSIX message queues (/proc/sys/fs/mqueue)");
    row(&mut t, "msg_max", show(mq("msg_max")), "largest --max-msgs");
    row(
        &mut t,
        "msgsize_max",
        show(mq("msgsize_max")),
        "largest --msg-size",
    );
    row(
        &mut t,
        "msg_default",
        show(mq("msg_default")),
        "mq_maxmsg when mq_open gets no attributes",
    );
    row(
        &mut t,
        "msgsize_default",
        show(mq("msgsize_default")),
        "mq_msgsize when mq_open gets no attributes",
    );
    let queues_note = match &queues {
        Ok(_) => format!("in use: {}", show(mq_count)),
        Err(_) => "in use: unknown (mount /dev/mqueue, or run as root)".into(),
    };
    row(
        &mut t,
        "queues_max",
        show(mq("queues_max")),
        &format!("queues; {queues_note}"),
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
    row(&mut t, "msgmax", show(kernel("msgmax")), "largest message");
    row(
        &mut t,
        "msgmnb",
        show(kernel("msgmnb")),
        "bytes a new queue holds (qbytes)",
    );
    row(
        &mut t,
        "msgmni",
        show(kernel("msgmni")),
        &format!("queues; in use: {}", show(msg_queues)),
    );
    let _ = writeln!(t, "System V shared memory");
    row(
        &mut t,
        "shmmax",
        show(kernel("shmmax")),
        "largest segment in bytes",
    );
    row(
        &mut t,
        "shmall",
        show(kernel("shmall")),
        &format!(
            "pages in all segments; in use: {} ({page}-byte pages)",
            show(shm_pages)
        ),
    );
    row(
        &mut t,
        "shmmni",
        show(kernel("shmmni")),
        &format!("segments; in use: {}", show(shm_segments)),
    );
    let _ = writeln!(t, "System V semaphores (/proc/sys/kernel/sem)");
    row(&mut t, "semmsl", show(sem_at(0)), "semaphores per set");
    row(
        &mut t,
        "semmns",
        show(sem_at(1)),
        &format!("semaphores in all; in use: {}", show(sem_count)),
    );
    row(
        &mut t,
        "semopm",
        show(sem_at(2)),
        "operations per semop call",
    );
    row(
        &mut t,
        "semmni",
        show(sem_at(3)),
        &format!("sets; in use: {}", show(sem_sets)),
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
