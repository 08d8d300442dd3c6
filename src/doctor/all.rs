//! `doctor -A` and `doctor --namespace`: each IPC namespace checked with
//! its own facts, each finding naming its namespace.
//!
//! Per namespace:
//! - msg_max is read inside it: a child joins the IPC namespace
//!   (/proc/sys/fs/mqueue answers for the reader's namespace);
//! - its /dev/shm (size, fullness, semaphore files) through
//!   /proc/PID/root/dev/shm, checked under the one namespace that lists it
//!   (a /dev/shm shared by several namespaces is one file system);
//! - its mqueue mount from /proc/PID/mountinfo, once per mount namespace;
//! - its objects and their users from `ls -A`'s scan.
//!
//! RLIMIT_MSGQUEUE is per user, not per namespace: the kernel charges a
//! user's queues in every IPC namespace to one count. It is checked once,
//! against this user's queues in all the namespaces read, and its finding
//! names no namespace.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::{
    Facts, Finding, MachineFacts, Report, check, dev_shm_space, exit_code, invalid_sem_files,
    mqueue_mount_in, msgqueue_limit, msgqueue_rlimit, ns_text, object_facts, read_msg_max,
    render_findings, summary,
};
use crate::ls::{NsTag, Scan, Select};
use crate::namespaces::{self, IpcNamespace, Namespaces};
use crate::output::{Out, escape_bytes};

/// A namespace that could not be checked (not entered: another user's,
/// without root), and why. It does not by itself make the host unhealthy:
/// nothing is known to be wrong there.
#[derive(Debug, Clone, Serialize)]
pub struct Unchecked {
    pub namespace: NsTag,
    pub reason: String,
}

/// Check every namespace found, or only `only`; print the findings, the
/// namespaces that could not be checked and the scan's notes.
pub(super) fn run(select: &Select, only: Option<u64>, out: &mut Out) -> Result<ExitCode> {
    let found = namespaces::discover_only(only);
    // The children that read msg_max fork before the scan, as its own do,
    // while this process is single-threaded.
    let machines = machine_facts(&found);
    let scan = Scan::run_found(&found, select);
    let uid = nix::unistd::geteuid().as_raw();
    let (mut findings, mut unchecked) = (Vec::new(), Vec::new());
    let mut queue_bytes = 0u64;
    for (ns, machine) in machines {
        let machine = match machine {
            Ok(m) => m,
            Err(reason) => {
                unchecked.push(Unchecked {
                    namespace: ns,
                    reason,
                });
                continue;
            }
        };
        let objects = scan
            .objects
            .iter()
            .filter(|o| o.namespace.as_ref().is_some_and(|t| t.inode == ns.inode));
        let mut objects = object_facts(objects, uid);
        queue_bytes = queue_bytes.saturating_add(objects.msgqueue_used.take().unwrap_or(0));
        let facts = Facts { machine, objects };
        findings.extend(check(&facts).into_iter().map(|f| Finding {
            namespace: Some(ns.clone()),
            ..f
        }));
    }
    findings.extend(msgqueue_rlimit(Some(queue_bytes), msgqueue_limit()));
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    // A namespace the scan could not read either is told once, as unchecked.
    let notes: Vec<String> = scan
        .notes
        .into_iter()
        .filter(|n| {
            !unchecked
                .iter()
                .any(|u| n.contains(&format!("ipc:[{}]", u.namespace.inode)))
        })
        .collect();
    let text = render(&findings, found.list.len(), &unchecked, &notes);
    out.record(text.trim_end_matches('\n'), || Report {
        healthy: findings.is_empty(),
        findings: &findings,
        unchecked: &unchecked,
        notes: &notes,
    })?;
    Ok(ExitCode::from(exit_code(&findings)))
}

/// Each namespace's own machine facts, or why it could not be entered. The
/// RLIMIT_MSGQUEUE limit is left out (checked once, for the user).
fn machine_facts(found: &Namespaces) -> Vec<(NsTag, Result<MachineFacts, String>)> {
    let mut mount_namespaces = Vec::new();
    found
        .list
        .iter()
        .map(|ns| {
            // Namespaces that share a mount namespace share its mqueue mount.
            let first_of_mnt = !ns.mnt_inode.is_some_and(|m| mount_namespaces.contains(&m));
            mount_namespaces.extend(ns.mnt_inode);
            let facts = machine(ns, found.lists_shm(ns.inode), first_of_mnt);
            (crate::ls::tag(ns), facts)
        })
        .collect()
}

/// One namespace's facts: the current one read here, another through its
/// representative process and a child inside it.
fn machine(ns: &IpcNamespace, lists_shm: bool, first_of_mnt: bool) -> Result<MachineFacts, String> {
    let (msg_max, proc_dir) = if ns.current {
        (read_msg_max(), PathBuf::from("/proc/self"))
    } else {
        let answer = crate::ls::in_ipc_namespace(ns, || Ok(serde_json::to_vec(&read_msg_max())?))?;
        let msg_max = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
        let pid = ns.representative().unwrap_or(0);
        (msg_max, PathBuf::from(format!("/proc/{pid}")))
    };
    let mut facts = MachineFacts {
        msg_max,
        ..MachineFacts::default()
    };
    if lists_shm {
        // The current namespace's own /dev/shm is ours, not its first
        // process's (which may be in another mount namespace).
        let dir = if ns.current {
            PathBuf::from("/dev/shm")
        } else {
            proc_dir.join("root/dev/shm")
        };
        facts.dev_shm = dev_shm_space(&dir);
        facts.invalid_sem_files = invalid_sem_files(&dir);
    }
    if first_of_mnt {
        facts.mqueue_mount = mqueue_mount_in(&proc_dir.join("mountinfo"));
    }
    Ok(facts)
}

/// The text: a summary over the namespaces, each finding with its
/// namespace, then the namespaces not checked and the notes.
fn render(
    findings: &[Finding],
    namespaces: usize,
    unchecked: &[Unchecked],
    notes: &[String],
) -> String {
    let what = if namespaces == 1 {
        "namespace"
    } else {
        "namespaces"
    };
    let mut s = format!("{} in {namespaces} IPC {what}", summary(findings));
    if !unchecked.is_empty() {
        let _ = write!(s, " ({} could not be checked)", unchecked.len());
    }
    s.push('\n');
    render_findings(&mut s, findings);
    if !unchecked.is_empty() || !notes.is_empty() {
        s.push('\n');
    }
    for u in unchecked {
        let why = escape_bytes(u.reason.as_bytes());
        let _ = writeln!(
            s,
            "could not check namespace {}: {why}",
            ns_text(&u.namespace)
        );
    }
    for n in notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}
