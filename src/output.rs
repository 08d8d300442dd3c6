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
            self.w.write_all(self.clock.hms(now))?;
            self.w.write_all(b" ")?;
            write!(self.w, "{text}")?;
            self.w.write_all(b"\n")
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
    /// `HH:MM:SS.` of the current second; the microseconds follow.
    hms: Vec<u8>,
    date_hms: String,
    offset: String,
}

impl Clock {
    fn refresh(&mut self, sec: i64) {
        if self.sec == Some(sec) {
            return;
        }
        self.sec = Some(sec);
        match Local.timestamp_opt(sec, 0).earliest() {
            Some(t) => {
                self.hms = t.format("%H:%M:%S.").to_string().into_bytes();
                self.date_hms = t.format("%Y-%m-%dT%H:%M:%S").to_string();
                self.offset = t.format("%:z").to_string();
            }
            None => {
                self.hms = b"??:??:??.".to_vec();
                self.date_hms = "????-??-??T??:??:??".into();
                self.offset = "Z".into();
            }
        }
    }

    /// `HH:MM:SS.ffffff`: digits by hand, as this runs once per line.
    fn hms(&mut self, (sec, micros): (i64, u32)) -> &[u8] {
        self.refresh(sec);
        // Keep `HH:MM:SS.`, drop the last line's microseconds.
        self.hms.truncate(9);
        self.hms.extend_from_slice(&six_digits(micros));
        &self.hms
    }

    /// RFC 3339 with microseconds and the local offset.
    fn rfc3339(&mut self, (sec, micros): (i64, u32)) -> String {
        self.refresh(sec);
        format!("{}.{micros:06}{}", self.date_hms, self.offset)
    }
}

/// `n` (below a million) as six ASCII digits with leading zeros.
fn six_digits(mut n: u32) -> [u8; 6] {
    let mut digits = [b'0'; 6];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    digits
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
        if let Some(s) = flat_compact_json(bytes) {
            return f.write_str(s);
        }
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

/// `bytes` when they are a flat JSON object in its plainest compact form,
/// as `{"count":1}` or `{"id":"a1","n":-2,"ok":true}`: keys and string
/// values of printable ASCII without spaces, quotes or backslashes; integers,
/// `true`, `false`, `null`. Such bytes are valid compact JSON, which
/// `Payload` prints as sent; recognising them by hand spares a JSON parse per
/// message. `None` leaves anything else to the general path.
fn flat_compact_json(bytes: &[u8]) -> Option<&str> {
    fn string(b: &[u8]) -> Option<&[u8]> {
        let b = b.strip_prefix(b"\"")?;
        let end = b.iter().position(|&c| c == b'"')?;
        b[..end]
            .iter()
            .all(|&c| matches!(c, 0x21..=0x7e) && c != b'\\')
            .then(|| &b[end + 1..])
    }
    fn integer(b: &[u8]) -> Option<&[u8]> {
        let b = b.strip_prefix(b"-").unwrap_or(b);
        let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
        (digits == 1 || (digits > 1 && b[0] != b'0')).then(|| &b[digits..])
    }
    fn value(b: &[u8]) -> Option<&[u8]> {
        match b.first()? {
            b'"' => string(b),
            b't' => b.strip_prefix(b"true"),
            b'f' => b.strip_prefix(b"false"),
            b'n' => b.strip_prefix(b"null"),
            _ => integer(b),
        }
    }
    let mut rest = bytes.strip_prefix(b"{")?;
    if rest != b"}" {
        loop {
            rest = value(string(rest)?.strip_prefix(b":")?)?;
            match rest.split_first()? {
                (b',', after) => rest = after,
                (b'}', []) => break,
                _ => return None,
            }
        }
    }
    std::str::from_utf8(bytes).ok()
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
    fn clock_stamp() {
        let mut clock = Clock::default();
        let stamp = String::from_utf8(clock.hms((1_700_000_000, 42)).to_vec()).unwrap();
        assert_eq!(stamp.len(), 15, "{stamp}");
        assert!(stamp.ends_with(".000042"), "{stamp}");
        let again = String::from_utf8(clock.hms((1_700_000_000, 999_999)).to_vec()).unwrap();
        assert_eq!(again, format!("{}.999999", &stamp[..8]));
        assert_eq!(six_digits(0), *b"000000");
        assert_eq!(six_digits(123_456), *b"123456");
    }

    /// The general path of `Payload`, without the flat-object shortcut.
    fn general(bytes: &[u8]) -> String {
        struct General<'a>(&'a [u8]);
        impl Display for General<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let bytes = self.0;
                if is_json(bytes) {
                    let compact = !bytes
                        .iter()
                        .any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
                    if compact {
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
        General(bytes).to_string()
    }

    #[test]
    fn flat_objects_take_the_shortcut_and_print_the_same() {
        let taken = [
            r#"{"count":1}"#,
            r#"{"count":123456789012345678901234567890}"#,
            "{}",
            r#"{"a":-0,"b":"x,y:}{","c":true,"d":false,"e":null,"a":7}"#,
        ];
        for json in taken {
            assert_eq!(flat_compact_json(json.as_bytes()), Some(json), "{json}");
            assert_eq!(general(json.as_bytes()), json);
        }
        let left = [
            "",
            "{",
            "}",
            "{}}",
            "{} ",
            r#"{"a":1"#,
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":"b c"}"#,
            r#"{"a":"\n"}"#,
            r#"{"a":"é"}"#,
            r#"{"a":[1]}"#,
            r#"{"a":{}}"#,
            r#"{"a":1,}"#,
            r#"{,}"#,
            r#"{"a"}"#,
            r#"{"a":truex}"#,
            r#"{"a":nul}"#,
            r#"{a:1}"#,
            "[1]",
            "1",
            r#""s""#,
        ];
        for other in left {
            assert_eq!(flat_compact_json(other.as_bytes()), None, "{other}");
        }
        // Whatever the shortcut takes, the general path prints unchanged.
        for a in ["", "\"k\":", "\"k\":1", "\"k\":\"v\"", ","] {
            for b in ["", "1", "-", "0", "\"", "}", ",", ":", "true", "{"] {
                let text = format!("{{{a}{b}}}");
                if let Some(s) = flat_compact_json(text.as_bytes()) {
                    assert_eq!(general(s.as_bytes()), s);
                    assert_eq!(Payload(s.as_bytes()).to_string(), s);
                }
            }
        }
    }

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
