//! The text a shm client writes: `-m TEXT`, or one line of standard input,
//! refused when it does not fit the segment with its NUL terminator. Shared
//! by `posix shm`, `sysv shm` and `demo memfd`.

use std::io::{self, BufRead, IsTerminal, Read, Write};

use anyhow::{Context, Result};

use crate::error::fail_with_hint;

/// The client's text for a segment of `size` bytes: `-m TEXT`, or one line
/// of standard input. Text that does not fit with its NUL is refused, and
/// standard input is read only as far as the segment could hold plus a line
/// end (`size + 1` bytes): an endless input such as `< /dev/zero` is refused
/// at once instead of filling memory.
pub fn client_text(message: Option<&str>, size: u64, what: &str) -> Result<Vec<u8>> {
    let text = match message {
        Some(text) => text.as_bytes().to_vec(),
        None => match stdin_line(size.saturating_add(1))? {
            Some(line) => line,
            None => {
                return Err(does_not_fit(format_args!("at least {size}"), size))
                    .with_context(|| format!("cannot write to segment {what}"));
            }
        },
    };
    if text.len() as u64 >= size {
        return Err(does_not_fit(text.len(), size))
            .with_context(|| format!("cannot write to segment {what}"));
    }
    Ok(text)
}

/// One line of standard input without its line end, prompting on a
/// terminal; `None` when `limit` bytes came without a line end.
fn stdin_line(limit: u64) -> Result<Option<Vec<u8>>> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        let mut stdout = io::stdout();
        stdout.write_all(b"Please enter something: ")?;
        stdout.flush()?;
    }
    let mut line = Vec::new();
    let n = stdin
        .lock()
        .take(limit)
        .read_until(b'\n', &mut line)
        .context("cannot read standard input")?;
    if n == 0 {
        return Err(fail_with_hint(
            "no text: standard input ended before a line",
            "give -m TEXT, or one line on standard input",
        ));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if n as u64 == limit {
        return Ok(None);
    }
    Ok(Some(line))
}

/// The refusal of a text of `len` bytes (a number, or "at least N").
fn does_not_fit(len: impl std::fmt::Display, size: u64) -> anyhow::Error {
    fail_with_hint(
        format!(
            "the text does not fit: it is {len} bytes but the segment is {size} bytes ({} usable: one byte is the NUL terminator); nothing was written",
            size.saturating_sub(1)
        ),
        "write less, or remove the segment and create it with a larger --size",
    )
}
