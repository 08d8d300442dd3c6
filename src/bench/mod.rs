//! `bench`: verified round-trip latency and one-way throughput of each
//! mechanism between a parent and a forked child.
//!
//! Every message carries a sequence number and a checksum that the other
//! side verifies, so a broken mechanism fails loudly instead of reporting a
//! fast number. A watchdog thread in the parent (started after fork) ends the
//! run when the child dies, on Ctrl-C, or when nothing moves for a while: it
//! kills the child and wakes the parent out of whatever wait it is in.

mod config;
mod link;
mod svg;

pub use config::{Config, Mech, Pattern, Pin};

use std::io::{IsTerminal, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use nix::poll::PollFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::error::usage;
use crate::ipc::cpu::ticks;
use crate::ipc::mapping::Mapping;
use crate::ipc::process::{self, ChildGuard};
use crate::output::Out;
use crate::signal::{Cancel, Wake as Woke};
use link::{Abort, Link, ShmKind, Wake};

/// Seconds per mechanism when neither --count nor --duration is given:
/// nine mechanisms take about three seconds in all.
const DEFAULT_SECS: f64 = 0.3;

/// The watchdog ends a run in which no round trip completes for this long.
const STALL: Duration = Duration::from_secs(10);

/// Sequence numbers of the control messages (never reached by a run).
const STOP: u64 = u64::MAX;
const SYNC: u64 = u64::MAX - 1;

fn mech_name(m: Mech) -> &'static str {
    m.name()
}

#[derive(Clone, Copy)]
enum Stop {
    Count(u64),
    Time(Duration),
}

/// The resolved options of one run.
struct Cfg {
    size: usize,
    stop: Stop,
    warmup: u64,
    pattern: Pattern,
    pin: Pin,
    /// CPUs for parent and child under --pin same/split.
    cpus: (usize, usize),
    corrupt_after: Option<u64>,
}

/// One measured mechanism.
struct Row {
    mech: &'static str,
    pin: Pin,
    parent_cpu: i32,
    child_cpu: i32,
    count: u64,
    secs: f64,
    /// Latency in ns: mean, p50, p99, p99.9, max (pingpong only).
    lat: Option<[f64; 5]>,
    cpu_ns: f64,
}

pub fn run(args: &Config, out: &mut Out) -> Result<ExitCode> {
    let explicit = !args.mechs.is_empty();
    let mut mechs: Vec<Mech> = if explicit {
        args.mechs.clone()
    } else {
        Mech::ALL.to_vec()
    };
    mechs.dedup();
    let allowed = allowed_cpus().context("cannot read the CPU affinity")?;
    let pin = args.pin;
    let cpus = match pin {
        Pin::None => (usize::MAX, usize::MAX),
        Pin::Same => (allowed[0], allowed[0]),
        Pin::Split => match allowed.get(1) {
            Some(&b) => (allowed[0], b),
            None => {
                return Err(usage(
                    "--pin split needs two CPUs, and this process may use only one",
                ));
            }
        },
    };
    let stop = match (args.count, args.duration) {
        (Some(n), _) => Stop::Count(n),
        (None, Some(d)) => Stop::Time(d),
        (None, None) => Stop::Time(Duration::from_secs_f64(DEFAULT_SECS)),
    };
    let cfg = Cfg {
        size: args.size,
        stop,
        warmup: args.warmup,
        pattern: args.pattern,
        pin,
        cpus,
        corrupt_after: args.corrupt_after,
    };
    // Refuse (or, for the default list, skip) what cannot run as asked.
    let single_cpu = pin == Pin::Same || allowed.len() < 2;
    let mut skipped = Vec::new();
    mechs.retain(|&m| match unfit(m, &cfg, single_cpu) {
        None => true,
        Some(why) => {
            skipped.push((m, why));
            false
        }
    });
    if explicit && let Some((m, why)) = skipped.first() {
        return Err(usage(format!("cannot bench {}: {why}", mech_name(*m))));
    }
    for (m, why) in &skipped {
        eprintln!("note: skipping {}: {why}", mech_name(*m));
    }

    let cancel = Cancel::install().context("cannot install signal handlers")?;
    // A terminal that takes cursor movements: TERM set, and not `dumb`.
    let ansi = std::env::var_os("TERM").is_some_and(|t| !t.is_empty() && t != "dumb");
    let show_bar = std::io::stderr().is_terminal() && ansi && !out.is_json();
    let mut rows = Vec::new();
    for (i, &m) in mechs.iter().enumerate() {
        if cancel.is_canceled() {
            break;
        }
        let bar = show_bar.then(|| progress_bar(m, &cfg));
        let row = measure(m, &cfg, &cancel, bar.as_ref(), i)
            .with_context(|| format!("bench {} failed", mech_name(m)));
        if let Some(bar) = &bar {
            // Also erases a `^C` the terminal echoed after the bar.
            bar.finish_and_clear();
        }
        let row = match row {
            Ok(row) => row,
            // Ctrl-C ends the run as it ends a server: not a failure.
            Err(_) if cancel.is_canceled() => {
                restore_affinity(&allowed);
                return canceled(out, &rows, &cfg, bar.is_some());
            }
            Err(e) => {
                // Keep what was measured before the failure.
                if !out.is_json() && !rows.is_empty() {
                    print_table(out, &rows, &cfg)?;
                }
                restore_affinity(&allowed);
                // Flatten: an EPIPE from a pipe under test is a failed run,
                // not the quiet end of a stdout pipeline that main makes of it.
                return Err(anyhow!("{e:#}"));
            }
        };
        if out.is_json() {
            // One line per mechanism as soon as it is known.
            out.record("", || row_json(&row, &cfg))?;
            out.flush()?;
        }
        rows.push(row);
    }
    restore_affinity(&allowed);
    if cancel.is_canceled() {
        // Between two mechanisms, or just after the last one.
        return canceled(out, &rows, &cfg, false);
    }
    if !out.is_json() {
        print_table(out, &rows, &cfg)?;
    }
    if let Some(path) = &args.svg {
        draw_chart(path, &rows, &cfg)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM: what was measured (in text; JSON printed each row
/// already), then `canceled.`, exit 0. No chart: the run is incomplete.
/// `erased` says a progress bar was cleared from the line that held any
/// echoed `^C`, so no line break is needed to get past it.
fn canceled(out: &mut Out, rows: &[Row], cfg: &Cfg, erased: bool) -> Result<ExitCode> {
    if !erased {
        out.past_echoed_interrupt()?;
    }
    if !out.is_json() && !rows.is_empty() {
        print_table(out, rows, cfg)?;
    }
    out.canceled_here()?;
    Ok(ExitCode::SUCCESS)
}

/// `--svg`: median round-trip latency (pingpong) or MB/s (stream) per mechanism.
fn draw_chart(path: &std::path::Path, rows: &[Row], cfg: &Cfg) -> Result<()> {
    let pin = pin_name(cfg.pin);
    match cfg.pattern {
        Pattern::Pingpong => {
            let bars: Vec<svg::Bar<'_>> = rows
                .iter()
                .map(|r| svg::Bar {
                    label: r.mech,
                    value: r.lat.map_or(0.0, |[_, p50, ..]| p50),
                })
                .collect();
            let title = format!("round trip, {} bytes, pin {pin}: median latency", cfg.size);
            svg::draw(path, &title, "ns per round trip (log scale)", true, &bars)
        }
        Pattern::Stream => {
            let bars: Vec<svg::Bar<'_>> = rows
                .iter()
                .map(|r| svg::Bar {
                    label: r.mech,
                    value: r.count as f64 / r.secs.max(1e-12) * cfg.size as f64 / 1e6,
                })
                .collect();
            let title = format!("one way, {} bytes, pin {pin}: throughput", cfg.size);
            svg::draw(path, &title, "MB/s", false, &bars)
        }
    }
}

/// Why a mechanism cannot run with these options, if it cannot.
fn unfit(m: Mech, cfg: &Cfg, single_cpu: bool) -> Option<String> {
    let proc = |p: &str| crate::sys::read_proc_u64(p);
    match m {
        Mech::ShmSpin if single_cpu => Some(
            "it busy-waits, and with both processes on one CPU every wait lasts a time slice; \
             use --pin split or --pin none on two CPUs"
                .into(),
        ),
        Mech::PosixMsq => match proc("/proc/sys/fs/mqueue/msgsize_max") {
            Some(max) if cfg.size as u64 > max => Some(format!(
                "--size {} is above /proc/sys/fs/mqueue/msgsize_max ({max})",
                cfg.size
            )),
            _ => None,
        },
        Mech::SysvMsq => match proc("/proc/sys/kernel/msgmax") {
            Some(max) if cfg.size as u64 > max => Some(format!(
                "--size {} is above /proc/sys/kernel/msgmax ({max})",
                cfg.size
            )),
            _ => None,
        },
        _ => None,
    }
}

fn progress_bar(m: Mech, cfg: &Cfg) -> indicatif::ProgressBar {
    let (len, unit) = match cfg.stop {
        Stop::Count(n) => (n, "{pos}/{len}"),
        Stop::Time(d) => (d.as_millis() as u64, "{pos}/{len} ms"),
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::term_like_with_hz(Box::new(BarTerm), 20),
    );
    let style = indicatif::ProgressStyle::with_template(&format!("{{msg:10}} [{{bar:30}}] {unit}"))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(mech_name(m));
    // Drawn at once: a `^C` echoed from now on lands on the bar's line,
    // which finish_and_clear erases.
    bar.tick();
    bar
}

/// Where the bar stands: the measured phase only (not the fork, the
/// warmup or the final handshake), never past its length. A timed run
/// checks the clock every 64 messages and so ends a little after its
/// duration; the bar then shows it full.
fn bar_position(stop: Stop, progress: u64, measuring_since: Option<Instant>) -> u64 {
    match stop {
        Stop::Count(n) => progress.min(n),
        Stop::Time(d) => {
            let ms = measuring_since.map_or(0, |t| t.elapsed().as_millis());
            ms.min(d.as_millis()) as u64
        }
    }
}

/// The progress bar's terminal: standard error, drawn two columns short of
/// its width.
///
/// indicatif pads the bar's line with blanks to the terminal's width, which
/// leaves the cursor in the last column: a `^C` the terminal echoes there
/// wraps onto a line of its own, and clearing the bar (its one line) would
/// leave the bar on the screen above `canceled.`. With two spare columns
/// the echo stays on the bar's line, and clearing the bar clears it too.
#[derive(Debug)]
struct BarTerm;

impl BarTerm {
    fn put(s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }
}

impl indicatif::TermLike for BarTerm {
    fn width(&self) -> u16 {
        crate::ipc::terminal::stderr_size()
            .map_or(80, |(_, cols)| cols)
            .saturating_sub(2)
            .max(1)
    }

    fn height(&self) -> u16 {
        crate::ipc::terminal::stderr_size().map_or(24, |(rows, _)| rows)
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            Self::put(&format!("\x1b[{n}A"))
        }
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            Self::put(&format!("\x1b[{n}B"))
        }
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            Self::put(&format!("\x1b[{n}C"))
        }
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            Self::put(&format!("\x1b[{n}D"))
        }
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        Self::put(s)?;
        Self::put("\n")
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        Self::put(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        Self::put("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

// ------------------------------------------------------------ a run

/// The control page shared with the child: its CPU time over the measured
/// phase, the CPU it ended on, and the error that ended it, if any.
struct Control(Arc<Mapping>);

impl Control {
    const ERR_LEN: usize = 0;
    const CPU: usize = 4;
    const USER_NS: usize = 8;
    const SYS_NS: usize = 16;
    const ERR: usize = 64;
    const ERR_MAX: usize = 1024;

    fn new() -> Result<Control> {
        Ok(Control(link::shared_memory(4096)?))
    }

    fn set_error(&self, msg: &str) {
        let bytes = &msg.as_bytes()[..msg.len().min(Self::ERR_MAX)];
        self.0.write(Self::ERR, bytes);
        self.0
            .atomic_u32(Self::ERR_LEN)
            .store(bytes.len() as u32, Ordering::Release);
    }

    fn error(&self) -> Option<String> {
        let len = self.0.atomic_u32(Self::ERR_LEN).load(Ordering::Acquire) as usize;
        if len == 0 {
            return None;
        }
        let mut buf = vec![0u8; len.min(Self::ERR_MAX)];
        self.0.read(Self::ERR, &mut buf);
        Some(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// Why the watchdog ended a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reason {
    None = 0,
    ChildDied = 1,
    Canceled = 2,
    Stalled = 3,
}

/// What the parent loop and the watchdog share.
struct Shared {
    abort: Abort,
    done: AtomicBool,
    progress: AtomicU64,
    /// When the measured phase began (after the warmup), for the bar.
    measuring: OnceLock<Instant>,
    reason: AtomicU32,
}

fn measure(
    m: Mech,
    cfg: &Cfg,
    cancel: &Cancel,
    bar: Option<&indicatif::ProgressBar>,
    n: usize,
) -> Result<Row> {
    let abort: Abort = Arc::new(AtomicBool::new(false));
    let tag = format!("{n}");
    let stream = cfg.pattern == Pattern::Stream;
    let slots = if stream {
        (1_048_576 / cfg.size).clamp(4, 1024)
    } else {
        1
    };
    let none = || Wake(Box::new(|| {}));
    let name = mech_name(m);
    match m {
        Mech::Pipe => {
            let (p, c) = link::pipes(&abort)?;
            drive(name, p, c, none(), abort, cfg, cancel, bar)
        }
        Mech::Fifo => {
            let (p, c) = link::fifos(&abort, &tag)?;
            drive(name, p, c, none(), abort, cfg, cancel, bar)
        }
        Mech::Unix => {
            let (p, c) = link::unix_pair(&abort)?;
            drive(name, p, c, none(), abort, cfg, cancel, bar)
        }
        Mech::PosixMsq => {
            let (p, c, w) = link::posix_queues(&abort, &tag, cfg.size)?;
            drive(name, p, c, w, abort, cfg, cancel, bar)
        }
        Mech::SysvMsq => {
            // `_q` removes the queue when this arm ends, whatever happened.
            let (p, c, w, _q) = link::sysv_queue(&abort, cfg.size)?;
            drive(name, p, c, w, abort, cfg, cancel, bar)
        }
        Mech::ShmSpin | Mech::ShmFutex | Mech::ShmSem | Mech::Eventfd => {
            let kind = match m {
                Mech::ShmSpin => ShmKind::Spin,
                Mech::ShmFutex => ShmKind::Futex,
                Mech::ShmSem => ShmKind::Sem,
                _ => ShmKind::EventFd,
            };
            let (p, c, w) = link::shm(&abort, kind, &tag, cfg.size, slots)?;
            drive(name, p, c, w, abort, cfg, cancel, bar)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn drive<L: Link>(
    name: &'static str,
    parent: L,
    child: L,
    wake: Wake,
    abort: Abort,
    cfg: &Cfg,
    cancel: &Cancel,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<Row> {
    let control = Control::new()?;
    if cfg.pin != Pin::None {
        set_affinity(cfg.cpus.0).context("cannot pin to a CPU (sched_setaffinity)")?;
    }
    let parent_pid = nix::unistd::getpid();
    std::io::stdout().flush().ok();
    let mut parent = Some(parent);
    // The child runs only `child_main`; its copy of the parent's end is
    // closed first, and the parent's copy of the child's end goes with the
    // closure once fork returns.
    let pid = process::fork(|| {
        drop(parent.take());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            child_main(child, cfg, &control, parent_pid)
        }))
        .unwrap_or(4)
    })
    .context("cannot fork")?;
    // Every parent error path from here kills and reaps the child.
    let mut guard = ChildGuard::new(pid);
    let mut parent = parent.context("the parent's end of the link is gone")?;
    let pidfd = process::pidfd_open(pid).context("cannot watch the child process (pidfd_open)")?;
    let shared = Shared {
        abort,
        done: AtomicBool::new(false),
        progress: AtomicU64::new(0),
        measuring: OnceLock::new(),
        reason: AtomicU32::new(Reason::None as u32),
    };
    let watch = Watch {
        shared: &shared,
        pidfd: &pidfd,
        pid,
        cancel,
        wake: &wake,
        bar,
    };
    let (result, died_first) = supervise(&mut parent, cfg, &watch);
    let status = guard.reap().context("cannot wait for the child process")?;
    let measured = verdict(result, died_first, status, cancel, &shared, &control)?;
    let c = &control.0;
    let child_cpu_ns = c.atomic_usize(Control::USER_NS).load(Ordering::Acquire)
        + c.atomic_usize(Control::SYS_NS).load(Ordering::Acquire);
    let ops = measured.count.max(1) as f64;
    Ok(Row {
        mech: name,
        pin: cfg.pin,
        parent_cpu: measured.cpu,
        child_cpu: c.atomic_u32(Control::CPU).load(Ordering::Acquire) as i32,
        count: measured.count,
        secs: measured.secs,
        lat: measured.lat,
        cpu_ns: (measured.cpu_ns + child_cpu_ns as f64) / ops,
    })
}

/// What the watchdog watches and whom it wakes.
struct Watch<'a> {
    shared: &'a Shared,
    pidfd: &'a OwnedFd,
    pid: Pid,
    cancel: &'a Cancel,
    wake: &'a Wake,
    bar: Option<&'a indicatif::ProgressBar>,
}

/// The parent's side of the run, with the watchdog beside it: what it
/// measured, and whether the child was seen dead right after a failure.
fn supervise<L: Link>(parent: &mut L, cfg: &Cfg, w: &Watch<'_>) -> (Result<Measured>, bool) {
    std::thread::scope(|s| {
        s.spawn(|| watchdog(w.shared, w.pidfd, w.pid, w.cancel, w.wake, w.bar, cfg));
        let r = match cfg.pattern {
            Pattern::Pingpong => parent_pingpong(parent, cfg, w.shared),
            Pattern::Stream => parent_stream(parent, cfg, w.shared),
        };
        w.shared.done.store(true, Ordering::SeqCst);
        let mut died_first = false;
        if r.is_err() {
            // An end of file or reset may come just before the exit is
            // visible: give the child's death a moment to show, so the
            // error names the right culprit.
            let mut fds = [nix::poll::PollFd::new(w.pidfd.as_fd(), PollFlags::POLLIN)];
            died_first = matches!(nix::poll::poll(&mut fds, 200u16), Ok(1));
            // The child may wait on us: end it, which also ends the watchdog.
            let _ = kill(w.pid, Signal::SIGKILL);
        }
        (r, died_first)
    })
}

/// The run's outcome once the child is reaped: the measurement, or the
/// error that names what ended the run (Ctrl-C, a stall, the child).
fn verdict(
    result: Result<Measured>,
    died_first: bool,
    status: WaitStatus,
    cancel: &Cancel,
    shared: &Shared,
    control: &Control,
) -> Result<Measured> {
    let reason = shared.reason.load(Ordering::SeqCst);
    let child_err = control.error();
    let why_child = || match (&child_err, status) {
        (Some(msg), _) => format!("the child process failed: {msg}"),
        (None, WaitStatus::Signaled(_, sig, _)) => {
            format!("the child process was killed by {sig:?}")
        }
        (None, WaitStatus::Exited(_, code)) => {
            format!("the child process exited with status {code}")
        }
        (None, _) => "the child process ended".into(),
    };
    if cancel.is_canceled() || reason == Reason::Canceled as u32 {
        bail!("canceled");
    }
    if reason == Reason::Stalled as u32 {
        bail!(
            "no message moved for {} s; the run was stopped",
            STALL.as_secs()
        );
    }
    let measured = match result {
        Ok(m) => m,
        Err(e) if died_first || reason == Reason::ChildDied as u32 || child_err.is_some() => {
            return Err(e.context(why_child()));
        }
        Err(e) => return Err(e),
    };
    if !matches!(status, WaitStatus::Exited(_, 0)) {
        bail!("{}", why_child());
    }
    Ok(measured)
}

/// Ends the run when the child dies, on Ctrl-C, or on a stall: sets the
/// reason and the abort flag, kills the child, and wakes the parent.
fn watchdog(
    shared: &Shared,
    pidfd: &OwnedFd,
    pid: Pid,
    cancel: &Cancel,
    wake: &Wake,
    bar: Option<&indicatif::ProgressBar>,
    cfg: &Cfg,
) {
    let mut last = (0u64, Instant::now());
    let reason = loop {
        let woke = cancel.wait(
            Some((pidfd.as_fd(), PollFlags::POLLIN)),
            Some(Duration::from_millis(100)),
        );
        if shared.done.load(Ordering::SeqCst) {
            return;
        }
        match woke {
            Ok(Woke::Ready) => {
                // A child that exited 0 finished its part (its last message
                // was sent): the parent will read it, nothing to abort.
                let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
                if matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::Exited(_, 0))) {
                    return;
                }
                break Reason::ChildDied;
            }
            Ok(Woke::Canceled) => break Reason::Canceled,
            Ok(Woke::TimedOut) => {}
            Err(_) => break Reason::Stalled,
        }
        let p = shared.progress.load(Ordering::Relaxed);
        if let Some(bar) = bar {
            bar.set_position(bar_position(cfg.stop, p, shared.measuring.get().copied()));
        }
        if p != last.0 {
            last = (p, Instant::now());
        } else if last.1.elapsed() >= STALL {
            break Reason::Stalled;
        }
    };
    shared.reason.store(reason as u32, Ordering::SeqCst);
    shared.abort.store(true, Ordering::SeqCst);
    let _ = kill(pid, Signal::SIGKILL);
    // One wake-up is not enough: a parent that saw the abort flag unset just
    // before it was set goes to sleep right after it (a futex wait on a word
    // the dead child will never change), and would sleep forever. So wake it
    // until its loop has ended.
    loop {
        (wake.0)();
        if shared.done.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the parent measured.
struct Measured {
    count: u64,
    secs: f64,
    lat: Option<[f64; 5]>,
    /// The parent thread's user+sys time over the measured phase.
    cpu_ns: f64,
    cpu: i32,
}

fn parent_pingpong<L: Link>(link: &mut L, cfg: &Cfg, shared: &Shared) -> Result<Measured> {
    let mut msg = vec![0u8; cfg.size];
    fill(&mut msg);
    let stamper = Stamper::new(&mut msg);
    let mut back = vec![0u8; cfg.size];
    // Latencies in clock ticks, scaled to ns at the end.
    let mut hist = Histogram::<u64>::new_with_bounds(1, u64::MAX / 4, 3).context("histogram")?;
    let mut seq = 0u64;
    for _ in 0..cfg.warmup {
        round(link, &stamper, &mut msg, &mut back, seq)?;
        seq += 1;
    }
    let (count, time) = match cfg.stop {
        Stop::Count(c) => (c, Duration::MAX),
        Stop::Time(d) => (u64::MAX, d),
    };
    // For the bar; set before the clocks start, outside the measured span.
    let _ = shared.measuring.set(Instant::now());
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    let t0 = ticks();
    let mut last = t0;
    let mut n = 0u64;
    // The next message goes out as soon as the reply is in; the clock, the
    // histogram and the reply's verification run while the child works.
    stamper.stamp(&mut msg, seq);
    link.send(&msg)
        .with_context(|| format!("round trip {seq}: cannot send"))?;
    loop {
        link.recv(&mut back)
            .with_context(|| format!("round trip {seq}: cannot receive the reply"))?;
        n += 1;
        let finished = n >= count || (n % 64 == 0 && start.elapsed() >= time);
        if !finished {
            stamper.stamp(&mut msg, seq + 1);
            link.send(&msg)
                .with_context(|| format!("round trip {}: cannot send", seq + 1))?;
        }
        let now = ticks();
        hist.saturating_record(now.wrapping_sub(last));
        last = now;
        verify(&back, !seq).with_context(|| format!("round trip {seq}: the reply is wrong"))?;
        seq += 1;
        if n % 64 == 0 {
            shared.progress.store(n, Ordering::Relaxed);
        }
        if finished {
            break;
        }
    }
    let t1 = ticks();
    let elapsed = start.elapsed();
    let cpu_ns = thread_cpu_ns() - cpu0;
    // From here the child exits on its own; the watchdog must not mind.
    shared.done.store(true, Ordering::SeqCst);
    stamper.stamp(&mut msg, STOP);
    link.send(&msg).context("cannot send the stop message")?;
    let ns_per_tick = elapsed.as_nanos() as f64 / t1.wrapping_sub(t0).max(1) as f64;
    let q = |x: f64| hist.value_at_quantile(x) as f64 * ns_per_tick;
    Ok(Measured {
        count: n,
        secs: elapsed.as_secs_f64(),
        lat: Some([
            hist.mean() * ns_per_tick,
            q(0.5),
            q(0.99),
            q(0.999),
            hist.max() as f64 * ns_per_tick,
        ]),
        cpu_ns,
        cpu: current_cpu(),
    })
}

/// One verified round trip.
fn round<L: Link>(
    link: &mut L,
    stamper: &Stamper,
    msg: &mut [u8],
    back: &mut [u8],
    seq: u64,
) -> Result<()> {
    stamper.stamp(msg, seq);
    link.send(msg)
        .with_context(|| format!("round trip {seq}: cannot send"))?;
    link.recv(back)
        .with_context(|| format!("round trip {seq}: cannot receive the reply"))?;
    verify(back, !seq)
        .map(drop)
        .with_context(|| format!("round trip {seq}: the reply is wrong"))
}

fn parent_stream<L: Link>(link: &mut L, cfg: &Cfg, shared: &Shared) -> Result<Measured> {
    let mut msg = vec![0u8; cfg.size];
    fill(&mut msg);
    let stamper = Stamper::new(&mut msg);
    let mut back = vec![0u8; cfg.size];
    let mut seq = 0u64;
    let mut sync = |link: &mut L, msg: &mut [u8], what: u64| -> Result<()> {
        stamper.stamp(msg, what);
        link.send(msg).context("cannot send a control message")?;
        link.recv(&mut back)
            .context("cannot receive the child's acknowledgement")?;
        verify(&back, !what)
            .map(drop)
            .context("the acknowledgement is wrong")
    };
    for _ in 0..cfg.warmup {
        stamper.stamp(&mut msg, seq);
        link.send(&msg)
            .with_context(|| format!("message {seq}: cannot send"))?;
        seq += 1;
    }
    sync(link, &mut msg, SYNC)?;
    // For the bar; set before the clocks start, outside the measured span.
    let _ = shared.measuring.set(Instant::now());
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        stamper.stamp(&mut msg, seq);
        link.send(&msg)
            .with_context(|| format!("message {seq}: cannot send"))?;
        seq += 1;
        n += 1;
        if n % 64 == 0 {
            shared.progress.store(n, Ordering::Relaxed);
        }
        let finished = match cfg.stop {
            Stop::Count(c) => n >= c,
            Stop::Time(d) => n % 64 == 0 && start.elapsed() >= d,
        };
        if finished {
            break;
        }
    }
    // The time includes the child receiving the last message.
    sync(link, &mut msg, STOP)?;
    let secs = start.elapsed().as_secs_f64();
    let cpu_ns = thread_cpu_ns() - cpu0;
    shared.done.store(true, Ordering::SeqCst);
    Ok(Measured {
        count: n,
        secs,
        lat: None,
        cpu_ns,
        cpu: current_cpu(),
    })
}

fn child_main<L: Link>(mut link: L, cfg: &Cfg, control: &Control, parent: Pid) -> i32 {
    // The parent's handlers would write into the parent's signal pipe; the
    // child dies of SIGINT/SIGTERM instead, and with its parent.
    if process::child_setup(parent).is_err() {
        return 5;
    }
    if cfg.pin == Pin::Split && set_affinity(cfg.cpus.1).is_err() {
        control.set_error("cannot pin to a CPU (sched_setaffinity)");
        return 3;
    }
    let r = match cfg.pattern {
        Pattern::Pingpong => child_pingpong(&mut link, cfg, control),
        Pattern::Stream => child_stream(&mut link, cfg, control),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            control.set_error(&format!("{e:#}"));
            3
        }
    }
}

fn child_pingpong<L: Link>(link: &mut L, cfg: &Cfg, control: &Control) -> Result<()> {
    let mut buf = vec![0u8; cfg.size];
    let mut expect = 0u64;
    let mut cpu0 = process_cpu_ns();
    loop {
        link.recv(&mut buf)
            .with_context(|| format!("round trip {expect}: cannot receive"))?;
        let seq = seq_of(&buf);
        if seq == STOP {
            verify(&buf, STOP).context("the stop message is wrong")?;
            break;
        }
        if seq != expect {
            verify(&buf, expect)
                .with_context(|| format!("round trip {expect}: the message is wrong"))?;
        }
        if expect == cfg.warmup {
            cpu0 = process_cpu_ns();
        }
        // Reply first, verify the body while the parent works: the reply
        // carries the body unchanged, so the parent checks it too.
        set_seq(&mut buf, !seq);
        let corrupt = cfg.corrupt_after.is_some_and(|n| expect >= n);
        let last = buf.len() - 1;
        if corrupt {
            // Test hook: flip a byte on the way out only, so the parent's
            // check must catch it.
            buf[last] ^= 0x20;
        }
        link.send(&buf)
            .with_context(|| format!("round trip {expect}: cannot reply"))?;
        if corrupt {
            buf[last] ^= 0x20;
        }
        verify(&buf, !seq).with_context(|| format!("round trip {expect}: the message is wrong"))?;
        expect += 1;
    }
    report_child(control, cpu0);
    Ok(())
}

fn child_stream<L: Link>(link: &mut L, cfg: &Cfg, control: &Control) -> Result<()> {
    let mut buf = vec![0u8; cfg.size];
    let mut expect = 0u64;
    let mut cpu0 = process_cpu_ns();
    loop {
        link.recv(&mut buf)
            .with_context(|| format!("message {expect}: cannot receive"))?;
        let seq = seq_of(&buf);
        if seq == SYNC || seq == STOP {
            verify(&buf, seq).context("a control message is wrong")?;
            if seq == SYNC {
                cpu0 = process_cpu_ns();
            } else {
                report_child(control, cpu0);
            }
            set_seq(&mut buf, !seq);
            link.send(&buf).context("cannot acknowledge")?;
            if seq == STOP {
                return Ok(());
            }
            continue;
        }
        if cfg.corrupt_after.is_some_and(|n| expect >= n) {
            // Test hook: what a torn or reused buffer would look like.
            let last = buf.len() - 1;
            buf[last] ^= 0x20;
        }
        verify(&buf, expect).with_context(|| format!("message {expect} is wrong"))?;
        expect += 1;
    }
}

fn report_child(control: &Control, cpu0: u64) {
    let used = process_cpu_ns().saturating_sub(cpu0);
    let c = &control.0;
    c.atomic_usize(Control::USER_NS)
        .store(used as usize, Ordering::Release);
    c.atomic_usize(Control::SYS_NS).store(0, Ordering::Release);
    c.atomic_u32(Control::CPU)
        .store(current_cpu() as u32, Ordering::Release);
}

// ------------------------------------------------------------ messages

/// Word 0 is the sequence number, word 1 the checksum of everything else.
fn seq_of(msg: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&msg[..8]);
    u64::from_ne_bytes(w)
}

fn checksum_of(msg: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&msg[8..16]);
    u64::from_ne_bytes(w)
}

/// Fletcher-style sums over the 64-bit words after the checksum word: any
/// single changed or moved word changes them. Returns (a, b, words).
fn body_sums(msg: &[u8]) -> (u64, u64, u64) {
    let (mut a, mut b, mut n) = (0u64, 0u64, 0u64);
    let mut words = msg[16..].chunks_exact(8);
    for chunk in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        a = a.wrapping_add(u64::from_ne_bytes(w));
        b = b.wrapping_add(a);
        n += 1;
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        a = a.wrapping_add(u64::from_ne_bytes(w));
        b = b.wrapping_add(a);
        n += 1;
    }
    (a, b, n)
}

/// The checksum of a body with sums `sums`. It leaves out word 0, which is
/// compared exactly, so a reply that only changes the sequence number keeps
/// its checksum and can go out before the body was verified.
fn finish((a, b, n): (u64, u64, u64)) -> u64 {
    (a ^ 0x243f_6a88_85a3_08d3).wrapping_add(n) ^ b.rotate_left(29)
}

#[cfg(test)]
fn checksum(msg: &[u8]) -> u64 {
    finish(body_sums(msg))
}

/// A payload that is not all zeros, so a mechanism that loses bytes shows.
fn fill(msg: &mut [u8]) {
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
}

/// The reference the O(1) `Stamper` must agree with (unit tests).
#[cfg(test)]
/// Write the sequence number (also into the payload, so it changes every
/// message) and the checksum.
fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_ne_bytes());
    if msg.len() >= 24 {
        msg[16..24].copy_from_slice(&seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_ne_bytes());
    }
    let sum = checksum(msg);
    msg[8..16].copy_from_slice(&sum.to_ne_bytes());
}

/// Check the sequence number and the checksum; returns the body sums.
fn verify(msg: &[u8], want: u64) -> Result<(u64, u64, u64)> {
    let seq = seq_of(msg);
    if seq != want {
        bail!("sequence number {seq:#x}, expected {want:#x}");
    }
    let sums = body_sums(msg);
    if finish(sums) != checksum_of(msg) {
        return Err(anyhow!("checksum mismatch: the data was corrupted"));
    }
    Ok(sums)
}

/// Write the sequence number alone (the checksum does not cover it).
fn set_seq(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_ne_bytes());
}

/// The sender's side of `stamp` in O(1): only word 0 and word 2 change
/// between messages, so the body sums follow from those of the message with
/// word 2 zero. Word 2 is the first body word, part of every prefix sum.
struct Stamper {
    base: (u64, u64, u64),
}

impl Stamper {
    fn new(msg: &mut [u8]) -> Stamper {
        if msg.len() >= 24 {
            msg[16..24].fill(0);
        }
        Stamper {
            base: body_sums(msg),
        }
    }

    fn stamp(&self, msg: &mut [u8], seq: u64) {
        let (a, b, n) = self.base;
        let sums = if msg.len() >= 24 {
            let w2 = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            msg[16..24].copy_from_slice(&w2.to_ne_bytes());
            (a.wrapping_add(w2), b.wrapping_add(w2.wrapping_mul(n)), n)
        } else {
            self.base
        };
        set_seq(msg, seq);
        msg[8..16].copy_from_slice(&finish(sums).to_ne_bytes());
    }
}

// ------------------------------------------------------------ OS helpers

fn allowed_cpus() -> Result<Vec<usize>> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(0))?;
    let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect();
    if cpus.is_empty() {
        bail!("no CPU in the affinity mask");
    }
    Ok(cpus)
}

fn set_affinity(cpu: usize) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
}

fn restore_affinity(cpus: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        let _ = set.set(c);
    }
    let _ = nix::sched::sched_setaffinity(Pid::from_raw(0), &set);
}

fn current_cpu() -> i32 {
    nix::sched::sched_getcpu().map_or(-1, |cpu| cpu as i32)
}

fn cpu_ns(clock: nix::time::ClockId) -> u64 {
    nix::time::clock_gettime(clock)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// user+sys of the calling thread (the watchdog's sleeps are not counted).
fn thread_cpu_ns() -> f64 {
    cpu_ns(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID) as f64
}

/// user+sys of the whole (single-threaded) child.
fn process_cpu_ns() -> u64 {
    cpu_ns(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
}

// ------------------------------------------------------------ report

fn pin_name(p: Pin) -> &'static str {
    match p {
        Pin::None => "none",
        Pin::Same => "same",
        Pin::Split => "split",
    }
}

fn pattern_name(p: Pattern) -> &'static str {
    match p {
        Pattern::Pingpong => "pingpong",
        Pattern::Stream => "stream",
    }
}

/// 102ns, 4.21µs, 1.30ms, 2.00s
fn dur(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.2}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

fn rate(r: f64) -> String {
    let s = format!("{:.0}", r);
    // Thousands separators make 9,876,543 readable at a glance.
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn row_json(r: &Row, cfg: &Cfg) -> Value {
    let per_sec = r.count as f64 / r.secs.max(1e-12);
    let lat = r.lat.map(|[mean, p50, p99, p999, max]| {
        json!({"mean": mean, "p50": p50, "p99": p99, "p999": p999, "max": max})
    });
    json!({
        "kind": "bench",
        "mechanism": r.mech,
        "pattern": pattern_name(cfg.pattern),
        "size": cfg.size,
        "pin": pin_name(r.pin),
        "parent_cpu": r.parent_cpu,
        "child_cpu": r.child_cpu,
        "count": r.count,
        "seconds": r.secs,
        "per_sec": per_sec,
        "mb_per_sec": per_sec * cfg.size as f64 / 1e6,
        "latency_ns": lat,
        "cpu_ns_per_op": r.cpu_ns,
    })
}

fn print_table(out: &mut Out, rows: &[Row], cfg: &Cfg) -> Result<()> {
    let w = out.writer();
    let pin = |r: &Row| format!("{} {}/{}", pin_name(r.pin), r.parent_cpu, r.child_cpu);
    match cfg.pattern {
        Pattern::Pingpong => {
            writeln!(
                w,
                "pingpong, {} bytes; pin: parent/child CPU at the end of the run",
                cfg.size
            )?;
            writeln!(
                w,
                "{:<10} {:<9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "mechanism", "pin", "round trips/s", "mean", "p50", "p99", "p99.9", "max", "cpu/rt"
            )?;
            for r in rows {
                let [mean, p50, p99, p999, max] = r.lat.unwrap_or_default();
                writeln!(
                    w,
                    "{:<10} {:<9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    r.mech,
                    pin(r),
                    rate(r.count as f64 / r.secs.max(1e-12)),
                    dur(mean),
                    dur(p50),
                    dur(p99),
                    dur(p999),
                    dur(max),
                    dur(r.cpu_ns)
                )?;
            }
        }
        Pattern::Stream => {
            writeln!(
                w,
                "stream, {} bytes one way; pin: parent/child CPU at the end of the run",
                cfg.size
            )?;
            writeln!(
                w,
                "{:<10} {:<9} {:>12} {:>10} {:>9}",
                "mechanism", "pin", "messages/s", "MB/s", "cpu/msg"
            )?;
            for r in rows {
                let per_sec = r.count as f64 / r.secs.max(1e-12);
                writeln!(
                    w,
                    "{:<10} {:<9} {:>12} {:>10.1} {:>9}",
                    r.mech,
                    pin(r),
                    rate(per_sec),
                    per_sec * cfg.size as f64 / 1e6,
                    dur(r.cpu_ns)
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_position_is_the_measured_phase_clamped_to_the_length() {
        let ms = Duration::from_millis;
        let time = Stop::Time(ms(300));
        // Warmup: nothing measured yet.
        assert_eq!(bar_position(time, 0, None), 0);
        let since = |d| {
            Instant::now()
                .checked_sub(d)
                .expect("a monotonic clock past boot")
        };
        let p = bar_position(time, 0, Some(since(ms(100))));
        assert!((100..=300).contains(&p), "{p}");
        // Measured past its duration (the clock is read every 64 messages):
        // full, never 915/300.
        assert_eq!(bar_position(time, 0, Some(since(ms(915)))), 300);
        assert_eq!(bar_position(Stop::Count(300), 256, None), 256);
        assert_eq!(bar_position(Stop::Count(300), 320, None), 300);
    }

    #[test]
    fn fast_stamps_match_the_reference() {
        for size in [16, 17, 23, 24, 64, 100, 4096] {
            let mut fast = vec![0u8; size];
            fill(&mut fast);
            let stamper = Stamper::new(&mut fast);
            let mut slow = fast.clone();
            for seq in [0, 1, 2, 12345, SYNC, STOP] {
                stamper.stamp(&mut fast, seq);
                stamp(&mut slow, seq);
                assert_eq!(fast, slow, "size {size} seq {seq}");
                verify(&fast, seq).expect("valid");
                set_seq(&mut fast, !seq);
                assert_eq!(checksum(&fast), checksum_of(&fast));
                assert!(verify(&fast, !seq).is_ok());
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let mut msg = vec![0u8; 64];
        fill(&mut msg);
        Stamper::new(&mut msg).stamp(&mut msg, 7);
        for i in 0..msg.len() {
            for bit in 0..8 {
                let mut bad = msg.clone();
                bad[i] ^= 1 << bit;
                assert!(verify(&bad, 7).is_err(), "flip at byte {i} bit {bit}");
            }
        }
    }
}
