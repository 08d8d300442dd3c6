//! `fifo`: a named pipe. The server creates it with `mkfifo` when missing and
//! prints every line written to it; clients write JSON lines.
//!
//! The server opens the FIFO read-write: it is then a writer itself, so the
//! read end never sees EOF when the last client closes, and writers can come
//! and go (opening read-only would need a reopen after every EOF). Each line
//! is one `write`, atomic up to PIPE_BUF (4096 bytes on Linux), so lines from
//! concurrent writers never interleave.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, SpliceFFlags, tee};
use nix::poll::PollFlags;
use serde_json::json;

use crate::cli::FifoArgs;
use crate::error::{fail_with_hint, usage};
use crate::ipc::fifo::{self, End, Fifo, Found, OpenFifoError};
use crate::output::{Escaped, Out, Payload};
use crate::serve::{Flow, Messages, Server, Waited};

/// Longest line the server keeps whole; a longer one is printed in pieces.
const MAX_LINE: usize = 64 * 1024;

pub fn run(args: &FifoArgs, out: &mut Out) -> Result<ExitCode> {
    let path = args.path.clone().unwrap_or_else(default_path);
    if args.mode.server {
        server(args, &path, out)
    } else if args.mode.clean {
        clean(&path, out)
    } else {
        client(args, &path, out)
    }
}

/// $XDG_RUNTIME_DIR is the user's own (mode 0700), where nobody else can
/// plant a FIFO for us; the shared temp dir is the fallback.
fn default_path() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir())
        .unwrap_or_else(std::env::temp_dir)
        .join("examples-ipc.fifo")
}

fn look(path: &Path) -> Result<Found> {
    fifo::look(path).with_context(|| format!("cannot look at {}", path.display()))
}

fn not_a_fifo(path: &Path, what: &str) -> anyhow::Error {
    fail_with_hint(
        format!("{} is {what}, not a FIFO", path.display()),
        "choose another path with --path; the tool never replaces or follows anything that is not a FIFO",
    )
}

/// Open the FIFO at `path` (`Fifo::open`: never through a symlink, and only
/// what is a FIFO on the open descriptor), with the contract's errors.
fn open_fifo(path: &Path, end: End) -> Result<Fifo, anyhow::Error> {
    Fifo::open(path, end)
        .map_err(|e| match e {
            OpenFifoError::Os(Errno::ELOOP) => not_a_fifo(path, "a symbolic link"),
            OpenFifoError::Os(Errno::ENXIO) => fail_with_hint(
                "no server is reading it",
                format!(
                    "start the server first: examples-ipc fifo -s --path {}",
                    path.display()
                ),
            ),
            OpenFifoError::Os(e) => e.into(),
            OpenFifoError::NotAFifo(what) => not_a_fifo(path, what),
        })
        .with_context(|| format!("cannot open FIFO {}", path.display()))
}

fn server(args: &FifoArgs, path: &Path, out: &mut Out) -> Result<ExitCode> {
    let mut server = Server::new(out, &args.serve)?;
    let created = match look(path)? {
        Found::Fifo => false,
        Found::Other(what) => {
            return Err(not_a_fifo(path, what))
                .with_context(|| format!("cannot serve FIFO {}", path.display()));
        }
        // Someone may make it between our lstat and mkfifo (`false`): open
        // checks what it is.
        Found::Missing => fifo::create(path, args.create.mode.bits())
            .with_context(|| format!("cannot create FIFO {}", path.display()))?,
    };
    let fd = open_fifo(path, End::ReadWrite)?;
    let verb = if created { "created" } else { "opened" };
    let flow = server.start(
        format_args!(
            "fifo {}: {verb}; waiting for lines",
            Escaped(path.display())
        ),
        |f| {
            f.insert("mechanism".into(), "fifo".into());
            f.insert("path".into(), path.display().to_string().into());
            f.insert("created".into(), created.into());
        },
    )?;
    if flow == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    let peek = Peek::new()?;
    let mut peeked = vec![0u8; PEEK_MAX];
    let mut taken = vec![0u8; PEEK_MAX];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let avail = match peek.copy(fd.as_fd(), &mut peeked) {
            Ok(0) => bail!(
                "FIFO {} reported end of file while the server holds it open",
                path.display()
            ),
            Ok(n) => n,
            Err(Errno::EAGAIN) => {
                match server.wait(Some((fd.as_fd(), PollFlags::POLLIN)), None)? {
                    Waited::Ready | Waited::Tick => {}
                    Waited::Canceled => return server.canceled(),
                }
                continue;
            }
            Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read FIFO {}", path.display()));
            }
        };
        // Take the queued bytes one line at a time, each printed before the
        // next is taken; an unfinished line is taken whole and waits in
        // `pending` for its end.
        let mut at = 0;
        while at < avail {
            let want = peeked[at..avail]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(avail - at, |nl| nl + 1);
            let got = match nix::unistd::read(fd.as_fd(), &mut taken[..want]) {
                Ok(n) => n,
                // Another reader took them first: peek again.
                Err(Errno::EAGAIN | Errno::EINTR) => break,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read FIFO {}", path.display()));
                }
            };
            pending.extend_from_slice(&taken[..got]);
            if print_lines(&mut server, &mut pending)? == Flow::Done {
                return Ok(ExitCode::SUCCESS);
            }
            if got < want {
                break;
            }
            at += want;
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

/// Print and remove each complete line of `pending`, and what is left when
/// it grew to MAX_LINE without one.
fn print_lines(server: &mut Server<'_>, pending: &mut Vec<u8>) -> Result<Flow> {
    let mut start = 0;
    let mut flow = Flow::Continue;
    while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
        let line = &pending[start..start + nl];
        start += nl + 1;
        flow = print_line(server, line)?;
        if flow == Flow::Done {
            break;
        }
    }
    pending.drain(..start);
    if flow == Flow::Continue && pending.len() >= MAX_LINE {
        let line = std::mem::take(pending);
        flow = print_line(server, &line)?;
    }
    Ok(flow)
}

fn print_line(server: &mut Server<'_>, line: &[u8]) -> Result<Flow> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let payload = Payload(line);
    server.event("message", payload, |f| {
        f.insert("size".into(), line.len().into());
        payload.insert_into(f);
    })
}

fn client(args: &FifoArgs, path: &Path, out: &mut Out) -> Result<ExitCode> {
    if let Some(text) = &args.message {
        if text.contains('\n') {
            return Err(usage(
                "a FIFO message is one line: --message cannot contain a newline",
            ));
        }
    }
    if let Found::Missing = look(path)? {
        return Err(fail_with_hint(
            "no such FIFO",
            format!(
                "start the server first: examples-ipc fifo -s --path {}",
                path.display()
            ),
        ))
        .with_context(|| format!("cannot open FIFO {}", path.display()));
    }
    // O_NONBLOCK makes a missing reader an error (ENXIO) instead of a hang;
    // after that the writes block, as a full pipe should make them.
    let fifo = open_fifo(path, End::Write)?;
    fifo.set_blocking()
        .context("cannot make the FIFO blocking")?;
    let messages = Messages::new(args.serve.count, args.message.as_deref());
    let count = messages.count;
    let interval = args.interval.duration();
    let mut file = fifo.into_file();
    let mut line = Vec::new();
    for i in 1..=count {
        messages.write(i, &mut line);
        line.push(b'\n');
        // One write per line: atomic up to PIPE_BUF.
        file.write_all(&line)
            .map_err(|e| match e.kind() {
                io::ErrorKind::BrokenPipe => anyhow::anyhow!("the server went away"),
                _ => e.into(),
            })
            .with_context(|| format!("cannot write to FIFO {}", path.display()))?;
        let payload = Payload(&line[..line.len() - 1]);
        out.event("sent", format_args!("sent {payload}"), |f| {
            f.insert("size".into(), (line.len() - 1).into());
            payload.insert_into(f);
        })?;
        if i < count && !interval.is_zero() {
            out.flush()?;
            std::thread::sleep(interval);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn clean(path: &Path, out: &mut Out) -> Result<ExitCode> {
    match look(path)? {
        Found::Missing => bail!("cannot remove FIFO {}: no such FIFO", path.display()),
        Found::Other(what) => {
            return Err(not_a_fifo(path, what))
                .with_context(|| format!("cannot remove FIFO {}", path.display()));
        }
        Found::Fifo => {}
    }
    fifo::remove(path).with_context(|| format!("cannot remove FIFO {}", path.display()))?;
    out.record(
        format_args!("removed FIFO {}", Escaped(path.display())),
        || json!({"kind": "removed", "mechanism": "fifo", "path": path.display().to_string()}),
    )?;
    Ok(ExitCode::SUCCESS)
}
