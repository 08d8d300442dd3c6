//! System V sem (being built).

use std::process::ExitCode;

use crate::cli::SysvSemArgs;
use crate::output::Out;

pub fn run(_args: &SysvSemArgs, _out: &mut Out) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sysv sem is not built yet")
}
