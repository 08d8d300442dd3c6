//! POSIX named semaphore: `sem_open`, `sem_trywait`, `sem_timedwait`,
//! `sem_post`, `sem_getvalue`, `sem_unlink`. nix has none of them, so libc is
//! called here, inside `NamedSem` only.

use std::ffi::CString;
use std::process::ExitCode;
use std::ptr::NonNull;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::sys::stat::{FileStat, stat};

use crate::cli::{Mode, PosixSemArgs};
use crate::error::{fail_with_hint, usage};
use crate::output::{Fields, Out};
use crate::serve::{Flow, Server};
use crate::sys::{UmaskGuard, insert_ownership, secs};
use crate::target::{FileMode, NAME_MAX, PosixName};

/// glibc keeps a semaphore NAME in /dev/shm/sem.NAME, so four bytes of
/// NAME_MAX are taken by the prefix.
const SEM_NAME_MAX: usize = NAME_MAX - 4;

/// An open named semaphore, `sem_close`d in `Drop`. Never unlinks.
pub struct NamedSem {
    sem: NonNull<libc::sem_t>,
}

/// The outcome of taking a unit.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// Value 0 and no wait asked for, or the wait timed out.
    Busy,
}

impl NamedSem {
    /// `sem_open(name, O_CREAT|O_EXCL, mode, value)`, then without O_EXCL on
    /// EEXIST, so that the caller knows whether it created the semaphore
    /// (an existing one keeps its value).
    pub fn open_or_create(
        name: &PosixName,
        mode: FileMode,
        value: u32,
    ) -> Result<(NamedSem, bool)> {
        let c_name = sem_name(name)?;
        for _ in 0..2 {
            let made = {
                let _umask = UmaskGuard::clear();
                // SAFETY: c_name is a valid C string; with O_CREAT sem_open
                // reads exactly two more variadic arguments, a mode_t (passed
                // as c_uint, as default promotion requires) and an unsigned value.
                unsafe {
                    libc::sem_open(
                        c_name.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL,
                        mode.bits() as libc::c_uint,
                        value as libc::c_uint,
                    )
                }
            };
            match checked(made) {
                Ok(sem) => return Ok((sem, true)),
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create semaphore {name}")),
            }
            match NamedSem::open_raw(&c_name) {
                Ok(sem) => return Ok((sem, false)),
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot open semaphore {name}")),
            }
        }
        bail!("cannot open semaphore {name}: it was removed while opening it")
    }

    /// `sem_open(name, 0)`: an existing semaphore only.
    pub fn open(name: &PosixName) -> Result<NamedSem> {
        let c_name = sem_name(name)?;
        NamedSem::open_raw(&c_name).map_err(|errno| match errno {
            Errno::ENOENT => fail_with_hint(
                "no such semaphore",
                format!("a client never creates one: start the server first (examples-ipc posix sem -s -n {name})"),
            )
            .context(format!("cannot open semaphore {name}")),
            e => anyhow::Error::new(e).context(format!("cannot open semaphore {name}")),
        })
    }

    fn open_raw(c_name: &CString) -> Result<NamedSem, Errno> {
        // SAFETY: c_name is a valid C string; without O_CREAT no variadic
        // arguments are read.
        checked(unsafe { libc::sem_open(c_name.as_ptr(), 0) })
    }

    /// `sem_getvalue`
    pub fn value(&self) -> Result<i32> {
        let mut value: libc::c_int = 0;
        // SAFETY: self.sem is an open semaphore and value a valid out-pointer.
        Errno::result(unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut value) })?;
        Ok(value)
    }

    /// `sem_trywait`: take a unit now or report `Busy`.
    pub fn try_take(&self) -> Result<Take> {
        // SAFETY: self.sem is an open semaphore.
        match Errno::result(unsafe { libc::sem_trywait(self.sem.as_ptr()) }) {
            Ok(_) => Ok(Take::Taken),
            Err(Errno::EAGAIN) => Ok(Take::Busy),
            Err(e) => Err(e.into()),
        }
    }

    /// `sem_wait`, or `sem_timedwait` with a deadline `timeout` from now.
    pub fn take_waiting(&self, timeout: Option<Duration>) -> Result<Take> {
        let deadline = match timeout {
            Some(t) => {
                let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
                let end = Duration::from(now) + t;
                Some(libc::timespec {
                    tv_sec: end.as_secs() as libc::time_t,
                    tv_nsec: end.subsec_nanos() as libc::c_long,
                })
            }
            None => None,
        };
        loop {
            let ret = match &deadline {
                // SAFETY: self.sem is open and ts a valid timespec for the call.
                Some(ts) => unsafe { libc::sem_timedwait(self.sem.as_ptr(), ts) },
                // SAFETY: self.sem is an open semaphore.
                None => unsafe { libc::sem_wait(self.sem.as_ptr()) },
            };
            match Errno::result(ret) {
                Ok(_) => return Ok(Take::Taken),
                Err(Errno::EINTR) => continue,
                Err(Errno::ETIMEDOUT) => return Ok(Take::Busy),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `sem_post`
    pub fn give(&self) -> Result<()> {
        // SAFETY: self.sem is an open semaphore.
        Errno::result(unsafe { libc::sem_post(self.sem.as_ptr()) }).map_err(|e| match e {
            Errno::EOVERFLOW => anyhow!("the value is at SEM_VALUE_MAX ({})", i32::MAX),
            e => e.into(),
        })?;
        Ok(())
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: self.sem came from a successful sem_open and is closed once.
        unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
}

fn checked(ptr: *mut libc::sem_t) -> Result<NamedSem, Errno> {
    if ptr == libc::SEM_FAILED {
        return Err(Errno::last());
    }
    NonNull::new(ptr)
        .map(|sem| NamedSem { sem })
        .ok_or(Errno::EINVAL)
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

/// The file behind a semaphore, for owner, mode and removal checks.
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

fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.st_ino == b.st_ino && a.st_dev == b.st_dev
}

fn server(args: &PosixSemArgs, out: &mut Out) -> Result<ExitCode> {
    let name = &args.target.name;
    let mut server = Server::new(out, &args.serve)?;
    let (sem, created) = NamedSem::open_or_create(name, args.create.mode, args.sem.value)?;
    // Remember which file we opened, to notice an unlink under us.
    let own = stat(sem_file(name).as_str()).ok();
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
    server.watch_value(interval, || {
        if let Some(own) = &own {
            match stat(sem_file(name).as_str()) {
                Ok(now) if same_file(own, &now) => {}
                _ => bail!("semaphore {name} was removed (sem_unlink) under the server"),
            }
        }
        Ok(i64::from(sem.value()?))
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

fn stat_cmd(name: &PosixName, out: &mut Out) -> Result<ExitCode> {
    let sem = NamedSem::open(name)?;
    let value = sem.value()?;
    let st =
        stat(sem_file(name).as_str()).with_context(|| format!("cannot stat semaphore {name}"))?;
    let mut f = Fields::new();
    f.insert("mechanism".into(), "posix-sem".into());
    f.insert("name".into(), name.as_str().into());
    f.insert("value".into(), value.into());
    insert_ownership(&mut f, st.st_uid, st.st_gid, st.st_mode);
    out.attributes(&f)?;
    Ok(ExitCode::SUCCESS)
}
