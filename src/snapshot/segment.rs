//! Saving and restoring a segment's bytes, [`CHUNK`] at a time, so a huge
//! segment streams through a small buffer.
//!
//! A POSIX segment is read and written with `pread`/`pwrite`: another
//! process may shrink it meanwhile, which makes a read short (the save
//! then fails: a consistent copy cannot be had) but never kills us with
//! SIGBUS. A System V segment never changes size, so it is copied through
//! an attachment bounded by `shm_segsz`.
//!
//! A restore writes into a segment of exactly the saved size: one this
//! call creates (POSIX: allocated with posix_fallocate first, so a full
//! /dev/shm fails before anything is written), or an existing one of that
//! size. An existing segment of another size is refused: growing or
//! shrinking memory others map is not a restore's business.

use std::io::{self, BufRead};

use nix::errno::Errno;

use super::file::Commit;
use super::queue::{RestoreError, Saved, SnapshotOrIo};
use super::{Attrs, CHUNK, Chunk, Header, Origin, Reader, Writer};
use crate::ipc::mapping::Mapping;
use crate::ipc::posix_shm::PosixShm;
use crate::ipc::sysv_shm::SysvSegment;
use crate::ipc::{Creation, Key, OpenError, Opened, Owned};

/// A segment's bytes to save.
pub trait SegmentSource {
    /// The size when the save began.
    fn size(&self) -> u64;

    /// Up to `buf.len()` bytes at `offset`, fewer only at the end.
    ///
    /// # Errors
    /// The read error.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Where bytes that may not be zero start at or after `offset` (the
    /// size when none follow): a sparse segment's holes are zeros that need
    /// no reading. By default every byte may be data.
    ///
    /// # Errors
    /// The seek error.
    fn data_from(&mut self, offset: u64) -> io::Result<u64> {
        Ok(offset)
    }
}

/// A segment to restore into.
pub trait SegmentTarget {
    fn size(&self) -> u64;

    /// Write all of `bytes` at `offset`.
    ///
    /// # Errors
    /// The write error (ENOSPC).
    fn write_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()>;
}

/// Write `source`'s bytes under `header` (its size set here) and commit.
///
/// # Errors
/// The read, write or commit error; a segment that shrank while it was
/// read is an error too (InvalidData), and nothing is visible under the
/// target then.
pub fn save<S: SegmentSource, W: Commit>(
    source: &mut S,
    mut header: Header,
    out: W,
) -> io::Result<Saved> {
    let size = source.size();
    header.size = Some(size);
    let mut w = Writer::new(out, &header)?;
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < size {
        // A hole is one `zeros` line, however long: a 1 TiB segment made
        // with ftruncate saves in a moment, not in 22 million reads.
        let data = source.data_from(offset)?.clamp(offset, size);
        if data > offset {
            w.zeros(offset, data - offset)?;
            offset = data;
            continue;
        }
        let want = (size - offset).min(CHUNK as u64) as usize;
        let n = source.read_at(&mut buf[..want], offset)?;
        if n < want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the segment shrank from {size} to {} bytes while it was saved",
                    offset + n as u64
                ),
            ));
        }
        w.chunk(offset, &buf[..n])?;
        offset += n as u64;
    }
    w.into_inner().commit()?;
    Ok(Saved {
        messages: 0,
        bytes: size,
    })
}

/// Write the chunks of `reader` into `target`, which must have the
/// snapshot's size. `fresh`: the target is newly made and all zeros, so
/// zero chunks are skipped. Check the file to its end first
/// ([`Reader::check_to_end`]) so that a bad file changes nothing.
///
/// # Errors
/// [`RestoreError`] (its `sent` counts bytes): a size that differs, the
/// file's error, or the write error.
pub fn restore<T: SegmentTarget, R: BufRead>(
    target: &mut T,
    reader: &mut Reader<R>,
    fresh: bool,
) -> Result<u64, RestoreError> {
    let want = reader.header().size.unwrap_or(0);
    let mut done = 0u64;
    let fail = |sent, error| RestoreError { sent, error };
    if target.size() != want {
        let e = size_differs(target.size(), want);
        return Err(fail(0, SnapshotOrIo::Io(e)));
    }
    let zeros = vec![0u8; CHUNK];
    while let Some(chunk) = reader
        .chunk()
        .map_err(|e| fail(done, SnapshotOrIo::Snapshot(e)))?
    {
        let written = match &chunk {
            Chunk::Bytes { offset, bytes } => target.write_at(bytes, *offset),
            Chunk::Zeros { .. } if fresh => Ok(()),
            Chunk::Zeros { offset, len } => write_zeros(target, &zeros, *offset, *len),
        };
        written.map_err(|e| fail(done, SnapshotOrIo::Io(e)))?;
        done += chunk.len();
    }
    Ok(done)
}

fn write_zeros<T: SegmentTarget>(
    target: &mut T,
    zeros: &[u8],
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        target.write_at(&zeros[..n], offset + at)?;
        at += n as u64;
    }
    Ok(())
}

fn size_differs(have: u64, want: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the segment has {have} bytes, the snapshot {want}: a restore does not resize"),
    )
}

/// A POSIX segment read and written with `pread`/`pwrite`.
pub struct PosixSegment<'s> {
    shm: &'s PosixShm,
    size: u64,
}

impl<'s> PosixSegment<'s> {
    /// The segment at its size now (`fstat`).
    ///
    /// # Errors
    /// The `fstat` errno.
    pub fn new(shm: &'s PosixShm) -> Result<PosixSegment<'s>, Errno> {
        let size = u64::try_from(shm.stat()?.st_size).unwrap_or(0);
        Ok(PosixSegment { shm, size })
    }
}

impl SegmentSource for PosixSegment<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(self.shm.read_full_at(buf, offset)?)
    }

    fn data_from(&mut self, offset: u64) -> io::Result<u64> {
        Ok(self.shm.next_data(offset)?.unwrap_or(self.size))
    }
}

impl SegmentTarget for PosixSegment<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
        Ok(self.shm.write_all_at(bytes, offset)?)
    }
}

/// A System V segment through one attachment, detached in `Drop`.
pub struct SysvAttachment {
    map: Mapping,
}

impl SysvAttachment {
    /// Attach all of `segment`, read-only unless `writable`.
    ///
    /// # Errors
    /// The `shmat` errno (EACCES, EIDRM).
    pub fn new(segment: SysvSegment, writable: bool) -> Result<SysvAttachment, Errno> {
        Ok(SysvAttachment {
            map: segment.attach(!writable)?,
        })
    }
}

impl SegmentSource for SysvAttachment {
    fn size(&self) -> u64 {
        self.map.len() as u64
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        Ok(self.map.read_at(offset, buf))
    }
}

impl SegmentTarget for SysvAttachment {
    fn size(&self) -> u64 {
        self.map.len() as u64
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
        let offset = usize::try_from(offset).map_err(|_| Errno::EINVAL)?;
        Ok(self.map.write_at(offset, bytes)?)
    }
}

/// The header of a POSIX segment's snapshot (`fstat`).
///
/// # Errors
/// The `fstat` errno.
pub fn posix_header(name: &str, shm: &PosixShm) -> Result<Header, Errno> {
    let st = shm.stat()?;
    Ok(Header::new(
        Origin::Name(name.to_string()),
        Attrs::Segment {
            size: u64::try_from(st.st_size).unwrap_or(0),
        },
        st.st_mode & 0o7777,
        st.st_uid,
        st.st_gid,
    ))
}

/// The header of a System V segment's snapshot (IPC_STAT).
///
/// # Errors
/// The IPC_STAT errno.
pub fn sysv_header(segment: SysvSegment) -> Result<Header, Errno> {
    let st = segment.stat()?;
    Ok(Header::new(
        Origin::Key(st.perm.key),
        Attrs::Segment {
            size: st.size as u64,
        },
        u32::from(st.perm.mode) & 0o777,
        st.perm.uid,
        st.perm.gid,
    ))
}

/// The POSIX segment `name` to restore `header` into: an existing one as
/// it is ([`restore`] refuses another size), or a new one with the saved
/// mode, allocated to the saved size (removed again when that fails).
///
/// # Errors
/// The `shm_open` errno; ENOSPC from posix_fallocate on a full /dev/shm;
/// EINVAL for a header that is not a segment's.
pub fn open_posix_for_restore(name: &str, header: &Header) -> Result<Opened<PosixShm>, Errno> {
    let Some(Attrs::Segment { size }) = header.attrs() else {
        return Err(Errno::EINVAL);
    };
    let opened = PosixShm::open(name, Creation::OpenOrCreate, header.mode).map_err(Errno::from)?;
    if !opened.created {
        return Ok(opened);
    }
    let made = Owned::new(opened.handle);
    if size > 0 {
        made.allocate(size)?;
    }
    Ok(Opened {
        handle: made.release(),
        created: true,
    })
}

/// The System V segment of `key` to restore `header` into: an existing
/// one as it is ([`restore`] refuses another size), or a new one with the
/// saved size and mode.
///
/// # Errors
/// The `shmget` errno (EINVAL for a size outside SHMMIN..SHMMAX); EINVAL
/// for a header that is not a segment's.
pub fn open_sysv_for_restore(key: Key, header: &Header) -> Result<Opened<SysvSegment>, Errno> {
    let Some(Attrs::Segment { size }) = header.attrs() else {
        return Err(Errno::EINVAL);
    };
    let size = usize::try_from(size).map_err(|_| Errno::EINVAL)?;
    SysvSegment::open(key, Creation::OpenOrCreate, size, header.mode)
        .map_err(|e: OpenError<Errno>| Errno::from(e))
}

#[cfg(test)]
mod tests;
