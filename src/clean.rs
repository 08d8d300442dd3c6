//! `clean --stale`: remove orphaned objects, and only those.
//!
//! An object is removed only when two scans, one just before the removal,
//! both find it orphaned; anything a process started to use in between is
//! kept. Each removal (or, with --dry-run, each would-be removal) is listed.

use std::fmt;
use std::io;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use nix::errno::Errno;
use serde::Serialize;

use crate::error::errno_text;
use crate::ipc::Remove;
use crate::ipc::posix_mq::PosixQueue;
use crate::ipc::posix_sem::NamedSem;
use crate::ipc::posix_shm::PosixShm;
use crate::ipc::sysv_msq::SysvQueue;
use crate::ipc::sysv_sem::SemSet;
use crate::ipc::sysv_shm::SysvSegment;
use crate::ls::{Object, Scan, Select, key_hex};
use crate::object::{Addr, Kind, ObjectRef};
use crate::output::{Out, plural};

/// What `clean --stale` was asked for.
pub struct CleanOptions {
    pub select: Select,
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
    /// `--save DIR`: save each queue and segment there before removing it.
    pub save: Option<std::path::PathBuf>,
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
    let first = Scan::run(&opts.select);
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
        Scan::run(&opts.select)
    };
    let mut summary = Summary {
        kind: "summary",
        dry_run: opts.dry_run,
        removed: 0,
        kept: second.objects.iter().filter(|o| !o.orphaned()).count(),
        failed: 0,
    };
    for obj in &second.objects {
        if let Some(ident) = ident(obj).filter(|i| obj.orphaned() && candidates.contains(i)) {
            let outcome = match opts.save.as_deref().filter(|_| !opts.dry_run) {
                Some(dir) => match save::save(obj, &ident.obj, dir) {
                    Ok(saved) => {
                        if let Some(saved) = &saved {
                            out.record(saved, || saved)?;
                        }
                        clean(obj, &ident.obj, false, out)?
                    }
                    Err(e) => {
                        // Kept: its content would be lost with it.
                        out.flush()?;
                        eprintln!(
                            "error: cannot save {} {}, kept: {e:#}",
                            obj.kind,
                            obj.label()
                        );
                        Outcome::Failed
                    }
                },
                None => clean(obj, &ident.obj, opts.dry_run, out)?,
            };
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

/// Remove one object found orphaned twice (or say it would be), and print
/// its line; a failure also gets an `error:` line on stderr.
fn clean(obj: &Object, target: &ObjectRef, dry_run: bool, out: &mut Out) -> Result<Outcome> {
    let (outcome, error) = if dry_run {
        (Outcome::WouldRemove, None)
    } else {
        match remove(target) {
            Ok(()) => (Outcome::Removed, None),
            // Someone else removed it meanwhile: nothing left to do.
            Err(Errno::ENOENT | Errno::EINVAL | Errno::EIDRM) => (Outcome::Gone, None),
            Err(e) => (Outcome::Failed, Some(errno_text(e))),
        }
    };
    let line = Line {
        kind: outcome,
        mechanism: obj.kind,
        name: obj.name.as_deref(),
        key: obj.key,
        id: obj.key.and(obj.id),
        error,
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

/// `mq_unlink`, `shm_unlink`, `sem_unlink` by name; `IPC_RMID` by id.
mod save;

fn remove(target: &ObjectRef) -> Result<(), Errno> {
    let io_errno = |e: io::Error| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
    match (&target.addr, target.kind) {
        (Addr::Name(name), Kind::PosixShm) => PosixShm::remove_name(name.as_str()),
        (Addr::Name(name), Kind::PosixMsq) => {
            PosixQueue::remove_name(name.as_str()).map_err(io_errno)
        }
        (Addr::Name(name), Kind::PosixSem) => NamedSem::remove_name(name.as_str()),
        (Addr::Id(id), Kind::SysvMsq) => SysvQueue::with_id(id.0).remove(),
        (Addr::Id(id), Kind::SysvShm) => SysvSegment::with_id(id.0).remove(),
        (Addr::Id(id), Kind::SysvSem) => SemSet::with_id(id.0).remove(),
        _ => Err(Errno::EINVAL),
    }
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
    /// The escaped name or the key, for text.
    #[serde(skip)]
    label: String,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = format_args!("{} {}", self.mechanism, self.label);
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
        )
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
