//! One object as `ls` lists it: the JSON object of `ls --json` (serde
//! derive, fields in the order `--stat` prints them) and what the table's
//! cells are made of (`table.rs`), from the same typed record.

use std::collections::HashMap;

use chrono::{Local, SecondsFormat, TimeZone};
use serde::{Serialize, Serializer};

use super::Kind;
use crate::ipc::sysv_sem::Semaphore;
use crate::object::ObjectRef;
use crate::sys::{group_name, user_name};
use crate::target::IpcId;

/// A live process using an object.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub pid: i32,
    pub command: String,
    pub how: &'static str,
}

/// Whether anyone uses an object; JSON's `orphaned`: true, false, or null.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    #[default]
    InUse,
    Orphaned,
    /// Neither orphaned nor known to be in use: the object or some processes
    /// could not be read. Never removed by `clean --stale`.
    Unknown,
}

impl State {
    /// The STATE column.
    pub fn text(self) -> &'static str {
        match self {
            State::InUse => "in use",
            State::Orphaned => "orphaned",
            State::Unknown => "unknown",
        }
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            State::InUse => s.serialize_bool(false),
            State::Orphaned => s.serialize_bool(true),
            State::Unknown => s.serialize_none(),
        }
    }
}

/// A time from the kernel in seconds: RFC 3339 in local time, null for
/// the kernel's 0 ("never").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time(pub i64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let local = (self.0 != 0)
            .then(|| Local.timestamp_opt(self.0, 0).single())
            .flatten();
        match local {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, false)),
            None => s.serialize_none(),
        }
    }
}

/// A System V object's creator.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Creator {
    pub cuid: Option<u32>,
    pub cgid: Option<u32>,
}

/// The IPC namespace an object lives in (`ls --all-namespaces`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsTag {
    /// As in `ipc:[INODE]` and `lsns`.
    pub inode: u64,
    /// A process inside it, through which it was read.
    pub pid: i32,
    /// The container its cgroup path names: `docker 3f2a9c1b7d4e`.
    pub container: Option<String>,
    /// Whether it is the namespace `ls` runs in.
    pub current: bool,
}

impl NsTag {
    /// The NAMESPACE cell: `4026532262/1234`, then the container.
    pub fn text(&self) -> String {
        match &self.container {
            Some(c) => format!("{}/{} {c}", self.inode, self.pid),
            None => format!("{}/{}", self.inode, self.pid),
        }
    }
}

/// One object as found, before and after its users are known.
#[derive(Debug, Serialize)]
pub struct Object {
    #[serde(rename = "mechanism")]
    pub kind: Kind,
    /// Only with --all-namespaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<NsTag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "key_hex")]
    pub key: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    pub uid: u32,
    /// The owner's name, or the uid when it has none.
    pub owner: String,
    pub gid: u32,
    pub group: String,
    #[serde(flatten)]
    pub creator: Option<Creator>,
    #[serde(serialize_with = "octal")]
    pub perms: u32,
    /// The kind's own fields.
    #[serde(flatten)]
    pub fields: Fields,
    pub users: Vec<User>,
    #[serde(rename = "orphaned")]
    pub state: State,
    /// Something the user should know (not readable, not a valid semaphore).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A System V key as ipcs prints it, `"0x000000c8"` (serde's
/// `serialize_with`).
pub fn key_hex<S: Serializer>(key: &Option<i32>, s: S) -> Result<S::Ok, S::Error> {
    match key {
        Some(k) => s.serialize_str(&crate::ipc::sysv::key_hex(*k)),
        None => s.serialize_none(),
    }
}

fn octal<S: Serializer>(perms: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{perms:04o}"))
}

impl Object {
    pub(super) fn new(fields: Fields) -> Object {
        Object {
            kind: fields.kind(),
            namespace: None,
            name: None,
            key: None,
            id: None,
            uid: 0,
            owner: String::new(),
            gid: 0,
            group: String::new(),
            creator: None,
            perms: 0,
            fields,
            users: Vec::new(),
            state: State::InUse,
            note: None,
        }
    }

    pub(super) fn set_owner(&mut self, uid: u32, gid: u32, mode: u32) {
        self.uid = uid;
        self.gid = gid;
        self.perms = mode & 0o777;
    }

    /// How to find the object again: a POSIX name, a System V id.
    pub fn object_ref(&self) -> Option<ObjectRef> {
        match (&self.name, self.id) {
            (Some(name), _) => Some(ObjectRef::posix(self.kind, name.parse().ok()?)),
            (None, Some(id)) => Some(ObjectRef::sysv_id(self.kind, IpcId(id))),
            (None, None) => None,
        }
    }

    pub fn orphaned(&self) -> bool {
        self.state == State::Orphaned
    }

    /// `0x000000c8`, as ipcs prints a key.
    pub fn key_hex(&self) -> Option<String> {
        self.key.map(crate::ipc::sysv::key_hex)
    }

    /// The name or key a user types to address the object, for text: a
    /// name is escaped (it may hold an ESC or a newline).
    pub fn label(&self) -> String {
        crate::object::label(self.name.as_deref(), self.key_hex().as_deref(), None::<i32>)
    }

    /// Bytes for the SIZE column: a segment's size, a queue's bytes queued.
    pub fn size(&self) -> Option<u64> {
        match &self.fields {
            Fields::PosixMsq(q) => q.bytes,
            Fields::PosixShm(s) => Some(s.size),
            Fields::SysvMsq(q) => q.cbytes.and_then(|b| u64::try_from(b).ok()),
            Fields::SysvShm(s) => s.size.and_then(|b| u64::try_from(b).ok()),
            Fields::PosixSem(_) | Fields::SysvSem(_) => None,
        }
    }
}

/// The fields of one kind, as `--stat` names them.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Fields {
    PosixMsq(PosixMsq),
    PosixShm(PosixShm),
    PosixSem(PosixSem),
    SysvMsq(SysvMsq),
    SysvShm(SysvShm),
    SysvSem(SysvSem),
}

impl Fields {
    fn kind(&self) -> Kind {
        match self {
            Fields::PosixMsq(_) => Kind::PosixMsq,
            Fields::PosixShm(_) => Kind::PosixShm,
            Fields::PosixSem(_) => Kind::PosixSem,
            Fields::SysvMsq(_) => Kind::SysvMsq,
            Fields::SysvShm(_) => Kind::SysvShm,
            Fields::SysvSem(_) => Kind::SysvSem,
        }
    }
}

/// A POSIX queue: mq_getattr (null when neither end may be opened) and
/// the mqueue file.
#[derive(Debug, Serialize)]
pub struct PosixMsq {
    pub maxmsg: Option<i64>,
    pub msgsize: Option<i64>,
    pub curmsgs: Option<i64>,
    /// Bytes queued (QSIZE).
    pub bytes: Option<u64>,
    pub mtime: Time,
    /// File name in the mqueue filesystem, and its device.
    #[serde(skip)]
    pub file: String,
    #[serde(skip)]
    pub dev: u64,
    /// The mq_notify registrant, if any.
    #[serde(skip)]
    pub notify_pid: Option<i64>,
}

/// A POSIX segment: a file under /dev/shm.
#[derive(Debug, Serialize)]
pub struct PosixShm {
    pub size: u64,
    pub mtime: Time,
    /// (device, inode) of the file, by which processes are matched.
    #[serde(skip)]
    pub inode: (u64, u64),
}

/// A POSIX semaphore: a `sem.NAME` file under /dev/shm, read, not mapped.
#[derive(Debug, Serialize)]
pub struct PosixSem {
    /// Null for a file that is not a valid semaphore or not readable.
    pub value: Option<u32>,
    pub waiters: Option<u32>,
    pub mtime: Time,
    #[serde(skip)]
    pub inode: (u64, u64),
}

/// A System V queue: /proc/sysvipc/msg and qbytes from IPC_STAT.
#[derive(Debug, Serialize)]
pub struct SysvMsq {
    pub qnum: Option<i64>,
    /// Null when this user may not read the queue.
    pub qbytes: Option<u64>,
    pub cbytes: Option<i64>,
    pub lspid: Option<i64>,
    pub lrpid: Option<i64>,
    pub stime: Time,
    pub rtime: Time,
    pub ctime: Time,
}

/// A System V segment: /proc/sysvipc/shm.
#[derive(Debug, Serialize)]
pub struct SysvShm {
    pub size: Option<i64>,
    pub nattch: Option<i64>,
    pub cpid: Option<i64>,
    pub lpid: Option<i64>,
    pub atime: Time,
    pub dtime: Time,
    pub ctime: Time,
    pub rss: Option<i64>,
    pub swap: Option<i64>,
    /// IPC_RMID was called (SHM_DEST in the mode): freed at the last detach.
    #[serde(skip)]
    pub removed: bool,
}

/// A System V semaphore set: /proc/sysvipc/sem and, per semaphore, GETALL,
/// GETNCNT, GETZCNT and GETPID (all null when the set may not be read).
#[derive(Debug, Serialize)]
pub struct SysvSem {
    pub nsems: i64,
    pub values: Option<Vec<u16>>,
    /// The last pid of each semaphore.
    pub pids: Option<Vec<i32>>,
    /// GETNCNT + GETZCNT over the set.
    pub waiters: Option<u64>,
    pub otime: Time,
    pub ctime: Time,
    pub sems: Option<Vec<Semaphore>>,
}

/// User and group names, looked up once per id.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    /// Fill in the owner's and group's names.
    pub fn name(&mut self, obj: &mut Object) {
        obj.owner.clone_from(
            self.users
                .entry(obj.uid)
                .or_insert_with(|| user_name(obj.uid)),
        );
        obj.group.clone_from(
            self.groups
                .entry(obj.gid)
                .or_insert_with(|| group_name(obj.gid)),
        );
    }
}
