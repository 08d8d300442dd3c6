//! POSIX objects: files in /dev/shm (segments and `sem.*` semaphores) and
//! queues in the mqueue filesystem.
//!
//! Nothing here maps a file or takes a semaphore: a semaphore's value is read
//! with `pread` from the file and checked as `posix sem` checks it
//! (`ipc::semfile`), so an empty, truncated or garbage `sem.*` file is
//! reported, never a SIGBUS, and `ls` never shows up as a user itself.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::record::{PosixMsq, PosixSem, PosixShm, Time};
use super::{Fields, Object, Scan};
use crate::ipc::posix_mq::{Access, PosixQueue};
use crate::ipc::process;
use crate::ipc::semfile::{Invalid, SEM_T_SIZE, SemFile, SemWord};

pub const SHM_DIR: &str = "/dev/shm";

/// Segments and semaphores in /dev/shm.
pub fn scan_shm_dir(scan: &mut Scan, want_shm: bool, want_sem: bool) {
    let dir = match fs::read_dir(SHM_DIR) {
        Ok(dir) => dir,
        Err(e) => {
            scan.notes.push(format!("cannot read {SHM_DIR}: {e}"));
            return;
        }
    };
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else {
            // POSIX names are bytes; one this tool cannot print is still counted.
            scan.unreadable += 1;
            continue;
        };
        let is_sem = file.starts_with("sem.") && file.len() > 4;
        if (is_sem && !want_sem) || (!is_sem && !want_shm) {
            continue;
        }
        // lstat: a file removed since read_dir is simply gone, not an error.
        let meta = match fs::symlink_metadata(entry.path()) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                scan.unreadable += 1;
                continue;
            }
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let (inode, mtime) = ((meta.dev(), meta.ino()), Time(meta.mtime()));
        let mut obj = if is_sem {
            let Some(mut obj) = read_sem(&entry.path(), mtime, inode, &mut scan.unreadable) else {
                continue;
            };
            obj.name = Some(format!("/{}", &file[4..]));
            obj
        } else {
            let mut obj = Object::new(Fields::PosixShm(PosixShm {
                size: meta.size(),
                mtime,
                inode,
            }));
            obj.name = Some(format!("/{file}"));
            obj
        };
        obj.set_owner(meta.uid(), meta.gid(), meta.mode());
        scan.objects.push(obj);
    }
}

/// A `sem.NAME` file as a semaphore: its value, or a note saying why there
/// is none (one not readable is counted in `unreadable`). None when the
/// file is gone.
fn read_sem(path: &Path, mtime: Time, inode: (u64, u64), unreadable: &mut usize) -> Option<Object> {
    let (value, waiters, note) = match read_sem_value(path) {
        Ok(Ok(word)) => (Some(word.value), Some(word.waiters), None),
        Ok(Err(Invalid::Short(len))) => (
            None,
            None,
            Some(format!(
                "{len} bytes, shorter than a sem_t ({SEM_T_SIZE}): not a valid semaphore"
            )),
        ),
        Ok(Err(why)) => (None, None, Some(format!("not a valid semaphore: {why}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(_) => {
            *unreadable += 1;
            (None, None, Some("not readable by this user".into()))
        }
    };
    let mut obj = Object::new(Fields::PosixSem(PosixSem {
        value,
        waiters,
        mtime,
        inode,
    }));
    obj.note = note;
    Some(obj)
}

/// The value and waiters of a glibc semaphore file, read (not mapped) and
/// checked as the semaphore commands check it before they map it.
fn read_sem_value(path: &Path) -> io::Result<Result<SemWord, Invalid>> {
    let path = path.to_str().ok_or(io::ErrorKind::InvalidInput)?;
    SemFile::open(path, false)?.check()
}

/// A POSIX queue as the mqueue filesystem shows it.
pub struct MqEntry {
    name: String,
    uid: u32,
    gid: u32,
    mode: u32,
    dev: u64,
    mtime: i64,
    qsize: Option<u64>,
    notify_pid: Option<i64>,
    attr: Option<(i64, i64, i64)>,
    readable: bool,
}

impl MqEntry {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name, "uid": self.uid, "gid": self.gid, "mode": self.mode,
            "dev": self.dev, "mtime": self.mtime, "qsize": self.qsize,
            "notify_pid": self.notify_pid, "readable": self.readable,
            "attr": self.attr.map(|(m, s, c)| json!([m, s, c])),
        })
    }

    fn from_json(v: &Value) -> Option<MqEntry> {
        let attr = v["attr"].as_array().and_then(|a| {
            Some((
                a.first()?.as_i64()?,
                a.get(1)?.as_i64()?,
                a.get(2)?.as_i64()?,
            ))
        });
        Some(MqEntry {
            name: v["name"].as_str()?.to_string(),
            uid: u32::try_from(v["uid"].as_u64()?).ok()?,
            gid: u32::try_from(v["gid"].as_u64()?).ok()?,
            mode: u32::try_from(v["mode"].as_u64()?).ok()?,
            dev: v["dev"].as_u64()?,
            mtime: v["mtime"].as_i64()?,
            qsize: v["qsize"].as_u64(),
            notify_pid: v["notify_pid"].as_i64(),
            attr,
            readable: v["readable"].as_bool()?,
        })
    }
}

/// Where the queues were listed from.
pub enum MqSource {
    /// An mqueue filesystem mounted in this mount namespace.
    Mounted(String),
    /// A private mount in a child's own mount namespace.
    Private,
}

/// A queue listing under way: a private-namespace child runs while the
/// parent reads /dev/shm, /proc/sysvipc and /proc.
pub enum MqPending {
    Done(Result<(Vec<MqEntry>, MqSource)>),
    Child(ChildListing),
    /// Not mounted and this user may not mount one.
    Unavailable,
}

impl MqPending {
    /// The child's pid, so the /proc scan does not count it as a user.
    pub fn child_pid(&self) -> Option<i32> {
        match self {
            MqPending::Child(c) => Some(c.pid.as_raw()),
            _ => None,
        }
    }
}

/// POSIX queues: from a mounted mqueue filesystem, else (root or
/// CAP_SYS_ADMIN) from one mounted in a child's private mount namespace,
/// else a note saying how to mount it.
pub fn start_mqueues() -> MqPending {
    match mqueue_mount() {
        Some(dir) => {
            MqPending::Done(read_mqueue_dir(Path::new(&dir)).map(|e| (e, MqSource::Mounted(dir))))
        }
        None if may_mount() => match ChildListing::start() {
            Ok(child) => MqPending::Child(child),
            Err(e) => MqPending::Done(Err(e)),
        },
        None => MqPending::Unavailable,
    }
}

pub fn finish_mqueues(pending: MqPending, scan: &mut Scan) {
    let listed = match pending {
        MqPending::Done(listed) => listed,
        MqPending::Child(child) => child.finish().map(|e| (e, MqSource::Private)),
        MqPending::Unavailable => {
            scan.mq_note = Some(
                "POSIX message queues cannot be listed: no mqueue filesystem is mounted and this user may \
                 not mount one; as root: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue"
                    .into(),
            );
            return;
        }
    };
    let (entries, source) = match listed {
        Ok(x) => x,
        Err(e) => {
            scan.mq_note = Some(format!("POSIX message queues cannot be listed: {e:#}"));
            return;
        }
    };
    scan.mq_source = Some(source);
    for e in entries {
        let (maxmsg, msgsize, curmsgs) = match e.attr {
            Some((m, s, c)) => (Some(m), Some(s), Some(c)),
            None => (None, None, None),
        };
        let mut obj = Object::new(Fields::PosixMsq(PosixMsq {
            maxmsg,
            msgsize,
            curmsgs,
            bytes: e.qsize,
            mtime: Time(e.mtime),
            dev: e.dev,
            notify_pid: e.notify_pid.filter(|p| *p > 0),
            file: e.name.clone(),
        }));
        obj.name = Some(format!("/{}", e.name));
        obj.set_owner(e.uid, e.gid, e.mode);
        if !e.readable {
            scan.unreadable += 1;
            obj.note = Some("not readable by this user: maxmsg and msgsize unknown".into());
        }
        scan.objects.push(obj);
    }
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
    for entry in fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
    {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        // QSIZE:129  NOTIFY:0  SIGNO:0  NOTIFY_PID:0
        let status = fs::read_to_string(entry.path()).ok();
        let field = |key: &str| -> Option<i64> {
            let s = status.as_deref()?;
            let at = s.find(key)? + key.len();
            s[at..].split_ascii_whitespace().next()?.parse().ok()
        };
        let attr = mq_attributes(&name);
        out.push(MqEntry {
            qsize: field("QSIZE:").and_then(|q| u64::try_from(q).ok()),
            notify_pid: field("NOTIFY_PID:"),
            readable: attr.is_some(),
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

/// mq_getattr through an mq_open of either end: opening a queue takes no
/// message, so this changes nothing. None when neither end may be opened.
fn mq_attributes(name: &str) -> Option<(i64, i64, i64)> {
    let path = format!("/{name}");
    let mq = PosixQueue::open_existing(&path, Access::Read)
        .or_else(|_| PosixQueue::open_existing(&path, Access::Write))
        .ok()?;
    let a = mq.attributes().ok()?;
    Some((
        a.capacity as i64,
        a.max_msg_len as i64,
        a.current_messages as i64,
    ))
}

/// A child that unshares its mount namespace, makes every mount private
/// (so nothing propagates back), mounts an mqueue filesystem on a fresh
/// temporary directory, and writes what it finds to a pipe as JSON. The
/// mount dies with the child's namespace; the parent removes the empty
/// directory. Nothing on the machine changes.
pub struct ChildListing {
    pid: nix::unistd::Pid,
    read: std::os::fd::OwnedFd,
    dir: std::path::PathBuf,
}

impl ChildListing {
    fn start() -> Result<ChildListing> {
        let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join("examples-ipc-mq.XXXXXX"))
            .context("cannot create a temporary mount point")?;
        let started = Self::fork(&dir);
        if started.is_err() {
            let _ = fs::remove_dir(&dir);
        }
        started.map(|(pid, read)| ChildListing { pid, read, dir })
    }

    fn fork(dir: &Path) -> Result<(nix::unistd::Pid, std::os::fd::OwnedFd)> {
        let (read_end, write_end) = nix::unistd::pipe().context("cannot create a pipe")?;
        let mut read_end = Some(read_end);
        // `ls` is single-threaded when it forks: no thread is ever started
        // before the listing.
        let pid = process::fork(|| {
            drop(read_end.take());
            let (text, code) = match child_list(dir) {
                Ok(text) => (text, 0),
                Err(e) => (json!({"error": format!("{e:#}")}).to_string(), 4),
            };
            let mut file = File::from(write_end);
            if io::Write::write_all(&mut file, text.as_bytes()).is_ok() {
                code
            } else {
                3
            }
        })
        .context("cannot fork")?;
        let read_end = read_end.context("the pipe's read end is gone")?;
        Ok((pid, read_end))
    }

    fn finish(self) -> Result<Vec<MqEntry>> {
        let mut text = String::new();
        let read = File::from(self.read).read_to_string(&mut text);
        let status = nix::sys::wait::waitpid(self.pid, None);
        let _ = fs::remove_dir(&self.dir);
        read.context("cannot read the listing from the child")?;
        status.context("cannot wait for the child")?;
        let doc: Value = serde_json::from_str(&text).context("the child's listing is not JSON")?;
        if let Some(err) = doc.get("error").and_then(Value::as_str) {
            anyhow::bail!("{err}");
        }
        Ok(doc
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(MqEntry::from_json)
            .collect())
    }
}

/// In the child: private namespace, mount, list.
fn child_list(dir: &Path) -> Result<String> {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("cannot make / private in the new mount namespace")?;
    mount(
        Some("mqueue"),
        dir,
        Some("mqueue"),
        MsFlags::empty(),
        None::<&str>,
    )
    .context("cannot mount an mqueue filesystem")?;
    let entries = read_mqueue_dir(dir)?;
    let list: Vec<Value> = entries.iter().map(MqEntry::to_json).collect();
    Ok(Value::Array(list).to_string())
}
