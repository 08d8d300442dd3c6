//! Test harness: the real binary, unique object names and keys, a guard that
//! removes every object a test made (also when it fails), and a server child
//! whose output lines the test waits on, never a fixed sleep.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

mod namespace;
use examples_ipc::ipc::Owned;
use examples_ipc::ipc::posix_mq::{Access, PosixQueue};
use examples_ipc::object::{Kind, ObjectRef};
use examples_ipc::target::SysvKey;
pub use namespace::{DevShm, Namespace, NsObjects, Users, ipc_inode_of, ipcs_lists, processes_in};

/// Every wait in a test has this deadline: long enough for a loaded 2-core
/// machine, short enough that a hang fails instead of stalling CI.
pub const DEADLINE: Duration = Duration::from_secs(30);

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// The binary under test, with a scrubbed environment.
pub fn bin() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("examples-ipc"));
    cmd.env_clear();
    for keep in ["PATH", "TZ", "HOME"] {
        if let Ok(v) = std::env::var(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.stdin(Stdio::null());
    // A shell without job control starts `cargo test &` with SIGINT and
    // SIGQUIT ignored, and exec passes that on: the tests that type Ctrl-C
    // would then wait forever. Reset them here, once, for every child. (A
    // pre_exec hook would make Command fork instead of posix_spawn, and a
    // forked child holds this process's System V attachments until exec:
    // `nattch` would count it.)
    static DEFAULTS: std::sync::Once = std::sync::Once::new();
    DEFAULTS.call_once(|| {
        // SAFETY: signal(2) with SIG_DFL installs no handler of ours.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
        }
    });
    cmd
}

/// Run to completion and return the output.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("cannot run examples-ipc")
}

/// A POSIX name no other test, run or process uses: pid + counter + tag.
pub fn unique_name(tag: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    format!("/eipc-test-{}-{n}-{tag}", std::process::id())
}

/// A directory of this test's own (unique, under the temporary directory),
/// removed with everything in it in `Drop`.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let name = unique_name(tag);
        let dir = std::env::temp_dir().join(&name[1..]);
        std::fs::create_dir(&dir).expect("cannot create a test directory");
        TempDir(dir)
    }

    /// The path of `name` in it, as a command-line word.
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A System V key unique to this test: pid and counter mixed into 32 bits,
/// never 0. The caller still creates exclusively; see `Cleanup`.
pub fn unique_key() -> i32 {
    let n = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    let key = 0x4950_0000u32
        ^ (pid.wrapping_mul(2_654_435_761) & 0x00ff_ffff)
        ^ (n << 24).wrapping_add(n);
    if key == 0 { 1 } else { key as i32 }
}

/// `0x%08x`, as the tool and ipcs print keys.
pub fn key_hex(key: i32) -> String {
    format!("0x{:08x}", key as u32)
}

/// An object a test made.
#[derive(Debug, Clone)]
pub enum Obj {
    PosixMsq(String),
    PosixShm(String),
    PosixSem(String),
    SysvMsq(i32),
    SysvShm(i32),
    SysvSem(i32),
    Path(PathBuf),
}

/// Removes its objects in Drop, whether the test passed or panicked.
#[derive(Default)]
pub struct Cleanup(pub Vec<Obj>);

impl Cleanup {
    pub fn new() -> Self {
        Cleanup(Vec::new())
    }

    pub fn add(&mut self, obj: Obj) -> &mut Self {
        self.0.push(obj);
        self
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for obj in &self.0 {
            remove(obj);
        }
    }
}

impl Obj {
    /// The object as the library names it, or None for a path.
    pub fn object_ref(&self) -> Option<ObjectRef> {
        let name = |n: &str| n.parse().expect("a test name is a valid POSIX name");
        Some(match self {
            Obj::PosixMsq(n) => ObjectRef::posix(Kind::PosixMsq, name(n)),
            Obj::PosixShm(n) => ObjectRef::posix(Kind::PosixShm, name(n)),
            Obj::PosixSem(n) => ObjectRef::posix(Kind::PosixSem, name(n)),
            Obj::SysvMsq(k) => ObjectRef::sysv_key(Kind::SysvMsq, SysvKey(*k)),
            Obj::SysvShm(k) => ObjectRef::sysv_key(Kind::SysvShm, SysvKey(*k)),
            Obj::SysvSem(k) => ObjectRef::sysv_key(Kind::SysvSem, SysvKey(*k)),
            Obj::Path(_) => return None,
        })
    }
}

/// Remove one object, ignoring "no such": it may be gone already. The
/// library's guard does it: an `Owned` object is removed when dropped.
pub fn remove(obj: &Obj) {
    match obj.object_ref() {
        Some(obj) => drop(Owned::new(obj)),
        None => {
            if let Obj::Path(path) = obj {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Whether a POSIX object (or a path) still exists.
pub fn posix_exists(obj: &Obj) -> bool {
    match obj {
        Obj::PosixShm(name) => PathBuf::from(format!("/dev/shm/{}", &name[1..])).exists(),
        Obj::PosixSem(name) => PathBuf::from(format!("/dev/shm/sem.{}", &name[1..])).exists(),
        // Opening without O_CREAT creates nothing; /dev/mqueue may not be mounted.
        Obj::PosixMsq(name) => match PosixQueue::open_existing(name, Access::Read) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        },
        Obj::Path(p) => p.exists(),
        _ => panic!("not a POSIX object: {obj:?}"),
    }
}

/// A line from a child: stdout or stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Out(String),
    Err(String),
}

/// A running server child. Drop kills it.
pub struct Server {
    child: Child,
    lines: Receiver<Line>,
    pub seen_out: Vec<String>,
    pub seen_err: Vec<String>,
}

impl Server {
    /// Start `examples-ipc ARGS` and wait for its start line.
    pub fn start(args: &[&str]) -> Server {
        let mut server = Server::spawn(args);
        let first = server.next_out();
        assert!(!first.is_empty(), "no start line");
        server
    }

    /// Start without waiting for anything.
    pub fn spawn(args: &[&str]) -> Server {
        let mut child = bin()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start server");
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(Line::Out(l));
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(Line::Err(l));
            }
        });
        Server {
            child,
            lines: rx,
            seen_out: Vec::new(),
            seen_err: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next stdout line, within DEADLINE (stderr lines are kept aside).
    pub fn next_out(&mut self) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(Line::Out(l)) => {
                    self.seen_out.push(l.clone());
                    return l;
                }
                Ok(Line::Err(l)) => self.seen_err.push(l),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no server line within {DEADLINE:?}; so far: {:?} / {:?}",
                    self.seen_out, self.seen_err
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "server output ended; so far: {:?} / {:?}",
                    self.seen_out, self.seen_err
                ),
            }
        }
    }

    /// The next stderr line, within DEADLINE (stdout lines are kept aside).
    pub fn next_err(&mut self) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(Line::Err(l)) => {
                    self.seen_err.push(l.clone());
                    return l;
                }
                Ok(Line::Out(l)) => self.seen_out.push(l),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no stderr line within {DEADLINE:?}; so far: {:?} / {:?}",
                    self.seen_out, self.seen_err
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "output ended; so far: {:?} / {:?}",
                    self.seen_out, self.seen_err
                ),
            }
        }
    }

    /// Read stdout lines until one contains `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        loop {
            let l = self.next_out();
            if l.contains(needle) {
                return l;
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Wait for exit within DEADLINE; returns the status with every
    /// remaining stdout and stderr line.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                Instant::now() < end,
                "server did not exit; so far {:?}",
                self.seen_out
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        // The reader threads end at EOF; collect what they still hold.
        loop {
            match self.lines.recv_timeout(DEADLINE) {
                Ok(Line::Out(l)) => self.seen_out.push(l),
                Ok(Line::Err(l)) => self.seen_err.push(l),
                Err(_) => break,
            }
        }
        (
            status,
            std::mem::take(&mut self.seen_out),
            std::mem::take(&mut self.seen_err),
        )
    }
}

impl Server {
    /// Wait for the server to end with exit 1 and an `error:` line that
    /// contains `fragment`; returns its stderr.
    #[track_caller]
    pub fn fails_with(self, fragment: &str) -> Vec<String> {
        let (status, out, err) = self.finish();
        assert_eq!(status.code(), Some(1), "stdout {out:?} stderr {err:?}");
        assert!(
            err.iter()
                .any(|l| l.starts_with("error:") && l.contains(fragment)),
            "no error line with {fragment:?}: {err:?}"
        );
        err
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Assert an exit code and a stderr fragment, returning stderr.
#[track_caller]
pub fn assert_fails(o: &Output, code: i32, fragment: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {} stderr: {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(err.contains(fragment), "stderr lacks {fragment:?}: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    err
}

#[track_caller]
pub fn assert_ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Drop the `HH:MM:SS.ffffff ` timestamp of a text line.
pub fn untimed(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, rest)| rest)
}

/// Run the binary with standard input from /dev/zero, an endless line. The
/// address space is capped so that a client that reads without bound aborts
/// quickly instead of taking the machine's memory.
pub fn run_on_endless_stdin(args: &[&str]) -> Output {
    let exe = assert_cmd::cargo::cargo_bin!("examples-ipc");
    Command::new("prlimit")
        .arg("--as=1073741824")
        .arg("--")
        .arg(exe)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::fs::File::open("/dev/zero").expect("/dev/zero"))
        .output()
        .expect("cannot run examples-ipc under prlimit (util-linux)")
}

/// A server whose stdout is a pipe the test fills, so that the server blocks
/// in write(2) on its next line: the point where `kill -9` shows whether it
/// took messages it had not printed yet.
pub struct Stalled {
    child: Child,
    out: BufReader<std::fs::File>,
    pub start_line: String,
}

impl Stalled {
    /// Start `examples-ipc ARGS` with stdout on a pipe and read its start line.
    pub fn start(args: &[&str]) -> Stalled {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors of the array it is given.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The Command, and with it our copy of the write end, ends with this
        // statement, so the read end sees EOF once the server is gone.
        let child = bin()
            .args(args)
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start server");
        let mut stalled = Stalled {
            child,
            out: BufReader::new(std::fs::File::from(read)),
            start_line: String::new(),
        };
        let mut line = String::new();
        stalled.out.read_line(&mut line).expect("read start line");
        assert!(!line.is_empty(), "no start line: {}", stalled.stderr());
        stalled.start_line = line;
        stalled
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// SIGSTOP, and wait until the kernel shows the server stopped.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.wait_until("stopped", |s| s.state() == Some('T'));
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Fill the pipe on the server's stdout (with empty lines) until it
    /// takes no more, so that the server's next write blocks.
    pub fn fill_stdout(&self) {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // A fresh open of the pipe, so O_NONBLOCK does not reach the
        // server's own descriptor.
        let mut pipe = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!("/proc/{}/fd/1", self.pid()))
            .expect("open the server's stdout");
        for chunk in [&[b'\n'; 4096][..], b"\n"] {
            loop {
                match pipe.write(chunk) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("fill the server's stdout: {e}"),
                }
            }
        }
    }

    /// The scheduler state of the server: R, S, D, T, Z, ...
    pub fn state(&self) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // "pid (comm) S ...": comm may hold anything, the state follows its last ')'.
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    /// Wait until `taken` says the server took something and the server then
    /// sleeps: with the stdout pipe full, that is its write of a line.
    pub fn wait_blocked(&mut self, taken: impl Fn() -> bool) {
        self.wait_until("blocked on its output", |s| {
            taken() && s.state() == Some('S')
        });
    }

    fn wait_until(&mut self, what: &str, cond: impl Fn(&Stalled) -> bool) {
        let end = Instant::now() + DEADLINE;
        while !cond(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server ended ({status}) before it was {what}: {}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < end,
                "server not {what} within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `kill -9`, then every non-empty stdout line the server wrote after its
    /// start line.
    pub fn kill(mut self) -> Vec<String> {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest)
            .expect("read the killed server's output");
        rest.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            if self.child.try_wait().is_ok_and(|s| s.is_some()) {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
        }
        err
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The N of each `{"count":N}` in `lines`, in order.
pub fn counts(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find(r#"{"count":"#)? + 9..];
            rest[..rest.find('}')?].parse().ok()
        })
        .collect()
}

/// Messages 1..=n, printed in order by a server killed with `kill -9`
/// (`first`) and then by the next one (`second`): each once, and at most
/// the one the first server had in flight missing.
#[track_caller]
pub fn assert_at_most_one_lost(n: u64, first: &[u64], second: &[u64]) {
    let all: Vec<u64> = first.iter().chain(second).copied().collect();
    assert!(
        all.windows(2).all(|w| w[0] < w[1]) && all.iter().all(|&i| (1..=n).contains(&i)),
        "duplicated, out of order or unknown: {first:?} then {second:?}"
    );
    let in_flight = first.last().map_or(1, |i| i + 1);
    let missing: Vec<u64> = (1..=n).filter(|i| !all.contains(i)).collect();
    assert!(
        missing.is_empty() || missing == [in_flight],
        "lost {missing:?} (only {in_flight}, in flight at the kill, may be): {first:?} then {second:?}"
    );
}
