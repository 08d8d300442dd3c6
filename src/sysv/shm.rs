//! System V shared memory: `shmget`, `shmat`, `shmdt`, `shmctl`.
//!
//! Layout is raw, as for POSIX shm: the text at offset 0, NUL-terminated, so
//! a C program that `shmat`s the segment reads it as a string. A System V
//! segment never changes size, so unlike a POSIX mapping an attachment can
//! never fault with SIGBUS; removal (IPC_RMID) is what a server must notice.

use std::process::ExitCode;
use std::ptr::NonNull;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;

use crate::cli::{Mode, SysvShmArgs};
use crate::error::{hinted, undo_create};
use crate::output::{Out, Shown, escape_bytes};
use crate::posix::shm::client_text;
use crate::serve::{Flow, Server};
use crate::sys::secs;
use crate::sysv::common::{
    Addr, Perm, StatLines, SysvObject, addr, clean, create_or_open, find, limit_hint,
};
use crate::target::{FileMode, SysvKey};

/// `SHM_DEST` in `shm_perm.mode`: IPC_RMID was called while attached; the
/// segment goes away at the last detach. Not exported by the libc crate.
const SHM_DEST: libc::c_ushort = 0o1000;

/// A System V shared memory segment, by id. An id is not a process resource:
/// the attachment (`Attached`) is what `Drop` must release.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    id: libc::c_int,
}

impl Segment {
    /// `shmget(key, size, IPC_CREAT|IPC_EXCL|mode)`: EEXIST when the key is
    /// taken. The kernel zero-fills the pages, so the text starts empty.
    ///
    /// # References
    /// [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
    pub fn create(key: SysvKey, size: usize, mode: FileMode) -> Result<Segment, Errno> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | mode.bits() as libc::c_int;
        // SAFETY: shmget takes plain integers and touches no memory of ours.
        let id = Errno::result(unsafe { libc::shmget(key.raw(), size, flags) })?;
        Ok(Segment { id })
    }

    /// Open `key`, creating it with `size` when missing (an existing segment
    /// keeps its size); returns whether this call created it.
    pub fn open_or_create(
        key: SysvKey,
        size: usize,
        mode: FileMode,
    ) -> Result<(Segment, bool), Errno> {
        create_or_open(|| Segment::create(key, size, mode), || Segment::open(key))
    }

    /// `shmat(id, NULL, readonly ? SHM_RDONLY : 0)` of the whole segment.
    pub fn attach(&self, readonly: bool) -> Result<Attached, Errno> {
        let len = self.stat()?.shm_segsz;
        let flags = if readonly { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel pick a free range, so the
        // new mapping cannot alias Rust memory. (void *) -1 means failure.
        let ptr = unsafe { libc::shmat(self.id, std::ptr::null(), flags) };
        if ptr as isize == -1 {
            return Err(Errno::last());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::EINVAL)?;
        Ok(Attached { ptr, len, readonly })
    }
}

/// An attachment of a whole segment, detached (`shmdt`) in `Drop`, never removed.
pub struct Attached {
    ptr: NonNull<u8>,
    len: usize,
    readonly: bool,
}

impl Attached {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The text at offset 0, up to the first NUL (or the whole segment),
    /// copied into `text`. Copies in chunks and stops at the chunk with the
    /// NUL, so watching a large segment costs the length of its text, not
    /// its size.
    pub fn read_text(&self, text: &mut Vec<u8>) {
        const CHUNK: usize = 4096;
        text.clear();
        let mut offset = 0;
        while offset < self.len {
            let n = CHUNK.min(self.len - offset);
            text.reserve(n);
            // SAFETY: offset + n <= len bytes of a live attachment (a System
            // V segment never shrinks, and IPC_RMID keeps it until the last
            // detach); the destination is `n` bytes of spare capacity of our
            // own Vec, reserved just above. Other processes may write
            // meanwhile: the copy then holds old or new bytes, which is what
            // shared memory offers.
            unsafe {
                let dst = text.as_mut_ptr().add(text.len());
                std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), dst, n);
                text.set_len(text.len() + n);
            }
            if let Some(end) = text[offset..].iter().position(|&b| b == 0) {
                text.truncate(offset + end);
                return;
            }
            offset += n;
        }
    }

    /// Copy `text` and a NUL terminator to offset 0, then zero what is left
    /// of a longer old text after it, so the segment holds exactly `text` up
    /// to the old text's end. The caller checked with `client_text` that
    /// `text.len() < len`.
    pub fn write_text(&self, text: &[u8]) -> Result<(), Errno> {
        if self.readonly || text.len() >= self.len {
            return Err(Errno::EINVAL);
        }
        let mut old = Vec::new();
        self.read_text(&mut old);
        let dst = self.ptr.as_ptr();
        // SAFETY: text.len() + 1 <= len bytes of a live, writable attachment;
        // the source is a Rust slice and cannot overlap it. The NUL goes before
        // the old tail is cleared, so the clearing happens beyond the
        // terminator where a reader of the text stops.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), dst, text.len());
            dst.add(text.len()).write_volatile(0);
        }
        let start = text.len() + 1;
        if old.len() > start {
            // SAFETY: start..old.len() lies within the attachment: read_text
            // stops at len, and start <= len was checked above.
            unsafe { std::ptr::write_bytes(dst.add(start), 0, old.len() - start) };
        }
        Ok(())
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: ptr is the address one successful shmat returned; it is
        // detached exactly once, here.
        unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
    }
}

impl SysvObject for Segment {
    type Ds = libc::shmid_ds;
    const WHAT: &'static str = "segment";
    const MECHANISM: &'static str = "sysv-shm";

    /// `shmget(key, 0, 0)`: an existing segment of any size; ENOENT when none.
    fn open(key: SysvKey) -> Result<Self, Errno> {
        // SAFETY: shmget takes plain integers and touches no memory of ours.
        let id = Errno::result(unsafe { libc::shmget(key.raw(), 0, 0) })?;
        Ok(Segment { id })
    }

    fn with_id(id: libc::c_int) -> Self {
        Segment { id }
    }

    fn id(&self) -> libc::c_int {
        self.id
    }

    /// `shmctl(IPC_STAT)`
    fn stat(&self) -> Result<libc::shmid_ds, Errno> {
        // SAFETY: shmid_ds is plain old data (integers only): all zero is valid.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: ds is a valid, writable shmid_ds for the kernel to fill.
        Errno::result(unsafe { libc::shmctl(self.id, libc::IPC_STAT, &mut ds) })?;
        Ok(ds)
    }

    /// `shmctl(IPC_RMID)`: the segment goes when the last process detaches.
    fn remove(&self) -> Result<(), Errno> {
        // SAFETY: IPC_RMID reads no buffer; null is allowed.
        Errno::result(unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) })?;
        Ok(())
    }
}

pub fn run(args: &SysvShmArgs, out: &mut Out) -> Result<ExitCode> {
    let mode = args.mode.mode();
    let at = addr(&args.target, mode)?;
    match mode {
        Mode::Server => server(args, out),
        Mode::Client => client(args, out),
        Mode::Clean => clean::<Segment>(at, out),
        Mode::Stat => stat_cmd(at, out),
    }
}

fn open_or_create(args: &SysvShmArgs) -> Result<(Segment, bool)> {
    let key = args.target.key;
    let size = usize::try_from(args.shm.size)
        .map_err(|_| anyhow!("--size {} is too large", args.shm.size))?;
    Segment::open_or_create(key, size, args.create.mode)
        .map_err(|e| match e {
            Errno::EINVAL => hinted(
                e,
                format!(
                    "--size {size} is outside SHMMIN..SHMMAX (/proc/sys/kernel/shmmax is {})",
                    crate::sys::read_proc_u64("/proc/sys/kernel/shmmax")
                        .map_or_else(|| "?".into(), |v| v.to_string())
                ),
            ),
            Errno::ENOSPC => hinted(
                e,
                limit_hint("shared memory (segment count or total pages)", "shmmni"),
            ),
            e => e.into(),
        })
        .with_context(|| format!("cannot open segment {key}"))
}

fn server(args: &SysvShmArgs, out: &mut Out) -> Result<ExitCode> {
    let key = args.target.key;
    let mut server = Server::new(out, &args.serve)?;
    let (seg, created) = open_or_create(args)?;
    // Read-only is enough to watch, and works on a 0644 segment of another user.
    let map = seg
        .attach(true)
        .with_context(|| format!("cannot attach segment {key}"))?;
    let size = map.len();
    let interval = args.shm.interval.duration();
    let verb = if created { "created" } else { "opened" };
    let flow = server.start(
        format_args!(
            "sysv shm {key} (id {}): {verb}, {size} bytes; printing the text every {} s{}",
            seg.id(),
            secs(interval),
            if args.shm.on_change {
                " when it changes"
            } else {
                ""
            }
        ),
        |f| {
            f.insert("mechanism".into(), "sysv-shm".into());
            f.insert("key".into(), key.to_string().into());
            f.insert("id".into(), seg.id().into());
            f.insert("created".into(), created.into());
            f.insert("size".into(), size.into());
        },
    )?;
    if flow == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    server.watch_text(interval, args.shm.on_change, || {
        // Our own attachment keeps a removed segment alive, so IPC_STAT still
        // works: removal shows as SHM_DEST and the key reset to IPC_PRIVATE.
        // Once gone entirely (cannot happen while attached), shmctl fails.
        match seg.stat() {
            Ok(ds)
                if ds.shm_perm.mode & SHM_DEST != 0 || ds.shm_perm.__key == libc::IPC_PRIVATE =>
            {
                bail!(
                    "segment {key} (id {}) was removed (IPC_RMID) under the server",
                    seg.id()
                )
            }
            Ok(_) => {}
            Err(Errno::EINVAL | Errno::EIDRM) => {
                bail!(
                    "segment {key} (id {}) was removed (IPC_RMID) under the server",
                    seg.id()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("cannot stat segment {key}")),
        }
        let mut text = Vec::new();
        map.read_text(&mut text);
        Ok(text)
    })
}

fn client(args: &SysvShmArgs, out: &mut Out) -> Result<ExitCode> {
    let key = args.target.key;
    let (seg, created) = open_or_create(args)?;
    // A segment this call created and then could not write is removed again:
    // a refused call leaves nothing behind.
    let text = write_client_text(args, seg).map_err(|e| {
        undo_create(e, created, "segment", || {
            seg.remove()
                .with_context(|| format!("cannot remove segment {key}"))
        })
    })?;
    out.event(
        "written",
        format_args!("wrote {} bytes to {key}: {}", text.len(), Shown(&text)),
        |f| {
            f.insert("key".into(), key.to_string().into());
            f.insert("id".into(), seg.id().into());
            f.insert("bytes".into(), text.len().into());
            f.insert("text".into(), escape_bytes(&text).into());
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Read the client's text, as far as the segment can hold, and write it.
fn write_client_text(args: &SysvShmArgs, seg: Segment) -> Result<Vec<u8>> {
    let key = args.target.key;
    let size = seg
        .stat()
        .with_context(|| format!("cannot stat segment {key}"))?
        .shm_segsz;
    let text = client_text(args.shm.message.as_deref(), size as u64, &key.to_string())?;
    let map = seg
        .attach(false)
        .with_context(|| format!("cannot attach segment {key}"))?;
    map.write_text(&text)
        .with_context(|| format!("cannot write to segment {key}"))?;
    Ok(text)
}

fn stat_cmd(at: Addr, out: &mut Out) -> Result<ExitCode> {
    let (seg, ds) = find::<Segment>(at).with_context(|| format!("cannot stat segment ({at})"))?;
    let perm = Perm::from_raw(&ds.shm_perm, seg.id());
    let mut s = StatLines::new("sysv-shm", "sysv shm", &perm);
    s.number("size", ds.shm_segsz as u64);
    s.number("nattch", ds.shm_nattch);
    s.number("cpid", ds.shm_cpid);
    s.number("lpid", ds.shm_lpid);
    s.time("atime", ds.shm_atime);
    s.time("dtime", ds.shm_dtime);
    s.time("ctime", ds.shm_ctime);
    if ds.shm_perm.mode & SHM_DEST != 0 {
        s.line(
            "status",
            "dest (removed, freed at the last detach)",
            "dest".into(),
        );
    }
    let (text, json) = s.into_parts();
    out.record(text, || json)?;
    Ok(ExitCode::SUCCESS)
}
