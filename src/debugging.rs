//! The debugging modes of queues and segments (docs/debugging.md): `sysv
//! msq --peek`, `--save FILE` and `--restore FILE` of the four kinds that
//! hold data, and `--dump` of a segment. Each prints typed records, text or
//! `--json`; the snapshot format and the moves themselves are `snapshot`'s.

use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;

use crate::hexdump::{self, HexLine};
use crate::ipc::posix_mq::PosixQueue;
use crate::ipc::sysv_msq::Msq;
use crate::ipc::sysv_shm::Shm;
use crate::ipc::{OpenError, Opened};
use crate::object::{Addr, Kind, ObjectRef};
use crate::output::{Out, bytes, escape_bytes, plural};
use crate::record::{self, Message, Record};
use crate::signal::Cancel;
use crate::snapshot::file::AtomicFile;
use crate::snapshot::object::{open_segment, peek_error};
use crate::snapshot::queue::{self, QueueSource, Saved};
use crate::snapshot::segment::{self, SegmentSource};
use crate::snapshot::{Attrs, CHUNK, Header, Mechanism, Origin, Reader, SnapshotError, Tag};
use crate::spec::QueueAttrs;
use crate::target::{PosixName, SysvKey};

/// A debugging mode, resolved from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Debugging {
    /// `sysv msq --peek`: `selector` as msgrcv's (0 any, T > 0 that type,
    /// T < 0 types up to |T|).
    Peek { key: SysvKey, selector: i64 },
    /// `--save FILE`; `keep`: System V queues only, MSG_COPY.
    Save {
        object: ObjectRef,
        file: PathBuf,
        keep: bool,
    },
    /// `--restore FILE` into a `kind`; `target` when given on the command
    /// line, else the file's own name or key. `partial` (queues): FILE may
    /// be cut short, and its whole messages are restored.
    Restore {
        kind: Kind,
        file: PathBuf,
        target: Option<Addr>,
        partial: bool,
    },
    /// `--dump [--offset N] [--length N]`.
    Dump {
        object: ObjectRef,
        offset: u64,
        length: Option<u64>,
    },
}

/// Run one debugging mode.
///
/// # Errors
/// The mode's failure: a missing object, a bad snapshot, a failed write.
pub fn run(mode: &Debugging, out: &mut Out) -> Result<ExitCode> {
    match mode {
        Debugging::Peek { key, selector } => peek(*key, *selector, out),
        Debugging::Save { object, file, keep } => save(object, file, *keep, out),
        Debugging::Restore {
            kind,
            file,
            target,
            partial,
        } => restore(*kind, file, target.as_ref(), *partial, out),
        Debugging::Dump {
            object,
            offset,
            length,
        } => dump(object, *offset, *length, out),
    }?;
    Ok(ExitCode::SUCCESS)
}

// ---- peek ----

/// Whether msgrcv's `selector` takes a message of type `mtype`. A negative
/// selector takes the types up to |T|; peek lists them in queue order.
fn selects(selector: i64, mtype: i64) -> bool {
    match selector {
        0 => true,
        t if t > 0 => mtype == t,
        t => mtype <= t.saturating_neg(),
    }
}

fn peek(key: SysvKey, selector: i64, out: &mut Out) -> Result<()> {
    let (q, _) = crate::sysv::find::<Msq>(&Addr::Key(key))?;
    let msgs = queue::peek_all(q)
        .map_err(peek_error)
        .with_context(|| format!("cannot peek at queue {key}"))?;
    let mut summary = Peeked {
        messages: 0,
        bytes: 0,
        queued: msgs.len() as u64,
        selector,
    };
    for (index, msg) in msgs.iter().enumerate() {
        let Tag::Type(mtype) = msg.tag else { continue };
        if !selects(selector, mtype) {
            continue;
        }
        out.line(&Message::new(false, PeekHead { index, mtype }, &msg.bytes))?;
        summary.messages += 1;
        summary.bytes += msg.bytes.len() as u64;
    }
    out.line(&summary)?;
    Ok(())
}

/// A peeked message's head: its place in the queue and its type, `[0]
/// type 1: ` before the payload (rendered as the server renders it).
#[derive(Serialize)]
struct PeekHead {
    index: usize,
    #[serde(rename = "type")]
    mtype: i64,
}

impl fmt::Display for PeekHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] type {}: ", self.index, self.mtype)
    }
}

/// The last line of a peek: `3 messages, 52 bytes`, and with `--type` how
/// many are queued in all.
#[derive(Serialize)]
struct Peeked {
    messages: u64,
    bytes: u64,
    queued: u64,
    #[serde(rename = "type")]
    selector: i64,
}

impl fmt::Display for Peeked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {}",
            plural(self.messages, "message", "messages"),
            bytes(self.bytes)
        )?;
        if self.selector != 0 {
            write!(f, " (of {} queued)", self.queued)?;
        }
        Ok(())
    }
}

crate::record_kind!(Peeked, "peeked");

// ---- save ----

fn save(object: &ObjectRef, file: &Path, keep: bool, out: &mut Out) -> Result<()> {
    let shown = || escape_bytes(file.as_os_str().as_encoded_bytes());
    // A save of a queue takes its messages: FILE may hold the only copy of
    // an earlier save's, so it is never replaced (docs/decisions.md).
    if file.symlink_metadata().is_ok() {
        return Err(crate::error::fail_with_hint(
            format!("{} exists", shown()),
            "a save never replaces a file; remove it or choose another name",
        ))
        .with_context(|| format!("cannot save {object} to {}", shown()));
    }
    // Ctrl-C or SIGTERM stops a queue save between two messages, and what
    // it took is committed; a copy (--keep) or a segment save has nothing
    // to keep and is stopped by the signal itself.
    let takes = is_queue(object.kind) && !keep;
    let cancel = takes
        .then(Cancel::install)
        .transpose()
        .context("cannot install signal handlers")?;
    let canceled = || cancel.as_ref().is_some_and(Cancel::is_canceled);
    let target =
        AtomicFile::create_new(file).with_context(|| format!("cannot create {}", shown()))?;
    let saved = crate::snapshot::object::save(object, keep, target, &canceled)
        .with_context(|| format!("cannot save {object} to {}", shown()))?;
    let was_canceled = canceled();
    // A queue removed meanwhile has no count to give: the saved line
    // still says what FILE holds.
    let left = was_canceled
        .then(|| crate::snapshot::object::queued(object).ok())
        .flatten();
    if was_canceled {
        out.past_echoed_interrupt()?;
    }
    out.line(&Moved {
        verb: if keep { "copied" } else { "saved" },
        mechanism: object.kind,
        at: at(&object.addr),
        file: file.to_path_buf(),
        messages: is_queue(object.kind).then_some(saved.messages),
        bytes: saved.bytes,
        created: None,
        left,
        counted: None,
    })?;
    if was_canceled {
        out.canceled_here()?;
        // Not exit 0 as a server's Ctrl-C: `save && clean` must not go on
        // to remove the messages the save did not take (docs/decisions.md).
        let held = left.map_or(String::new(), |n| {
            format!(
                ": {object} still holds {}",
                plural(n, "message", "messages")
            )
        });
        bail!("the save was canceled{held}");
    }
    Ok(())
}

fn is_queue(kind: Kind) -> bool {
    matches!(kind, Kind::PosixMsq | Kind::SysvMsq)
}

/// The object of a saved or restored line: `/q` or `0x0000002a`, raw (a
/// name as it is, for `--json`; the text escapes it).
fn at(addr: &Addr) -> String {
    match addr {
        Addr::Name(name) => name.as_str().to_string(),
        addr => addr.to_string().trim_start_matches("key ").to_string(),
    }
}

/// What a save or restore moved: `saved posix msq /q to FILE (3 messages,
/// 52 bytes)`, `restored ... from FILE (...; created)`.
#[derive(Serialize)]
struct Moved {
    #[serde(skip)]
    verb: &'static str,
    mechanism: Kind,
    #[serde(rename = "object")]
    at: String,
    #[serde(serialize_with = "record::path")]
    file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<u64>,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<bool>,
    /// A canceled save: the messages still in the queue after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    left: Option<u64>,
    /// A `--partial` restore of a file cut short: the messages its header
    /// counts, more than were restored.
    #[serde(rename = "header_messages", skip_serializing_if = "Option::is_none")]
    counted: Option<u64>,
}

impl fmt::Display for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = escape_bytes(self.file.as_os_str().as_encoded_bytes());
        let way = if self.created.is_some() { "from" } else { "to" };
        let [family, mech] = self.mechanism.words();
        write!(
            f,
            "{} {family} {mech} {} {way} {file} (",
            self.verb,
            escape_bytes(self.at.as_bytes())
        )?;
        match (self.messages, self.counted) {
            (Some(n), Some(of)) => write!(f, "{n} of the {of} messages the header counts, ")?,
            (Some(n), None) => write!(f, "{}, ", plural(n, "message", "messages"))?,
            (None, _) => {}
        }
        write!(f, "{}", bytes(self.bytes))?;
        if let Some(left) = self.left {
            write!(f, "; {left} left in the queue")?;
        }
        match self.created {
            Some(true) => f.write_str("; created")?,
            Some(false) => f.write_str("; into the existing one")?,
            None => {}
        }
        if self.counted.is_some() {
            f.write_str("; the file was cut short: an interrupted save")?;
        }
        f.write_str(")")
    }
}

impl Record for Moved {
    fn kind(&self) -> &'static str {
        match (self.verb, self.created) {
            (_, Some(_)) => "restored",
            ("copied", _) => "copied",
            _ => "saved",
        }
    }
}

// ---- restore ----

fn restore(
    kind: Kind,
    file: &Path,
    target: Option<&Addr>,
    partial: bool,
    out: &mut Out,
) -> Result<()> {
    let shown = || escape_bytes(file.as_os_str().as_encoded_bytes());
    let mechanism = Mechanism::of(kind).ok_or_else(|| anyhow!("{kind} holds no data"))?;
    let open = || crate::snapshot::open(file).map(|r| r.partial(partial));
    // The whole file is read first: a bad one changes nothing.
    let header = open()
        .and_then(|r| {
            r.expect(mechanism)?;
            r.check_to_end()
        })
        .map_err(short_queue_hint)
        .with_context(|| format!("cannot read snapshot {}", shown()))?;
    let addr = match (target, header.origin()) {
        (Some(addr), _) => addr.clone(),
        (None, Some(Origin::Name(name))) => Addr::Name(
            name.parse::<PosixName>()
                .map_err(|e| anyhow!("{e}"))
                .with_context(|| format!("cannot restore {}", shown()))?,
        ),
        // msgget/shmget(IPC_PRIVATE) would make an object no one can find
        // by key, whose id this line does not even print.
        (None, Some(Origin::Key(0))) => {
            return Err(crate::error::usage(format!(
                "cannot restore {}: it was saved from an IPC_PRIVATE object (key 0x00000000); \
                 name the key to restore it under with -k",
                shown()
            )));
        }
        (None, Some(Origin::Key(key))) => Addr::Key(SysvKey(key)),
        (None, None) => bail!("cannot restore {}: the header names no object", shown()),
    };
    let object = ObjectRef { kind, addr };
    let reopen = || open().with_context(|| format!("cannot read snapshot {}", shown()));
    let (saved, created) = into(&object, &header, reopen)
        .with_context(|| format!("cannot restore {} into {object}", shown()))?;
    let counted = header.messages.filter(|&n| n > saved.messages);
    out.line(&Moved {
        verb: "restored",
        mechanism: kind,
        at: at(&object.addr),
        file: file.to_path_buf(),
        messages: is_queue(kind).then_some(saved.messages),
        bytes: saved.bytes,
        created: Some(created),
        left: None,
        counted,
    })?;
    Ok(())
}

/// A queue's file cut short, as a killed save leaves it: the error says
/// how many whole messages it holds, and the hint how to restore them.
fn short_queue_hint(e: SnapshotError) -> anyhow::Error {
    let SnapshotError::ShortQueue { whole, .. } = e else {
        return e.into();
    };
    let hint = match whole {
        0 => "it holds no whole message to restore, not even with --partial".to_string(),
        1 => "--partial restores the whole message it holds (a save that was killed leaves \
              such a file)"
            .to_string(),
        n => format!(
            "--partial restores the {n} whole messages it holds (a save that was killed \
             leaves such a file)"
        ),
    };
    crate::error::fail_with_hint(e.to_string(), hint)
}

type FileReader = Reader<std::io::BufReader<std::fs::File>>;

/// Restore the checked snapshot (`header`, read again with `reopen`) into
/// `object`, creating it when missing: what was restored, and whether it
/// was created.
fn into(
    object: &ObjectRef,
    header: &Header,
    reopen: impl Fn() -> Result<FileReader>,
) -> Result<(Saved, bool)> {
    let segment_done = |bytes| Saved { messages: 0, bytes };
    match (&object.addr, object.kind) {
        (Addr::Name(name), Kind::PosixMsq) => {
            let need = needs(&mut reopen()?)?;
            let opened = open_posix_queue(name.as_str(), header)?;
            let attrs = opened.handle.attributes()?;
            need.fits(
                attrs.max_msg_len as u64,
                "the queue's msgsize",
                (attrs.capacity - attrs.current_messages) as u64,
                "free slots",
                need.messages,
            )?;
            let mut target = queue::PosixSource::new(&opened.handle)?;
            Ok((send_all(&mut target, reopen)?, opened.created))
        }
        (Addr::Key(key), Kind::SysvMsq) => {
            let need = needs(&mut reopen()?)?;
            let opened = queue::open_sysv_for_restore(key.raw(), header)?;
            let ds = opened.handle.stat()?;
            let msgmax = crate::sys::read_proc_u64("/proc/sys/kernel/msgmax").unwrap_or(8192);
            need.fits(
                ds.qbytes.min(msgmax),
                "the queue's msg_qbytes or msgmax",
                ds.qbytes.saturating_sub(ds.cbytes),
                "free bytes",
                need.bytes,
            )?;
            let mut target = queue::SysvSource::new(opened.handle);
            Ok((send_all(&mut target, reopen)?, opened.created))
        }
        (Addr::Name(name), Kind::PosixShm) => {
            let opened = segment::open_posix_for_restore(name.as_str(), header)?;
            crate::snapshot::object::check_segment(&opened.handle, name.as_str())?;
            let mut target = segment::PosixSegment::new(&opened.handle)?;
            let bytes = segment::restore(&mut target, &mut reopen()?, opened.created)?;
            Ok((segment_done(bytes), opened.created))
        }
        (Addr::Key(key), Kind::SysvShm) => {
            let opened = segment::open_sysv_for_restore(key.raw(), header)?;
            let mut target = segment::SysvAttachment::new(opened.handle, true)?;
            let bytes = segment::restore(&mut target, &mut reopen()?, opened.created)?;
            Ok((segment_done(bytes), opened.created))
        }
        _ => bail!("a {} is restored by name or key", object.kind),
    }
}

/// The POSIX queue to restore into, opened or created; a failed create
/// names the limit behind it (msg_max, RLIMIT_MSGQUEUE...), as a client
/// creating the queue does.
fn open_posix_queue(name: &str, header: &Header) -> Result<Opened<PosixQueue>> {
    match queue::open_posix_for_restore(name, header) {
        Ok(opened) => Ok(opened),
        Err(OpenError::Create(e)) => {
            let Some(Attrs::PosixMsq { maxmsg, msgsize }) = header.attrs() else {
                return Err(e.into());
            };
            let saturated = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
            let create = QueueAttrs {
                max_msgs: saturated(maxmsg),
                msg_size: saturated(msgsize),
            };
            Err(crate::posix::msq::create_error(
                e,
                &create,
                crate::mq_attrs::AskedBy::File,
            ))
        }
        Err(e) => Err(e.into_inner(|| std::io::ErrorKind::NotFound.into()).into()),
    }
}

/// Send every message of the file, without waiting: a queue that fills
/// meanwhile (another sender) stops the restore with how many went in.
fn send_all(
    target: &mut impl QueueSource,
    reopen: impl Fn() -> Result<FileReader>,
) -> Result<Saved> {
    Ok(queue::restore(target, &mut reopen()?)?)
}

/// What a snapshot's messages need of a queue: the largest, their count
/// and bytes.
struct Needs {
    largest: u64,
    messages: u64,
    bytes: u64,
}

fn needs<R: BufRead>(reader: &mut Reader<R>) -> Result<Needs> {
    let mut n = Needs {
        largest: 0,
        messages: 0,
        bytes: 0,
    };
    while let Some(msg) = reader.message()? {
        let len = msg.bytes.len() as u64;
        n.largest = n.largest.max(len);
        n.messages += 1;
        n.bytes += len;
    }
    Ok(n)
}

impl Needs {
    /// Refuse, before anything is sent, a message larger than `limit` or
    /// more than `room` (`need` of it) can take.
    fn fits(
        &self,
        limit: u64,
        limit_what: &str,
        room: u64,
        room_what: &str,
        need: u64,
    ) -> Result<()> {
        if self.largest > limit {
            bail!(
                "a message of {} is larger than {limit_what} ({limit}); nothing was sent",
                bytes(self.largest)
            );
        }
        if need > room {
            bail!(
                "the queue is too full: restoring {} needs {need} {room_what}, it has {room}; \
                 nothing was sent",
                plural(self.messages, "message", "messages")
            );
        }
        Ok(())
    }
}

// ---- dump ----

fn dump(object: &ObjectRef, offset: u64, length: Option<u64>, out: &mut Out) -> Result<()> {
    match (&object.addr, object.kind) {
        (Addr::Name(name), Kind::PosixShm) => {
            let shm = open_segment(name.as_str())?;
            let mut source = segment::PosixSegment::new(&shm)?;
            dump_from(&mut source, offset, length, out)
        }
        (addr, Kind::SysvShm) => {
            let (seg, _) = crate::sysv::find::<Shm>(addr)?;
            let mut source = segment::SysvAttachment::new(seg, false)
                .with_context(|| format!("cannot attach segment {addr}"))?;
            dump_from(&mut source, offset, length, out)
        }
        _ => bail!("only a segment can be dumped"),
    }
    .with_context(|| format!("cannot dump {object}"))
}

/// The bytes `offset..offset+length` (clipped to the size, as `xxd -s -l`
/// does), CHUNK at a time. A POSIX segment that shrank since its size was
/// read gives a short read: what is there is dumped, and the dump ends.
fn dump_from(
    source: &mut impl SegmentSource,
    offset: u64,
    length: Option<u64>,
    out: &mut Out,
) -> Result<()> {
    let size = source.size();
    let end = length.map_or(size, |l| offset.saturating_add(l).min(size));
    let mut buf = vec![0u8; CHUNK];
    let mut at = offset;
    while at < end {
        let want = (end - at).min(CHUNK as u64) as usize;
        let n = source.read_at(&mut buf[..want], at)?;
        for line in hexdump::lines(&buf[..n], at) {
            out.line(&Dumped(line))?;
        }
        if n < want {
            break;
        }
        at += n as u64;
    }
    Ok(())
}

/// One line of a dump: xxd's text; in JSON the offset, the bytes in hex
/// and their ASCII column.
struct Dumped<'a>(HexLine<'a>);

impl Serialize for Dumped<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Dumped", 3)?;
        st.serialize_field("offset", &self.0.offset)?;
        st.serialize_field("hex", &self.0.hex())?;
        st.serialize_field("ascii", &self.0.ascii())?;
        st.end()
    }
}

impl fmt::Display for Dumped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

crate::record_kind!(Dumped<'_>, "dump");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_msgrcvs() {
        assert!(selects(0, 5));
        assert!(selects(5, 5) && !selects(5, 4));
        assert!(selects(-3, 1) && selects(-3, 3) && !selects(-3, 4));
    }
}
