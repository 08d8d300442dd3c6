//! The error side of the contract: which failures are usage (exit 2), which
//! are the operation failing (exit 1), and the `hint:` line that helps.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write as _};
use std::process::ExitCode;

use nix::errno::Errno;

use crate::output::{Escaped, StdoutError};

/// clap's usage error with a tip for the likeliest newcomer mix-ups: a
/// System V key given to a POSIX object, a POSIX name to a System V one, a
/// flag of one mechanism used on another. The message stays clap's, and so
/// does the exit code 2; the tip replaces clap's "did you mean" guess, which
/// for `--name` on System V would suggest `--mode`.
pub fn with_tip(mut err: clap::Error, args: &[OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::UnknownArgument {
        return err;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return err;
    };
    // `--key=200` and `-k200` are `--key` and `-k`.
    let flag = match arg.strip_prefix("--") {
        Some(long) => format!("--{}", long.split('=').next().unwrap_or(long)),
        None => arg.chars().take(2).collect(),
    };
    let path = command_path(args);
    let Some(tip) = tip(&path, &flag) else {
        return err;
    };
    err.remove(ContextKind::SuggestedArg);
    err.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![tip.into()]),
    );
    err
}

/// The subcommand words of a command line: `posix msq`, `ls`, `demo ring`.
fn command_path(args: &[OsString]) -> String {
    let mut words = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy())
        .filter(|a| !a.starts_with('-'));
    let Some(first) = words.next() else {
        return String::new();
    };
    match first.as_ref() {
        "posix" | "sysv" | "demo" => match words.next() {
            Some(second) => format!("{first} {second}"),
            None => first.into_owned(),
        },
        _ => first.into_owned(),
    }
}

/// The tip for `flag` refused by the command at `path`.
fn tip(path: &str, flag: &str) -> Option<String> {
    // A channel is at a path, so any -p there is a --path gone wrong.
    if let Some(channel) = crate::channel::find(path).filter(|_| flag == "-p") {
        return Some(format!(
            "the {}'s path is given with --path",
            channel.what()
        ));
    }
    let family = path.split(' ').next().unwrap_or("");
    let tip = match (family, path, flag) {
        ("posix", _, "-k" | "--key" | "-i" | "--id") => {
            format!("POSIX objects are named with -n NAME; {flag} is for System V")
        }
        ("sysv", _, "-n" | "--name") => {
            format!("System V objects are addressed with -k KEY (or -i ID); {flag} is for POSIX")
        }
        (_, "sysv msq", "-p" | "--priority") => {
            "System V messages have a type (--type T), not a priority".into()
        }
        (_, "posix msq", "-t" | "--type") => {
            "POSIX messages have a priority (-p P), not a type".into()
        }
        (_, "posix sem", "--undo") => "SEM_UNDO is for System V semaphores: sysv sem --undo".into(),
        (_, "clean", "-n") => "a dry run is --dry-run".into(),
        (_, "demo race" | "demo mutex" | "demo atomic" | "demo cures", "-p" | "-n") => {
            "processes and increments are --procs P and --iters N".into()
        }
        (_, "demo ring", "-p" | "-n" | "-s") => {
            "the ring's sizes are --producers P, --items N and --slots S".into()
        }
        (_, "demo scoreboard", "-n") => "items per worker are --items N".into(),
        (_, "demo sorted", "-n") => "the count of numbers is -c N".into(),
        _ => return None,
    };
    Some(tip)
}

/// Bad usage or input found after parsing (exit 2), e.g. a name too long for
/// one mechanism or an option that makes no sense in this mode.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Build a usage error (exit 2).
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// A failure with a `hint:` line for the user. Its own text is the cause, so
/// `error: <context>: <cause>` still reads as one sentence.
#[derive(Debug)]
pub struct Hinted {
    pub cause: String,
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause)
    }
}

impl std::error::Error for Hinted {}

/// An OS error with a hint that only the caller can give (which limit, which file).
pub fn hinted(errno: Errno, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        cause: errno_text(errno),
        hint: hint.into(),
    })
}

/// A failure of our own making (not an errno) with a hint.
pub fn fail_with_hint(cause: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        cause: cause.into(),
        hint: hint.into(),
    })
}

/// After a client failed, remove the object it created itself (`created`),
/// so a refused call leaves nothing behind; an object that existed before is
/// never touched. A refusal with a hint then says so in its message.
pub fn undo_create(
    mut err: anyhow::Error,
    created: bool,
    what: &str,
    remove: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Error {
    if !created {
        return err;
    }
    let note = match remove() {
        Ok(()) => format!("nothing was created: the new {what} was removed again"),
        Err(e) => format!(
            "the {what} this call created could not be removed: {}",
            Chain(&e)
        ),
    };
    if let Some(hinted) = err.downcast_mut::<Hinted>() {
        hinted.cause = format!("{}; {note}", hinted.cause);
    }
    err
}

/// An errno as every message writes it: the C library's text, then the
/// constant's name as the man pages use it, `Permission denied (EACCES)`.
pub fn errno_text(errno: Errno) -> String {
    os_error_text(errno as i32)
}

/// An io::Error as [`errno_text`] writes an OS error; any other as itself.
pub fn io_error_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => os_error_text(code),
        None => e.to_string(),
    }
}

fn os_error_text(code: i32) -> String {
    // std's Display is strerror's text (what ls or cat print) and
    // ` (os error N)`; nix's desc() has its own table, in which EAGAIN is
    // "Try again", so it serves only if std's form ever changes.
    let errno = Errno::from_raw(code);
    let std_text = io::Error::from_raw_os_error(code).to_string();
    let text = std_text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(errno.desc());
    match errno {
        Errno::UnknownErrno => format!("{text} (errno {code})"),
        errno => format!("{text} ({errno:?})"),
    }
}

/// An error and its causes, `: ` between them, as `{err:#}` prints it, but
/// with every OS error written by [`errno_text`]: io::Error's own form is
/// `Permission denied (os error 13)` and nix's `EACCES: Permission denied`.
pub struct Chain<'a>(pub &'a anyhow::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cause) in self.0.chain().enumerate() {
            if i > 0 {
                f.write_str(": ")?;
            }
            match os_code(cause) {
                Some(code) => f.write_str(&os_error_text(code))?,
                None => write!(f, "{cause}")?,
            }
        }
        Ok(())
    }
}

/// The errno a cause is, if it is one: an Errno, or an io::Error made from
/// an OS error or wrapping an Errno.
fn os_code(cause: &(dyn std::error::Error + 'static)) -> Option<i32> {
    if let Some(errno) = cause.downcast_ref::<Errno>() {
        return Some(*errno as i32);
    }
    let io = cause.downcast_ref::<io::Error>()?;
    io.raw_os_error().or_else(|| {
        io.get_ref()
            .and_then(|inner| inner.downcast_ref::<Errno>())
            .map(|errno| *errno as i32)
    })
}

/// A server's object was removed while it served: the one wording every
/// server uses, `<what> <name> was removed under the server (<call>)`, e.g.
/// `queue /q was removed under the server (mq_unlink)` or `segment
/// 0x000000c8 (id 65711) was removed under the server (IPC_RMID)`. `name` is
/// the object as the server's start line names it (a System V object by key
/// and id), `call` the removal that does it.
pub fn removed_under_server(what: &str, name: impl fmt::Display, call: &str) -> anyhow::Error {
    anyhow::anyhow!("{what} {name} was removed under the server ({call})")
}

/// Why a semaphore client of either family took no unit: the value is 0,
/// or `--timeout` passed while it waited.
pub fn sem_busy(action: crate::spec::SemAction) -> anyhow::Error {
    match action {
        crate::spec::SemAction::TakeWaiting { timeout: Some(t) } => fail_with_hint(
            format!(
                "semaphore is busy: no unit within {} s (--timeout)",
                crate::sys::secs(t)
            ),
            "a unit comes back when a holder releases it (-r)",
        ),
        _ => fail_with_hint(
            "semaphore is busy (value 0)",
            "wait for a unit with --wait, or give one back with -r",
        ),
    }
}

/// The errno behind an error, wherever it sits in the chain.
pub fn errno_of(err: &anyhow::Error) -> Option<Errno> {
    err.chain().find_map(|cause| {
        if let Some(errno) = cause.downcast_ref::<Errno>() {
            Some(*errno)
        } else {
            cause
                .downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error)
                .map(Errno::from_raw)
        }
    })
}

/// Exit code and stderr lines for an error that ended the run.
pub fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        // A reader such as `head` went away: that is how pipelines end, not a failure.
        return ExitCode::SUCCESS;
    }
    if let Some(stdout) = StdoutError::find(err) {
        // Whatever was being printed, the output is what failed; a hint
        // about the operation's own limits would mislead.
        print_error(format_args!("error: {}", Escaped(stdout_text(stdout))));
        return ExitCode::from(1);
    }
    // The one place every error line passes: names and paths in it are
    // escaped, so an ESC or a newline in them cannot reach the terminal.
    print_error(format_args!("error: {}", Escaped(Chain(err))));
    if let Some(hint) = hint_for(err) {
        print_error(format_args!("hint: {}", Escaped(hint)));
    }
    if err.chain().any(|cause| cause.is::<Usage>()) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// A failed write to standard output, its errno written as everywhere else.
/// The words before the cause are StdoutError's own.
fn stdout_text(err: &StdoutError) -> String {
    let whole = err.to_string();
    let cause = err.0.to_string();
    match (whole.strip_suffix(&cause), os_code(&err.0)) {
        (Some(head), Some(code)) => format!("{head}{}", os_error_text(code)),
        _ => whole,
    }
}

/// One line on stderr. Unlike eprintln!, never panics: with stderr gone too,
/// the exit status is all that is left to say it.
fn print_error(line: fmt::Arguments) {
    let _ = writeln!(io::stderr(), "{line}");
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    }) || errno_of(err) == Some(Errno::EPIPE)
}

fn hint_for(err: &anyhow::Error) -> Option<String> {
    if let Some(hinted) = err.chain().find_map(|cause| cause.downcast_ref::<Hinted>()) {
        return Some(hinted.hint.clone());
    }
    match errno_of(err)? {
        Errno::EACCES | Errno::EPERM => Some(
            "the object belongs to another user or its mode does not allow this; \
             check owner and perms with --stat or `examples-ipc ls`"
                .into(),
        ),
        Errno::ENOSPC => {
            Some("a system-wide limit is reached; `examples-ipc ls` shows what exists".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn errno_is_strerror_text_and_name() {
        assert_eq!(errno_text(Errno::EACCES), "Permission denied (EACCES)");
        assert_eq!(
            errno_text(Errno::ENOENT),
            "No such file or directory (ENOENT)"
        );
        // strerror's text, not nix's "Try again".
        assert_eq!(
            errno_text(Errno::EAGAIN),
            "Resource temporarily unavailable (EAGAIN)"
        );
        assert_eq!(os_error_text(4095), "Unknown error 4095 (errno 4095)");
    }

    #[test]
    fn the_chain_writes_every_os_error_the_same_way() {
        let nix: anyhow::Error = Err::<(), _>(Errno::EACCES)
            .context("cannot open segment /x")
            .unwrap_err();
        let std: anyhow::Error = Err::<(), _>(io::Error::from_raw_os_error(Errno::EACCES as i32))
            .context("cannot open queue /x")
            .unwrap_err();
        let wrapped = anyhow::Error::new(io::Error::other(Errno::ENOSPC)).context("cannot write");
        assert_eq!(
            Chain(&nix).to_string(),
            "cannot open segment /x: Permission denied (EACCES)"
        );
        assert_eq!(
            Chain(&std).to_string(),
            "cannot open queue /x: Permission denied (EACCES)"
        );
        assert_eq!(
            Chain(&wrapped).to_string(),
            "cannot write: No space left on device (ENOSPC)"
        );
        // Anything else reads as `{err:#}` does.
        let plain = anyhow::anyhow!("no such queue").context("cannot remove queue /x");
        assert_eq!(Chain(&plain).to_string(), format!("{plain:#}"));
        let hinted = hinted(Errno::EINVAL, "a hint").context("cannot create queue /q");
        assert_eq!(
            Chain(&hinted).to_string(),
            "cannot create queue /q: Invalid argument (EINVAL)"
        );
    }

    #[test]
    fn a_failed_write_to_stdout_names_its_errno() {
        let err = io::Error::new(
            io::ErrorKind::StorageFull,
            StdoutError(io::Error::from_raw_os_error(Errno::ENOSPC as i32)),
        );
        let err = anyhow::Error::new(err);
        let found = StdoutError::find(&err).expect("found");
        assert_eq!(
            stdout_text(found),
            "cannot write to standard output: No space left on device (ENOSPC)"
        );
    }

    #[test]
    fn every_server_words_a_removal_alike() {
        let name: crate::target::PosixName = "/q".parse().expect("a valid name");
        assert_eq!(
            removed_under_server("queue", &name, "mq_unlink").to_string(),
            "queue /q was removed under the server (mq_unlink)"
        );
        assert_eq!(
            removed_under_server("segment", "0x000000c8 (id 65711)", "IPC_RMID").to_string(),
            "segment 0x000000c8 (id 65711) was removed under the server (IPC_RMID)"
        );
    }
}
