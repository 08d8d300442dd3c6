//! A throwaway IPC namespace, as a container would have: `unshare --ipc
//! --mount --fork` with a private tmpfs on /dev/shm, one object of each of
//! the six kinds made by the tool itself, and (by default) a server of the
//! tool on each, as the live user. The guard kills the whole process group
//! in `Drop` and waits until it is gone, so the namespace and everything in
//! it disappears with the test, passed or failed.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Instant;

use super::{DEADLINE, Obj, key_hex, remove, unique_key, unique_name};

/// Whether the namespace's objects have a live user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Users {
    /// A server of the tool on each object (six processes).
    Live,
    /// Nobody: every object is orphaned, only a `sleep` keeps the namespace
    /// (with `unshare`, the only processes in it).
    None,
}

/// Which /dev/shm the namespace's POSIX shm and semaphores live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevShm {
    /// A tmpfs of its own, as a container has.
    Private,
    /// The host's (a new IPC namespace alone, `unshare --ipc`): its POSIX
    /// shm and semaphores are visible, and listed, from outside.
    Shared,
}

/// The six objects a [`Namespace`] holds: unique names and keys, so that
/// "not outside" means something.
#[derive(Debug, Clone)]
pub struct NsObjects {
    pub posix_msq: String,
    pub posix_shm: String,
    pub posix_sem: String,
    pub sysv_msq: i32,
    pub sysv_shm: i32,
    pub sysv_sem: i32,
}

impl NsObjects {
    fn new() -> NsObjects {
        NsObjects {
            posix_msq: unique_name("nsq"),
            posix_shm: unique_name("nsshm"),
            posix_sem: unique_name("nssem"),
            sysv_msq: unique_key(),
            sysv_shm: unique_key(),
            sysv_sem: unique_key(),
        }
    }

    /// As `Obj`s, for `remove` and `posix_exists`.
    pub fn all(&self) -> [Obj; 6] {
        [
            Obj::PosixMsq(self.posix_msq.clone()),
            Obj::PosixShm(self.posix_shm.clone()),
            Obj::PosixSem(self.posix_sem.clone()),
            Obj::SysvMsq(self.sysv_msq),
            Obj::SysvShm(self.sysv_shm),
            Obj::SysvSem(self.sysv_sem),
        ]
    }
}

/// Runs in the namespace as `sh -c SCRIPT BIN MSQ SHM SEM KMSQ KSHM KSEM USERS
/// DEVSHM`. /dev is shared with the host (devtmpfs), so it creates no
/// /dev/mqueue there: it mounts mqueue only where that directory exists.
/// Servers end by themselves after ten minutes (`--timeout`, `-c 2` at a
/// ten-minute interval), so even a test process killed with SIGKILL, whose
/// guard never drops, leaves nothing for long.
const SCRIPT: &str = r#"
set -e
bin=$0 msq=$1 shm=$2 sem=$3 kmsq=$4 kshm=$5 ksem=$6 users=$7 devshm=$8
if [ "$devshm" = private ]; then mount -t tmpfs -o size=1m,mode=1777 none /dev/shm; fi
if [ -d /dev/mqueue ]; then mount -t mqueue none /dev/mqueue; fi
# RLIMIT_MSGQUEUE counts a user's queues in every namespace: a small one.
small="--max-msgs 1 --msg-size 64"
if [ "$users" = none ]; then
    # Made by clients and servers that exit: nobody holds them.
    "$bin" posix msq -n "$msq" -m made -c 1 $small >/dev/null
    "$bin" posix shm -n "$shm" -m made >/dev/null
    "$bin" posix sem -n "$sem" -s -c 1 >/dev/null
    "$bin" sysv msq -k "$kmsq" -m made -c 1 >/dev/null
    "$bin" sysv shm -k "$kshm" -m made >/dev/null
    "$bin" sysv sem -k "$ksem" -s -c 1 >/dev/null
    echo "ready $$"
    exec sleep 600
fi
# Each server creates its object: the semaphore servers are then its
# last-op process, which is how ls tells a live user of a set.
{
    "$bin" --json posix msq -n "$msq" -s --timeout 600 $small &
    "$bin" --json posix shm -n "$shm" -s --interval 600 -c 2 &
    "$bin" --json posix sem -n "$sem" -s --timeout 600 &
    "$bin" --json sysv msq -k "$kmsq" -s --timeout 600 &
    "$bin" --json sysv shm -k "$kshm" -s --interval 600 -c 2 &
    "$bin" --json sysv sem -k "$ksem" -s --timeout 600 &
} | {
    # Ready once every server printed its start line; then keep reading,
    # so that no server ever blocks on (or dies of) a full or closed pipe.
    n=0
    while [ "$n" -lt 6 ] && read -r line; do
        case $line in *'"kind":"start"'*) n=$((n + 1)) ;; esac
    done
    if [ "$n" -lt 6 ]; then echo "only $n of 6 servers started"; exit 1; fi
    echo "ready $$"
    exec cat >/dev/null
}
"#;

/// A live IPC namespace (with a mount namespace of its own) holding one
/// object of each kind. `Drop` kills its process group and waits for it.
pub struct Namespace {
    child: Child,
    pid: i32,
    ipc_inode: u64,
    pub objects: NsObjects,
    pub users: Users,
    pub dev_shm: DevShm,
}

impl Namespace {
    /// A container-like namespace: private /dev/shm, a server on each object.
    pub fn start() -> Namespace {
        Namespace::with(Users::Live, DevShm::Private)
    }

    /// Start one and return once its objects exist and, with
    /// [`Users::Live`], every server has printed its start line.
    pub fn with(users: Users, dev_shm: DevShm) -> Namespace {
        let objects = NsObjects::new();
        let o = &objects;
        let mut child = Command::new("unshare")
            .args(["--ipc", "--mount", "--fork", "--propagation", "private"])
            .args(["sh", "-c", SCRIPT])
            .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
            .args([&o.posix_msq, &o.posix_shm, &o.posix_sem])
            .args([o.sysv_msq, o.sysv_shm, o.sysv_sem].map(|k| k.to_string()))
            .arg(if users == Users::Live { "live" } else { "none" })
            .arg(if dev_shm == DevShm::Private {
                "private"
            } else {
                "shared"
            })
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own: Drop kills every process in it at once.
            .process_group(0)
            .spawn()
            .expect("cannot run unshare (util-linux)");
        let out = lines(child.stdout.take().expect("piped"));
        let err = lines(child.stderr.take().expect("piped"));
        let mut ns = Namespace {
            child,
            pid: 0,
            ipc_inode: 0,
            objects,
            users,
            dev_shm,
        };
        let ready = match out.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "namespace not ready within {DEADLINE:?}; stderr: {:?}",
                err.try_iter().collect::<Vec<_>>()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let _ = ns.child.wait();
                panic!(
                    "namespace setup failed; stderr: {:?}",
                    err.try_iter().collect::<Vec<_>>()
                )
            }
        };
        ns.pid = ready
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a ready line: {ready:?}"));
        ns.ipc_inode = ipc_inode_of(ns.pid).expect("the namespace's pid has an IPC namespace");
        if users == Users::Live {
            ns.wait_for_the_queue_reader();
        }
        ns
    }

    /// A System V queue's server counts as its user once it is blocked in
    /// msgrcv (`ls` reads /proc/PID/task/*/syscall), which comes a moment
    /// after its start line: wait for that, not for a time.
    fn wait_for_the_queue_reader(&self) {
        let blocked = |pid: i32| {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten();
            tasks.flatten().any(|t| {
                std::fs::read_to_string(t.path().join("syscall")).is_ok_and(|s| {
                    s.split_whitespace().next() == Some(&libc::SYS_msgrcv.to_string())
                })
            })
        };
        let end = Instant::now() + DEADLINE;
        while !self.servers().into_iter().any(blocked) {
            assert!(
                Instant::now() < end,
                "the sysv msq server never blocked in msgrcv"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// A process inside the namespace (its shell), as the host numbers it.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The namespace's inode, as in `ipc:[INODE]`.
    pub fn ipc_inode(&self) -> u64 {
        self.ipc_inode
    }

    /// Every live process of the namespace's group: unshare, its shell,
    /// the servers and the reader that drains them.
    pub fn processes(&self) -> Vec<i32> {
        group_members(self.child.id() as i32)
    }

    /// The servers of the tool, the objects' users (none with
    /// [`Users::None`]).
    pub fn servers(&self) -> Vec<i32> {
        self.processes()
            .into_iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim_end() == "examples-ipc")
            })
            .collect()
    }

    /// `nsenter --target PID --ipc --mount -- PROGRAM ARGS`: a program run
    /// inside the namespace.
    pub fn nsenter(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--target={}", self.pid))
            .args(["--ipc", "--mount", "--"])
            .arg(program)
            .args(args)
            .env_clear()
            .envs(
                ["PATH", "TZ", "HOME"]
                    .iter()
                    .filter_map(|k| Some((k, std::env::var(k).ok()?))),
            )
            .stdin(Stdio::null())
            .output()
            .expect("cannot run nsenter (util-linux)")
    }

    /// `examples-ipc ARGS` inside the namespace.
    pub fn run_tool(&self, args: &[&str]) -> Output {
        let bin = assert_cmd::cargo::cargo_bin!("examples-ipc");
        self.nsenter(bin.to_str().expect("a UTF-8 path"), args)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: kill(2) on a process group this guard created.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
        // The shell and servers are not our children: wait until the
        // kernel has ended every one (a zombie has left its namespaces).
        let end = Instant::now() + DEADLINE;
        while !group_members(group).is_empty() && Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Another test's `ls -A` or `doctor -A` may have a child inside for
        // a moment; once nobody is in it, nobody can enter it again.
        while !processes_in(self.ipc_inode).is_empty() && Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if self.dev_shm == DevShm::Shared {
            // Made in the host's /dev/shm: they outlive the namespace.
            remove(&Obj::PosixShm(self.objects.posix_shm.clone()));
            remove(&Obj::PosixSem(self.objects.posix_sem.clone()));
        }
    }
}

/// The lines of a child's output, read by a thread.
fn lines(from: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The inode in `/proc/PID/ns/ipc` (`ipc:[INODE]`); `None` once the
/// process has exited (or is a zombie).
pub fn ipc_inode_of(pid: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/ipc")).ok()?;
    link.to_str()?
        .strip_prefix("ipc:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Every process on the host in IPC namespace `inode`.
pub fn processes_in(inode: u64) -> Vec<i32> {
    all_pids()
        .filter(|&pid| ipc_inode_of(pid) == Some(inode))
        .collect()
}

fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// The processes of group `pgid` that still run (zombies left out).
fn group_members(pgid: i32) -> Vec<i32> {
    all_pids()
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) S ppid pgrp ...": comm may hold anything.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_ascii_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
            pgrp == Some(pgid) && !matches!(state, Some("Z" | "X"))
        })
        .collect()
}

/// `ipcs -q`, `-m` or `-s` lists `key` (in the namespace `ipcs` runs in).
pub fn ipcs_lists(ipcs_output: &Output, key: i32) -> bool {
    String::from_utf8_lossy(&ipcs_output.stdout).contains(&key_hex(key))
}
