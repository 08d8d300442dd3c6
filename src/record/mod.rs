//! Typed output records: each event and result a command prints is a struct
//! with `Serialize` (its JSON fields, in order) and `Display` (its text
//! line), so `--json` and text come from the same value. [`Out`] writes them:
//! [`Out::event`] with a timestamp, [`Out::line`] without, [`Out::stat`] for
//! `--stat`.
//!
//! Strings from outside (names, paths, payloads, user names) are escaped
//! for text in one place: [`Escaped`] and [`Shown`] here and in `output`,
//! with [`Out`]'s line boundary behind them for anything that forgot. JSON
//! keeps them exact.
//!
//! [`Out`]: crate::output::Out
//! [`Out::event`]: crate::output::Out::event
//! [`Out::line`]: crate::output::Out::line
//! [`Out::stat`]: crate::output::Out::stat
//! [`Escaped`]: crate::output::Escaped
//! [`Shown`]: crate::output::Shown

pub mod stat;

use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use std::time::Duration;

use crate::ipc::Id;
use crate::object::Kind;
use crate::output::{Payload, Shown, escape_bytes};
use crate::spec::{Create, SemAttrs, Watch};
use crate::sys::secs;
use crate::target::{PosixName, SysvKey};

/// A line of output: its JSON `kind`, its fields (`Serialize`, flattened
/// after `kind`) and its text (`Display`).
pub trait Record: Serialize + fmt::Display {
    /// The `kind` of its JSON object: `message`, `start`, `removed`...
    fn kind(&self) -> &'static str;
}

/// A message a server took (`message`) or a client sent (`sent`): its
/// head (a POSIX priority, a System V type, nothing for a FIFO's line),
/// size and payload. Text: `[sent ]<head><payload>`.
#[derive(Serialize)]
pub struct Message<'a, H> {
    #[serde(skip)]
    pub sent: bool,
    #[serde(flatten)]
    pub head: H,
    pub size: usize,
    #[serde(flatten)]
    pub payload: PayloadField<'a>,
}

impl<'a, H> Message<'a, H> {
    pub fn new(sent: bool, head: H, bytes: &'a [u8]) -> Self {
        Message {
            sent,
            head,
            size: bytes.len(),
            payload: PayloadField(Payload(bytes)),
        }
    }
}

impl<H: fmt::Display> fmt::Display for Message<'_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = if self.sent { "sent " } else { "" };
        write!(f, "{sent}{}{}", self.head, self.payload.0)
    }
}

impl<H: Serialize + fmt::Display> Record for Message<'_, H> {
    fn kind(&self) -> &'static str {
        if self.sent { "sent" } else { "message" }
    }
}

/// `impl Record` for a type whose lines are all of one kind:
/// `record_kind!(Start<'_>, "start");`.
#[macro_export]
macro_rules! record_kind {
    ($ty:ty, $kind:literal) => {
        impl $crate::record::Record for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }
        }
    };
}

/// A payload's JSON field, `"payload": <JSON>` when it parses as JSON, else
/// `"text": "<escaped>"`: flattened into the record that carries it.
pub struct PayloadField<'a>(pub Payload<'a>);

impl Serialize for PayloadField<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (key, value) = self.0.json_field();
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(key, &value)?;
        map.end()
    }
}

/// Segment text in JSON: valid UTF-8 kept, control characters and other
/// bytes as `\xNN`, as text lines show it.
pub struct TextField<'a>(pub &'a [u8]);

impl Serialize for TextField<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&escape_bytes(self.0))
    }
}

/// A POSIX name in JSON: exact, as `mq_open` takes it.
pub fn posix_name<S: Serializer>(name: &PosixName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(name.as_str())
}

/// A System V key in JSON: as ipcs prints it, `0x000000c8`.
pub fn sysv_key<S: Serializer>(key: &SysvKey, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(key)
}

/// A path in JSON: as `display()` shows it (lossy for bytes that are not UTF-8).
pub fn path<S: Serializer>(path: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&path.display())
}

/// The object of a start line: a POSIX name (JSON `"name"`), or a System
/// V key with its id (`"key"`, `"id"`).
#[derive(Serialize)]
#[serde(untagged)]
pub enum At<'a> {
    Name {
        #[serde(serialize_with = "posix_name")]
        name: &'a PosixName,
    },
    Key {
        #[serde(serialize_with = "sysv_key")]
        key: SysvKey,
        id: Id,
    },
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Name { name } => name.fmt(f),
            At::Key { key, id } => write!(f, "{key} (id {id})"),
        }
    }
}

/// How every server's start line begins: `posix msq /q: created`, or
/// `sysv shm 0x000000c8 (id 3): opened`; in JSON the mechanism, the object
/// and `created`.
#[derive(Serialize)]
pub struct Opened<'a> {
    pub mechanism: Kind,
    #[serde(flatten)]
    pub at: At<'a>,
    pub created: bool,
}

impl fmt::Display for Opened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [family, mech] = self.mechanism.words();
        write!(f, "{family} {mech} {}: {}", self.at, verb(self.created))
    }
}

/// A shm server's start line, either family: `posix shm /s: created,
/// 4096 bytes; printing the text every 3 s`.
#[derive(Serialize)]
pub struct ShmStart<'a> {
    #[serde(flatten)]
    pub opened: Opened<'a>,
    pub size: u64,
    #[serde(skip)]
    pub watch: Watch,
}

impl fmt::Display for ShmStart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = crate::output::bytes(self.size);
        write!(f, "{}, {size}; {}", self.opened, Printing(self.watch))
    }
}

crate::record_kind!(ShmStart<'_>, "start");

/// A sem server's start line, either family: `sysv sem 0x000000c8 (id 3):
/// created with value 2; printing the value when it changes (polling every
/// 1 s)`.
#[derive(Serialize)]
pub struct SemStart<'a> {
    #[serde(flatten)]
    pub opened: Opened<'a>,
    /// The value a new semaphore got; None for one that existed.
    #[serde(skip)]
    pub value: Option<u32>,
    #[serde(skip)]
    pub interval: Duration,
}

impl<'a> SemStart<'a> {
    /// A server's start line: the value it gave a semaphore it made.
    pub fn new(opened: Opened<'a>, create: &Create<SemAttrs>, interval: Duration) -> Self {
        SemStart {
            value: opened.created.then_some(create.attrs.value),
            opened,
            interval,
        }
    }
}

impl fmt::Display for SemStart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let interval = self.interval;
        write!(
            f,
            "{}{}; {}",
            self.opened,
            WithValue(self.value),
            Watching { interval }
        )
    }
}

crate::record_kind!(SemStart<'_>, "start");

/// A shm client's text, either family: `wrote 2 bytes to /s: hi` (a
/// System V segment by its key).
#[derive(Serialize)]
pub struct Written<'a> {
    #[serde(flatten)]
    pub at: At<'a>,
    pub bytes: usize,
    pub text: TextField<'a>,
}

impl fmt::Display for Written<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = crate::output::bytes(self.bytes);
        let shown = Shown(self.text.0);
        match &self.at {
            At::Name { name } => write!(f, "wrote {bytes} to {name}: {shown}"),
            At::Key { key, .. } => write!(f, "wrote {bytes} to {key}: {shown}"),
        }
    }
}

crate::record_kind!(Written<'_>, "written");

/// `created` or `opened`, as a start line says what happened.
pub fn verb(created: bool) -> &'static str {
    if created { "created" } else { "opened" }
}

/// `--clean` of a POSIX object: `removed queue /q`.
#[derive(Serialize)]
pub struct RemovedName<'a> {
    pub mechanism: Kind,
    #[serde(serialize_with = "posix_name")]
    pub name: &'a PosixName,
}

impl fmt::Display for RemovedName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "removed {} {}", self.mechanism.what(), self.name)
    }
}

crate::record_kind!(RemovedName<'_>, "removed");

/// `--clean` of a System V object: `removed queue (key 0x000000c8, id 3)`,
/// or `removed queue (id 3)` when it was addressed by id.
#[derive(Serialize)]
pub struct RemovedId {
    pub mechanism: Kind,
    pub id: crate::ipc::Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "opt_key")]
    pub key: Option<crate::target::SysvKey>,
}

fn opt_key<S: Serializer>(key: &Option<crate::target::SysvKey>, s: S) -> Result<S::Ok, S::Error> {
    match key {
        Some(key) => s.collect_str(key),
        None => s.serialize_none(),
    }
}

impl fmt::Display for RemovedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self.mechanism.what();
        match self.key {
            Some(key) => write!(f, "removed {what} (key {key}, id {})", self.id),
            None => write!(f, "removed {what} (id {})", self.id),
        }
    }
}

crate::record_kind!(RemovedId, "removed");

/// `canceled.`: the last line of a server stopped by a signal.
#[derive(Serialize)]
pub struct Canceled {}

impl fmt::Display for Canceled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("canceled.")
    }
}

crate::record_kind!(Canceled, "canceled");

/// A shm server's print of the segment's text: the text, or `(empty)`.
#[derive(Serialize)]
pub struct Memory<'a> {
    pub text: TextField<'a>,
}

impl fmt::Display for Memory<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Shown(self.text.0).fmt(f)
    }
}

crate::record_kind!(Memory<'_>, "memory");

/// A shm server's print with `--diff`: the text, then the byte ranges
/// (start inclusive, end exclusive) that changed since the last print:
/// `hello (changed: 0..5)`. None at the first print, which has nothing to
/// compare with.
#[derive(Serialize)]
pub struct MemoryDiff<'a> {
    pub text: TextField<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<(usize, usize)>>,
}

impl fmt::Display for MemoryDiff<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Shown(self.text.0).fmt(f)?;
        if let Some(ranges) = &self.changed {
            f.write_str(" (changed: ")?;
            for (i, (start, end)) in ranges.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                write!(f, "{sep}{start}..{end}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

crate::record_kind!(MemoryDiff<'_>, "memory");

/// A sem server's print of the value: `semaphore: 2`.
#[derive(Serialize)]
pub struct Value {
    pub value: i64,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "semaphore: {}", self.value)
    }
}

crate::record_kind!(Value, "semaphore");

/// `printing the text every 3 s when it changes`: what a shm server (POSIX,
/// System V, memfd) says it does.
pub struct Printing(pub Watch);

impl fmt::Display for Printing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "printing the text every {} s", secs(self.0.interval))?;
        if self.0.diff {
            f.write_str(" when any byte changes, with the ranges that did")?;
        } else if self.0.on_change {
            f.write_str(" when it changes")?;
        }
        Ok(())
    }
}

/// `printing the value when it changes (polling every 1 s)`: what a sem
/// server of either family says it does.
pub struct Watching {
    pub interval: Duration,
}

impl fmt::Display for Watching {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "printing the value when it changes (polling every {} s)",
            secs(self.interval)
        )
    }
}

/// ` with value 2` after `created` in a sem server's start line; nothing
/// for a semaphore it opened.
pub struct WithValue(pub Option<u32>);

impl fmt::Display for WithValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, " with value {value}"),
            None => Ok(()),
        }
    }
}

/// What a semaphore client of either family did: its line's kind and verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Did {
    Taken,
    Released,
}

impl Did {
    /// The `kind` of its line.
    pub fn kind(self) -> &'static str {
        match self {
            Did::Taken => "taken",
            Did::Released => "released",
        }
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Did::Taken => "took one unit of",
            Did::Released => "gave one unit back to",
        })
    }
}
