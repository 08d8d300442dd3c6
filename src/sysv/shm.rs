//! System V shm (being built).

use std::process::ExitCode;

use crate::cli::SysvShmArgs;
use crate::output::Out;

pub fn run(_args: &SysvShmArgs, _out: &mut Out) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sysv shm is not built yet")
}
