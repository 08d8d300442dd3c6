//! The loops of every server and client: the start line, counted event
//! lines, `--count`, `--timeout` and a clean `canceled.` on SIGINT/SIGTERM
//! ([`Server`]); `watch` for the servers that poll an object (shm, sem,
//! memfd); one message loop over a [`recv::Source`] (POSIX queue, System V
//! queue, FIFO) and one send loop over a [`send::Sink`] for their clients.

pub mod recv;
pub mod sem;
pub mod send;

use std::os::fd::BorrowedFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::poll::PollFlags;

use crate::hexdump;
use crate::output::Out;
use crate::record::{Memory, MemoryDiff, Record, SemStart, TextField, Value};
use crate::signal::{Cancel, Interrupter, Wake};
use crate::spec::{Serve, Watch};
use crate::sys::secs;

/// Changed ranges closer than this are one in a `--diff` line: one line of
/// a hexdump.
pub const DIFF_GAP: usize = crate::hexdump::WIDTH;

/// Whether the server goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `--count` is reached: exit 0.
    Done,
}

/// How long a send may wait for room, or a receive for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Not at all.
    No,
    /// At most this long.
    For(Duration),
    /// Until it can go on (or a signal ends it).
    Forever,
}

impl Wait {
    /// When a wait with a limit ends, started now.
    pub fn deadline(self) -> Option<Instant> {
        match self {
            Wait::For(d) => Some(Instant::now() + d),
            Wait::No | Wait::Forever => None,
        }
    }
}

/// What a server's wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The descriptor is ready.
    Ready,
    /// The requested tick passed: time to poll the object again.
    Tick,
    /// SIGINT or SIGTERM: the caller returns `server.canceled()`.
    Canceled,
}

pub struct Server<'o> {
    pub out: &'o mut Out,
    cancel: Cancel,
    count: Option<u64>,
    idle: Option<Duration>,
    events: u64,
    last_event: Instant,
}

impl<'o> Server<'o> {
    /// Install the signal handlers before the object is created, so a
    /// SIGTERM that arrives at any point after this ends the server cleanly.
    pub fn new(out: &'o mut Out, serve: &Serve) -> Result<Self> {
        let cancel = Cancel::install().context("cannot install signal handlers")?;
        Ok(Server {
            out,
            cancel,
            count: serve.count,
            idle: serve.timeout,
            events: 0,
            last_event: Instant::now(),
        })
    }

    /// The start line: not an event, never counted.
    pub fn start(&mut self, start: &impl Record) -> Result<Flow> {
        self.out.event(start)?;
        self.out.flush()?;
        self.last_event = Instant::now();
        Ok(self.flow())
    }

    /// One event line, handed to the kernel (one `write`) before this
    /// returns: a server takes its next message only after the last one is
    /// out, so `kill -9` loses at most the one in flight. `Done` once
    /// `--count` lines are printed.
    pub fn event(&mut self, event: &impl Record) -> Result<Flow> {
        self.out.event(event)?;
        self.out.flush()?;
        self.events += 1;
        // Only --timeout reads it: no clock read per message without one.
        if self.idle.is_some() {
            self.last_event = Instant::now();
        }
        Ok(self.flow())
    }

    fn flow(&self) -> Flow {
        match self.count {
            Some(n) if self.events >= n => Flow::Done,
            _ => Flow::Continue,
        }
    }

    /// Flush, then wait for `fd` (if any), a tick of `tick` (if any), or a
    /// signal. Fails with the `--timeout` error when no event came in time.
    pub fn wait(
        &mut self,
        fd: Option<(BorrowedFd<'_>, PollFlags)>,
        tick: Option<Duration>,
    ) -> Result<Waited> {
        self.out.flush()?;
        let remaining = self.idle_left();
        let limit = match (tick, remaining) {
            (Some(t), Some(r)) => Some(t.min(r)),
            (t, r) => t.or(r),
        };
        match self.cancel.wait(fd, limit).context("cannot wait")? {
            Wake::Ready => Ok(Waited::Ready),
            Wake::Canceled => Ok(Waited::Canceled),
            Wake::TimedOut => {
                self.check_idle()?;
                Ok(Waited::Tick)
            }
        }
    }

    /// How long the server may still wait for an event under `--timeout`
    /// (None: no limit).
    pub fn idle_left(&self) -> Option<Duration> {
        self.idle
            .map(|idle| idle.saturating_sub(self.last_event.elapsed()))
    }

    /// An [`Interrupter`] of the calling thread, for a server that blocks
    /// in a call it cannot poll: SIGINT and SIGTERM end that call while it
    /// lives.
    pub fn interrupter(&self) -> Result<Interrupter> {
        self.cancel
            .interrupter()
            .context("cannot start the signal watcher")
    }

    /// The `--timeout` error once the server has been idle too long.
    pub fn check_idle(&self) -> Result<()> {
        if let Some(idle) = self.idle {
            if self.last_event.elapsed() >= idle {
                bail!("timed out: no event within {} s (--timeout)", secs(idle));
            }
        }
        Ok(())
    }

    /// The loop of the servers that poll (shm and sem): every `interval`,
    /// `read` the state, which fails when the object went away under us,
    /// and print it with `event` when it changed, or every time with
    /// `every_tick`. Ends at --count, a signal, --timeout or a failed read.
    pub fn watch<T: PartialEq>(
        &mut self,
        interval: Duration,
        every_tick: bool,
        mut read: impl FnMut() -> Result<T>,
        mut event: impl FnMut(&mut Self, &T) -> Result<Flow>,
    ) -> Result<ExitCode> {
        let mut last: Option<T> = None;
        loop {
            let now = read()?;
            if every_tick || last.as_ref() != Some(&now) {
                if event(self, &now)? == Flow::Done {
                    return Ok(ExitCode::SUCCESS);
                }
                last = Some(now);
            }
            if self.wait(None, Some(interval))? == Waited::Canceled {
                return self.canceled();
            }
        }
    }

    /// `watch` for a segment's text: one `memory` event per print.
    pub fn watch_text(
        &mut self,
        interval: Duration,
        on_change: bool,
        read: impl FnMut() -> Result<Vec<u8>>,
    ) -> Result<ExitCode> {
        self.watch(interval, !on_change, read, |server, text| {
            server.event(&Memory {
                text: TextField(text),
            })
        })
    }

    /// A buffer of `len` zero bytes for `--diff`'s copy of a whole segment,
    /// or an error when it cannot be had: a sparse segment (`ftruncate` to
    /// 1 TiB costs nothing) must not abort the server on allocation.
    ///
    /// # Errors
    /// The segment is too large to hold in memory.
    pub fn segment_copy(len: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        if buf.try_reserve_exact(len).is_err() {
            bail!(
                "the segment's {len} bytes cannot be held in memory, twice, to compare them \
                 (--diff); watch it without --diff, or --dump a range of it"
            );
        }
        buf.resize(len, 0);
        Ok(buf)
    }

    /// A segment's watch: [`Server::watch_text`] of `read(false)`, the text;
    /// or with `--diff` of `read(true)`, all of its bytes, printed when any
    /// of them changed, as the text and the byte ranges that changed since
    /// the last print (ranges less than [`DIFF_GAP`] apart merged).
    pub fn watch_segment(
        &mut self,
        watch: &Watch,
        mut read: impl FnMut(bool) -> Result<Vec<u8>>,
    ) -> Result<ExitCode> {
        if !watch.diff {
            return self.watch_text(watch.interval, watch.on_change, || read(false));
        }
        let mut last: Option<Vec<u8>> = None;
        self.watch(
            watch.interval,
            false,
            || read(true),
            |server, bytes| {
                let changed = last
                    .as_deref()
                    .map(|old| hexdump::changed_ranges(old, bytes, DIFF_GAP));
                let text = &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())];
                let flow = server.event(&MemoryDiff {
                    text: TextField(text),
                    changed,
                })?;
                let mut copy = Self::segment_copy(bytes.len())?;
                copy.copy_from_slice(bytes);
                last = Some(copy);
                Ok(flow)
            },
        )
    }

    /// A semaphore server of either family: its start line, then
    /// [`Server::watch_value`] at the start's interval.
    pub fn serve_value(
        &mut self,
        start: &SemStart<'_>,
        read: impl FnMut() -> Result<i64>,
    ) -> Result<ExitCode> {
        if self.start(start)? == Flow::Done {
            return Ok(ExitCode::SUCCESS);
        }
        self.watch_value(start.interval, read)
    }

    /// `watch` for a semaphore's value: `semaphore: N` when it changes.
    pub fn watch_value(
        &mut self,
        interval: Duration,
        read: impl FnMut() -> Result<i64>,
    ) -> Result<ExitCode> {
        self.watch(interval, false, read, |server, value| {
            server.event(&Value { value: *value })
        })
    }

    /// Print `canceled.` and exit 0.
    pub fn canceled(&mut self) -> Result<ExitCode> {
        self.out.canceled()?;
        Ok(ExitCode::SUCCESS)
    }
}
