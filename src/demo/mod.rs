//! `demo`: the classic IPC experiments, each run with real processes and
//! reported with numbers. Every region is an anonymous shared mapping made
//! before `fork` (nothing to leave behind); the one named object, the
//! semaphore of `demo mutex`, is unlinked as soon as every process has it.

mod counter;
mod memfd;
mod ring;
mod scoreboard;
pub mod shared;
mod sorted;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::DemoCommand;
use crate::output::Out;

/// Which layout a region holds, stored in its header.
pub mod kind {
    pub const COUNTER: u32 = 1;
    pub const RING: u32 = 2;
    pub const SCOREBOARD: u32 = 3;
    pub const SORTED: u32 = 4;
}

pub fn run(cmd: DemoCommand, out: &mut Out) -> Result<ExitCode> {
    match cmd {
        DemoCommand::Race(args) => counter::run(counter::Cure::None, &args, out),
        DemoCommand::Mutex(args) => counter::run(counter::Cure::Semaphore, &args, out),
        DemoCommand::Atomic(args) => counter::run(counter::Cure::Atomic, &args, out),
        DemoCommand::Cures(args) => counter::run_all(&args, out),
        DemoCommand::Ring(args) => ring::run(&args, out),
        DemoCommand::Scoreboard(args) => scoreboard::run(&args, out),
        DemoCommand::Sorted(args) => sorted::run(&args, out),
        DemoCommand::Memfd(args) => memfd::run(&args, out),
    }
}

/// Milliseconds with three decimals, for "in 12.345 ms".
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
