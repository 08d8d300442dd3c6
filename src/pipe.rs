//! `pipe`: a parent and its forked child over two anonymous pipes, one each
//! way. Messages are length-prefixed (a u32, little-endian, then the bytes),
//! because a pipe is a byte stream with no message boundaries of its own.
//! The child answers each message in upper case; closing the parent's
//! write end is the child's signal to exit (it reads EOF).

use std::fs::File;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nix::fcntl::OFlag;
use serde_json::json;

use crate::cli::PipeArgs;
use crate::demo::shared::{Ended, spawn};
use crate::output::{Out, escape_bytes};
use crate::signal::Cancel;

/// Largest message either side accepts: a bad length prefix must not make
/// the reader allocate gigabytes.
const MAX_MESSAGE: usize = 1 << 20;

pub fn run(args: &PipeArgs, out: &mut Out) -> Result<ExitCode> {
    let cancel = Cancel::install().context("cannot install signal handlers")?;
    let messages: Vec<String> = if args.messages.is_empty() {
        vec![
            "hello".into(),
            "pipes are byte streams".into(),
            "so every message carries its length".into(),
        ]
    } else {
        args.messages.clone()
    };
    if let Some(m) = messages.iter().find(|m| m.len() > MAX_MESSAGE) {
        return Err(crate::error::usage(format!(
            "a message of {} bytes is larger than the limit of {MAX_MESSAGE} bytes",
            m.len()
        )));
    }
    let (down_r, down_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    let (up_r, up_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    out.flush()?;
    // The child gets its two ends and closes the parent's copies, or it would
    // hold the write end it reads from and never see EOF.
    let mut parent_ends = Some((down_w, up_r));
    let mut child_ends = Some((down_r, up_w));
    let mut children = spawn(1, |_| {
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
    let (mut to_child, mut from_child) = (File::from(down_w), File::from(up_r));
    let child_pid = children.pid(0).map_or(0, |p| p.as_raw());
    out.record(
        format_args!(
            "pipe: parent pid {} and child pid {child_pid}, one pipe each way, messages framed as u32 length + bytes",
            std::process::id()
        ),
        || json!({"kind": "start", "mechanism": "pipe", "parent": std::process::id(), "child": child_pid}),
    )?;
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
        let took = start.elapsed();
        let (sent, got) = (escape_bytes(m.as_bytes()), escape_bytes(&reply));
        out.event(
            "roundtrip",
            format_args!(
                "sent {:?} ({} bytes) -> child replied {:?} in {} us",
                sent,
                m.len(),
                got,
                took.as_micros()
            ),
            |f| {
                f.insert("sent".into(), sent.clone().into());
                f.insert("reply".into(), got.clone().into());
                f.insert("us".into(), (took.as_micros() as u64).into());
            },
        )?;
        out.flush()?;
    }
    // EOF tells the child to finish.
    drop(to_child);
    match children.wait(&cancel, std::time::Duration::from_millis(100), || Ok(()))? {
        Ended::Canceled => {
            drop(children);
            out.canceled()?;
        }
        Ended::Done => {
            out.record(
                format_args!("closed the pipe; the child read EOF and exited 0"),
                || json!({"kind": "done", "messages": messages.len()}),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
