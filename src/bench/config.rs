//! What a `bench` run measures: the command line resolved by main.rs into
//! plain values, so this module does not depend on the parser.

use std::path::PathBuf;
use std::time::Duration;

/// A mechanism `bench` can measure. Also the `--mech` values: the
/// command line parses straight into it, so the list is written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mech {
    Pipe,
    /// A pipe the sender fills with vmsplice(2): its pages by reference.
    Vmsplice,
    Fifo,
    Unix,
    UnixDgram,
    Tcp,
    PosixMsq,
    SysvMsq,
    ShmSpin,
    ShmFutex,
    ShmSem,
    Eventfd,
}

impl Mech {
    /// Every mechanism, in the order of the table.
    pub const ALL: [Mech; 12] = [
        Mech::Pipe,
        Mech::Vmsplice,
        Mech::Fifo,
        Mech::Unix,
        Mech::UnixDgram,
        Mech::Tcp,
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
            Mech::Vmsplice => "vmsplice",
            Mech::Fifo => "fifo",
            Mech::Unix => "unix",
            Mech::UnixDgram => "unix-dgram",
            Mech::Tcp => "tcp",
            Mech::PosixMsq => "posix-msq",
            Mech::SysvMsq => "sysv-msq",
            Mech::ShmSpin => "shm-spin",
            Mech::ShmFutex => "shm-futex",
            Mech::ShmSem => "shm-sem",
            Mech::Eventfd => "eventfd",
        }
    }
}

/// What is measured (also the `--pattern` values; the variant docs are
/// their help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pattern {
    /// Round trips between parent and child
    Pingpong,
    /// One-way throughput
    Stream,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Pingpong => "pingpong",
            Pattern::Stream => "stream",
        }
    }
}

/// Where the two processes run (also the `--pin` values; the variant docs
/// are their help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pin {
    /// The scheduler decides
    None,
    /// Both processes on one CPU
    Same,
    /// The two processes on two CPUs
    Split,
}

impl Pin {
    pub fn name(self) -> &'static str {
        match self {
            Pin::None => "none",
            Pin::Same => "same",
            Pin::Split => "split",
        }
    }
}

/// A `bench` run as asked for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The mechanisms named with `--mech`, in order; empty: every one.
    pub mechs: Vec<Mech>,
    /// Message sizes in bytes, each measured with every mechanism.
    pub sizes: Vec<usize>,
    /// Measured round trips (messages) per mechanism; wins over `duration`.
    pub count: Option<u64>,
    /// Measured time per mechanism.
    pub duration: Option<Duration>,
    /// Unmeasured round trips (messages) first.
    pub warmup: u64,
    /// Placements, each measured with every mechanism.
    pub pins: Vec<Pin>,
    pub pattern: Pattern,
    /// Measure the floor alone.
    pub floor: bool,
    /// Do not measure the floor (pingpong measures it unless told not to).
    pub no_floor: bool,
    /// Draw a chart into this file.
    pub svg: Option<PathBuf>,
    /// Test hook: the child corrupts its messages from this one on.
    pub corrupt_after: Option<u64>,
}
