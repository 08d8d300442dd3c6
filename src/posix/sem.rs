//! POSIX named semaphore: `sem_open` (to create), `sem_trywait`,
//! `sem_timedwait`, `sem_post`, `sem_getvalue`, `sem_unlink`. nix has none of
//! them, so libc is called here, inside `NamedSem` only.
//!
//! glibc's `sem_*` calls trust the file they map, so an existing semaphore is
//! opened by hand: its file is checked with `pread` (`semfile`), and only then
//! mapped, the same inode that was checked. `--stat` and the server never
//! touch the mapping; a client's faults in it after a truncation are reported
//! by `sigbus`, and a `--wait` re-checks the file between short waits.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use super::semfile::{self, Invalid, SEM_T_SIZE, SemWord};
use super::sigbus::BusGuard;
use crate::cli::{Mode, PosixSemArgs};
use crate::error::{fail_with_hint, usage};
use crate::output::{Fields, Out};
use crate::serve::{Flow, Server};
use crate::sys::{UmaskGuard, insert_ownership, secs};
use crate::target::{FileMode, NAME_MAX, PosixName};

/// glibc keeps a semaphore NAME in /dev/shm/sem.NAME, so four bytes of
/// NAME_MAX are taken by the prefix.
const SEM_NAME_MAX: usize = NAME_MAX - 4;

/// How long one `sem_timedwait` of `--wait` lasts before the file is checked
/// again: a truncation while waiting is then reported within this time.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// An existing named semaphore: its file, checked when opened, and our own
/// shared mapping of that file, unmapped in `Drop`. Never unlinks.
pub struct NamedSem {
    sem: NonNull<libc::sem_t>,
    /// Declared before `file`: the guard names the file's descriptor.
    _guard: BusGuard,
    file: File,
    path: String,
    name: PosixName,
}

/// The outcome of taking a unit.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// Value 0 and no wait asked for, or the wait timed out.
    Busy,
}

/// Why an existing semaphore could not be opened.
enum OpenError {
    Io(io::Error),
    Invalid(Invalid),
}

impl NamedSem {
    /// `sem_open(name, O_CREAT|O_EXCL, mode, value)`, then `NamedSem::open`:
    /// the caller learns whether it created the semaphore (an existing one
    /// keeps its value), and either way uses the file only once checked.
    pub fn open_or_create(
        name: &PosixName,
        mode: FileMode,
        value: u32,
    ) -> Result<(NamedSem, bool)> {
        let c_name = sem_name(name)?;
        for _ in 0..2 {
            let created = match create(&c_name, mode, value) {
                Ok(()) => true,
                Err(Errno::EEXIST) => false,
                Err(e) => return Err(e).with_context(|| format!("cannot create semaphore {name}")),
            };
            match NamedSem::open_checked(name) {
                Ok(sem) => return Ok((sem, created)),
                Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(open_error(name, e)),
            }
        }
        bail!("cannot open semaphore {name}: it was removed while opening it")
    }

    /// An existing semaphore only: `open` of its file (never creating),
    /// the check of `semfile::check`, then `mmap(MAP_SHARED)` of one sem_t,
    /// which is all `sem_open` does for an existing semaphore.
    ///
    /// # Errors
    ///
    /// ENOENT: "no such semaphore" with a hint to start the server; a file
    /// that is not a valid semaphore: `FILE is not a valid semaphore: WHY`;
    /// other `open`/`mmap` errnos with the name.
    pub fn open(name: &PosixName) -> Result<NamedSem> {
        sem_name(name)?;
        NamedSem::open_checked(name).map_err(|e| open_error(name, e))
    }

    fn open_checked(name: &PosixName) -> Result<NamedSem, OpenError> {
        let path = sem_file(name);
        let file = semfile::open(Path::new(&path), true).map_err(OpenError::Io)?;
        semfile::check(&file)
            .map_err(OpenError::Io)?
            .map_err(OpenError::Invalid)?;
        let len = NonZeroUsize::new(SEM_T_SIZE).ok_or(OpenError::Invalid(Invalid::Short(0)))?;
        // SAFETY: a new shared mapping at an address the kernel picks cannot
        // alias Rust memory; NamedSem unmaps it exactly once, in Drop. The
        // file was just checked to hold a whole sem_t.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                file.as_fd(),
                0,
            )
        }
        .map_err(|e| OpenError::Io(e.into()))?;
        let guard = BusGuard::arm(
            ptr.as_ptr().cast(),
            SEM_T_SIZE,
            file.as_fd(),
            format!(
                "error: semaphore {name} was truncated while in use: {path} is not a valid semaphore: "
            ),
            format!(" bytes, a sem_t needs {SEM_T_SIZE}"),
        );
        let guard = match guard {
            Ok(guard) => guard,
            Err(e) => {
                // SAFETY: ptr/len come from the mmap above, never used.
                let _ = unsafe { munmap(ptr, SEM_T_SIZE) };
                return Err(OpenError::Io(e.into()));
            }
        };
        Ok(NamedSem {
            sem: ptr.cast(),
            _guard: guard,
            file,
            path,
            name: name.clone(),
        })
    }

    /// The file checked again with `pread` (not through the mapping): the
    /// value and waiters, or why it is no longer a valid semaphore.
    pub fn check(&self) -> Result<Result<SemWord, Invalid>> {
        read_checked(&self.file, &self.path)
    }

    /// Whether /dev/shm/sem.NAME is still this file (not unlinked or replaced).
    pub fn still_linked(&self) -> Result<bool> {
        let own = self
            .file
            .metadata()
            .with_context(|| format!("cannot stat {}", self.path))?;
        Ok(std::fs::symlink_metadata(&self.path)
            .is_ok_and(|now| now.ino() == own.ino() && now.dev() == own.dev()))
    }

    /// `sem_getvalue`
    pub fn value(&self) -> Result<i32> {
        let mut value: libc::c_int = 0;
        // SAFETY: self.sem is a mapped, checked sem_t and value a valid out-pointer.
        Errno::result(unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut value) })?;
        Ok(value)
    }

    /// `sem_trywait`: take a unit now or report `Busy`.
    pub fn try_take(&self) -> Result<Take> {
        // SAFETY: self.sem is a mapped, checked sem_t.
        match Errno::result(unsafe { libc::sem_trywait(self.sem.as_ptr()) }) {
            Ok(_) => Ok(Take::Taken),
            Err(Errno::EAGAIN) => Ok(Take::Busy),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait for a unit, at most `timeout` when given: `sem_timedwait` in
    /// slices of `WAIT_SLICE`, with the file checked again between them, so
    /// a file truncated or overwritten while we wait is reported instead of
    /// being used. The time limit is kept on the monotonic clock.
    pub fn take_waiting(&self, timeout: Option<Duration>) -> Result<Take> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let slice = match deadline {
                Some(end) => WAIT_SLICE.min(end.saturating_duration_since(Instant::now())),
                None => WAIT_SLICE,
            };
            if self.timed_take(slice)? == Take::Taken {
                return Ok(Take::Taken);
            }
            if let Err(why) = self.check()? {
                return Err(invalid(&self.name, why))
                    .with_context(|| format!("semaphore {} changed while waiting", self.name));
            }
            if deadline.is_some_and(|end| Instant::now() >= end) {
                return Ok(Take::Busy);
            }
        }
    }

    /// `sem_timedwait` with a deadline `wait` from now (CLOCK_REALTIME, as
    /// sem_timedwait requires); EINTR is retried.
    fn timed_take(&self, wait: Duration) -> Result<Take> {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
        let end = Duration::from(now) + wait;
        let ts = libc::timespec {
            tv_sec: end.as_secs() as libc::time_t,
            tv_nsec: end.subsec_nanos() as libc::c_long,
        };
        loop {
            // SAFETY: self.sem is a mapped, checked sem_t and ts a valid timespec.
            match Errno::result(unsafe { libc::sem_timedwait(self.sem.as_ptr(), &ts) }) {
                Ok(_) => return Ok(Take::Taken),
                Err(Errno::EINTR) => continue,
                Err(Errno::ETIMEDOUT) => return Ok(Take::Busy),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `sem_post`
    pub fn give(&self) -> Result<()> {
        // SAFETY: self.sem is a mapped, checked sem_t.
        Errno::result(unsafe { libc::sem_post(self.sem.as_ptr()) }).map_err(|e| match e {
            Errno::EOVERFLOW => anyhow!("the value is at SEM_VALUE_MAX ({})", i32::MAX),
            e => e.into(),
        })?;
        Ok(())
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: self.sem is the one mapping of SEM_T_SIZE bytes made in
        // open_checked, unmapped once; the guard is dropped right after.
        let _ = unsafe { munmap(self.sem.cast(), SEM_T_SIZE) };
    }
}

/// `sem_open(name, O_CREAT|O_EXCL, mode, value)`, then `sem_close`: glibc
/// builds the new file under a temporary name and links it in whole, so no
/// one ever sees it half-made. EEXIST: there is one already.
fn create(c_name: &CString, mode: FileMode, value: u32) -> Result<(), Errno> {
    let made = {
        let _umask = UmaskGuard::clear();
        // SAFETY: c_name is a valid C string; with O_CREAT sem_open reads
        // exactly two more variadic arguments, a mode_t (passed as c_uint, as
        // default promotion requires) and an unsigned value.
        unsafe {
            libc::sem_open(
                c_name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                mode.bits() as libc::c_uint,
                value as libc::c_uint,
            )
        }
    };
    if made == libc::SEM_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: made came from a successful sem_open and is closed once.
    unsafe { libc::sem_close(made) };
    Ok(())
}

fn read_checked(file: &File, path: &str) -> Result<Result<SemWord, Invalid>> {
    semfile::check(file).with_context(|| format!("cannot read {path}"))
}

/// The error for an existing semaphore that could not be opened.
fn open_error(name: &PosixName, err: OpenError) -> anyhow::Error {
    match err {
        OpenError::Invalid(why) => invalid(name, why),
        OpenError::Io(e) if e.kind() == io::ErrorKind::NotFound => fail_with_hint(
            "no such semaphore",
            format!("a client never creates one: start the server first (examples-ipc posix sem -s -n {name})"),
        )
        .context(format!("cannot open semaphore {name}")),
        OpenError::Io(e) => anyhow::Error::new(e).context(format!("cannot open semaphore {name}")),
    }
}

/// `FILE is not a valid semaphore: WHY`, with what to do about it.
fn invalid(name: &PosixName, why: Invalid) -> anyhow::Error {
    fail_with_hint(
        format!("{} is not a valid semaphore: {why}", sem_file(name)),
        format!(
            "sem_open did not make it, or it was damaged since; \
             examples-ipc posix sem --clean -n {name} removes it"
        ),
    )
}

fn sem_name(name: &PosixName) -> Result<CString> {
    if name.file_name().len() > SEM_NAME_MAX {
        return Err(usage(format!(
            "a semaphore name is at most {SEM_NAME_MAX} bytes (NAME_MAX less glibc's 'sem.' prefix); '{name}' is {}",
            name.file_name().len()
        )));
    }
    CString::new(name.as_str()).map_err(|_| usage("a name cannot contain a NUL byte"))
}

/// The file behind a semaphore.
fn sem_file(name: &PosixName) -> String {
    format!("/dev/shm/sem.{}", name.file_name())
}

pub fn run(args: &PosixSemArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    match args.mode.mode() {
        Mode::Server => server(args, out),
        Mode::Client => client(args, out),
        Mode::Clean => clean(name, out),
        Mode::Stat => stat_cmd(name, out),
    }
}

fn server(args: &PosixSemArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    let mut server = Server::new(out, &args.serve)?;
    let (sem, created) = NamedSem::open_or_create(name, args.create.mode, args.sem.value)?;
    let interval = args.sem.interval.duration();
    let verb = if created { "created" } else { "opened" };
    let flow = server.start(
        format_args!(
            "posix sem {name}: {verb}{}; printing the value when it changes (polling every {} s)",
            if created {
                format!(" with value {}", args.sem.value)
            } else {
                String::new()
            },
            secs(interval)
        ),
        |f| {
            f.insert("mechanism".into(), "posix-sem".into());
            f.insert("name".into(), name.as_str().into());
            f.insert("created".into(), created.into());
        },
    )?;
    if flow == Flow::Done {
        return Ok(ExitCode::SUCCESS);
    }
    // The value is read from the file, never through the mapping, so a file
    // truncated under the server is an error line, not SIGBUS.
    server.watch_value(interval, || {
        if !sem.still_linked()? {
            bail!("semaphore {name} was removed (sem_unlink) under the server");
        }
        match sem.check()? {
            Ok(word) => Ok(i64::from(word.value)),
            Err(why) => Err(invalid(name, why))
                .with_context(|| format!("semaphore {name} changed under the server")),
        }
    })
}

fn client(args: &PosixSemArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    let timeout = args.serve.timeout.map(|s| s.duration());
    if timeout.is_some() && !args.sem.wait {
        return Err(usage("--timeout goes with --wait for a semaphore client"));
    }
    let sem = NamedSem::open(name)?;
    if args.sem.release {
        sem.give()
            .with_context(|| format!("cannot give a unit back to {name}"))?;
        let value = sem.value()?;
        out.event(
            "released",
            format_args!("gave one unit back to {name}; semaphore: {value}"),
            |f| {
                f.insert("name".into(), name.as_str().into());
                f.insert("value".into(), value.into());
            },
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let took = if args.sem.wait {
        out.flush()?;
        sem.take_waiting(timeout)?
    } else {
        sem.try_take()?
    };
    if took == Take::Busy {
        let (cause, hint) = match timeout {
            Some(t) if args.sem.wait => (
                format!(
                    "semaphore is busy: no unit within {} s (--timeout)",
                    secs(t)
                ),
                "a unit comes back when a holder releases it (-r)".to_string(),
            ),
            _ => (
                "semaphore is busy (value 0)".to_string(),
                "wait for a unit with --wait, or give one back with -r".to_string(),
            ),
        };
        return Err(fail_with_hint(cause, hint))
            .with_context(|| format!("cannot take a unit of {name}"));
    }
    let value = sem.value()?;
    out.event(
        "taken",
        format_args!("took one unit of {name}; semaphore: {value}"),
        |f| {
            f.insert("name".into(), name.as_str().into());
            f.insert("value".into(), value.into());
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn clean(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    let c_name = sem_name(name)?;
    // SAFETY: c_name is a valid C string.
    match Errno::result(unsafe { libc::sem_unlink(c_name.as_ptr()) }) {
        Ok(_) => {}
        Err(Errno::ENOENT) => bail!("cannot remove semaphore {name}: no such semaphore"),
        Err(e) => return Err(e).with_context(|| format!("cannot remove semaphore {name}")),
    }
    out.removed("posix-sem", "semaphore", name)?;
    Ok(ExitCode::SUCCESS)
}

/// Read-only and never mapped: the value comes from `pread`, the owner
/// and mode from `fstat` of the same file.
fn stat_cmd(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    sem_name(name)?;
    let path = sem_file(name);
    let file =
        semfile::open(Path::new(&path), false).map_err(|e| open_error(name, OpenError::Io(e)))?;
    let word = read_checked(&file, &path)?.map_err(|why| invalid(name, why))?;
    let st = file
        .metadata()
        .with_context(|| format!("cannot stat semaphore {name}"))?;
    let mut f = Fields::new();
    f.insert("mechanism".into(), "posix-sem".into());
    f.insert("name".into(), name.as_str().into());
    f.insert("value".into(), word.value.into());
    insert_ownership(&mut f, st.uid(), st.gid(), st.mode());
    out.attributes(&f)?;
    Ok(ExitCode::SUCCESS)
}
