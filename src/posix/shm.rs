//! POSIX shared memory: `shm_open`, `posix_fallocate`, `mmap`, `shm_unlink`.
//!
//! Layout is raw: the text at offset 0, NUL-terminated, so `cat /dev/shm/NAME`
//! and programs in any language read it.

use std::io::{self, BufRead, IsTerminal, Write};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::ptr::NonNull;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, posix_fallocate};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap, shm_open, shm_unlink};
use nix::sys::stat::{FileStat, Mode as StatMode, fstat, stat};

use crate::cli::{Mode, PosixShmArgs};
use crate::error::{fail_with_hint, hinted};
use crate::output::{Fields, Out, Shown, escape_bytes};
use crate::serve::{Flow, Server};
use crate::sys::{UmaskGuard, insert_ownership, secs};
use crate::target::{FileMode, PosixName};

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

    /// `mmap(MAP_SHARED)` of the first `len` bytes.
    pub fn map(&self, len: usize) -> Result<Mapping> {
        let length =
            NonZeroUsize::new(len).ok_or_else(|| anyhow!("segment {} has size 0", self.name))?;
        // SAFETY: a new shared mapping at an address the kernel picks cannot
        // alias Rust memory; `Mapping` unmaps it exactly once, in Drop.
        let ptr = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                self.fd.as_fd(),
                0,
            )
        }
        .with_context(|| format!("cannot map segment {}", self.name))?;
        Ok(Mapping { ptr, len })
    }
}

/// A shared mapping, unmapped in `Drop`.
pub struct Mapping {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

impl Mapping {
    /// Copy `text` and a NUL terminator to offset 0. The caller checked that
    /// both fit and that the segment is at least `len` long.
    pub fn write_text(&self, text: &[u8]) {
        debug_assert!(text.len() < self.len);
        let dst = self.ptr.as_ptr().cast::<u8>();
        // SAFETY: text.len() + 1 <= len bytes of a live, writable mapping;
        // the source is a Rust slice and cannot overlap a fresh mapping.
        // Other processes may read concurrently: that is shared memory's
        // nature, and the NUL is written last so a reader sees old or new text
        // up to a terminator.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), dst, text.len());
            dst.add(text.len()).write_volatile(0);
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len come from one successful mmap and are unmapped once.
        let _ = unsafe { munmap(self.ptr, self.len) };
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

/// The client's text: `-m TEXT`, or one line of standard input.
pub fn input_text(message: Option<&str>) -> Result<Vec<u8>> {
    if let Some(text) = message {
        return Ok(text.as_bytes().to_vec());
    }
    let stdin = io::stdin();
    if stdin.is_terminal() {
        let mut stdout = io::stdout();
        stdout.write_all(b"Please enter something: ")?;
        stdout.flush()?;
    }
    let mut line = Vec::new();
    let n = stdin
        .lock()
        .read_until(b'\n', &mut line)
        .context("cannot read standard input")?;
    if n == 0 {
        bail!("no text: standard input ended before a line (give -m TEXT)");
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(line)
}

/// Refuse text that does not fit with its NUL terminator.
pub fn check_fits(text: &[u8], size: u64, what: &str) -> Result<()> {
    if text.len() as u64 >= size {
        return Err(fail_with_hint(
            format!(
                "the text is {} bytes but the segment is {size} bytes ({} usable: one byte is the NUL terminator); nothing was written",
                text.len(),
                size.saturating_sub(1)
            ),
            "write less, or remove the segment and create it with a larger --size",
        ))
        .with_context(|| format!("cannot write to segment {what}"));
    }
    Ok(())
}

fn client(args: &PosixShmArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    let text = input_text(args.shm.message.as_deref())?;
    let (seg, _created) = Segment::open_or_create(name, args.shm.size, args.create.mode)?;
    let size = seg.size()?;
    check_fits(&text, size, name.as_str())?;
    let map = seg.map(usize::try_from(size).context("segment too large to map")?)?;
    // Re-check after mapping: a shrink between the two would make the copy fault.
    if seg.size()? < size {
        bail!("cannot write to segment {name}: it shrank while being opened");
    }
    map.write_text(&text);
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
