//! `posix sem`: server, client and `--stat` of a POSIX named
//! semaphore, over the `ipc::posix_sem` handles.
//!
//! glibc's `sem_*` calls trust the file they map, so an existing semaphore is
//! opened by hand: its file is checked with `pread` (`SemFile`), and only then
//! mapped, the same inode that was checked (`CheckedSem`). `--stat` and the
//! server never touch the mapping; a client's faults in it after a
//! truncation are reported by the handle's SIGBUS guard, and a `--wait`
//! re-checks the file between short waits.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use serde::Serialize;

use crate::error::{fail_with_hint, removed_under_server, usage};
use crate::ipc::posix_sem::{CheckedSem, FaultText, MapError, NamedSem};
use crate::ipc::semfile::{self, Invalid, SEM_T_SIZE, SemFile, SemWord};
use crate::ipc::{OpenError, Race};
use crate::object::Kind;
use crate::output::Out;
use crate::record::stat::Field;
use crate::record::{At, Did, Opened, Record, SemStart, posix_name};
use crate::serve::Server;
use crate::serve::sem::{Take, Unit};
use crate::spec::{Create, Sem as SemSpec, SemAttrs, SemClient, SemRole, Serve};
use crate::target::{NAME_MAX, PosixName};

/// glibc keeps a semaphore NAME in /dev/shm/sem.NAME, so four bytes of
/// NAME_MAX are taken by the prefix.
const SEM_NAME_MAX: usize = NAME_MAX - 4;

/// How long one `sem_timedwait` of `--wait` lasts before the file is checked
/// again: a truncation while waiting is then reported within this time.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Why an existing semaphore could not be opened (or made).
enum OpenFail {
    /// `sem_open(O_CREAT|O_EXCL)` failed.
    Create(Errno),
    Io(io::Error),
    Invalid(Invalid),
}

impl Race for OpenFail {
    fn exists(&self) -> bool {
        matches!(self, OpenFail::Create(Errno::EEXIST))
    }

    fn missing(&self) -> bool {
        matches!(self, OpenFail::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// An existing semaphore in use by a client or server: checked, mapped.
struct Sem<'n> {
    sem: CheckedSem,
    name: &'n PosixName,
}

impl<'n> Sem<'n> {
    /// `sem_open(name, O_CREAT|O_EXCL, mode, value)` (closed at once), then
    /// the checked open: the caller learns whether it created the semaphore
    /// (an existing one keeps its value), and either way uses the file only
    /// once checked.
    fn open_or_create(name: &'n PosixName, create: &Create<SemAttrs>) -> Result<(Sem<'n>, bool)> {
        check_name(name)?;
        let (mode, value) = (create.mode.bits(), create.attrs.value);
        let opened = create.policy.apply(
            || {
                NamedSem::create(name.as_str(), mode, value).map_err(OpenFail::Create)?;
                open_checked(name)
            },
            || open_checked(name),
        );
        match opened {
            Ok(o) => Ok((
                Sem {
                    sem: o.handle,
                    name,
                },
                o.created,
            )),
            Err(OpenError::Create(OpenFail::Create(e))) => {
                Err(e).with_context(|| format!("cannot create semaphore {name}"))
            }
            Err(OpenError::Create(e) | OpenError::Open(e)) => Err(open_error(name, e)),
            Err(OpenError::Vanished) => {
                bail!("cannot open semaphore {name}: it was removed while opening it")
            }
        }
    }

    /// An existing semaphore only (never creating): its file opened, checked
    /// and mapped.
    ///
    /// # Errors
    /// ENOENT: "no such semaphore" with a hint to start the server; a file
    /// that is not a valid semaphore: `FILE is not a valid semaphore: WHY`;
    /// other `open`/`mmap` errnos with the name.
    fn open(name: &'n PosixName) -> Result<Sem<'n>> {
        check_name(name)?;
        let sem = open_checked(name).map_err(|e| open_error(name, e))?;
        Ok(Sem { sem, name })
    }

    /// The file checked again with `pread` (not through the mapping).
    fn check(&self) -> Result<Result<SemWord, Invalid>> {
        self.sem
            .check()
            .with_context(|| format!("cannot read {}", self.sem.file().path()))
    }

    /// Whether /dev/shm/sem.NAME is still this file (not unlinked or replaced).
    fn still_linked(&self) -> Result<bool> {
        self.sem
            .file()
            .still_linked()
            .with_context(|| format!("cannot stat {}", self.sem.file().path()))
    }

    /// `sem_getvalue`
    fn value(&self) -> Result<i32> {
        Ok(self.sem.value()?)
    }
}

impl Unit for Sem<'_> {
    /// `sem_trywait`: take a unit now or report `Busy`.
    fn try_take(&self) -> Result<Take> {
        Ok(if self.sem.try_wait()? {
            Take::Taken
        } else {
            Take::Busy
        })
    }

    /// Wait for a unit, at most `timeout` when given: `sem_timedwait` in
    /// slices of `WAIT_SLICE`, with the file checked again between them, so
    /// a file truncated or overwritten while we wait is reported instead of
    /// being used. The time limit is kept on the monotonic clock.
    fn take_waiting(&self, timeout: Option<Duration>) -> Result<Take> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let slice = match deadline {
                Some(end) => WAIT_SLICE.min(end.saturating_duration_since(Instant::now())),
                None => WAIT_SLICE,
            };
            if self.sem.timed_wait(slice)? {
                return Ok(Take::Taken);
            }
            if let Err(why) = self.check()? {
                return Err(invalid(self.name, why))
                    .with_context(|| format!("semaphore {} changed while waiting", self.name));
            }
            if deadline.is_some_and(|end| Instant::now() >= end) {
                return Ok(Take::Busy);
            }
        }
    }

    /// `sem_post`
    fn give(&self) -> Result<()> {
        self.sem.post().map_err(|e| match e {
            Errno::EOVERFLOW => anyhow!("the value is at SEM_VALUE_MAX ({})", i32::MAX),
            e => e.into(),
        })
    }
}

/// `open` of the semaphore's file for reading and writing, then the check
/// and the mapping (`CheckedSem::map`), which is all `sem_open` does for an
/// existing semaphore.
fn open_checked(name: &PosixName) -> Result<CheckedSem, OpenFail> {
    let path = sem_file(name);
    let file = SemFile::open(&path, true).map_err(OpenFail::Io)?;
    let fault = FaultText {
        head: format!(
            "error: semaphore {name} was truncated while in use: {path} is not a valid semaphore: "
        ),
        tail: format!(" bytes, a sem_t needs {SEM_T_SIZE}"),
    };
    CheckedSem::map(name.as_str(), file, fault).map_err(|e| match e {
        MapError::Io(e) => OpenFail::Io(e),
        MapError::Invalid(why) => OpenFail::Invalid(why),
    })
}

/// The error for an existing semaphore that could not be opened.
fn open_error(name: &PosixName, err: OpenFail) -> anyhow::Error {
    match err {
        OpenFail::Invalid(why) => invalid(name, why),
        OpenFail::Io(e) if e.kind() == io::ErrorKind::NotFound => fail_with_hint(
            "no such semaphore",
            format!("a client never creates one: start the server first (examples-ipc posix sem -s -n {name})"),
        )
        .context(format!("cannot open semaphore {name}")),
        OpenFail::Io(e) => anyhow::Error::new(e).context(format!("cannot open semaphore {name}")),
        OpenFail::Create(e) => anyhow::Error::new(e).context(format!("cannot create semaphore {name}")),
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

/// Refuse a name glibc cannot make a semaphore file for (exit 2).
pub fn check_name(name: &PosixName) -> Result<()> {
    if name.file_name().len() > SEM_NAME_MAX {
        return Err(usage(format!(
            "a semaphore name is at most {SEM_NAME_MAX} bytes (NAME_MAX less glibc's 'sem.' prefix); '{name}' is {}",
            name.file_name().len()
        )));
    }
    if name.as_str().contains('\0') {
        return Err(usage("a name cannot contain a NUL byte"));
    }
    Ok(())
}

/// The file behind a semaphore.
fn sem_file(name: &PosixName) -> String {
    semfile::path_of(name.as_str())
}

pub fn run(spec: &SemSpec<PosixName>, out: &mut Out) -> Result<ExitCode> {
    let name = &spec.target;
    match &spec.role {
        SemRole::Server {
            create,
            serve,
            interval,
        } => server(name, create, serve, *interval, out),
        SemRole::Client(client) => run_client(name, client, out),
    }
}

fn server(
    name: &PosixName,
    create: &Create<SemAttrs>,
    serve: &Serve,
    interval: Duration,
    out: &mut Out,
) -> Result<ExitCode> {
    let mut server = Server::new(out, serve)?;
    let (sem, created) = Sem::open_or_create(name, create)?;
    let opened = Opened {
        mechanism: Kind::PosixSem,
        at: At::Name { name },
        created,
    };
    // The value is read from the file, never through the mapping, so a file
    // truncated under the server is an error line, not SIGBUS.
    server.serve_value(&SemStart::new(opened, create, interval), || {
        if !sem.still_linked()? {
            return Err(removed_under_server("semaphore", name, "sem_unlink"));
        }
        match sem.check()? {
            Ok(word) => Ok(i64::from(word.value)),
            Err(why) => Err(invalid(name, why))
                .with_context(|| format!("semaphore {name} changed under the server")),
        }
    })
}

fn run_client(name: &PosixName, client: &SemClient, out: &mut Out) -> Result<ExitCode> {
    let sem = Sem::open(name)?;
    // The line after a unit was taken or given back, with the value now.
    let done = |out: &mut Out, did: Did| -> Result<ExitCode> {
        let value = sem.value()?;
        out.event(&Done { did, name, value })?;
        Ok(ExitCode::SUCCESS)
    };
    crate::serve::sem::client(&sem, client.action, name, out, done)
}

/// `--stat`: read-only and never mapped: the value comes from `pread`,
/// the owner and mode from `fstat` of the same file.
pub fn stat(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    check_name(name)?;
    let file =
        SemFile::open(&sem_file(name), false).map_err(|e| open_error(name, OpenFail::Io(e)))?;
    let word = file
        .check()
        .with_context(|| format!("cannot read {}", file.path()))?
        .map_err(|why| invalid(name, why))?;
    let st = file
        .metadata()
        .with_context(|| format!("cannot stat semaphore {name}"))?;
    let owner = (st.uid(), st.gid(), st.mode());
    super::print_stat(out, Kind::PosixSem, name, Field("value", word.value), owner)
}

// ---- Records ----

/// `took one unit of /s; semaphore: 1`
#[derive(Serialize)]
struct Done<'a> {
    #[serde(skip)]
    did: Did,
    #[serde(serialize_with = "posix_name")]
    name: &'a PosixName,
    value: i32,
}

impl fmt::Display for Done<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}; semaphore: {}", self.did, self.name, self.value)
    }
}

impl Record for Done<'_> {
    fn kind(&self) -> &'static str {
        self.did.kind()
    }
}
