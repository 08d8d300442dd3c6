//! Everything printed on stdout: timestamped event lines in text or JSON,
//! and the payload rendering both share.
//!
//! Output is buffered for speed and flushed by the caller: a server after
//! every event line (see `serve::Server::event`), everything else before it
//! blocks, so nothing is held back while a process waits. A flush is one
//! write(2) straight to descriptor 1, without std's own line buffer.
//!
//! Text output is where strings from outside (names, commands, paths,
//! payloads) could smuggle a terminal escape sequence or a fake line to
//! whoever reads it, often root running `ls`. Two layers stop that:
//! [`Escaped`] renders one outside value with every control character,
//! newline included, as `\xNN`; and every text line written through [`Out`]
//! passes through the same escaping with only its own line breaks kept, so
//! nothing that forgot [`Escaped`] can reach the terminal as a control
//! sequence. JSON output is never escaped this way: serde_json's escaping is
//! exact and reversible.

use std::fmt::{self, Display, Write as _};
use std::io::{self, BufWriter, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Local, TimeZone};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::record::stat::Stat;
use crate::record::{Canceled, Record};

/// JSON fields of one line, in order.
pub type Fields = Map<String, Value>;

pub struct Out {
    json: bool,
    w: BufWriter<StdoutFd>,
    clock: Clock,
    /// One text line, formatted here before it is escaped and written.
    line: String,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Out {
            json,
            w: BufWriter::with_capacity(64 * 1024, StdoutFd(io::stdout())),
            clock: Clock::default(),
            line: String::new(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// One timestamped record: `HH:MM:SS.ffffff <text>`, or with --json
    /// `{"time":..., "kind":..., <its fields>}`. Only the form asked for is
    /// rendered.
    pub fn event<R: Record>(&mut self, record: &R) -> io::Result<()> {
        let now = now();
        if self.json {
            let time = self.clock.rfc3339(now);
            let line = Stamped {
                time: Some(&time),
                kind: record.kind(),
                fields: record,
            };
            serde_json::to_writer(&mut self.w, &line)?;
            self.w.write_all(b"\n")
        } else {
            // The stamp is ASCII digits and colons of our own making.
            let stamp = std::str::from_utf8(self.clock.hms(now)).unwrap_or("??:??:??.??????");
            write_text(
                &mut self.w,
                &mut self.line,
                format_args!("{stamp} {record}"),
            )
        }
    }

    /// One record without a timestamp: its text, or `{"kind":..., <its
    /// fields>}`.
    pub fn line<R: Record>(&mut self, record: &R) -> io::Result<()> {
        if self.json {
            let line = Stamped {
                time: None,
                kind: record.kind(),
                fields: record,
            };
            serde_json::to_writer(&mut self.w, &line)?;
            self.w.write_all(b"\n")
        } else {
            write_text(&mut self.w, &mut self.line, record)
        }
    }

    /// A line without a timestamp: `text`, or `value` (a typed record or
    /// a `Value`) as one JSON document.
    pub fn record<T: Serialize>(
        &mut self,
        text: impl Display,
        value: impl FnOnce() -> T,
    ) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.w, &value())?;
            self.w.write_all(b"\n")
        } else {
            write_text(&mut self.w, &mut self.line, text)
        }
    }

    /// An object's attributes (`--stat`): aligned `field value` lines, or
    /// one JSON object with the fields.
    pub fn stat<S: Stat>(&mut self, stat: &S) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.w, stat)?;
            self.w.write_all(b"\n")
        } else {
            write_text(&mut self.w, &mut self.line, crate::record::stat::text(stat))
        }
    }

    /// The last line of a server stopped by SIGINT or SIGTERM, on a line
    /// of its own also after the `^C` a terminal echoed.
    pub fn canceled(&mut self) -> io::Result<()> {
        self.past_echoed_interrupt()?;
        self.canceled_here()
    }

    /// Start a new line if standard output is a terminal that echoes
    /// Ctrl-C: the `^C` stands after the last line printed, and what comes
    /// next belongs on a line of its own. The cursor position itself cannot
    /// be read without a round trip through the terminal, so a SIGTERM
    /// (nothing echoed) also gets the line break there.
    pub fn past_echoed_interrupt(&mut self) -> io::Result<()> {
        if stdout_local_modes().is_some_and(echoes_ctrl_c) {
            self.w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// `canceled.` where the cursor is: for a caller that started a new
    /// line already, or whose progress display erased the `^C`.
    pub fn canceled_here(&mut self) -> io::Result<()> {
        if self.json {
            self.event(&Canceled {})
        } else {
            self.w.write_all(b"canceled.\n")
        }?;
        self.flush()
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Raw access for tables and prompts: the caller escapes what it prints
    /// (see [`Escaped`]). Write errors are reported like every other.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.w
    }
}

/// Whether a terminal in these local modes echoes Ctrl-C as `^C`: its
/// line discipline turns the key into SIGINT (ISIG) and echoes control
/// characters visibly (ECHO and ECHOCTL, the default of every terminal).
fn echoes_ctrl_c(modes: nix::sys::termios::LocalFlags) -> bool {
    use nix::sys::termios::LocalFlags;
    modes.contains(LocalFlags::ISIG | LocalFlags::ECHO | LocalFlags::ECHOCTL)
}

/// The local modes of the terminal on standard output: `tcgetattr(1)`.
/// None when standard output is not a terminal (ENOTTY) or cannot be asked.
fn stdout_local_modes() -> Option<nix::sys::termios::LocalFlags> {
    use std::os::fd::AsFd as _;
    nix::sys::termios::tcgetattr(io::stdout().as_fd())
        .ok()
        .map(|t| t.local_flags)
}

/// Standard output written with write(2) on descriptor 1.
///
/// Not through `std::io::Stdout`: that one treats EBADF (a descriptor 1 open
/// only for reading) as success and drops the output without a word. Every
/// error is marked as a [`StdoutError`], so it reads as a failed write to
/// standard output whichever command hit it.
struct StdoutFd(io::Stdout);

impl Write for StdoutFd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::os::fd::AsFd as _;
        nix::unistd::write(self.0.as_fd(), buf).map_err(|errno| StdoutError::wrap(errno.into()))
    }

    fn flush(&mut self) -> io::Result<()> {
        // write(2) keeps nothing back; BufWriter above holds the buffer.
        Ok(())
    }
}

/// A write to standard output failed: the disk is full, the descriptor is
/// not writable, the reader went away (EPIPE, which `error::report` turns
/// into a quiet exit). Carried inside an `io::Error` of the same kind.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl StdoutError {
    fn wrap(err: io::Error) -> io::Error {
        io::Error::new(err.kind(), StdoutError(err))
    }

    /// The stdout failure behind an error, wherever it sits in the chain.
    pub fn find(err: &anyhow::Error) -> Option<&StdoutError> {
        err.chain().find_map(|cause| {
            cause
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<StdoutError>())
        })
    }
}

impl Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// A JSON line: the time (events only), the kind, then the record's own
/// fields.
#[derive(serde::Serialize)]
struct Stamped<'a, R> {
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a str>,
    kind: &'static str,
    #[serde(flatten)]
    fields: &'a R,
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
}

impl Display for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.trimmed();
        match flat_compact_json(bytes) {
            Some(s) => f.write_str(s),
            None => write_payload(f, bytes),
        }
    }
}

/// The general path of [`Payload`]: JSON compact (as sent when it is
/// compact already), anything else escaped.
fn write_payload(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
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
        Controls::all(&mut *f).write_str(chunk.valid())?;
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// A string from outside (an object name, a command name, a path) as a text
/// line shows it: as payloads are, every control character, newline
/// included, as `\xNN`; printable text, non-ASCII too, kept.
///
/// Escaping is idempotent (its output has no control characters), so a
/// value escaped here and again at the [`Out`] boundary reads the same.
pub struct Escaped<T>(pub T);

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Controls::all(f), "{}", self.0)
    }
}

/// `s` escaped as [`Escaped`] shows it, borrowed when there is nothing to escape.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if has_control(s) {
        Escaped(s).to_string().into()
    } else {
        s.into()
    }
}

/// A `fmt::Write` that passes text on with control characters as `\xNN`,
/// line feeds kept or not.
struct Controls<W> {
    inner: W,
    keep_newline: bool,
}

impl<W: fmt::Write> Controls<W> {
    fn all(inner: W) -> Self {
        Controls {
            inner,
            keep_newline: false,
        }
    }
}

/// Whether `s` may hold a control character: C0, DEL, or C1 (U+0080 to
/// U+009F, encoded as 0xC2 0x80..0x9F). A cheap byte test for the common case.
fn has_control(s: &str) -> bool {
    // No early exit: the loop vectorises, and most text has nothing to find.
    s.bytes()
        .fold(false, |hit, b| hit | (b < 0x20) | (b == 0x7f) | (b == 0xc2))
}

impl<W: fmt::Write> fmt::Write for Controls<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !has_control(s) {
            return self.inner.write_str(s);
        }
        let mut start = 0;
        for (i, ch) in s.char_indices() {
            if ch.is_control() && !(self.keep_newline && ch == '\n') {
                self.inner.write_str(&s[start..i])?;
                let mut utf8 = [0u8; 4];
                for b in ch.encode_utf8(&mut utf8).bytes() {
                    write!(self.inner, "\\x{b:02x}")?;
                }
                start = i + ch.len_utf8();
            }
        }
        self.inner.write_str(&s[start..])
    }
}

/// One text line (or a block of lines the program itself broke) to `w`, with
/// every other control character escaped: the boundary no outside string
/// passes unescaped. Formatted into `line` first, so the common case is one
/// scan and one copy, as cheap as formatting straight into `w`.
fn write_text(w: &mut impl Write, line: &mut String, text: impl Display) -> io::Result<()> {
    line.clear();
    write!(line, "{text}").map_err(|_| io::Error::other("a value could not be formatted"))?;
    if has_control(line) {
        let mut escaped = Controls {
            inner: String::with_capacity(line.len() + 16),
            keep_newline: true,
        };
        // Writing into a String cannot fail.
        let _ = escaped.write_str(line);
        w.write_all(escaped.inner.as_bytes())?;
    } else {
        w.write_all(line.as_bytes())?;
    }
    w.write_all(b"\n")
}

/// A count and its noun, singular for exactly one: `1 object`, `2 objects`,
/// `0 objects`. Both forms are given, as English plurals are irregular
/// (`process`, `processes`).
pub fn plural<N: Display + PartialEq + From<u8>>(n: N, one: &str, many: &str) -> String {
    let noun = if n == N::from(1) { one } else { many };
    format!("{n} {noun}")
}

/// A number or other value, `?` when it is unknown (a /proc file that could
/// not be read, a field the kernel did not give).
pub fn or_unknown(v: Option<impl Display>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

/// `1 byte`, `4096 bytes`: a size as the text of a record spells it.
pub fn bytes<N: Display + PartialEq + From<u8>>(n: N) -> String {
    plural(n, "byte", "bytes")
}

/// `4.0K`, `12M`: one decimal below 10, as `ls -h` does.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1}{}", UNITS[unit])
    } else {
        format!("{v:.0}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_c_is_echoed_only_with_isig_echo_and_echoctl() {
        use nix::sys::termios::LocalFlags as L;
        // A new terminal's defaults (stty sane).
        let sane = L::ISIG | L::ICANON | L::ECHO | L::ECHOE | L::ECHOK | L::ECHOCTL | L::IEXTEN;
        assert!(echoes_ctrl_c(sane));
        // stty -echoctl: the key sends SIGINT, but the echo is the raw,
        // invisible byte; stty -echo: nothing echoed; stty -isig: no signal.
        for off in [L::ECHOCTL, L::ECHO, L::ISIG] {
            assert!(!echoes_ctrl_c(sane - off), "{off:?}");
        }
        assert!(!echoes_ctrl_c(L::empty()));
    }

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
                write_payload(f, self.0)
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

    #[test]
    fn outside_strings() {
        assert_eq!(Escaped("/a\x1b[31m\nb").to_string(), "/a\\x1b[31m\\x0ab");
        assert_eq!(
            Escaped("grüß\u{9b}\x7f\t").to_string(),
            "grüß\\xc2\\x9b\\x7f\\x09"
        );
        assert_eq!(escape("plain"), std::borrow::Cow::Borrowed("plain"));
        // Idempotent: an escaped value passes a second escaping unchanged.
        let once = escape("x\x1by").into_owned();
        assert_eq!(escape(&once), once.as_str());
    }

    #[test]
    fn text_lines_keep_only_their_own_line_breaks() {
        let mut buf = Vec::new();
        let mut line = String::new();
        write_text(&mut buf, &mut line, format_args!("a\x1b]0;t\x07\r\nb")).unwrap();
        assert_eq!(buf, b"a\\x1b]0;t\\x07\\x0d\nb\n");
        // JSON may hold a raw C1 control (here CSI) in a string: the line escapes it.
        buf.clear();
        write_text(&mut buf, &mut line, Payload(b"\"\xc2\x9b2J\"")).unwrap();
        assert_eq!(buf, b"\"\\xc2\\x9b2J\"\n");
    }

    #[test]
    fn stdout_errors_are_found_through_context() {
        let err = anyhow::Error::new(StdoutError::wrap(io::Error::from_raw_os_error(
            nix::errno::Errno::ENOSPC as i32,
        )))
        .context("cannot write the table");
        let found = StdoutError::find(&err).expect("found");
        assert!(
            found
                .to_string()
                .starts_with("cannot write to standard output: No space left on device"),
            "{found}"
        );
        assert!(StdoutError::find(&anyhow::anyhow!("other")).is_none());
        let pipe = StdoutError::wrap(io::Error::from_raw_os_error(
            nix::errno::Errno::EPIPE as i32,
        ));
        assert_eq!(pipe.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(4096), "4.0K");
        assert_eq!(human(81920), "80K");
        assert_eq!(human(3 * 1024 * 1024 / 2), "1.5M");
    }

    #[test]
    fn plural_is_singular_for_exactly_one() {
        assert_eq!(plural(1usize, "object", "objects"), "1 object");
        assert_eq!(plural(0usize, "object", "objects"), "0 objects");
        assert_eq!(plural(2u64, "process", "processes"), "2 processes");
        assert_eq!(plural(-1i64, "byte", "bytes"), "-1 bytes");
    }
}
