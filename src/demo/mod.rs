//! `demo`: the classic IPC experiments, each run with real processes and
//! reported with numbers. Every region is an anonymous shared mapping made
//! before `fork` (nothing to leave behind); the one named object, the
//! semaphore of `demo mutex`, is unlinked as soon as every process has it.

mod counter;
mod memfd;
mod records;
mod ring;
mod scoreboard;
pub mod shared;
mod sorted;

use std::process::ExitCode;

use anyhow::Result;

use crate::output::Out;
use crate::spec::Demo;

/// Which layout a region holds, stored in its header.
pub mod kind {
    pub const COUNTER: u32 = 1;
    pub const RING: u32 = 2;
    pub const SCOREBOARD: u32 = 3;
    pub const SORTED: u32 = 4;
}

pub use memfd::check_name as check_exchange_name;

pub fn run(demo: &Demo, out: &mut Out) -> Result<ExitCode> {
    match demo {
        Demo::Race(args) => counter::run(counter::Cure::None, args, out),
        Demo::Mutex(args) => counter::run(counter::Cure::Semaphore, args, out),
        Demo::Atomic(args) => counter::run(counter::Cure::Atomic, args, out),
        Demo::Cures(args) => counter::run_all(args, out),
        Demo::Ring(args) => ring::run(args, out),
        Demo::Scoreboard(args) => scoreboard::run(args, out),
        Demo::Sorted(args) => sorted::run(args, out),
        Demo::Memfd(spec) => memfd::run(spec, out),
    }
}

/// Milliseconds with three decimals, for "in 12.345 ms".
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
