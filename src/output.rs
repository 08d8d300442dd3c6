//! Everything printed on stdout: timestamped event lines in text or JSON,
//! and the payload rendering both share.
//!
//! Output is buffered for speed and flushed by the caller: a server after
//! every event line (see `serve::Server::event`), everything else before it
//! blocks, so nothing is held back while a process waits. A flush is one
//! write(2) straight to descriptor 1, without std's own line buffer.

use std::fmt::{self, Display, Write as _};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Local, TimeZone};
use serde_json::{Map, Value};

/// JSON fields of one line, in order.
pub type Fields = Map<String, Value>;

pub struct Out {
    json: bool,
    w: BufWriter<RawStdout>,
    clock: Clock,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Out {
            json,
            w: BufWriter::with_capacity(64 * 1024, RawStdout),
            clock: Clock::default(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// One timestamped line: `HH:MM:SS.ffffff <text>`, or
    /// `{"time":..., "kind": kind, ...fields}` with --json. `fields` runs only
    /// in JSON mode and `text` is formatted only in text mode.
    pub fn event(
        &mut self,
        kind: &str,
        text: impl Display,
        fields: impl FnOnce(&mut Fields),
    ) -> io::Result<()> {
        let now = now();
        if self.json {
            let mut map = Fields::new();
            map.insert("time".into(), self.clock.rfc3339(now).into());
            map.insert("kind".into(), kind.into());
            fields(&mut map);
            serde_json::to_writer(&mut self.w, &map)?;
            self.w.write_all(b"\n")
        } else {
            let stamp = self.clock.hms(now);
            writeln!(self.w, "{stamp} {text}")
        }
    }

    /// A line without a timestamp: `text`, or `value` as one JSON document.
    pub fn record(&mut self, text: impl Display, value: impl FnOnce() -> Value) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.w, &value())?;
            self.w.write_all(b"\n")
        } else {
            writeln!(self.w, "{text}")
        }
    }

    /// An object's attributes (`--stat`): aligned `field  value` lines, or
    /// one JSON object with the same fields.
    pub fn attributes(&mut self, fields: &Fields) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.w, fields)?;
            return self.w.write_all(b"\n");
        }
        let width = fields.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in fields {
            writeln!(self.w, "{key:width$}  {}", Plain(value))?;
        }
        Ok(())
    }

    /// The line of a successful `--clean`.
    pub fn removed(&mut self, mechanism: &str, what: &str, name: impl Display) -> io::Result<()> {
        let name = name.to_string();
        self.record(
            format_args!("removed {what} {name}"),
            || serde_json::json!({"kind": "removed", "mechanism": mechanism, "name": name}),
        )
    }

    /// The last line of a server stopped by SIGINT or SIGTERM.
    pub fn canceled(&mut self) -> io::Result<()> {
        if self.json {
            self.event("canceled", "", |_| {})
        } else {
            self.w.write_all(b"canceled.\n")
        }?;
        self.flush()
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Raw access for tables and prompts.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.w
    }
}

/// Descriptor 1, written with write(2) directly: `Out` is the only buffer,
/// so a flush of whole lines is exactly one system call.
struct RawStdout;

impl Write for RawStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match nix::unistd::write(io::stdout().as_fd(), buf) {
            Ok(n) => Ok(n),
            // As std's Stdout does: with descriptor 1 closed, output is dropped.
            Err(nix::errno::Errno::EBADF) => Ok(buf.len()),
            Err(e) => Err(e.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A JSON value as a text column: strings bare, null as `-`, arrays space-separated.
struct Plain<'a>(&'a Value);

impl Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::String(s) => f.write_str(s),
            Value::Null => f.write_str("-"),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(' ')?;
                    }
                    write!(f, "{}", Plain(item))?;
                }
                Ok(())
            }
            other => write!(f, "{other}"),
        }
    }
}

/// Seconds and microseconds since the epoch.
fn now() -> (i64, u32) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_secs() as i64, since.subsec_micros())
}

/// Local-time formatting through chrono, once per second: the time-zone
/// lookup is the expensive part and only the microseconds change within a
/// second, which matters when a server prints a million lines.
#[derive(Default)]
struct Clock {
    sec: Option<i64>,
    hms: String,
    date_hms: String,
    offset: String,
    buf: String,
}

impl Clock {
    fn refresh(&mut self, sec: i64) {
        if self.sec == Some(sec) {
            return;
        }
        self.sec = Some(sec);
        match Local.timestamp_opt(sec, 0).earliest() {
            Some(t) => {
                self.hms = t.format("%H:%M:%S").to_string();
                self.date_hms = t.format("%Y-%m-%dT%H:%M:%S").to_string();
                self.offset = t.format("%:z").to_string();
            }
            None => {
                self.hms = "??:??:??".into();
                self.date_hms = "????-??-??T??:??:??".into();
                self.offset = "Z".into();
            }
        }
    }

    /// `HH:MM:SS.ffffff`
    fn hms(&mut self, (sec, micros): (i64, u32)) -> &str {
        self.refresh(sec);
        self.buf.clear();
        let _ = write!(self.buf, "{}.{micros:06}", self.hms);
        &self.buf
    }

    /// RFC 3339 with microseconds and the local offset.
    fn rfc3339(&mut self, (sec, micros): (i64, u32)) -> String {
        self.refresh(sec);
        format!("{}.{micros:06}{}", self.date_hms, self.offset)
    }
}

/// A message payload as the contract prints it: JSON compact, anything else
/// as text with invalid or non-printable bytes escaped as `\xNN`. Trailing
/// NUL bytes are dropped first: C senders often count the terminator.
#[derive(Clone, Copy)]
pub struct Payload<'a>(pub &'a [u8]);

impl<'a> Payload<'a> {
    fn trimmed(self) -> &'a [u8] {
        let end = self.0.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        &self.0[..end]
    }

    /// The payload as JSON: `("payload", value)` or `("text", string)`.
    pub fn json_field(self) -> (&'static str, Value) {
        let bytes = self.trimmed();
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) if !bytes.is_empty() => ("payload", value),
            _ => ("text", Value::String(escape_bytes(bytes))),
        }
    }

    /// Insert the payload into a JSON line.
    pub fn insert_into(self, map: &mut Fields) {
        let (key, value) = self.json_field();
        map.insert(key.into(), value);
    }
}

impl Display for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.trimmed();
        if is_json(bytes) {
            let compact = !bytes
                .iter()
                .any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
            if compact {
                // Validated JSON is ASCII-safe UTF-8 here; print it as sent.
                if let Ok(s) = std::str::from_utf8(bytes) {
                    return f.write_str(s);
                }
            }
            if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
                return write!(f, "{value}");
            }
        }
        write_escaped(f, bytes)
    }
}

fn is_json(bytes: &[u8]) -> bool {
    !bytes.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// Segment text for a text line: escaped, and visibly empty when empty.
pub struct Shown<'a>(pub &'a [u8]);

impl Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(empty)")
        } else {
            write_escaped(f, self.0)
        }
    }
}

/// Text for display: valid UTF-8 kept, control characters and invalid bytes
/// as `\xNN`, so the result is always valid UTF-8 on one line.
pub fn escape_bytes(bytes: &[u8]) -> String {
    struct Escaped<'a>(&'a [u8]);
    impl Display for Escaped<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_escaped(f, self.0)
        }
    }
    Escaped(bytes).to_string()
}

fn write_escaped(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if !valid.chars().any(char::is_control) {
            f.write_str(valid)?;
        } else {
            for ch in valid.chars() {
                if ch.is_control() {
                    let mut utf8 = [0u8; 4];
                    for b in ch.encode_utf8(&mut utf8).bytes() {
                        write!(f, "\\x{b:02x}")?;
                    }
                } else {
                    f.write_char(ch)?;
                }
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(Payload(br#"{"count":1}"#).to_string(), r#"{"count":1}"#);
        assert_eq!(Payload(b"{ \"a\" : 1 }\0").to_string(), r#"{"a":1}"#);
        assert_eq!(Payload(b"hello").to_string(), "hello");
        assert_eq!(Payload("grüß".as_bytes()).to_string(), "grüß");
        assert_eq!(Payload(b"a\nb\xff").to_string(), "a\\x0ab\\xff");
        assert_eq!(Payload(b"").to_string(), "");
        assert_eq!(Payload(b"hi\0").json_field(), ("text", Value::from("hi")));
        assert_eq!(Payload(b"[1, 2]").json_field().0, "payload");
    }
}
