//! The two sides of a round-trip (pingpong) or one-way (stream) run over
//! a [`Link`], every message verified.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use super::drive::{BATCH, Cfg, Control, Env, Measured, Sample, Shared, Stop, drive, median};
use super::link::{self, Abort, Link, ShmKind, Wake};
use super::msg::{STOP, SYNC, Stamper, fill, seq_of, set_seq, verify};
use super::os::{current_cpu, process_cpu_ns, thread_cpu_ns};
use super::{Mech, Pattern};
use crate::ipc::cpu::ticks;

/// Set up mechanism `m` and measure it; `tag` makes its names unique
/// within this process.
pub(super) fn measure(m: Mech, env: &Env<'_>, tag: usize) -> Result<Sample> {
    let cfg = env.cfg;
    let abort: Abort = Arc::new(AtomicBool::new(false));
    let tag = format!("{tag}");
    let stream = cfg.pattern == Pattern::Stream;
    let slots = if stream {
        (1_048_576 / cfg.size).clamp(4, 1024)
    } else {
        1
    };
    let none = || Wake(Box::new(|| {}));
    match m {
        Mech::Pipe => {
            let (p, c) = link::pipes(&abort)?;
            run(p, c, none(), abort, env)
        }
        Mech::Vmsplice => {
            let (p, c) = link::vmsplice_pipes(&abort)?;
            run(p, c, none(), abort, env)
        }
        Mech::Fifo => {
            let (p, c) = link::fifos(&abort, &tag)?;
            run(p, c, none(), abort, env)
        }
        Mech::Unix => {
            let (p, c) = link::unix_pair(&abort)?;
            run(p, c, none(), abort, env)
        }
        Mech::UnixDgram => {
            let (p, c, w) = link::unix_dgram(&abort)?;
            run(p, c, w, abort, env)
        }
        Mech::Tcp => {
            let (p, c) = link::tcp(&abort)?;
            run(p, c, none(), abort, env)
        }
        Mech::PosixMsq => {
            let (p, c, w) = link::posix_queues(&abort, &tag, cfg.size)?;
            run(p, c, w, abort, env)
        }
        Mech::SysvMsq => {
            // `_q` removes the queue when this arm ends, whatever happened.
            let (p, c, w, _q) = link::sysv_queue(&abort, cfg.size)?;
            run(p, c, w, abort, env)
        }
        Mech::ShmSpin | Mech::ShmFutex | Mech::ShmSem | Mech::Eventfd => {
            let kind = match m {
                Mech::ShmSpin => ShmKind::Spin,
                Mech::ShmFutex => ShmKind::Futex,
                Mech::ShmSem => ShmKind::Sem,
                _ => ShmKind::EventFd,
            };
            let (p, c, w) = link::shm(&abort, kind, &tag, cfg.size, slots)?;
            run(p, c, w, abort, env)
        }
    }
}

/// The parent's end of a link run: the link and the parent's message
/// buffers, which live as long as the link.
struct End<L> {
    link: L,
    msg: Vec<u8>,
    /// The next message, stamped while the child answers the last one.
    next: Vec<u8>,
    back: Vec<u8>,
}

/// One run over a link: the parent's end `p`, the child's end `c`.
fn run<L: Link>(p: L, mut c: L, wake: Wake, abort: Abort, env: &Env<'_>) -> Result<Sample> {
    let cfg = env.cfg;
    let end = End {
        link: p,
        msg: vec![0u8; cfg.size],
        next: vec![0u8; cfg.size],
        back: vec![0u8; cfg.size],
    };
    let parent = |end: &mut End<L>, shared: &Shared| match cfg.pattern {
        Pattern::Pingpong => parent_pingpong(end, cfg, shared),
        Pattern::Stream => parent_stream(end, cfg, shared),
    };
    let child = move |control: &Control| match cfg.pattern {
        Pattern::Pingpong => child_pingpong(&mut c, cfg, control),
        Pattern::Stream => child_stream(&mut c, cfg, control),
    };
    drive(end, parent, child, wake, abort, env)
}

fn parent_pingpong<L: Link>(end: &mut End<L>, cfg: &Cfg, shared: &Shared) -> Result<Measured> {
    let End {
        link,
        msg,
        next,
        back,
    } = end;
    fill(msg);
    let stamper = Stamper::new(msg);
    next.copy_from_slice(msg);
    let mut seq = 0u64;
    for _ in 0..cfg.warmup {
        round(link, &stamper, msg, back, seq)?;
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
    let mut clock = Ticks::start()?;
    let mut n = 0u64;
    // The next message goes out as soon as the reply is in: it was
    // stamped while the child worked, as the clock, the histogram and the
    // reply's verification are. Two buffers take turns, and one is stamped
    // again only after the reply to it came (vmsplice lends its pages).
    stamper.stamp(msg, seq);
    link.send(msg)
        .with_context(|| format!("round trip {seq}: cannot send"))?;
    stamper.stamp(next, seq + 1);
    loop {
        link.recv(back)
            .with_context(|| format!("round trip {seq}: cannot receive the reply"))?;
        n += 1;
        let finished = n >= count || (n % 64 == 0 && start.elapsed() >= time);
        if !finished {
            link.send(next)
                .with_context(|| format!("round trip {}: cannot send", seq + 1))?;
            std::mem::swap(msg, next);
            stamper.stamp(next, seq + 2);
        }
        clock.lap(n);
        verify(back, !seq).with_context(|| format!("round trip {seq}: the reply is wrong"))?;
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
    stamper.stamp(next, STOP);
    link.send(next).context("cannot send the stop message")?;
    let (lat, round_trip_ns) = clock.figures(t1, n, elapsed);
    Ok(Measured {
        count: n,
        secs: elapsed.as_secs_f64(),
        lat: Some(lat),
        round_trip_ns,
        cpu_ns,
        cpu: current_cpu(),
    })
}

/// The clock of a pingpong: a tick count per round trip into a histogram,
/// and batches of [`BATCH`] round trips, scaled to ns at the end by the
/// wall-clock time.
struct Ticks {
    hist: Histogram<u64>,
    t0: u64,
    last: u64,
    batch_start: u64,
    batches: Vec<f64>,
}

impl Ticks {
    fn start() -> Result<Ticks> {
        let hist = Histogram::<u64>::new_with_bounds(1, u64::MAX / 4, 3).context("histogram")?;
        let t0 = ticks();
        Ok(Ticks {
            hist,
            t0,
            last: t0,
            batch_start: t0,
            batches: Vec::new(),
        })
    }

    /// Round trip `n` (from 1) is done.
    #[inline]
    fn lap(&mut self, n: u64) {
        let now = ticks();
        self.hist.saturating_record(now.wrapping_sub(self.last));
        self.last = now;
        if n % BATCH == 0 {
            let batch = now.wrapping_sub(self.batch_start) as f64 / BATCH as f64;
            self.batches.push(batch);
            self.batch_start = now;
        }
    }

    /// Mean, p50, p99, p99.9 and max of the `n` round trips, and the median
    /// batch, in ns; `t1` is the tick count at `elapsed`.
    fn figures(mut self, t1: u64, n: u64, elapsed: Duration) -> ([f64; 5], Option<f64>) {
        let ns_per_tick = elapsed.as_nanos() as f64 / t1.wrapping_sub(self.t0).max(1) as f64;
        if self.batches.is_empty() {
            // Fewer round trips than a batch: they are the batch.
            let all = self.last.wrapping_sub(self.t0) as f64 / n.max(1) as f64;
            self.batches.push(all);
        }
        let hist = &self.hist;
        let q = |x: f64| hist.value_at_quantile(x) as f64 * ns_per_tick;
        let lat = [
            hist.mean() * ns_per_tick,
            q(0.5),
            q(0.99),
            q(0.999),
            hist.max() as f64 * ns_per_tick,
        ];
        let batches = self.batches.iter().map(|t| t * ns_per_tick).collect();
        (lat, median(batches))
    }
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

fn parent_stream<L: Link>(end: &mut End<L>, cfg: &Cfg, shared: &Shared) -> Result<Measured> {
    let End {
        link, msg, back, ..
    } = end;
    fill(msg);
    let stamper = Stamper::new(msg);
    let mut seq = 0u64;
    let mut sync = |link: &mut L, msg: &mut [u8], what: u64| -> Result<()> {
        stamper.stamp(msg, what);
        link.send(msg).context("cannot send a control message")?;
        link.recv(back)
            .context("cannot receive the child's acknowledgement")?;
        verify(back, !what)
            .map(drop)
            .context("the acknowledgement is wrong")
    };
    for _ in 0..cfg.warmup {
        stamper.stamp(msg, seq);
        link.send(msg)
            .with_context(|| format!("message {seq}: cannot send"))?;
        seq += 1;
    }
    sync(link, msg, SYNC)?;
    // For the bar; set before the clocks start, outside the measured span.
    let _ = shared.measuring.set(Instant::now());
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        stamper.stamp(msg, seq);
        link.send(msg)
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
    sync(link, msg, STOP)?;
    let secs = start.elapsed().as_secs_f64();
    let cpu_ns = thread_cpu_ns() - cpu0;
    shared.done.store(true, Ordering::SeqCst);
    Ok(Measured {
        count: n,
        secs,
        lat: None,
        round_trip_ns: None,
        cpu_ns,
        cpu: current_cpu(),
    })
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
        // carries the body unchanged, so the parent checks it too. The
        // buffer is only read after it went out: vmsplice lent its pages.
        set_seq(&mut buf, !seq);
        if cfg.corrupt_after.is_some_and(|n| expect >= n) {
            // Test hook: check the message, then flip a byte of the reply
            // only, so the parent's check must catch it.
            verify(&buf, !seq)
                .with_context(|| format!("round trip {expect}: the message is wrong"))?;
            let last = buf.len() - 1;
            buf[last] ^= 0x20;
            link.send(&buf)
                .with_context(|| format!("round trip {expect}: cannot reply"))?;
            expect += 1;
            continue;
        }
        link.send(&buf)
            .with_context(|| format!("round trip {expect}: cannot reply"))?;
        verify(&buf, !seq).with_context(|| format!("round trip {expect}: the message is wrong"))?;
        expect += 1;
    }
    control.report(cpu0);
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
                control.report(cpu0);
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
