//! Child processes a command forks to run a part of itself (the demos'
//! workers, the pipe's child): each dies with its parent, and a
//! [`Children`] waits for them together with SIGINT and SIGTERM, and kills
//! and reaps whatever still runs when it is dropped. The fork itself and
//! the kill-and-reap guard are `ipc::process`.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::getpid;

use crate::ipc::process::{self, ChildGuard, Pid};
use crate::signal::{Cancel, Wake};

/// The children of a demo. Every child holds the write end of `done`, so the
/// read end reports EOF once all have exited: the parent polls it together
/// with the signal pipe. `Drop` kills and reaps whatever still runs.
pub struct Children {
    guards: Vec<ChildGuard>,
    done: OwnedFd,
}

/// How waiting for the children ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Done,
    Canceled,
}

/// Fork `n` children running `body(i)`; each exits with its return value and
/// never returns into `main`. The caller flushes its output first, or the
/// child's copy of the buffer would be lost (it is never flushed: `_exit`).
pub fn spawn(n: usize, mut body: impl FnMut(usize) -> i32) -> Result<Children> {
    let (done_r, done_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    let parent = getpid();
    let mut children = Children {
        guards: Vec::with_capacity(n),
        done: done_r,
    };
    let mut done_w = Some(done_w);
    for i in 0..n {
        let pid = process::fork(|| {
            // Die with the parent, and let Ctrl-C end a child at once (the
            // parent does the reporting and the cleanup).
            let code = process::child_setup(parent)
                .map(|()| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(i)))
                        .unwrap_or(101)
                })
                .unwrap_or(1);
            drop(done_w.take());
            code
        })
        .context("cannot fork")?;
        children.guards.push(ChildGuard::new(pid));
    }
    drop(done_w);
    Ok(children)
}

impl Children {
    pub fn pid(&self, i: usize) -> Option<Pid> {
        self.guards.get(i).map(ChildGuard::pid)
    }

    /// Wait until every child has exited or a signal arrives, calling
    /// `tick` every `period` meanwhile. A child that fails ends the wait
    /// with its error at once (the others are killed in `Drop`).
    pub fn wait(
        &mut self,
        cancel: &Cancel,
        period: Duration,
        mut tick: impl FnMut() -> Result<()>,
    ) -> Result<Ended> {
        loop {
            if let Some(ended) = self.wait_once(cancel, period)? {
                return Ok(ended);
            }
            tick()?;
        }
    }

    /// One wait of at most `timeout`: `None` when it passed and every child
    /// still runs or has exited successfully.
    pub fn wait_once(&mut self, cancel: &Cancel, timeout: Duration) -> Result<Option<Ended>> {
        match cancel
            .wait(Some((self.done.as_fd(), PollFlags::POLLIN)), Some(timeout))
            .context("cannot wait for the children")?
        {
            Wake::Ready => Ok(Some(if self.reap(true)? {
                Ended::Canceled
            } else {
                Ended::Done
            })),
            Wake::Canceled => Ok(Some(Ended::Canceled)),
            Wake::TimedOut => Ok(if self.reap(false)? {
                Some(Ended::Canceled)
            } else {
                None
            }),
        }
    }

    /// Collect exited children (all of them when `block`); the first failure
    /// is the error. Returns whether a child died of SIGINT or SIGTERM: Ctrl-C
    /// reaches the whole process group, and the children may die before the
    /// parent's own handler has run.
    fn reap(&mut self, block: bool) -> Result<bool> {
        let mut interrupted = false;
        for (i, guard) in self.guards.iter_mut().enumerate() {
            if guard.is_reaped() {
                continue;
            }
            let pid = guard.pid();
            let status = guard
                .wait(block)
                .with_context(|| format!("cannot wait for child {pid}"))?;
            match status {
                None | Some(WaitStatus::Exited(_, 0)) => {}
                Some(WaitStatus::Exited(_, code)) => {
                    bail!("child {i} (pid {pid}) failed with exit status {code}");
                }
                Some(WaitStatus::Signaled(_, Signal::SIGINT | Signal::SIGTERM, _)) => {
                    interrupted = true;
                }
                Some(WaitStatus::Signaled(_, sig, _)) => {
                    bail!("child {i} (pid {pid}) was killed by {sig}");
                }
                Some(_) => {}
            }
        }
        Ok(interrupted)
    }
}
