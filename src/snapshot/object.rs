//! Saving one object, found by name, key or id, into a snapshot file:
//! what `clean --stale --save` does before it removes an object, and the
//! `--save FILE` mode of each queue and segment.

use std::io::{self, Write as _};

use anyhow::{Context as _, Result, anyhow};
use nix::errno::Errno;

use super::file::AtomicFile;
use super::queue::{self, Saved};
use super::{Header, Writer, segment};
use crate::ipc::Creation;
use crate::ipc::posix_mq::{Access, PosixQueue};
use crate::ipc::posix_shm::PosixShm;
use crate::ipc::sysv_msq::Msq;
use crate::ipc::sysv_shm::Shm;
use crate::object::{Addr, Kind, ObjectRef};

/// The POSIX queue `name`, read-write (a save takes and may put back),
/// or the contract's "no such queue".
///
/// # Errors
/// The `mq_open` error.
pub fn open_queue(name: &str) -> Result<PosixQueue> {
    PosixQueue::open_existing(name, Access::ReadWrite)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => anyhow!("no such queue"),
            _ => e.into(),
        })
        .with_context(|| format!("cannot open queue {name}"))
}

/// The POSIX segment `name`, or the contract's "no such segment".
///
/// # Errors
/// The `shm_open` error.
pub fn open_segment(name: &str) -> Result<PosixShm> {
    let shm = PosixShm::open(name, Creation::OpenOnly, 0)
        .map(|o| o.handle)
        .map_err(|e| match Errno::from(e) {
            Errno::ENOENT => anyhow!("no such segment"),
            e => e.into(),
        })
        .with_context(|| format!("cannot open segment {name}"))?;
    check_segment(&shm, name)?;
    Ok(shm)
}

/// Refuse what shm_open opened but is no segment: a FIFO or socket someone
/// made in /dev/shm would otherwise be saved, dumped or restored as a
/// segment of 0 bytes.
///
/// # Errors
/// The `fstat` errno, or what the file is.
pub fn check_segment(shm: &PosixShm, name: &str) -> Result<()> {
    let st = shm
        .stat()
        .with_context(|| format!("cannot stat segment {name}"))?;
    if crate::ipc::fifo::is_regular(&st) {
        return Ok(());
    }
    // The error line escapes the name, as every error line does.
    let what = crate::ipc::fifo::file_type(&st);
    Err(anyhow!("{name} in /dev/shm is {what}, not a segment"))
}

/// Save the queue or segment `target` into `out` and commit it. `keep`
/// (System V queues only): copy the messages with MSG_COPY instead of
/// taking them. A queue's taken messages go back when the write fails;
/// those that cannot are printed on stderr (see [`stranded`]). A queue
/// save asks `stop` before each take, and commits what it took once it
/// says yes (Ctrl-C).
///
/// # Errors
/// The open, read, write or commit error; the object is then as it was,
/// but for the stranded messages the error names.
pub fn save(
    target: &ObjectRef,
    keep: bool,
    out: AtomicFile,
    stop: &dyn Fn() -> bool,
) -> Result<Saved> {
    let segment_saved = |bytes| Saved { messages: 0, bytes };
    match (&target.addr, target.kind) {
        (Addr::Name(name), Kind::PosixMsq) => {
            let q = open_queue(name.as_str())?;
            let (header, n) = queue::posix_header(name.as_str(), &q)?;
            let mut source = queue::PosixSource::new(&q)?;
            queue::save_queue(&mut source, header.clone(), out, n, stop)
                .map_err(|e| stranded(e, header))
        }
        (addr, Kind::SysvMsq) => {
            let (q, _) = crate::sysv::find::<Msq>(addr)?;
            let (header, n) = queue::sysv_header(q)?;
            if keep {
                let msgs = queue::peek_all(q).map_err(peek_error)?;
                return Ok(queue::write(header, &msgs, out)?);
            }
            let mut source = queue::SysvSource::new(q);
            queue::save_queue(&mut source, header.clone(), out, n, stop)
                .map_err(|e| stranded(e, header))
        }
        (Addr::Name(name), Kind::PosixShm) => {
            let shm = open_segment(name.as_str())?;
            let header = segment::posix_header(name.as_str(), &shm)?;
            let mut source = segment::PosixSegment::new(&shm)?;
            Ok(segment_saved(
                segment::save(&mut source, header, out)?.bytes,
            ))
        }
        (addr, Kind::SysvShm) => {
            let (seg, _) = crate::sysv::find::<Shm>(addr)?;
            let header = segment::sysv_header(seg)?;
            let mut source = segment::SysvAttachment::new(seg, false)?;
            Ok(segment_saved(
                segment::save(&mut source, header, out)?.bytes,
            ))
        }
        _ => Err(anyhow!(
            "cannot save {target}: only queues and segments hold data"
        )),
    }
}

/// The messages in the queue `target` now: what a canceled save left.
///
/// # Errors
/// The open or stat error (the queue was removed meanwhile).
pub fn queued(target: &ObjectRef) -> Result<u64> {
    match (&target.addr, target.kind) {
        (Addr::Name(name), Kind::PosixMsq) => {
            Ok(open_queue(name.as_str())?.attributes()?.current_messages as u64)
        }
        (addr, Kind::SysvMsq) => Ok(crate::sysv::find::<Msq>(addr)?.0.stat()?.qnum),
        _ => Err(anyhow!("{target} holds no messages")),
    }
}

/// MSG_COPY's errors as the user needs them: ENOSYS says which kernel
/// option is missing and what works without it.
pub fn peek_error(e: Errno) -> anyhow::Error {
    match e {
        Errno::ENOSYS => crate::error::fail_with_hint(
            "MSG_COPY is not available: this kernel was built without CONFIG_CHECKPOINT_RESTORE",
            "--save FILE (without --keep) takes the messages into FILE, and --restore FILE \
             puts them back; --save --keep needs MSG_COPY too",
        ),
        Errno::EAGAIN => anyhow!(
            "the queue changed under every try to copy it (another process is receiving); try again"
        ),
        e => e.into(),
    }
}

/// A failed queue save whose taken messages could not all go back: they
/// are printed on stderr, the only place left for them, as a snapshot
/// (the header, then one line per message: exact, with base64 for binary
/// payloads) that `--restore` reads once saved to a file.
fn stranded(e: queue::SaveError, mut header: Header) -> anyhow::Error {
    if e.stranded.is_empty() {
        return anyhow!("{e}");
    }
    header.messages = Some(e.stranded.len() as u64);
    let mut err = io::stderr().lock();
    let what = match e.stranded.len() {
        1 => "the message that could not be put back follows".to_string(),
        n => format!("the {n} messages that could not be put back follow"),
    };
    let _ = writeln!(err, "{what}, as a snapshot for --restore:");
    let written = Writer::new(&mut err, &header)
        .and_then(|mut w| e.stranded.iter().try_for_each(|msg| w.message(msg)));
    if written.is_err() {
        return anyhow!("{e}; they could not be printed either: they are lost");
    }
    anyhow!("{e}; they are printed above")
}
