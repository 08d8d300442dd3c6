//! `pipe`: a parent and its forked child over two anonymous pipes, one each
//! way. Messages are length-prefixed (a u32, little-endian, then the bytes),
//! because a pipe is a byte stream with no message boundaries of its own.
//! The child answers each message in upper case; closing the parent's
//! write end is the child's signal to exit (it reads EOF).

use std::fs::File;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use std::fmt;

use anyhow::{Context, Result, bail};
use nix::fcntl::OFlag;
use serde::Serialize;

use crate::children::{Children, Ended, spawn};
use crate::output::{Out, bytes, escape_bytes};
use crate::signal::Cancel;
use crate::spec::Pipe;

/// Largest message either side accepts: a bad length prefix must not make
/// the reader allocate gigabytes.
const MAX_MESSAGE: usize = 1 << 20;

/// The sample lines `pipe` sends without `-m`.
const SAMPLES: [&str; 3] = [
    "hello",
    "pipes are byte streams",
    "so every message carries its length",
];

pub fn run(args: &Pipe, out: &mut Out) -> Result<ExitCode> {
    let cancel = Cancel::install().context("cannot install signal handlers")?;
    let messages: Vec<&str> = if args.messages.is_empty() {
        SAMPLES.to_vec()
    } else {
        args.messages.iter().map(String::as_str).collect()
    };
    if let Some(m) = messages.iter().find(|m| m.len() > MAX_MESSAGE) {
        return Err(crate::error::usage(format!(
            "a message of {} bytes is larger than the limit of {MAX_MESSAGE} bytes",
            m.len()
        )));
    }
    out.flush()?;
    let (mut children, mut to_child, mut from_child) = start_child()?;
    out.line(&Start {
        mechanism: "pipe",
        parent: std::process::id(),
        child: children.pid(0).map_or(0, |p| p.as_raw()),
    })?;
    out.flush()?;
    for m in &messages {
        let start = Instant::now();
        let reply = send(&mut to_child, m.as_bytes()).and_then(|()| receive(&mut from_child));
        let reply = match reply {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) if cancel.is_canceled() => {
                drop(children);
                out.canceled()?;
                return Ok(ExitCode::SUCCESS);
            }
            Ok(None) => bail!("the child closed its pipe before answering"),
            Err(e) => return Err(e).context("cannot talk to the child"),
        };
        out.event(&Roundtrip {
            sent: escape_bytes(m.as_bytes()),
            reply: escape_bytes(&reply),
            us: start.elapsed().as_micros() as u64,
            bytes: m.len(),
        })?;
        out.flush()?;
    }
    // EOF tells the child to finish.
    drop(to_child);
    match children.wait(&cancel, std::time::Duration::from_millis(100), || Ok(()))? {
        Ended::Canceled => {
            drop(children);
            out.canceled()?;
        }
        Ended::Done => out.line(&Done {
            messages: messages.len(),
        })?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Fork the child with its two pipe ends; the parent's ends: to the child,
/// from the child.
fn start_child() -> Result<(Children, File, File)> {
    let (down_r, down_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    let (up_r, up_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    // The child gets its two ends and closes the parent's copies, or it would
    // hold the write end it reads from and never see EOF.
    let mut parent_ends = Some((down_w, up_r));
    let mut child_ends = Some((down_r, up_w));
    let children = spawn(1, |_| {
        drop(parent_ends.take());
        let Some((r, w)) = child_ends.take() else {
            return 5;
        };
        match child(File::from(r), File::from(w)) {
            Ok(()) => 0,
            Err(_) => 4,
        }
    })?;
    drop(child_ends.take());
    let Some((down_w, up_r)) = parent_ends.take() else {
        bail!("pipe ends went missing")
    };
    Ok((children, File::from(down_w), File::from(up_r)))
}

/// The child: answer every message in upper case until EOF.
fn child(mut from_parent: File, mut to_parent: File) -> io::Result<()> {
    while let Some(msg) = receive(&mut from_parent)? {
        let reply = match std::str::from_utf8(&msg) {
            Ok(s) => s.to_uppercase().into_bytes(),
            Err(_) => msg.to_ascii_uppercase(),
        };
        send(&mut to_parent, &reply)?;
    }
    Ok(())
}

fn send(w: &mut File, msg: &[u8]) -> io::Result<()> {
    let len = u32::try_from(msg.len()).map_err(|_| io::Error::other("message too long"))?;
    let mut frame = Vec::with_capacity(4 + msg.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(msg);
    w.write_all(&frame)
}

/// One message, or `None` at a clean EOF between messages.
fn receive(r: &mut File) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::other(format!(
            "length prefix {len} is above {MAX_MESSAGE}"
        )));
    }
    let mut msg = vec![0u8; len];
    r.read_exact(&mut msg)?;
    Ok(Some(msg))
}

// ---- Records ----

/// `pipe: parent pid 1 and child pid 2, one pipe each way, ...`
#[derive(Serialize)]
struct Start {
    mechanism: &'static str,
    parent: u32,
    child: i32,
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pipe: parent pid {} and child pid {}, one pipe each way, messages framed as u32 length + bytes",
            self.parent, self.child
        )
    }
}

crate::record_kind!(Start, "start");

/// `sent "hello" (5 bytes) -> child replied "HELLO" in 42 us`
#[derive(Serialize)]
struct Roundtrip {
    sent: String,
    reply: String,
    us: u64,
    #[serde(skip)]
    bytes: usize,
}

impl fmt::Display for Roundtrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {:?} ({}) -> child replied {:?} in {} us",
            self.sent,
            bytes(self.bytes),
            self.reply,
            self.us
        )
    }
}

crate::record_kind!(Roundtrip, "roundtrip");

/// The last line: the child read EOF and exited.
#[derive(Serialize)]
struct Done {
    messages: usize,
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("closed the pipe; the child read EOF and exited 0")
    }
}

crate::record_kind!(Done, "done");
