//! `demo memfd`: the `posix shm` text exchange over an anonymous
//! `memfd_create` segment. It has no name in /dev/shm, so it cannot be left
//! behind: it lives exactly as long as some process holds its descriptor or
//! a mapping. To let a client find it, the server publishes its pid and
//! descriptor number in a small file (mode 0600) under $XDG_RUNTIME_DIR (or
//! the temp dir), and the client opens `/proc/PID/fd/N`, which reopens the
//! very same memory (same-user access only, as ptrace rules decide).
//!
//! The server seals the segment against shrinking (`F_SEAL_SHRINK`): a client
//! may write, but `ftruncate` to less fails with EPERM, so the server's
//! mapping can never turn into SIGBUS. The `posix shm` server has no such
//! guarantee and has to read with `pread` instead.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, SealFlag};
use serde::{Deserialize, Serialize};

use crate::error::{fail_with_hint, hinted, usage};
use crate::ipc::mapping::Mapping;
use crate::ipc::memfd::Memfd;
use crate::output::{Escaped, Out, bytes};
use crate::record::{Printing, TextField};
use crate::serve::{Flow, Server};
use crate::spec::{Memfd as MemfdSpec, MemfdRole, Serve, Watch};
use crate::text_input::client_text;

/// `memfd_create`, sized with `posix_fallocate` (a full tmpfs fails here,
/// not with SIGBUS later), then sealed with `F_SEAL_SHRINK|F_SEAL_SEAL`.
fn create(label: &str, size: u64) -> Result<Memfd> {
    let memfd = Memfd::create(label).context("cannot create a memfd")?;
    if i64::try_from(size).is_err() {
        bail!("--size {size} is too large");
    }
    memfd
        .allocate(size)
        .map_err(|e| match e {
            Errno::ENOSPC => hinted(e, format!("no memory for {size} bytes")),
            e => e.into(),
        })
        .with_context(|| format!("cannot allocate {size} bytes for the memfd"))?;
    // F_SEAL_SEAL: nobody can add seals after ours (F_SEAL_WRITE would
    // make the server's own writable mapping impossible to renew).
    memfd
        .seal(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_SEAL)
        .context("cannot seal the memfd")?;
    Ok(memfd)
}

/// A shared mapping of the whole memfd.
fn map(memfd: &Memfd, len: usize) -> Result<Mapping> {
    if len == 0 {
        bail!("the memfd has size 0");
    }
    memfd.map(len).context("cannot map the memfd")
}

pub fn run(spec: &MemfdSpec, out: &mut Out) -> Result<ExitCode> {
    match &spec.role {
        MemfdRole::Server { size, serve, watch } => server(&spec.name, *size, serve, watch, out),
        MemfdRole::Client { text, shrink } => client(&spec.name, text.as_deref(), *shrink, out),
    }
}

/// Refuse an exchange name that would not make a plain file name (exit 2).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with('.');
    if !ok {
        return Err(usage(format!(
            "'{name}' is not a valid exchange name: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"
        )));
    }
    Ok(())
}

/// Where the server publishes: $XDG_RUNTIME_DIR (per user, mode 0700) when
/// set, else the temp dir.
fn publication(name: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("examples-ipc-memfd-{name}"))
}

/// What the file says: which process holds the segment, as which
/// descriptor, and its size: `{"pid":123,"fd":3,"size":4096}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Where {
    pid: u32,
    fd: i32,
    #[serde(default)]
    size: u64,
}

impl Where {
    fn proc_path(self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/fd/{}", self.pid, self.fd))
    }

    /// Whether that process still runs and that descriptor is still a memfd.
    fn alive(self) -> bool {
        std::fs::read_link(self.proc_path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("/memfd:"))
    }
}

fn read_publication(path: &Path) -> io::Result<Option<Where>> {
    let mut text = String::new();
    // O_NOFOLLOW: a symlink planted at the well-known path is refused.
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)?;
    f.read_to_string(&mut text)?;
    Ok(serde_json::from_str(&text).ok())
}

/// The published file, removed when the server ends however it ends.
struct Published(PathBuf);

impl Drop for Published {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Create the publication exclusively with mode 0600. A file whose process
/// has gone (a crashed server) is stale and replaced; a live one is refused.
fn publish(path: &Path, at: Where) -> Result<(Published, Option<u32>)> {
    let mut replaced = None;
    for _ in 0..2 {
        let made = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .open(path);
        match made {
            Ok(mut f) => {
                let guard = Published(path.to_path_buf());
                let line = serde_json::to_string(&at)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                writeln!(f, "{line}")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                return Ok((guard, replaced));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
        match read_publication(path) {
            Ok(Some(old)) if old.alive() => {
                return Err(fail_with_hint(
                    format!(
                        "a server (pid {}) already publishes it in {}",
                        old.pid,
                        path.display()
                    ),
                    "stop that server, or pick another exchange with -n",
                ));
            }
            Ok(old) => {
                replaced = Some(old.map_or(0, |o| o.pid));
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove stale {}", path.display()))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    bail!("{} keeps reappearing", path.display())
}

fn server(name: &str, size: u64, serve: &Serve, watch: &Watch, out: &mut Out) -> Result<ExitCode> {
    let mut server = Server::new(out, serve)?;
    let memfd = create(&format!("examples-ipc:{name}"), size)?;
    let len = usize::try_from(size).context("segment too large to map")?;
    let map = map(&memfd, len)?;
    let at = Where {
        pid: std::process::id(),
        fd: memfd.as_raw_fd(),
        size,
    };
    let path = publication(name);
    let (_published, replaced) = publish(&path, at)?;
    let start = Start {
        mechanism: "memfd",
        name,
        size,
        pid: at.pid,
        fd: at.fd,
        path: &path,
        replaced_pid: replaced,
        watch: *watch,
    };
    if server.start(&start)? == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    // The seal keeps the mapping valid: no read here can fault.
    server.watch_text(watch.interval, watch.on_change, || {
        let mut text = Vec::new();
        map.read_text(&mut text);
        Ok(text)
    })
}

fn client(name: &str, message: Option<&str>, shrink: bool, out: &mut Out) -> Result<ExitCode> {
    let what = format!("memfd exchange {name}");
    let (memfd, proc_path) = find(name, &what)?;
    let size = memfd.size().context("cannot stat the memfd")?;
    let seals = memfd.seals().context("cannot read the seals")?;
    let text = client_text(message, size, &what)?;
    let len = usize::try_from(size).context("segment too large to map")?;
    let map = map(&memfd, len)?;
    // client_text checked that the text and its NUL fit.
    map.write_text(&text)
        .with_context(|| format!("cannot write to {what}"))?;
    out.event(&Wrote {
        text: TextField(&text),
        path: &proc_path,
        size,
        seals: seal_names(seals),
    })?;
    if shrink {
        match memfd.truncate(0) {
            Err(Errno::EPERM) => out.event(&Shrink { refused: true })?,
            Ok(()) => bail!("ftruncate to 0 bytes succeeded: the segment was not sealed"),
            Err(e) => return Err(e).context("cannot try to shrink the memfd"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The server's segment: its publication read, and the same memory opened
/// through /proc/PID/fd/N; also that path, for messages.
fn find(name: &str, what: &str) -> Result<(Memfd, PathBuf)> {
    let path = publication(name);
    let gone = |why: String| {
        fail_with_hint(
            why,
            format!(
                "a memfd has no name: it lives only while a process holds it; start the server first \
                 (examples-ipc demo memfd -s -n {name})"
            ),
        )
    };
    let at = match read_publication(&path) {
        Ok(Some(at)) => at,
        Ok(None) => bail!(
            "cannot find {what}: {} is not a publication",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(gone(format!(
                "no server publishes it ({} does not exist)",
                path.display()
            )))
            .with_context(|| format!("cannot find {what}"));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let proc_path = at.proc_path();
    let memfd = match Memfd::open_proc(&proc_path) {
        Ok(m) => m,
        Err(Errno::ENOENT) => {
            return Err(gone(format!(
                "{} does not exist: process {} has exited, and its segment with it",
                proc_path.display(),
                at.pid
            )))
            .with_context(|| format!("cannot open {what}"));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", proc_path.display())),
    };
    if !at.alive() {
        bail!("cannot open {what}: {} is not a memfd", proc_path.display());
    }
    Ok((memfd, proc_path))
}

fn seal_names(seals: SealFlag) -> String {
    let mut names = Vec::new();
    for (flag, name) in [
        (SealFlag::F_SEAL_SEAL, "seal"),
        (SealFlag::F_SEAL_SHRINK, "shrink"),
        (SealFlag::F_SEAL_GROW, "grow"),
        (SealFlag::F_SEAL_WRITE, "write"),
    ] {
        if seals.contains(flag) {
            names.push(name);
        }
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

// ---- Records ----

/// `demo memfd test: 4096 bytes, sealed against shrinking; published pid
/// 123 fd 3 in PATH; nothing in /dev/shm; printing the text every 3 s`
#[derive(Serialize)]
struct Start<'a> {
    mechanism: &'static str,
    name: &'a str,
    size: u64,
    pid: u32,
    fd: i32,
    #[serde(serialize_with = "crate::record::path")]
    path: &'a Path,
    replaced_pid: Option<u32>,
    #[serde(skip)]
    watch: Watch,
}

impl fmt::Display for Start<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "demo memfd {}: {}, sealed against shrinking; published pid {} fd {} in {}",
            self.name,
            bytes(self.size),
            self.pid,
            self.fd,
            Escaped(self.path.display())
        )?;
        if let Some(pid) = self.replaced_pid {
            write!(f, " (replaced a stale one from pid {pid})")?;
        }
        write!(f, "; nothing in /dev/shm; {}", Printing(self.watch))
    }
}

crate::record_kind!(Start<'_>, "start");

/// `wrote 2 bytes through /proc/123/fd/3 (4096 bytes, seals: seal, shrink)`
#[derive(Serialize)]
struct Wrote<'a> {
    text: TextField<'a>,
    #[serde(serialize_with = "crate::record::path")]
    path: &'a Path,
    size: u64,
    seals: String,
}

impl fmt::Display for Wrote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} through {} ({}, seals: {})",
            bytes(self.text.0.len()),
            Escaped(self.path.display()),
            bytes(self.size),
            self.seals
        )
    }
}

crate::record_kind!(Wrote<'_>, "wrote");

/// The client's try to shrink the sealed segment, refused.
#[derive(Serialize)]
struct Shrink {
    refused: bool,
}

impl fmt::Display for Shrink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "ftruncate to 0 bytes refused with EPERM: F_SEAL_SHRINK protects the server's mapping",
        )
    }
}

crate::record_kind!(Shrink, "shrink");
