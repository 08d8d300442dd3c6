//! `sysv shm`: server, client and `--stat` of a System V shared memory
//! segment, over the `ipc::sysv_shm` handle.
//!
//! Layout is raw, as for POSIX shm: the text at offset 0, NUL-terminated, so
//! a C program that `shmat`s the segment reads it as a string. A System V
//! segment never changes size, so unlike a POSIX mapping an attachment can
//! never fault with SIGBUS; removal (IPC_RMID) is what a server must notice.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use serde::Serialize;

use crate::error::{hinted, removed_under_server, undo_create};
use crate::ipc::Remove;
use crate::ipc::sysv_shm::{Shm as ShmKind, SysvSegment};
use crate::object::{Addr, Kind};
use crate::output::{Out, or_unknown};
use crate::record::stat::{StatBody, StatText, time_rfc3339};
use crate::record::{At, Opened, ShmStart, TextField, Written};
use crate::serve::{Flow, Server};
use crate::spec::{Create, SegmentAttrs, Serve, Shm, ShmRole, Watch};
use crate::target::SysvKey;
use crate::text_input::client_text;

pub fn run(spec: &Shm<SysvKey>, out: &mut Out) -> Result<ExitCode> {
    match &spec.role {
        ShmRole::Server { serve, watch } => server(spec.target, &spec.create, serve, watch, out),
        ShmRole::Client { text } => client(spec.target, &spec.create, text.as_deref(), out),
    }
}

fn open_or_create(key: SysvKey, create: &Create<SegmentAttrs>) -> Result<(SysvSegment, bool)> {
    let size = usize::try_from(create.attrs.size)
        .map_err(|_| anyhow!("--size {} is too large", create.attrs.size))?;
    SysvSegment::open(key.raw(), create.policy, size, create.mode.bits())
        .map(|o| (o.handle, o.created))
        .map_err(Errno::from)
        .map_err(|e| match e {
            Errno::EINVAL => hinted(
                e,
                format!(
                    "--size {size} is outside SHMMIN..SHMMAX (/proc/sys/kernel/shmmax is {})",
                    or_unknown(crate::sys::read_proc_u64("/proc/sys/kernel/shmmax"))
                ),
            ),
            Errno::ENOSPC => hinted(
                e,
                super::limit_hint("shared memory (segment count or total pages)", "shmmni"),
            ),
            e => e.into(),
        })
        .with_context(|| format!("cannot open segment {key}"))
}

fn server(
    key: SysvKey,
    create: &Create<SegmentAttrs>,
    serve: &Serve,
    watch: &Watch,
    out: &mut Out,
) -> Result<ExitCode> {
    let mut server = Server::new(out, serve)?;
    let (seg, created) = open_or_create(key, create)?;
    // Read-only is enough to watch, and works on a 0644 segment of another user.
    let map = seg
        .attach(true)
        .with_context(|| format!("cannot attach segment {key}"))?;
    let start = ShmStart {
        opened: Opened {
            mechanism: Kind::SysvShm,
            at: At::Key { key, id: seg.id() },
            created,
        },
        size: map.len() as u64,
        watch: *watch,
    };
    if server.start(&start)? == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    let removed = || {
        removed_under_server(
            "segment",
            format_args!("{key} (id {})", seg.id()),
            "IPC_RMID",
        )
    };
    server.watch_segment(watch, |whole| {
        // Our own attachment keeps a removed segment alive, so IPC_STAT still
        // works: removal shows as SHM_DEST and the key reset to IPC_PRIVATE.
        // Once gone entirely (cannot happen while attached), shmctl fails.
        match seg.stat() {
            Ok(ds) if ds.removed() => return Err(removed()),
            Ok(_) => {}
            Err(Errno::EINVAL | Errno::EIDRM) => return Err(removed()),
            Err(e) => return Err(e).with_context(|| format!("cannot stat segment {key}")),
        }
        let mut text = Vec::new();
        if whole {
            let mut text = Server::segment_copy(map.len())?;
            map.read_at(0, &mut text);
            return Ok(text);
        }
        map.read_text(&mut text);
        Ok(text)
    })
}

fn client(
    key: SysvKey,
    create: &Create<SegmentAttrs>,
    message: Option<&str>,
    out: &mut Out,
) -> Result<ExitCode> {
    let (seg, created) = open_or_create(key, create)?;
    // A segment this call created and then could not write is removed again:
    // a refused call leaves nothing behind.
    let text = write_client_text(key, message, seg).map_err(|e| {
        undo_create(e, created, "segment", || {
            seg.remove()
                .with_context(|| format!("cannot remove segment {key}"))
        })
    })?;
    out.event(&Written {
        at: At::Key { key, id: seg.id() },
        bytes: text.len(),
        text: TextField(&text),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Read the client's text, as far as the segment can hold, and write it.
fn write_client_text(key: SysvKey, message: Option<&str>, seg: SysvSegment) -> Result<Vec<u8>> {
    let size = seg
        .stat()
        .with_context(|| format!("cannot stat segment {key}"))?
        .size;
    let text = client_text(message, size as u64, &key.to_string())?;
    let map = seg
        .attach(false)
        .with_context(|| format!("cannot attach segment {key}"))?;
    map.replace_text(&text)
        .with_context(|| format!("cannot write to segment {key}"))?;
    Ok(text)
}

/// `--stat`: what `ipcs -m -i` shows.
pub fn stat(addr: &Addr, out: &mut Out) -> Result<ExitCode> {
    let (_, ds) = super::find::<ShmKind>(addr)?;
    let body = SegmentStat {
        size: ds.size as u64,
        nattch: ds.nattch,
        cpid: ds.cpid,
        lpid: ds.lpid,
        atime: time_rfc3339(ds.atime),
        dtime: time_rfc3339(ds.dtime),
        ctime: time_rfc3339(ds.ctime),
        status: ds.dest.then_some("dest"),
    };
    super::print_stat::<ShmKind>(out, &ds, body)
}

// ---- Records ----

/// What `--stat` shows of a segment after the `ipc_perm` head: the
/// shmid_ds fields.
#[derive(Serialize)]
struct SegmentStat {
    size: u64,
    nattch: u64,
    cpid: i32,
    lpid: i32,
    atime: Option<String>,
    dtime: Option<String>,
    ctime: Option<String>,
    /// Only for a removed segment that is still attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

impl StatBody for SegmentStat {
    fn text(&self, t: &mut StatText) {
        t.line("size", self.size);
        t.line("nattch", self.nattch);
        t.line("cpid", self.cpid);
        t.line("lpid", self.lpid);
        t.time("atime", self.atime.as_deref());
        t.time("dtime", self.dtime.as_deref());
        t.time("ctime", self.ctime.as_deref());
        if self.status.is_some() {
            t.line("status", "dest (removed, freed at the last detach)");
        }
    }
}
