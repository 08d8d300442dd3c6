//! System V IPC: one file per mechanism.

pub mod common;
pub mod msq;
pub mod sem;
pub mod shm;

use std::process::ExitCode;

use crate::cli::SysvCommand;
use crate::output::Out;

pub fn run(cmd: SysvCommand, out: &mut Out) -> anyhow::Result<ExitCode> {
    match cmd {
        SysvCommand::Msq(args) => msq::run(&args, out),
        SysvCommand::Shm(args) => shm::run(&args, out),
        SysvCommand::Sem(args) => sem::run(&args, out),
    }
}
