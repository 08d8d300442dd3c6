//! The floor: one atomic word bounced between the two processes, with no
//! payload and no clock read per round trip. The parent writes an odd
//! number, the child answers with the next even one; round trips are timed
//! in batches, and the floor is the median batch's time per round trip.
//!
//! On two CPUs each side spins on the word: what the hardware allows, a
//! cache line handed from one CPU to the other and back. On one CPU a side
//! that spins waits for a whole time slice, so there each side yields the
//! CPU (sched_yield) until the word changes: two context switches per round
//! trip, the least any hand-over between two processes on one CPU costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::drive::{BATCH, Control, Env, Measured, Sample, Shared, Stop, drive, median};
use super::link::{self, Wake};
use super::os::{current_cpu, process_cpu_ns, thread_cpu_ns};
use crate::ipc::mapping::Mapping;

/// Spins between sched_yield calls (and looks at the abort flag).
const SPINS_BEFORE_YIELD: u32 = 1024;

/// The word's value that tells the child to stop (odd values are the
/// parent's, and a run never reaches this one).
const STOP: usize = usize::MAX;

/// How each side waits for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Busy wait with a pause hint (two CPUs).
    Spin,
    /// sched_yield until the word changes (one CPU).
    Yield,
}

impl Wait {
    pub fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Yield => "yield",
        }
    }
}

/// Measure the floor.
pub(super) fn measure(env: &Env<'_>, wait: Wait) -> Result<Sample> {
    let map = link::shared_memory(4096)?;
    let child_map = map.clone();
    let abort = Arc::new(AtomicBool::new(false));
    let cfg = env.cfg;
    let parent = |map: &mut Arc<Mapping>, shared: &Shared| {
        let word = map.atomic_usize(0);
        parent_floor(word, wait, cfg.warmup, cfg.stop, shared)
    };
    let child =
        move |control: &Control| child_floor(child_map.atomic_usize(0), wait, cfg.warmup, control);
    drive(map, parent, child, Wake(Box::new(|| {})), abort, env)
}

/// Wait until `word` is no longer `seen`; returns its new value.
#[inline(always)]
fn wait_change(word: &AtomicUsize, seen: usize, wait: Wait, abort: &AtomicBool) -> Result<usize> {
    let mut spins = 0u32;
    loop {
        let v = word.load(Ordering::Acquire);
        if v != seen {
            return Ok(v);
        }
        spins = spins.wrapping_add(1);
        match wait {
            Wait::Spin => {
                // A peer on another CPU answers within a few dozen spins;
                // one that shares this CPU (unpinned, on a busy machine)
                // runs only when this side yields.
                if spins % SPINS_BEFORE_YIELD == 0 {
                    if abort.load(Ordering::Relaxed) {
                        bail!("aborted");
                    }
                    let _ = nix::sched::sched_yield();
                }
                std::hint::spin_loop();
            }
            Wait::Yield => {
                if abort.load(Ordering::Relaxed) {
                    bail!("aborted");
                }
                let _ = nix::sched::sched_yield();
            }
        }
    }
}

/// One round trip: write `v + 1`, wait for the child's `v + 2`.
#[inline(always)]
fn bounce(word: &AtomicUsize, v: usize, wait: Wait, abort: &AtomicBool) -> Result<usize> {
    word.store(v + 1, Ordering::Release);
    let got = wait_change(word, v + 1, wait, abort)?;
    if got != v + 2 {
        bail!("the word reads {got}, expected {}", v + 2);
    }
    Ok(got)
}

fn parent_floor(
    word: &AtomicUsize,
    wait: Wait,
    warmup: u64,
    stop: Stop,
    shared: &Shared,
) -> Result<Measured> {
    let abort = &*shared.abort;
    let mut v = 0;
    for _ in 0..warmup {
        v = bounce(word, v, wait, abort).context("floor warm-up")?;
    }
    let (count, time) = match stop {
        Stop::Count(c) => (c, Duration::MAX),
        Stop::Time(d) => (u64::MAX, d),
    };
    let _ = shared.measuring.set(Instant::now());
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    let mut batches = Vec::new();
    let mut n = 0u64;
    while n < count && (n == 0 || start.elapsed() < time) {
        let b = BATCH.min(count - n);
        let t = Instant::now();
        for _ in 0..b {
            v = bounce(word, v, wait, abort).context("floor")?;
        }
        batches.push(t.elapsed().as_nanos() as f64 / b as f64);
        n += b;
        shared.progress.store(n, Ordering::Relaxed);
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_ns = thread_cpu_ns() - cpu0;
    // From here the child exits on its own; the watchdog must not mind.
    shared.done.store(true, Ordering::SeqCst);
    word.store(STOP, Ordering::Release);
    Ok(Measured {
        count: n,
        secs,
        lat: None,
        round_trip_ns: median(batches),
        cpu_ns,
        cpu: current_cpu(),
    })
}

fn child_floor(word: &AtomicUsize, wait: Wait, warmup: u64, control: &Control) -> Result<()> {
    // Only the parent's watchdog aborts; the child dies with the parent.
    let never = AtomicBool::new(false);
    let mut mine = 0;
    let mut k = 0u64;
    let mut cpu0 = process_cpu_ns();
    loop {
        let v = wait_change(word, mine, wait, &never)?;
        if v == STOP {
            break;
        }
        if v != mine + 1 {
            bail!("the floor word reads {v}, expected {}", mine + 1);
        }
        if k == warmup {
            cpu0 = process_cpu_ns();
        }
        mine = v + 1;
        word.store(mine, Ordering::Release);
        k += 1;
    }
    control.report(cpu0);
    Ok(())
}
