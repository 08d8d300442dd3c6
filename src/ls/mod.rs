//! `ls`: every IPC object on the machine, POSIX and System V, with the live
//! processes that use it and whether it is orphaned.
//!
//! One scan reads /dev/shm, the mqueue filesystem and /proc/sysvipc, then
//! walks /proc once (maps, fds, blocked syscalls) and attributes users to
//! objects from that single pass.

mod posix;
mod procs;
mod select;
mod sysv;
mod table;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use chrono::{Local, SecondsFormat, TimeZone};
use serde_json::{Value, json};

use crate::output::{Fields, Out, escape};
use crate::sys::{group_name, user_name};

pub use posix::MqSource;
use procs::{Blocked, How, Procs, Want};
pub use select::{Select, Selection};
pub use table::Column;
use table::Layout;

pub use crate::object::Kind;

/// The id column's name in `ipcs` style.
pub(super) fn id_column(kind: Kind) -> &'static str {
    match kind {
        Kind::SysvMsq => "msqid",
        Kind::SysvShm => "shmid",
        _ => "semid",
    }
}

/// A live process using an object.
#[derive(Debug, Clone)]
pub struct User {
    pub pid: i32,
    pub command: String,
    pub how: &'static str,
}

/// One object as found, before and after its users are known.
#[derive(Debug)]
pub struct Object {
    pub kind: Kind,
    pub name: Option<String>,
    pub key: Option<i32>,
    pub id: Option<i32>,
    pub uid: u32,
    pub gid: u32,
    pub perms: u32,
    pub cuid: Option<u32>,
    pub cgid: Option<u32>,
    /// The kind's own fields, in the order `--stat` prints them.
    pub fields: Fields,
    /// Bytes for the SIZE column: a segment's size, a queue's bytes queued.
    pub size: Option<u64>,
    /// Something the user should know (not readable, not a valid semaphore).
    pub note: Option<String>,
    /// File name in the mqueue filesystem.
    file: Option<String>,
    /// (device, inode) of a file under /dev/shm.
    inode: Option<(u64, u64)>,
    mq_dev: Option<u64>,
    notify_pid: Option<i64>,
    nattch: i64,
    /// System V pids: shm [cpid, lpid], msq [lspid, lrpid], sem sempid each.
    pids: Vec<i64>,
    /// System V semaphore waiters (GETNCNT + GETZCNT), u64::MAX if unknown.
    waiters: u64,
    pub users: Vec<User>,
    pub orphaned: bool,
    /// Neither orphaned nor known to be in use: the object or some processes
    /// could not be read. Never removed by `clean --stale`.
    pub unknown: bool,
}

impl Object {
    fn new(kind: Kind) -> Object {
        Object {
            kind,
            name: None,
            key: None,
            id: None,
            uid: 0,
            gid: 0,
            perms: 0,
            cuid: None,
            cgid: None,
            fields: Fields::new(),
            size: None,
            note: None,
            file: None,
            inode: None,
            mq_dev: None,
            notify_pid: None,
            nattch: 0,
            pids: Vec::new(),
            waiters: 0,
            users: Vec::new(),
            orphaned: false,
            unknown: false,
        }
    }

    fn set_owner(&mut self, uid: u32, gid: u32, mode: u32) {
        self.uid = uid;
        self.gid = gid;
        self.perms = mode & 0o777;
    }

    /// `0x000000c8`, as ipcs prints a key.
    pub fn key_hex(&self) -> Option<String> {
        self.key.map(|k| format!("0x{:08x}", k as u32))
    }

    /// The name or key a user types to address the object, for text: a
    /// name is escaped (it may hold an ESC or a newline).
    pub fn label(&self) -> String {
        self.name
            .as_deref()
            .map(|n| escape(n).into_owned())
            .or_else(|| self.key_hex())
            .unwrap_or_default()
    }

    /// One JSON object: the `--stat` fields, then users and orphaned.
    pub fn to_json(&self, names: &mut Names) -> Value {
        let mut m = Fields::new();
        m.insert("mechanism".into(), self.kind.mechanism().into());
        if let Some(name) = &self.name {
            m.insert("name".into(), name.clone().into());
        }
        if let Some(key) = self.key_hex() {
            m.insert("key".into(), key.into());
            m.insert("id".into(), json!(self.id));
        }
        m.insert("uid".into(), self.uid.into());
        m.insert("owner".into(), names.user(self.uid).into());
        m.insert("gid".into(), self.gid.into());
        m.insert("group".into(), names.group(self.gid).into());
        if !self.kind.is_posix() {
            m.insert("cuid".into(), json!(self.cuid));
            m.insert("cgid".into(), json!(self.cgid));
        }
        m.insert("perms".into(), format!("{:04o}", self.perms).into());
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        let users: Vec<Value> = self
            .users
            .iter()
            .map(|u| json!({"pid": u.pid, "command": u.command, "how": u.how}))
            .collect();
        m.insert("users".into(), users.into());
        let orphaned = if self.unknown {
            Value::Null
        } else {
            self.orphaned.into()
        };
        m.insert("orphaned".into(), orphaned);
        if let Some(note) = &self.note {
            m.insert("note".into(), note.clone().into());
        }
        Value::Object(m)
    }
}

/// RFC 3339 in local time, null for the kernel's 0 ("never").
pub fn time(secs: i64) -> Value {
    if secs == 0 {
        return Value::Null;
    }
    Local
        .timestamp_opt(secs, 0)
        .single()
        .map_or(Value::Null, |t| {
            t.to_rfc3339_opts(SecondsFormat::Secs, false).into()
        })
}

/// User and group names, looked up once per id.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    pub fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| user_name(uid))
            .clone()
    }

    pub fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| group_name(gid))
            .clone()
    }
}

/// What one scan found.
#[derive(Default)]
pub struct Scan {
    pub objects: Vec<Object>,
    /// Objects found but not (fully) readable by this user.
    pub unreadable: usize,
    /// Why POSIX queues are missing, when they are.
    pub mq_note: Option<String>,
    pub mq_source: Option<MqSource>,
    /// Other trouble worth a line (a /proc file that cannot be read).
    pub notes: Vec<String>,
    /// Processes whose maps and descriptors this user may not read, with
    /// their commands.
    pub hidden_procs: Vec<(i32, String)>,
    /// Whether hidden processes leave verdicts unknown (see `attribute`).
    hidden_matter: bool,
}

impl Scan {
    /// Find the selected objects, then their users in one pass over /proc.
    pub fn run(select: &Select) -> Scan {
        let mut scan = Scan::default();
        // The queue listing may fork a child: start it first, while this
        // process is single-threaded, and let it run during the other scans.
        let mq = select.wants(Kind::PosixMsq).then(posix::start_mqueues);
        let mq_child = mq.as_ref().and_then(posix::MqPending::child_pid);
        let (shm, sem) = (select.wants(Kind::PosixShm), select.wants(Kind::PosixSem));
        if shm || sem {
            posix::scan_shm_dir(&mut scan, shm, sem);
        }
        if select.wants(Kind::SysvMsq) {
            sysv::scan_msg(&mut scan);
        }
        if select.wants(Kind::SysvShm) {
            sysv::scan_shm(&mut scan);
        }
        if select.wants(Kind::SysvSem) {
            sysv::scan_sem(&mut scan);
        }
        scan.objects.retain(|o| select.matches(o));
        let mut want = Want {
            fds: mq.is_some(),
            ..Want::default()
        };
        for o in &scan.objects {
            match o.kind {
                Kind::PosixShm | Kind::PosixSem => (want.maps, want.fds) = (true, true),
                Kind::PosixMsq => want.fds = true,
                Kind::SysvShm => want.maps |= o.nattch > 0,
                Kind::SysvMsq | Kind::SysvSem => want.syscalls = true,
            }
        }
        let skip = [Some(std::process::id() as i32), mq_child];
        let procs = Procs::scan(&skip, want);
        if let Some(mq) = mq {
            posix::finish_mqueues(mq, &mut scan);
            scan.objects.retain(|o| select.matches(o));
        }
        // Root reads every process but one more privileged than itself (a
        // container's init holding capabilities root lacks here): those are
        // named in a note, and the verdicts rest on what root sees. For any
        // other user, other users' processes are hidden and may use anything.
        let hidden_matter = !procs.hidden.is_empty() && !nix::unistd::geteuid().is_root();
        for obj in &mut scan.objects {
            attribute(obj, &procs, hidden_matter);
        }
        scan.hidden_matter = hidden_matter;
        scan.hidden_procs = procs
            .hidden
            .iter()
            .map(|&p| (p, procs.command(p)))
            .collect();
        // Kind, then name in natural order (q-2 before q-10), then key and id.
        scan.objects.sort_by(|a, b| {
            (a.kind as u8)
                .cmp(&(b.kind as u8))
                .then_with(|| {
                    natural(
                        a.name.as_deref().unwrap_or(""),
                        b.name.as_deref().unwrap_or(""),
                    )
                })
                .then_with(|| (a.key.map(|k| k as u32), a.id).cmp(&(b.key.map(|k| k as u32), b.id)))
        });
        scan
    }
}

/// Compare names with runs of digits as numbers: `q-2` before `q-10`.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&a[..da], &b[..db]);
                // Leading zeros aside, a longer run is a larger number.
                let trim = |n: &[u8]| {
                    n.iter()
                        .position(|&c| c != b'0')
                        .map_or(&n[n.len()..], |i| &n[i..])
                        .to_vec()
                };
                let (ta, tb) = (trim(na), trim(nb));
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(&tb))
                    .then_with(|| na.cmp(nb));
                if ord.is_ne() {
                    return ord;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

/// Users and the orphaned verdict of one object.
///
/// - POSIX: users are the processes that map it or hold a descriptor (and a
///   queue's mq_notify registrant); orphaned = no user. POSIX records no
///   creator pid.
/// - System V shm: attached processes and the creator if alive; orphaned =
///   nattch 0 and no such user.
/// - System V msq: threads blocked in msgsnd/msgrcv on it, and the last
///   sender and receiver if alive; orphaned = none of them.
/// - System V sem: threads blocked in semop, the last pid of each semaphore
///   if alive, and waiters; orphaned = none of them.
///
/// A pid reused by an unrelated process only makes the verdict more careful.
fn attribute(obj: &mut Object, procs: &Procs, hidden_matter: bool) {
    let mut users: Vec<(i32, How)> = Vec::new();
    let add = |pid: i64, how: How, users: &mut Vec<(i32, How)>| {
        if let Ok(pid) = i32::try_from(pid)
            && procs.alive(pid.into())
            && !users.iter().any(|(p, _)| *p == pid)
        {
            users.push((pid, how));
        }
    };
    let mut in_use = false;
    match obj.kind {
        Kind::PosixShm | Kind::PosixSem => {
            if let Some(inode) = obj.inode {
                for (pid, how) in procs.shm_users(inode) {
                    add(pid.into(), how, &mut users);
                }
            }
        }
        Kind::PosixMsq => {
            let file = obj.file.as_deref().unwrap_or_default();
            for pid in procs.mq_users(file, obj.mq_dev) {
                add(pid.into(), How::Open, &mut users);
            }
            if let Some(pid) = obj.notify_pid {
                add(pid, How::Notify, &mut users);
            }
        }
        Kind::SysvShm => {
            let id = obj.id.unwrap_or(-1);
            for &pid in procs.sysv_attached(id) {
                add(pid.into(), How::Attached, &mut users);
            }
            if let Some(&cpid) = obj.pids.first() {
                add(cpid, How::Creator, &mut users);
            }
            in_use = obj.nattch > 0;
        }
        Kind::SysvMsq => {
            let id = obj.id.unwrap_or(-1);
            for &pid in procs.blocked(Blocked::Msq(id)) {
                add(pid.into(), How::Blocked, &mut users);
            }
            for &pid in &obj.pids {
                add(pid, How::LastOp, &mut users);
            }
        }
        Kind::SysvSem => {
            let id = obj.id.unwrap_or(-1);
            for &pid in procs.blocked(Blocked::Sem(id)) {
                add(pid.into(), How::Blocked, &mut users);
            }
            for &pid in &obj.pids {
                add(pid, How::LastOp, &mut users);
            }
            in_use = obj.waiters > 0;
        }
    }
    // What could not be seen may be in use: a System V segment is judged by
    // nattch and its creator, both always visible; everything else needs
    // every process's maps, descriptors or syscalls.
    let unreadable = obj.note.is_some() && !matches!(obj.kind, Kind::PosixSem | Kind::SysvShm);
    let hidden = hidden_matter && obj.kind != Kind::SysvShm;
    obj.orphaned = users.is_empty() && !in_use && !unreadable && !hidden;
    obj.unknown = users.is_empty() && !in_use && (unreadable || hidden);
    obj.users = users
        .into_iter()
        .map(|(pid, how)| User {
            pid,
            command: procs.command(pid),
            how: how.as_str(),
        })
        .collect();
}

/// A POSIX queue's owner and attributes, for `limits`.
pub struct QueueInfo {
    pub uid: u32,
    pub maxmsg: Option<u32>,
    pub msgsize: Option<u32>,
}

/// Every POSIX queue, or why they cannot be listed.
pub fn posix_queues() -> Result<Vec<QueueInfo>> {
    let mut scan = Scan::default();
    posix::finish_mqueues(posix::start_mqueues(), &mut scan);
    if let Some(note) = scan.mq_note {
        anyhow::bail!("{note}");
    }
    let field = |o: &Object, k: &str| {
        o.fields
            .get(k)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    Ok(scan
        .objects
        .iter()
        .map(|o| QueueInfo {
            uid: o.uid,
            maxmsg: field(o, "maxmsg"),
            msgsize: field(o, "msgsize"),
        })
        .collect())
}

/// What `ls` was asked for.
pub struct ListOptions {
    /// `--list-columns`: name the columns and list nothing.
    pub list_columns: bool,
    pub select: Select,
    /// Only orphaned objects.
    pub orphaned: bool,
    /// The table's columns as given (`-o`), empty for the default ones.
    pub columns: Vec<Column>,
    pub headings: bool,
    pub raw: bool,
    /// Exact sizes instead of human-readable ones.
    pub bytes: bool,
}

pub fn run(opts: &ListOptions, out: &mut Out) -> Result<ExitCode> {
    if opts.list_columns {
        table::list_columns(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let layout = Layout::resolve(opts, out.is_json())?;
    let mut scan = Scan::run(&opts.select);
    if opts.orphaned {
        scan.objects.retain(|o| o.orphaned);
    }
    let mut names = Names::default();
    if out.is_json() {
        let doc = json_doc(&scan, &mut names);
        out.record("", || doc)?;
        return Ok(ExitCode::SUCCESS);
    }
    let table = table::table(&scan, &layout, &mut names);
    out.writer().write_all(table.as_bytes())?;
    if layout.plain() {
        out.writer().write_all(table::footer(&scan).as_bytes())?;
    } else {
        // Rows only on stdout, for scripts; what the user should still
        // know goes to stderr. The count is `wc -l`.
        out.flush()?;
        for line in table::notes(&scan) {
            eprintln!("note: {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn json_doc(scan: &Scan, names: &mut Names) -> Value {
    let objects: Vec<Value> = scan.objects.iter().map(|o| o.to_json(names)).collect();
    let (listed, source) = match &scan.mq_source {
        Some(MqSource::Mounted(dir)) => (true, Value::from(dir.clone())),
        Some(MqSource::Private) => (true, Value::from("private-mount-namespace")),
        None => (false, Value::Null),
    };
    json!({
        "objects": objects,
        "unreadable": scan.unreadable,
        "hidden_processes": scan.hidden_procs.iter().map(|(p, c)| json!({"pid": p, "command": c})).collect::<Vec<_>>(),
        "mqueue": {"listed": listed, "source": source, "note": scan.mq_note},
        "notes": scan.notes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn natural_order() {
        use super::natural;
        use std::cmp::Ordering::*;
        assert_eq!(natural("/q-2", "/q-10"), Less);
        assert_eq!(natural("/q-10", "/q-9"), Greater);
        assert_eq!(natural("/q-010", "/q-10"), Less);
        assert_eq!(natural("/a", "/b"), Less);
        assert_eq!(natural("/q", "/q-1"), Less);
        assert_eq!(natural("/q-1", "/q-1"), Equal);
    }
}
