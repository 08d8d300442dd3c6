//! `ls`: every IPC object on the machine, POSIX and System V, with the live
//! processes that use it and whether it is orphaned.
//!
//! One scan reads /dev/shm, the mqueue filesystem and /proc/sysvipc, then
//! walks /proc once (maps, fds, blocked syscalls) and attributes users to
//! objects from that single pass.

mod all;
mod posix;
mod procs;
mod record;
mod select;
mod sysv;
mod table;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::mqfs::{self, MqSource};
use crate::output::Out;

pub use all::{in_ipc_namespace, in_namespace, resolve_namespace, tag};
use procs::{Blocked, How, Procs, Want};
pub use record::{Fields, Names, NsTag, Object, State, SysvMsq, User, key_hex};
pub use select::{Select, Selection};
pub use table::Column;
use table::Layout;

pub use crate::object::Kind;

/// A process, by pid and command.
#[derive(Debug, Serialize)]
pub struct Process {
    pub pid: i32,
    pub command: String,
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
    /// Processes whose maps and descriptors this user may not read.
    pub hidden_procs: Vec<Process>,
    /// Whether hidden processes leave verdicts unknown (see `attribute`).
    hidden_matter: bool,
}

impl Scan {
    /// Find the selected objects, then their users in one pass over /proc.
    pub fn run(select: &Select) -> Scan {
        let mut scan = Scan::default();
        // The queue listing may fork a child: start it first, while this
        // process is single-threaded, and let it run during the other scans.
        let mq = select.wants(Kind::PosixMsq).then(mqfs::start);
        let mq_child = mq.as_ref().and_then(mqfs::Pending::child_pid);
        scan.find(select);
        let mut want = Want {
            fds: mq.is_some(),
            ..Want::default()
        };
        for o in &scan.objects {
            match &o.fields {
                Fields::PosixShm(_) | Fields::PosixSem(_) => (want.maps, want.fds) = (true, true),
                Fields::PosixMsq(_) => want.fds = true,
                Fields::SysvShm(s) => want.maps |= s.nattch.unwrap_or(0) > 0,
                Fields::SysvMsq(_) | Fields::SysvSem(_) => want.syscalls = true,
            }
        }
        let skip = [Some(std::process::id() as i32), mq_child];
        let procs = Procs::scan(&skip, want);
        if let Some(mq) = mq {
            posix::add_queues(mqfs::finish(mq), &mut scan);
            scan.objects.retain(|o| select.matches(o));
        }
        scan.finish(&procs);
        scan
    }

    /// The selected objects in /dev/shm and /proc/sysvipc (queues come later).
    fn find(&mut self, select: &Select) {
        let (shm, sem) = (select.wants(Kind::PosixShm), select.wants(Kind::PosixSem));
        if shm || sem {
            posix::scan_shm_dir(self, None, shm, sem);
        }
        if select.wants(Kind::SysvMsq) {
            sysv::scan_msg(&sysv::Here, self);
        }
        if select.wants(Kind::SysvShm) {
            sysv::scan_shm(&sysv::Here, self);
        }
        if select.wants(Kind::SysvSem) {
            sysv::scan_sem(&sysv::Here, self);
        }
        self.objects.retain(|o| select.matches(o));
    }

    /// Users, verdicts, owner names, and the listing order: namespace
    /// (the current one first), kind, then name in natural order (q-2
    /// before q-10), then key and id.
    fn finish(&mut self, procs: &Procs) {
        self.attribute(procs);
        let mut names = Names::default();
        for obj in &mut self.objects {
            names.name(obj);
        }
        let ns = |o: &Object| o.namespace.as_ref().map(|n| (!n.current, n.inode));
        let objects = &self.objects;
        // A stable sort of the objects themselves would take a scratch copy
        // of them (hundreds of KiB of fresh pages for 1,000): sort their
        // indices, then move each object once.
        let mut order: Vec<usize> = (0..objects.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&objects[a], &objects[b]);
            ns(a)
                .cmp(&ns(b))
                .then_with(|| (a.kind as u8).cmp(&(b.kind as u8)))
                .then_with(|| {
                    natural(
                        a.name.as_deref().unwrap_or(""),
                        b.name.as_deref().unwrap_or(""),
                    )
                })
                .then_with(|| (a.key.map(|k| k as u32), a.id).cmp(&(b.key.map(|k| k as u32), b.id)))
        });
        permute(&mut self.objects, order);
    }

    /// Every object's users and verdict.
    fn attribute(&mut self, procs: &Procs) {
        // Root reads every process but one more privileged than itself (a
        // container's init holding capabilities root lacks here): those are
        // named in a note, and the verdicts rest on what root sees. For any
        // other user, other users' processes are hidden and may use anything.
        let hidden_matter = !procs.hidden.is_empty() && !nix::unistd::geteuid().is_root();
        for obj in &mut self.objects {
            attribute(obj, procs, hidden_matter);
        }
        self.hidden_matter = hidden_matter;
        self.hidden_procs = procs
            .hidden
            .iter()
            .map(|&pid| Process {
                pid,
                command: procs.command(pid),
            })
            .collect();
    }
}

/// Put `v[order[i]]` at `i` for every `i` (`order` a permutation of the
/// indices), in place: each cycle of `order` is rotated once, swap by swap,
/// and marked done in `order` as it goes, so every object moves once.
fn permute<T>(v: &mut [T], mut order: Vec<usize>) {
    for start in 0..v.len() {
        let mut at = start;
        loop {
            let from = order[at];
            order[at] = at;
            if from == start || from == at {
                break;
            }
            v.swap(at, from);
            at = from;
        }
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
                let (ta, tb) = (trim_zeros(na), trim_zeros(nb));
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
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

/// A run of digits without its leading zeros.
fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
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
    let (users, in_use) = users(obj, procs);
    // What could not be seen may be in use: a System V segment is judged by
    // nattch and its creator, both always visible; everything else needs
    // every process's maps, descriptors or syscalls.
    let unreadable = obj.note.is_some() && !matches!(obj.kind, Kind::PosixSem | Kind::SysvShm);
    let hidden = hidden_matter && obj.kind != Kind::SysvShm;
    obj.state = match (users.is_empty() && !in_use, unreadable || hidden) {
        (false, _) => State::InUse,
        (true, false) => State::Orphaned,
        (true, true) => State::Unknown,
    };
    obj.users = users
        .into_iter()
        .map(|(pid, how)| User {
            pid,
            command: procs.command(pid),
            how: how.as_str(),
        })
        .collect();
}

/// The live processes that use `obj`, each once with the first way found,
/// and whether the kernel counts it in use regardless (nattch, waiters).
fn users(obj: &Object, procs: &Procs) -> (Vec<(i32, How)>, bool) {
    let mut users: Vec<(i32, How)> = Vec::new();
    // A System V id names an object only within one IPC namespace: a
    // process of another namespace blocked on, attached to or last to
    // operate on the same id uses another object.
    let sysv = matches!(obj.kind, Kind::SysvMsq | Kind::SysvShm | Kind::SysvSem);
    let ns = obj.namespace.as_ref().map(|n| n.inode);
    let mut add = |pid: i64, how: How| {
        if let Ok(pid) = i32::try_from(pid)
            && procs.alive(pid.into())
            && (!sysv || procs.in_ipc_ns(pid, ns))
            && !users.iter().any(|(p, _)| *p == pid)
        {
            users.push((pid, how));
        }
    };
    let id = obj.id.unwrap_or(-1);
    let mut in_use = false;
    match &obj.fields {
        Fields::PosixShm(record::PosixShm { inode, .. })
        | Fields::PosixSem(record::PosixSem { inode, .. }) => {
            for (pid, how) in procs.shm_users(*inode) {
                add(pid.into(), how);
            }
        }
        Fields::PosixMsq(q) => {
            for pid in procs.mq_users(&q.file, Some(q.dev)) {
                add(pid.into(), How::Open);
            }
            if let Some(pid) = q.notify_pid {
                add(pid, How::Notify);
            }
        }
        Fields::SysvShm(s) => {
            for &pid in procs.sysv_attached(id) {
                add(pid.into(), How::Attached);
            }
            add(s.cpid.unwrap_or(0), How::Creator);
            in_use = s.nattch.unwrap_or(0) > 0;
        }
        Fields::SysvMsq(q) => {
            for &pid in procs.blocked(Blocked::Msq(id)) {
                add(pid.into(), How::Blocked);
            }
            for pid in [q.lspid, q.lrpid] {
                add(pid.unwrap_or(0), How::LastOp);
            }
        }
        Fields::SysvSem(s) => {
            for &pid in procs.blocked(Blocked::Sem(id)) {
                add(pid.into(), How::Blocked);
            }
            for &pid in s.pids.iter().flatten() {
                add(pid.into(), How::LastOp);
            }
            in_use = s.waiters.unwrap_or(0) > 0;
        }
    }
    (users, in_use)
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
    pub namespaces: NsScope,
}

/// Which IPC namespaces `ls` and `doctor` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsScope {
    /// The one this process runs in.
    Current,
    /// `-A`: every IPC namespace on the host.
    All,
    /// `--namespace`: only this one, an inode or a pid in it.
    One(u64),
}

impl NsScope {
    /// From `-A` and `--namespace` (clap lets one of them through at most).
    pub fn new(all: bool, one: Option<u64>) -> NsScope {
        match (one, all) {
            (Some(n), _) => NsScope::One(n),
            (None, true) => NsScope::All,
            (None, false) => NsScope::Current,
        }
    }
}

pub fn run(opts: &ListOptions, out: &mut Out) -> Result<ExitCode> {
    if opts.list_columns {
        table::list_columns(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let layout = Layout::resolve(opts, out.is_json())?;
    let mut scan = match opts.namespaces {
        NsScope::One(n) => Scan::run_all(&opts.select, Some(all::resolve_namespace(n)?)),
        NsScope::All => Scan::run_all(&opts.select, None),
        NsScope::Current => Scan::run(&opts.select),
    };
    if opts.orphaned {
        scan.objects.retain(Object::orphaned);
    }
    if out.is_json() {
        // Straight to the output, object by object: no tree of values.
        let w = out.writer();
        serde_json::to_writer(&mut *w, &Document::new(&scan))?;
        w.write_all(b"\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let table = table::table(&scan, &layout);
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

/// The `ls --json` document.
#[derive(Serialize)]
struct Document<'a> {
    objects: &'a [Object],
    /// Objects this user may not read.
    unreadable: usize,
    hidden_processes: &'a [Process],
    mqueue: Mqueue<'a>,
    notes: &'a [String],
}

/// Whether and where the POSIX queues were listed.
#[derive(Serialize)]
struct Mqueue<'a> {
    listed: bool,
    /// The mount point, or `private-mount-namespace`.
    source: Option<&'a str>,
    note: Option<&'a str>,
}

impl Document<'_> {
    fn new(scan: &Scan) -> Document<'_> {
        let source = scan.mq_source.as_ref().map(|s| match s {
            MqSource::Mounted(dir) => dir.as_str(),
            MqSource::Private => "private-mount-namespace",
        });
        Document {
            objects: &scan.objects,
            unreadable: scan.unreadable,
            hidden_processes: &scan.hidden_procs,
            mqueue: Mqueue {
                listed: source.is_some(),
                source,
                note: scan.mq_note.as_deref(),
            },
            notes: &scan.notes,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn permute_moves_each_to_its_place() {
        use super::permute;
        // Every permutation of 6, and a shuffled 1,000 (a multiplicative step
        // modulo a prime: a full cycle structure of its own).
        let mut orders: Vec<Vec<usize>> = Vec::new();
        let mut p: Vec<usize> = (0..6).collect();
        heap_permutations(&mut p, 6, &mut orders);
        orders.push((0..997).map(|i| (i * 389 + 7) % 997).collect());
        for order in &orders {
            let mut v: Vec<String> = (0..order.len()).map(|i| i.to_string()).collect();
            permute(&mut v, order.clone());
            let want: Vec<String> = order.iter().map(|i| i.to_string()).collect();
            assert_eq!(v, want, "order {order:?}");
        }
        assert_eq!(orders.len(), 721);
        orders.sort();
        orders.dedup();
        assert_eq!(
            orders.len(),
            721,
            "Heap's algorithm gives each permutation once"
        );
    }

    fn heap_permutations(p: &mut Vec<usize>, k: usize, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(p.clone());
            return;
        }
        heap_permutations(p, k - 1, out);
        for i in 0..k - 1 {
            p.swap(if k % 2 == 0 { i } else { 0 }, k - 1);
            heap_permutations(p, k - 1, out);
        }
    }

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
