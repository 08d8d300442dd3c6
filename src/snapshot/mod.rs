//! Save and restore files (`--save FILE`, `--restore FILE`, `clean --stale
//! --save DIR`): a queue's messages or a segment's bytes as JSON Lines, so
//! nothing is lost when an object must go, and a person can read what was
//! in it.
//!
//! ```text
//! {"format":"examples-ipc-snapshot","version":1,"mechanism":"sysv-msq","key":"0x000000c8","qbytes":16384,"mode":"0600","uid":0,"gid":0,"messages":2,"saved_at":"..."}
//! {"type":1,"text":"{\"count\":1}"}
//! {"type":7,"base64":"/wABAg=="}
//! ```
//!
//! - The first line is the [`Header`]: what was saved, and the attributes a
//!   restore creates it with (maxmsg/msgsize, qbytes, size, mode; uid and
//!   gid are for the reader only). Queues record how many messages follow,
//!   so a file cut at a line boundary is still found truncated.
//! - Then one line per message, in queue order: `priority` (POSIX) or
//!   `type` (System V), and the payload as `text` when it is valid UTF-8,
//!   else as `base64`.
//! - For a segment, one line per [`CHUNK`] bytes from offset 0, contiguous,
//!   `{"offset":N,"base64":"..."}`, or `{"offset":N,"zeros":LEN}` for a
//!   chunk of zeros (most of a large, mostly unused segment), so a huge
//!   segment streams in both directions and its file stays small.
//!
//! The reader is strict: every line is checked, a wrong or missing field is
//! an error naming the line, and the file must end exactly where the header
//! says. The writer ([`file::AtomicFile`]) makes FILE appear whole or not
//! at all.

pub mod file;
pub mod object;
pub mod queue;
pub mod segment;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ipc::Key;
use crate::object::Kind;
use crate::output::escape_bytes;

/// The `format` of every snapshot's header.
pub const FORMAT: &str = "examples-ipc-snapshot";

/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// Bytes of a segment per line: 48 KiB, a multiple of 3, so every line
/// but the last is base64 without padding (64 KiB of text).
pub const CHUNK: usize = 48 * 1024;

/// The longest line the reader takes: a message of msgsize_max's hard
/// limit (16 MiB), written as JSON with every byte escaped, fits.
const MAX_LINE: u64 = 128 << 20;

/// POSIX priorities are below MQ_PRIO_MAX (32768 on Linux).
const MQ_PRIO_MAX: u32 = 32768;

/// The four kinds of object a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    PosixMsq,
    SysvMsq,
    PosixShm,
    SysvShm,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::PosixMsq,
        Mechanism::SysvMsq,
        Mechanism::PosixShm,
        Mechanism::SysvShm,
    ];

    pub fn kind(self) -> Kind {
        match self {
            Mechanism::PosixMsq => Kind::PosixMsq,
            Mechanism::SysvMsq => Kind::SysvMsq,
            Mechanism::PosixShm => Kind::PosixShm,
            Mechanism::SysvShm => Kind::SysvShm,
        }
    }

    /// The snapshot mechanism of a kind; semaphores have none.
    pub fn of(kind: Kind) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.kind() == kind)
    }

    pub fn is_queue(self) -> bool {
        matches!(self, Mechanism::PosixMsq | Mechanism::SysvMsq)
    }

    pub fn is_posix(self) -> bool {
        self.kind().is_posix()
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind().mechanism())
    }
}

// Spelled by `Kind`, the one place mechanism names are written.
impl Serialize for Mechanism {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.kind().mechanism())
    }
}

impl<'de> Deserialize<'de> for Mechanism {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mechanism, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Kind>()
            .ok()
            .and_then(Mechanism::of)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown mechanism '{}' (posix-msq, sysv-msq, posix-shm or sysv-shm)",
                    crate::output::escape_bytes(s.as_bytes())
                ))
            })
    }
}

/// The first line of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub mechanism: Mechanism,
    /// A POSIX object's name, with its leading '/'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A System V key, written as ipcs prints it (`0x000000c8`);
    /// `0x00000000` for an IPC_PRIVATE object.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "key_hex")]
    pub key: Option<Key>,
    /// POSIX queue: `mq_maxmsg` and `mq_msgsize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmsg: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgsize: Option<u64>,
    /// System V queue: `msg_qbytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qbytes: Option<u64>,
    /// Segment: bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Permission bits, `0600`, as `ls` prints them.
    #[serde(with = "mode_octal")]
    pub mode: u32,
    /// Owner and group when saved: for the reader; a restore makes the
    /// object as the user who restores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Queue: the number of message lines that follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// RFC 3339, local time.
    pub saved_at: String,
}

/// Where a saved object was: a POSIX name or a System V key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Name(String),
    Key(Key),
}

/// The attributes a restore recreates, per mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attrs {
    PosixMsq { maxmsg: u64, msgsize: u64 },
    SysvMsq { qbytes: u64 },
    Segment { size: u64 },
}

impl Attrs {
    /// The mechanism these attributes belong to; a segment's by its origin.
    pub fn mechanism(self, origin: &Origin) -> Mechanism {
        match (self, origin) {
            (Attrs::PosixMsq { .. }, _) => Mechanism::PosixMsq,
            (Attrs::SysvMsq { .. }, _) => Mechanism::SysvMsq,
            (Attrs::Segment { .. }, Origin::Name(_)) => Mechanism::PosixShm,
            (Attrs::Segment { .. }, Origin::Key(_)) => Mechanism::SysvShm,
        }
    }
}

impl Header {
    /// A header for an object saved now. `messages` is filled in by the
    /// queue savers, which count before they write. A POSIX queue's
    /// attributes with a key (or the reverse) give a header that
    /// [`Header::check`] refuses.
    pub fn new(origin: Origin, attrs: Attrs, mode: u32, uid: u32, gid: u32) -> Header {
        let mut h = Header::blank(attrs.mechanism(&origin));
        h.mode = mode & 0o7777;
        h.uid = Some(uid);
        h.gid = Some(gid);
        h.saved_at = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        match origin {
            Origin::Name(name) => h.name = Some(name),
            Origin::Key(key) => h.key = Some(key),
        }
        match attrs {
            Attrs::PosixMsq { maxmsg, msgsize } => {
                h.maxmsg = Some(maxmsg);
                h.msgsize = Some(msgsize);
            }
            Attrs::SysvMsq { qbytes } => h.qbytes = Some(qbytes),
            Attrs::Segment { size } => h.size = Some(size),
        }
        h
    }

    /// A header with only its format, version and mechanism.
    fn blank(mechanism: Mechanism) -> Header {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            mechanism,
            name: None,
            key: None,
            maxmsg: None,
            msgsize: None,
            qbytes: None,
            size: None,
            mode: 0,
            uid: None,
            gid: None,
            messages: None,
            saved_at: String::new(),
        }
    }

    /// The object's name or key.
    pub fn origin(&self) -> Option<Origin> {
        match (&self.name, self.key) {
            (Some(name), None) => Some(Origin::Name(name.clone())),
            (None, Some(key)) => Some(Origin::Key(key)),
            _ => None,
        }
    }

    /// The attributes, when the header has those of its mechanism.
    pub fn attrs(&self) -> Option<Attrs> {
        match self.mechanism {
            Mechanism::PosixMsq => Some(Attrs::PosixMsq {
                maxmsg: self.maxmsg?,
                msgsize: self.msgsize?,
            }),
            Mechanism::SysvMsq => Some(Attrs::SysvMsq {
                qbytes: self.qbytes?,
            }),
            Mechanism::PosixShm | Mechanism::SysvShm => Some(Attrs::Segment { size: self.size? }),
        }
    }

    /// The header's own consistency: format and version, the name or key
    /// and the attributes of its mechanism and no others.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "not an examples-ipc snapshot (format '{}')",
                escape_bytes(self.format.as_bytes())
            ));
        }
        if self.version != VERSION {
            return Err(format!(
                "snapshot version {} is not supported (this build reads version {VERSION})",
                self.version
            ));
        }
        let m = self.mechanism;
        match (m.is_posix(), &self.name, self.key) {
            (true, Some(name), None)
                if name.len() > 1 && name.starts_with('/') && !name[1..].contains(['/', '\0']) => {}
            (true, Some(name), None) => {
                return Err(format!(
                    "bad name '{}' for {m}",
                    escape_bytes(name.as_bytes())
                ));
            }
            (true, _, _) => return Err(format!("a {m} snapshot needs a name and no key")),
            (false, None, Some(_)) => {}
            (false, _, _) => return Err(format!("a {m} snapshot needs a key and no name")),
        }
        let fields = [
            ("maxmsg", self.maxmsg.is_some(), m == Mechanism::PosixMsq),
            ("msgsize", self.msgsize.is_some(), m == Mechanism::PosixMsq),
            ("qbytes", self.qbytes.is_some(), m == Mechanism::SysvMsq),
            ("size", self.size.is_some(), !m.is_queue()),
            ("messages", self.messages.is_some(), m.is_queue()),
        ];
        for (field, present, wanted) in fields {
            if present && !wanted {
                return Err(format!("a {m} snapshot has no '{field}'"));
            }
            if wanted && !present {
                return Err(format!("a {m} snapshot needs '{field}'"));
            }
        }
        if self.mode > 0o7777 {
            return Err(format!("mode {:o} is not a permission mode", self.mode));
        }
        Ok(())
    }
}

/// `"0x000000c8"` for a key, as ipcs prints it; decimal is accepted too.
mod key_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ipc::Key;

    pub fn serialize<S: Serializer>(key: &Option<Key>, s: S) -> Result<S::Ok, S::Error> {
        match key {
            Some(k) => s.serialize_str(&crate::ipc::sysv::key_hex(*k)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Key>, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = match text.strip_prefix("0x") {
            Some(hex) if hex.len() <= 8 => u32::from_str_radix(hex, 16).ok().map(|k| k as Key),
            Some(_) => None,
            None => text.parse::<Key>().ok(),
        };
        // 0 is IPC_PRIVATE: such an object is saved, and restored only
        // under a key the user names.
        parsed.map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad key '{}' (0x and up to 8 hex digits)",
                crate::output::escape_bytes(text.as_bytes())
            ))
        })
    }
}

/// `"0600"` for permission bits, as `ls` prints them.
mod mode_octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        match u32::from_str_radix(&text, 8) {
            Ok(m) if m <= 0o7777 && !text.is_empty() => Ok(m),
            _ => Err(serde::de::Error::custom(format!(
                "bad mode '{}' (octal, as 0600)",
                crate::output::escape_bytes(text.as_bytes())
            ))),
        }
    }
}

/// A message's priority (POSIX) or type (System V).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Priority(u32),
    Type(i64),
}

/// One message of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tag: Tag,
    pub bytes: Vec<u8>,
}

/// A message or chunk line as it stands in the file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u32>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    mtype: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zeros: Option<u64>,
}

impl Line {
    /// `text` when the bytes are UTF-8, else `base64`.
    fn payload(mut self, bytes: &[u8]) -> Line {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.text = Some(text.to_string()),
            Err(_) => self.base64 = Some(BASE64.encode(bytes)),
        }
        self
    }

    /// The bytes of `text` or `base64`, exactly one of which is there.
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        match (self.text.take(), self.base64.take()) {
            (Some(text), None) => Ok(text.into_bytes()),
            (None, Some(b64)) => BASE64
                .decode(b64.as_bytes())
                .map_err(|e| format!("bad base64: {e}")),
            (Some(_), Some(_)) => Err("both 'text' and 'base64'".into()),
            (None, None) => Err("no payload ('text' or 'base64')".into()),
        }
    }
}

/// A segment's bytes at an offset, as one line holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Bytes { offset: u64, bytes: Vec<u8> },
    Zeros { offset: u64, len: u64 },
}

impl Chunk {
    pub fn offset(&self) -> u64 {
        match self {
            Chunk::Bytes { offset, .. } | Chunk::Zeros { offset, .. } => *offset,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes { bytes, .. } => bytes.len() as u64,
            Chunk::Zeros { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes the lines of a snapshot to `out`: the header first, then
/// messages or chunks. Checks nothing: the savers write what they read.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// # Errors
    /// The write error of `out`.
    pub fn new(mut out: W, header: &Header) -> io::Result<Writer<W>> {
        write_line(&mut out, header)?;
        Ok(Writer { out })
    }

    /// # Errors
    /// The write error of `out`.
    pub fn message(&mut self, msg: &Message) -> io::Result<()> {
        let line = match msg.tag {
            Tag::Priority(p) => Line {
                priority: Some(p),
                ..Line::default()
            },
            Tag::Type(t) => Line {
                mtype: Some(t),
                ..Line::default()
            },
        };
        write_line(&mut self.out, &line.payload(&msg.bytes))
    }

    /// `len` zero bytes at `offset`, as one `zeros` line.
    ///
    /// # Errors
    /// The write error of `out`.
    pub fn zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let line = Line {
            offset: Some(offset),
            zeros: Some(len),
            ..Line::default()
        };
        write_line(&mut self.out, &line)
    }

    /// The segment's `bytes` at `offset`: a `zeros` line when they are all
    /// zero, else base64 (a segment's bytes are binary even when they look
    /// like text, so never `text`).
    ///
    /// # Errors
    /// The write error of `out`.
    pub fn chunk(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut line = Line {
            offset: Some(offset),
            ..Line::default()
        };
        if bytes.iter().all(|&b| b == 0) {
            return self.zeros(offset, bytes.len() as u64);
        }
        line.base64 = Some(BASE64.encode(bytes));
        write_line(&mut self.out, &line)
    }

    /// Hand what was written to the kernel (or the test's writer).
    ///
    /// # Errors
    /// The write error of `out`.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn write_line<T: Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Why a snapshot cannot be read: the line (1-based) and what is wrong, or
/// the I/O error.
#[derive(Debug)]
pub enum SnapshotError {
    Io(io::Error),
    /// FILE is a directory, FIFO, socket or device (what it is).
    NotAFile(&'static str),
    Empty,
    Line {
        line: u64,
        what: String,
    },
    /// The file ends before the header says it should.
    Truncated(String),
    /// A queue's file ends after `whole` of the `count` messages its
    /// header counts; `cut`: in a line cut short (a save killed mid-write).
    ShortQueue {
        whole: u64,
        count: u64,
        cut: bool,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Written as every OS error is (`No such file or directory
            // (ENOENT)`), here and not again by a source: a chain would
            // repeat it, and an errno in it would bring the hint about
            // IPC objects' owners, which is not about a file.
            SnapshotError::Io(e) => f.write_str(&crate::error::io_error_text(e)),
            SnapshotError::NotAFile(what) => write!(f, "{what}, not a snapshot file"),
            SnapshotError::Empty => f.write_str("the file is empty, not a snapshot"),
            // `what` may quote the file (serde's messages name its fields).
            SnapshotError::Line { line, what } => {
                write!(f, "line {line}: {}", escape_bytes(what.as_bytes()))
            }
            SnapshotError::Truncated(what) => write!(f, "truncated: {what}"),
            SnapshotError::ShortQueue { whole, count, cut } => {
                write!(
                    f,
                    "truncated: the file ends after {whole} whole {} of the {count} its header counts",
                    if *whole == 1 { "message" } else { "messages" }
                )?;
                if *cut {
                    f.write_str(", in a line cut short")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

impl From<io::Error> for SnapshotError {
    fn from(e: io::Error) -> Self {
        SnapshotError::Io(e)
    }
}

/// Reads a snapshot line by line, checking each: [`Reader::new`] reads the
/// header, then [`Reader::message`] or [`Reader::chunk`] until `None`,
/// which only comes when the file ended where the header says.
pub struct Reader<R> {
    input: R,
    header: Header,
    line: u64,
    /// Messages read, or the offset the next chunk must have.
    done: u64,
    buf: Vec<u8>,
    /// Accept a queue's file cut short (see [`Reader::partial`]).
    partial: bool,
    /// The last line read had no newline: the file was cut there.
    cut: bool,
}

/// Open FILE and read its header.
///
/// FILE must be a regular file: a FIFO would block the open (or the read)
/// forever, and a device such as /dev/zero is no snapshot. It is opened
/// with O_NONBLOCK, so that a FIFO is seen and refused instead of waited
/// on; on a regular file the flag changes nothing.
///
/// # Errors
/// The open error, [`SnapshotError::NotAFile`], or what [`Reader::new`]
/// finds.
pub fn open(path: &Path) -> Result<Reader<BufReader<File>>, SnapshotError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)?;
    let st = nix::sys::stat::fstat(std::os::fd::AsFd::as_fd(&file)).map_err(io::Error::from)?;
    if !crate::ipc::fifo::is_regular(&st) {
        return Err(SnapshotError::NotAFile(crate::ipc::fifo::file_type(&st)));
    }
    Reader::new(BufReader::new(file))
}

impl<R: BufRead> Reader<R> {
    /// Read and check the header line.
    ///
    /// # Errors
    /// [`SnapshotError::Empty`] for an empty file; a `Line` error for a
    /// first line that is not a valid header.
    pub fn new(input: R) -> Result<Reader<R>, SnapshotError> {
        let mut r = Reader {
            input,
            // Replaced by the file's header below, before anyone sees it.
            header: Header::blank(Mechanism::PosixShm),
            line: 0,
            done: 0,
            buf: Vec::new(),
            partial: false,
            cut: false,
        };
        if !r.next_line(false)? {
            return Err(SnapshotError::Empty);
        }
        let header: Header = serde_json::from_slice(&r.buf).map_err(|e| {
            r.error(
                if serde_json::from_slice::<serde_json::Value>(&r.buf).is_ok() {
                    format!("not a snapshot header: {e}")
                } else {
                    format!("not JSON: {e}")
                },
            )
        })?;
        header.check().map_err(|what| r.error(what))?;
        r.header = header;
        Ok(r)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// With `yes`, a queue's file that ends before its header's count (a
    /// save that was killed) is read to its last whole message, which
    /// [`Reader::message`] then ends at instead of failing; a last line cut
    /// short is dropped.
    #[must_use]
    pub fn partial(mut self, yes: bool) -> Self {
        self.partial = yes;
        self
    }

    /// Refuse a snapshot of another mechanism than the command's.
    ///
    /// # Errors
    /// A `Line` error for line 1 naming both.
    pub fn expect(&self, mechanism: Mechanism) -> Result<(), SnapshotError> {
        if self.header.mechanism == mechanism {
            return Ok(());
        }
        Err(SnapshotError::Line {
            line: 1,
            what: format!(
                "a {} snapshot, not one of a {mechanism}",
                self.header.mechanism
            ),
        })
    }

    fn error(&self, what: impl Into<String>) -> SnapshotError {
        SnapshotError::Line {
            line: self.line,
            what: what.into(),
        }
    }

    /// The next line into `buf`, without its newline; false at the end.
    /// A last line without its newline is an error, or with `cut_ok` is
    /// returned as it is, `cut` set.
    fn next_line(&mut self, cut_ok: bool) -> Result<bool, SnapshotError> {
        self.buf.clear();
        let n = (&mut self.input)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.last() != Some(&b'\n') {
            if n as u64 > MAX_LINE {
                return Err(self.error(format!("longer than {MAX_LINE} bytes")));
            }
            if !cut_ok {
                return Err(self.error("no newline at its end: the file is truncated"));
            }
            self.cut = true;
            return Ok(true);
        }
        self.buf.pop();
        Ok(true)
    }

    /// The next line, parsed; `None` at the end of the file.
    fn next_parsed(&mut self) -> Result<Option<Line>, SnapshotError> {
        if !self.next_line(false)? {
            return Ok(None);
        }
        serde_json::from_slice(&self.buf)
            .map(Some)
            .map_err(|e| self.error(format!("not a snapshot line: {e}")))
    }

    /// The next message line, parsed; `None` at the end of the file, or
    /// at a last line that a save killed mid-write cut short. Such a line
    /// never parses (no proper prefix of a JSON object does), so one that
    /// lacks only its newline still counts as whole.
    fn next_message_line(&mut self) -> Result<Option<Line>, SnapshotError> {
        if self.cut || !self.next_line(true)? {
            return Ok(None);
        }
        match serde_json::from_slice(&self.buf) {
            Ok(line) => Ok(Some(line)),
            Err(_) if self.cut => Ok(None),
            Err(e) => Err(self.error(format!("not a snapshot line: {e}"))),
        }
    }

    /// The next line after the header: `None` where the file ends after
    /// `total` (messages, or bytes of a segment) were read, a `Truncated`
    /// error saying `short(done)` where it ends before.
    fn next_body_line(
        &mut self,
        total: u64,
        short: impl FnOnce(u64) -> String,
    ) -> Result<Option<Line>, SnapshotError> {
        let line = self.next_parsed()?;
        if line.is_none() && self.done < total {
            return Err(SnapshotError::Truncated(short(self.done)));
        }
        Ok(line)
    }

    /// The next message of a queue snapshot, `None` after the last one.
    ///
    /// # Errors
    /// A `Line` error for a bad line (or a segment's snapshot);
    /// `ShortQueue` when the file ends before the header's count, or in a
    /// line cut short, unless [`Reader::partial`] accepts it.
    pub fn message(&mut self) -> Result<Option<Message>, SnapshotError> {
        let mechanism = self.header.mechanism;
        if !mechanism.is_queue() {
            return Err(self.error(format!("a {mechanism} snapshot holds no messages")));
        }
        let count = self.header.messages.unwrap_or(0);
        let Some(mut line) = self.next_message_line()? else {
            if (self.done < count || self.cut) && !self.partial {
                return Err(SnapshotError::ShortQueue {
                    whole: self.done,
                    count,
                    cut: self.cut,
                });
            }
            return Ok(None);
        };
        if self.done >= count {
            return Err(self.error(format!("more messages than the header's {count}")));
        }
        let tag = match (mechanism, line.priority, line.mtype) {
            (Mechanism::PosixMsq, Some(p), None) if p < MQ_PRIO_MAX => Tag::Priority(p),
            (Mechanism::PosixMsq, Some(p), None) => {
                return Err(self.error(format!("priority {p} is not below {MQ_PRIO_MAX}")));
            }
            (Mechanism::SysvMsq, None, Some(t)) if t > 0 => Tag::Type(t),
            (Mechanism::SysvMsq, None, Some(t)) => {
                return Err(self.error(format!("type {t} is not above 0")));
            }
            (Mechanism::PosixMsq, ..) => return Err(self.error("a message needs 'priority'")),
            _ => return Err(self.error("a message needs 'type'")),
        };
        if line.offset.is_some() || line.zeros.is_some() {
            return Err(self.error("a message has no 'offset' or 'zeros'"));
        }
        let bytes = line.bytes().map_err(|what| self.error(what))?;
        self.done += 1;
        Ok(Some(Message { tag, bytes }))
    }

    /// The next chunk of a segment snapshot, `None` after the last one.
    /// Chunks are contiguous from 0 and end at the header's size.
    ///
    /// # Errors
    /// A `Line` error for a bad line, a gap, an overlap or a chunk past the
    /// size; `Truncated` when the file ends before the size.
    pub fn chunk(&mut self) -> Result<Option<Chunk>, SnapshotError> {
        let mechanism = self.header.mechanism;
        if mechanism.is_queue() {
            return Err(self.error(format!("a {mechanism} snapshot holds no bytes")));
        }
        let size = self.header.size.unwrap_or(0);
        let short = |done| format!("the file ends at byte {done} of {size}");
        let Some(mut line) = self.next_body_line(size, short)? else {
            return Ok(None);
        };
        if line.priority.is_some() || line.mtype.is_some() || line.text.is_some() {
            return Err(self.error("a segment's line has only 'offset' and 'base64' or 'zeros'"));
        }
        let Some(offset) = line.offset else {
            return Err(self.error("a segment's line needs 'offset'"));
        };
        if offset != self.done {
            return Err(self.error(format!("offset {offset}, expected {}", self.done)));
        }
        let chunk = match (line.zeros, line.base64.is_some()) {
            (Some(len), false) => Chunk::Zeros { offset, len },
            (None, true) => Chunk::Bytes {
                offset,
                bytes: line.bytes().map_err(|what| self.error(what))?,
            },
            _ => return Err(self.error("a segment's line needs 'base64' or 'zeros'")),
        };
        if chunk.is_empty() || chunk.len() > size - offset.min(size) {
            return Err(self.error(format!(
                "{} bytes at offset {offset} do not fit the size {size}",
                chunk.len()
            )));
        }
        self.done += chunk.len();
        Ok(Some(chunk))
    }

    /// Read to the end, checking every line: a whole pass before a restore
    /// changes anything.
    ///
    /// # Errors
    /// The first problem found.
    pub fn check_to_end(mut self) -> Result<Header, SnapshotError> {
        if self.header.mechanism.is_queue() {
            while self.message()?.is_some() {}
        } else {
            while self.chunk()?.is_some() {}
        }
        Ok(self.header)
    }
}

#[cfg(test)]
pub(crate) mod tests;
