//! The one send loop of the message clients: a POSIX queue, a System V
//! queue and a FIFO are each a [`Sink`], and [`send_all`] sends the run's
//! messages into it, one `sent` line each. A client that waits on a full
//! queue says so once on stderr, after about a second, so it does not look
//! hung.

use std::io::Write as _;
use std::os::fd::BorrowedFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::error::fail_with_hint;
use crate::output::{Escaped, Out};
use crate::record::Record;
use crate::spec::Send;

use super::Wait;

/// How long a client waits on a full queue before it says so.
pub const NOTE_AFTER: Duration = Duration::from_secs(1);

/// Wait for room on `fd` (POLLOUT) as `wait` allows, its limit ending at
/// `deadline`: `false` when no wait is allowed or the time is up, `true`
/// when the descriptor may take more (or a signal woke us: try again).
///
/// # Errors
/// poll(2)'s, but EINTR.
pub fn room(fd: BorrowedFd<'_>, wait: Wait, deadline: Option<Instant>) -> Result<bool> {
    let timeout = match (wait, deadline) {
        (Wait::No, _) => return Ok(false),
        (_, Some(end)) => {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
        }
        (_, None) => PollTimeout::NONE,
    };
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    match poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Something a client sends messages into.
pub trait Sink {
    /// Hand `msg` over, waiting for room as `wait` allows: `true` once it
    /// is handed over, `false` when there was no room in time.
    ///
    /// # Errors
    /// The object failed or went away.
    fn send(&mut self, msg: &[u8], wait: Wait) -> Result<bool>;

    /// The full object in words, for the note on stderr: `queue /q is
    /// full (10 of 10)`.
    fn full(&self) -> String;

    /// What failed, for the error's context: `cannot send to queue /q`.
    fn failed(&self) -> String;

    /// The `sent` line of `msg`.
    fn sent<'a>(&'a self, msg: &'a [u8]) -> impl Record + 'a;
}

/// What a message client sends: `count` messages, each the text or
/// `{"count":i}`.
pub struct Messages<'a> {
    pub count: u64,
    text: Option<&'a str>,
}

impl<'a> Messages<'a> {
    pub fn new(send: &'a Send) -> Self {
        Messages {
            count: send.count,
            text: send.text.as_deref(),
        }
    }

    /// The longest message of the run (the text, or the last
    /// `{"count":N}`), so a size limit is checked before anything is sent.
    pub fn longest(&self) -> usize {
        match self.text {
            Some(text) => text.len(),
            None => format!("{{\"count\":{}}}", self.count).len(),
        }
    }

    /// Message `i` (from 1) into `buf`, replacing what it held.
    pub fn write(&self, i: u64, buf: &mut Vec<u8>) {
        buf.clear();
        match self.text {
            Some(text) => buf.extend_from_slice(text.as_bytes()),
            // Writing to a Vec cannot fail.
            None => {
                let _ = write!(buf, "{{\"count\":{i}}}");
            }
        }
    }
}

/// Send the messages of `send` into `sink`, `suffix` after each (a FIFO's
/// line end), printing a `sent` line each and pausing `send.interval`
/// between them.
///
/// # Errors
/// The sink's, with its context; `queue is full` with `--nonblock`.
pub fn send_all<S: Sink>(
    out: &mut Out,
    sink: &mut S,
    send: &Send,
    suffix: &[u8],
) -> Result<ExitCode> {
    let messages = Messages::new(send);
    let mut msg = Vec::with_capacity(messages.longest() + suffix.len());
    let mut noted = false;
    for i in 1..=messages.count {
        messages.write(i, &mut msg);
        msg.extend_from_slice(suffix);
        send_one(out, sink, &msg, send.nonblock, &mut noted).with_context(|| sink.failed())?;
        out.event(&sink.sent(&msg[..msg.len() - suffix.len()]))?;
        if i < messages.count && !send.interval.is_zero() {
            out.flush()?;
            std::thread::sleep(send.interval);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One message: now if there is room; else (unless `nonblock`) after a
/// yield, which lets a receiver on the same CPU drain the queue without a
/// wake-up; else waiting, with the note on stderr once a second has passed
/// (once per run: `noted`).
fn send_one<S: Sink>(
    out: &mut Out,
    sink: &mut S,
    msg: &[u8],
    nonblock: bool,
    noted: &mut bool,
) -> Result<()> {
    if sink.send(msg, Wait::No)? {
        return Ok(());
    }
    if nonblock {
        return Err(fail_with_hint(
            "queue is full",
            "a server (-s) drains it; without --nonblock the client waits for room",
        ));
    }
    let _ = nix::sched::sched_yield();
    if sink.send(msg, Wait::No)? {
        return Ok(());
    }
    // Nothing printed waits behind a wait.
    out.flush()?;
    if !*noted {
        if sink.send(msg, Wait::For(NOTE_AFTER))? {
            return Ok(());
        }
        *noted = true;
        // Like an error line, it never panics: with stderr gone, the
        // client just goes on waiting.
        let _ = writeln!(
            std::io::stderr(),
            "{}: waiting for a reader (Ctrl-C to stop)",
            Escaped(sink.full())
        );
    }
    while !sink.send(msg, Wait::Forever)? {}
    Ok(())
}
