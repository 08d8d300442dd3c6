//! What a `bench` run measures: the command line resolved by main.rs into
//! plain values, so this module does not depend on the parser.

use std::path::PathBuf;
use std::time::Duration;

/// A mechanism `bench` can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    Pipe,
    Fifo,
    Unix,
    PosixMsq,
    SysvMsq,
    ShmSpin,
    ShmFutex,
    ShmSem,
    Eventfd,
}

impl Mech {
    /// Every mechanism, in the order of the table.
    pub const ALL: [Mech; 9] = [
        Mech::Pipe,
        Mech::Fifo,
        Mech::Unix,
        Mech::PosixMsq,
        Mech::SysvMsq,
        Mech::ShmSpin,
        Mech::ShmFutex,
        Mech::ShmSem,
        Mech::Eventfd,
    ];

    /// The name in `--mech`, the table and the JSON `mechanism` field.
    pub fn name(self) -> &'static str {
        match self {
            Mech::Pipe => "pipe",
            Mech::Fifo => "fifo",
            Mech::Unix => "unix",
            Mech::PosixMsq => "posix-msq",
            Mech::SysvMsq => "sysv-msq",
            Mech::ShmSpin => "shm-spin",
            Mech::ShmFutex => "shm-futex",
            Mech::ShmSem => "shm-sem",
            Mech::Eventfd => "eventfd",
        }
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Round trips: latency.
    Pingpong,
    /// One way, as fast as the mechanism takes messages: throughput.
    Stream,
}

/// Where the two processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Where the scheduler puts them.
    None,
    /// Both on one CPU.
    Same,
    /// On two CPUs.
    Split,
}

/// A `bench` run as asked for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The mechanisms named with `--mech`, in order; empty: every one.
    pub mechs: Vec<Mech>,
    /// Message size in bytes.
    pub size: usize,
    /// Measured round trips (messages) per mechanism; wins over `duration`.
    pub count: Option<u64>,
    /// Measured time per mechanism.
    pub duration: Option<Duration>,
    /// Unmeasured round trips (messages) first.
    pub warmup: u64,
    pub pin: Pin,
    pub pattern: Pattern,
    /// Draw a chart into this file.
    pub svg: Option<PathBuf>,
    /// Test hook: the child corrupts its messages from this one on.
    pub corrupt_after: Option<u64>,
}
