//! The mqueue filesystem: where it is mounted and which POSIX queues it
//! holds, for `ls` and `limits`. Queues can only be listed through such a
//! filesystem; when none is mounted, a child process mounts one in its own
//! private mount namespace (root or CAP_SYS_ADMIN), so nothing on the
//! machine changes.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::ipc::posix_mq::{Access, Attributes, PosixQueue, file_attributes};
use crate::ipc::process;
use crate::procfs::{read_all, read_into};

/// A queue as the mqueue filesystem shows it. Serialized as JSON on the
/// pipe from the child that lists a private mount.
#[derive(Debug, Serialize, Deserialize)]
pub struct MqEntry {
    /// The file name (the queue's name without its '/').
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub dev: u64,
    pub mtime: i64,
    /// Bytes queued (QSIZE).
    pub qsize: Option<u64>,
    pub notify_pid: Option<i64>,
    /// mq_getattr: maxmsg, msgsize, curmsgs; None when neither end may be
    /// opened by this user.
    pub attr: Option<MqAttr>,
}

/// A queue's attributes, from mq_getattr.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MqAttr {
    pub maxmsg: i64,
    pub msgsize: i64,
    pub curmsgs: i64,
}

/// The queues found, and where.
pub struct Listing {
    pub queues: Vec<MqEntry>,
    pub source: MqSource,
}

/// Where the queues were listed from.
#[derive(Debug)]
pub enum MqSource {
    /// An mqueue filesystem mounted in this mount namespace.
    Mounted(String),
    /// A private mount in a child's own mount namespace.
    Private,
}

/// A queue listing under way: a private-namespace child runs while the
/// parent reads /dev/shm, /proc/sysvipc and /proc.
pub enum Pending {
    Done(Result<Listing>),
    Child(ChildListing),
    /// Not mounted and this user may not mount one.
    Unavailable,
}

impl Pending {
    /// The child's pid, so the /proc scan does not count it as a user.
    pub fn child_pid(&self) -> Option<i32> {
        match self {
            Pending::Child(c) => Some(c.pid.as_raw()),
            _ => None,
        }
    }
}

/// POSIX queues: from a mounted mqueue filesystem, else (root or
/// CAP_SYS_ADMIN) from one mounted in a child's private mount namespace,
/// else a note saying how to mount it.
pub fn start() -> Pending {
    match mqueue_mount() {
        Some(dir) => Pending::Done(read_mqueue_dir(Path::new(&dir)).map(|queues| Listing {
            queues,
            source: MqSource::Mounted(dir),
        })),
        None if may_mount() => match ChildListing::start() {
            Ok(child) => Pending::Child(child),
            Err(e) => Pending::Done(Err(e)),
        },
        None => Pending::Unavailable,
    }
}

/// The listing `start` began.
///
/// # Errors
/// Why the queues cannot be listed, as one sentence for a note.
pub fn finish(pending: Pending) -> Result<Listing, String> {
    let listed = match pending {
        Pending::Done(listed) => listed,
        Pending::Child(child) => child.finish().map(|queues| Listing {
            queues,
            source: MqSource::Private,
        }),
        Pending::Unavailable => {
            return Err(
                "POSIX message queues cannot be listed: no mqueue filesystem is mounted and this user may \
                 not mount one; as root: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue"
                    .into(),
            );
        }
    };
    listed.map_err(|e| format!("POSIX message queues cannot be listed: {e:#}"))
}

/// Every POSIX queue, at once.
///
/// # Errors
/// As [`finish`].
pub fn list() -> Result<Listing, String> {
    finish(start())
}

/// The mount point of an mqueue filesystem, from /proc/self/mountinfo.
fn mqueue_mount() -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split(' ').next()? != "mqueue" {
            return None;
        }
        Some(unescape_mount(pre.split(' ').nth(4)?))
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// root, or CAP_SYS_ADMIN in the effective set (bit 21 of CapEff).
fn may_mount() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 21) != 0)
}

fn read_mqueue_dir(dir: &Path) -> Result<Vec<MqEntry>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for entry in fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
    {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some((meta, status, attr)) = read_queue(&entry.path(), &name, &mut buf) else {
            continue;
        };
        // QSIZE:129  NOTIFY:0  SIGNO:0  NOTIFY_PID:0
        let field = |key: &str| -> Option<i64> {
            let s = status.as_deref()?;
            let at = s.find(key)? + key.len();
            s[at..].split_ascii_whitespace().next()?.parse().ok()
        };
        out.push(MqEntry {
            qsize: field("QSIZE:").and_then(|q| u64::try_from(q).ok()),
            notify_pid: field("NOTIFY_PID:"),
            attr,
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
            dev: meta.dev(),
            mtime: meta.mtime(),
            name,
        });
    }
    Ok(out)
}

/// One queue's file: its owner and mode, its status line, its attributes.
/// A queue this user may read takes one open (the file's descriptor is a
/// queue descriptor); any other, an lstat and an `mq_open` of either end.
/// None when the queue is gone.
fn read_queue(
    path: &Path,
    name: &str,
    buf: &mut Vec<u8>,
) -> Option<(fs::Metadata, Option<String>, Option<MqAttr>)> {
    if let Ok(mut file) = File::open(path)
        && let Ok(meta) = file.metadata()
    {
        let status = read_all(&mut file, buf).ok().map(str::to_string);
        let attr = file_attributes(file).ok().map(|a| MqAttr::from(&a));
        return Some((meta, status, attr));
    }
    let meta = fs::symlink_metadata(path).ok()?;
    let status = read_into(path, buf).ok().map(str::to_string);
    Some((meta, status, mq_attributes(name)))
}

/// mq_getattr through an mq_open of either end: opening a queue takes no
/// message, so this changes nothing. None when neither end may be opened.
fn mq_attributes(name: &str) -> Option<MqAttr> {
    let path = format!("/{name}");
    let mq = PosixQueue::open_existing(&path, Access::Read)
        .or_else(|_| PosixQueue::open_existing(&path, Access::Write))
        .ok()?;
    Some(MqAttr::from(&mq.attributes().ok()?))
}

impl From<&Attributes> for MqAttr {
    fn from(a: &Attributes) -> MqAttr {
        MqAttr {
            maxmsg: a.capacity as i64,
            msgsize: a.max_msg_len as i64,
            curmsgs: a.current_messages as i64,
        }
    }
}

/// A child that unshares its mount namespace, makes every mount private
/// (so nothing propagates back), mounts an mqueue filesystem over the
/// temporary directory (in its own namespace only, so no directory is made
/// or removed: that cost more than 1 ms on ext4), and writes what it finds
/// to a pipe as JSON ([`MqEntry`]s, or the error). The mount dies with the
/// child's namespace. Nothing on the machine changes.
pub struct ChildListing {
    pid: nix::unistd::Pid,
    read: std::os::fd::OwnedFd,
}

impl ChildListing {
    fn start() -> Result<ChildListing> {
        let (pid, read) = Self::fork(&std::env::temp_dir())?;
        Ok(ChildListing { pid, read })
    }

    fn fork(dir: &Path) -> Result<(nix::unistd::Pid, std::os::fd::OwnedFd)> {
        let (read_end, write_end) = nix::unistd::pipe().context("cannot create a pipe")?;
        let mut read_end = Some(read_end);
        // `ls` is single-threaded when it forks: no thread is ever started
        // before the listing.
        let pid = process::fork(|| {
            drop(read_end.take());
            let reply: ChildReply = child_list(dir).map_err(|e| format!("{e:#}"));
            let code = if reply.is_ok() { 0 } else { 4 };
            let written = serde_json::to_vec(&reply)
                .map_err(io::Error::from)
                .and_then(|text| io::Write::write_all(&mut File::from(write_end), &text));
            if written.is_ok() { code } else { 3 }
        })
        .context("cannot fork")?;
        let read_end = read_end.context("the pipe's read end is gone")?;
        Ok((pid, read_end))
    }

    fn finish(self) -> Result<Vec<MqEntry>> {
        let mut text = String::new();
        let read = File::from(self.read).read_to_string(&mut text);
        let status = nix::sys::wait::waitpid(self.pid, None);
        read.context("cannot read the listing from the child")?;
        status.context("cannot wait for the child")?;
        let reply: ChildReply =
            serde_json::from_str(&text).context("the child's listing is not JSON")?;
        reply.map_err(anyhow::Error::msg)
    }
}

/// What the child writes to the pipe: the queues, or why not.
type ChildReply = Result<Vec<MqEntry>, String>;

/// In the child: private namespace, mount over `dir`, list. Also what a
/// child that joined another IPC namespace runs to list its queues.
pub fn child_list(dir: &Path) -> Result<Vec<MqEntry>> {
    crate::ipc::namespace::mount_private_mqueue(dir)?;
    read_mqueue_dir(dir)
}
