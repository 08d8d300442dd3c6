//! The one message loop of the servers that receive: a POSIX queue, a
//! System V queue and a FIFO are each a [`Source`], and [`receive_all`] takes
//! their messages one at a time, each printed (one write) before the next
//! is taken, so `kill -9` loses at most the one in flight.

use std::os::fd::BorrowedFd;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use nix::poll::PollFlags;

use super::{Flow, Server, Wait, Waited};
use crate::record::Record;

/// How often an idle server with a descriptor looks whether its object is
/// still there ([`Source::check`]).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Something a server takes messages from.
pub trait Source {
    /// Take the next message if there is one. A source with a descriptor
    /// never waits here; one without ([`Source::ready`] is None) waits as
    /// `wait` says, until a message comes or SIGINT/SIGTERM or the limit
    /// ends the wait. `None`: nothing yet.
    ///
    /// # Errors
    /// The object failed or was removed; the server stops with it.
    fn take(&mut self, wait: Wait) -> Result<Option<impl Record + '_>>;

    /// The descriptor that becomes readable when a message comes, or None
    /// for a source that waits in `take` itself.
    fn ready(&self) -> Option<BorrowedFd<'_>>;

    /// Fail when the object was removed under the server (a removal the
    /// source would not notice in `take`). Asked every [`CHECK_EVERY`] of
    /// waiting.
    ///
    /// # Errors
    /// `error::removed_under_server`, or the failure of the look.
    fn check(&self) -> Result<()>;
}

/// Print each message of `source` until `--count`, `--timeout`, a signal or a failure.
///
/// # Errors
/// The source's, and the server's (`--timeout`, a failed write).
pub fn receive_all<S: Source>(server: &mut Server<'_>, source: &mut S) -> Result<ExitCode> {
    // Yield the CPU once before sleeping on an empty source: a sender on
    // the same CPU refills it without the poll wake-up and its two switches.
    let mut yielded = false;
    let mut block = false;
    loop {
        let wait = match (block, server.idle_left()) {
            (false, _) => Wait::No,
            (true, Some(left)) => Wait::For(left),
            (true, None) => Wait::Forever,
        };
        if let Some(event) = source.take(wait)? {
            (yielded, block) = (false, false);
            if server.event(&event)? == Flow::Done {
                return Ok(ExitCode::SUCCESS);
            }
            continue;
        }
        let waited = match source.ready() {
            Some(_) if !yielded => {
                yielded = true;
                let _ = nix::sched::sched_yield();
                continue;
            }
            Some(fd) => {
                yielded = false;
                server.wait(Some((fd, PollFlags::POLLIN)), Some(CHECK_EVERY))?
            }
            // Flush, see whether we were canceled or idle too long (without
            // waiting), then let the next take block: until a message, a
            // signal, or the end of --timeout.
            None => {
                block = true;
                server.wait(None, Some(Duration::ZERO))?
            }
        };
        match waited {
            Waited::Canceled => return server.canceled(),
            Waited::Tick if !block => source.check()?,
            Waited::Ready | Waited::Tick => {}
        }
    }
}
