//! `demo race|mutex|atomic`: P processes add 1 to one shared counter N times.
//!
//! Without synchronisation each increment is a load and a store, and two
//! processes that load the same value both store value + 1: one update is
//! lost. The race is written with relaxed atomic loads and stores rather
//! than plain memory accesses: the machine code is the same `mov`/`add`/`mov`
//! as C's `counter++`, but Rust has no undefined behaviour to optimise on.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::kind;
use super::shared::{
    Children, Ended, Header, NamedSem, Region, Shared, UnlinkSemOnDrop, align64, spawn, spin_until,
};
use crate::cli::CounterArgs;
use crate::output::Out;
use crate::signal::Cancel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cure {
    None,
    Semaphore,
    Atomic,
}

impl Cure {
    fn demo(self) -> &'static str {
        match self {
            Cure::None => "race",
            Cure::Semaphore => "mutex",
            Cure::Atomic => "atomic",
        }
    }
}

/// The shared layout: header, a start flag, and the counter on its own cache line.
#[repr(C)]
struct Counter {
    header: Header,
    /// Set by the parent once every child is forked, so they all start together.
    go: AtomicU32,
    /// Children that have checked the header and wait for `go`.
    ready: AtomicU32,
}

// SAFETY: only atomics and a Shared header.
unsafe impl Shared for Counter {}

pub fn run(cure: Cure, args: &CounterArgs, out: &mut Out) -> Result<ExitCode> {
    let cancel = Cancel::install().context("cannot install signal handlers")?;
    let procs = args.procs as usize;
    let iters = args.iters;
    let counter_at = align64(size_of::<Counter>());
    let size = counter_at + 64;
    let region = Region::new(size)?;
    let shared: &Counter = region.at(0)?;
    let value: &AtomicU64 = region.at(counter_at)?;
    shared.header.init(kind::COUNTER, size);

    // demo mutex: a named semaphore, unique to this run, unlinked as soon as
    // the children have inherited it; the guard covers an early error.
    let sem_name = format!("/eipc-demo-{}-mutex", std::process::id());
    let _unlink = UnlinkSemOnDrop(sem_name.clone());
    let mut sem = None;
    let mut replaced = false;
    if cure == Cure::Semaphore {
        let (s, r) = NamedSem::create(&sem_name, 1)?;
        sem = Some(s);
        replaced = r;
    }

    let how = match cure {
        Cure::None => "load + store, no synchronisation".to_string(),
        Cure::Semaphore => {
            format!("each increment between sem_wait and sem_post on named semaphore {sem_name}")
        }
        Cure::Atomic => "atomic fetch_add".to_string(),
    };
    out.record(
        format_args!(
            "demo {}: {procs} processes x {iters} increments of one shared counter ({how})",
            cure.demo()
        ),
        || {
            let mut v =
                json!({"kind": "start", "demo": cure.demo(), "procs": procs, "iters": iters});
            if cure == Cure::Semaphore {
                v["name"] = sem_name.clone().into();
            }
            v
        },
    )?;
    if replaced {
        out.record(
            format_args!("replaced a stale semaphore {sem_name} from an earlier run"),
            || json!({"kind": "stale", "name": sem_name}),
        )?;
    }
    out.flush()?;

    let mut children = spawn(procs, |_| {
        if shared.header.check(kind::COUNTER, size).is_err() {
            return 3;
        }
        shared.ready.fetch_add(1, Ordering::AcqRel);
        spin_until(|| shared.go.load(Ordering::Acquire) == 1);
        for _ in 0..iters {
            match cure {
                Cure::None => {
                    let v = value.load(Ordering::Relaxed);
                    value.store(v + 1, Ordering::Relaxed);
                }
                Cure::Semaphore => {
                    let Some(sem) = &sem else { return 4 };
                    if sem.wait().is_err() {
                        return 4;
                    }
                    let v = value.load(Ordering::Relaxed);
                    value.store(v + 1, Ordering::Relaxed);
                    if sem.post().is_err() {
                        return 4;
                    }
                }
                Cure::Atomic => {
                    value.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        0
    })?;
    // Every process has the semaphore now: the name can go.
    if let Some(s) = &mut sem {
        s.unlink_now()?;
    }

    // Start the clock when every child is at the line, then let them go.
    while shared.ready.load(Ordering::Acquire) < procs as u32 {
        match children.wait_once(&cancel, Duration::from_millis(1))? {
            None => {}
            Some(Ended::Canceled) => return canceled(children, out),
            Some(Ended::Done) => bail!("the processes exited before they started"),
        }
    }
    let start = Instant::now();
    shared.go.store(1, Ordering::Release);
    let ended = children.wait(&cancel, Duration::from_millis(100), || Ok(()))?;
    let elapsed = start.elapsed();
    if ended == Ended::Canceled {
        return canceled(children, out);
    }

    let expected = procs as u64 * iters;
    let actual = value.load(Ordering::Acquire);
    let lost = expected.saturating_sub(actual);
    let pct = lost as f64 * 100.0 / expected as f64;
    let per_op = elapsed.as_nanos() as f64 / expected as f64;
    let verdict = if lost == 0 { "exact" } else { "updates lost" };
    out.record(
        format_args!(
            "  expected {expected}\n  actual   {actual}\n  lost     {lost} ({pct:.1}%)\n  time     {:.3} ms ({per_op:.1} ns per increment)\n  {verdict}",
            super::ms(elapsed)
        ),
        || {
            json!({"kind": "result", "demo": cure.demo(), "procs": procs, "iters": iters,
                   "expected": expected, "actual": actual, "lost": lost,
                   "ms": super::ms(elapsed), "ns_per_increment": per_op})
        },
    )?;
    if cure != Cure::None && lost != 0 {
        bail!("{} lost {lost} updates: the cure did not work", cure.demo());
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C: kill and reap the children (their Drop), then `canceled.`.
fn canceled(children: Children, out: &mut Out) -> Result<ExitCode> {
    drop(children);
    out.canceled()?;
    Ok(ExitCode::SUCCESS)
}
