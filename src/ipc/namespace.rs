//! Namespaces: a process's namespace files (`/proc/PID/ns/ipc`, `.../mnt`),
//! joining them, a private mqueue mount, and the building block that reads
//! another IPC namespace: [`in_namespace`] runs a closure in a forked child
//! that joined the namespace and hands back the closure's serialized answer.
//!
//! Why a child: `setns(CLONE_NEWIPC)` changes the namespace of the calling
//! thread for good, and joining a mount namespace is refused to a process
//! with other threads. A child does both, answers over a pipe and exits; the
//! tool itself never leaves its own namespaces.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::{Mode, fstat};
use nix::sys::wait::WaitStatus;
use nix::unistd::getpid;

use super::process::{self, ChildGuard, ForkError, Pid};

/// The namespaces the tool opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    /// System V objects and POSIX message queues (CLONE_NEWIPC).
    Ipc,
    /// Mounts, among them the /dev/shm that holds POSIX shm and semaphores
    /// (CLONE_NEWNS).
    Mnt,
}

impl NsKind {
    /// The file name under /proc/PID/ns, which is also the prefix of the
    /// link's target (`ipc:[4026531839]`).
    pub fn file(self) -> &'static str {
        match self {
            NsKind::Ipc => "ipc",
            NsKind::Mnt => "mnt",
        }
    }

    fn flag(self) -> CloneFlags {
        match self {
            NsKind::Ipc => CloneFlags::CLONE_NEWIPC,
            NsKind::Mnt => CloneFlags::CLONE_NEWNS,
        }
    }

    fn path(self, pid: Pid) -> String {
        format!("/proc/{pid}/ns/{}", self.file())
    }
}

/// The inode in a namespace link's target: `ipc:[4026531839]` gives
/// 4026531839 for [`NsKind::Ipc`]; anything else, `None`.
pub fn parse_link(kind: NsKind, target: &str) -> Option<u64> {
    target
        .strip_prefix(kind.file())?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The inode of a process's namespace, from the target of
/// `readlink(/proc/PID/ns/KIND)`. This is what `lsns` and `ls -l
/// /proc/PID/ns` show; it opens nothing.
///
/// # Errors
/// ENOENT or ESRCH: the process has exited. EACCES or EPERM: this user may
/// not inspect the process (another user's, without root or
/// CAP_SYS_PTRACE). EINVAL: a target that does not read `kind:[N]`.
///
/// # References
/// [readlink(2)](https://man7.org/linux/man-pages/man2/readlink.2.html),
/// [namespaces(7)](https://man7.org/linux/man-pages/man7/namespaces.7.html)
pub fn inode(pid: Pid, kind: NsKind) -> Result<u64, Errno> {
    let target = nix::fcntl::readlink(kind.path(pid).as_str())?;
    target
        .to_str()
        .and_then(|t| parse_link(kind, t))
        .ok_or(Errno::EINVAL)
}

/// An open namespace file: it keeps the namespace alive while it is open,
/// and is what `setns` takes.
#[derive(Debug)]
pub struct NsFile {
    fd: OwnedFd,
    kind: NsKind,
    inode: u64,
}

impl NsFile {
    /// `open(/proc/PID/ns/KIND, O_RDONLY | O_CLOEXEC)`, then `fstat` for its
    /// inode (the namespace's number, as in the link's target).
    ///
    /// # Errors
    /// As for [`inode`]: ENOENT/ESRCH when the process has exited,
    /// EACCES/EPERM without the right to inspect it.
    ///
    /// # References
    /// [open(2)](https://man7.org/linux/man-pages/man2/open.2.html),
    /// [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html)
    pub fn open(pid: Pid, kind: NsKind) -> Result<NsFile, Errno> {
        let fd = nix::fcntl::open(
            kind.path(pid).as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let inode = fstat(&fd)?.st_ino;
        Ok(NsFile { fd, kind, inode })
    }

    pub fn kind(&self) -> NsKind {
        self.kind
    }

    pub fn inode(&self) -> u64 {
        self.inode
    }
}

impl AsFd for NsFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An IPC namespace to read, held open through a process in it, and
/// optionally that process's mount namespace.
#[derive(Debug)]
pub struct Namespace {
    pid: Pid,
    ipc: NsFile,
    mnt: Option<NsFile>,
}

impl Namespace {
    /// Open the IPC namespace of `pid` (and its mount namespace when
    /// `with_mount`). With `expect_ipc`, the namespace must be that one: a
    /// pid seen in a namespace earlier may have exited and its number been
    /// reused by a process elsewhere, and reading the wrong namespace under
    /// the right name is worse than not reading it.
    ///
    /// The listing needs no mount namespace: POSIX shm and semaphores are
    /// read through /proc/PID/root/dev/shm, queues through a private mqueue
    /// mount. Acting on the container's /dev/shm from within (shm_unlink,
    /// sem_unlink) does.
    ///
    /// # Errors
    /// As for [`NsFile::open`]; ESRCH when the process is no longer in
    /// `expect_ipc`.
    pub fn open(pid: Pid, expect_ipc: Option<u64>, with_mount: bool) -> Result<Namespace, Errno> {
        // The mount namespace first: the IPC check below then also covers a
        // pid reused between the two opens.
        let mnt = with_mount
            .then(|| NsFile::open(pid, NsKind::Mnt))
            .transpose()?;
        let ipc = NsFile::open(pid, NsKind::Ipc)?;
        if expect_ipc.is_some_and(|want| want != ipc.inode) {
            return Err(Errno::ESRCH);
        }
        Ok(Namespace { pid, ipc, mnt })
    }

    /// The process the namespace was opened through.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn ipc_inode(&self) -> u64 {
        self.ipc.inode
    }

    pub fn mnt_inode(&self) -> Option<u64> {
        self.mnt.as_ref().map(NsFile::inode)
    }
}

/// A step of entering a namespace, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    SetnsIpc,
    SetnsMnt,
    Unshare,
    MakePrivate,
    MountMqueue,
}

impl Step {
    const ALL: [Step; 5] = [
        Step::SetnsIpc,
        Step::SetnsMnt,
        Step::Unshare,
        Step::MakePrivate,
        Step::MountMqueue,
    ];

    fn code(self) -> u8 {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8
    }

    fn from_code(code: u8) -> Option<Step> {
        Step::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::SetnsIpc => "setns(CLONE_NEWIPC)",
            Step::SetnsMnt => "setns(CLONE_NEWNS)",
            Step::Unshare => "unshare(CLONE_NEWNS)",
            Step::MakePrivate => "cannot make / private in the new mount namespace",
            Step::MountMqueue => "cannot mount an mqueue filesystem",
        })
    }
}

/// A step of entering a namespace failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnterError {
    pub step: Step,
    pub errno: Errno,
}

impl fmt::Display for EnterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The errno is the source: error::Chain writes it in the tool's form.
        self.step.fmt(f)
    }
}

impl std::error::Error for EnterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.errno)
    }
}

/// `setns(ipc, CLONE_NEWIPC)`, then `setns(mnt, CLONE_NEWNS)` when given:
/// from here on, System V calls, `mq_open` and /proc/sysvipc are those of
/// the joined namespace (and paths those of its mounts). The change is for
/// good, so only a child does this, through [`in_namespace`]. The process
/// must be single-threaded to join a mount namespace.
///
/// # Errors
/// [`EnterError`] with the step and its errno: EPERM without CAP_SYS_ADMIN
/// (and, for a mount namespace, CAP_SYS_CHROOT); EINVAL for a mount
/// namespace in a process with other threads.
///
/// # References
/// [setns(2)](https://man7.org/linux/man-pages/man2/setns.2.html)
pub fn join(ipc: &NsFile, mnt: Option<&NsFile>) -> Result<(), EnterError> {
    let fail = |step| move |errno| EnterError { step, errno };
    setns(ipc, NsKind::Ipc.flag()).map_err(fail(Step::SetnsIpc))?;
    if let Some(mnt) = mnt {
        setns(mnt, NsKind::Mnt.flag()).map_err(fail(Step::SetnsMnt))?;
    }
    Ok(())
}

/// Mount the mqueue filesystem of the current IPC namespace on `dir`, in a
/// mount namespace of this thread's own: `unshare(CLONE_NEWNS)`, every
/// mount made private (`MS_REC | MS_PRIVATE` on /, so nothing propagates
/// back), then `mount("mqueue", dir, "mqueue")`. The mount dies with the
/// new namespace, that is with the process; nothing on the machine changes.
/// `dir` must exist in the current mount namespace (an [`MqueueDir`] made
/// by the parent, unless a mount namespace was joined).
///
/// # Errors
/// [`EnterError`]: EPERM without CAP_SYS_ADMIN, ENOENT when `dir` is missing.
///
/// # References
/// [unshare(2)](https://man7.org/linux/man-pages/man2/unshare.2.html),
/// [mount(2)](https://man7.org/linux/man-pages/man2/mount.2.html),
/// [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
pub fn mount_private_mqueue(dir: &Path) -> Result<(), EnterError> {
    let fail = |step| move |errno| EnterError { step, errno };
    unshare(CloneFlags::CLONE_NEWNS).map_err(fail(Step::Unshare))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(fail(Step::MakePrivate))?;
    mount(
        Some("mqueue"),
        dir,
        Some("mqueue"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(fail(Step::MountMqueue))
}

/// An empty temporary directory for [`mount_private_mqueue`], removed in
/// `Drop` (by the process that made it: a child's copy leaves it alone).
#[derive(Debug)]
pub struct MqueueDir {
    path: PathBuf,
    owner: u32,
}

impl MqueueDir {
    /// `mkdtemp($TMPDIR/examples-ipc-mq.XXXXXX)`.
    ///
    /// # Errors
    /// The mkdtemp errno: EACCES, ENOSPC, EROFS.
    ///
    /// # References
    /// [mkdtemp(3)](https://man7.org/linux/man-pages/man3/mkdtemp.3.html)
    pub fn new() -> Result<MqueueDir, Errno> {
        let path = nix::unistd::mkdtemp(&std::env::temp_dir().join("examples-ipc-mq.XXXXXX"))?;
        Ok(MqueueDir {
            path,
            owner: std::process::id(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MqueueDir {
    fn drop(&mut self) {
        if self.owner == std::process::id() {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// How long [`in_namespace`] waits for a child's answer. Reading a
/// namespace's tables takes milliseconds; a child that takes this long is
/// stuck (or stopped), and is killed.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// Why a child could not read a namespace.
#[derive(Debug)]
pub enum NsError {
    /// No pipe for the answer.
    Pipe(Errno),
    /// No child: a multi-threaded caller, or fork failed.
    Fork(ForkError),
    /// The child could not enter the namespace: the right to is missing, as
    /// a rule (EPERM).
    Enter(EnterError),
    /// The closure returned an error, in its own words.
    Failed(String),
    /// No answer by the deadline; the child was killed.
    Timeout(Duration),
    /// Reading the answer from the pipe failed.
    Read(io::Error),
    /// The child ended without a whole answer (a signal, a panic: status 101).
    Died(String),
}

impl fmt::Display for NsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NsError::Pipe(_) => f.write_str("cannot create a pipe"),
            NsError::Fork(_) => f.write_str("cannot start a child to enter the namespace"),
            NsError::Enter(e) => e.fmt(f),
            NsError::Failed(why) => f.write_str(why),
            NsError::Timeout(d) => write!(
                f,
                "the child in the namespace gave no answer in {:.1} s and was killed",
                d.as_secs_f64()
            ),
            NsError::Read(_) => f.write_str("cannot read the answer of the child"),
            NsError::Died(how) => write!(f, "the child in the namespace ended ({how})"),
        }
    }
}

impl std::error::Error for NsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NsError::Pipe(e) | NsError::Fork(ForkError::Os(e)) => Some(e),
            NsError::Fork(e) => Some(e),
            NsError::Enter(e) => Some(&e.errno),
            NsError::Read(e) => Some(e),
            NsError::Failed(_) | NsError::Timeout(_) | NsError::Died(_) => None,
        }
    }
}

impl NsError {
    /// The errno of a failure to enter (EPERM: no right to), to tell
    /// "could not read" from a failure of the tool.
    pub fn enter_errno(&self) -> Option<Errno> {
        match self {
            NsError::Enter(e) => Some(e.errno),
            _ => None,
        }
    }
}

/// The first byte of the child's message: what follows it.
const ANSWER: u8 = b'A';
const ENTER_FAILED: u8 = b'E';
const FAILED: u8 = b'F';

/// A child at work in a namespace. Start several, do other work (the /proc
/// scan), then collect each answer with [`NsChild::finish`]: the children
/// read their namespaces meanwhile. `Drop` kills and reaps a child that
/// was not finished.
#[derive(Debug)]
pub struct NsChild {
    guard: ChildGuard,
    answer: File,
    started: Instant,
}

impl NsChild {
    /// Fork a child that joins `ns` ([`join`]) and runs `f` there, then
    /// writes `f`'s answer (serialized: JSON bytes) to a pipe and exits.
    /// The child dies with this process (PR_SET_PDEATHSIG). The parent must
    /// be single-threaded (see [`process::fork`]); the child prints nothing,
    /// so no buffered output needs flushing first.
    ///
    /// # Errors
    /// [`NsError::Pipe`], [`NsError::Fork`] (other threads run, EAGAIN).
    pub fn start(
        ns: &Namespace,
        f: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> Result<NsChild, NsError> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(NsError::Pipe)?;
        let parent = getpid();
        let mut read = Some(read);
        let pid = process::fork(|| {
            drop(read.take());
            let message = child_message(parent, ns, f);
            let code = if message.first() == Some(&ANSWER) {
                0
            } else {
                1
            };
            match File::from(write).write_all(&message) {
                Ok(()) => code,
                // The parent stopped listening: nobody reads an exit code.
                Err(_) => 3,
            }
        })
        .map_err(NsError::Fork)?;
        let guard = ChildGuard::new(pid);
        // `fork` returned in the parent, so the closure never ran here.
        let read = read.ok_or(NsError::Pipe(Errno::EBADF))?;
        Ok(NsChild {
            guard,
            answer: File::from(read),
            started: Instant::now(),
        })
    }

    /// The child's pid, so that a /proc scan does not count it as a user.
    pub fn pid(&self) -> Pid {
        self.guard.pid()
    }

    /// Read the child's answer until it closes the pipe, and reap it; kill
    /// it when `deadline` passes first.
    ///
    /// # Errors
    /// [`NsError::Enter`] (the child could not join), [`NsError::Failed`]
    /// (the closure's error), [`NsError::Timeout`], [`NsError::Died`],
    /// [`NsError::Read`].
    pub fn finish(mut self, deadline: Instant) -> Result<Vec<u8>, NsError> {
        let message = self.read_all(deadline)?;
        let status = self.reap(deadline)?;
        decode(&message, status)
    }

    fn read_all(&mut self, deadline: Instant) -> Result<Vec<u8>, NsError> {
        let mut message = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            if !wait_readable(self.answer.as_fd(), deadline)? {
                return Err(NsError::Timeout(self.started.elapsed()));
            }
            match self.answer.read(&mut chunk) {
                Ok(0) => return Ok(message),
                Ok(n) => message.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(NsError::Read(e)),
            }
        }
    }

    /// The pipe is closed, so the child is exiting; wait for that, within
    /// the deadline (a child stopped by a signal would block `waitpid`).
    fn reap(&mut self, deadline: Instant) -> Result<WaitStatus, NsError> {
        let mut pidfd = None;
        loop {
            match self.guard.wait(false) {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => {}
                Err(e) => return Err(cannot_wait(e)),
            }
            if pidfd.is_none() {
                match process::pidfd_open(self.guard.pid()) {
                    Ok(fd) => pidfd = Some(fd),
                    // Before Linux 5.3: the child ends right after closing
                    // its pipe, so a blocking wait is short.
                    Err(_) => {
                        return self.guard.reap().map_err(cannot_wait);
                    }
                }
            }
            if let Some(fd) = &pidfd
                && !wait_readable(fd.as_fd(), deadline)?
            {
                return Err(NsError::Timeout(self.started.elapsed()));
            }
        }
    }
}

fn cannot_wait(errno: Errno) -> NsError {
    NsError::Died(format!(
        "cannot wait for it: {}",
        crate::error::errno_text(errno)
    ))
}

/// Run `f` in a child inside `ns` and return its answer: [`NsChild::start`]
/// then [`NsChild::finish`] with [`ANSWER_DEADLINE`]. The child is killed
/// and reaped on every path.
///
/// # Errors
/// As for [`NsChild::start`] and [`NsChild::finish`].
pub fn in_namespace(
    ns: &Namespace,
    f: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> Result<Vec<u8>, NsError> {
    NsChild::start(ns, f)?.finish(Instant::now() + ANSWER_DEADLINE)
}

/// In the child: die with the parent, join, run `f`; the message to send.
fn child_message(
    parent: Pid,
    ns: &Namespace,
    f: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> Vec<u8> {
    if let Err(e) = process::child_setup(parent) {
        return failed(&format!("cannot set the child up: {e}"));
    }
    if let Err(e) = join(&ns.ipc, ns.mnt.as_ref()) {
        let mut message = vec![ENTER_FAILED, e.step.code()];
        message.extend_from_slice(&(e.errno as i32).to_le_bytes());
        return message;
    }
    match f() {
        Ok(answer) => {
            let mut message = Vec::with_capacity(answer.len() + 1);
            message.push(ANSWER);
            message.extend_from_slice(&answer);
            message
        }
        Err(e) => failed(&crate::error::Chain(&e).to_string()),
    }
}

fn failed(why: &str) -> Vec<u8> {
    let mut message = vec![FAILED];
    message.extend_from_slice(why.as_bytes());
    message
}

/// The child's message and how it ended, as the caller's result. An answer
/// counts only from a child that exited 0: one killed while writing may
/// have sent half of it.
fn decode(message: &[u8], status: WaitStatus) -> Result<Vec<u8>, NsError> {
    let died = || {
        let how =
            process::exit_status(status).map_or_else(|| format!("{status:?}"), |s| s.to_string());
        NsError::Died(how)
    };
    match message.split_first() {
        Some((&ANSWER, answer)) if matches!(status, WaitStatus::Exited(_, 0)) => {
            Ok(answer.to_vec())
        }
        Some((&ENTER_FAILED, [step, errno @ ..])) => {
            let step = Step::from_code(*step).ok_or_else(died)?;
            let errno: [u8; 4] = errno.try_into().map_err(|_| died())?;
            Err(NsError::Enter(EnterError {
                step,
                errno: Errno::from_raw(i32::from_le_bytes(errno)),
            }))
        }
        Some((&FAILED, why)) => Err(NsError::Failed(String::from_utf8_lossy(why).into_owned())),
        _ => Err(died()),
    }
}

/// `poll(fd, POLLIN)` until it is readable (or hung up): true; false when
/// `deadline` passed first.
fn wait_readable(fd: BorrowedFd<'_>, deadline: Instant) -> Result<bool, NsError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        // Whole milliseconds, rounded up so that a short rest is not a busy loop.
        let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128) as i32;
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => {}
            Ok(_) => return Ok(true),
            Err(e) => return Err(NsError::Read(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::Creation;
    use crate::ipc::posix_mq::{Access, PosixQueue, QueueOptions};
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    fn me() -> Pid {
        getpid()
    }

    #[test]
    fn links_read_as_kind_and_inode() {
        assert_eq!(
            parse_link(NsKind::Ipc, "ipc:[4026531839]"),
            Some(4026531839)
        );
        assert_eq!(
            parse_link(NsKind::Mnt, "mnt:[4026531841]"),
            Some(4026531841)
        );
        assert_eq!(parse_link(NsKind::Ipc, "mnt:[4026531841]"), None);
        assert_eq!(parse_link(NsKind::Ipc, "ipc:[]"), None);
        assert_eq!(parse_link(NsKind::Ipc, "ipc:[12"), None);
        assert_eq!(parse_link(NsKind::Ipc, "ipc:12"), None);
    }

    #[test]
    fn an_open_namespace_file_has_the_links_inode() {
        for kind in [NsKind::Ipc, NsKind::Mnt] {
            let file = NsFile::open(me(), kind).unwrap();
            assert_eq!(file.kind(), kind);
            assert_eq!(file.inode(), inode(me(), kind).unwrap());
        }
        // No such process (pid_max is below 2^22).
        let gone = Pid::from_raw(i32::MAX);
        assert_eq!(inode(gone, NsKind::Ipc), Err(Errno::ENOENT));
        assert_eq!(NsFile::open(gone, NsKind::Ipc).unwrap_err(), Errno::ENOENT);
    }

    #[test]
    fn a_namespace_opens_only_when_it_is_the_expected_one() {
        let ipc = inode(me(), NsKind::Ipc).unwrap();
        let ns = Namespace::open(me(), Some(ipc), true).unwrap();
        assert_eq!(ns.pid(), me());
        assert_eq!(ns.ipc_inode(), ipc);
        assert_eq!(ns.mnt_inode(), inode(me(), NsKind::Mnt).ok());
        assert_eq!(
            Namespace::open(me(), None, false).unwrap().mnt_inode(),
            None
        );
        // The pid now lives elsewhere (reused): refused, not read under the
        // wrong name.
        assert_eq!(
            Namespace::open(me(), Some(ipc + 1), false).unwrap_err(),
            Errno::ESRCH
        );
    }

    #[test]
    fn a_multi_threaded_caller_gets_no_child() {
        // The test harness runs threads: exactly what fork must refuse.
        let ns = Namespace::open(me(), None, false).unwrap();
        let err = in_namespace(&ns, || Ok(b"never".to_vec())).unwrap_err();
        assert!(
            matches!(err, NsError::Fork(ForkError::Threads(_))),
            "{err:?}"
        );
        assert_eq!(err.enter_errno(), None);
    }

    #[test]
    fn messages_decode_by_tag_and_exit_status() {
        let pid = Pid::from_raw(1);
        let ok = WaitStatus::Exited(pid, 0);
        assert_eq!(decode(b"A{\"x\":1}", ok).unwrap(), b"{\"x\":1}");
        assert_eq!(decode(b"A", ok).unwrap(), b"");
        // Half an answer from a killed child is no answer.
        let killed = WaitStatus::Signaled(pid, nix::sys::signal::Signal::SIGKILL, false);
        let err = decode(b"A{\"x\":", killed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the child in the namespace ended (signal: 9 (SIGKILL))"
        );
        let mut enter = vec![ENTER_FAILED, Step::SetnsIpc.code()];
        enter.extend_from_slice(&(Errno::EPERM as i32).to_le_bytes());
        let err = decode(&enter, WaitStatus::Exited(pid, 1)).unwrap_err();
        assert_eq!(err.enter_errno(), Some(Errno::EPERM));
        assert_eq!(err.to_string(), "setns(CLONE_NEWIPC)");
        let err = decode(&enter[..3], WaitStatus::Exited(pid, 1)).unwrap_err();
        assert!(matches!(err, NsError::Died(_)), "{err:?}");
        let err = decode(
            b"Fcannot read /proc/sysvipc/msg",
            WaitStatus::Exited(pid, 1),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "cannot read /proc/sysvipc/msg"
        );
        // A panic (101) before anything was written.
        let err = decode(b"", WaitStatus::Exited(pid, 101)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the child in the namespace ended (exit status: 101)"
        );
        assert!(matches!(decode(b"Zx", ok), Err(NsError::Died(_))));
    }

    /// The parent's half of the protocol against a shell that plays the
    /// child (a fork is refused in the multi-threaded test harness).
    #[expect(clippy::zombie_processes, reason = "the ChildGuard reaps it, by pid")]
    fn played_by(script: &str) -> NsChild {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let guard = ChildGuard::spawned(&child);
        let out = child.stdout.take().expect("piped");
        NsChild {
            guard,
            answer: File::from(OwnedFd::from(out)),
            started: Instant::now(),
        }
    }

    fn gone(pid: Pid) -> bool {
        nix::sys::signal::kill(pid, None) == Err(Errno::ESRCH)
    }

    #[test]
    fn the_parent_takes_an_answer_only_from_a_child_that_exited_0() {
        let soon = || Instant::now() + ANSWER_DEADLINE;
        let answer = played_by(r#"printf 'A{"ok":1}'"#).finish(soon()).unwrap();
        assert_eq!(answer, br#"{"ok":1}"#);
        let err = played_by(r#"printf 'A{"half'; kill -9 $$"#)
            .finish(soon())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the child in the namespace ended (signal: 9 (SIGKILL))"
        );
        let err = played_by("printf 'Fcannot read it'; exit 1")
            .finish(soon())
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot read it");
    }

    #[test]
    fn a_child_that_does_not_answer_in_time_is_killed_and_reaped() {
        // Silent, and silent after closing its pipe: both wait points.
        for script in ["exec sleep 600", "exec >&-; exec sleep 600"] {
            let child = played_by(script);
            let pid = child.pid();
            let err = child
                .finish(Instant::now() + Duration::from_millis(300))
                .unwrap_err();
            assert!(
                matches!(err, NsError::Timeout(d) if d >= Duration::from_millis(300)),
                "{err:?}"
            );
            assert!(err.to_string().ends_with("s and was killed"), "{err}");
            assert!(gone(pid), "{script}: pid {pid} is still there");
        }
        // Dropped unfinished: killed and reaped as well.
        let child = played_by("exec sleep 600");
        let pid = child.pid();
        drop(child);
        assert!(gone(pid));
    }

    #[test]
    fn every_step_round_trips_through_its_code() {
        for step in Step::ALL {
            assert_eq!(Step::from_code(step.code()), Some(step));
        }
        assert_eq!(Step::from_code(200), None);
    }

    #[test]
    fn an_mqueue_dir_is_made_empty_and_removed() {
        let dir = MqueueDir::new().unwrap();
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
        drop(dir);
        assert!(!path.exists());
    }

    /// `unshare --ipc` holding one System V queue (made with ipcmk), killed
    /// and reaped at the end of the test.
    struct Unshared(std::process::Child);

    impl Drop for Unshared {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn unshared_with_a_queue() -> Unshared {
        let mut child = Command::new("unshare")
            .args(["--ipc", "sh", "-c"])
            .arg("ipcmk -Q >/dev/null && echo ready && exec sleep 600")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) runs");
        let out = child.stdout.take().expect("piped");
        let unshared = Unshared(child);
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        unshared
    }

    /// What a child in the namespace does, done in a thread of its own
    /// instead: `setns(CLONE_NEWIPC)` and `unshare(CLONE_NEWNS)` change only
    /// the calling thread, which then ends. (A fork is refused in the
    /// multi-threaded test harness.)
    #[test]
    fn a_joined_thread_sees_the_namespaces_objects_and_only_it() {
        let unshared = unshared_with_a_queue();
        let pid = Pid::from_raw(unshared.0.id() as i32);
        let theirs = inode(pid, NsKind::Ipc).unwrap();
        assert_ne!(theirs, inode(me(), NsKind::Ipc).unwrap());
        let ns = Namespace::open(pid, Some(theirs), true).unwrap();
        let dir = MqueueDir::new().unwrap();
        let name = format!("/eipc-unit-{}-ns", std::process::id());
        let seen = std::thread::scope(|s| {
            s.spawn(|| {
                // A mount namespace cannot be joined by one thread of many.
                let err = join(&ns.ipc, ns.mnt.as_ref()).unwrap_err();
                assert_eq!((err.step, err.errno), (Step::SetnsMnt, Errno::EINVAL));
                // ... but the IPC namespace was (this thread's, not the
                // process's: /proc/PID/ns shows the main thread), and that
                // is all a listing needs.
                let tid = nix::unistd::gettid();
                let thread_ipc = std::fs::read_link(format!("/proc/self/task/{tid}/ns/ipc"));
                assert_eq!(
                    thread_ipc
                        .unwrap()
                        .to_str()
                        .and_then(|t| parse_link(NsKind::Ipc, t)),
                    Some(theirs)
                );
                mount_private_mqueue(dir.path()).unwrap();
                let options = QueueOptions {
                    access: Access::ReadWrite,
                    nonblocking: true,
                    mode: 0o600,
                    capacity: 1,
                    msg_size: 16,
                };
                let _queue = PosixQueue::open(&name, Creation::CreateNew, &options).unwrap();
                let queues: Vec<String> = std::fs::read_dir(dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
                let sysv = std::fs::read_to_string("/proc/sysvipc/msg").unwrap();
                (queues, sysv.lines().count() - 1)
            })
            .join()
            .unwrap()
        });
        assert_eq!(seen, (vec![name[1..].to_string()], 1));
        // Nothing of it here: not the queue, not the mount.
        assert!(PosixQueue::open_existing(&name, Access::Read).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
