//! `posix shm`: server, client and `--stat` of a POSIX shared
//! memory segment, over the `ipc::posix_shm` handle.
//!
//! Layout is raw: the text at offset 0, NUL-terminated, so `cat /dev/shm/NAME`
//! and programs in any language read it. This tool reads and writes the
//! segment through its descriptor, not a mapping: a segment that is sparse on
//! a full /dev/shm, or shrunk by another process, then gives an error
//! (ENOSPC, a short read) where a mapping would die of SIGBUS.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sys::stat::FileStat;

use crate::error::{hinted, removed_under_server, undo_create};
use crate::ipc::posix_shm::PosixShm;
use crate::ipc::{OpenError, Owned, Remove};
use crate::object::Kind;
use crate::output::Out;
use crate::record::stat::Field;
use crate::record::{At, Opened, ShmStart, TextField, Written};
use crate::serve::{Flow, Server};
use crate::spec::{Create, SegmentAttrs, Serve, Shm, ShmRole, Watch};
use crate::target::PosixName;
use crate::text_input::client_text;

/// Open the segment, creating it with `size` bytes when missing; an
/// existing segment keeps its size. Returns whether this call created it.
///
/// Allocating the pages (rather than `ftruncate`) makes a full /dev/shm
/// fail here with ENOSPC instead of with SIGBUS at the first write; a
/// segment that cannot be allocated is unlinked again, never left half-made.
fn open_or_create(name: &PosixName, create: &Create<SegmentAttrs>) -> Result<(PosixShm, bool)> {
    let size = create.attrs.size;
    let opened = match PosixShm::open(name.as_str(), create.policy, create.mode.bits()) {
        Ok(opened) => opened,
        Err(OpenError::Create(e)) => {
            return Err(e).with_context(|| format!("cannot create segment {name}"));
        }
        Err(OpenError::Open(e)) => {
            return Err(e).with_context(|| format!("cannot open segment {name}"));
        }
        Err(OpenError::Vanished) => {
            bail!("cannot open segment {name}: it was removed while opening it")
        }
    };
    let seg = opened.handle;
    if opened.created {
        let seg = Owned::new(seg);
        allocate(&seg, name, size)?;
        return Ok((seg.release(), true));
    }
    // A segment someone created but never sized has nothing to lose: give
    // it our size rather than fail on it.
    if seg_size(&seg, name)? == 0 {
        allocate(&seg, name, size)?;
    }
    Ok((seg, false))
}

/// `posix_fallocate` of `size` bytes, with the hint a full /dev/shm needs.
fn allocate(seg: &PosixShm, name: &PosixName, size: u64) -> Result<()> {
    if i64::try_from(size).is_err() {
        bail!("--size {size} is too large");
    }
    seg.allocate(size)
        .map_err(|errno| match errno {
            Errno::ENOSPC => hinted(
                errno,
                format!("/dev/shm has no room for {size} bytes; `df -h /dev/shm` shows its size"),
            ),
            Errno::EFBIG => hinted(errno, format!("{size} bytes is above the file size limit")),
            e => e.into(),
        })
        .with_context(|| format!("cannot allocate {size} bytes for segment {name}"))
}

fn seg_stat(seg: &PosixShm, name: &PosixName) -> Result<FileStat> {
    seg.stat()
        .with_context(|| format!("cannot stat segment {name}"))
}

fn seg_size(seg: &PosixShm, name: &PosixName) -> Result<u64> {
    Ok(seg_stat(seg, name)?.st_size as u64)
}

/// Write `text` and its NUL at offset 0, then zero what is left of a longer
/// old text after it, so the segment reads as exactly `text` (also for
/// `cat`). The caller checked that `text.len() < size`.
///
/// `fallocate(FALLOC_FL_KEEP_SIZE)` of that range comes first. A segment
/// sized with `ftruncate` (as many programs do) is sparse: writing through a
/// mapping on a full /dev/shm dies of SIGBUS, and `pwrite` may stop
/// half-way. The allocation fails with ENOSPC before any byte changes (tmpfs
/// gives back what it allocated), and the `pwrite`s after it cannot run out
/// of room. Text and NUL go first, in one call; the old tail is cleared
/// after them, beyond the NUL where a reader of the text stops.
///
/// # Errors
/// ENOSPC when /dev/shm has no room for the pages (nothing was written); an
/// error, never a fault, when the segment shrank under us.
fn write_text(seg: &PosixShm, name: &PosixName, text: &[u8], size: u64) -> Result<()> {
    let limit = usize::try_from(size).context("segment too large to write")?;
    debug_assert!(text.len() < limit);
    let old_len = seg
        .text_len(limit)
        .with_context(|| format!("cannot read segment {name}"))?;
    let end = old_len.max(text.len() + 1);
    allocate_range(seg, name, end)?;
    if seg_size(seg, name)? < end as u64 {
        bail!("cannot write to segment {name}: it shrank while being written");
    }
    let mut head = Vec::with_capacity(text.len() + 1);
    head.extend_from_slice(text);
    head.push(0);
    pwrite_all(seg, name, &head, 0)?;
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut at = head.len();
    while at < end {
        let n = ZEROS.len().min(end - at);
        pwrite_all(seg, name, &ZEROS[..n], at)?;
        at += n;
    }
    Ok(())
}

/// Back bytes `0..len` with pages (`PosixShm::allocate_range`). A file
/// system without fallocate (EOPNOTSUPP; tmpfs has it) is no error:
/// `pwrite` then reports a full one.
fn allocate_range(seg: &PosixShm, name: &PosixName, len: usize) -> Result<()> {
    match seg.allocate_range(len as u64) {
        Ok(()) | Err(Errno::EOPNOTSUPP) => Ok(()),
        Err(Errno::ENOSPC) => Err(hinted(
            Errno::ENOSPC,
            format!(
                "the segment is sparse (sized with ftruncate, not allocated) and /dev/shm has no \
                 room for the pages of the {len} bytes this write covers; nothing was written. \
                 `df -h /dev/shm` shows its size"
            ),
        )),
        Err(e) => Err(e.into()),
    }
    .with_context(|| format!("cannot write to segment {name}"))
}

/// `pwrite` all of `buf` at `offset`, resuming after a short write or EINTR.
fn pwrite_all(seg: &PosixShm, name: &PosixName, mut buf: &[u8], mut offset: usize) -> Result<()> {
    while !buf.is_empty() {
        match seg.write_at(buf, offset as u64) {
            Ok(0) => bail!("cannot write to segment {name}: pwrite wrote nothing"),
            Ok(n) => {
                buf = &buf[n..];
                offset += n;
            }
            Err(Errno::EINTR) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot write to segment {name}"));
            }
        }
    }
    Ok(())
}

pub fn run(spec: &Shm<PosixName>, out: &mut Out) -> Result<ExitCode> {
    match &spec.role {
        ShmRole::Server { serve, watch } => server(&spec.target, &spec.create, serve, watch, out),
        ShmRole::Client { text } => client(&spec.target, &spec.create, text.as_deref(), out),
    }
}

fn server(
    name: &PosixName,
    create: &Create<SegmentAttrs>,
    serve: &Serve,
    watch: &Watch,
    out: &mut Out,
) -> Result<ExitCode> {
    let mut server = Server::new(out, serve)?;
    let (seg, created) = open_or_create(name, create)?;
    let own = seg_stat(&seg, name)?;
    let size = own.st_size as u64;
    let start = ShmStart {
        opened: Opened {
            mechanism: Kind::PosixShm,
            at: At::Name { name },
            created,
        },
        size,
        watch: *watch,
    };
    if server.start(&start)? == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    let limit = usize::try_from(size).context("segment too large to watch")?;
    server.watch_segment(watch, |whole| {
        let now = seg_stat(&seg, name)?;
        if (now.st_size as u64) < size {
            bail!(
                "segment {name} shrank from {size} to {} bytes under the server",
                now.st_size
            );
        }
        if !seg.still_linked(&own) {
            return Err(removed_under_server("segment", name, "shm_unlink"));
        }
        let mut text = Vec::new();
        if whole {
            // pread, never a mapping: a shrink between the check above and
            // here makes a short read, not a SIGBUS.
            let mut text = Server::segment_copy(limit)?;
            let n = seg
                .read_full_at(&mut text, 0)
                .with_context(|| format!("cannot read segment {name}"))?;
            text.truncate(n);
            return Ok(text);
        }
        seg.read_text(&mut text, limit)
            .with_context(|| format!("cannot read segment {name}"))?;
        Ok(text)
    })
}

fn client(
    name: &PosixName,
    create: &Create<SegmentAttrs>,
    message: Option<&str>,
    out: &mut Out,
) -> Result<ExitCode> {
    let (seg, created) = open_or_create(name, create)?;
    // A segment this call created and then could not write is removed again:
    // a refused call leaves nothing behind.
    let text = seg_size(&seg, name)
        .and_then(|size| {
            let text = client_text(message, size, name.as_str())?;
            write_text(&seg, name, &text, size)?;
            Ok(text)
        })
        .map_err(|e| {
            // Only while the name still leads to this segment.
            undo_create(e, created, "segment", || {
                seg.remove()
                    .with_context(|| format!("cannot remove segment {name}"))
            })
        })?;
    out.event(&Written {
        at: At::Name { name },
        bytes: text.len(),
        text: TextField(&text),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--stat`: stat(2) of /dev/shm/NAME, which needs no permission on the
/// segment itself.
pub fn stat(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    let st = match PosixShm::stat_name(name.as_str()) {
        Ok(st) => st,
        Err(Errno::ENOENT) => bail!("cannot stat segment {name}: no such segment"),
        Err(e) => return Err(e).with_context(|| format!("cannot stat segment {name}")),
    };
    let owner = (st.st_uid, st.st_gid, st.st_mode);
    super::print_stat(out, Kind::PosixShm, name, Field("size", st.st_size), owner)
}
