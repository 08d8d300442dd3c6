//! examples-ipc: parse, resolve, dispatch, exit code.
//!
//! clap parses the command line into the types of `cli.rs`; `resolve`
//! turns them into the specs of the library (`examples_ipc::spec`), refusing
//! what does not apply to the chosen mode (exit 2); the library runs the
//! spec; errors become the `error:` line and the exit code. This file and
//! `cli.rs` are the only ones that know the parser's types.

mod cli;

use std::ffi::OsString;
use std::fmt::Display;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use clap::ArgMatches;
use clap::CommandFactory as _;
use clap::parser::ValueSource;

use cli::{
    ChannelArgs, Cli, Command, DemoCommand, MemfdArgs, ModeArgs, ObjectArgs, PosixCommand,
    PosixMsqArgs, SemArgs, SendArgs, ServeArgs, ShmArgs, ShmDebugArgs, SnapshotArgs, SysvCommand,
    SysvKeyArgs,
};
use examples_ipc::channel::Channel;
use examples_ipc::debugging::{self, Debugging};
use examples_ipc::error::{self, usage};
use examples_ipc::ipc::Creation;
use examples_ipc::object::{Kind, ObjectRef};
use examples_ipc::output::Out;
use examples_ipc::spec::flag::{self, Flag};
use examples_ipc::spec::{
    self, ChannelRole, Create, Demo, Memfd, MemfdRole, Pipe, PosixMsq, PosixMsqRole, QueueAttrs,
    SegmentAttrs, Sem, SemAction, SemAttrs, SemClient, SemRole, Send, Serve, Shm, ShmRole, SysvMsq,
    SysvMsqRole, Task, Tour, Watch, default,
};
use examples_ipc::target::Seconds;
use examples_ipc::{bench, clean, doctor, limits, ls, manpage, object, watch};

fn main() -> ExitCode {
    // Before anything is printed: a Tab in the shell runs this binary to
    // complete, and only the candidates may reach stdout.
    manpage::complete_if_asked(Cli::command);
    let args: Vec<OsString> = std::env::args_os().collect();
    if let [_, flag] = args.as_slice()
        && (flag == "--version" || flag == "-V")
    {
        // clap's answer without clap: building its tree was the largest part
        // of what `--version` cost beyond a hello-world (docs/bench.md,
        // Startup). A failed write is reported as for every other command.
        let mut out = Out::new(false);
        let written = out.writer().write_all(VERSION.as_bytes());
        return match written.and_then(|()| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => error::report(&e.into()),
        };
    }
    let (cli, matches) = match cli::parse(&args) {
        Ok(parsed) => parsed,
        Err(err) => {
            // clap's own format; --help and --version exit 0, usage errors 2.
            let err = error::with_tip(err, &args);
            let _ = err.print();
            return ExitCode::from(err.exit_code().clamp(0, 255) as u8);
        }
    };
    match run(cli, &matches) {
        Ok(code) => code,
        Err(err) => error::report(&err),
    }
}

/// What clap prints for `examples-ipc --version` (a test holds them equal).
const VERSION: &str = concat!("examples-ipc ", env!("CARGO_PKG_VERSION"), "\n");

fn run(cli: Cli, matches: &ArgMatches) -> Result<ExitCode> {
    if cli.json {
        // A shell script and a roff page have no JSON form: refused, not ignored.
        let what = match cli.command {
            Command::Completions(_) => Some("completions prints a shell script"),
            Command::Man(_) => Some("man prints roff"),
            _ => None,
        };
        if let Some(what) = what {
            return Err(usage(format!("--json does not apply: {what}")));
        }
    }
    let mut out = Out::new(cli.json);
    let code = dispatch(cli.command, leaf(matches), &mut out);
    // Flush what was printed before the error, so stdout and stderr agree.
    let flushed = out.flush();
    let code = code?;
    flushed?;
    Ok(code)
}

/// The objects `ls` and `clean --stale` look at.
fn select(args: cli::SelectArgs) -> anyhow::Result<ls::Select> {
    let mech = args.r#type.map(|t| match t {
        cli::IpcType::Msq => object::Mech::Msq,
        cli::IpcType::Shm => object::Mech::Shm,
        cli::IpcType::Sem => object::Mech::Sem,
    });
    ls::Select::resolve(ls::Selection {
        posix: args.posix,
        sysv: args.sysv,
        mech,
        owner: args.owner,
        names: args.name,
        prefix: args.prefix,
        key: args.key,
    })
}

fn list_options(args: cli::LsArgs) -> anyhow::Result<ls::ListOptions> {
    Ok(ls::ListOptions {
        list_columns: args.list_columns,
        select: select(args.select)?,
        orphaned: args.orphaned,
        columns: args.output,
        headings: !args.noheadings,
        raw: args.raw,
        bytes: args.bytes,
        namespaces: ls::NsScope::new(args.all_namespaces, args.namespace),
    })
}

fn clean_options(args: cli::CleanArgs) -> anyhow::Result<clean::CleanOptions> {
    Ok(clean::CleanOptions {
        select: select(args.select)?,
        dry_run: args.dry_run,
        namespace: args.namespace,
        save: args.save,
    })
}

fn doctor_options(args: cli::DoctorArgs) -> anyhow::Result<doctor::DoctorOptions> {
    Ok(doctor::DoctorOptions {
        select: select(args.select)?,
        namespaces: ls::NsScope::new(args.all_namespaces, args.namespace),
    })
}

fn limits_options(args: &cli::LimitsArgs) -> limits::LimitsOptions {
    limits::LimitsOptions {
        max_msgs: args.max_msgs,
        msg_size: args.msg_size,
        all_namespaces: args.all_namespaces,
    }
}

/// The matches of the command that runs (`posix msq`, `demo ring`).
fn leaf(matches: &ArgMatches) -> &ArgMatches {
    match matches.subcommand() {
        Some((_, sub)) => leaf(sub),
        None => matches,
    }
}

fn dispatch(command: Command, given: &ArgMatches, out: &mut Out) -> Result<ExitCode> {
    match command {
        Command::Ls(args) => {
            if out.is_json() && args.bytes {
                return Err(usage(
                    "--bytes shapes the text table; the --json document always has exact sizes in bytes",
                ));
            }
            ls::run(&list_options(args)?, out)
        }
        Command::Clean(args) => clean::run(&clean_options(args)?, out),
        Command::Limits(args) => limits::run(&limits_options(&args), out),
        Command::Doctor(args) => doctor::run(&doctor_options(args)?, out),
        Command::Watch(args) => watch::run(
            &watch::WatchOptions {
                select: select(args.select)?,
                interval: args.interval.duration(),
                count: args.count,
            },
            out,
        ),
        Command::Bench(args) => bench::run(&bench_config(&args), out),
        Command::Completions(args) => manpage::completions(shell(args.shell), out),
        Command::Man(args) => manpage::man(Cli::command(), args.dir.as_deref(), out),
        Command::Tour(args) => examples_ipc::tour::run(&Tour { only: args.only }, out),
        Command::Demo(cmd) => examples_ipc::demo::run(&demo(cmd, given)?, out),
        Command::Posix(cmd) => posix(cmd, given)?.run(out),
        Command::Sysv(cmd) => sysv(cmd, given)?.run(out),
        Command::Channel(cmd) => {
            let (channel, args) = cmd.parts();
            examples_ipc::run(&self::channel(channel, args, given)?, out)
        }
        Command::Pipe(args) => examples_ipc::run(
            &Task::Pipe(Pipe {
                messages: args.messages,
            }),
            out,
        ),
    }
}

fn shell(shell: cli::Shell) -> manpage::Shell {
    match shell {
        cli::Shell::Bash => manpage::Shell::Bash,
        cli::Shell::Zsh => manpage::Shell::Zsh,
        cli::Shell::Fish => manpage::Shell::Fish,
    }
}

// ---- Modes, and the options that apply to some of them ----

/// What one invocation of a mechanism does: `-s`, no mode flag, `--clean`
/// or `--stat`, or one of the debugging modes (`debugging.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Server,
    Client,
    Clean,
    Stat,
    Peek,
    Save,
    Restore,
    Dump,
}

use Mode::{Client, Server};

impl Mode {
    /// The mode of `m` and of the debugging flags given (clap lets one
    /// mode through at most: they share the `ModeArgs` group).
    fn of(m: &ModeArgs, peek: bool, snapshot: Option<&SnapshotArgs>, dump: bool) -> Mode {
        let saves = snapshot.is_some_and(|s| s.save.is_some());
        let restores = snapshot.is_some_and(|s| s.restore.is_some());
        if m.server {
            Mode::Server
        } else if m.clean {
            Mode::Clean
        } else if m.stat {
            Mode::Stat
        } else if peek {
            Mode::Peek
        } else if saves {
            Mode::Save
        } else if restores {
            Mode::Restore
        } else if dump {
            Mode::Dump
        } else {
            Mode::Client
        }
    }

    /// The mode of `command` in a message: `the posix sem client`,
    /// `posix shm --clean`.
    fn of_command(self, command: &str) -> String {
        match self {
            Mode::Server => format!("the {command} server"),
            Mode::Client => format!("the {command} client"),
            other => format!("{command} {}", other.owner()),
        }
    }

    /// What an option belongs to: `the server (-s)`, `the client`.
    fn owner(self) -> &'static str {
        match self {
            Mode::Server => "the server (-s)",
            Mode::Client => "the client",
            Mode::Clean => "--clean",
            Mode::Stat => "--stat",
            Mode::Peek => "--peek",
            Mode::Save => "--save",
            Mode::Restore => "--restore",
            Mode::Dump => "--dump",
        }
    }
}

/// The options of a command that apply to some of its modes only: the
/// server's, the client's, and both's (whoever may create the object, or
/// both ends of a queue), and those that go with other modes (`other`).
/// Everything else (the name, the key) applies to every mode, and none of
/// these to `--clean` or `--stat`.
struct Applies {
    server: &'static [Flag],
    client: &'static [Flag],
    both: &'static [Flag],
    other: &'static [(Flag, &'static [Mode])],
}

impl Applies {
    /// Each option with the modes it applies to.
    fn modes(&self) -> impl Iterator<Item = (Flag, &'static [Mode])> {
        let with =
            |flags: &'static [Flag], modes: &'static [Mode]| flags.iter().map(move |f| (*f, modes));
        with(self.server, &[Server])
            .chain(with(self.client, &[Client]))
            .chain(with(self.both, &[Server, Client]))
            .chain(self.other.iter().copied())
    }
}

const POSIX_MSQ: Applies = Applies {
    server: &[flag::TIMEOUT],
    client: &[
        flag::MESSAGE,
        flag::INTERVAL,
        flag::NONBLOCK,
        flag::PRIORITY,
    ],
    both: &[flag::MODE, flag::MAX_MSGS, flag::MSG_SIZE, flag::COUNT],
    other: &[(flag::PARTIAL, &[Mode::Restore])],
};

const SYSV_MSQ: Applies = Applies {
    server: &[flag::TIMEOUT],
    client: &[flag::MESSAGE, flag::INTERVAL, flag::NONBLOCK],
    both: &[flag::MODE, flag::COUNT],
    other: &[
        (flag::TYPE, &[Server, Client, Mode::Peek]),
        (flag::KEEP, &[Mode::Save]),
        (flag::PARTIAL, &[Mode::Restore]),
    ],
};

/// Both families: the client writes once, so counts and waits are the
/// server's.
const SHM: Applies = Applies {
    server: &[flag::COUNT, flag::TIMEOUT, flag::INTERVAL, flag::ON_CHANGE],
    client: &[flag::MESSAGE],
    both: &[flag::MODE, flag::SIZE],
    other: &[
        (flag::OFFSET, &[Mode::Dump]),
        (flag::LENGTH, &[Mode::Dump]),
        (flag::DIFF, &[Server]),
    ],
};

/// Both families: a client never creates, and takes or gives one unit; its
/// `--timeout` goes with `--wait` (see `sem_role`).
const SEM: Applies = Applies {
    server: &[flag::MODE, flag::VALUE, flag::INTERVAL, flag::COUNT],
    client: &[flag::RELEASE, flag::WAIT],
    both: &[flag::TIMEOUT],
    other: &[],
};

const SYSV_SEM: Applies = Applies {
    server: &[],
    client: &[flag::UNDO],
    both: &[],
    other: &[],
};

const CHANNEL: Applies = Applies {
    server: &[flag::MODE, flag::TIMEOUT],
    client: &[flag::MESSAGE, flag::INTERVAL],
    both: &[flag::COUNT],
    other: &[],
};

const MEMFD: Applies = Applies {
    server: &[
        flag::SIZE,
        flag::COUNT,
        flag::TIMEOUT,
        flag::INTERVAL,
        flag::ON_CHANGE,
    ],
    client: &[flag::MESSAGE, flag::SHRINK],
    both: &[],
    other: &[],
};

/// Whether the user gave `flag` (its default does not count).
fn given(matches: &ArgMatches, flag: Flag) -> bool {
    matches.value_source(&flag.id()) == Some(ValueSource::CommandLine)
}

/// Refuse (exit 2) an option the user gave that does not apply to `mode`
/// of `command`, naming the mode and what the option belongs to.
fn refuse(
    matches: &ArgMatches,
    command: impl Display,
    mode: Mode,
    applies: &Applies,
) -> Result<()> {
    for (flag, modes) in applies.modes() {
        if modes.contains(&mode) || !given(matches, flag) {
            continue;
        }
        let owners: Vec<&str> = modes.iter().map(|m| m.owner()).collect();
        let owners = match owners.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => owners.join(""),
        };
        return Err(usage(format!(
            "{flag} does not apply to {}: it is an option of {owners}",
            mode.of_command(&command.to_string()),
        )));
    }
    Ok(())
}

// ---- posix and sysv ----

/// What a mechanism's command line resolves to: a task of the library, or
/// a debugging mode.
#[derive(Debug)]
enum Run {
    Task(Task),
    Debugging(Debugging),
}

impl Run {
    fn run(self, out: &mut Out) -> Result<ExitCode> {
        match self {
            Run::Task(task) => examples_ipc::run(&task, out),
            Run::Debugging(mode) => debugging::run(&mode, out),
        }
    }
}

fn posix(cmd: PosixCommand, given: &ArgMatches) -> Result<Run> {
    let (kind, mode, name, applies) = match &cmd {
        PosixCommand::Msq(a) => (
            Kind::PosixMsq,
            Mode::of(&a.object.mode, a.debug.peek, Some(&a.debug.snapshot), false),
            &a.object.target.name,
            &POSIX_MSQ,
        ),
        PosixCommand::Shm(a) => (
            Kind::PosixShm,
            Mode::of(&a.object.mode, false, Some(&a.debug.snapshot), a.debug.dump),
            &a.object.target.name,
            &SHM,
        ),
        PosixCommand::Sem(a) => (
            Kind::PosixSem,
            Mode::of(&a.object.mode, false, None, false),
            &a.object.target.name,
            &SEM,
        ),
    };
    match &cmd {
        PosixCommand::Msq(a) => posix_msq_refusals(mode, a.debug.keep)?,
        PosixCommand::Shm(a) => segment_refusals(kind, mode, a.debug.partial)?,
        PosixCommand::Sem(_) => {}
    }
    refuse(given, command(kind), mode, applies)?;
    let object = || ObjectRef::posix(kind, name.clone());
    if let Some(task) = object_mode(mode, object) {
        return Ok(Run::Task(task));
    }
    let named = self::given(given, flag::NAME);
    let debug = match &cmd {
        PosixCommand::Msq(a) => {
            debugging(mode, object(), &a.debug.snapshot, (named, a.debug.partial))?
        }
        PosixCommand::Shm(a) => shm_debugging(mode, object(), &a.debug, &a.shm, named)?,
        PosixCommand::Sem(_) => None,
    };
    if let Some(debug) = debug {
        return Ok(Run::Debugging(debug));
    }
    Ok(Run::Task(match cmd {
        PosixCommand::Msq(a) => Task::PosixMsq(PosixMsq {
            create: create(a.object.create.mode, queue_attrs(&a)),
            role: posix_msq_role(mode, a.object.serve, a.send, a.priority),
            name: a.object.target.name,
        }),
        PosixCommand::Shm(a) => Task::PosixShm(Shm {
            create: create(a.object.create.mode, SegmentAttrs { size: a.shm.size }),
            role: shm_role(mode, &a.object.serve, a.shm, a.debug.diff),
            target: a.object.target.name,
        }),
        PosixCommand::Sem(a) => Task::PosixSem(Sem {
            role: sem_role(kind, mode, &a.object, &a.sem, false)?,
            target: a.object.target.name,
        }),
    }))
}

/// A POSIX queue has no way to read a message but to take it
/// (mq_receive): `--peek` and `--save --keep` are refused with what works.
fn posix_msq_refusals(mode: Mode, keep: bool) -> Result<()> {
    let what = if mode == Mode::Peek {
        "--peek does not apply to posix msq: a POSIX queue cannot be read without taking \
         the messages (mq_receive always removes them)"
    } else if keep {
        "--keep does not apply to posix msq: a POSIX queue cannot be copied without taking \
         the messages (mq_receive always removes them)"
    } else {
        return Ok(());
    };
    Err(usage(format!(
        "{what}; --save FILE takes them into FILE, and --restore FILE puts them back"
    )))
}

/// A segment's snapshot is restored whole: `--partial` (of a queue's
/// `--restore`) is refused in every mode, with what it is for.
fn segment_refusals(kind: Kind, mode: Mode, partial: bool) -> Result<()> {
    if !partial {
        return Ok(());
    }
    Err(usage(format!(
        "{} does not apply to {}: a segment's snapshot is restored whole; it is an option \
         of a queue's --restore, for a file a killed save cut short",
        flag::PARTIAL,
        mode.of_command(&command(kind)),
    )))
}

/// The debugging mode of a queue or segment, if `mode` is one: `--save`,
/// `--restore` (at the object named on the command line, or with
/// `named` false at the file's own; `partial`: of a file cut short),
/// `--peek` and `--dump` are built by their callers.
fn debugging(
    mode: Mode,
    object: ObjectRef,
    snapshot: &SnapshotArgs,
    (named, partial): (bool, bool),
) -> Result<Option<Debugging>> {
    Ok(Some(match (mode, &snapshot.save, &snapshot.restore) {
        (Mode::Save, Some(file), _) => Debugging::Save {
            file: snapshot_file(file, flag::SAVE)?,
            object,
            keep: false,
        },
        (Mode::Restore, _, Some(file)) => Debugging::Restore {
            kind: object.kind,
            file: snapshot_file(file, flag::RESTORE)?,
            target: named.then_some(object.addr),
            partial,
        },
        _ => return Ok(None),
    }))
}

/// A segment's debugging modes: `--save`, `--restore` and `--dump`; and
/// `--diff` goes with `--on-change`.
fn shm_debugging(
    mode: Mode,
    object: ObjectRef,
    debug: &ShmDebugArgs,
    shm: &ShmArgs,
    named: bool,
) -> Result<Option<Debugging>> {
    if debug.diff && !shm.on_change {
        return Err(usage(
            "--diff goes with --on-change: it prints which bytes changed since the last print",
        ));
    }
    if mode == Mode::Dump {
        return Ok(Some(Debugging::Dump {
            object,
            offset: debug.offset,
            length: debug.length,
        }));
    }
    debugging(mode, object, &debug.snapshot, (named, false))
}

/// FILE of `--save` or `--restore`: `-` is refused. A save's guarantee
/// (written whole and fsynced before success) needs a file to rename
/// into place, and a restore reads its file twice (checked to the end
/// before anything changes).
fn snapshot_file(file: &std::path::Path, flag: Flag) -> Result<std::path::PathBuf> {
    if file.as_os_str() == "-" {
        return Err(usage(format!(
            "{flag} takes a file, not - (standard input or output): a snapshot is written \
             atomically and fsynced, and read twice, which a pipe cannot do"
        )));
    }
    Ok(file.to_path_buf())
}

fn sysv(cmd: SysvCommand, given: &ArgMatches) -> Result<Run> {
    let (kind, mode, target, applies) = match &cmd {
        SysvCommand::Msq(a) => (
            Kind::SysvMsq,
            Mode::of(&a.object.mode, a.debug.peek, Some(&a.debug.snapshot), false),
            &a.object.target,
            &SYSV_MSQ,
        ),
        SysvCommand::Shm(a) => (
            Kind::SysvShm,
            Mode::of(&a.object.mode, false, Some(&a.debug.snapshot), a.debug.dump),
            &a.object.target,
            &SHM,
        ),
        SysvCommand::Sem(a) => (
            Kind::SysvSem,
            Mode::of(&a.object.mode, false, None, false),
            &a.object.target,
            &SEM,
        ),
    };
    let object = sysv_target(kind, target, mode)?;
    if let SysvCommand::Shm(a) = &cmd {
        segment_refusals(kind, mode, a.debug.partial)?;
    }
    refuse(given, command(kind), mode, applies)?;
    if let SysvCommand::Sem(_) = cmd {
        refuse(given, command(kind), mode, &SYSV_SEM)?;
    }
    if let Some(task) = object {
        return Ok(Run::Task(task));
    }
    let key = target.key;
    let named = self::given(given, flag::KEY);
    let debug = match &cmd {
        SysvCommand::Msq(a) if mode == Mode::Peek => Some(Debugging::Peek {
            key,
            selector: a.r#type.unwrap_or(0),
        }),
        SysvCommand::Msq(a) => debugging(
            mode,
            ObjectRef::sysv_key(kind, key),
            &a.debug.snapshot,
            (named, a.debug.partial),
        )?
        .map(|d| match d {
            Debugging::Save { object, file, .. } => Debugging::Save {
                object,
                file,
                keep: a.debug.keep,
            },
            d => d,
        }),
        SysvCommand::Shm(a) => shm_debugging(
            mode,
            ObjectRef::sysv_key(kind, key),
            &a.debug,
            &a.shm,
            named,
        )?,
        SysvCommand::Sem(_) => None,
    };
    if let Some(debug) = debug {
        return Ok(Run::Debugging(debug));
    }
    Ok(Run::Task(sysv_task(cmd, kind, mode)?))
}

/// A System V server or client.
fn sysv_task(cmd: SysvCommand, kind: Kind, mode: Mode) -> Result<Task> {
    Ok(match cmd {
        SysvCommand::Msq(a) => Task::SysvMsq(SysvMsq {
            key: a.object.target.key,
            create: create(a.object.create.mode, ()),
            role: sysv_msq_role(mode, a.object.serve, a.send, a.r#type)?,
        }),
        SysvCommand::Shm(a) => Task::SysvShm(Shm {
            target: a.object.target.key,
            create: create(a.object.create.mode, SegmentAttrs { size: a.shm.size }),
            role: shm_role(mode, &a.object.serve, a.shm, a.debug.diff),
        }),
        SysvCommand::Sem(a) => {
            let semvmx = examples_ipc::ipc::sysv_sem::SEMVMX;
            if mode == Mode::Server && a.sem.value > semvmx {
                return Err(usage(format!(
                    "--value {} is above SEMVMX ({semvmx}), the largest System V semaphore value",
                    a.sem.value
                )));
            }
            Task::SysvSem(Sem {
                target: a.object.target.key,
                role: sem_role(kind, mode, &a.object, &a.sem, a.undo)?,
            })
        }
    })
}

/// `--clean` and `--stat` of any kind, or None for a server or client.
fn object_mode(mode: Mode, obj: impl FnOnce() -> ObjectRef) -> Option<Task> {
    match mode {
        Mode::Clean => Some(Task::Clean(obj())),
        Mode::Stat => Some(Task::Stat(obj())),
        _ => None,
    }
}

/// The System V object of `--clean` and `--stat`: by id when given, else
/// by key. A server or client by id is refused: it could not create the
/// object, and a key it does not know would make its start line lie.
fn sysv_target(kind: Kind, target: &SysvKeyArgs, mode: Mode) -> Result<Option<Task>> {
    match (target.id, mode) {
        (Some(id), Mode::Clean | Mode::Stat) => {
            Ok(object_mode(mode, || ObjectRef::sysv_id(kind, id)))
        }
        (Some(_), _) => Err(usage(
            "--id works with --clean and --stat only; the other modes address the object by key (-k)",
        )),
        (None, _) => Ok(object_mode(mode, || ObjectRef::sysv_key(kind, target.key))),
    }
}

fn create<A>(mode: examples_ipc::target::FileMode, attrs: A) -> Create<A> {
    Create {
        policy: Creation::OpenOrCreate,
        mode,
        attrs,
    }
}

fn serve(args: &ServeArgs) -> Serve {
    Serve {
        count: args.count,
        timeout: args.timeout.map(Seconds::duration),
    }
}

/// A message client's run: `-c N`, else the text once, else ten.
fn send(count: Option<u64>, text: Option<String>, interval: Seconds, nonblock: bool) -> Send {
    let count = count.unwrap_or(if text.is_some() { 1 } else { default::MESSAGES });
    Send {
        count,
        text,
        interval: interval.duration(),
        nonblock,
    }
}

fn queue_attrs(args: &PosixMsqArgs) -> QueueAttrs {
    QueueAttrs {
        max_msgs: args.max_msgs,
        msg_size: args.msg_size,
    }
}

fn posix_msq_role(mode: Mode, s: ServeArgs, m: SendArgs, priority: u32) -> PosixMsqRole {
    match mode {
        Mode::Server => PosixMsqRole::Server(serve(&s)),
        _ => PosixMsqRole::Client {
            send: send(s.count, m.message, m.interval, m.nonblock),
            priority,
        },
    }
}

/// A System V queue's role: the server's msgrcv selector (default 0, any),
/// the client's type (default 1; a sent type is at least 1).
fn sysv_msq_role(mode: Mode, s: ServeArgs, m: SendArgs, mtype: Option<i64>) -> Result<SysvMsqRole> {
    if mode == Mode::Server {
        return Ok(SysvMsqRole::Server {
            serve: serve(&s),
            selector: mtype.unwrap_or(0),
        });
    }
    let mtype = mtype.unwrap_or(1);
    if mtype < 1 {
        return Err(usage(format!(
            "--type {mtype}: a sent message needs a type of at least 1 (0 and negative types only select when receiving)"
        )));
    }
    Ok(SysvMsqRole::Client {
        send: send(s.count, m.message, m.interval, m.nonblock),
        mtype,
    })
}

/// The role of a shm server or client of either family.
fn shm_role(mode: Mode, serve_args: &ServeArgs, shm: ShmArgs, diff: bool) -> ShmRole {
    match mode {
        Mode::Server => ShmRole::Server {
            serve: serve(serve_args),
            watch: Watch {
                interval: shm.interval.duration(),
                on_change: shm.on_change,
                diff,
            },
        },
        _ => ShmRole::Client { text: shm.message },
    }
}

/// The role of a sem server or client of either family.
fn sem_role<T: clap::Args>(
    kind: Kind,
    mode: Mode,
    object: &ObjectArgs<T>,
    sem: &SemArgs,
    undo: bool,
) -> Result<SemRole> {
    let serve_args = &object.serve;
    if mode == Mode::Server {
        return Ok(SemRole::Server {
            create: create(object.create.mode, SemAttrs { value: sem.value }),
            serve: serve(serve_args),
            interval: sem.interval.duration(),
        });
    }
    let timeout = serve_args.timeout.map(Seconds::duration);
    if timeout.is_some() && !sem.wait {
        return Err(usage(format!(
            "--timeout goes with --wait for the {} client",
            command(kind)
        )));
    }
    let action = if sem.release {
        SemAction::Release
    } else if sem.wait {
        SemAction::TakeWaiting { timeout }
    } else {
        SemAction::Take
    };
    Ok(SemRole::Client(SemClient { action, undo }))
}

/// `posix msq`: a kind's command as messages name it.
fn command(kind: Kind) -> String {
    kind.words().join(" ")
}

// ---- fifo and demos ----

fn channel(channel: &dyn Channel, args: &ChannelArgs, given: &ArgMatches) -> Result<Task> {
    let mode = if args.mode.server {
        Mode::Server
    } else if args.mode.clean {
        Mode::Clean
    } else {
        Mode::Client
    };
    refuse(given, channel.name(), mode, &CHANNEL)?;
    let role = match mode {
        Mode::Server => ChannelRole::Server {
            mode: args.create.mode,
            serve: serve(&args.serve),
        },
        Mode::Clean => ChannelRole::Clean,
        // The only other mode a channel has.
        _ => {
            if let Some(why) = args
                .message
                .as_deref()
                .and_then(|m| channel.refuse_message(m))
            {
                return Err(usage(why));
            }
            ChannelRole::Client(send(
                args.serve.count,
                args.message.clone(),
                args.interval,
                false,
            ))
        }
    };
    Ok(Task::Channel(spec::Channel {
        name: channel.name(),
        path: args.path.clone().unwrap_or_else(|| channel.default_path()),
        role,
    }))
}

fn demo(cmd: DemoCommand, given: &ArgMatches) -> Result<Demo> {
    let counter = |a: cli::CounterArgs| spec::Counter {
        procs: a.procs,
        iters: a.iters,
    };
    Ok(match cmd {
        DemoCommand::Race(a) => Demo::Race(counter(a)),
        DemoCommand::Mutex(a) => Demo::Mutex(counter(a)),
        DemoCommand::Atomic(a) => Demo::Atomic(counter(a)),
        DemoCommand::Cures(a) => Demo::Cures(counter(a)),
        DemoCommand::Ring(a) => Demo::Ring(spec::Ring {
            producers: a.producers,
            items: a.items,
            slots: a.slots,
        }),
        DemoCommand::Scoreboard(a) => Demo::Scoreboard(spec::Scoreboard {
            workers: a.workers,
            items: a.items,
        }),
        DemoCommand::Sorted(a) => Demo::Sorted(spec::Sorted {
            count: a.count,
            interval: a.interval.duration(),
        }),
        DemoCommand::Memfd(a) => Demo::Memfd(memfd(a, given)?),
    })
}

fn memfd(args: MemfdArgs, given: &ArgMatches) -> Result<Memfd> {
    let mode = if args.server {
        Mode::Server
    } else {
        Mode::Client
    };
    refuse(given, "demo memfd", mode, &MEMFD)?;
    examples_ipc::demo::check_exchange_name(&args.name)?;
    let role = match mode {
        Mode::Server => MemfdRole::Server {
            size: args.shm.size,
            serve: serve(&args.serve),
            watch: Watch {
                interval: args.shm.interval.duration(),
                on_change: args.shm.on_change,
                diff: false,
            },
        },
        _ => MemfdRole::Client {
            text: args.shm.message,
            shrink: args.shrink,
        },
    };
    Ok(Memfd {
        name: args.name,
        role,
    })
}

/// `bench`'s options as the bench module takes them.
fn bench_config(args: &cli::BenchArgs) -> bench::Config {
    bench::Config {
        mechs: args.mech.clone(),
        sizes: args.size.iter().map(|&s| s as usize).collect(),
        count: args.count,
        duration: args.duration.map(|d| d.duration()),
        warmup: args.warmup,
        pins: if args.pin.is_empty() {
            vec![bench::Pin::None]
        } else {
            args.pin.clone()
        },
        floor: args.floor,
        no_floor: args.no_floor,
        pattern: args.pattern,
        svg: args.svg.clone(),
        corrupt_after: args.corrupt_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use examples_ipc::help;
    use examples_ipc::target::{PosixName, SysvKey};

    /// Every command of the tree with its path (`""` for the top, `posix
    /// msq`), clap's `help` left out.
    fn commands(cmd: &clap::Command, prefix: &str, acc: &mut Vec<(String, clap::Command)>) {
        acc.push((prefix.to_string(), cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = if prefix.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{prefix} {}", sub.get_name())
            };
            commands(sub, &path, acc);
        }
    }

    /// The whole tree, built.
    fn tree() -> Vec<(String, clap::Command)> {
        let mut cmd = Cli::command();
        cmd.build();
        let mut all = Vec::new();
        commands(&cmd, "", &mut all);
        all
    }

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_short_flag_means_one_thing_everywhere() {
        let mut seen: std::collections::BTreeMap<char, (String, String)> = Default::default();
        for (path, cmd) in tree() {
            for arg in cmd.get_arguments() {
                let (Some(short), Some(long)) = (arg.get_short(), arg.get_long()) else {
                    continue;
                };
                let (first_long, first_path) = seen
                    .entry(short)
                    .or_insert_with(|| (long.to_string(), path.clone()));
                assert_eq!(
                    first_long, long,
                    "-{short} is --{first_long} in `{first_path}` but --{long} in `{path}`"
                );
            }
        }
        // The mission's letters keep their meaning.
        for (short, long) in [
            ('s', "server"),
            ('n', "name"),
            ('k', "key"),
            ('c', "count"),
            ('m', "message"),
            ('r', "release"),
            ('p', "priority"),
        ] {
            assert_eq!(seen[&short].0, long, "-{short}");
        }
    }

    /// The words of `examples-ipc ...` inside a shell line: from the program
    /// name to a redirection or the end of a process substitution.
    fn words(line: &str) -> Vec<String> {
        let start = line
            .find("examples-ipc")
            .expect("an example runs examples-ipc");
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in line[start..].chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                ')' | '>' | '|' if !quoted => break,
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        words
    }

    #[test]
    fn every_command_has_a_guide_and_every_guide_a_command() {
        let all: Vec<String> = tree().into_iter().map(|(path, _)| path).collect();
        for path in &all {
            let g = help::guide(path).unwrap_or_else(|| panic!("no guide for {path:?}"));
            assert!(
                (2..=3).contains(&g.examples.len()) || path.is_empty(),
                "{path:?}: 2 or 3 examples"
            );
        }
        for (path, _) in help::guides() {
            assert!(
                all.iter().any(|p| p == path),
                "guide for no command: {path:?}"
            );
        }
    }

    #[test]
    fn every_example_parses() {
        for (path, g) in help::guides() {
            for (_, lines) in g.examples {
                for line in *lines {
                    let words = words(line);
                    assert!(
                        words.join(" ").contains(path),
                        "{path:?}: the example runs another command: {line}"
                    );
                    // Parsed, and resolved where a spec comes of it: no
                    // example uses an option its mode refuses.
                    let words: Vec<&str> = words[1..].iter().map(String::as_str).collect();
                    match resolve(&words) {
                        Ok(_) => {}
                        Err(e) if e.to_string() == "not a task" => {}
                        Err(e) => panic!("{line}: {e}"),
                    }
                }
            }
        }
    }

    #[test]
    fn mechanisms_name_their_modes_and_the_client() {
        let channels = examples_ipc::channel::ALL.iter().map(|c| c.name());
        let others = [
            "posix msq",
            "posix shm",
            "posix sem",
            "sysv msq",
            "sysv shm",
            "sysv sem",
            "demo memfd",
        ];
        for path in others.into_iter().chain(channels) {
            let modes = help::guide(path).unwrap().modes;
            assert!(modes.iter().any(|(f, _)| *f == help::CLIENT), "{path}");
            assert!(modes.iter().any(|(f, _)| f.contains("--server")), "{path}");
        }
    }

    #[test]
    fn one_man_page_per_command_and_no_help_page() {
        let pages = manpage::pages(Cli::command()).unwrap();
        let files: Vec<_> = pages.iter().map(|p| p.file.as_str()).collect();
        for f in [
            "examples-ipc.1",
            "examples-ipc-posix.1",
            "examples-ipc-posix-msq.1",
            "examples-ipc-sysv-sem.1",
            "examples-ipc-ls.1",
            "examples-ipc-demo-memfd.1",
        ] {
            assert!(files.contains(&f), "{f}: {files:?}");
        }
        assert!(!files.iter().any(|f| f.contains("help")), "{files:?}");
        assert_eq!(files[0], "examples-ipc.1");
    }

    #[test]
    fn version_is_what_clap_prints() {
        let cmd = Cli::command();
        assert_eq!(VERSION, cmd.render_version());
        assert_eq!(VERSION, cmd.render_long_version());
    }

    /// Parse a command line (after the program name).
    fn parse(words: &[&str]) -> Result<(Cli, ArgMatches)> {
        let argv: Vec<OsString> = std::iter::once("examples-ipc")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect();
        cli::parse(&argv).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Parse and resolve a command line (after the program name).
    fn resolve(words: &[&str]) -> Result<Task> {
        let (cli, matches) = parse(words)?;
        let given = leaf(&matches);
        let task = |run: Run| match run {
            Run::Task(task) => Ok(task),
            Run::Debugging(_) => anyhow::bail!("not a task"),
        };
        match cli.command {
            Command::Posix(cmd) => task(posix(cmd, given)?),
            Command::Sysv(cmd) => task(sysv(cmd, given)?),
            Command::Channel(cmd) => {
                let (channel, args) = cmd.parts();
                self::channel(channel, args, given)
            }
            Command::Pipe(args) => Ok(Task::Pipe(Pipe {
                messages: args.messages,
            })),
            Command::Demo(cmd) => demo(cmd, given).map(|_| Task::Pipe(Pipe { messages: vec![] })),
            _ => anyhow::bail!("not a task"),
        }
    }

    /// Parse and resolve a debugging mode.
    fn resolve_debugging(words: &[&str]) -> Result<Debugging> {
        let (cli, matches) = parse(words)?;
        let run = match cli.command {
            Command::Posix(cmd) => posix(cmd, leaf(&matches))?,
            Command::Sysv(cmd) => sysv(cmd, leaf(&matches))?,
            _ => anyhow::bail!("not a mechanism"),
        };
        match run {
            Run::Debugging(mode) => Ok(mode),
            Run::Task(task) => anyhow::bail!("a task: {task:?}"),
        }
    }

    #[test]
    fn debugging_modes_resolve_and_refuse_what_is_not_theirs() {
        let key: SysvKey = "0x2a".parse().unwrap();
        assert_eq!(
            resolve_debugging(&["sysv", "msq", "-k", "0x2a", "--peek", "-t", "-3"]).unwrap(),
            Debugging::Peek { key, selector: -3 }
        );
        assert_eq!(
            resolve_debugging(&["posix", "shm", "-n", "/s", "--dump", "--offset", "4"]).unwrap(),
            Debugging::Dump {
                object: ObjectRef::posix(Kind::PosixShm, "/s".parse().unwrap()),
                offset: 4,
                length: None,
            }
        );
        // The file's own object unless -n or -k is given.
        for (words, target) in [
            (&["posix", "msq", "--restore", "f"][..], None),
            (
                &["sysv", "shm", "--restore", "f", "-k", "0x2a"][..],
                Some(object::Addr::Key(key)),
            ),
        ] {
            let Debugging::Restore {
                target: t, partial, ..
            } = resolve_debugging(words).unwrap()
            else {
                panic!("{words:?}");
            };
            assert_eq!(t, target, "{words:?}");
            assert!(!partial, "{words:?}");
        }
        refused(&["posix", "msq", "--peek"], "cannot be read without taking");
        refused(
            &["posix", "msq", "--save", "f", "--keep"],
            "cannot be copied",
        );
        refused(
            &["sysv", "msq", "--keep"],
            "--keep does not apply to the sysv msq client",
        );
        refused(
            &["sysv", "msq", "--save", "f", "-t", "1"],
            "sysv msq --save",
        );
        refused(&["sysv", "msq", "--peek", "-c", "1"], "sysv msq --peek");
        refused(
            &["posix", "shm", "--offset", "3"],
            "it is an option of --dump",
        );
        refused(
            &["sysv", "shm", "--save", "f", "--length", "3"],
            "sysv shm --save",
        );
        refused(
            &["posix", "shm", "-s", "--diff"],
            "--diff goes with --on-change",
        );
        refused(&["posix", "shm", "--dump", "--diff"], "posix shm --dump");
        refused(
            &["posix", "msq", "--restore", "f", "--max-msgs", "3"],
            "posix msq --restore",
        );
        refused(&["posix", "msq", "--save", "-"], "not -");
        refused(
            &["sysv", "shm", "--dump", "-i", "3"],
            "--id works with --clean and --stat",
        );
        for clash in [
            &["sysv", "msq", "--peek", "--save", "f"][..],
            &["posix", "shm", "--dump", "-s"],
            &["sysv", "shm", "--restore", "f", "--stat"],
        ] {
            assert!(resolve_debugging(clash).is_err(), "{clash:?}");
        }
    }

    #[test]
    fn partial_goes_with_a_queues_restore_only() {
        for words in [
            &["posix", "msq", "--restore", "f", "--partial"][..],
            &["sysv", "msq", "--partial", "--restore", "f"],
        ] {
            let partial = matches!(
                resolve_debugging(words),
                Ok(Debugging::Restore { partial: true, .. })
            );
            assert!(partial, "{words:?}");
        }
        refused(
            &["sysv", "msq", "--save", "f", "--partial"],
            "--partial does not apply to sysv msq --save: it is an option of --restore",
        );
        refused(
            &["posix", "msq", "--partial"],
            "--partial does not apply to the posix msq client",
        );
        refused(
            &["posix", "shm", "--restore", "f", "--partial"],
            "--partial does not apply to posix shm --restore: a segment's snapshot is restored whole",
        );
        refused(
            &["sysv", "shm", "--clean", "--partial"],
            "--partial does not apply to sysv shm --clean",
        );
    }

    /// Assert `words` resolve to an error that says `fragment`.
    fn refused(words: &[&str], fragment: &str) {
        let err = resolve_debugging(words).expect_err("refused").to_string();
        assert!(err.contains(fragment), "{words:?}: {err}");
    }

    #[test]
    fn every_table_names_options_of_its_commands() {
        let mut cmd = Cli::command();
        cmd.build();
        let find = |path: &[&str]| {
            let mut c = &cmd;
            for p in path {
                c = c.find_subcommand(p).expect("a command");
            }
            c.clone()
        };
        let check = |path: &[&str], applies: &Applies| {
            let c = find(path);
            for (flag, _) in applies.modes() {
                let arg = c
                    .get_arguments()
                    .find(|a| a.get_id().as_str() == flag.id())
                    .unwrap_or_else(|| panic!("{path:?} has no {flag}"));
                assert_eq!(arg.get_long(), Some(flag.long), "{path:?} {flag}");
                assert_eq!(arg.get_short(), flag.short, "{path:?} {flag}");
            }
        };
        check(&["posix", "msq"], &POSIX_MSQ);
        check(&["sysv", "msq"], &SYSV_MSQ);
        for path in [["posix", "shm"], ["sysv", "shm"]] {
            check(&path, &SHM);
        }
        for path in [["posix", "sem"], ["sysv", "sem"]] {
            check(&path, &SEM);
        }
        check(&["sysv", "sem"], &SYSV_SEM);
        check(&["fifo"], &CHANNEL);
        check(&["demo", "memfd"], &MEMFD);
    }

    #[test]
    fn options_of_another_mode_are_refused_and_defaults_are_not() {
        let refused = |words: &[&str], fragment: &str| {
            let err = resolve(words).expect_err("refused").to_string();
            assert!(err.contains(fragment), "{words:?}: {err}");
        };
        refused(
            &["posix", "sem", "-c", "3"],
            "--count does not apply to the posix sem client: it is an option of the server (-s)",
        );
        refused(&["posix", "shm", "--interval", "1"], "the posix shm client");
        refused(&["sysv", "shm", "--on-change"], "the sysv shm client");
        refused(
            &["posix", "msq", "-s", "--nonblock"],
            "the posix msq server",
        );
        refused(&["posix", "msq", "--timeout", "1"], "the posix msq client");
        refused(
            &["posix", "shm", "--clean", "--size", "10"],
            "posix shm --clean",
        );
        refused(
            &["sysv", "sem", "--stat", "--value", "3"],
            "sysv sem --stat",
        );
        refused(
            &["posix", "msq", "--stat", "--max-msgs", "3"],
            "posix msq --stat",
        );
        refused(&["fifo", "-s", "-m", "x"], "the fifo server");
        refused(
            &["demo", "memfd", "-s", "--shrink"],
            "the demo memfd server",
        );
        assert!(resolve(&["posix", "msq", "-s", "--max-msgs", "3"]).is_ok());
        assert!(resolve(&["posix", "sem", "-s", "--value", "1", "-c", "2"]).is_ok());
        assert!(resolve(&["posix", "sem", "--wait", "--timeout", "1"]).is_ok());
    }

    #[test]
    fn a_task_written_as_arguments_resolves_to_itself() {
        let name: PosixName = "/q".parse().unwrap();
        let key: SysvKey = "0x1234".parse().unwrap();
        let tasks = [
            resolve(&[
                "posix",
                "msq",
                "-s",
                "-n",
                "/q",
                "-c",
                "3",
                "--msg-size",
                "64",
            ]),
            resolve(&[
                "posix",
                "msq",
                "-n",
                "/q",
                "-m",
                "hi",
                "-p",
                "5",
                "--interval",
                "0",
            ]),
            resolve(&[
                "sysv",
                "msq",
                "-k",
                "7",
                "-s",
                "-t",
                "-3",
                "--timeout",
                "2.5",
            ]),
            resolve(&["sysv", "msq", "-k", "7", "--nonblock", "--mode", "0644"]),
            resolve(&["posix", "shm", "-s", "--interval", "0.5", "--on-change"]),
            resolve(&["sysv", "shm", "-s", "--on-change", "--diff", "-k", "9"]),
            resolve(&[
                "sysv",
                "shm",
                "-k",
                "7",
                "-m",
                "text with spaces",
                "--size",
                "99",
            ]),
            resolve(&["posix", "sem", "-s", "--value", "0", "--interval", "2"]),
            resolve(&[
                "sysv",
                "sem",
                "-k",
                "7",
                "--wait",
                "--timeout",
                "1",
                "--undo",
            ]),
            resolve(&["sysv", "sem", "-k", "7", "-r"]),
            resolve(&["sysv", "msq", "--clean", "-i", "12"]),
            resolve(&["fifo", "--path", "/tmp/x", "-s", "-c", "1"]),
            resolve(&["fifo", "--path", "/tmp/x", "--clean"]),
            resolve(&["pipe", "-m", "a", "-m", "b"]),
            Ok(Task::Stat(ObjectRef::posix(Kind::PosixSem, name))),
            Ok(Task::Clean(ObjectRef::sysv_key(Kind::SysvShm, key))),
        ];
        for task in tasks {
            let task = task.expect("resolves");
            let args = task.to_args();
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let again = resolve(&words).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(again, task, "{args:?}");
        }
    }
}
