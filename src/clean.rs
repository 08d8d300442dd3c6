//! `clean --stale`: remove orphaned objects, and only those.
//!
//! An object is removed only when two scans, one just before the removal,
//! both find it orphaned; anything a process started to use in between is
//! kept. Each removal (or, with --dry-run, each would-be removal) is listed.

use std::fmt;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use nix::errno::Errno;
use serde::Serialize;

use crate::error::errno_text;
use crate::ipc::Remove;
use crate::ls::{Object, Scan, Select, key_hex};
use crate::object::{Kind, ObjectRef};
use crate::output::{Out, plural};

/// What `clean --stale` was asked for.
pub struct CleanOptions {
    pub select: Select,
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
    /// `--namespace`: an IPC namespace's inode or a pid in it. Without it,
    /// only the current namespace is ever touched.
    pub namespace: Option<u64>,
    /// `--save DIR`: save each queue and segment there before removing it.
    pub save: Option<std::path::PathBuf>,
}

/// The namespace `clean` acts in: None for the current one.
fn scan(select: &Select, ns: Option<u64>) -> Scan {
    match ns {
        Some(inode) => Scan::run_all(select, Some(inode)),
        None => Scan::run(select),
    }
}

/// What identifies an object between two scans: its kind and name or id,
/// and a System V object's key too (an id may come back with another key).
#[derive(PartialEq, Eq)]
struct Ident {
    obj: ObjectRef,
    key: Option<i32>,
}

fn ident(o: &Object) -> Option<Ident> {
    Some(Ident {
        obj: o.object_ref()?,
        key: o.key,
    })
}

pub fn run(opts: &CleanOptions, out: &mut Out) -> Result<ExitCode> {
    let ns = match opts.namespace {
        Some(n) => Some(crate::ls::resolve_namespace(n)?),
        None => None,
    };
    // The current namespace, named, is the current namespace: no child.
    let ns = ns.filter(|&inode| Some(inode) != own_ipc_ns());
    let first = scan(&opts.select, ns);
    let candidates: Vec<Ident> = first
        .objects
        .iter()
        .filter(|o| o.orphaned())
        .filter_map(ident)
        .collect();
    // The second look: only what is still orphaned now is touched.
    let second = if opts.dry_run || candidates.is_empty() {
        first
    } else {
        scan(&opts.select, ns)
    };
    let mut summary = Summary {
        kind: "summary",
        dry_run: opts.dry_run,
        removed: 0,
        kept: second.objects.iter().filter(|o| !o.orphaned()).count(),
        failed: 0,
        namespace: ns,
    };
    let agreed: Vec<(&Object, ObjectRef)> = second
        .objects
        .iter()
        .filter_map(|obj| {
            let ident = ident(obj).filter(|i| obj.orphaned() && candidates.contains(i))?;
            Some((obj, ident.obj))
        })
        .collect();
    let agreed = match opts.save.as_deref().filter(|_| !opts.dry_run) {
        Some(dir) => {
            let mut saved_ok = Vec::with_capacity(agreed.len());
            for (obj, target) in agreed {
                match save::save(obj, &target, dir) {
                    Ok(saved) => {
                        if let Some(saved) = &saved {
                            out.record(saved, || saved)?;
                        }
                        saved_ok.push((obj, target));
                    }
                    Err(e) => {
                        // Kept: its content would be lost with it.
                        out.flush()?;
                        eprintln!(
                            "error: cannot save {} {}, kept: {}",
                            obj.kind,
                            obj.label(),
                            crate::error::Chain(&e)
                        );
                        summary.failed += 1;
                    }
                }
            }
            saved_ok
        }
        None => agreed,
    };
    let results = removals(&agreed, ns, opts.dry_run);
    for ((obj, _), result) in agreed.iter().zip(results) {
        {
            let outcome = clean(obj, result, ns, out)?;
            match outcome {
                Outcome::WouldRemove | Outcome::Removed => summary.removed += 1,
                Outcome::Failed => summary.failed += 1,
                Outcome::Gone => {}
            }
        }
    }
    out.record(&summary, || &summary)?;
    if summary.failed > 0 {
        out.flush()?;
        return Err(anyhow!(
            "{} could not be removed",
            plural(summary.failed, "orphaned object", "orphaned objects")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

mod save;

/// This process's IPC namespace.
fn own_ipc_ns() -> Option<u64> {
    use crate::ipc::namespace::{NsKind, inode};
    inode(nix::unistd::getpid(), NsKind::Ipc).ok()
}

/// What removing each object came to: None for a dry run. In another
/// namespace, one child that joined it (and its mount namespace, for
/// /dev/shm) removes them all and answers each errno (0 for removed).
fn removals(
    agreed: &[(&Object, ObjectRef)],
    ns: Option<u64>,
    dry_run: bool,
) -> Vec<Option<Result<(), String>>> {
    if dry_run {
        return agreed.iter().map(|_| None).collect();
    }
    let text = |r: Result<(), Errno>| match r {
        // Someone else removed it meanwhile: nothing left to do.
        Err(Errno::ENOENT | Errno::EINVAL | Errno::EIDRM) => Some(Err(String::new())),
        Err(e) => Some(Err(errno_text(e))),
        Ok(()) => Some(Ok(())),
    };
    let Some(inode) = ns else {
        return agreed.iter().map(|(_, t)| text(t.remove())).collect();
    };
    if agreed.is_empty() {
        return Vec::new();
    }
    let targets: Vec<ObjectRef> = agreed.iter().map(|(_, t)| t.clone()).collect();
    let answer = crate::ls::in_namespace(inode, move || {
        let codes: Vec<i32> = targets
            .iter()
            .map(|t| t.remove().err().map_or(0, |e| e as i32))
            .collect();
        Ok(serde_json::to_vec(&codes)?)
    })
    .and_then(|bytes| serde_json::from_slice::<Vec<i32>>(&bytes).map_err(|e| e.to_string()));
    match answer {
        Ok(codes) if codes.len() == agreed.len() => codes
            .into_iter()
            .map(|c| {
                text(if c == 0 {
                    Ok(())
                } else {
                    Err(Errno::from_raw(c))
                })
            })
            .collect(),
        Ok(_) => agreed
            .iter()
            .map(|_| Some(Err("the child's answer does not match".into())))
            .collect(),
        Err(why) => agreed
            .iter()
            .map(|_| Some(Err(format!("cannot enter ipc:[{inode}]: {why}"))))
            .collect(),
    }
}

/// Print the line of one object found orphaned twice: removed, gone, or
/// failed (`result`), or would be removed (None); a failure also gets an
/// `error:` line on stderr.
fn clean(
    obj: &Object,
    result: Option<Result<(), String>>,
    namespace: Option<u64>,
    out: &mut Out,
) -> Result<Outcome> {
    let (outcome, error) = match result {
        None => (Outcome::WouldRemove, None),
        Some(Ok(())) => (Outcome::Removed, None),
        Some(Err(e)) if e.is_empty() => (Outcome::Gone, None),
        Some(Err(e)) => (Outcome::Failed, Some(e)),
    };
    let line = Line {
        kind: outcome,
        mechanism: obj.kind,
        name: obj.name.as_deref(),
        key: obj.key,
        id: obj.key.and(obj.id),
        error,
        namespace,
        label: obj.label(),
    };
    if let Some(e) = &line.error {
        out.flush()?;
        eprintln!(
            "error: cannot remove {} {}: {e}",
            line.mechanism, line.label
        );
    }
    out.record(&line, || &line)?;
    Ok(outcome)
}

/// What became of one orphaned object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Outcome {
    WouldRemove,
    Removed,
    /// Removed by someone else between the scan and the removal.
    Gone,
    Failed,
}

/// One object's line: `removed posix-shm /name`, or its JSON object.
#[derive(Serialize)]
struct Line<'a> {
    kind: Outcome,
    mechanism: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "key_hex")]
    key: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The IPC namespace acted in, when not the current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<u64>,
    /// The escaped name or the key, for text.
    #[serde(skip)]
    label: String,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self
            .namespace
            .map(|n| format!(" in ipc:[{n}]"))
            .unwrap_or_default();
        let what = format_args!("{} {}{ns}", self.mechanism, self.label);
        match self.kind {
            Outcome::WouldRemove => write!(f, "would remove {what}"),
            Outcome::Removed => write!(f, "removed {what}"),
            Outcome::Gone => write!(f, "already gone: {what}"),
            Outcome::Failed => write!(f, "failed to remove {what}"),
        }
    }
}

/// The last line: how many were removed and kept.
#[derive(Serialize)]
struct Summary {
    kind: &'static str,
    dry_run: bool,
    removed: usize,
    kept: usize,
    failed: usize,
    /// The IPC namespace acted in, when not the current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<u64>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        write!(
            f,
            "{verb} {}; {} in use or unknown kept",
            plural(self.removed, "orphaned object", "orphaned objects"),
            self.kept
        )?;
        match self.namespace {
            Some(n) => write!(f, " (in IPC namespace ipc:[{n}])"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(kind: Outcome, posix: bool, error: Option<&str>) -> Line<'static> {
        Line {
            kind,
            mechanism: if posix { Kind::PosixShm } else { Kind::SysvMsq },
            name: posix.then_some("/a\nb"),
            key: (!posix).then_some(200),
            id: (!posix).then_some(7),
            error: error.map(str::to_string),
            namespace: None,
            label: if posix { "/a\\x0ab" } else { "0x000000c8" }.into(),
        }
    }

    #[test]
    fn each_outcome_has_its_line_and_json_object() {
        let cases = [
            (Outcome::WouldRemove, "would remove posix-shm /a\\x0ab"),
            (Outcome::Removed, "removed posix-shm /a\\x0ab"),
            (Outcome::Gone, "already gone: posix-shm /a\\x0ab"),
        ];
        for (kind, text) in cases {
            assert_eq!(line(kind, true, None).to_string(), text);
        }
        let json = |l: &Line| serde_json::to_string(l).unwrap();
        assert_eq!(
            json(&line(Outcome::Gone, true, None)),
            r#"{"kind":"gone","mechanism":"posix-shm","name":"/a\nb"}"#
        );
        let failed = line(Outcome::Failed, false, Some("Permission denied (EPERM)"));
        assert_eq!(failed.to_string(), "failed to remove sysv-msq 0x000000c8");
        assert_eq!(
            json(&failed),
            r#"{"kind":"failed","mechanism":"sysv-msq","key":"0x000000c8","id":7,"error":"Permission denied (EPERM)"}"#
        );
        assert_eq!(
            json(&line(Outcome::WouldRemove, false, None)),
            r#"{"kind":"would-remove","mechanism":"sysv-msq","key":"0x000000c8","id":7}"#
        );
    }

    #[test]
    fn the_summary_counts_in_words_and_numbers() {
        let s = Summary {
            kind: "summary",
            dry_run: true,
            removed: 1,
            kept: 2,
            failed: 0,
            namespace: None,
        };
        assert_eq!(
            s.to_string(),
            "would remove 1 orphaned object; 2 in use or unknown kept"
        );
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"kind":"summary","dry_run":true,"removed":1,"kept":2,"failed":0}"#
        );
    }
}
