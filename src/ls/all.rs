//! `ls --all-namespaces`: the objects of every IPC namespace on the host.
//!
//! One fork per other namespace: a child joins it (`setns(CLONE_NEWIPC)`),
//! reads its /proc/sysvipc tables and the fields /proc does not show, lists
//! its queues on a private mqueue mount, and answers once. Meanwhile the
//! parent lists the current namespace as `ls` does, reads each other
//! /dev/shm through /proc/PID/root/dev/shm (a /dev/shm shared by several
//! namespaces once) and walks /proc once for every namespace's users.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::record::NsTag;
use super::sysv::{self, SysvSource};
use super::{Kind, Procs, Scan, Select, Want, posix};
use crate::ipc::namespace::{ANSWER_DEADLINE, Namespace, NsChild};
use crate::ipc::process::Pid;
use crate::ipc::sysv_sem::Semaphore;
use crate::mqfs::{self, MqEntry, MqSource};
use crate::namespaces::{self, IpcNamespace, Namespaces};
use crate::procfs::{Table, read_sysvipc};

/// What a child read in its namespace.
#[derive(Serialize, Deserialize, Default)]
struct Answer {
    /// /proc/sysvipc/FILE by FILE, or why it could not be read.
    tables: HashMap<String, Result<String, String>>,
    qbytes: HashMap<i32, u64>,
    sems: HashMap<i32, Vec<Semaphore>>,
    /// Sets removed between the table and semctl.
    gone: Vec<i32>,
    queues: Option<Result<Vec<MqEntry>, String>>,
}

impl Answer {
    /// In the child, inside the namespace.
    fn read(want: &Select) -> Answer {
        let mut answer = Answer::default();
        for (file, kind) in [
            ("msg", Kind::SysvMsq),
            ("shm", Kind::SysvShm),
            ("sem", Kind::SysvSem),
        ] {
            if !want.wants(kind) {
                continue;
            }
            let text = read_sysvipc(file).map_err(|e| e.to_string());
            if let Ok(text) = &text {
                answer.complete(kind, text);
            }
            answer.tables.insert(file.into(), text);
        }
        if want.wants(Kind::PosixMsq) {
            let listed = mqfs::child_list(&std::env::temp_dir()).map_err(|e| format!("{e:#}"));
            answer.queues = Some(listed);
        }
        answer
    }

    /// The fields of each row that need a syscall in the namespace.
    fn complete(&mut self, kind: Kind, text: &str) {
        for row in Table::parse(text).rows() {
            match kind {
                Kind::SysvMsq => {
                    let id = row.get("msqid").and_then(|i| i32::try_from(i).ok());
                    if let Some(id) = id
                        && let Ok(q) = sysv::Here.qbytes(id)
                    {
                        self.qbytes.insert(id, q);
                    }
                }
                Kind::SysvSem => {
                    let Some(id) = row.get("semid").and_then(|i| i32::try_from(i).ok()) else {
                        continue;
                    };
                    match sysv::Here.semaphores(id) {
                        Ok(sems) => {
                            self.sems.insert(id, sems);
                        }
                        Err(Errno::EINVAL | Errno::EIDRM) => self.gone.push(id),
                        Err(_) => {}
                    }
                }
                _ => {}
            }
        }
    }
}

impl SysvSource for Answer {
    fn table(&self, file: &str) -> Result<String, String> {
        self.tables
            .get(file)
            .cloned()
            .unwrap_or_else(|| Err("not read".into()))
    }
    fn qbytes(&self, msqid: i32) -> Result<u64, Errno> {
        self.qbytes.get(&msqid).copied().ok_or(Errno::EACCES)
    }
    fn semaphores(&self, semid: i32) -> Result<Vec<Semaphore>, Errno> {
        match self.sems.get(&semid) {
            Some(sems) => Ok(sems.clone()),
            None if self.gone.contains(&semid) => Err(Errno::EIDRM),
            None => Err(Errno::EACCES),
        }
    }
}

/// How rows and findings name `ns`.
pub fn tag(ns: &IpcNamespace) -> NsTag {
    NsTag {
        inode: ns.inode,
        pid: ns.representative().unwrap_or(0),
        container: ns.container.as_ref().map(ToString::to_string),
        current: ns.current,
    }
}

/// Tag the objects pushed since `from` with `ns`.
fn tag_from(scan: &mut Scan, from: usize, ns: &NsTag) {
    for obj in &mut scan.objects[from..] {
        obj.namespace = Some(ns.clone());
    }
}

/// Open `ns` through its pids in turn (one may exit meanwhile).
fn open(ns: &IpcNamespace, with_mount: bool) -> Result<Namespace, String> {
    let mut last = Errno::ESRCH;
    for &pid in &ns.pids {
        match Namespace::open(Pid::from_raw(pid), Some(ns.inode), with_mount) {
            Ok(handle) => return Ok(handle),
            Err(e @ (Errno::ESRCH | Errno::ENOENT)) => last = e,
            Err(e) => {
                return Err(format!(
                    "cannot open its namespace file: {}",
                    crate::error::errno_text(e)
                ));
            }
        }
    }
    Err(format!(
        "its processes are gone ({})",
        crate::error::errno_text(last)
    ))
}

/// Start the child that reads `ns`.
fn start(ns: &IpcNamespace, select: &Select) -> Result<NsChild, String> {
    let handle = open(ns, false)?;
    let want = select.clone();
    NsChild::start(&handle, move || {
        Ok(serde_json::to_vec(&Answer::read(&want))?)
    })
    .map_err(|e| crate::error::Chain(&e.into()).to_string())
}

/// Run `f` in a child that joined the IPC namespace `inode` and its mount
/// namespace (`clean --namespace`: `shm_unlink` and `sem_unlink` act on its
/// /dev/shm), and return its answer.
///
/// # Errors
/// Why the namespace could not be entered or the child gave no answer.
pub fn in_namespace(
    inode: u64,
    f: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let found = namespaces::discover();
    let ns = found
        .get(inode)
        .ok_or_else(|| format!("no process is in ipc:[{inode}] any more"))?;
    let handle = open(ns, true)?;
    crate::ipc::namespace::in_namespace(&handle, f)
        .map_err(|e| crate::error::Chain(&e.into()).to_string())
}

/// Run `f` in a child that joined `ns`'s IPC namespace only (its sysctls
/// under /proc/sys are the reader's namespace's), and return its answer.
///
/// # Errors
/// Why the namespace could not be entered or the child gave no answer.
pub fn in_ipc_namespace(
    ns: &IpcNamespace,
    f: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let handle = open(ns, false)?;
    crate::ipc::namespace::in_namespace(&handle, f)
        .map_err(|e| crate::error::Chain(&e.into()).to_string())
}

/// The namespace `--namespace` names: an IPC namespace inode, or a pid in
/// one.
///
/// # Errors
/// None is found: no process is in it (any more), or it is not readable.
pub fn resolve_namespace(inode_or_pid: u64) -> anyhow::Result<u64> {
    let found = namespaces::discover();
    if found.get(inode_or_pid).is_some() {
        return Ok(inode_or_pid);
    }
    let by_pid = i32::try_from(inode_or_pid)
        .ok()
        .and_then(|pid| found.by_pid().get(&pid).copied());
    by_pid.ok_or_else(|| {
        crate::error::Hinted {
            cause: format!(
                "--namespace {inode_or_pid}: no IPC namespace has this inode or holds this pid"
            ),
            hint:
                "see the NAMESPACE column of `ls -A` (inode/pid); other users' processes need root"
                    .into(),
        }
        .into()
    })
}

/// `ipc:[INODE] (pid P)`, to name a namespace in a note.
fn name(ns: &IpcNamespace) -> String {
    format!(
        "ipc:[{}] (pid {})",
        ns.inode,
        ns.representative().unwrap_or(0)
    )
}

impl Scan {
    /// Every namespace's selected objects, then their users in one pass
    /// over /proc, each user counted only in its own namespace.
    pub fn run_all(select: &Select, only: Option<u64>) -> Scan {
        Scan::run_found(&namespaces::discover_only(only), select)
    }

    /// As [`Scan::run_all`], over namespaces already found (`doctor` reads
    /// more of each and names them as the rows do).
    pub fn run_found(found: &Namespaces, select: &Select) -> Scan {
        let mut scan = Scan::default();
        // Fork first, while this process is single-threaded.
        let mut children = Vec::new();
        for ns in found.list.iter().filter(|ns| !ns.current) {
            let sysv_or_mq = [Kind::PosixMsq, Kind::SysvMsq, Kind::SysvShm, Kind::SysvSem]
                .into_iter()
                .any(|k| select.wants(k));
            if !sysv_or_mq {
                continue;
            }
            match start(ns, select) {
                Ok(child) => children.push((ns, child)),
                Err(why) => scan
                    .notes
                    .push(format!("could not read namespace {}: {why}", name(ns))),
            }
        }
        let current = found.list.iter().find(|ns| ns.current).map(tag);
        let here = current.is_some();
        let mq = (here && select.wants(Kind::PosixMsq)).then(mqfs::start);
        let mut skip: Vec<Option<i32>> = vec![Some(std::process::id() as i32)];
        skip.push(mq.as_ref().and_then(mqfs::Pending::child_pid));
        skip.extend(children.iter().map(|(_, c)| Some(c.pid().as_raw())));
        if let Some(t) = &current {
            scan.find(select);
            tag_from(&mut scan, 0, t);
        }
        scan.other_dev_shm(found, select);
        let procs = Procs::scan(
            &skip,
            Want {
                maps: true,
                fds: true,
                syscalls: true,
            },
        );
        scan.collect(children, select);
        if let Some(mq) = mq {
            let from = scan.objects.len();
            posix::add_queues(mqfs::finish(mq), &mut scan);
            if let Some(t) = &current {
                tag_from(&mut scan, from, t);
            }
        }
        scan.objects.retain(|o| select.matches(o));
        scan.unreadable_procs(found);
        scan.finish(&procs);
        scan
    }

    /// Segments and semaphores of the other namespaces' /dev/shm.
    fn other_dev_shm(&mut self, found: &Namespaces, select: &Select) {
        let (shm, sem) = (select.wants(Kind::PosixShm), select.wants(Kind::PosixSem));
        if !shm && !sem {
            return;
        }
        for ns in found.list.iter().filter(|ns| !ns.current) {
            let Some(pid) = ns.representative() else {
                continue;
            };
            if !found.lists_shm(ns.inode) {
                continue;
            }
            let from = self.objects.len();
            let dir = PathBuf::from(format!("/proc/{pid}/root/dev/shm"));
            posix::scan_shm_dir(self, Some(&dir), shm, sem);
            tag_from(self, from, &tag(ns));
        }
    }

    /// Each child's answer, as objects of its namespace.
    fn collect(&mut self, children: Vec<(&IpcNamespace, NsChild)>, select: &Select) {
        let deadline = Instant::now() + ANSWER_DEADLINE;
        for (ns, child) in children {
            let answer = child
                .finish(deadline)
                .map_err(|e| crate::error::Chain(&e.into()).to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Answer>(&bytes).map_err(|e| e.to_string())
                });
            let answer = match answer {
                Ok(a) => a,
                Err(why) => {
                    self.notes
                        .push(format!("could not read namespace {}: {why}", name(ns)));
                    continue;
                }
            };
            let from = self.objects.len();
            if select.wants(Kind::SysvMsq) {
                sysv::scan_msg(&answer, self);
            }
            if select.wants(Kind::SysvShm) {
                sysv::scan_shm(&answer, self);
            }
            if select.wants(Kind::SysvSem) {
                sysv::scan_sem(&answer, self);
            }
            if let Some(queues) = answer.queues {
                let listed = queues.map(|queues| mqfs::Listing {
                    queues,
                    source: MqSource::Private,
                });
                let note = self.mq_note.take();
                let source = self.mq_source.take();
                posix::add_queues(
                    listed.map_err(|e| format!("POSIX message queues cannot be listed: {e}")),
                    self,
                );
                if let Some(n) = self.mq_note.take() {
                    self.notes.push(format!("namespace {}: {n}", name(ns)));
                }
                (self.mq_note, self.mq_source) = (note, source);
            }
            tag_from(self, from, &tag(ns));
        }
    }

    /// A note on the processes whose namespace this user may not read.
    fn unreadable_procs(&mut self, found: &Namespaces) {
        if let Some(note) = found.unreadable_note() {
            self.notes.push(note);
        }
    }
}
