//! `doctor`: the known IPC pitfalls of this machine, each found with the
//! objects, processes and numbers involved and the command that fixes it.
//!
//! Two halves:
//! - [`Facts`]: what the machine and its objects look like. The machine
//!   part ([`MachineFacts`]: /dev/shm, the mqueue mount, msg_max,
//!   RLIMIT_MSGQUEUE, the semaphore files) is gathered here,
//!   [`gather_machine`]. The per-object part ([`ObjectFacts`]: orphans,
//!   semaphores, queues, segments, this user's queue bytes) comes from
//!   `ls`'s scan and its process table; the wiring step builds it from
//!   the scan's typed rows (`object_facts`, see [`ObjectFacts`]).
//! - [`check`]: pure functions from facts to typed [`Finding`]s, so every
//!   finding is tested from a crafted situation, and absent from a healthy
//!   one. [`render`] is the text form; `--json` serializes the findings.
//!
//! The exit status is 0 without findings and 1 with any ([`exit_code`]).
//!
//! `-A` and `--namespace` check other IPC namespaces with their own facts:
//! see [`all`].

use std::fmt::{self, Write as _};
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::ipc::semfile::{Invalid, SemFile};
use crate::ls::{Fields, NsScope, NsTag, Object, SysvMsq, User};
use crate::object::Kind;
use crate::output::{escape_bytes, plural};

/// Docker's default /dev/shm, 64 MiB: at or below it, /dev/shm is small.
pub const SMALL_DEV_SHM: u64 = 64 << 20;
/// Percent of /dev/shm in use above which it is nearly full.
pub const FULL_PERCENT: u64 = 90;
/// The kernel's default msg_max, which posix_ipc's users trip over.
pub const DEFAULT_MSG_MAX: u64 = 10;
/// Percent of RLIMIT_MSGQUEUE in use above which new queues soon fail.
pub const RLIMIT_PERCENT: u64 = 80;
/// Objects a finding's text names; `--json` has them all (a host with a
/// thousand orphans would otherwise print one line of a thousand).
const TEXT_OBJECTS: usize = 10;

/// Everything the checks look at.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub machine: MachineFacts,
    pub objects: ObjectFacts,
}

/// The machine-wide facts; `None` where they could not be read (then the
/// check is skipped, never guessed).
#[derive(Debug, Clone, Default)]
pub struct MachineFacts {
    /// /dev/shm's file system: size and bytes used (statvfs).
    pub dev_shm: Option<Space>,
    /// Where an mqueue file system is mounted, if anywhere
    /// (/proc/self/mountinfo); `None` when that could not be read.
    pub mqueue_mount: Option<Option<String>>,
    /// /proc/sys/fs/mqueue/msg_max.
    pub msg_max: Option<u64>,
    /// RLIMIT_MSGQUEUE's soft limit in bytes; `Some(None)` for unlimited.
    pub msgqueue_limit: Option<Option<u64>>,
    /// Files /dev/shm/sem.* that are not a valid glibc `sem_t`.
    pub invalid_sem_files: Vec<InvalidSemFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub size: u64,
    pub used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSemFile {
    /// The semaphore's name, with its '/'.
    pub name: String,
    pub why: String,
}

/// What `ls`'s scan knows, as doctor needs it: filled by the wiring step
/// from the scan's typed rows and its process table.
#[derive(Debug, Clone, Default)]
pub struct ObjectFacts {
    /// Objects no live process uses (`ls`'s ORPHANED yes).
    pub orphans: Vec<ObjectFact>,
    /// Every semaphore (one entry per semaphore of a System V set).
    pub semaphores: Vec<SemFact>,
    /// Every queue.
    pub queues: Vec<QueueFact>,
    /// Every System V segment.
    pub segments: Vec<SegmentFact>,
    /// Bytes of RLIMIT_MSGQUEUE this user's queues take: the kernel's
    /// charge (ipc/mqueue.c, `queue_cost` in posix/msq.rs) summed over the
    /// queues this user owns. `None` when the queues could not be listed.
    pub msgqueue_used: Option<u64>,
}

/// An object, as findings name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectFact {
    pub mechanism: Kind,
    /// A POSIX name (with '/').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A System V key as ipcs prints it, and the id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// A segment's size, a queue's bytes queued; 0 for a semaphore.
    pub bytes: u64,
}

impl ObjectFact {
    /// The name or key, escaped for text.
    pub fn label(&self) -> String {
        crate::object::label(self.name.as_deref(), self.key.as_deref(), self.id)
    }

    /// `-n NAME` or `-k KEY`, shell-quoted, for a fix command.
    fn address(&self) -> String {
        match (&self.name, &self.key) {
            (Some(name), _) => format!("-n {}", shell_quote(name)),
            (None, Some(key)) => format!("-k {key}"),
            (None, None) => format!("-i {}", self.id.unwrap_or(0)),
        }
    }

    /// `posix sem`, `sysv msq`, ...: the command for the kind.
    fn command(&self) -> String {
        let family = if self.mechanism.is_posix() {
            "posix"
        } else {
            "sysv"
        };
        let mech = match self.mechanism.what() {
            "queue" => "msq",
            "segment" => "shm",
            _ => "sem",
        };
        format!("examples-ipc {family} {mech} {}", self.address())
    }
}

/// A live or dead process a finding names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: i32,
    pub command: String,
}

/// One semaphore: its value, waiters, and whether whoever could post it
/// is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemFact {
    pub object: ObjectFact,
    pub semnum: u32,
    pub value: u64,
    /// Processes waiting for it to rise (GETNCNT; POSIX: the waiters word).
    pub waiters: u64,
    /// System V: the last process that operated on it (sempid).
    pub last_pid: Option<i32>,
    /// Whether a process that could post it lives: System V, whether
    /// sempid is alive; POSIX, whether any process other than the waiters
    /// has it open. `None` when unknown.
    pub holder_alive: Option<bool>,
    pub waiting: Vec<Process>,
}

/// One queue: how full it is, who waits to send, who could receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFact {
    pub object: ObjectFact,
    pub messages: u64,
    /// POSIX: mq_maxmsg; System V: none.
    pub max_messages: Option<u64>,
    /// System V: msg_qbytes; POSIX: none.
    pub max_bytes: Option<u64>,
    /// Processes blocked sending to it (/proc/PID/syscall).
    pub blocked_senders: Vec<Process>,
    /// Live processes that may receive: POSIX, those with it open besides
    /// the blocked senders; System V, those blocked in msgrcv on it and
    /// the last receiver (lrpid) if it lives.
    pub live_readers: Vec<Process>,
}

/// One System V segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFact {
    pub object: ObjectFact,
    /// IPC_RMID was called (SHM_DEST): freed at the last detach.
    pub removed: bool,
    pub nattch: u64,
    /// The live processes attached (/proc/PID/maps).
    pub attached: Vec<Process>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A pitfall: something will fail later, or resources are held.
    Warning,
    /// Something is stuck or broken now.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable, for scripts: `dev-shm-small`, `semaphore-deadlock`, ...
    pub id: &'static str,
    pub severity: Severity,
    /// The IPC namespace it was found in (`-A`, `--namespace`; none for a
    /// per-user limit, which spans namespaces).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<NsTag>,
    pub message: String,
    pub objects: Vec<ObjectFact>,
    pub processes: Vec<Process>,
    /// The numbers involved, by name, in bytes or counts.
    pub numbers: Map<String, Value>,
    /// The command (or commands, one per line) that fixes it.
    pub fix: String,
}

impl Finding {
    fn new(id: &'static str, severity: Severity, message: String, fix: String) -> Finding {
        Finding {
            id,
            severity,
            namespace: None,
            message,
            objects: Vec::new(),
            processes: Vec::new(),
            numbers: Map::new(),
            fix,
        }
    }

    fn number(mut self, name: &str, value: u64) -> Finding {
        self.numbers.insert(name.into(), value.into());
        self
    }
}

/// All findings, the most severe first, in the order of the issue's list
/// within a severity.
pub fn check(facts: &Facts) -> Vec<Finding> {
    let m = &facts.machine;
    let o = &facts.objects;
    let mut all = Vec::new();
    all.extend(dev_shm(m.dev_shm));
    all.extend(mqueue_mount(m.mqueue_mount.as_ref()));
    all.extend(msg_max(m.msg_max));
    all.extend(msgqueue_rlimit(o.msgqueue_used, m.msgqueue_limit));
    all.extend(orphans(&o.orphans));
    all.extend(o.semaphores.iter().filter_map(semaphore_deadlock));
    all.extend(o.queues.iter().filter_map(queue_stuck));
    all.extend(o.segments.iter().filter_map(segment_removed_attached));
    all.extend(m.invalid_sem_files.iter().map(invalid_sem_file));
    // Stable: within a severity, the order above stays.
    all.sort_by_key(|f| std::cmp::Reverse(f.severity));
    all
}

/// 0 when healthy, 1 when something was found.
pub fn exit_code(findings: &[Finding]) -> u8 {
    u8::from(!findings.is_empty())
}

/// Mebibytes, for messages.
fn mib(bytes: u64) -> String {
    let m = bytes as f64 / f64::from(1 << 20);
    if m >= 10.0 || m.fract() == 0.0 {
        format!("{m:.0} MiB")
    } else {
        format!("{m:.1} MiB")
    }
}

/// /dev/shm at Docker's 64 MiB or below (POSIX segments and semaphores
/// then die of SIGBUS or ENOSPC early), or over 90 % full.
pub fn dev_shm(space: Option<Space>) -> Vec<Finding> {
    let Some(Space { size, used }) = space else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if size > 0 && used.saturating_mul(100) > size.saturating_mul(FULL_PERCENT) {
        let pct = used.saturating_mul(100) / size;
        found.push(
            Finding::new(
                "dev-shm-full",
                Severity::Error,
                format!(
                    "/dev/shm is {pct} % full ({} of {}): new POSIX segments fail with ENOSPC, and writes to sparse ones with SIGBUS",
                    mib(used),
                    mib(size)
                ),
                "examples-ipc ls --posix -t shm\nexamples-ipc clean --stale --dry-run".into(),
            )
            .number("size", size)
            .number("used", used),
        );
    }
    if size <= SMALL_DEV_SHM {
        found.push(
            Finding::new(
                "dev-shm-small",
                Severity::Warning,
                format!(
                    "/dev/shm is only {} ({}): larger shared memory fails with SIGBUS or ENOSPC",
                    mib(size),
                    if size == SMALL_DEV_SHM {
                        "Docker's default"
                    } else {
                        "Docker's default is 64 MiB"
                    }
                ),
                "docker run --shm-size=1g ...   # in a container\nmount -o remount,size=1G /dev/shm   # on a host, as root".into(),
            )
            .number("size", size)
            .number("used", used),
        );
    }
    found
}

/// No mqueue file system: queues work, but nobody can list them.
pub fn mqueue_mount(mount: Option<&Option<String>>) -> Option<Finding> {
    match mount {
        Some(None) => Some(Finding::new(
            "mqueue-not-mounted",
            Severity::Warning,
            "/dev/mqueue is not mounted: POSIX queues work but cannot be listed or inspected by ls, ipcs or lsipc".into(),
            "mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue   # as root".into(),
        )),
        _ => None,
    }
}

/// msg_max at the kernel's default of 10: `mq_open` with a larger
/// maxmsg fails with EINVAL (posix_ipc's default asks for more).
pub fn msg_max(value: Option<u64>) -> Option<Finding> {
    (value? <= DEFAULT_MSG_MAX).then(|| {
        Finding::new(
            "msg-max-default",
            Severity::Warning,
            format!(
                "fs.mqueue.msg_max is {}: a POSIX queue of more messages cannot be created (EINVAL) without CAP_SYS_RESOURCE",
                value.unwrap_or_default()
            ),
            "sysctl -w fs.mqueue.msg_max=1024   # as root; persist it in /etc/sysctl.d/".into(),
        )
        .number("msg_max", value.unwrap_or_default())
    })
}

/// This user's queues take over 80 % of RLIMIT_MSGQUEUE: the next
/// `mq_open` fails with EMFILE.
pub fn msgqueue_rlimit(used: Option<u64>, limit: Option<Option<u64>>) -> Option<Finding> {
    let used = used?;
    let limit = limit??;
    if used.saturating_mul(100) <= limit.saturating_mul(RLIMIT_PERCENT) {
        return None;
    }
    let pct = used.saturating_mul(100).checked_div(limit).unwrap_or(100);
    Some(
        Finding::new(
            "msgqueue-rlimit",
            Severity::Warning,
            format!(
                "this user's POSIX queues take {pct} % of RLIMIT_MSGQUEUE ({used} of {limit} bytes): the next mq_open fails with EMFILE"
            ),
            "examples-ipc ls --posix -t msq\nulimit -q BYTES   # or: prlimit --msgqueue=BYTES --pid PID".into(),
        )
        .number("used", used)
        .number("limit", limit),
    )
}

/// Objects no live process uses: memory and queue slots held for nobody.
pub fn orphans(objects: &[ObjectFact]) -> Option<Finding> {
    if objects.is_empty() {
        return None;
    }
    let n = objects.len() as u64;
    let bytes = objects.iter().map(|o| o.bytes).fold(0, u64::saturating_add);
    let what = if n == 1 { "object" } else { "objects" };
    let mut f = Finding::new(
        "orphans",
        Severity::Warning,
        format!("{n} orphaned {what} ({bytes} bytes) that no live process uses"),
        "examples-ipc clean --stale --dry-run\nexamples-ipc clean --stale --save DIR".into(),
    )
    .number("count", n)
    .number("bytes", bytes);
    f.objects = objects.to_vec();
    Some(f)
}

/// At 0, with waiters, and whoever could post it is dead: a likely deadlock.
pub fn semaphore_deadlock(sem: &SemFact) -> Option<Finding> {
    if sem.value != 0 || sem.waiters == 0 || sem.holder_alive != Some(false) {
        return None;
    }
    let who = match sem.last_pid {
        Some(pid) => format!("its last user, pid {pid}, is dead"),
        None => "no live process but the waiters has it open".into(),
    };
    let mut f = Finding::new(
        "semaphore-deadlock",
        Severity::Error,
        format!(
            "semaphore {} is at 0 with {} waiting and {who}: a likely deadlock",
            sem.object.label(),
            sem.waiters
        ),
        format!("{} --release", sem.object.command()),
    )
    .number("value", sem.value)
    .number("waiters", sem.waiters);
    if !sem.object.mechanism.is_posix() {
        f = f.number("semnum", u64::from(sem.semnum));
    }
    if let Some(pid) = sem.last_pid {
        f = f.number("last_pid", u64::try_from(pid).unwrap_or(0));
    }
    f.objects = vec![sem.object.clone()];
    f.processes = sem.waiting.clone();
    Some(f)
}

/// Senders blocked on a queue nobody alive can receive from.
pub fn queue_stuck(q: &QueueFact) -> Option<Finding> {
    if q.blocked_senders.is_empty() || !q.live_readers.is_empty() {
        return None;
    }
    let n = q.blocked_senders.len();
    let senders = if n == 1 { "sender" } else { "senders" };
    let mut f = Finding::new(
        "queue-stuck",
        Severity::Error,
        format!(
            "queue {} is full ({}, {} bytes) with {n} blocked {senders} and no live reader",
            q.object.label(),
            plural(q.messages, "message", "messages"),
            q.object.bytes
        ),
        format!(
            "{cmd} --server   # receive them\n{cmd} --save FILE   # or keep them, then clean",
            cmd = q.object.command()
        ),
    )
    .number("messages", q.messages)
    .number("bytes", q.object.bytes)
    .number("blocked_senders", n as u64);
    if let Some(m) = q.max_messages {
        f = f.number("max_messages", m);
    }
    if let Some(b) = q.max_bytes {
        f = f.number("max_bytes", b);
    }
    f.objects = vec![q.object.clone()];
    f.processes = q.blocked_senders.clone();
    Some(f)
}

/// Removed (IPC_RMID) but still attached: the memory stays until the
/// last process detaches, and ipcs shows key 0.
pub fn segment_removed_attached(seg: &SegmentFact) -> Option<Finding> {
    if !seg.removed || seg.nattch == 0 {
        return None;
    }
    let pids: Vec<String> = seg.attached.iter().map(|p| p.pid.to_string()).collect();
    let fix = if pids.is_empty() {
        "the attached processes are not visible here (another PID namespace?): stop them there"
            .into()
    } else {
        format!(
            "kill {}   # the memory is freed when they detach or exit",
            pids.join(" ")
        )
    };
    let mut f = Finding::new(
        "segment-removed-attached",
        Severity::Warning,
        format!(
            "segment {} is marked for removal but {} {} its {} bytes attached",
            seg.object.label(),
            plural(seg.nattch, "process", "processes"),
            if seg.nattch == 1 { "keeps" } else { "keep" },
            seg.object.bytes
        ),
        fix,
    )
    .number("nattch", seg.nattch)
    .number("bytes", seg.object.bytes);
    f.objects = vec![seg.object.clone()];
    f.processes = seg.attached.clone();
    Some(f)
}

/// A /dev/shm/sem.* file glibc would crash on (SIGBUS, abort).
pub fn invalid_sem_file(file: &InvalidSemFile) -> Finding {
    let object = ObjectFact {
        mechanism: Kind::PosixSem,
        name: Some(file.name.clone()),
        key: None,
        id: None,
        bytes: 0,
    };
    let mut f = Finding::new(
        "semaphore-file-invalid",
        Severity::Error,
        format!(
            "semaphore {} is not a valid sem_t ({}): sem_open users crash on it",
            object.label(),
            escape_bytes(file.why.as_bytes())
        ),
        format!("{} --clean", object.command()),
    );
    f.objects = vec![object];
    f
}

/// Quote `s` for a POSIX shell when it needs it. A name with control
/// characters (an ESC, a newline) is written `$'...'` with each one as an
/// escape: the fix stays one line, pastes as the exact name, and never
/// puts a raw control character on the terminal.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    if !s.chars().any(char::is_control) {
        return format!("'{}'", s.replace('\'', r"'\''"));
    }
    let mut q = String::from("$'");
    for c in s.chars() {
        match c {
            '\\' | '\'' => {
                q.push('\\');
                q.push(c);
            }
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => {
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    let _ = write!(q, "\\x{b:02x}");
                }
            }
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

/// The findings as text: a summary line, then each finding with its
/// objects, processes, numbers and fix.
pub fn render(findings: &[Finding]) -> String {
    let mut s = summary(findings);
    s.push('\n');
    render_findings(&mut s, findings);
    s
}

/// `no problems found`, `1 problem found`, `N problems found`.
fn summary(findings: &[Finding]) -> String {
    match findings.len() {
        0 => "no problems found".into(),
        1 => "1 problem found".into(),
        n => format!("{n} problems found"),
    }
}

/// Each finding: a blank line, its severity, id and message, then its
/// namespace, objects, processes and fix.
fn render_findings(s: &mut String, findings: &[Finding]) {
    for f in findings {
        let _ = writeln!(s, "\n{}: {}: {}", f.severity, f.id, f.message);
        if let Some(ns) = &f.namespace {
            let _ = writeln!(s, "  namespace: {}", ns_text(ns));
        }
        if !f.objects.is_empty() {
            let labels: Vec<String> = f
                .objects
                .iter()
                .take(TEXT_OBJECTS)
                .map(|o| format!("{} {}", o.mechanism, o.label()))
                .collect();
            let _ = write!(s, "  objects: {}", labels.join(", "));
            let more = f.objects.len().saturating_sub(TEXT_OBJECTS);
            if more > 0 {
                let _ = write!(s, ", and {more} more (see ls, or --json)");
            }
            s.push('\n');
        }
        if !f.processes.is_empty() {
            let procs: Vec<String> = f
                .processes
                .iter()
                .map(|p| format!("{} ({})", p.pid, escape_bytes(p.command.as_bytes())))
                .collect();
            let _ = writeln!(s, "  processes: {}", procs.join(", "));
        }
        for line in f.fix.lines() {
            let _ = writeln!(s, "  fix: {line}");
        }
    }
}

/// As `ls`'s NAMESPACE column (`INODE/PID container`), the container name
/// escaped (it comes from a cgroup path), and whether it is this one.
fn ns_text(ns: &NsTag) -> String {
    let text = escape_bytes(ns.text().as_bytes());
    if ns.current {
        format!("{text} (current)")
    } else {
        text
    }
}

/// The machine-wide facts of this system: statvfs of /dev/shm, the mqueue
/// mount, msg_max, RLIMIT_MSGQUEUE and every /dev/shm/sem.* file checked.
pub fn gather_machine() -> MachineFacts {
    let dev_shm = Path::new("/dev/shm");
    MachineFacts {
        dev_shm: dev_shm_space(dev_shm),
        mqueue_mount: mqueue_mount_in(Path::new("/proc/self/mountinfo")),
        msg_max: read_msg_max(),
        msgqueue_limit: msgqueue_limit(),
        invalid_sem_files: invalid_sem_files(dev_shm),
    }
}

/// msg_max of the reader's IPC namespace.
fn read_msg_max() -> Option<u64> {
    crate::sys::read_proc_u64("/proc/sys/fs/mqueue/msg_max")
}

/// The mqueue mount point in a mountinfo file: `None` when it cannot be
/// read, `Some(None)` when there is no mqueue mount.
fn mqueue_mount_in(mountinfo: &Path) -> Option<Option<String>> {
    std::fs::read_to_string(mountinfo)
        .ok()
        .map(|text| mqueue_mount_point(&text))
}

/// statvfs of a /dev/shm directory: its size and the bytes used.
fn dev_shm_space(dir: &Path) -> Option<Space> {
    let vfs = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = vfs.fragment_size();
    let size = vfs.blocks().saturating_mul(frag);
    let used = vfs
        .blocks()
        .saturating_sub(vfs.blocks_free())
        .saturating_mul(frag);
    Some(Space { size, used })
}

/// RLIMIT_MSGQUEUE's soft limit: `Some(None)` when unlimited.
fn msgqueue_limit() -> Option<Option<u64>> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
    let (soft, _) = getrlimit(Resource::RLIMIT_MSGQUEUE).ok()?;
    Some((soft != RLIM_INFINITY).then_some(soft))
}

/// The mount point of the first mqueue file system in a mountinfo text
/// (`ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS] - TYPE SOURCE SUPER`),
/// `None` when there is none.
pub fn mqueue_mount_point(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        if post.split(' ').next()? != "mqueue" {
            return None;
        }
        pre.split(' ').nth(4).map(unescape_octal)
    })
}

/// mountinfo writes space, tab, newline and backslash as `\NNN`.
fn unescape_octal(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let code = b
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok());
        match code.and_then(|d| u8::from_str_radix(d, 8).ok()) {
            Some(byte) if b[i] == b'\\' => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every `sem.*` file of `dir` that [`SemFile::check`] finds invalid. A
/// file that cannot be opened (permission) is not judged.
pub fn invalid_sem_files(dir: &Path) -> Vec<InvalidSemFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<InvalidSemFile> = entries
        .flatten()
        .filter_map(|e| {
            let file_name = e.file_name().into_string().ok()?;
            let name = file_name.strip_prefix("sem.")?;
            let path = dir.join(&file_name);
            let file = SemFile::open(path.to_str()?, false).ok()?;
            let why: Invalid = file.check().ok()?.err()?;
            Some(InvalidSemFile {
                name: format!("/{name}"),
                why: why.to_string(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

mod all;
#[cfg(test)]
mod tests;

/// The per-object facts from `ls`'s scan: its typed rows and the users it
/// attributed (who is blocked, attached, or last operated on each object).
///
/// What the scan cannot tell is left out rather than guessed: a POSIX
/// queue's blocked senders are not seen (mq_timedsend blocks on a
/// descriptor, not an id), and a System V process blocked on a queue that
/// holds messages is taken for a sender (msgrcv of any type would not
/// block there).
///
/// `msgqueue_used` sums this user's POSIX queues among `objects`.
pub fn object_facts<'a>(objects: impl IntoIterator<Item = &'a Object>, uid: u32) -> ObjectFacts {
    let mut facts = ObjectFacts::default();
    let mut used = 0u64;
    for obj in objects {
        let fact = ObjectFact {
            mechanism: obj.kind,
            name: obj.name.clone(),
            key: obj.key_hex(),
            id: obj.id,
            bytes: obj.size().unwrap_or(0),
        };
        let users = |how: &str| processes(obj, |u| u.how == how);
        let alive = |pid: i64| obj.users.iter().any(|u| i64::from(u.pid) == pid);
        if obj.orphaned() {
            facts.orphans.push(fact.clone());
        }
        match &obj.fields {
            Fields::PosixMsq(q) => {
                if obj.uid == uid
                    && let (Some(m), Some(s)) = (q.maxmsg, q.msgsize)
                {
                    let cost = crate::mq_attrs::queue_cost(
                        u32::try_from(m).unwrap_or(u32::MAX),
                        u32::try_from(s).unwrap_or(u32::MAX),
                    );
                    used = used.saturating_add(cost);
                }
                facts.queues.push(QueueFact {
                    object: fact,
                    messages: q.curmsgs.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    max_messages: q.maxmsg.and_then(|n| u64::try_from(n).ok()),
                    max_bytes: None,
                    blocked_senders: Vec::new(),
                    live_readers: users("open"),
                });
            }
            Fields::SysvMsq(q) => facts.queues.push(sysv_queue_fact(obj, q, fact)),
            Fields::SysvShm(s) => facts.segments.push(SegmentFact {
                object: fact,
                removed: s.removed,
                nattch: s.nattch.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                attached: users("attached"),
            }),
            Fields::SysvSem(s) => {
                for sem in s.sems.iter().flatten() {
                    let last_pid = (sem.pid > 0).then_some(sem.pid);
                    facts.semaphores.push(SemFact {
                        object: fact.clone(),
                        semnum: sem.semnum,
                        value: u64::from(sem.value),
                        waiters: u64::try_from(sem.ncount).unwrap_or(0),
                        last_pid,
                        holder_alive: last_pid.map(|p| alive(p.into())),
                        waiting: users("blocked"),
                    });
                }
            }
            Fields::PosixSem(s) => {
                if let (Some(value), Some(waiters)) = (s.value, s.waiters) {
                    // The waiters map it too: someone else must have it
                    // mapped or open to post it.
                    let holders = obj.users.len() as u64;
                    facts.semaphores.push(SemFact {
                        object: fact,
                        semnum: 0,
                        value: u64::from(value),
                        waiters: u64::from(waiters),
                        last_pid: None,
                        holder_alive: Some(holders > u64::from(waiters)),
                        waiting: Vec::new(),
                    });
                }
            }
            Fields::PosixShm(_) => {}
        }
    }
    facts.msgqueue_used = Some(used);
    facts
}

/// A System V queue's fact. Who blocks on it sends when it holds messages
/// (msgrcv of any type would not block then) and receives when it is
/// empty; the last receiver, if it lives, may receive again.
fn sysv_queue_fact(obj: &Object, q: &SysvMsq, fact: ObjectFact) -> QueueFact {
    let messages = q.qnum.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    let blocked = processes(obj, |u| u.how == "blocked");
    let (senders, mut readers) = if messages > 0 {
        (blocked, Vec::new())
    } else {
        (Vec::new(), blocked)
    };
    let alive = |pid: i64| obj.users.iter().any(|u| i64::from(u.pid) == pid);
    if let Some(pid) = q.lrpid.filter(|&p| p > 0 && alive(p)) {
        readers.extend(processes(obj, |u| i64::from(u.pid) == pid));
    }
    QueueFact {
        object: fact,
        messages,
        max_messages: None,
        max_bytes: q.qbytes,
        blocked_senders: senders,
        live_readers: readers,
    }
}

/// The users of `obj` that `keep` selects, as findings name them.
fn processes(obj: &Object, keep: impl Fn(&User) -> bool) -> Vec<Process> {
    obj.users
        .iter()
        .filter(|u| keep(u))
        .map(|u| Process {
            pid: u.pid,
            command: u.command.clone(),
        })
        .collect()
}

/// What `doctor --json` prints: every finding, most severe first.
#[derive(Serialize)]
struct Report<'a> {
    healthy: bool,
    findings: &'a [Finding],
    /// `-A`: the namespaces that could not be checked, and why.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    unchecked: &'a [all::Unchecked],
    /// `-A`: what the scan could not read.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    notes: &'a [String],
}

/// What `doctor` was asked for.
pub struct DoctorOptions {
    /// The objects the per-object checks look at.
    pub select: crate::ls::Select,
    pub namespaces: NsScope,
}

/// `doctor`: scan the selected objects, check them and the machine, print
/// the findings; exit 0 when healthy, 1 when something was found.
pub fn run(
    opts: &DoctorOptions,
    out: &mut crate::output::Out,
) -> anyhow::Result<std::process::ExitCode> {
    match opts.namespaces {
        NsScope::One(n) => {
            let only = crate::ls::resolve_namespace(n)?;
            return all::run(&opts.select, Some(only), out);
        }
        NsScope::All => return all::run(&opts.select, None, out),
        NsScope::Current => {}
    }
    let scan = crate::ls::Scan::run(&opts.select);
    let mut objects = object_facts(&scan.objects, nix::unistd::geteuid().as_raw());
    if scan.mq_note.is_some() {
        // The queues could not be listed: their charge is unknown.
        objects.msgqueue_used = None;
    }
    let facts = Facts {
        machine: gather_machine(),
        objects,
    };
    let findings = check(&facts);
    let text = render(&findings);
    out.record(text.trim_end_matches('\n'), || Report {
        healthy: findings.is_empty(),
        findings: &findings,
        unchecked: &[],
        notes: &[],
    })?;
    Ok(std::process::ExitCode::from(exit_code(&findings)))
}
