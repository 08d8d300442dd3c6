//! `ls`: every IPC object on the machine, POSIX and System V, with the live
//! processes that use it and whether it is orphaned.
//!
//! One scan reads /dev/shm, the mqueue filesystem and /proc/sysvipc, then
//! walks /proc once (maps, fds, blocked syscalls) and attributes users to
//! objects from that single pass.

mod posix;
mod procs;
mod sysv;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use chrono::{Local, SecondsFormat, TimeZone};
use serde_json::{Value, json};

use clap::ValueEnum as _;

use crate::cli::{IpcType, LsArgs, LsColumn, SelectArgs};
use crate::error::usage;
use crate::object::Mech;
use crate::output::{Escaped, Fields, Out, escape, plural};
use crate::sys::{group_name, user_name};

pub use posix::MqSource;
use procs::{Blocked, How, Procs, Want};

pub use crate::object::Kind;

/// `-t msq|shm|sem` as the command line spells it.
fn ipc_type(kind: Kind) -> IpcType {
    match kind.mech() {
        Mech::Msq => IpcType::Msq,
        Mech::Shm => IpcType::Shm,
        Mech::Sem => IpcType::Sem,
    }
}

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

/// Which objects a command looks at, resolved from `SelectArgs`.
pub struct Select {
    posix: bool,
    sysv: bool,
    ty: Option<IpcType>,
    owner: Option<u32>,
    /// Exact POSIX names, each with its leading '/'.
    names: Vec<String>,
    prefix: Option<String>,
    key: Option<i32>,
}

impl Select {
    pub fn resolve(args: &SelectArgs) -> Result<Select> {
        let owner = match &args.owner {
            None => None,
            Some(o) => Some(match o.parse::<u32>() {
                Ok(uid) => uid,
                Err(_) => match nix::unistd::User::from_name(o) {
                    Ok(Some(u)) => u.uid.as_raw(),
                    _ => return Err(usage(format!("--owner {o}: no such user"))),
                },
            }),
        };
        let names: Vec<String> = args.name.iter().map(|n| n.as_str().to_string()).collect();
        let prefix = args.prefix.as_ref().map(|p| p.as_str().to_string());
        let by_name = !names.is_empty() || prefix.is_some();
        // --name/--prefix select POSIX objects and --key System V ones; given
        // alone, each also narrows the family (System V objects have no
        // names, POSIX ones no keys).
        let (mut posix, mut sysv) = match (args.posix, args.sysv) {
            (false, false) => (true, true),
            (p, s) => (p, s),
        };
        if by_name && args.key.is_none() {
            sysv = false;
        }
        if args.key.is_some() && !by_name {
            posix = false;
        }
        Ok(Select {
            posix,
            sysv,
            ty: args.r#type,
            owner,
            names,
            prefix,
            key: args.key.map(|k| k.raw()),
        })
    }

    fn wants(&self, kind: Kind) -> bool {
        (if kind.is_posix() {
            self.posix
        } else {
            self.sysv
        }) && self.ty.is_none_or(|t| t == ipc_type(kind))
    }

    /// A POSIX object's name (as ls shows it) inside the selection: equal
    /// to one --name or starting with --prefix; any when neither is given.
    fn name_matches(&self, name: Option<&str>) -> bool {
        if self.names.is_empty() && self.prefix.is_none() {
            return true;
        }
        name.is_some_and(|name| {
            self.names.iter().any(|n| n == name)
                || self.prefix.as_deref().is_some_and(|p| name.starts_with(p))
        })
    }

    fn matches(&self, obj: &Object) -> bool {
        if !self.wants(obj.kind) || self.owner.is_some_and(|uid| uid != obj.uid) {
            return false;
        }
        if obj.kind.is_posix() {
            self.name_matches(obj.name.as_deref())
        } else {
            self.key.is_none_or(|k| obj.key == Some(k))
        }
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

pub fn run(args: &LsArgs, out: &mut Out) -> Result<ExitCode> {
    if args.list_columns {
        list_columns(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let layout = Layout::resolve(args, out.is_json())?;
    let select = Select::resolve(&args.select)?;
    let mut scan = Scan::run(&select);
    if args.orphaned {
        scan.objects.retain(|o| o.orphaned);
    }
    let mut names = Names::default();
    if out.is_json() {
        let doc = json_doc(&scan, &mut names);
        out.record("", || doc)?;
        return Ok(ExitCode::SUCCESS);
    }
    let table = table(&scan, &layout, &mut names);
    out.writer().write_all(table.as_bytes())?;
    if layout.plain() {
        out.writer().write_all(footer(&scan).as_bytes())?;
    } else {
        // Rows only on stdout, for scripts; what the user should still
        // know goes to stderr. The count is `wc -l`.
        out.flush()?;
        for line in notes(&scan) {
            eprintln!("note: {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--list-columns`: each column's name and one line about it.
fn list_columns(out: &mut Out) -> Result<()> {
    let columns: Vec<(String, String)> = LsColumn::value_variants()
        .iter()
        .map(|&c| (header(c), about(c)))
        .collect();
    if out.is_json() {
        let doc: Vec<Value> = columns
            .iter()
            .map(|(name, about)| json!({"name": name, "description": about}))
            .collect();
        out.record("", || Value::from(doc))?;
    } else {
        let width = columns.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, about) in &columns {
            out.record(format_args!("{name:width$}  {about}"), || Value::Null)?;
        }
    }
    Ok(())
}

/// The name of a column, as the header shows it and --output takes it.
fn header(col: LsColumn) -> String {
    col.to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

fn about(col: LsColumn) -> String {
    col.to_possible_value()
        .and_then(|v| v.get_help().map(ToString::to_string))
        .unwrap_or_default()
}

/// How the text table is printed, from `LsArgs`.
struct Layout {
    columns: Vec<LsColumn>,
    headings: bool,
    raw: bool,
    bytes: bool,
}

impl Layout {
    fn resolve(args: &LsArgs, json: bool) -> Result<Layout> {
        if json {
            // The JSON document is the same whatever the table looks like:
            // an option that would be ignored is refused instead.
            let given = [
                (!args.output.is_empty(), "--output"),
                (args.noheadings, "--noheadings"),
                (args.raw, "--raw"),
            ];
            if let Some((_, flag)) = given.iter().find(|(on, _)| *on) {
                return Err(usage(format!(
                    "{flag} shapes the text table; the --json document always has every field"
                )));
            }
        }
        let columns = if args.output.is_empty() {
            LsColumn::DEFAULT.to_vec()
        } else {
            args.output.clone()
        };
        Ok(Layout {
            columns,
            headings: !args.noheadings,
            raw: args.raw,
            bytes: args.bytes,
        })
    }

    /// The table for people: header, aligned rows, summary and notes.
    fn plain(&self) -> bool {
        self.headings && !self.raw
    }
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

/// `4.0K`, `12M`: one decimal below 10, as `ls -h` does.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1}{}", UNITS[unit])
    } else {
        format!("{v:.0}{}", UNITS[unit])
    }
}

fn num(v: Option<&Value>) -> String {
    match v {
        Some(Value::Null) | None => "?".into(),
        Some(v) => v.to_string(),
    }
}

/// The DETAIL column: what matters most for each kind.
fn detail(obj: &Object, bytes: bool) -> String {
    let f = &obj.fields;
    let size = |v: Option<&Value>| match v.and_then(Value::as_u64) {
        Some(b) if bytes => b.to_string(),
        Some(b) => human(b),
        None => "?".into(),
    };
    let mut s = match obj.kind {
        Kind::PosixMsq => format!(
            "{}/{} msgs, msgsize {}",
            num(f.get("curmsgs")),
            num(f.get("maxmsg")),
            num(f.get("msgsize"))
        ),
        Kind::PosixShm => String::new(),
        Kind::PosixSem => match f.get("value").and_then(Value::as_u64) {
            Some(v) => {
                let waiters = f.get("waiters").and_then(Value::as_u64).unwrap_or(0);
                if waiters > 0 {
                    format!("value {v}, {waiters} waiting")
                } else {
                    format!("value {v}")
                }
            }
            None => String::new(),
        },
        Kind::SysvMsq => format!(
            "{}, qbytes {}",
            match f.get("qnum").and_then(Value::as_u64) {
                Some(n) => plural(n, "msg", "msgs"),
                None => format!("{} msgs", num(f.get("qnum"))),
            },
            size(f.get("qbytes"))
        ),
        Kind::SysvShm => format!("nattch {}", num(f.get("nattch"))),
        Kind::SysvSem => match f.get("values").and_then(Value::as_array) {
            Some(values) => {
                let list: Vec<String> = values.iter().map(Value::to_string).collect();
                format!("values {}", list.join(","))
            }
            None => format!("nsems {}", num(f.get("nsems"))),
        },
    };
    if let Some(note) = &obj.note {
        if !s.is_empty() {
            s.push_str("; ");
        }
        s.push_str(note);
    }
    s
}

fn users_cell(obj: &Object) -> String {
    const SHOWN: usize = 3;
    let mut s: Vec<String> = obj
        .users
        .iter()
        .take(SHOWN)
        .map(|u| format!("{}/{}({})", u.pid, u.command, u.how))
        .collect();
    if obj.users.len() > SHOWN {
        s.push(format!("+{} more", obj.users.len() - SHOWN));
    }
    if s.is_empty() {
        "-".into()
    } else {
        s.join(" ")
    }
}

/// One cell, before escaping.
fn cell(col: LsColumn, o: &Object, bytes: bool, names: &mut Names) -> String {
    let absent = || "-".to_string();
    match col {
        LsColumn::Type => o.kind.mechanism().into(),
        LsColumn::NameKey => o.name.clone().or_else(|| o.key_hex()).unwrap_or_default(),
        LsColumn::Name => o.name.clone().unwrap_or_else(absent),
        LsColumn::Key => o.key_hex().unwrap_or_else(absent),
        LsColumn::Id => o.id.map_or_else(absent, |i| i.to_string()),
        LsColumn::Owner => names.user(o.uid),
        LsColumn::Uid => o.uid.to_string(),
        LsColumn::Group => names.group(o.gid),
        LsColumn::Gid => o.gid.to_string(),
        LsColumn::Perms => format!("{:04o}", o.perms),
        LsColumn::Size => match o.size {
            Some(b) if bytes => b.to_string(),
            Some(b) => human(b),
            None => absent(),
        },
        LsColumn::State => match (o.orphaned, o.unknown) {
            (true, _) => "orphaned",
            (false, true) => "unknown",
            (false, false) => "in use",
        }
        .into(),
        LsColumn::Users => users_cell(o),
        LsColumn::Detail => detail(o, bytes),
    }
}

/// Numbers are right-aligned, text left-aligned.
fn right_aligned(col: LsColumn) -> bool {
    matches!(
        col,
        LsColumn::Id | LsColumn::Uid | LsColumn::Gid | LsColumn::Size
    )
}

/// A value as `--raw` prints it, as `lsipc --raw` does: one field without
/// blanks, so rows split on single spaces. Spaces, backslashes (so that
/// `\xNN` reads back one way) and control characters are written `\xNN`,
/// a byte each; other text, non-ASCII too, is kept. An empty value is an
/// empty field.
fn raw_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch == ' ' || ch == '\\' || ch.is_control() {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{b:02x}");
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// The header and rows: aligned, or `--raw`.
fn table(scan: &Scan, layout: &Layout, names: &mut Names) -> String {
    let cols = &layout.columns;
    let header: Vec<String> = cols.iter().map(|&c| header(c)).collect();
    let rows: Vec<Vec<String>> = scan
        .objects
        .iter()
        .map(|o| {
            cols.iter()
                .map(|&c| {
                    let cell = cell(c, o, layout.bytes, names);
                    // Names, commands, notes: every cell is escaped here,
                    // once, so none can break the table or reach the
                    // terminal as a control sequence, and the widths count
                    // what is printed.
                    if layout.raw {
                        raw_cell(&cell)
                    } else {
                        escape(&cell).into_owned()
                    }
                })
                .collect()
        })
        .collect();
    let mut s = String::new();
    let shown = layout.headings.then_some(&header).into_iter();
    if layout.raw {
        for row in shown.chain(&rows) {
            s.push_str(&row.join(" "));
            s.push('\n');
        }
        return s;
    }
    let mut width: Vec<usize> = vec![0; cols.len()];
    for row in shown.clone().chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in shown.chain(&rows) {
        let mut l = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = width[i].saturating_sub(cell.chars().count());
            if right_aligned(cols[i]) {
                let _ = write!(l, "{}{cell}", " ".repeat(pad));
            } else if i + 1 == row.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell}{}", " ".repeat(pad));
            }
            if i + 1 < row.len() {
                l.push_str("  ");
            }
        }
        // No trailing blanks.
        s.push_str(l.trim_end());
        s.push('\n');
    }
    s
}

/// The summary line and the notes below the table.
fn footer(scan: &Scan) -> String {
    let orphaned = scan.objects.iter().filter(|o| o.orphaned).count();
    let unknown = scan.objects.iter().filter(|o| o.unknown).count();
    let mut s = format!(
        "{}, {orphaned} orphaned",
        plural(scan.objects.len(), "object", "objects")
    );
    if unknown > 0 {
        let _ = write!(s, ", {unknown} unknown");
    }
    s.push('\n');
    for note in notes(scan) {
        s.push_str(&note);
        s.push('\n');
    }
    s
}

/// What the user should know about the scan itself, one line each, escaped.
fn notes(scan: &Scan) -> Vec<String> {
    let mut notes = Vec::new();
    if scan.hidden_matter {
        notes.push(format!(
            "{} not readable by this user: their use of objects is unknown (run as root to see every user)",
            plural(scan.hidden_procs.len(), "process", "processes")
        ));
    } else if !scan.hidden_procs.is_empty() {
        let list: Vec<String> = scan
            .hidden_procs
            .iter()
            .map(|(p, c)| format!("{p}/{}", Escaped(c)))
            .collect();
        notes.push(format!(
            "not readable even by root (not counted as users): {}",
            list.join(" ")
        ));
    }
    if let Some(MqSource::Private) = scan.mq_source {
        notes.push(
            "POSIX queues listed through a private mount namespace (/dev/mqueue is not mounted)"
                .into(),
        );
    }
    if let Some(note) = &scan.mq_note {
        notes.push(Escaped(note).to_string());
    }
    if scan.unreadable > 0 {
        notes.push(format!(
            "{} not readable by this user",
            plural(scan.unreadable, "object", "objects")
        ));
    }
    for note in &scan.notes {
        notes.push(Escaped(note).to_string());
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::human;

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

    #[test]
    fn names_match_exactly_and_prefixes_by_prefix() {
        let select = |names: &[&str], prefix: Option<&str>| super::Select {
            posix: true,
            sysv: false,
            ty: None,
            owner: None,
            names: names.iter().map(|n| n.to_string()).collect(),
            prefix: prefix.map(str::to_string),
            key: None,
        };
        let s = select(&["/a"], None);
        assert!(s.name_matches(Some("/a")));
        assert!(!s.name_matches(Some("/ab")));
        assert!(!s.name_matches(Some("/")));
        assert!(!s.name_matches(None));
        let s = select(&["/a", "/c"], Some("/b"));
        for name in ["/a", "/c", "/b", "/bc"] {
            assert!(s.name_matches(Some(name)), "{name}");
        }
        for name in ["/ab", "/cb", "/", ""] {
            assert!(!s.name_matches(Some(name)), "{name}");
        }
        // No --name and no --prefix: names do not narrow.
        assert!(select(&[], None).name_matches(Some("/anything")));
    }

    #[test]
    fn raw_cells_have_no_blanks_and_read_back_one_way() {
        use super::raw_cell;
        assert_eq!(raw_cell("in use"), "in\\x20use");
        assert_eq!(raw_cell("a\\x20b"), "a\\x5cx20b");
        assert_eq!(raw_cell("tab\there\nnl"), "tab\\x09here\\x0anl");
        // C1 controls are two bytes in UTF-8; other non-ASCII text is kept.
        assert_eq!(raw_cell("\u{85}é"), "\\xc2\\x85é");
        assert_eq!(raw_cell(""), "");
        assert_eq!(raw_cell("/q-1"), "/q-1");
    }

    #[test]
    fn header_names_are_the_clap_names() {
        use crate::cli::LsColumn;
        let names: Vec<String> = LsColumn::DEFAULT
            .iter()
            .map(|&c| super::header(c))
            .collect();
        assert_eq!(
            names,
            [
                "TYPE", "NAME/KEY", "ID", "OWNER", "PERMS", "SIZE", "STATE", "USERS", "DETAIL"
            ]
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(4096), "4.0K");
        assert_eq!(human(81920), "80K");
        assert_eq!(human(3 * 1024 * 1024 / 2), "1.5M");
    }
}
