//! POSIX IPC: one file per mechanism.

pub mod msq;
pub mod sem;
pub mod shm;

use std::process::ExitCode;

use crate::cli::PosixCommand;
use crate::output::Out;

pub fn run(cmd: PosixCommand, out: &mut Out) -> anyhow::Result<ExitCode> {
    match cmd {
        PosixCommand::Msq(args) => msq::run(&args, out),
        PosixCommand::Shm(args) => shm::run(&args, out),
        PosixCommand::Sem(args) => sem::run(&args, out),
    }
}
