//! Every clap type of the command line. No logic and no I/O live here: values
//! are parsed into the newtypes of `target`, and `main` resolves them into
//! the specs the commands take. The flags a spec carries are spelled in
//! `spec::flag` and their defaults in `spec::default`, so `tour`, which
//! writes command lines from specs, cannot drift from this parser. `parse`
//! only adds the test hooks to the parser.

use clap::builder::TypedValueParser;
use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use examples_ipc::channel::Channel;
use examples_ipc::channel::fifo::FIFO;
use examples_ipc::channel::socket::SOCKET;
use examples_ipc::help;
use examples_ipc::manpage::{Existing, existing, existing_arg};
use examples_ipc::spec::{TourStep, default, flag};
use examples_ipc::target::{FileMode, IpcId, PosixName, PosixPrefix, Seconds, SysvKey, ranged};
use examples_ipc::tour;

/// Explore, test and debug Linux inter-process communication.
///
/// POSIX and System V message queues, shared memory and semaphores, each with
/// a server (-s), a client and a --clean mode; plus `ls`, `bench`, `tour` and
/// pipes and FIFOs.
#[derive(Debug, Parser)]
#[command(name = "examples-ipc", version, propagate_version = true)]
#[command(after_help = help::after_help(""))]
pub struct Cli {
    /// Print JSON instead of text: one object per line (ls: one document)
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Parse the command line: the clap tree plus the test hooks. Also returns
/// the matches, which say which options the user gave (`value_source`):
/// an option that does not apply to the mode is refused, while its default
/// is not.
///
/// The hooks are added to the parser only, never to `Cli::command()`, from
/// which completions and the man page are generated: clap_complete offers
/// hidden options too, and a test hook has no business in a user's shell.
pub fn parse(args: &[std::ffi::OsString]) -> Result<(Cli, ArgMatches), clap::Error> {
    const CORRUPT_AFTER: &str = "corrupt-after";
    let mut cmd = Cli::command().mut_subcommand("bench", |bench| {
        bench.arg(
            Arg::new(CORRUPT_AFTER)
                .long(CORRUPT_AFTER)
                .hide(true)
                .value_name("N")
                .value_parser(clap::value_parser!(u64)),
        )
    });
    let mut matches = cmd.try_get_matches_from_mut(args)?;
    // Kept before the derive code takes the subcommand's matches apart.
    let given = matches.clone();
    let corrupt_after = matches
        .subcommand_matches("bench")
        .and_then(|m| m.get_one::<u64>(CORRUPT_AFTER))
        .copied();
    let mut cli = Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))?;
    if let Command::Bench(args) = &mut cli.command {
        args.corrupt_after = corrupt_after;
    }
    Ok((cli, given))
}

// Each command's `after_help` (help::after_help) sits on its own args
// struct, not on the variants: an args struct is built only with its command
// (`defer`), while the variants, and the subcommand enums of posix, sysv and
// demo, are built with the root on every run, `--version` included. Only
// posix, sysv, demo and the four counter demos, which share CounterArgs, keep
// theirs on the enum or variant: help::after_help is cheap for them (no
// modes to wrap).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// POSIX IPC: mq_*, shm_open + mmap, sem_open
    #[command(subcommand)]
    Posix(PosixCommand),
    /// System V IPC: msgget, shmget, semget
    #[command(subcommand)]
    Sysv(SysvCommand),
    /// Run every mechanism end to end in one command, no second terminal
    Tour(TourArgs),
    /// Measure round-trip latency and throughput of each mechanism, verified
    Bench(BenchArgs),
    /// List every IPC object, POSIX and System V, with who uses it
    Ls(LsArgs),
    /// Remove orphaned objects (nobody uses them and their creator is gone)
    Clean(CleanArgs),
    /// Show the kernel limits that decide what can be created, with usage
    Limits(LimitsArgs),
    /// Find the known IPC pitfalls here: stuck queues, deadlocked semaphores, orphans, small /dev/shm
    Doctor(DoctorArgs),
    /// Watch the selected objects change: a live table, or JSON lines
    Watch(WatchArgs),
    /// Print a shell completion script (bash, zsh, fish)
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command with --dir
    Man(ManArgs),
    #[command(flatten)]
    Channel(ChannelCommand),
    /// Anonymous pipes: parent and child exchange length-prefixed messages
    Pipe(PipeArgs),
    /// Classic experiments with real processes: races, locks, ring buffers
    #[command(subcommand)]
    Demo(DemoCommand),
}

#[derive(Debug, Subcommand)]
#[command(defer = true, after_help = help::after_help("posix"))]
pub enum PosixCommand {
    /// POSIX message queue (mq_open, mq_send, mq_receive)
    Msq(PosixMsqArgs),
    /// POSIX shared memory (shm_open + mmap)
    Shm(PosixShmArgs),
    /// POSIX named semaphore (sem_open)
    Sem(PosixSemArgs),
}

#[derive(Debug, Subcommand)]
#[command(defer = true, after_help = help::after_help("sysv"))]
pub enum SysvCommand {
    /// System V message queue (msgget, msgsnd, msgrcv)
    Msq(SysvMsqArgs),
    /// System V shared memory (shmget + shmat)
    Shm(SysvShmArgs),
    /// System V semaphore set of one semaphore (semget, semop)
    Sem(SysvSemArgs),
}

// At most one mode; none means client. Each mechanism names its object in
// these flags' help (`help::msq_options` and so on).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ModeArgs {
    /// Create the object if missing and serve (receive / watch)
    #[arg(short = flag::SERVER.short, long = flag::SERVER.long)]
    pub server: bool,
    /// Remove the object
    #[arg(long = flag::CLEAN.long)]
    pub clean: bool,
    /// Print the object's attributes and exit
    #[arg(long = flag::STAT.long)]
    pub stat: bool,
}

// The snapshot modes of queues and segments. Each is a mode: its flags
// join the `ModeArgs` group, so clap refuses two modes at once.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Save the object to FILE (JSON Lines), written atomically and fsynced
    #[arg(long = flag::SAVE.long, value_name = "FILE", group = "ModeArgs")]
    pub save: Option<std::path::PathBuf>,
    /// Restore FILE into the object, creating it with the saved attributes
    /// when missing (-n/-k: another target than the file's)
    #[arg(long = flag::RESTORE.long, value_name = "FILE", group = "ModeArgs")]
    pub restore: Option<std::path::PathBuf>,
}

// A POSIX queue's debugging modes. `--peek` and `--keep` are hidden: a
// POSIX queue cannot be read without taking, and they are accepted only so
// that the refusal is ours and says what to do instead.
#[derive(Debug, Args)]
pub struct PosixMsqDebugArgs {
    #[arg(long = flag::PEEK.long, hide = true, group = "ModeArgs")]
    pub peek: bool,
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
    #[arg(long = flag::KEEP.long, hide = true)]
    pub keep: bool,
    /// With --restore: restore the whole messages of a file cut short (a
    /// save that was killed)
    #[arg(long = flag::PARTIAL.long)]
    pub partial: bool,
}

// A System V queue's debugging modes.
#[derive(Debug, Args)]
pub struct SysvMsqDebugArgs {
    /// Print every message without taking any (msgrcv MSG_COPY); --type selects
    #[arg(long = flag::PEEK.long, group = "ModeArgs")]
    pub peek: bool,
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
    /// With --save: copy the messages (MSG_COPY), leaving the queue as it is
    #[arg(long = flag::KEEP.long)]
    pub keep: bool,
    /// With --restore: restore the whole messages of a file cut short (a
    /// save that was killed)
    #[arg(long = flag::PARTIAL.long)]
    pub partial: bool,
}

// A segment's debugging modes, either family.
#[derive(Debug, Args)]
pub struct ShmDebugArgs {
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
    /// Print the segment's bytes as xxd does (offset, hex, ASCII)
    #[arg(long = flag::DUMP.long, group = "ModeArgs")]
    pub dump: bool,
    /// With --dump: start at byte N
    #[arg(long = flag::OFFSET.long, value_name = "N", default_value_t = 0)]
    pub offset: u64,
    /// With --dump: at most N bytes (default: to the end)
    #[arg(long = flag::LENGTH.long, value_name = "N")]
    pub length: Option<u64>,
    /// Server with --on-change: also print which byte ranges changed
    #[arg(long = flag::DIFF.long)]
    pub diff: bool,
    // Hidden: a segment's snapshot is restored whole; accepted only so
    // that the refusal is ours and names the mode.
    #[arg(long = flag::PARTIAL.long, hide = true)]
    pub partial: bool,
}

// `--count` and `--timeout`, whose meaning follows the mode and the
// mechanism: each command that flattens this sets their help to what they do
// there (`mut_args(help::msq_options)` and so on).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Server: exit 0 after N event lines
    #[arg(short = flag::COUNT.short, long = flag::COUNT.long, value_name = "N", value_parser = ranged::<u64>(0, u64::MAX))]
    pub count: Option<u64>,
    /// Server: exit 1 when no event comes for SECS seconds (fractions allowed)
    #[arg(long = flag::TIMEOUT.long, value_name = "SECS")]
    pub timeout: Option<Seconds>,
}

// What every posix and sysv command takes: a mode, the object (a
// `PosixNameArgs` or a `SysvKeyArgs`), the permission bits of a call that
// creates it, and how long a server runs. The fields' order is the help's.
#[derive(Debug, Args)]
pub struct ObjectArgs<T: Args> {
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub target: T,
    #[command(flatten)]
    pub create: CreateModeArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

// POSIX addressing.
#[derive(Debug, Args)]
pub struct PosixNameArgs {
    /// Object name; a leading '/' is added when missing
    #[arg(short = flag::NAME.short, long = flag::NAME.long, default_value = default::NAME)]
    pub name: PosixName,
}

// Permission bits of objects this tool creates.
#[derive(Debug, Args)]
pub struct CreateModeArgs {
    /// Permission bits for an object this call creates (octal)
    #[arg(long = flag::MODE.long, default_value_t = default::MODE, value_name = "OCTAL")]
    pub mode: FileMode,
}

// System V addressing.
#[derive(Debug, Args)]
pub struct SysvKeyArgs {
    /// IPC key: decimal (may be negative) or 0x hex as ipcs prints it
    #[arg(short = flag::KEY.short, long = flag::KEY.long, default_value = default::KEY, allow_hyphen_values = true)]
    pub key: SysvKey,
    /// Address the object by id instead of key (--clean and --stat only)
    #[arg(short = flag::ID.short, long = flag::ID.long, value_name = "ID")]
    pub id: Option<IpcId>,
}

// `posix msq`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("posix msq"))]
#[command(mut_args(help::msq_options), mut_args(existing(Existing::PosixMsq)))]
pub struct PosixMsqArgs {
    #[command(flatten)]
    pub object: ObjectArgs<PosixNameArgs>,
    #[command(flatten)]
    pub send: SendArgs,
    /// Queue capacity in messages, when this call creates the queue
    #[arg(long = flag::MAX_MSGS.long, default_value_t = default::MAX_MSGS, value_parser = ranged::<u32>(1, u32::MAX), value_name = "N")]
    pub max_msgs: u32,
    /// Largest message in bytes, when this call creates the queue
    #[arg(long = flag::MSG_SIZE.long, default_value_t = default::MSG_SIZE, value_parser = ranged::<u32>(1, u32::MAX), value_name = "BYTES")]
    pub msg_size: u32,
    /// Priority of sent messages (0 to 32767)
    #[arg(short = flag::PRIORITY.short, long = flag::PRIORITY.long, default_value_t = default::PRIORITY, value_parser = ranged::<u32>(0, 32767), value_name = "P")]
    pub priority: u32,
    #[command(flatten)]
    pub debug: PosixMsqDebugArgs,
}

// What a message client sends.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Send TEXT instead of {"count":i}: once, or -c N times
    #[arg(short = flag::MESSAGE.short, long = flag::MESSAGE.long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Seconds between messages (fractions and 0 allowed)
    #[arg(long = flag::INTERVAL.long, default_value_t = Seconds(default::SEND_INTERVAL), value_name = "SECS")]
    pub interval: Seconds,
    /// Fail with "queue is full" instead of waiting
    #[arg(long = flag::NONBLOCK.long)]
    pub nonblock: bool,
}

// `sysv msq`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("sysv msq"))]
#[command(mut_args(help::msq_options), mut_args(existing(Existing::SysvMsq)))]
pub struct SysvMsqArgs {
    #[command(flatten)]
    pub object: ObjectArgs<SysvKeyArgs>,
    #[command(flatten)]
    pub send: SendArgs,
    /// Message type: the server's msgrcv selector (default 0 = any), the
    /// client's mtype (default 1)
    #[arg(short = flag::TYPE.short, long = flag::TYPE.long, allow_hyphen_values = true, value_name = "T")]
    pub r#type: Option<i64>,
    #[command(flatten)]
    pub debug: SysvMsqDebugArgs,
}

// Options of the shared-memory commands.
#[derive(Debug, Args)]
pub struct ShmArgs {
    /// Segment size in bytes, when this call creates it
    #[arg(long = flag::SIZE.long, default_value_t = default::SEGMENT_SIZE, value_parser = ranged::<u64>(1, u64::MAX), value_name = "BYTES")]
    pub size: u64,
    /// Server: seconds between prints (fractions allowed)
    #[arg(long = flag::INTERVAL.long, default_value_t = Seconds(default::SHM_INTERVAL), value_name = "SECS")]
    pub interval: Seconds,
    /// Server: print only when the text changed
    #[arg(long = flag::ON_CHANGE.long)]
    pub on_change: bool,
    /// Client: write TEXT (otherwise one line from standard input)
    #[arg(short = flag::MESSAGE.short, long = flag::MESSAGE.long, value_name = "TEXT")]
    pub message: Option<String>,
}

// `posix shm`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("posix shm"))]
#[command(mut_args(help::shm_options), mut_args(existing(Existing::PosixShm)))]
pub struct PosixShmArgs {
    #[command(flatten)]
    pub object: ObjectArgs<PosixNameArgs>,
    #[command(flatten)]
    pub shm: ShmArgs,
    #[command(flatten)]
    pub debug: ShmDebugArgs,
}

// `sysv shm`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("sysv shm"))]
#[command(mut_args(help::shm_options), mut_args(existing(Existing::SysvShm)))]
pub struct SysvShmArgs {
    #[command(flatten)]
    pub object: ObjectArgs<SysvKeyArgs>,
    #[command(flatten)]
    pub shm: ShmArgs,
    #[command(flatten)]
    pub debug: ShmDebugArgs,
}

// Options of the semaphore commands.
#[derive(Debug, Args)]
pub struct SemArgs {
    /// Server: initial value, when this call creates the semaphore
    #[arg(long = flag::VALUE.long, default_value_t = default::SEM_VALUE, value_parser = ranged::<u32>(0, i32::MAX as u32), value_name = "N")]
    pub value: u32,
    /// Server: seconds between polls of the value (fractions allowed)
    #[arg(long = flag::INTERVAL.long, default_value_t = Seconds(default::SEM_INTERVAL), value_name = "SECS")]
    pub interval: Seconds,
    /// Client: give one unit back instead of taking one
    #[arg(short = flag::RELEASE.short, long = flag::RELEASE.long)]
    pub release: bool,
    /// Client: wait for a unit instead of failing at 0 (see --timeout)
    #[arg(long = flag::WAIT.long, conflicts_with = "release")]
    pub wait: bool,
}

// `posix sem`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("posix sem"))]
#[command(mut_args(help::sem_options), mut_args(existing(Existing::PosixSem)))]
pub struct PosixSemArgs {
    #[command(flatten)]
    pub object: ObjectArgs<PosixNameArgs>,
    #[command(flatten)]
    pub sem: SemArgs,
}

// `sysv sem`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("sysv sem"))]
#[command(mut_args(help::sem_options), mut_args(existing(Existing::SysvSem)))]
pub struct SysvSemArgs {
    #[command(flatten)]
    pub object: ObjectArgs<SysvKeyArgs>,
    #[command(flatten)]
    pub sem: SemArgs,
    /// Client: SEM_UNDO, the kernel reverts the operation when this process exits
    #[arg(long = flag::UNDO.long)]
    pub undo: bool,
}

// `tour`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("tour"))]
pub struct TourArgs {
    /// Only these mechanisms (comma-separated); default all
    #[arg(long, value_delimiter = ',', value_name = "LIST", value_parser = tour_step())]
    pub only: Vec<TourStep>,
}

/// A step of `--only`: its names are the tour's steps', offered by Tab.
fn tour_step() -> impl TypedValueParser<Value = TourStep> {
    clap::builder::PossibleValuesParser::new(tour::all_steps().into_iter().map(TourStep::name))
        .try_map(|name| name.parse::<TourStep>())
}

// ---- ls, clean, limits, completions, man ----

/// The three kinds of object each family has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IpcType {
    /// Message queues
    Msq,
    /// Shared memory
    Shm,
    /// Semaphores
    Sem,
}

// Which objects `ls` and `clean` look at. `--name` and `-k` complete to
// the objects that exist.
#[derive(Debug, Args)]
#[command(mut_arg("name", existing_arg(Existing::Posix)))]
#[command(mut_arg("key", existing_arg(Existing::Sysv)))]
pub struct SelectArgs {
    /// Only POSIX objects
    #[arg(long, conflicts_with = "sysv")]
    pub posix: bool,
    /// Only System V objects
    #[arg(long)]
    pub sysv: bool,
    /// Only this kind of object
    #[arg(short, long, value_name = "TYPE")]
    pub r#type: Option<IpcType>,
    /// Only objects owned by USER (name or uid)
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
    /// Only the POSIX objects named exactly NAME (repeatable; leading '/'
    /// optional)
    #[arg(long, value_name = "NAME")]
    pub name: Vec<PosixName>,
    /// Only POSIX objects whose name starts with P (at least one character
    /// after the '/')
    #[arg(long, value_name = "P")]
    pub prefix: Option<PosixPrefix>,
    /// Only System V objects with this key (decimal or 0x hex)
    #[arg(short, long, allow_hyphen_values = true)]
    pub key: Option<SysvKey>,
}

// `ls`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("ls"))]
pub struct LsArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Exact sizes in bytes instead of human-readable ones
    #[arg(long)]
    pub bytes: bool,
    /// Only orphaned objects (what `clean --stale` would remove)
    #[arg(long)]
    pub orphaned: bool,
    /// Every IPC namespace on the host (containers), with a NAMESPACE column
    ///
    /// Needs root (CAP_SYS_ADMIN and CAP_SYS_PTRACE) to enter other
    /// namespaces; those it cannot read are named, the rest listed.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only one IPC namespace: its inode, or the pid of a process in it
    ///
    /// As NAMESPACE shows them (INODE/PID). Rows carry the NAMESPACE column.
    #[arg(long, value_name = "INODE|PID", conflicts_with = "all_namespaces")]
    pub namespace: Option<u64>,
    /// Columns to print, comma-separated (see --list-columns)
    ///
    /// Names as in the header, in any case; columns appear in the order
    /// given. Not with --json, whose document always has every field.
    #[arg(
        short = 'o',
        long,
        value_name = "LIST",
        value_delimiter = ',',
        ignore_case = true,
        hide_possible_values = true
    )]
    pub output: Vec<LsColumn>,
    /// No header line and no summary line
    ///
    /// Standard output holds only the rows; notes about the scan go to
    /// standard error. Not with --json.
    #[arg(long)]
    pub noheadings: bool,
    /// Unaligned rows for scripts, one space between columns
    ///
    /// Within a value, spaces, backslashes and control characters are
    /// written \xNN (as lsipc --raw does), so every row splits on single
    /// spaces; an empty value is an empty field. No summary line; notes go
    /// to standard error. Not with --json.
    #[arg(long)]
    pub raw: bool,
    /// List the columns --output accepts, one line each, and exit
    #[arg(long, conflicts_with_all = ["SelectArgs", "bytes", "orphaned", "output", "noheadings", "raw", "all_namespaces", "namespace"])]
    pub list_columns: bool,
}

/// A column of the `ls` table: defined with the table, whose header
/// spells the names `-o` takes.
pub use examples_ipc::ls::Column as LsColumn;

// `clean`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("clean"))]
pub struct CleanArgs {
    /// Remove orphaned objects only (required: there is no remove-all)
    #[arg(long, required = true)]
    pub stale: bool,
    /// List what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Act in this IPC namespace (its inode, or a pid in it) instead of the current one
    ///
    /// Objects are removed from within it (a child that joins it and its
    /// mount namespace), after both scans agree; each line names it.
    #[arg(long, value_name = "INODE|PID")]
    pub namespace: Option<u64>,
    /// Save each queue and segment to its own file in DIR before removing
    /// it (one JSON Lines snapshot each; a failed save keeps the object)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dry_run", "namespace"])]
    pub save: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
}

// `doctor`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("doctor"))]
pub struct DoctorArgs {
    /// The objects the per-object checks look at (default: all)
    #[command(flatten)]
    pub select: SelectArgs,
    /// Check every IPC namespace on the host (containers), each with its
    /// own /dev/shm, mqueue mount, msg_max and objects
    ///
    /// Each finding names its namespace (INODE/PID and container, as ls -A
    /// shows them). Needs root to enter other namespaces; those it cannot
    /// are named, and do not by themselves make the exit status 1.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Check only one IPC namespace: its inode, or the pid of a process in it
    #[arg(long, value_name = "INODE|PID", conflicts_with = "all_namespaces")]
    pub namespace: Option<u64>,
}

// `watch`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("watch"))]
pub struct WatchArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Seconds between samples (fractions allowed)
    #[arg(long, default_value = "1", value_name = "SECS")]
    pub interval: Seconds,
    /// Stop after N samples (default: until Ctrl-C)
    #[arg(short, long, value_parser = ranged::<u64>(1, u64::MAX), value_name = "N")]
    pub count: Option<u64>,
}

// `limits`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("limits"))]
pub struct LimitsArgs {
    /// Queue capacity to check (default: msg_default, at most msg_max, as mq_open without attributes)
    #[arg(long, value_parser = ranged::<u32>(1, u32::MAX), value_name = "N")]
    pub max_msgs: Option<u32>,
    /// Message size to check (default: msgsize_default, at most msgsize_max)
    #[arg(long, value_parser = ranged::<u32>(1, u32::MAX), value_name = "BYTES")]
    pub msg_size: Option<u32>,
    /// The limits of every IPC namespace on the host, one block each
    ///
    /// msg*, shm*, sem and the mqueue sysctls are per IPC namespace, /dev/shm
    /// per mount namespace: each is read from within (needs root).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

// `completions`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("completions"))]
pub struct CompletionsArgs {
    /// The shell
    pub shell: Shell,
}

// `man`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("man"))]
pub struct ManArgs {
    /// Write one page per command into DIR (examples-ipc.1,
    /// examples-ipc-posix-msq.1, ...) instead of printing the top page
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

// The message channels (examples_ipc::channel): one variant and one args
// struct each, the struct holding the channel's after_help and the words of
// its options; the options themselves are `ChannelArgs`, the same for all.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ChannelCommand {
    /// Named pipe (mkfifo): a server reads JSON lines that clients write
    Fifo(FifoArgs),
    /// Unix datagram socket: a server prints each datagram that clients send
    Socket(SocketArgs),
}

impl ChannelCommand {
    /// The channel, and the options it was given.
    pub fn parts(&self) -> (&'static dyn Channel, &ChannelArgs) {
        match self {
            ChannelCommand::Fifo(args) => (&FIFO, &args.channel),
            ChannelCommand::Socket(args) => (&SOCKET, &args.channel),
        }
    }
}

// `fifo`: server (-s), client, or --clean.
#[derive(Debug, Args)]
#[command(
    after_help = help::after_help("fifo"),
    mut_args(|arg| help::channel_options(&FIFO, arg))
)]
pub struct FifoArgs {
    #[command(flatten)]
    pub channel: ChannelArgs,
}

// `socket`: server (-s), client, or --clean.
#[derive(Debug, Args)]
#[command(
    after_help = help::after_help("socket"),
    mut_args(|arg| help::channel_options(&SOCKET, arg))
)]
pub struct SocketArgs {
    #[command(flatten)]
    pub channel: ChannelArgs,
}

// A channel's options; its args struct words their help
// (`Channel::option_help`).
#[derive(Debug, Args)]
pub struct ChannelArgs {
    #[command(flatten)]
    pub mode: ChannelModeArgs,
    /// Path of the channel; the server creates it (mode --mode) when missing
    #[arg(long = flag::PATH.long, value_name = "PATH")]
    pub path: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub create: CreateModeArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Client: send TEXT instead of {"count":i}: once, or -c N times
    #[arg(short = flag::MESSAGE.short, long = flag::MESSAGE.long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Client: seconds between messages (fractions and 0 allowed)
    #[arg(long = flag::INTERVAL.long, default_value_t = Seconds(default::SEND_INTERVAL), value_name = "SECS")]
    pub interval: Seconds,
}

// The modes a channel has: no --stat (`ls -l` and `stat` do that for a FIFO).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ChannelModeArgs {
    /// Create the channel if missing and print every message sent to it
    #[arg(short = flag::SERVER.short, long = flag::SERVER.long)]
    pub server: bool,
    /// Remove the channel (only such a channel: anything else at PATH is left alone)
    #[arg(long = flag::CLEAN.long)]
    pub clean: bool,
}

// `pipe`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("pipe"))]
pub struct PipeArgs {
    /// A message for the child (repeatable); default: three sample lines
    #[arg(short = flag::MESSAGE.short, long = flag::MESSAGE.long, value_name = "TEXT")]
    pub messages: Vec<String>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true, after_help = help::after_help("demo"))]
pub enum DemoCommand {
    /// P processes increment one shared counter without any synchronisation
    #[command(after_help = help::after_help("demo race"))]
    Race(CounterArgs),
    /// The same, each increment guarded by a POSIX named semaphore
    #[command(after_help = help::after_help("demo mutex"))]
    Mutex(CounterArgs),
    /// The same, with an atomic fetch-add on the shared counter
    #[command(after_help = help::after_help("demo atomic"))]
    Atomic(CounterArgs),
    /// race, mutex and atomic one after another, timed side by side
    #[command(after_help = help::after_help("demo cures"))]
    Cures(CounterArgs),
    /// Producers and one consumer over a ring buffer in shared memory
    Ring(RingArgs),
    /// Workers publish progress in a shared table; a monitor prints it live
    Scoreboard(ScoreboardArgs),
    /// A server keeps a shared array sorted while a client appends to it
    Sorted(SortedArgs),
    /// The posix shm text exchange over memfd_create: nothing in /dev/shm
    Memfd(MemfdArgs),
}

// Options of `demo race|mutex|atomic`.
#[derive(Debug, Args)]
pub struct CounterArgs {
    /// Number of processes
    #[arg(long, default_value_t = 4, value_parser = ranged::<u32>(1, 64), value_name = "P")]
    pub procs: u32,
    /// Increments per process
    #[arg(long, default_value_t = 1_000_000, value_parser = ranged::<u64>(1, 100_000_000), value_name = "N")]
    pub iters: u64,
}

// Options of `demo ring`.
#[derive(Debug, Args)]
#[command(after_help = help::after_help("demo ring"))]
pub struct RingArgs {
    /// Producer processes (more than one claim slots with compare-and-swap)
    #[arg(long, default_value_t = 2, value_parser = ranged::<u32>(1, 64), value_name = "P")]
    pub producers: u32,
    /// Items per producer
    #[arg(long, default_value_t = 100_000, value_parser = ranged::<u64>(1, 10_000_000), value_name = "N")]
    pub items: u64,
    /// Slots in the ring
    #[arg(long, default_value_t = 64, value_parser = ranged::<u32>(1, 65_536), value_name = "S")]
    pub slots: u32,
}

// Options of `demo scoreboard`.
#[derive(Debug, Args)]
#[command(after_help = help::after_help("demo scoreboard"))]
pub struct ScoreboardArgs {
    /// Worker processes
    #[arg(short = 'w', long, default_value_t = 4, value_parser = ranged::<u32>(1, 64), value_name = "W")]
    pub workers: u32,
    /// Items each worker processes (each takes about (worker+1) x 0.5 ms)
    #[arg(long, default_value_t = 800, value_parser = ranged::<u64>(1, 1_000_000), value_name = "N")]
    pub items: u64,
}

// Options of `demo sorted`.
#[derive(Debug, Args)]
#[command(after_help = help::after_help("demo sorted"))]
pub struct SortedArgs {
    /// Numbers the client appends
    #[arg(short = 'c', long, default_value_t = 12, value_parser = ranged::<u32>(1, 4096), value_name = "N")]
    pub count: u32,
    /// Seconds between the client's appends (fractions and 0 allowed)
    #[arg(long, default_value = "0.1", value_name = "SECS")]
    pub interval: Seconds,
}

// Options of `demo memfd`.
#[derive(Debug, Args)]
#[command(after_help = help::after_help("demo memfd"), mut_args(help::memfd_options))]
pub struct MemfdArgs {
    /// Create the segment, publish where to find it, and watch its text
    #[arg(short = flag::SERVER.short, long = flag::SERVER.long)]
    pub server: bool,
    /// Name of the exchange (letters, digits, '.', '_', '-'): the server
    /// publishes its pid and descriptor under it
    #[arg(short, long, default_value = "test")]
    pub name: String,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub shm: ShmArgs,
    /// Client: also try to shrink the segment to 0 bytes; the seal must refuse
    #[arg(long = flag::SHRINK.long)]
    pub shrink: bool,
}

// `bench`
#[derive(Debug, Args)]
#[command(after_help = help::after_help("bench"))]
pub struct BenchArgs {
    /// Mechanisms to measure (comma-separated); default all
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub mech: Vec<BenchMech>,
    /// Message sizes in bytes (16 to 1048576, comma-separated): every
    /// mechanism runs at each
    #[arg(long, value_delimiter = ',', default_value = "64",
          value_parser = ranged::<u32>(16, 1_048_576), value_name = "BYTES")]
    pub size: Vec<u32>,
    /// Measured round trips (messages with --pattern stream) per mechanism
    #[arg(short = 'c', long, value_name = "N", conflicts_with = "duration",
          value_parser = ranged::<u64>(1, u64::MAX))]
    pub count: Option<u64>,
    /// Measure each mechanism for SECS seconds (default 0.3)
    #[arg(long, value_name = "SECS")]
    pub duration: Option<Seconds>,
    /// Unmeasured round trips before measuring
    #[arg(long, default_value_t = 1000, value_parser = ranged::<u64>(0, u64::MAX), value_name = "N")]
    pub warmup: u64,
    /// Where the two processes run: as the scheduler decides (none), on one
    /// CPU (same), on two CPUs (split); a comma-separated list runs each
    #[arg(long, value_delimiter = ',', value_name = "HOW")]
    pub pin: Vec<BenchPin>,
    /// Measure only the floor: one atomic word bounced between the two
    /// processes, what the hardware allows for a round trip
    #[arg(long, conflicts_with_all = ["mech", "size", "pattern", "svg"])]
    pub floor: bool,
    /// Skip the floor (measured first in every pingpong run, which reports
    /// each round trip as a multiple of it)
    #[arg(long, conflicts_with = "floor")]
    pub no_floor: bool,
    /// What is measured: round trips (pingpong) or one-way throughput (stream)
    #[arg(long, default_value = "pingpong", value_name = "P")]
    pub pattern: BenchPattern,
    /// Also draw the results into FILE (SVG): a bar chart for one size, the
    /// latency and throughput curves against size for several
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
    /// Test hook `--corrupt-after N`: the child corrupts one byte of its
    /// reply after N messages. Not a clap field: see `parse`.
    #[arg(skip)]
    pub corrupt_after: Option<u64>,
}

// bench's own types are the values: one list of mechanisms, placements and patterns.
pub use examples_ipc::bench::{Mech as BenchMech, Pattern as BenchPattern, Pin as BenchPin};
