//! System V msq (being built).

use std::process::ExitCode;

use crate::cli::SysvMsqArgs;
use crate::output::Out;

pub fn run(_args: &SysvMsqArgs, _out: &mut Out) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sysv msq is not built yet")
}
