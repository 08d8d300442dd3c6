//! The semaphore client of either family: take a unit (now, or waiting),
//! or give one back, then the line of what it did.

use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::error::sem_busy;
use crate::output::Out;
use crate::record::Did;
use crate::spec::SemAction;

/// The outcome of taking a unit.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// Value 0 and no wait asked for, or the wait timed out.
    Busy,
}

/// A semaphore as its client uses it, one unit at a time; each error
/// already says what went wrong with this semaphore.
pub trait Unit {
    /// Give one unit back.
    fn give(&self) -> Result<()>;
    /// Take a unit now, or `Busy` at 0.
    fn try_take(&self) -> Result<Take>;
    /// Wait for a unit, at most `timeout` when given (then `Busy`).
    fn take_waiting(&self, timeout: Option<Duration>) -> Result<Take>;
}

/// Do `action` on `sem` (`label` in the error lines), then print `done`'s
/// line: `Busy` is an error with the hint of `sem_busy`.
pub fn client(
    sem: &impl Unit,
    action: SemAction,
    label: &dyn Display,
    out: &mut Out,
    done: impl FnOnce(&mut Out, Did) -> Result<ExitCode>,
) -> Result<ExitCode> {
    let took = match action {
        SemAction::Release => {
            sem.give()
                .with_context(|| format!("cannot give a unit back to {label}"))?;
            return done(out, Did::Released);
        }
        SemAction::Take => sem.try_take()?,
        SemAction::TakeWaiting { timeout } => {
            // What was printed is out before the process blocks.
            out.flush()?;
            sem.take_waiting(timeout)?
        }
    };
    if took == Take::Busy {
        return Err(sem_busy(action)).with_context(|| format!("cannot take a unit of {label}"));
    }
    done(out, Did::Taken)
}
