//! `clean --stale`: remove orphaned objects, and only those.
//!
//! An object is removed only when two scans, one just before the removal,
//! both find it orphaned; anything a process started to use in between is
//! kept. Each removal (or, with --dry-run, each would-be removal) is listed.

use std::io;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use nix::errno::Errno;
use serde_json::json;

use crate::error::errno_text;
use crate::ipc::Remove;
use crate::ipc::posix_mq::PosixQueue;
use crate::ipc::posix_sem::NamedSem;
use crate::ipc::posix_shm::PosixShm;
use crate::ipc::sysv_msq::SysvQueue;
use crate::ipc::sysv_sem::SemSet;
use crate::ipc::sysv_shm::SysvSegment;
use crate::ls::{Kind, Object, Scan, Select};
use crate::output::{Out, plural};

/// What identifies an object between two scans.
#[derive(PartialEq, Eq)]
struct Ident {
    kind: Kind,
    name: Option<String>,
    key: Option<i32>,
    id: Option<i32>,
}

fn ident(o: &Object) -> Ident {
    Ident {
        kind: o.kind,
        name: o.name.clone(),
        key: o.key,
        id: o.id,
    }
}

/// What `clean --stale` was asked for.
pub struct CleanOptions {
    pub select: Select,
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
}

pub fn run(opts: &CleanOptions, out: &mut Out) -> Result<ExitCode> {
    let first = Scan::run(&opts.select);
    let candidates: Vec<Ident> = first
        .objects
        .iter()
        .filter(|o| o.orphaned())
        .map(ident)
        .collect();
    // The second look: only what is still orphaned now is touched.
    let second = if opts.dry_run || candidates.is_empty() {
        first
    } else {
        Scan::run(&opts.select)
    };
    let mut done = 0usize;
    let mut failed = 0usize;
    for obj in second
        .objects
        .iter()
        .filter(|o| o.orphaned() && candidates.contains(&ident(o)))
    {
        let what = format!("{} {}", obj.kind.mechanism(), obj.label());
        let record = |kind: &str, extra: Option<String>| {
            let mut v = json!({"kind": kind, "mechanism": obj.kind.mechanism()});
            if let Some(name) = &obj.name {
                v["name"] = name.clone().into();
            }
            if let Some(key) = obj.key_hex() {
                v["key"] = key.into();
                v["id"] = json!(obj.id);
            }
            if let Some(e) = extra {
                v["error"] = e.into();
            }
            v
        };
        if opts.dry_run {
            out.record(format_args!("would remove {what}"), || {
                record("would-remove", None)
            })?;
            done += 1;
            continue;
        }
        match remove(obj) {
            Ok(()) => {
                out.record(format_args!("removed {what}"), || record("removed", None))?;
                done += 1;
            }
            // Someone else removed it meanwhile: nothing left to do.
            Err(Errno::ENOENT) | Err(Errno::EINVAL) | Err(Errno::EIDRM) => {
                out.record(format_args!("already gone: {what}"), || {
                    record("gone", None)
                })?;
            }
            Err(e) => {
                failed += 1;
                out.flush()?;
                eprintln!("error: cannot remove {what}: {}", errno_text(e));
                out.record(format_args!("failed to remove {what}"), || {
                    record("failed", Some(errno_text(e)))
                })?;
            }
        }
    }
    let verb = if opts.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let kept = second.objects.iter().filter(|o| !o.orphaned()).count();
    out.record(
        format_args!(
            "{verb} {}; {kept} in use or unknown kept",
            plural(done, "orphaned object", "orphaned objects")
        ),
        || json!({"kind": "summary", "dry_run": opts.dry_run, "removed": done, "kept": kept, "failed": failed}),
    )?;
    if failed > 0 {
        out.flush()?;
        return Err(anyhow!(
            "{} could not be removed",
            plural(failed, "orphaned object", "orphaned objects")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(obj: &Object) -> Result<(), Errno> {
    let name = obj.name.as_deref().unwrap_or_default();
    let io_errno = |e: io::Error| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
    let id = || obj.id.ok_or(Errno::EINVAL);
    match obj.kind {
        Kind::PosixShm => PosixShm::remove_name(name),
        Kind::PosixMsq => PosixQueue::remove_name(name).map_err(io_errno),
        Kind::PosixSem => NamedSem::remove_name(name),
        Kind::SysvMsq => SysvQueue::with_id(id()?).remove(),
        Kind::SysvShm => SysvSegment::with_id(id()?).remove(),
        Kind::SysvSem => SemSet::with_id(id()?).remove(),
    }
}
