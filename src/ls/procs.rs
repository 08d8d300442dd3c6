//! One pass over /proc: which live process maps or holds open which IPC
//! object. Reading every process once (not once per object) is what keeps
//! `ls` fast with thousands of objects.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::ipc::sysv::BlockedIn;
use crate::procfs::read_into;

/// How a process uses an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// A mapping of the file in /proc/PID/maps (POSIX shm, POSIX sem).
    Maps,
    /// An open descriptor in /proc/PID/fd.
    Open,
    /// A System V segment attached (a /SYSV mapping).
    Attached,
    /// Blocked in msgrcv/msgsnd/semop on the object (/proc/PID/task/*/syscall).
    Blocked,
    /// Registered for mq_notify.
    Notify,
    /// The creator pid of a System V segment, still alive.
    Creator,
    /// The last pid to operate on a System V object, still alive.
    LastOp,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Maps => "maps",
            How::Open => "open",
            How::Attached => "attached",
            How::Blocked => "blocked",
            How::Notify => "notify",
            How::Creator => "creator",
            How::LastOp => "last-op",
        }
    }
}

/// Which parts of /proc the objects at hand need: each costs a read per
/// process, so a listing of System V queues alone reads no maps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    /// /proc/PID/maps: POSIX shm and sem, attached System V segments.
    pub maps: bool,
    /// /proc/PID/fd: POSIX objects.
    pub fds: bool,
    /// /proc/PID/task/*/syscall: System V queues and semaphore sets.
    pub syscalls: bool,
}

/// What a thread is blocked in, from /proc/PID/task/TID/syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blocked {
    Msq(i32),
    Sem(i32),
}

/// Everything one pass over /proc found.
#[derive(Default)]
pub struct Procs {
    /// Every live process (comm is read only for users, when printed).
    live: HashSet<i32>,
    /// (device, inode) of a file under /dev/shm -> processes that map it.
    /// By inode, not name: glibc's sem_open creates a semaphore under a
    /// temporary name, maps it, links it to its real name and unlinks the
    /// temporary one, so its creator's mapping reads `sem.XXXXXX (deleted)`.
    shm_maps: HashMap<(u64, u64), Vec<i32>>,
    /// (device, inode) of a file under /dev/shm -> processes with a descriptor on it.
    shm_fds: HashMap<(u64, u64), Vec<i32>>,
    /// System V shmid -> processes that attach it.
    sysv_maps: HashMap<i32, Vec<i32>>,
    /// Descriptor targets that look like an mqueue file ("/NAME"), with the
    /// device of the file behind them, so a queue is told from a real file.
    mq_fds: HashMap<String, Vec<(i32, u64)>>,
    /// Threads blocked on a System V queue or semaphore set.
    blocked: HashMap<Blocked, Vec<i32>>,
    /// Processes whose maps this user may not read.
    pub hidden: Vec<i32>,
    /// This process's IPC namespace, read when System V users are wanted:
    /// System V ids repeat across namespaces.
    own_ipc_ns: Option<u64>,
    /// Other processes' IPC namespaces, each read when first asked: only
    /// the few processes that may use a System V object are, not every
    /// process on the machine.
    ipc_ns: RefCell<HashMap<i32, NsOf>>,
}

impl Procs {
    /// Scan every process but `skip` (this process). Processes that vanish
    /// or cannot be read are passed over: a scan never fails.
    pub fn scan(skip: &[Option<i32>], want: Want) -> Procs {
        let mut procs = Procs::default();
        let by_ns = want.maps || want.syscalls;
        if by_ns {
            procs.own_ipc_ns = match ipc_ns_of(std::process::id() as i32) {
                NsOf::In(inode) => Some(inode),
                NsOf::Gone | NsOf::Unknown => None,
            };
        }
        let Ok(dir) = fs::read_dir("/proc") else {
            return procs;
        };
        // One buffer for every maps and syscall file.
        let mut buf = Vec::new();
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            procs.live.insert(pid);
            if skip.contains(&Some(pid)) {
                continue;
            }
            if want.maps && !procs.read_maps(pid, &mut buf) {
                continue;
            }
            if want.fds {
                procs.read_fds(pid);
            }
            if want.syscalls {
                procs.read_syscalls(pid, &mut buf);
            }
        }
        procs
    }

    /// The files and segments `pid` maps. False when there is nothing
    /// more to read of it: no address space (a kernel thread, or a process
    /// that has exited: neither holds descriptors nor waits in a system
    /// call; most processes on a machine are kernel threads), gone, or
    /// not readable by this user (then neither are its descriptors and
    /// threads: the kernel checks them alike, or more strictly).
    fn read_maps(&mut self, pid: i32, buf: &mut Vec<u8>) -> bool {
        let maps = match read_into(Path::new(&format!("/proc/{pid}/maps")), buf) {
            Ok("") => return false,
            Ok(maps) => maps,
            Err(e) => {
                self.denied(pid, &e);
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound
                );
            }
        };
        let mut seen: HashSet<&str> = HashSet::new();
        for l in maps.lines() {
            // addr perms offset dev inode path: the path starts at the 6th field.
            let Some(slash) = l.find('/') else { continue };
            let path = &l[slash..];
            if path.starts_with("/dev/shm/") {
                if !seen.insert(path) {
                    continue;
                }
                let mut cols = l.split_ascii_whitespace().skip(3);
                let (Some(dev), Some(ino)) = (
                    cols.next().and_then(parse_dev),
                    cols.next().and_then(|i| i.parse().ok()),
                ) else {
                    continue;
                };
                let users = self.shm_maps.entry((dev, ino)).or_default();
                if !users.contains(&pid) {
                    users.push(pid);
                }
            } else if path.starts_with("/SYSV") {
                // The inode column of a System V mapping is the shmid.
                let Some(ino) = l
                    .split_ascii_whitespace()
                    .nth(4)
                    .and_then(|s| s.parse::<i32>().ok())
                else {
                    continue;
                };
                if !seen.insert(path) {
                    continue;
                }
                let users = self.sysv_maps.entry(ino).or_default();
                if !users.contains(&pid) {
                    users.push(pid);
                }
            }
        }
        true
    }

    /// Another user's process: what it maps, holds or waits on is unknown.
    fn denied(&mut self, pid: i32, e: &std::io::Error) {
        if e.kind() == std::io::ErrorKind::PermissionDenied && !self.hidden.contains(&pid) {
            self.hidden.push(pid);
        }
    }

    fn read_fds(&mut self, pid: i32) {
        let dir = match fs::read_dir(format!("/proc/{pid}/fd")) {
            Ok(dir) => dir,
            Err(e) => return self.denied(pid, &e),
        };
        for entry in dir.flatten() {
            let target = match fs::read_link(entry.path()) {
                Ok(target) => target,
                // The check is per process (ptrace access mode): one
                // descriptor denied, all are. A container's init can hold
                // hundreds.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => break,
                Err(_) => continue,
            };
            let Some(target) = target.to_str() else {
                continue;
            };
            if target.starts_with("/dev/shm/") {
                // stat follows the descriptor to the very file, whatever its name now.
                if let Ok(meta) = fs::metadata(entry.path()) {
                    let users = self.shm_fds.entry((meta.dev(), meta.ino())).or_default();
                    if !users.contains(&pid) {
                        users.push(pid);
                    }
                }
            } else if let Some(name) = target.strip_prefix('/') {
                // An mqueue descriptor reads as "/NAME"; stat tells it from a
                // file in the root directory by its device.
                if name.is_empty() || name.contains('/') || name.ends_with(" (deleted)") {
                    continue;
                }
                if let Ok(meta) = fs::metadata(entry.path()) {
                    self.mq_fds
                        .entry(name.to_string())
                        .or_default()
                        .push((pid, meta.dev()));
                }
            }
        }
    }

    fn read_syscalls(&mut self, pid: i32, buf: &mut Vec<u8>) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        for task in tasks.flatten() {
            let text = match read_into(&task.path().join("syscall"), buf) {
                Ok(text) => text,
                // Every thread of the process is checked alike: one
                // denied, all are.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return self.denied(pid, &e);
                }
                Err(_) => continue,
            };
            if let Some(b) = parse_syscall(text) {
                let users = self.blocked.entry(b).or_default();
                if !users.contains(&pid) {
                    users.push(pid);
                }
            }
        }
    }

    /// Whether `pid` runs in the IPC namespace `ns` (None: this process's),
    /// so that it can use the System V objects listed there. A process whose
    /// namespace may not be read counts as in it: a verdict may err only
    /// towards in use. One that has left its namespaces is exiting (it was
    /// seen blocked on an id a moment ago, then killed): it uses nothing.
    pub fn in_ipc_ns(&self, pid: i32, ns: Option<u64>) -> bool {
        let Some(want) = ns.or(self.own_ipc_ns) else {
            return true;
        };
        let mut known = self.ipc_ns.borrow_mut();
        match *known.entry(pid).or_insert_with(|| ipc_ns_of(pid)) {
            NsOf::In(theirs) => theirs == want,
            NsOf::Gone => false,
            NsOf::Unknown => true,
        }
    }

    pub fn alive(&self, pid: i64) -> bool {
        i32::try_from(pid).is_ok_and(|p| p > 0 && self.live.contains(&p))
    }

    /// The command name of a live process ("" if it just exited). The kernel
    /// cuts comm at 15 bytes, which can split a UTF-8 character: that one
    /// becomes U+FFFD rather than the whole name being lost. Only the line
    /// feed the kernel appends is dropped; the text table escapes the rest.
    pub fn command(&self, pid: i32) -> String {
        fs::read(format!("/proc/{pid}/comm"))
            .map(|b| {
                let b = b.strip_suffix(b"\n").unwrap_or(&b);
                String::from_utf8_lossy(b).into_owned()
            })
            .unwrap_or_default()
    }

    pub fn shm_users(&self, file: (u64, u64)) -> Vec<(i32, How)> {
        let mut out: Vec<(i32, How)> = Vec::new();
        for &pid in self.shm_maps.get(&file).into_iter().flatten() {
            out.push((pid, How::Maps));
        }
        for &pid in self.shm_fds.get(&file).into_iter().flatten() {
            if !out.iter().any(|(p, _)| *p == pid) {
                out.push((pid, How::Open));
            }
        }
        out
    }

    pub fn sysv_attached(&self, shmid: i32) -> &[i32] {
        self.sysv_maps.get(&shmid).map_or(&[], Vec::as_slice)
    }

    pub fn mq_users(&self, name: &str, dev: Option<u64>) -> Vec<i32> {
        let mut out = Vec::new();
        for &(pid, d) in self.mq_fds.get(name).into_iter().flatten() {
            if dev.is_none_or(|dev| dev == d) && !out.contains(&pid) {
                out.push(pid);
            }
        }
        out
    }

    pub fn blocked(&self, b: Blocked) -> &[i32] {
        self.blocked.get(&b).map_or(&[], Vec::as_slice)
    }
}

/// Where a process's IPC namespace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NsOf {
    In(u64),
    /// ENOENT or ESRCH: the process has exited, or is exiting and has left
    /// its namespaces already.
    Gone,
    /// Not readable by this user, or not understood.
    Unknown,
}

/// The IPC namespace of `pid`.
fn ipc_ns_of(pid: i32) -> NsOf {
    use crate::ipc::namespace::{NsKind, inode};
    use nix::errno::Errno;
    match inode(crate::ipc::process::Pid::from_raw(pid), NsKind::Ipc) {
        Ok(ino) => NsOf::In(ino),
        Err(Errno::ENOENT | Errno::ESRCH) => NsOf::Gone,
        Err(_) => NsOf::Unknown,
    }
}

/// The `MM:mm` device column of /proc/PID/maps (hex major:minor) as a dev_t.
fn parse_dev(s: &str) -> Option<u64> {
    let (major, minor) = s.split_once(':')?;
    let major = u64::from_str_radix(major, 16).ok()?;
    let minor = u64::from_str_radix(minor, 16).ok()?;
    Some(nix::sys::stat::makedev(major, minor))
}

/// `NR arg1 ...` of a thread blocked in a System V call on an id.
fn parse_syscall(text: &str) -> Option<Blocked> {
    let mut it = text.split_ascii_whitespace();
    let nr: i64 = it.next()?.parse().ok()?;
    let arg = it.next()?.strip_prefix("0x")?;
    let id = i32::try_from(u64::from_str_radix(arg, 16).ok()?).ok()?;
    match BlockedIn::from_nr(nr)? {
        BlockedIn::Msq => Some(Blocked::Msq(id)),
        BlockedIn::Sem => Some(Blocked::Sem(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscalls() {
        let rcv = format!(
            "{} 0x5 0x7ffc 0x2000 0x0 0x0 0x0 0x7ffc 0x7f00\n",
            BlockedIn::Msq.nr()
        );
        assert_eq!(parse_syscall(&rcv), Some(Blocked::Msq(5)));
        let sem = format!(
            "{} 0x1f 0x7ffc 0x1 0x0 0x0 0x0 0x7ffc 0x7f00\n",
            BlockedIn::Sem.nr()
        );
        assert_eq!(parse_syscall(&sem), Some(Blocked::Sem(31)));
        assert_eq!(parse_syscall("running\n"), None);
        assert_eq!(parse_syscall("0 0x3 0x1 0x2 0 0 0 0 0"), None);
        assert_eq!(parse_dev("00:1b"), Some(nix::sys::stat::makedev(0, 0x1b)));
        assert_eq!(parse_dev("fd:01"), Some(nix::sys::stat::makedev(0xfd, 1)));
    }
}
