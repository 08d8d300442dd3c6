//! POSIX IPC: one file per mechanism.

pub mod msq;
pub mod sem;
pub mod shm;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::PosixCommand;
use crate::ipc::Race;
use crate::output::Out;
use crate::target::PosixName;

pub fn run(cmd: PosixCommand, out: &mut Out) -> anyhow::Result<ExitCode> {
    match cmd {
        PosixCommand::Msq(args) => msq::run(&args, out),
        PosixCommand::Shm(args) => shm::run(&args, out),
        PosixCommand::Sem(args) => sem::run(&args, out),
    }
}

/// `--clean` of a POSIX object: `unlink` (the kind's remove by name), the
/// contract's "no such" when it is not there, and the `removed` line.
fn clean<E>(
    name: &PosixName,
    what: &str,
    mechanism: &str,
    out: &mut Out,
    unlink: impl FnOnce(&str) -> Result<(), E>,
) -> Result<ExitCode>
where
    E: Race + std::error::Error + Send + Sync + 'static,
{
    match unlink(name.as_str()) {
        Ok(()) => {}
        Err(e) if e.missing() => bail!("cannot remove {what} {name}: no such {what}"),
        Err(e) => return Err(e).with_context(|| format!("cannot remove {what} {name}")),
    }
    out.removed(mechanism, what, name)?;
    Ok(ExitCode::SUCCESS)
}
