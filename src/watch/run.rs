//! `watch`'s loop: a sample from `ls`'s scan every `--interval`, shown as
//! a table redrawn in place on a terminal, or as one JSON line per sample
//! (`--json`, or stdout not a terminal).

use std::io::{self, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossterm::{cursor, execute, queue, terminal};

use super::{Numbers, ObjectKey, QueueNumbers, Sample, Watch, summary, table};
use crate::ls::{Fields, Object, Scan, Select};
use crate::output::Out;
use crate::signal::{Cancel, Wake};

/// What `watch` was asked for.
pub struct WatchOptions {
    pub select: Select,
    pub interval: Duration,
    /// Stop after this many samples; `None`: until Ctrl-C.
    pub count: Option<u64>,
}

/// One object's identity and numbers, from its row of the scan.
pub fn entry(obj: &Object) -> (ObjectKey, Numbers) {
    let inode = match &obj.fields {
        Fields::PosixShm(s) => Some(s.inode.1),
        Fields::PosixSem(s) => Some(s.inode.1),
        _ => None,
    };
    let key = ObjectKey {
        kind: obj.kind,
        name: obj.name.clone(),
        key: obj.key_hex(),
        id: obj.id.and_then(|id| u64::try_from(id).ok()).or(inode),
    };
    let u = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
    let numbers = match &obj.fields {
        Fields::PosixMsq(q) => Numbers::Queue(QueueNumbers {
            messages: u(q.curmsgs).unwrap_or(0),
            bytes: q.bytes.unwrap_or(0),
            touched_ns: Some(i128::from(q.mtime.0) * 1_000_000_000),
            ..QueueNumbers::default()
        }),
        Fields::SysvMsq(q) => Numbers::Queue(QueueNumbers {
            messages: u(q.qnum).unwrap_or(0),
            bytes: u(q.cbytes).unwrap_or(0),
            lspid: q.lspid.and_then(|p| i32::try_from(p).ok()),
            lrpid: q.lrpid.and_then(|p| i32::try_from(p).ok()),
            stime: Some(q.stime.0),
            rtime: Some(q.rtime.0),
            touched_ns: None,
        }),
        Fields::PosixSem(s) => Numbers::Semaphore {
            values: s.value.map(u64::from).into_iter().collect(),
            waiters: s.waiters.map(u64::from).into_iter().collect(),
        },
        Fields::SysvSem(s) => {
            let sems = s.sems.iter().flatten();
            Numbers::Semaphore {
                values: sems.clone().map(|m| u64::from(m.value)).collect(),
                waiters: sems
                    .map(|m| u64::try_from(m.ncount.saturating_add(m.zcount)).unwrap_or(0))
                    .collect(),
            }
        }
        Fields::PosixShm(s) => Numbers::Segment {
            size: s.size,
            nattch: None,
        },
        Fields::SysvShm(s) => Numbers::Segment {
            size: u(s.size).unwrap_or(0),
            nattch: u(s.nattch),
        },
    };
    (key, numbers)
}

fn sample(select: &Select, start: Instant) -> Sample {
    let scan = Scan::run(select);
    Sample {
        elapsed: start.elapsed().as_secs_f64(),
        objects: scan.objects.iter().map(entry).collect(),
    }
}

/// The alternate screen with the cursor hidden, restored on drop (the end
/// of the loop, Ctrl-C, an error).
struct Screen;

impl Screen {
    fn enter() -> io::Result<Screen> {
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(Screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
    }
}

fn heading(opts: &WatchOptions, n: u64, sample: &Sample) -> String {
    format!(
        "every {:.1}s, sample {n}: {} (rates are lower bounds; Ctrl-C to stop)",
        opts.interval.as_secs_f64(),
        summary(sample)
    )
}

/// `watch`: sample until `--count` samples or Ctrl-C.
pub fn run(opts: &WatchOptions, out: &mut Out) -> Result<ExitCode> {
    let cancel = Cancel::install()?;
    let live = !out.is_json() && io::stdout().is_terminal();
    let mut json_out = Out::new(true);
    let lines = if out.is_json() { out } else { &mut json_out };
    let screen = if live { Some(Screen::enter()?) } else { None };
    let start = Instant::now();
    let mut watch = Watch::new();
    let mut last = Vec::new();
    let mut n = 0u64;
    loop {
        let s = sample(&opts.select, start);
        let heading = heading(opts, n + 1, &s);
        let report = watch.update(s);
        n += 1;
        if live {
            last = std::iter::once(heading).chain(table(&report)).collect();
            let mut stdout = io::stdout().lock();
            queue!(
                stdout,
                cursor::MoveTo(0, 0),
                terminal::Clear(terminal::ClearType::All)
            )?;
            for line in &last {
                writeln!(stdout, "{line}")?;
            }
            stdout.flush()?;
        } else {
            let doc = report.json();
            lines.event(&SampleLine(doc))?;
            lines.flush()?;
        }
        if opts.count.is_some_and(|c| n >= c) {
            break;
        }
        if cancel.wait(None, Some(opts.interval))? == Wake::Canceled {
            break;
        }
    }
    drop(screen);
    if live {
        // The last table stays on the normal screen once the watch ends.
        let mut stdout = io::stdout().lock();
        for line in &last {
            writeln!(stdout, "{line}")?;
        }
        stdout.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One `watch --json` line: the report's fields under `"kind": "sample"`.
struct SampleLine(serde_json::Value);

impl serde::Serialize for SampleLine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The JSON form is the only one printed.
impl std::fmt::Display for SampleLine {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

crate::record_kind!(SampleLine, "sample");
