//! POSIX shared memory: `shm_open`, `posix_fallocate`, `pread`/`pwrite`,
//! `shm_unlink`.
//!
//! Layout is raw: the text at offset 0, NUL-terminated, so `cat /dev/shm/NAME`
//! and programs in any language read it. This tool reads and writes the
//! segment through its descriptor, not a mapping: a segment that is sparse on
//! a full /dev/shm, or shrunk by another process, then gives an error
//! (ENOSPC, a short read) where a mapping would die of SIGBUS.

use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, posix_fallocate};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{FileStat, Mode as StatMode, fstat, stat};

use crate::cli::{Mode, PosixShmArgs};
use crate::error::{hinted, undo_create};
use crate::output::{Fields, Out, Shown, escape_bytes};
use crate::serve::{Flow, Server};
use crate::sys::{UmaskGuard, insert_ownership, secs};
use crate::target::{FileMode, PosixName};
use crate::text_input::client_text;

/// An open segment: the descriptor, closed in `Drop`. Never unlinks.
pub struct Segment {
    fd: OwnedFd,
    name: PosixName,
}

impl Segment {
    /// `shm_open(O_CREAT|O_EXCL)` then `posix_fallocate(size)`; on `EEXIST`
    /// opens the existing segment and keeps its size. Returns whether this
    /// call created it.
    ///
    /// Allocating the pages (rather than `ftruncate`) makes a full /dev/shm
    /// fail here with ENOSPC instead of with SIGBUS at the first write; a
    /// segment that cannot be allocated is unlinked again, never left half-made.
    pub fn open_or_create(name: &PosixName, size: u64, mode: FileMode) -> Result<(Segment, bool)> {
        for _ in 0..2 {
            let made = {
                let _umask = UmaskGuard::clear();
                shm_open(
                    name.as_str(),
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
                    StatMode::from_bits_truncate(mode.bits()),
                )
            };
            match made {
                Ok(fd) => {
                    let seg = Segment {
                        fd,
                        name: name.clone(),
                    };
                    if let Err(e) = seg.allocate(size) {
                        let _ = shm_unlink(name.as_str());
                        return Err(e);
                    }
                    return Ok((seg, true));
                }
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create segment {name}")),
            }
            match Segment::open(name) {
                Ok(seg) => {
                    // A segment someone created but never sized has nothing
                    // to lose: give it our size rather than fail on it.
                    if seg.size()? == 0 {
                        seg.allocate(size)?;
                    }
                    return Ok((seg, false));
                }
                Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::ENOENT) => continue,
                Err(e) => return Err(e),
            }
        }
        bail!("cannot open segment {name}: it was removed while opening it")
    }

    /// `shm_open(O_RDWR)` of an existing segment.
    pub fn open(name: &PosixName) -> Result<Segment> {
        let fd = shm_open(name.as_str(), OFlag::O_RDWR, StatMode::empty())
            .with_context(|| format!("cannot open segment {name}"))?;
        Ok(Segment {
            fd,
            name: name.clone(),
        })
    }

    fn allocate(&self, size: u64) -> Result<()> {
        let len = i64::try_from(size).map_err(|_| anyhow!("--size {size} is too large"))?;
        posix_fallocate(self.fd.as_fd(), 0, len)
            .map_err(|errno| match errno {
                Errno::ENOSPC => hinted(
                    errno,
                    format!(
                        "/dev/shm has no room for {size} bytes; `df -h /dev/shm` shows its size"
                    ),
                ),
                Errno::EFBIG => hinted(errno, format!("{size} bytes is above the file size limit")),
                e => e.into(),
            })
            .with_context(|| format!("cannot allocate {size} bytes for segment {}", self.name))
    }

    pub fn stat(&self) -> Result<FileStat> {
        fstat(self.fd.as_fd()).with_context(|| format!("cannot stat segment {}", self.name))
    }

    pub fn size(&self) -> Result<u64> {
        Ok(self.stat()?.st_size as u64)
    }

    /// The text at offset 0 up to the first NUL (or the end), read with
    /// `pread` in pages so a large segment costs only its text. Unlike a read
    /// through a mapping, this cannot die of SIGBUS when another process
    /// shrinks the segment between our size check and the copy.
    pub fn read_text(&self, text: &mut Vec<u8>, limit: usize) -> Result<()> {
        const CHUNK: usize = 4096;
        text.clear();
        while text.len() < limit {
            let start = text.len();
            let want = CHUNK.min(limit - start);
            text.resize(start + want, 0);
            let n = nix::sys::uio::pread(self.fd.as_fd(), &mut text[start..], start as i64)
                .with_context(|| format!("cannot read segment {}", self.name))?;
            text.truncate(start + n);
            if let Some(nul) = text[start..].iter().position(|&b| b == 0) {
                text.truncate(start + nul);
                return Ok(());
            }
            if n < want {
                break;
            }
        }
        Ok(())
    }

    /// Whether /dev/shm/NAME is still this segment (not unlinked or replaced).
    pub fn still_linked(&self, own: &FileStat) -> bool {
        match stat(format!("/dev/shm/{}", self.name.file_name()).as_str()) {
            Ok(now) => now.st_ino == own.st_ino && now.st_dev == own.st_dev,
            Err(_) => false,
        }
    }

    /// Write `text` and its NUL at offset 0, then zero what is left of a
    /// longer old text after it, so the segment reads as exactly `text` (also
    /// for `cat`). The caller checked that `text.len() < size`.
    ///
    /// `fallocate(FALLOC_FL_KEEP_SIZE)` of that range comes first. A segment
    /// sized with `ftruncate` (as many programs do) is sparse: writing through
    /// a mapping on a full /dev/shm dies of SIGBUS, and `pwrite` may stop
    /// half-way. The allocation fails with ENOSPC before any byte changes (tmpfs
    /// gives back what it allocated), and the `pwrite`s after it cannot run out
    /// of room. Text and NUL go first, in one call; the old tail is cleared
    /// after them, beyond the NUL where a reader of the text stops.
    ///
    /// # Errors
    /// ENOSPC when /dev/shm has no room for the pages (nothing was written);
    /// an error, never a fault, when the segment shrank under us.
    ///
    /// # References
    /// [fallocate(2)](https://man7.org/linux/man-pages/man2/fallocate.2.html),
    /// [pwrite(2)](https://man7.org/linux/man-pages/man2/pwrite.2.html)
    pub fn write_text(&self, text: &[u8], size: u64) -> Result<()> {
        let limit = usize::try_from(size).context("segment too large to write")?;
        debug_assert!(text.len() < limit);
        let old_len = self.text_len(limit)?;
        let end = old_len.max(text.len() + 1);
        self.allocate_range(end)?;
        if self.size()? < end as u64 {
            bail!(
                "cannot write to segment {}: it shrank while being written",
                self.name
            );
        }
        let mut head = Vec::with_capacity(text.len() + 1);
        head.extend_from_slice(text);
        head.push(0);
        self.pwrite_all(&head, 0)?;
        const ZEROS: [u8; 4096] = [0; 4096];
        let mut at = head.len();
        while at < end {
            let n = ZEROS.len().min(end - at);
            self.pwrite_all(&ZEROS[..n], at)?;
            at += n;
        }
        Ok(())
    }

    /// Length of the text at offset 0: the offset of the first NUL, or
    /// `limit` when there is none. Reads page by page with `pread`, keeping
    /// nothing; holes of a sparse segment read as zeros and allocate nothing.
    fn text_len(&self, limit: usize) -> Result<usize> {
        let mut chunk = [0u8; 4096];
        let mut at = 0;
        while at < limit {
            let want = chunk.len().min(limit - at);
            let n = nix::sys::uio::pread(self.fd.as_fd(), &mut chunk[..want], at as i64)
                .with_context(|| format!("cannot read segment {}", self.name))?;
            if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
                return Ok(at + nul);
            }
            if n == 0 {
                break;
            }
            at += n;
        }
        Ok(at)
    }

    /// `fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, len)`: back bytes `0..len` with
    /// pages without changing the size or any content.
    ///
    /// # Errors
    /// ENOSPC with a hint when /dev/shm is full. A file system without
    /// fallocate (EOPNOTSUPP; tmpfs has it) is no error: `pwrite` then reports
    /// a full one.
    fn allocate_range(&self, len: usize) -> Result<()> {
        let len = i64::try_from(len).context("segment too large to write")?;
        let done = loop {
            match nix::fcntl::fallocate(
                self.fd.as_fd(),
                nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
                0,
                len,
            ) {
                Err(Errno::EINTR) => {}
                done => break done,
            }
        };
        match done {
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
        .with_context(|| format!("cannot write to segment {}", self.name))
    }

    /// `pwrite` all of `buf` at `offset`, resuming after a short write or EINTR.
    fn pwrite_all(&self, mut buf: &[u8], mut offset: usize) -> Result<()> {
        while !buf.is_empty() {
            match nix::sys::uio::pwrite(self.fd.as_fd(), buf, offset as i64) {
                Ok(0) => bail!(
                    "cannot write to segment {}: pwrite wrote nothing",
                    self.name
                ),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n;
                }
                Err(Errno::EINTR) => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot write to segment {}", self.name));
                }
            }
        }
        Ok(())
    }

    /// `shm_unlink` of this segment's name, but only while the name still
    /// leads to this segment: one that replaced it is not ours to remove.
    pub fn unlink_own(&self) -> Result<()> {
        let own = self.stat()?;
        if self.still_linked(&own) {
            shm_unlink(self.name.as_str())
                .with_context(|| format!("cannot remove segment {}", self.name))?;
        }
        Ok(())
    }
}

pub fn run(args: &PosixShmArgs, out: &mut Out) -> Result<ExitCode> {
    match args.mode.mode() {
        Mode::Server => server(args, out),
        Mode::Client => client(args, out),
        Mode::Clean => clean(&args.target.name, out),
        Mode::Stat => stat_cmd(&args.target.name, out),
    }
}

fn server(args: &PosixShmArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    let mut server = Server::new(out, &args.serve)?;
    let (seg, created) = Segment::open_or_create(name, args.shm.size, args.create.mode)?;
    let own = seg.stat()?;
    let size = own.st_size as u64;
    let interval = args.shm.interval.duration();
    let verb = if created { "created" } else { "opened" };
    let flow = server.start(
        format_args!(
            "posix shm {name}: {verb}, {size} bytes; printing the text every {} s{}",
            secs(interval),
            if args.shm.on_change {
                " when it changes"
            } else {
                ""
            }
        ),
        |f| {
            f.insert("mechanism".into(), "posix-shm".into());
            f.insert("name".into(), name.as_str().into());
            f.insert("created".into(), created.into());
            f.insert("size".into(), size.into());
        },
    )?;
    if flow == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    let limit = usize::try_from(size).context("segment too large to watch")?;
    server.watch_text(interval, args.shm.on_change, || {
        let now = seg.stat()?;
        if (now.st_size as u64) < size {
            bail!(
                "segment {name} shrank from {size} to {} bytes under the server",
                now.st_size
            );
        }
        if !seg.still_linked(&own) {
            bail!("segment {name} was removed (shm_unlink) under the server");
        }
        let mut text = Vec::new();
        seg.read_text(&mut text, limit)?;
        Ok(text)
    })
}

fn client(args: &PosixShmArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    let (seg, created) = Segment::open_or_create(name, args.shm.size, args.create.mode)?;
    // A segment this call created and then could not write is removed again:
    // a refused call leaves nothing behind.
    let text = seg
        .size()
        .and_then(|size| {
            let text = client_text(args.shm.message.as_deref(), size, name.as_str())?;
            seg.write_text(&text, size)?;
            Ok(text)
        })
        .map_err(|e| undo_create(e, created, "segment", || seg.unlink_own()))?;
    out.event(
        "written",
        format_args!("wrote {} bytes to {name}: {}", text.len(), Shown(&text)),
        |f| {
            f.insert("name".into(), name.as_str().into());
            f.insert("bytes".into(), text.len().into());
            f.insert("text".into(), escape_bytes(&text).into());
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn clean(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    match shm_unlink(name.as_str()) {
        Ok(()) => {}
        Err(Errno::ENOENT) => bail!("cannot remove segment {name}: no such segment"),
        Err(e) => return Err(e).with_context(|| format!("cannot remove segment {name}")),
    }
    out.removed("posix-shm", "segment", name)?;
    Ok(ExitCode::SUCCESS)
}

fn stat_cmd(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    // stat(2) of /dev/shm/NAME needs no permission on the segment itself.
    let st = match stat(format!("/dev/shm/{}", name.file_name()).as_str()) {
        Ok(st) => st,
        Err(Errno::ENOENT) => bail!("cannot stat segment {name}: no such segment"),
        Err(e) => return Err(e).with_context(|| format!("cannot stat segment {name}")),
    };
    let mut f = Fields::new();
    f.insert("mechanism".into(), "posix-shm".into());
    f.insert("name".into(), name.as_str().into());
    f.insert("size".into(), st.st_size.into());
    insert_ownership(&mut f, st.st_uid, st.st_gid, st.st_mode);
    out.attributes(&f)?;
    Ok(ExitCode::SUCCESS)
}
