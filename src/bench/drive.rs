//! One measured run: fork a child, run the parent's side with a watchdog
//! beside it, reap the child, and say what ended the run if it failed.
//!
//! A watchdog thread in the parent (started after fork) ends the run when
//! the child dies, on Ctrl-C, or when nothing moves for a while: it kills
//! the child and wakes the parent out of whatever wait it is in.

use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::poll::PollFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use super::bar::bar_position;
use super::link::{self, Abort, Wake};
use super::os::{current_cpu, process_cpu_ns, set_affinity};
use super::{Pattern, Pin};
use crate::ipc::mapping::Mapping;
use crate::ipc::process::{self, ChildGuard};
use crate::signal::{Cancel, Wake as Woke};

/// Round trips per timed batch: a clock read per 1024 round trips costs
/// nothing measurable, and a batch that was preempted moves the median of
/// the batches little.
pub(super) const BATCH: u64 = 1024;

/// The median of the batches' ns per round trip.
pub(super) fn median(mut batches: Vec<f64>) -> Option<f64> {
    batches.sort_by(f64::total_cmp);
    batches.get(batches.len() / 2).copied()
}

/// The watchdog ends a run in which no round trip completes for this long.
const STALL: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
pub(super) enum Stop {
    Count(u64),
    Time(Duration),
}

/// The resolved options of one run: one mechanism, size and placement.
pub(super) struct Cfg {
    pub size: usize,
    pub stop: Stop,
    pub warmup: u64,
    pub pattern: Pattern,
    pub pin: Pin,
    /// CPUs for parent and child under --pin same/split.
    pub cpus: (usize, usize),
    pub corrupt_after: Option<u64>,
}

/// What the parent measured.
pub(super) struct Measured {
    pub count: u64,
    pub secs: f64,
    /// Per round trip, ns: mean, p50, p99, p99.9, max (pingpong only).
    pub lat: Option<[f64; 5]>,
    /// The median over batches of [`BATCH`] round trips of their mean, ns
    /// (pingpong and the floor): how the floor is measured, so rows are
    /// compared with it like for like.
    pub round_trip_ns: Option<f64>,
    /// The parent thread's user+sys time over the measured phase.
    pub cpu_ns: f64,
    pub cpu: i32,
}

/// What one run measured, both processes.
pub(super) struct Sample {
    pub measured: Measured,
    pub child_cpu: i32,
    /// user+sys of both processes per round trip (message).
    pub cpu_ns_per_op: f64,
}

/// The control page shared with the child: its CPU time over the measured
/// phase, the CPU it ended on, and the error that ended it, if any.
pub(super) struct Control(Arc<Mapping>);

impl Control {
    const ERR_LEN: usize = 0;
    const CPU: usize = 4;
    const USER_NS: usize = 8;
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

    /// In the child, at the end: its CPU time since `cpu0` and its CPU.
    pub fn report(&self, cpu0: u64) {
        let used = process_cpu_ns().saturating_sub(cpu0);
        let c = &self.0;
        c.atomic_usize(Self::USER_NS)
            .store(used as usize, Ordering::Release);
        c.atomic_u32(Self::CPU)
            .store(current_cpu() as u32, Ordering::Release);
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
pub(super) struct Shared {
    pub abort: Abort,
    pub done: AtomicBool,
    pub progress: AtomicU64,
    /// When the measured phase began (after the warmup), for the bar.
    pub measuring: OnceLock<Instant>,
    reason: AtomicU32,
}

/// What a run needs from its caller besides the two sides.
pub(super) struct Env<'a> {
    pub cfg: &'a Cfg,
    pub cancel: &'a Cancel,
    pub bar: Option<&'a indicatif::ProgressBar>,
}

/// Fork; the child runs `child`, the parent `parent` on `end` with the
/// watchdog beside it. `end` is the parent's end of the mechanism (and what
/// must outlive the run with it); `child` owns the child's end. The child
/// drops `end` first, and the parent's copy of the child's end goes with
/// the fork's closure. The parent keeps `end` until the child is reaped: a
/// child never sees the parent's end close under it, and pages handed to
/// the kernel by reference (vmsplice) stay as they were sent.
pub(super) fn drive<E, P, C>(
    end: E,
    parent: P,
    child: C,
    wake: Wake,
    abort: Abort,
    env: &Env<'_>,
) -> Result<Sample>
where
    P: FnOnce(&mut E, &Shared) -> Result<Measured>,
    C: FnOnce(&Control) -> Result<()>,
{
    let cfg = env.cfg;
    let control = Control::new()?;
    if cfg.pin != Pin::None {
        set_affinity(cfg.cpus.0).context("cannot pin to a CPU (sched_setaffinity)")?;
    }
    let parent_pid = nix::unistd::getpid();
    std::io::stdout().flush().ok();
    let mut end = Some(end);
    let pid = process::fork(|| {
        drop(end.take());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            child_main(child, cfg, &control, parent_pid)
        }))
        .unwrap_or(4)
    })
    .context("cannot fork")?;
    // Every parent error path from here kills and reaps the child.
    let mut guard = ChildGuard::new(pid);
    let mut end = end.context("the parent's end of the mechanism is gone")?;
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
        wake: &wake,
        env,
    };
    let (result, died_first) = supervise(|shared| parent(&mut end, shared), &watch);
    let status = guard.reap().context("cannot wait for the child process")?;
    let measured = verdict(result, died_first, status, env.cancel, &shared, &control)?;
    let c = &control.0;
    let child_cpu_ns = c.atomic_usize(Control::USER_NS).load(Ordering::Acquire) as f64;
    let ops = measured.count.max(1) as f64;
    Ok(Sample {
        child_cpu: c.atomic_u32(Control::CPU).load(Ordering::Acquire) as i32,
        cpu_ns_per_op: (measured.cpu_ns + child_cpu_ns) / ops,
        measured,
    })
}

/// What the watchdog watches and whom it wakes.
struct Watch<'a> {
    shared: &'a Shared,
    pidfd: &'a OwnedFd,
    pid: Pid,
    wake: &'a Wake,
    env: &'a Env<'a>,
}

/// The parent's side of the run, with the watchdog beside it: what it
/// measured, and whether the child was seen dead right after a failure.
fn supervise<P>(parent: P, w: &Watch<'_>) -> (Result<Measured>, bool)
where
    P: FnOnce(&Shared) -> Result<Measured>,
{
    std::thread::scope(|s| {
        s.spawn(|| watchdog(w));
        let r = parent(w.shared);
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
fn watchdog(w: &Watch<'_>) {
    let shared = w.shared;
    let mut last = (0u64, Instant::now());
    let reason = loop {
        let woke = w.env.cancel.wait(
            Some((w.pidfd.as_fd(), PollFlags::POLLIN)),
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
                if matches!(waitid(Id::Pid(w.pid), flags), Ok(WaitStatus::Exited(_, 0))) {
                    return;
                }
                break Reason::ChildDied;
            }
            Ok(Woke::Canceled) => break Reason::Canceled,
            Ok(Woke::TimedOut) => {}
            Err(_) => break Reason::Stalled,
        }
        let p = shared.progress.load(Ordering::Relaxed);
        if let Some(bar) = w.env.bar {
            let since = shared.measuring.get().copied();
            bar.set_position(bar_position(w.env.cfg.stop, p, since));
        }
        if p != last.0 {
            last = (p, Instant::now());
        } else if last.1.elapsed() >= STALL {
            break Reason::Stalled;
        }
    };
    shared.reason.store(reason as u32, Ordering::SeqCst);
    shared.abort.store(true, Ordering::SeqCst);
    let _ = kill(w.pid, Signal::SIGKILL);
    // One wake-up is not enough: a parent that saw the abort flag unset just
    // before it was set goes to sleep right after it (a futex wait on a word
    // the dead child will never change), and would sleep forever. So wake it
    // until its loop has ended.
    loop {
        (w.wake.0)();
        if shared.done.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The child's whole life after fork: die with the parent, take its CPU,
/// run its side, and leave its error on the control page.
fn child_main<C>(child: C, cfg: &Cfg, control: &Control, parent: Pid) -> i32
where
    C: FnOnce(&Control) -> Result<()>,
{
    // The parent's handlers would write into the parent's signal pipe; the
    // child dies of SIGINT/SIGTERM instead, and with its parent.
    if process::child_setup(parent).is_err() {
        return 5;
    }
    if cfg.pin == Pin::Split && set_affinity(cfg.cpus.1).is_err() {
        control.set_error("cannot pin to a CPU (sched_setaffinity)");
        return 3;
    }
    match child(control) {
        Ok(()) => 0,
        Err(e) => {
            control.set_error(&format!("{e:#}"));
            3
        }
    }
}
