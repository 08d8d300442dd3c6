//! `demo scoreboard`: W worker processes publish their progress with atomic
//! stores into a shared table (the Apache httpd scoreboard idea); the parent
//! is the monitor and prints the live table until every worker is done.
//! Nobody locks anything: each slot has one writer, and each field is one
//! atomic word, so a reader never sees a torn value.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::kind;
use super::records::{ScoreboardResult, ScoreboardStart, Table, WorkerRow};
use super::shared::{HeadAndSlots, Header, mix};
use crate::children::{Ended, spawn};
use crate::output::Out;
use crate::signal::Cancel;
use crate::spec::Scoreboard as ScoreboardArgs;

/// How often the monitor prints the table.
const PERIOD: Duration = Duration::from_millis(250);
/// Time one item takes worker w: (w + 1) x UNIT, so they finish at different times.
const UNIT: Duration = Duration::from_micros(500);

crate::shared_struct! {
    struct Board {
        header: Header,
        workers: AtomicU32,
        _pad: AtomicU32,
        items: AtomicU64,
    }
}

const IDLE: u32 = 0;
const RUNNING: u32 = 1;
const DONE: u32 = 2;

crate::shared_struct! {
    struct WorkerSlot {
        pid: AtomicU32,
        state: AtomicU32,
        done: AtomicU64,
        /// A running result, so the work is real and checkable.
        result: AtomicU64,
        _pad: [AtomicU64; 5],
    }
}

pub fn run(args: &ScoreboardArgs, out: &mut Out) -> Result<ExitCode> {
    let cancel = Cancel::install().context("cannot install signal handlers")?;
    let workers = args.workers as usize;
    let items = args.items;
    let layout = HeadAndSlots::<Board, WorkerSlot>::new(workers)?;
    let (board, slots) = layout.parts()?;
    let size = layout.size();
    board.workers.store(args.workers, Ordering::Relaxed);
    board.items.store(items, Ordering::Relaxed);
    board.header.init(kind::SCOREBOARD, size);

    out.line(&ScoreboardStart {
        demo: "scoreboard",
        workers,
        items,
        size,
        slot_bytes: size_of::<WorkerSlot>(),
    })?;
    out.flush()?;

    let start = Instant::now();
    let mut children = spawn(workers, |w| {
        if board.header.check(kind::SCOREBOARD, size).is_err() {
            return 3;
        }
        let slot = &slots[w];
        slot.pid.store(std::process::id(), Ordering::Relaxed);
        slot.state.store(RUNNING, Ordering::Release);
        let mut acc = 0u64;
        for k in 0..items {
            std::thread::sleep(UNIT * (w as u32 + 1));
            acc = mix(acc ^ k);
            slot.result.store(acc, Ordering::Relaxed);
            // Release: the monitor that reads `done` sees the result with it.
            slot.done.store(k + 1, Ordering::Release);
        }
        slot.state.store(DONE, Ordering::Release);
        0
    })?;
    let print = |out: &mut Out| -> Result<()> {
        out.event(&table(slots, items, start.elapsed()))?;
        out.flush()?;
        Ok(())
    };
    let ended = children.wait(&cancel, PERIOD, || print(out))?;
    if ended == Ended::Canceled {
        drop(children);
        out.canceled()?;
        return Ok(ExitCode::SUCCESS);
    }
    print(out)?;
    let elapsed = start.elapsed();
    let total: u64 = slots.iter().map(|s| s.done.load(Ordering::Acquire)).sum();
    out.line(&ScoreboardResult {
        demo: "scoreboard",
        workers,
        items: total,
        ms: super::ms(elapsed),
    })?;
    anyhow::ensure!(
        total == workers as u64 * items,
        "the table shows {total} items, expected {}",
        workers as u64 * items
    );
    Ok(ExitCode::SUCCESS)
}

/// The table as it stands.
fn table(slots: &[WorkerSlot], items: u64, elapsed: Duration) -> Table {
    let workers = slots
        .iter()
        .enumerate()
        .map(|(w, s)| WorkerRow {
            worker: w,
            pid: s.pid.load(Ordering::Relaxed),
            state: match s.state.load(Ordering::Acquire) {
                IDLE => "idle",
                RUNNING => "running",
                DONE => "done",
                _ => "?",
            },
            done: s.done.load(Ordering::Acquire),
            items,
        })
        .collect();
    Table {
        workers,
        elapsed_ms: elapsed.as_secs_f64() * 1e3,
    }
}
