//! `demo race|mutex|atomic`: P processes add 1 to one shared counter N times.
//!
//! Without synchronisation each increment is a load and a store, and two
//! processes that load the same value both store value + 1: one update is
//! lost. The race is written with relaxed atomic loads and stores rather
//! than plain memory accesses: the machine code is the same `mov`/`add`/`mov`
//! as C's `counter++`, but Rust has no undefined behaviour to optimise on.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, compiler_fence};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::kind;
use super::records::{CounterResult, CounterStart, How, Stale};
use super::shared::{Header, align64, named_sem, region, sem_wait, spin_until, unlink_now};
use crate::children::{Ended, spawn};
use crate::ipc::posix_sem::NamedSem;
use crate::output::Out;
use crate::signal::Cancel;
use crate::spec::Counter as CounterArgs;

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

crate::shared_struct! {
    /// The shared layout: header, a start flag, and the counter on its own cache line.
    struct Counter {
        header: Header,
        /// Set by the parent once every child is forked, so they all start together.
        go: AtomicU32,
        /// Children that have checked the header and wait for `go`.
        ready: AtomicU32,
    }
}

/// One run's numbers.
struct Measured {
    expected: u64,
    actual: u64,
    elapsed: Duration,
}

impl Measured {
    fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.actual)
    }

    fn ns_per_increment(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.expected as f64
    }

    /// The record of this run; `verdict` for a run of its own, none for
    /// a row of `cures`.
    fn record(
        &self,
        cure: Cure,
        procs: usize,
        iters: u64,
        verdict: Option<&'static str>,
    ) -> CounterResult {
        CounterResult {
            demo: cure.demo(),
            procs,
            iters,
            expected: self.expected,
            actual: self.actual,
            lost: self.lost(),
            ms: super::ms(self.elapsed),
            ns_per_increment: self.ns_per_increment(),
            verdict,
        }
    }
}

fn sem_name() -> String {
    format!("/eipc-demo-{}-mutex", std::process::id())
}

/// `demo race|mutex|atomic`
pub fn run(cure: Cure, args: &CounterArgs, out: &mut Out) -> Result<ExitCode> {
    let cancel = Cancel::install().context("cannot install signal handlers")?;
    let procs = args.procs as usize;
    let iters = args.iters;
    let name = sem_name();
    let how = match cure {
        Cure::None => How::Race,
        Cure::Semaphore => How::Mutex(&name),
        Cure::Atomic => How::Atomic,
    };
    out.line(&CounterStart {
        demo: cure.demo(),
        procs,
        iters,
        name: (cure == Cure::Semaphore).then_some(name.as_str()),
        how,
    })?;
    let Some(m) = measure(cure, procs, iters, &cancel, out)? else {
        out.canceled()?;
        return Ok(ExitCode::SUCCESS);
    };
    let lost = m.lost();
    let verdict = match (cure, lost) {
        (Cure::None, 0) => {
            "exact this time: the processes did not overlap (a busy machine may run them one \
             after another); try a larger --iters"
        }
        (_, 0) => "exact",
        _ => "updates lost: two processes loaded the same value and both stored value + 1",
    };
    out.line(&m.record(cure, procs, iters, Some(verdict)))?;
    if cure != Cure::None && lost != 0 {
        bail!("{} lost {lost} updates: the cure did not work", cure.demo());
    }
    Ok(ExitCode::SUCCESS)
}

/// `demo cures`: the race and both cures with the same P and N, side by side.
pub fn run_all(args: &CounterArgs, out: &mut Out) -> Result<ExitCode> {
    let cancel = Cancel::install().context("cannot install signal handlers")?;
    let procs = args.procs as usize;
    let iters = args.iters;
    out.line(&CounterStart {
        demo: "cures",
        procs,
        iters,
        name: None,
        how: How::Cures,
    })?;
    let mut failed = Vec::new();
    for cure in [Cure::None, Cure::Semaphore, Cure::Atomic] {
        let Some(m) = measure(cure, procs, iters, &cancel, out)? else {
            out.canceled()?;
            return Ok(ExitCode::SUCCESS);
        };
        let lost = m.lost();
        out.line(&m.record(cure, procs, iters, None))?;
        out.flush()?;
        if cure != Cure::None && lost != 0 {
            failed.push(cure.demo());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} lost updates: the cure did not work",
            failed.join(" and ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A child's part: `iters` increments of `value`, cured as asked; the exit
/// status (4 when the semaphore fails).
fn count(cure: Cure, value: &AtomicU64, sem: Option<&NamedSem>, iters: u64) -> i32 {
    for _ in 0..iters {
        match cure {
            Cure::None => {
                let v = value.load(Ordering::Relaxed);
                value.store(v + 1, Ordering::Relaxed);
                // One read-modify-write per increment, never merged across
                // iterations by the optimiser (on x86-64 this loop is a
                // plain `incq`, the unlocked instruction C's counter++ gives).
                compiler_fence(Ordering::SeqCst);
            }
            Cure::Semaphore => {
                let Some(sem) = sem else { return 4 };
                if sem_wait(sem).is_err() {
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
}

/// Fork the processes, let them count, and read the counter; `None` on Ctrl-C.
fn measure(
    cure: Cure,
    procs: usize,
    iters: u64,
    cancel: &Cancel,
    out: &mut Out,
) -> Result<Option<Measured>> {
    let counter_at = align64(size_of::<Counter>());
    let size = counter_at + 64;
    let region = region(size)?;
    let shared: &Counter = region.at(0)?;
    let value: &AtomicU64 = region.at(counter_at)?;
    shared.header.init(kind::COUNTER, size);

    // demo mutex: a named semaphore, unique to this run, unlinked as soon as
    // the children have inherited it; its guard covers an early error.
    let sem_name = sem_name();
    let mut sem = None;
    if cure == Cure::Semaphore {
        let (s, replaced) = named_sem(&sem_name, 1)?;
        sem = Some(s);
        if replaced {
            out.line(&Stale { name: &sem_name })?;
        }
    }
    out.flush()?;
    let mut children = spawn(procs, |_| {
        if shared.header.check(kind::COUNTER, size).is_err() {
            return 3;
        }
        shared.ready.fetch_add(1, Ordering::AcqRel);
        spin_until(|| shared.go.load(Ordering::Acquire) == 1);
        count(cure, value, sem.as_deref(), iters)
    })?;
    // Every process has the semaphore now: the name can go.
    if let Some(s) = &mut sem {
        unlink_now(s)?;
    }

    // Start the clock when every child is at the line, then let them go.
    while shared.ready.load(Ordering::Acquire) < procs as u32 {
        match children.wait_once(cancel, Duration::from_millis(1))? {
            None => {}
            Some(Ended::Canceled) => return Ok(None),
            Some(Ended::Done) => bail!("the processes exited before they started"),
        }
    }
    let start = Instant::now();
    shared.go.store(1, Ordering::Release);
    let ended = children.wait(cancel, Duration::from_millis(100), || Ok(()))?;
    let elapsed = start.elapsed();
    if ended == Ended::Canceled {
        return Ok(None);
    }
    Ok(Some(Measured {
        expected: procs as u64 * iters,
        actual: value.load(Ordering::Acquire),
        elapsed,
    }))
}
