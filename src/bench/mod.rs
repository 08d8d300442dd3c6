//! `bench`: verified round-trip latency and one-way throughput of each
//! mechanism between a parent and a forked child, at one or more message
//! sizes and placements, next to the floor: what the hardware allows for a
//! round trip between the same two CPUs.
//!
//! Every message carries a sequence number and a checksum that the other
//! side verifies, so a broken mechanism fails loudly instead of reporting a
//! fast number.

mod bar;
mod config;
mod drive;
mod floor;
mod link;
mod loops;
mod msg;
mod os;
mod report;
mod svg;

pub use config::{Config, Mech, Pattern, Pin};

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::error::usage;
use crate::output::Out;
use crate::signal::Cancel;
use bar::progress_bar;
use drive::{Cfg, Env, Stop};
use floor::Wait;
use os::{allowed_cpus, restore_affinity};
use report::{FloorRow, Row};

/// Seconds per mechanism when neither --count nor --duration is given:
/// twelve mechanisms and the floor take about four seconds in all.
const DEFAULT_SECS: f64 = 0.3;

/// One measurement of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Floor(Pin),
    Mech(Mech, usize, Pin),
}

/// What a run has measured so far.
#[derive(Default)]
struct Results {
    floors: Vec<FloorRow>,
    rows: Vec<Row>,
}

pub fn run(args: &Config, out: &mut Out) -> Result<ExitCode> {
    let allowed = allowed_cpus().context("cannot read the CPU affinity")?;
    let mut pins: Vec<Pin> = Vec::new();
    for &p in &args.pins {
        if !pins.contains(&p) {
            pins.push(p);
        }
    }
    if pins.contains(&Pin::Split) && allowed.len() < 2 {
        return Err(usage(
            "--pin split needs two CPUs, and this process may use only one",
        ));
    }
    let jobs = plan(args, &pins, allowed.len())?;
    let cancel = Cancel::install().context("cannot install signal handlers")?;
    // A terminal that takes cursor movements: TERM set, and not `dumb`.
    let ansi = std::env::var_os("TERM").is_some_and(|t| !t.is_empty() && t != "dumb");
    let show_bar = std::io::stderr().is_terminal() && ansi && !out.is_json();
    let mut res = Results::default();
    for (i, &job) in jobs.iter().enumerate() {
        if cancel.is_canceled() {
            break;
        }
        let cfg = cfg_for(args, job, &allowed);
        let bar = show_bar.then(|| progress_bar(job_label(job), cfg.stop));
        let env = Env {
            cfg: &cfg,
            cancel: &cancel,
            bar: bar.as_ref(),
        };
        let done = run_job(job, &env, i, &res, allowed.len())
            .with_context(|| format!("bench {} failed", job_name(job, args, &pins)));
        if let Some(bar) = &bar {
            // Also erases a `^C` the terminal echoed after the bar.
            bar.finish_and_clear();
        }
        restore_affinity(&allowed);
        match done {
            Ok(done) => record(out, &mut res, done)?,
            // Ctrl-C ends the run as it ends a server: not a failure.
            Err(_) if cancel.is_canceled() => {
                return canceled(out, &res, args.pattern, bar.is_some());
            }
            Err(e) => {
                // Keep the mechanisms measured before the failure (with
                // their floor; a floor alone is no result).
                if !out.is_json() && !res.rows.is_empty() {
                    report::print_tables(out.writer(), &res.floors, &res.rows, args.pattern)?;
                }
                // Flatten: an EPIPE from a pipe under test is a failed run,
                // not the quiet end of a stdout pipeline that main makes of it.
                return Err(anyhow!("{e:#}"));
            }
        }
    }
    if cancel.is_canceled() {
        // Between two measurements, or just after the last one.
        return canceled(out, &res, args.pattern, false);
    }
    if !out.is_json() {
        report::print_tables(out.writer(), &res.floors, &res.rows, args.pattern)?;
    }
    if let Some(path) = &args.svg {
        draw_chart(path, &res.rows, args, &pins)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A finished measurement.
enum Done {
    Floor(FloorRow),
    Row(Row),
}

/// JSON: one line as soon as a measurement is known; text waits for the
/// tables.
fn record(out: &mut Out, res: &mut Results, done: Done) -> Result<()> {
    let value = match &done {
        Done::Floor(f) => serde_json::to_value(f),
        Done::Row(r) => serde_json::to_value(r),
    };
    if out.is_json() {
        out.record("", || value.unwrap_or_default())?;
        out.flush()?;
    }
    match done {
        Done::Floor(f) => res.floors.push(f),
        Done::Row(r) => res.rows.push(r),
    }
    Ok(())
}

fn run_job(job: Job, env: &Env<'_>, tag: usize, res: &Results, cpus: usize) -> Result<Done> {
    match job {
        Job::Floor(pin) => {
            let wait = floor_wait(pin, cpus);
            let sample = floor::measure(env, wait)?;
            Ok(Done::Floor(FloorRow::new(pin, wait, &sample)))
        }
        Job::Mech(m, size, pin) => {
            let sample = loops::measure(m, env, tag)?;
            let floor = res
                .floors
                .iter()
                .find(|f| f.pin == pin.name())
                .map(|f| f.round_trip_ns);
            let pattern = env.cfg.pattern;
            Ok(Done::Row(Row::new(m, pattern, size, pin, &sample, floor)))
        }
    }
}

/// Spinning needs a CPU for each side; with one, the floor yields.
fn floor_wait(pin: Pin, cpus: usize) -> Wait {
    match pin {
        Pin::Split => Wait::Spin,
        Pin::None if cpus >= 2 => Wait::Spin,
        _ => Wait::Yield,
    }
}

fn job_label(job: Job) -> &'static str {
    match job {
        Job::Floor(_) => "floor",
        Job::Mech(m, ..) => m.name(),
    }
}

/// `pipe`, or `pipe at 4096 bytes, pin split` when the run has several
/// sizes or placements.
fn job_name(job: Job, args: &Config, pins: &[Pin]) -> String {
    let (name, size, pin) = match job {
        Job::Floor(pin) => ("floor".to_string(), None, pin),
        Job::Mech(m, size, pin) => (m.name().to_string(), Some(size), pin),
    };
    let mut s = name;
    if let Some(size) = size.filter(|_| args.sizes.len() > 1) {
        s += &format!(" at {size} bytes");
    }
    if pins.len() > 1 {
        s += &format!(" (pin {})", pin.name());
    }
    s
}

/// The options of one measurement.
fn cfg_for(args: &Config, job: Job, allowed: &[usize]) -> Cfg {
    let (size, pin) = match job {
        Job::Floor(pin) => (0, pin),
        Job::Mech(_, size, pin) => (size, pin),
    };
    let stop = match (args.count, args.duration) {
        (Some(n), _) => Stop::Count(n),
        (None, Some(d)) => Stop::Time(d),
        (None, None) => Stop::Time(Duration::from_secs_f64(DEFAULT_SECS)),
    };
    let cpus = match pin {
        Pin::None => (usize::MAX, usize::MAX),
        Pin::Same => (allowed[0], allowed[0]),
        Pin::Split => (allowed[0], allowed.get(1).copied().unwrap_or(allowed[0])),
    };
    Cfg {
        size,
        stop,
        warmup: args.warmup,
        pattern: args.pattern,
        pin,
        cpus,
        corrupt_after: args.corrupt_after,
    }
}

/// Every measurement of the run, in order: the floor of each placement
/// (pingpong: the rows are compared with it), then each size, each
/// mechanism, each placement. What cannot run as asked is skipped with a
/// note, or refused when a mechanism named with --mech can run nowhere.
fn plan(args: &Config, pins: &[Pin], cpus: usize) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    if args.floor || (args.pattern == Pattern::Pingpong && !args.no_floor) {
        jobs.extend(pins.iter().map(|&p| Job::Floor(p)));
    }
    if args.floor {
        return Ok(jobs);
    }
    let explicit = !args.mechs.is_empty();
    let mut mechs: Vec<Mech> = Vec::new();
    for &m in if explicit {
        &args.mechs[..]
    } else {
        &Mech::ALL[..]
    } {
        if !mechs.contains(&m) {
            mechs.push(m);
        }
    }
    let mut sizes: Vec<usize> = Vec::new();
    for &s in &args.sizes {
        if !sizes.contains(&s) {
            sizes.push(s);
        }
    }
    let mut skipped: Vec<(Mech, usize, Pin, String)> = Vec::new();
    let mut fit = vec![false; mechs.len()];
    for &size in &sizes {
        for (i, &m) in mechs.iter().enumerate() {
            for &pin in pins {
                let single_cpu = pin == Pin::Same || cpus < 2;
                match unfit(m, size, args.pattern, single_cpu) {
                    None => {
                        fit[i] = true;
                        jobs.push(Job::Mech(m, size, pin));
                    }
                    Some(why) => skipped.push((m, size, pin, why)),
                }
            }
        }
    }
    if explicit {
        let refused = skipped
            .iter()
            .find(|(m, ..)| mechs.iter().position(|x| x == m).is_some_and(|i| !fit[i]));
        if let Some((m, _, _, why)) = refused {
            return Err(usage(format!("cannot bench {}: {why}", m.name())));
        }
    }
    for (m, size, pin, why) in &skipped {
        let mut what = m.name().to_string();
        if sizes.len() > 1 {
            what += &format!(" at {size} bytes");
        }
        if pins.len() > 1 {
            what += &format!(" (pin {})", pin.name());
        }
        eprintln!("note: skipping {what}: {why}");
    }
    Ok(jobs)
}

/// Why a mechanism cannot run with these options, if it cannot.
fn unfit(m: Mech, size: usize, pattern: Pattern, single_cpu: bool) -> Option<String> {
    let proc = |p: &str| crate::sys::read_proc_u64(p);
    match m {
        Mech::ShmSpin if single_cpu => Some(
            "it busy-waits, and with both processes on one CPU every wait lasts a time slice; \
             use --pin split or --pin none on two CPUs"
                .into(),
        ),
        Mech::PosixMsq => match proc("/proc/sys/fs/mqueue/msgsize_max") {
            Some(max) if size as u64 > max => Some(format!(
                "--size {size} is above /proc/sys/fs/mqueue/msgsize_max ({max})"
            )),
            _ => None,
        },
        Mech::SysvMsq => match proc("/proc/sys/kernel/msgmax") {
            Some(max) if size as u64 > max => Some(format!(
                "--size {size} is above /proc/sys/kernel/msgmax ({max})"
            )),
            _ => None,
        },
        Mech::UnixDgram => link::dgram_refuses(size),
        Mech::Vmsplice if pattern == Pattern::Stream => Some(
            "vmsplice lends the pipe the sender's own pages, which a stream's sender \
             would overwrite before the reader copied them; it is measured with \
             --pattern pingpong"
                .into(),
        ),
        _ => None,
    }
}

/// SIGINT or SIGTERM: what was measured (in text; JSON printed each row
/// already), then `canceled.`, exit 0. No chart: the run is incomplete.
/// `erased` says a progress bar was cleared from the line that held any
/// echoed `^C`, so no line break is needed to get past it.
fn canceled(out: &mut Out, res: &Results, pattern: Pattern, erased: bool) -> Result<ExitCode> {
    if !erased {
        out.past_echoed_interrupt()?;
    }
    if !out.is_json() {
        report::print_tables(out.writer(), &res.floors, &res.rows, pattern)?;
    }
    out.canceled_here()?;
    Ok(ExitCode::SUCCESS)
}

/// `--svg`: one size, a bar per row; several, the curves against size.
fn draw_chart(path: &std::path::Path, rows: &[Row], args: &Config, pins: &[Pin]) -> Result<()> {
    let label = |r: &Row| {
        if pins.len() > 1 {
            format!("{} ({})", r.mechanism, r.pin)
        } else {
            r.mechanism.to_string()
        }
    };
    let pin = pins.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ");
    if args.sizes.len() > 1 {
        let mut series: Vec<svg::Series> = Vec::new();
        for r in rows {
            let name = label(r);
            let point = svg::Point {
                size: r.size as f64,
                latency_ns: match r.latency_ns {
                    Some(l) => l.p50,
                    None => 1e9 / r.per_sec.max(1e-12),
                },
                mb_per_sec: r.mb_per_sec,
            };
            match series.iter_mut().find(|s| s.label == name) {
                Some(s) => s.points.push(point),
                None => series.push(svg::Series {
                    label: name,
                    color: Mech::ALL
                        .iter()
                        .position(|m| m.name() == r.mechanism)
                        .unwrap_or(0),
                    shade: pins.iter().position(|p| p.name() == r.pin).unwrap_or(0),
                    points: vec![point],
                }),
            }
        }
        return svg::curves(path, args.pattern, &pin, &series);
    }
    let size = args.sizes.first().copied().unwrap_or(0);
    let labels: Vec<String> = rows.iter().map(label).collect();
    // What a bar shows, its title and its axis: the median round trip on a
    // log scale, or the throughput.
    let (value, title, axis, log): (fn(&Row) -> f64, _, _, _) = match args.pattern {
        Pattern::Pingpong => (
            |r| r.latency_ns.map_or(0.0, |l| l.p50),
            format!("round trip, {size} bytes, pin {pin}: median latency"),
            "ns per round trip (log scale)",
            true,
        ),
        Pattern::Stream => (
            |r| r.mb_per_sec,
            format!("one way, {size} bytes, pin {pin}: throughput"),
            "MB/s",
            false,
        ),
    };
    let bars: Vec<svg::Bar<'_>> = rows
        .iter()
        .zip(&labels)
        .map(|(r, l)| svg::Bar {
            label: l,
            value: value(r),
        })
        .collect();
    svg::draw(path, &title, axis, log, &bars)
}
