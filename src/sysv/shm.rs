//! `sysv shm`: server, client, `--clean` and `--stat` of a System V shared
//! memory segment, over the `ipc::sysv_shm` handle.
//!
//! Layout is raw, as for POSIX shm: the text at offset 0, NUL-terminated, so
//! a C program that `shmat`s the segment reads it as a string. A System V
//! segment never changes size, so unlike a POSIX mapping an attachment can
//! never fault with SIGBUS; removal (IPC_RMID) is what a server must notice.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;

use crate::cli::{Mode, SysvShmArgs};
use crate::error::{hinted, undo_create};
use crate::ipc::sysv_shm::{Shm, SysvSegment};
use crate::ipc::{Creation, Remove};
use crate::output::{Out, Shown, escape_bytes};
use crate::serve::{Flow, Server};
use crate::sys::secs;
use crate::sysv::common::{Addr, addr, clean, limit_hint, stat};
use crate::text_input::client_text;

pub fn run(args: &SysvShmArgs, out: &mut Out) -> Result<ExitCode> {
    let mode = args.mode.mode();
    let at = addr(&args.target, mode)?;
    match mode {
        Mode::Server => server(args, out),
        Mode::Client => client(args, out),
        Mode::Clean => clean::<Shm>(at, out),
        Mode::Stat => stat_cmd(at, out),
    }
}

fn open_or_create(args: &SysvShmArgs) -> Result<(SysvSegment, bool)> {
    let key = args.target.key;
    let size = usize::try_from(args.shm.size)
        .map_err(|_| anyhow!("--size {} is too large", args.shm.size))?;
    SysvSegment::open(
        key.raw(),
        Creation::OpenOrCreate,
        size,
        args.create.mode.bits(),
    )
    .map(|o| (o.handle, o.created))
    .map_err(Errno::from)
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
            Ok(ds) if ds.removed() => {
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
fn write_client_text(args: &SysvShmArgs, seg: SysvSegment) -> Result<Vec<u8>> {
    let key = args.target.key;
    let size = seg
        .stat()
        .with_context(|| format!("cannot stat segment {key}"))?
        .size;
    let text = client_text(args.shm.message.as_deref(), size as u64, &key.to_string())?;
    let map = seg
        .attach(false)
        .with_context(|| format!("cannot attach segment {key}"))?;
    map.replace_text(&text)
        .with_context(|| format!("cannot write to segment {key}"))?;
    Ok(text)
}

fn stat_cmd(at: Addr, out: &mut Out) -> Result<ExitCode> {
    stat::<Shm>(at, out, |_, ds, s| {
        s.number("size", ds.size as u64);
        s.number("nattch", ds.nattch);
        s.number("cpid", ds.cpid);
        s.number("lpid", ds.lpid);
        s.time("atime", ds.atime);
        s.time("dtime", ds.dtime);
        s.time("ctime", ds.ctime);
        if ds.dest {
            s.line(
                "status",
                "dest (removed, freed at the last detach)",
                "dest".into(),
            );
        }
        Ok(())
    })
}
