//! `fifo`: a named pipe. The server creates it with `mkfifo` when missing and
//! prints every line written to it; clients write JSON lines.
//!
//! The server opens the FIFO read-write: it is then a writer itself, so the
//! read end never sees EOF when the last client closes, and writers can come
//! and go (opening read-only would need a reopen after every EOF). Each line
//! is one `write`, atomic up to PIPE_BUF (4096 bytes on Linux), so lines from
//! concurrent writers never interleave.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, SpliceFFlags, tee};
use serde::Serialize;

use super::{About, Channel, Removed, Start, not_a, start_server_first};
use crate::error::{fail_with_hint, removed_under_server};
use crate::guide::{CLIENT, Guide};
use crate::ipc::fifo::{self, End, Fifo, Found, OpenFifoError};
use crate::output::{Escaped, Out};
use crate::record::{Message, Record};
use crate::serve::recv::{Source, receive_all};
use crate::serve::send::{Sink, room, send_all};
use crate::serve::{Flow, Server, Wait};
use crate::spec::{Send, Serve};
use crate::target::FileMode;

/// Longest line the server keeps whole; a longer one is printed in pieces.
const MAX_LINE: usize = 64 * 1024;

/// The FIFO as a [`Channel`].
pub struct FifoChannel;

pub static FIFO: FifoChannel = FifoChannel;

impl Channel for FifoChannel {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn serve(&self, path: &Path, mode: FileMode, serve: &Serve, out: &mut Out) -> Result<ExitCode> {
        let mut server = Server::new(out, serve)?;
        let created = match look(path)? {
            Found::Fifo => false,
            Found::Other(what) => {
                return Err(not_a_fifo(path, what))
                    .with_context(|| format!("cannot serve FIFO {}", path.display()));
            }
            // Someone may make it between our lstat and mkfifo (`false`): open
            // checks what it is.
            Found::Missing => fifo::create(path, mode.bits())
                .with_context(|| format!("cannot create FIFO {}", path.display()))?,
        };
        let fifo = open_fifo(path, End::ReadWrite)?;
        if server.start(&Start::new(&FIFO, path, created, "lines"))? == Flow::Done {
            return Ok(ExitCode::SUCCESS);
        }
        let mut source = Lines {
            fifo,
            path,
            peek: Peek::new()?,
            peeked: vec![0u8; PEEK_MAX],
            at: 0,
            avail: 0,
            taken: vec![0u8; PEEK_MAX],
            pending: Vec::new(),
            printed: 0,
        };
        receive_all(&mut server, &mut source)
    }

    fn send(&self, path: &Path, send: &Send, out: &mut Out) -> Result<ExitCode> {
        if let Found::Missing = look(path)? {
            return Err(fail_with_hint(
                "no such FIFO",
                start_server_first(&FIFO, path),
            ))
            .with_context(|| format!("cannot open FIFO {}", path.display()));
        }
        // O_NONBLOCK makes a missing reader an error (ENXIO) instead of a hang;
        // a full pipe is then waited for with poll.
        let fifo = open_fifo(path, End::Write)?;
        let mut sink = Writer {
            fifo,
            path,
            written: 0,
        };
        send_all(out, &mut sink, send, b"\n")
    }

    fn clean(&self, path: &Path, out: &mut Out) -> Result<ExitCode> {
        match look(path)? {
            Found::Missing => bail!("cannot remove FIFO {}: no such FIFO", path.display()),
            Found::Other(what) => {
                return Err(not_a_fifo(path, what))
                    .with_context(|| format!("cannot remove FIFO {}", path.display()));
            }
            Found::Fifo => {}
        }
        fifo::remove(path).with_context(|| format!("cannot remove FIFO {}", path.display()))?;
        out.line(&Removed::new(&FIFO, path))?;
        Ok(ExitCode::SUCCESS)
    }
}

const ABOUT: About = About {
    name: "fifo",
    what: "FIFO",
    title: "Named pipe (FIFO)",
    file: "examples-ipc.fifo",
    lines: true,
    guide: GUIDE,
    option_help: &[
        (
            "server",
            "Create the FIFO if missing and print every line written to it",
        ),
        (
            "clean",
            "Remove the FIFO (only a FIFO: anything else at PATH is left alone)",
        ),
        (
            "path",
            "Path of the FIFO; the server creates it (mode --mode) when missing. \
             Default: examples-ipc.fifo in $XDG_RUNTIME_DIR (private to the user), \
             else in the temp dir",
        ),
        (
            "message",
            "Client: write TEXT as one line instead of {\"count\":i}: once, or -c N times",
        ),
        (
            "interval",
            "Client: seconds between lines (fractions and 0 allowed)",
        ),
        (
            "count",
            "Server: exit 0 after N lines. Client: write N lines (default 10)",
        ),
        (
            "timeout",
            "Server: exit 1 when no line comes for SECS seconds (fractions allowed)",
        ),
    ],
    failure: "The operation failed: no such FIFO, something else than a FIFO at \
         the path, no permission, or a server's --timeout passed.",
    files: &[(
        "$XDG_RUNTIME_DIR/examples-ipc.fifo",
        "the FIFO without --path; in the temporary directory when XDG_RUNTIME_DIR is unset",
    )],
    man_pages: &["fifo(7)", "mkfifo(3)"],
};

const GUIDE: Guide = Guide {
    modes: &[
        (
            "-s, --server",
            "Create the FIFO if missing; print every line written to it, \
             from any number of writers",
        ),
        (
            CLIENT,
            "Client: write -c N lines (default 10 {\"count\":i}, or -m TEXT), \
             one every --interval",
        ),
        ("--clean", "Remove the FIFO"),
    ],
    examples: &[
        (
            "Terminal 1: create the FIFO and print what is written to it:",
            &["examples-ipc fifo -s"],
        ),
        (
            "Terminal 2: write three lines, no pause:",
            &["examples-ipc fifo -c 3 --interval 0"],
        ),
        (
            "A FIFO at a path of your choice, then remove it:",
            &[
                "examples-ipc fifo -s --path /tmp/my.fifo",
                "examples-ipc fifo --clean --path /tmp/my.fifo",
            ],
        ),
    ],
};

fn look(path: &Path) -> Result<Found> {
    fifo::look(path).with_context(|| format!("cannot look at {}", path.display()))
}

fn not_a_fifo(path: &Path, what: &str) -> anyhow::Error {
    not_a(&FIFO, path, what)
}

/// Open the FIFO at `path` (`Fifo::open`: never through a symlink, and only
/// what is a FIFO on the open descriptor), with the contract's errors.
fn open_fifo(path: &Path, end: End) -> Result<Fifo, anyhow::Error> {
    Fifo::open(path, end)
        .map_err(|e| match e {
            OpenFifoError::Os(Errno::ELOOP) => not_a_fifo(path, "a symbolic link"),
            OpenFifoError::Os(Errno::ENXIO) => {
                fail_with_hint("no server is reading it", start_server_first(&FIFO, path))
            }
            OpenFifoError::Os(e) => e.into(),
            OpenFifoError::NotAFifo(what) => not_a_fifo(path, what),
        })
        .with_context(|| format!("cannot open FIFO {}", path.display()))
}

/// The server's FIFO, taken one line at a time: what was peeked at (`at`
/// of `avail` bytes taken so far), and the line being put together.
struct Lines<'p> {
    fifo: Fifo,
    path: &'p Path,
    peek: Peek,
    peeked: Vec<u8>,
    at: usize,
    avail: usize,
    taken: Vec<u8>,
    pending: Vec<u8>,
    /// Bytes of `pending` printed by the last `take`, dropped by the next.
    printed: usize,
}

impl Lines<'_> {
    fn read_error(&self, e: Errno) -> anyhow::Error {
        anyhow::Error::new(e).context(format!("cannot read FIFO {}", self.path.display()))
    }
}

impl Source for Lines<'_> {
    /// Take the queued bytes one line at a time: each `read` takes up to
    /// and including the next line end seen by the peek; an unfinished line
    /// waits in `pending` for its end.
    fn take(&mut self, _wait: Wait) -> Result<Option<impl Record + '_>> {
        self.pending.drain(..self.printed);
        self.printed = 0;
        loop {
            if self.at >= self.avail {
                match self.peek.copy(self.fifo.as_fd(), &mut self.peeked) {
                    Ok(0) => bail!(
                        "FIFO {} reported end of file while the server holds it open",
                        self.path.display()
                    ),
                    Ok(n) => (self.at, self.avail) = (0, n),
                    Err(Errno::EAGAIN) => return Ok(None),
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(self.read_error(e)),
                }
            }
            let ahead = &self.peeked[self.at..self.avail];
            let want = ahead
                .iter()
                .position(|&b| b == b'\n')
                .map_or(ahead.len(), |nl| nl + 1);
            let got = match nix::unistd::read(self.fifo.as_fd(), &mut self.taken[..want]) {
                Ok(n) => n,
                // Another reader took them first: peek again.
                Err(Errno::EAGAIN | Errno::EINTR) => {
                    self.at = self.avail;
                    continue;
                }
                Err(e) => return Err(self.read_error(e)),
            };
            self.pending.extend_from_slice(&self.taken[..got]);
            self.at = if got < want {
                self.avail
            } else {
                self.at + want
            };
            if let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
                self.printed = nl + 1;
                return Ok(Some(taken(&self.pending[..nl])));
            }
            if self.pending.len() >= MAX_LINE {
                self.printed = self.pending.len();
                return Ok(Some(taken(&self.pending)));
            }
        }
    }

    fn ready(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fifo.as_fd())
    }

    /// Clients open the FIFO by its path: once the path is gone, none can.
    fn check(&self) -> Result<()> {
        match self.fifo.linked() {
            Ok(true) => Ok(()),
            Ok(false) => Err(removed_under_server(
                "FIFO",
                Escaped(self.path.display()),
                "unlink",
            )),
            Err(e) => Err(e).with_context(|| format!("cannot stat FIFO {}", self.path.display())),
        }
    }
}

/// The most the server looks ahead at once: a default pipe's capacity.
const PEEK_MAX: usize = 64 * 1024;

/// Shows what a FIFO holds without taking it: `tee(2)` copies queued bytes
/// into a private pipe and leaves them in the FIFO, so the server can take
/// exactly one line with a `read` of its length. A plain `read` would take
/// everything queued at once, and a `kill -9` would lose all of it.
struct Peek {
    read: OwnedFd,
    write: OwnedFd,
}

impl Peek {
    fn new() -> Result<Peek> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .context("cannot create a pipe")?;
        Ok(Peek { read, write })
    }

    /// Copy up to `buf.len()` bytes queued in `fifo` into `buf`, leaving
    /// them queued: `tee` into the private pipe, then `read` them back out.
    ///
    /// # Errors
    /// EAGAIN when the FIFO is empty; errors of tee(2) and read(2).
    fn copy(&self, fifo: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
        let n = tee(
            fifo,
            &self.write,
            buf.len(),
            SpliceFFlags::SPLICE_F_NONBLOCK,
        )?;
        let mut done = 0;
        while done < n {
            match nix::unistd::read(&self.read, &mut buf[done..n]) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

/// A client's FIFO, and how much of the line being written went out.
struct Writer<'p> {
    fifo: Fifo,
    path: &'p Path,
    written: usize,
}

impl Sink for Writer<'_> {
    /// One `write` per line, atomic up to PIPE_BUF; a longer line may go
    /// out in parts, each waiting for room as a blocking write would.
    fn send(&mut self, line: &[u8], wait: Wait) -> Result<bool> {
        let deadline = wait.deadline();
        loop {
            match nix::unistd::write(self.fifo.as_fd(), &line[self.written..]) {
                Ok(n) => {
                    self.written += n;
                    if self.written == line.len() {
                        self.written = 0;
                        return Ok(true);
                    }
                    continue;
                }
                Err(Errno::EAGAIN) => {}
                Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE) => return Err(anyhow!("the server went away")),
                Err(e) => return Err(e.into()),
            }
            if !room(self.fifo.as_fd(), wait, deadline)? {
                return Ok(false);
            }
        }
    }

    fn full(&self) -> String {
        let path = self.path.display();
        match self.fifo.capacity() {
            Ok(n) => format!("FIFO {path} is full ({n} bytes)"),
            Err(_) => format!("FIFO {path} is full"),
        }
    }

    fn failed(&self) -> String {
        format!("cannot write to FIFO {}", self.path.display())
    }

    fn sent<'a>(&'a self, line: &'a [u8]) -> impl Record + 'a {
        Message::new(true, Line {}, line)
    }
}

// ---- Records ----

/// A line's head: nothing, a FIFO carries bare lines.
#[derive(Serialize)]
struct Line {}

impl fmt::Display for Line {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// A line the server took, without its line end (and a `\r` before it).
fn taken(line: &[u8]) -> Message<'_, Line> {
    Message::new(false, Line {}, line.strip_suffix(b"\r").unwrap_or(line))
}
