//! `fifo`: a named pipe. The server creates it with `mkfifo` when missing and
//! prints every line written to it; clients write JSON lines.
//!
//! The server opens the FIFO read-write: it is then a writer itself, so the
//! read end never sees EOF when the last client closes, and writers can come
//! and go (opening read-only would need a reopen after every EOF). Each line
//! is one `write`, atomic up to PIPE_BUF (4096 bytes on Linux), so lines from
//! concurrent writers never interleave.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
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
        "choose another path with -p; the tool never replaces or follows anything that is not a FIFO",
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
                    "start the server first: examples-ipc fifo -s -p {}",
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
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match nix::unistd::read(fd.as_fd(), &mut buf) {
            Ok(0) => bail!(
                "FIFO {} reported end of file while the server holds it open",
                path.display()
            ),
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                let mut start = 0;
                while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
                    let line = &pending[start..start + nl];
                    start += nl + 1;
                    if print_line(&mut server, line)? == Flow::Done {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                pending.drain(..start);
                if pending.len() >= MAX_LINE {
                    let line = std::mem::take(&mut pending);
                    if print_line(&mut server, &line)? == Flow::Done {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            Err(Errno::EAGAIN) => match server.wait(Some((fd.as_fd(), PollFlags::POLLIN)), None)? {
                Waited::Ready | Waited::Tick => {}
                Waited::Canceled => return server.canceled(),
            },
            Err(Errno::EINTR) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read FIFO {}", path.display()));
            }
        }
    }
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
                "start the server first: examples-ipc fifo -s -p {}",
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
