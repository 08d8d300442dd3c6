//! What the logic is asked to do: the typed specs a command line resolves
//! into (`main.rs`), each variant carrying only what applies to it. The
//! commands take these, never the parser's types; `tour` builds the
//! command lines of its children from them ([`Task::to_args`]), with the
//! flag spellings and defaults the parser itself is built from ([`flag`],
//! [`default`]), so a renamed flag cannot leave the tour behind.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::ipc::Creation;
use crate::object::{Addr, Kind, ObjectRef};
use crate::sys::secs;
use crate::target::{FileMode, PosixName, SysvKey};

/// The spellings of the flags whose meaning the specs carry. `cli.rs` builds
/// its parser from these (`#[arg(short = flag::SERVER.short, long =
/// flag::SERVER.long)]`) and [`Task::to_args`] writes them back.
pub mod flag {
    use std::fmt;

    /// A flag: its long name (without `--`) and its short letter, if any.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Flag {
        pub long: &'static str,
        pub short: Option<char>,
    }

    impl Flag {
        const fn long(long: &'static str) -> Flag {
            Flag { long, short: None }
        }

        const fn both(short: char, long: &'static str) -> Flag {
            Flag {
                long,
                short: Some(short),
            }
        }

        /// How a command line this tool writes spells it: `-s` where there
        /// is a short form, else `--clean`.
        pub fn arg(self) -> String {
            match self.short {
                Some(c) => format!("-{c}"),
                None => format!("--{}", self.long),
            }
        }

        /// The parser's id of the argument: the field name in `cli.rs`,
        /// which is the long name with `_` for `-`.
        pub fn id(self) -> String {
            self.long.replace('-', "_")
        }
    }

    /// `--long`, as messages name a flag.
    impl fmt::Display for Flag {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "--{}", self.long)
        }
    }

    pub const SERVER: Flag = Flag::both('s', "server");
    pub const CLEAN: Flag = Flag::long("clean");
    pub const STAT: Flag = Flag::long("stat");
    pub const NAME: Flag = Flag::both('n', "name");
    pub const KEY: Flag = Flag::both('k', "key");
    pub const ID: Flag = Flag::both('i', "id");
    pub const MODE: Flag = Flag::long("mode");
    pub const COUNT: Flag = Flag::both('c', "count");
    pub const TIMEOUT: Flag = Flag::long("timeout");
    pub const MESSAGE: Flag = Flag::both('m', "message");
    pub const INTERVAL: Flag = Flag::long("interval");
    pub const NONBLOCK: Flag = Flag::long("nonblock");
    pub const MAX_MSGS: Flag = Flag::long("max-msgs");
    pub const MSG_SIZE: Flag = Flag::long("msg-size");
    pub const PRIORITY: Flag = Flag::both('p', "priority");
    pub const TYPE: Flag = Flag::both('t', "type");
    pub const SIZE: Flag = Flag::long("size");
    pub const ON_CHANGE: Flag = Flag::long("on-change");
    pub const VALUE: Flag = Flag::long("value");
    pub const RELEASE: Flag = Flag::both('r', "release");
    pub const WAIT: Flag = Flag::long("wait");
    pub const UNDO: Flag = Flag::long("undo");
    pub const PATH: Flag = Flag::long("path");
    pub const SHRINK: Flag = Flag::long("shrink");
    // The debugging modes (docs/debugging.md) and their options.
    pub const PEEK: Flag = Flag::long("peek");
    pub const SAVE: Flag = Flag::long("save");
    pub const RESTORE: Flag = Flag::long("restore");
    pub const KEEP: Flag = Flag::long("keep");
    pub const PARTIAL: Flag = Flag::long("partial");
    pub const DUMP: Flag = Flag::long("dump");
    pub const OFFSET: Flag = Flag::long("offset");
    pub const LENGTH: Flag = Flag::long("length");
    pub const DIFF: Flag = Flag::long("diff");
}

/// The defaults of the options the specs carry: the parser's defaults, and
/// what [`Task::to_args`] leaves out.
pub mod default {
    use std::time::Duration;

    use crate::target::FileMode;

    pub const NAME: &str = "/test";
    pub const KEY: &str = "200";
    pub const MODE: FileMode = FileMode(0o600);
    pub const MAX_MSGS: u32 = 10;
    pub const MSG_SIZE: u32 = 8192;
    pub const PRIORITY: u32 = 0;
    /// A message client's pause between messages.
    pub const SEND_INTERVAL: Duration = Duration::from_secs(1);
    /// A message client's count without `-c` and `-m`.
    pub const MESSAGES: u64 = 10;
    pub const SEGMENT_SIZE: u64 = 4096;
    /// A shm server's pause between prints.
    pub const SHM_INTERVAL: Duration = Duration::from_secs(3);
    pub const SEM_VALUE: u32 = 2;
    /// A sem server's pause between polls.
    pub const SEM_INTERVAL: Duration = Duration::from_secs(1);
}

/// How an object this call may create is opened and made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create<A> {
    pub policy: Creation,
    /// Permission bits of an object this call creates.
    pub mode: FileMode,
    /// The kind's attributes of a new object (an existing one keeps its own).
    pub attrs: A,
}

/// A POSIX queue's attributes at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueAttrs {
    pub max_msgs: u32,
    pub msg_size: u32,
}

/// A segment's size at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentAttrs {
    pub size: u64,
}

/// A semaphore's value at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemAttrs {
    pub value: u32,
}

/// How long a server runs: `--count` event lines, `--timeout` without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Serve {
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
}

/// What a message client sends: `count` messages, each `text` or
/// `{"count":i}`, `interval` apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub count: u64,
    pub text: Option<String>,
    pub interval: Duration,
    /// A full queue fails instead of waiting.
    pub nonblock: bool,
}

/// How a shm server prints the text: every `interval`, or only when it
/// changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub interval: Duration,
    pub on_change: bool,
    /// With `on_change`: print when any byte changed, with the ranges that
    /// did (`--diff`).
    pub diff: bool,
}

/// `posix msq` as a server or a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosixMsq {
    pub name: PosixName,
    pub create: Create<QueueAttrs>,
    pub role: PosixMsqRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PosixMsqRole {
    Server(Serve),
    Client { send: Send, priority: u32 },
}

/// `sysv msq` as a server or a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysvMsq {
    pub key: SysvKey,
    pub create: Create<()>,
    pub role: SysvMsqRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysvMsqRole {
    /// `selector` as msgrcv takes it: 0 any, T > 0 that type, T < 0 the
    /// lowest type up to |T|.
    Server { serve: Serve, selector: i64 },
    /// `mtype` is at least 1.
    Client { send: Send, mtype: i64 },
}

/// `posix shm` or `sysv shm` as a server or a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shm<T> {
    pub target: T,
    pub create: Create<SegmentAttrs>,
    pub role: ShmRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShmRole {
    Server {
        serve: Serve,
        watch: Watch,
    },
    /// `-m TEXT`, else one line of standard input.
    Client {
        text: Option<String>,
    },
}

/// `posix sem` or `sysv sem` as a server or a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sem<T> {
    pub target: T,
    pub role: SemRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SemRole {
    Server {
        create: Create<SemAttrs>,
        serve: Serve,
        /// Between two polls of the value.
        interval: Duration,
    },
    /// A client never creates the semaphore.
    Client(SemClient),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemClient {
    pub action: SemAction,
    /// System V only: SEM_UNDO.
    pub undo: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemAction {
    /// Take one unit now, or fail at 0.
    Take,
    /// Wait for a unit, at most `timeout`.
    TakeWaiting {
        timeout: Option<Duration>,
    },
    Release,
}

/// A message channel's command (`fifo`, see `channel`): the server, a
/// client, or `--clean`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The channel's name: `fifo`.
    pub name: &'static str,
    pub path: PathBuf,
    pub role: ChannelRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRole {
    Server { mode: FileMode, serve: Serve },
    Client(Send),
    Clean,
}

/// `pipe`: the messages the parent sends its child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipe {
    /// Empty: three sample lines.
    pub messages: Vec<String>,
}

/// One command on one object (or pipe): what `main` runs and what `tour`
/// starts as its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    PosixMsq(PosixMsq),
    PosixShm(Shm<PosixName>),
    PosixSem(Sem<PosixName>),
    SysvMsq(SysvMsq),
    SysvShm(Shm<SysvKey>),
    SysvSem(Sem<SysvKey>),
    /// `--clean` of any of the six kinds.
    Clean(ObjectRef),
    /// `--stat` of any of the six kinds.
    Stat(ObjectRef),
    Channel(Channel),
    Pipe(Pipe),
}

/// `demo`: which experiment, with its sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Demo {
    Race(Counter),
    Mutex(Counter),
    Atomic(Counter),
    Cures(Counter),
    Ring(Ring),
    Scoreboard(Scoreboard),
    Sorted(Sorted),
    Memfd(Memfd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub procs: u32,
    pub iters: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    pub producers: u32,
    pub items: u64,
    pub slots: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scoreboard {
    pub workers: u32,
    pub items: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sorted {
    pub count: u32,
    pub interval: Duration,
}

/// `demo memfd`: the shm exchange over a memfd found by an exchange name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memfd {
    /// Checked: letters, digits, '.', '_', '-'.
    pub name: String,
    pub role: MemfdRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemfdRole {
    Server {
        size: u64,
        serve: Serve,
        watch: Watch,
    },
    Client {
        text: Option<String>,
        /// Also try to shrink the segment: the seal must refuse.
        shrink: bool,
    },
}

/// A step of `tour`: one kind of object, a message channel (by its name),
/// or the pipes. `tour` lists the steps and parses their names, as it knows
/// the channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TourStep {
    Object(Kind),
    Channel(&'static str),
    Pipe,
}

impl TourStep {
    /// Its name for `--only` and in JSON: `posix-msq`, ..., `fifo`, `pipe`.
    pub fn name(self) -> &'static str {
        match self {
            TourStep::Object(kind) => kind.mechanism(),
            TourStep::Channel(name) => name,
            TourStep::Pipe => "pipe",
        }
    }
}

impl fmt::Display for TourStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `tour`: the steps to run (empty: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tour {
    pub only: Vec<TourStep>,
}

// ---- Back to a command line ----

/// A command line being written: words, flags and values.
struct Argv(Vec<String>);

impl Argv {
    fn word(&mut self, w: impl Into<String>) -> &mut Self {
        self.0.push(w.into());
        self
    }

    fn flag(&mut self, f: flag::Flag) -> &mut Self {
        self.word(f.arg())
    }

    fn value(&mut self, f: flag::Flag, v: impl fmt::Display) -> &mut Self {
        self.flag(f).word(v.to_string())
    }

    /// `--long v`, for a flag that reads better spelled out.
    fn long(&mut self, f: flag::Flag, v: impl fmt::Display) -> &mut Self {
        self.word(format!("--{}", f.long)).word(v.to_string())
    }

    /// `f v` unless `v` is the default.
    fn unless<T: PartialEq + fmt::Display>(
        &mut self,
        f: flag::Flag,
        v: T,
        default: T,
    ) -> &mut Self {
        if v != default {
            self.value(f, v);
        }
        self
    }

    fn secs_unless(&mut self, f: flag::Flag, d: Duration, default: Duration) -> &mut Self {
        if d != default {
            self.value(f, secs(d));
        }
        self
    }

    /// A server's `--count` and `--timeout`, spelled out.
    fn serve(&mut self, s: &Serve) -> &mut Self {
        if let Some(n) = s.count {
            self.long(flag::COUNT, n);
        }
        if let Some(t) = s.timeout {
            self.long(flag::TIMEOUT, secs(t));
        }
        self
    }

    fn send(&mut self, s: &Send) -> &mut Self {
        if let Some(text) = &s.text {
            self.value(flag::MESSAGE, text);
        }
        self.value(flag::COUNT, s.count);
        self.secs_unless(flag::INTERVAL, s.interval, default::SEND_INTERVAL);
        if s.nonblock {
            self.flag(flag::NONBLOCK);
        }
        self
    }

    fn mode(&mut self, mode: FileMode) -> &mut Self {
        self.unless(flag::MODE, mode, default::MODE)
    }

    fn text(&mut self, text: Option<&String>) -> &mut Self {
        if let Some(text) = text {
            self.value(flag::MESSAGE, text);
        }
        self
    }
}

impl Task {
    /// The command line (after the program name) that runs this task: what
    /// the tour starts, and what parses back into this very task.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Argv(Vec::new());
        match self {
            Task::PosixMsq(s) => s.write(&mut a),
            Task::SysvMsq(s) => s.write(&mut a),
            Task::PosixShm(s) => s.write(&mut a, Kind::PosixShm, |a, n| {
                a.value(flag::NAME, n.as_str());
            }),
            Task::SysvShm(s) => s.write(&mut a, Kind::SysvShm, |a, k| {
                a.value(flag::KEY, k);
            }),
            Task::PosixSem(s) => s.write(&mut a, Kind::PosixSem, |a, n| {
                a.value(flag::NAME, n.as_str());
            }),
            Task::SysvSem(s) => s.write(&mut a, Kind::SysvSem, |a, k| {
                a.value(flag::KEY, k);
            }),
            Task::Clean(obj) => object_mode(&mut a, obj, flag::CLEAN),
            Task::Stat(obj) => object_mode(&mut a, obj, flag::STAT),
            Task::Channel(s) => s.write(&mut a),
            Task::Pipe(s) => {
                a.word("pipe");
                for m in &s.messages {
                    a.value(flag::MESSAGE, m);
                }
            }
        }
        a.0
    }
}

/// `posix msq -n NAME --clean`, `sysv shm -i ID --stat`.
fn object_mode(a: &mut Argv, obj: &ObjectRef, mode: flag::Flag) {
    for w in obj.kind.words() {
        a.word(w);
    }
    match &obj.addr {
        Addr::Name(name) => a.value(flag::NAME, name.as_str()),
        Addr::Key(key) => a.value(flag::KEY, key),
        Addr::Id(id) => a.value(flag::ID, id),
    };
    a.flag(mode);
}

impl PosixMsq {
    fn write(&self, a: &mut Argv) {
        a.word("posix")
            .word("msq")
            .value(flag::NAME, self.name.as_str());
        if let PosixMsqRole::Server(_) = self.role {
            a.flag(flag::SERVER);
        }
        a.mode(self.create.mode)
            .unless(
                flag::MAX_MSGS,
                self.create.attrs.max_msgs,
                default::MAX_MSGS,
            )
            .unless(
                flag::MSG_SIZE,
                self.create.attrs.msg_size,
                default::MSG_SIZE,
            );
        match &self.role {
            PosixMsqRole::Server(serve) => a.serve(serve),
            PosixMsqRole::Client { send, priority } => {
                a.send(send)
                    .unless(flag::PRIORITY, *priority, default::PRIORITY)
            }
        };
    }
}

impl SysvMsq {
    fn write(&self, a: &mut Argv) {
        a.word("sysv").word("msq").value(flag::KEY, self.key);
        if let SysvMsqRole::Server { .. } = self.role {
            a.flag(flag::SERVER);
        }
        a.mode(self.create.mode);
        match &self.role {
            SysvMsqRole::Server { serve, selector } => {
                if *selector != 0 {
                    a.long(flag::TYPE, selector);
                }
                a.serve(serve)
            }
            SysvMsqRole::Client { send, mtype } => {
                if *mtype != 1 {
                    a.long(flag::TYPE, mtype);
                }
                a.send(send)
            }
        };
    }
}

impl<T> Shm<T> {
    fn write(&self, a: &mut Argv, kind: Kind, target: impl FnOnce(&mut Argv, &T)) {
        for w in kind.words() {
            a.word(w);
        }
        target(a, &self.target);
        if let ShmRole::Server { .. } = self.role {
            a.flag(flag::SERVER);
        }
        a.mode(self.create.mode)
            .unless(flag::SIZE, self.create.attrs.size, default::SEGMENT_SIZE);
        match &self.role {
            ShmRole::Server { serve, watch } => {
                a.secs_unless(flag::INTERVAL, watch.interval, default::SHM_INTERVAL);
                if watch.on_change {
                    a.flag(flag::ON_CHANGE);
                }
                if watch.diff {
                    a.flag(flag::DIFF);
                }
                a.serve(serve);
            }
            ShmRole::Client { text } => {
                a.text(text.as_ref());
            }
        }
    }
}

impl<T> Sem<T> {
    fn write(&self, a: &mut Argv, kind: Kind, target: impl FnOnce(&mut Argv, &T)) {
        for w in kind.words() {
            a.word(w);
        }
        target(a, &self.target);
        match &self.role {
            SemRole::Server {
                create,
                serve,
                interval,
            } => {
                a.flag(flag::SERVER)
                    .mode(create.mode)
                    .unless(flag::VALUE, create.attrs.value, default::SEM_VALUE)
                    .secs_unless(flag::INTERVAL, *interval, default::SEM_INTERVAL)
                    .serve(serve);
            }
            SemRole::Client(client) => {
                match client.action {
                    SemAction::Take => {}
                    SemAction::TakeWaiting { timeout } => {
                        a.flag(flag::WAIT);
                        if let Some(t) = timeout {
                            a.value(flag::TIMEOUT, secs(t));
                        }
                    }
                    SemAction::Release => {
                        a.flag(flag::RELEASE);
                    }
                }
                if client.undo {
                    a.flag(flag::UNDO);
                }
            }
        }
    }
}

impl Channel {
    fn write(&self, a: &mut Argv) {
        a.word(self.name);
        match &self.role {
            ChannelRole::Server { mode, serve } => {
                a.flag(flag::SERVER)
                    .value(flag::PATH, self.path.display())
                    .mode(*mode)
                    .serve(serve);
            }
            ChannelRole::Client(send) => {
                a.value(flag::PATH, self.path.display()).send(send);
            }
            ChannelRole::Clean => {
                a.flag(flag::CLEAN).value(flag::PATH, self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_written_short_where_they_can_be() {
        assert_eq!(flag::SERVER.arg(), "-s");
        assert_eq!(flag::CLEAN.arg(), "--clean");
        assert_eq!(flag::MAX_MSGS.id(), "max_msgs");
        assert_eq!(flag::ON_CHANGE.to_string(), "--on-change");
    }

    #[test]
    fn defaults_are_left_out() {
        let task = Task::PosixMsq(PosixMsq {
            name: "/q".parse().unwrap(),
            create: Create {
                policy: Creation::OpenOrCreate,
                mode: default::MODE,
                attrs: QueueAttrs {
                    max_msgs: default::MAX_MSGS,
                    msg_size: 100,
                },
            },
            role: PosixMsqRole::Server(Serve {
                count: Some(3),
                timeout: Some(Duration::from_millis(1500)),
            }),
        });
        assert_eq!(
            task.to_args().join(" "),
            "posix msq -n /q -s --msg-size 100 --count 3 --timeout 1.5"
        );
        let clean = Task::Clean(ObjectRef::sysv_key(Kind::SysvSem, "0x10".parse().unwrap()));
        assert_eq!(clean.to_args().join(" "), "sysv sem -k 0x00000010 --clean");
    }
}
