//! POSIX IPC: one file per mechanism, and the `--clean` they share.

pub mod msq;
pub mod sem;
pub mod shm;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::ipc::Race;
use crate::ipc::posix_mq::PosixQueue;
use crate::ipc::posix_sem::NamedSem;
use crate::ipc::posix_shm::PosixShm;
use crate::object::Kind;
use crate::output::Out;
use crate::record::RemovedName;
use crate::record::stat::{Ownership, PosixStat, StatBody};
use crate::target::PosixName;

/// `--clean` of the POSIX object `name` of `kind`: its unlink, the
/// contract's "no such" when it is not there, and the `removed` line.
pub fn clean(kind: Kind, name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    match kind {
        Kind::PosixMsq => unlink(kind, name, PosixQueue::remove_name),
        Kind::PosixShm => unlink(kind, name, PosixShm::remove_name),
        Kind::PosixSem => {
            sem::check_name(name)?;
            unlink(kind, name, NamedSem::remove_name)
        }
        // Named so that a new kind is a compile error here, not a run-time one.
        Kind::SysvMsq | Kind::SysvShm | Kind::SysvSem => bail!("{kind} is not a POSIX kind"),
    }?;
    out.line(&RemovedName {
        mechanism: kind,
        name,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--stat` of the POSIX object `name` of `kind`.
pub fn stat(kind: Kind, name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    match kind {
        Kind::PosixMsq => msq::stat(name, out),
        Kind::PosixShm => shm::stat(name, out),
        Kind::PosixSem => sem::stat(name, out),
        // Named so that a new kind is a compile error here, not a run-time one.
        Kind::SysvMsq | Kind::SysvShm | Kind::SysvSem => bail!("{kind} is not a POSIX kind"),
    }
}

/// Print the `--stat` of the POSIX object `name` of `kind`: its fields
/// (`body`) between the name and the owner, group and mode of `owner`.
fn print_stat(
    out: &mut Out,
    kind: Kind,
    name: &PosixName,
    body: impl StatBody,
    (uid, gid, mode): (u32, u32, u32),
) -> Result<ExitCode> {
    out.stat(&PosixStat {
        mechanism: kind,
        name,
        body,
        ownership: Ownership::new(uid, gid, mode),
    })?;
    Ok(ExitCode::SUCCESS)
}

fn unlink<E>(kind: Kind, name: &PosixName, unlink: impl FnOnce(&str) -> Result<(), E>) -> Result<()>
where
    E: Race + std::error::Error + Send + Sync + 'static,
{
    let what = kind.what();
    match unlink(name.as_str()) {
        Ok(()) => Ok(()),
        Err(e) if e.missing() => bail!("cannot remove {what} {name}: no such {what}"),
        Err(e) => Err(e).with_context(|| format!("cannot remove {what} {name}")),
    }
}
