//! `tour`: every mechanism end to end in one command. Each step starts this
//! very binary as a server child, runs clients against it, shows both sides'
//! output as it happens, and removes the object, also when a step fails.
//! Names and keys are unique to this run, so a user's `/test` is never touched.
//!
//! The children's command lines are written from specs ([`Task::to_args`]),
//! with the flag spellings the parser is built from, and the tour knows how
//! many lines each server prints from the server's `--count` and what each
//! client sends.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use crate::channel;
use crate::error::Chain;
use crate::ipc::Creation;
use crate::ipc::process::{ChildGuard, exit_status};
use crate::ipc::sysv::free_key;
use crate::ipc::sysv_msq::Msq;
use crate::ipc::sysv_sem::Sem;
use crate::ipc::sysv_shm::Shm;
use crate::object::{Kind, ObjectRef};
use crate::output::Out;
use crate::signal::Cancel;
use crate::spec::{
    self, Channel, ChannelRole, Create, Pipe, PosixMsq, PosixMsqRole, QueueAttrs, SegmentAttrs,
    SemAction, SemAttrs, SemClient, SemRole, Send, Serve, ShmRole, SysvMsq, SysvMsqRole, Task,
    Tour, TourStep, Watch, default,
};
use crate::target::{PosixName, SysvKey};

/// How long any one expected line may take: generous for a loaded machine,
/// and every server in the tour also has its own --timeout.
const LINE_DEADLINE: Duration = Duration::from_secs(15);

/// One client run and the exit status the step expects of it (a busy
/// semaphore is shown on purpose).
struct ClientRun {
    task: Task,
    expect_code: i32,
}

/// One mechanism end to end.
struct Step {
    id: TourStep,
    title: String,
    /// None for a step without a server (the pipe: parent and child are one command).
    server: Option<Task>,
    clients: Vec<ClientRun>,
    /// None when the step leaves nothing to remove.
    clean: Option<Task>,
}

impl Step {
    /// The server lines after its start line and before any client runs:
    /// what `--count` leaves when the clients' lines are taken away (the
    /// first print of a shm or sem server).
    fn initial_lines(&self) -> u64 {
        let count = match &self.server {
            Some(task) => served(task).count.unwrap_or(0),
            None => 0,
        };
        let caused: u64 = self.clients.iter().map(ClientRun::server_lines).sum();
        count.saturating_sub(caused)
    }
}

impl ClientRun {
    /// The server lines this client causes: one per message it sends, one
    /// for a text it writes or a unit it takes or gives, none when it fails.
    fn server_lines(&self) -> u64 {
        if self.expect_code != 0 {
            return 0;
        }
        match &self.task {
            Task::PosixMsq(PosixMsq {
                role: PosixMsqRole::Client { send, .. },
                ..
            })
            | Task::SysvMsq(SysvMsq {
                role: SysvMsqRole::Client { send, .. },
                ..
            })
            | Task::Channel(Channel {
                role: ChannelRole::Client(send),
                ..
            }) => send.count,
            _ => 1,
        }
    }
}

/// How a server task serves (`--count`, `--timeout`).
fn served(task: &Task) -> Serve {
    match task {
        Task::PosixMsq(PosixMsq {
            role: PosixMsqRole::Server(serve),
            ..
        })
        | Task::SysvMsq(SysvMsq {
            role: SysvMsqRole::Server { serve, .. },
            ..
        })
        | Task::Channel(Channel {
            role: ChannelRole::Server { serve, .. },
            ..
        }) => *serve,
        Task::PosixShm(spec::Shm {
            role: ShmRole::Server { serve, .. },
            ..
        })
        | Task::SysvShm(spec::Shm {
            role: ShmRole::Server { serve, .. },
            ..
        })
        | Task::PosixSem(spec::Sem {
            role: SemRole::Server { serve, .. },
            ..
        })
        | Task::SysvSem(spec::Sem {
            role: SemRole::Server { serve, .. },
            ..
        }) => *serve,
        _ => Serve::default(),
    }
}

/// Every server of the tour: `count` lines, and its own deadline.
fn serve(count: u64) -> Serve {
    Serve {
        count: Some(count),
        timeout: Some(LINE_DEADLINE),
    }
}

/// A client's messages: `count` of them (the text, or `{"count":i}`), none
/// waiting for the next.
fn send(count: u64, text: Option<&str>) -> Send {
    Send {
        count,
        text: text.map(String::from),
        interval: if count > 1 {
            Duration::ZERO
        } else {
            default::SEND_INTERVAL
        },
        nonblock: false,
    }
}

fn create<A>(attrs: A) -> Create<A> {
    Create {
        policy: Creation::OpenOrCreate,
        mode: default::MODE,
        attrs,
    }
}

fn client(task: Task, expect_code: i32) -> ClientRun {
    ClientRun { task, expect_code }
}

/// The tour's shm watch: every 50 ms, printing only a change.
const WATCH: Watch = Watch {
    interval: Duration::from_millis(50),
    on_change: true,
    diff: false,
};

/// Shared memory of either family: the server prints the empty segment,
/// then the client's text.
fn shm_step<T: Clone>(kind: Kind, title: &str, target: T, task: fn(spec::Shm<T>) -> Task) -> Step {
    let shm = |role| spec::Shm {
        target: target.clone(),
        create: create(SegmentAttrs {
            size: default::SEGMENT_SIZE,
        }),
        role,
    };
    Step {
        id: TourStep::Object(kind),
        title: format!("{title}: the server watches the text the client writes"),
        server: Some(task(shm(ShmRole::Server {
            serve: serve(2),
            watch: WATCH,
        }))),
        clients: vec![client(
            task(shm(ShmRole::Client {
                text: Some("hello from the tour".into()),
            })),
            0,
        )],
        clean: None,
    }
}

/// A semaphore of either family with one unit: take it, fail to take
/// another (exit 1, shown on purpose), give it back.
fn sem_step<T: Clone>(kind: Kind, title: &str, target: T, task: fn(spec::Sem<T>) -> Task) -> Step {
    let sem = |role| spec::Sem {
        target: target.clone(),
        role,
    };
    let take = |action| {
        sem(SemRole::Client(SemClient {
            action,
            undo: false,
        }))
    };
    Step {
        id: TourStep::Object(kind),
        title: format!("{title}: take the only unit, fail to take another, give it back"),
        server: Some(task(sem(SemRole::Server {
            create: create(SemAttrs { value: 1 }),
            serve: serve(3),
            interval: WATCH.interval,
        }))),
        clients: vec![
            client(task(take(SemAction::Take)), 0),
            client(task(take(SemAction::Take)), 1),
            client(task(take(SemAction::Release)), 0),
        ],
        clean: None,
    }
}

/// A POSIX queue: the server prints the three messages one client sends.
fn posix_msq_step(name: PosixName) -> Step {
    let msq = |role| {
        Task::PosixMsq(PosixMsq {
            name: name.clone(),
            create: create(QueueAttrs {
                max_msgs: default::MAX_MSGS,
                msg_size: default::MSG_SIZE,
            }),
            role,
        })
    };
    Step {
        id: TourStep::Object(Kind::PosixMsq),
        title: "POSIX message queue: the server prints each message the client sends".into(),
        server: Some(msq(PosixMsqRole::Server(serve(3)))),
        clients: vec![client(
            msq(PosixMsqRole::Client {
                send: send(3, None),
                priority: default::PRIORITY,
            }),
            0,
        )],
        clean: None,
    }
}

/// A System V queue: two clients, the second with a type of its own.
fn sysv_msq_step(key: SysvKey) -> Step {
    let msq = |role| {
        Task::SysvMsq(SysvMsq {
            key,
            create: create(()),
            role,
        })
    };
    Step {
        id: TourStep::Object(Kind::SysvMsq),
        title: "System V message queue: the server prints each message with its type".into(),
        server: Some(msq(SysvMsqRole::Server {
            serve: serve(3),
            selector: 0,
        })),
        clients: vec![
            client(
                msq(SysvMsqRole::Client {
                    send: send(2, None),
                    mtype: 1,
                }),
                0,
            ),
            client(
                msq(SysvMsqRole::Client {
                    send: send(1, Some("hello")),
                    mtype: 7,
                }),
                0,
            ),
        ],
        clean: None,
    }
}

/// A channel at `path`: two writers in turn, the server outlives both.
fn channel_step(channel: &dyn channel::Channel, path: PathBuf) -> Step {
    let task = |role| {
        Task::Channel(Channel {
            name: channel.name(),
            path: path.clone(),
            role,
        })
    };
    Step {
        id: TourStep::Channel(channel.name()),
        title: format!(
            "{}: two writers in turn, the server outlives both",
            channel.title()
        ),
        server: Some(task(ChannelRole::Server {
            mode: default::MODE,
            serve: serve(3),
        })),
        clients: vec![
            client(task(ChannelRole::Client(send(2, None))), 0),
            client(
                task(ChannelRole::Client(send(1, Some("a second writer")))),
                0,
            ),
        ],
        clean: Some(task(ChannelRole::Clean)),
    }
}

/// Every step's id, in tour order: the six kinds, the channels, the pipes.
pub fn all_steps() -> Vec<TourStep> {
    let objects = Kind::ALL.into_iter().map(TourStep::Object);
    let channels = channel::ALL.iter().map(|c| TourStep::Channel(c.name()));
    objects.chain(channels).chain([TourStep::Pipe]).collect()
}

/// `posix-msq` ... `sysv-sem` (a kind's name), a channel's name, or `pipe`.
impl std::str::FromStr for TourStep {
    type Err = String;

    fn from_str(s: &str) -> Result<TourStep, String> {
        all_steps()
            .into_iter()
            .find(|step| step.name() == s)
            .ok_or_else(|| format!("'{s}' is not a step of the tour"))
    }
}

/// Every step, in tour order, on names and keys of this run (`tag`).
fn steps(tag: &str) -> Result<Vec<Step>> {
    let name = |mech: &str| -> Result<PosixName> {
        format!("/eipc-tour-{tag}-{mech}")
            .parse()
            .map_err(|e: String| anyhow!(e))
    };
    let seed = tag.parse::<u32>().unwrap_or_else(|_| std::process::id());
    // Keys no object uses now, so the tour's servers create their objects.
    let shm_key = SysvKey(free_key::<Shm>(seed));
    let sem_key = SysvKey(free_key::<Sem>(seed));
    let mut steps = vec![
        posix_msq_step(name("msq")?),
        shm_step(
            Kind::PosixShm,
            "POSIX shared memory",
            name("shm")?,
            Task::PosixShm,
        ),
        sem_step(
            Kind::PosixSem,
            "POSIX named semaphore",
            name("sem")?,
            Task::PosixSem,
        ),
        sysv_msq_step(SysvKey(free_key::<Msq>(seed))),
        shm_step(
            Kind::SysvShm,
            "System V shared memory",
            shm_key,
            Task::SysvShm,
        ),
        sem_step(Kind::SysvSem, "System V semaphore", sem_key, Task::SysvSem),
    ];
    for channel in channel::ALL {
        let file = format!("eipc-tour-{tag}.{}", channel.name());
        steps.push(channel_step(*channel, std::env::temp_dir().join(file)));
    }
    steps.push(Step {
        id: TourStep::Pipe,
        title: "Anonymous pipes: a parent and its child, one pipe each way".into(),
        server: None,
        clients: vec![client(
            Task::Pipe(Pipe {
                messages: Vec::new(),
            }),
            0,
        )],
        clean: None,
    });
    // Each object's `--clean`, written from the server's own target.
    for step in &mut steps {
        if step.clean.is_none() {
            step.clean = step.server.as_ref().and_then(object_of).map(Task::Clean);
        }
    }
    Ok(steps)
}

/// The object a server task serves, for its `--clean`.
fn object_of(task: &Task) -> Option<ObjectRef> {
    Some(match task {
        Task::PosixMsq(s) => ObjectRef::posix(Kind::PosixMsq, s.name.clone()),
        Task::PosixShm(s) => ObjectRef::posix(Kind::PosixShm, s.target.clone()),
        Task::PosixSem(s) => ObjectRef::posix(Kind::PosixSem, s.target.clone()),
        Task::SysvMsq(s) => ObjectRef::sysv_key(Kind::SysvMsq, s.key),
        Task::SysvShm(s) => ObjectRef::sysv_key(Kind::SysvShm, s.target),
        Task::SysvSem(s) => ObjectRef::sysv_key(Kind::SysvSem, s.target),
        _ => return None,
    })
}

pub fn run(tour: &Tour, out: &mut Out) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let tag = std::process::id().to_string();
    // Ctrl-C reaches the children too (one process group): they end, and
    // the tour removes what the step made before it stops, instead of dying
    // with the objects left behind.
    let cancel = Cancel::install().context("cannot install the signal handlers")?;
    let mut failed = Vec::new();
    let mut ran = 0;
    for step in steps(&tag)? {
        if !tour.only.is_empty() && !tour.only.contains(&step.id) {
            continue;
        }
        if cancel.is_canceled() {
            break;
        }
        ran += 1;
        let shown = Shown::new(&step, out.is_json());
        shown.step_start(out)?;
        let result = run_step(&exe, &shown, out);
        // Remove the object whatever happened, and before showing it: when
        // stdout is gone (`tour | head`), showing fails, and the object must
        // not stay behind. A missing object is fine here.
        if let Some(clean) = &step.clean {
            let clean = shown.child_args(clean);
            // In a process group of its own, so a second Ctrl-C cannot stop it.
            let removed = Command::new(&exe).args(&clean).process_group(0).output();
            shown.command(out, Role::Clean, &clean, false)?;
            if let Ok(o) = removed {
                for text in String::from_utf8_lossy(&o.stdout).lines() {
                    shown.line(out, &Line::new(Role::Clean, false, text))?;
                }
            }
        }
        if cancel.is_canceled() {
            // The step was cut short on purpose: not a failure to report.
            break;
        }
        shown.step_result(out, result.as_ref().err())?;
        if result.is_err() {
            failed.push(step.title);
        }
        out.flush()?;
    }
    if cancel.is_canceled() {
        out.canceled()?;
        return Ok(ExitCode::SUCCESS);
    }
    let done = Done {
        ok: failed.is_empty(),
        steps: ran,
        failed: &failed,
    };
    if out.is_json() || failed.is_empty() {
        out.line(&done)?;
    }
    if !failed.is_empty() {
        bail!(
            "{} failed: {}",
            crate::output::plural(failed.len(), "tour step", "tour steps"),
            failed.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Which process of a step printed a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Server,
    Client,
    /// The `--clean` run after the step.
    Clean,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Clean => "clean",
        }
    }
}

/// One line a child printed.
struct Line {
    role: Role,
    stderr: bool,
    text: String,
}

impl Line {
    fn new(role: Role, stderr: bool, text: &str) -> Self {
        Line {
            role,
            stderr,
            text: text.to_string(),
        }
    }
}

/// How one step is shown: as text for a reader, or with --json as JSON
/// lines, one record per event of the tour. The children then run with
/// --json too, and each line they print is passed on as the JSON object it
/// is (see the records below).
struct Shown<'s> {
    step: &'s Step,
    json: bool,
}

impl<'s> Shown<'s> {
    fn new(step: &'s Step, json: bool) -> Self {
        Shown { step, json }
    }

    fn id(&self) -> &'static str {
        self.step.id.name()
    }

    /// The arguments a child runs with: `--json` first when the tour prints JSON.
    fn child_args(&self, task: &Task) -> Vec<String> {
        let json = self.json.then(|| "--json".to_string());
        json.into_iter().chain(task.to_args()).collect()
    }

    fn step_start(&self, out: &mut Out) -> Result<()> {
        out.line(&StepStart {
            step: self.id(),
            title: &self.step.title,
        })?;
        Ok(out.flush()?)
    }

    fn command(&self, out: &mut Out, role: Role, args: &[String], background: bool) -> Result<()> {
        out.line(&Started {
            step: self.id(),
            role,
            args,
            background,
        })?;
        Ok(out.flush()?)
    }

    fn line(&self, out: &mut Out, line: &Line) -> Result<()> {
        // A child's JSON line is passed on as its object; anything else
        // (standard error is always text) as text.
        let record = (self.json && !line.stderr)
            .then(|| serde_json::from_str::<serde_json::Value>(&line.text).ok())
            .flatten()
            .filter(serde_json::Value::is_object);
        let body = match record {
            Some(record) => Body::Record(record),
            None => Body::Text(&line.text),
        };
        out.line(&Output {
            step: self.id(),
            role: line.role,
            stream: if line.stderr { "stderr" } else { "stdout" },
            body,
        })?;
        Ok(())
    }

    /// A client's exit status: in text only when it is not 0.
    fn client_exit(&self, out: &mut Out, code: i32, expected: i32) -> Result<()> {
        if self.json || code != 0 {
            out.line(&Exit {
                step: self.id(),
                role: Role::Client,
                code,
                expected,
            })?;
        }
        Ok(out.flush()?)
    }

    /// The end of a step: in text only when it failed.
    fn step_result(&self, out: &mut Out, error: Option<&anyhow::Error>) -> Result<()> {
        if self.json || error.is_some() {
            out.line(&StepResult {
                step: self.id(),
                ok: error.is_none(),
                error: error.map(|e| Chain(e).to_string()),
            })?;
        }
        Ok(out.flush()?)
    }
}

fn run_step(exe: &Path, shown: &Shown, out: &mut Out) -> Result<()> {
    let step = shown.step;
    let Some(server_task) = &step.server else {
        return run_clients(exe, shown, None, out);
    };
    let server_args = shown.child_args(server_task);
    shown.command(out, Role::Server, &server_args, true)?;
    let mut child = Command::new(exe)
        .args(&server_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the server")?;
    // Kills and reaps the server when the step ends early.
    let mut server = ChildGuard::spawned(&child);
    let lines = forward_lines(&mut child)?;
    expect_lines(shown, &lines, 1 + step.initial_lines(), out)?;
    run_clients(exe, shown, Some(&lines), out)?;
    let status = server.reap().context("cannot wait for the server")?;
    // Whatever the server printed last (its stderr on failure).
    while let Ok(line) = lines.try_recv() {
        shown.line(out, &line)?;
    }
    out.flush()?;
    match exit_status(status) {
        Some(status) if status.success() => {}
        Some(status) => bail!("the server exited with {status}"),
        None => bail!("the server ended: {status:?}"),
    }
    Ok(())
}

/// Run the step's clients in turn; with a server, wait for the lines each causes.
fn run_clients(
    exe: &Path,
    shown: &Shown,
    lines: Option<&Receiver<Line>>,
    out: &mut Out,
) -> Result<()> {
    for run in &shown.step.clients {
        let args = shown.child_args(&run.task);
        shown.command(out, Role::Client, &args, false)?;
        let o = Command::new(exe)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run the client")?;
        for text in String::from_utf8_lossy(&o.stdout).lines() {
            shown.line(out, &Line::new(Role::Client, false, text))?;
        }
        for text in String::from_utf8_lossy(&o.stderr).lines() {
            shown.line(out, &Line::new(Role::Client, true, text))?;
        }
        // A client killed by a signal reads as a shell shows it: 128 + signal.
        let signaled = o.status.signal().map(|sig| 128 + sig);
        let code = o.status.code().or(signaled).unwrap_or(-1);
        shown.client_exit(out, code, run.expect_code)?;
        if code != run.expect_code {
            bail!("the client exited {code}, expected {}", run.expect_code);
        }
        if let Some(lines) = lines {
            expect_lines(shown, lines, run.server_lines(), out)?;
        }
    }
    Ok(())
}

/// Stream the server's stdout and stderr into one channel of lines.
fn forward_lines(child: &mut Child) -> Result<Receiver<Line>> {
    let (tx, rx) = channel();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no server stdout"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("no server stderr"))?;
    let tx_err = tx.clone();
    std::thread::spawn(move || {
        for text in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(Line::new(Role::Server, false, &text)).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for text in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx_err.send(Line::new(Role::Server, true, &text)).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Print the next `n` server lines, failing if they do not come in time.
fn expect_lines(shown: &Shown, lines: &Receiver<Line>, n: u64, out: &mut Out) -> Result<()> {
    let deadline = Instant::now() + LINE_DEADLINE;
    for _ in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                shown.line(out, &line)?;
                out.flush()?;
                if line.stderr {
                    bail!("the server reported an error");
                }
            }
            Err(RecvTimeoutError::Timeout) => bail!(
                "the server printed nothing for {} s",
                LINE_DEADLINE.as_secs()
            ),
            Err(RecvTimeoutError::Disconnected) => bail!("the server exited early"),
        }
    }
    Ok(())
}

// ---- Records ----
//
// With --json: `step` when a step starts; `command` for each child
// started, `args` as given to this program; `output` for each line a child
// printed, its own JSON object under `record` or `text` for what is not
// JSON; `exit` after each client; `result` when the step ends; `done` at
// the end.

/// `== title ==`
#[derive(Serialize)]
struct StepStart<'a> {
    step: &'static str,
    title: &'a str,
}

impl fmt::Display for StepStart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n== {} ==", self.title)
    }
}

crate::record_kind!(StepStart<'_>, "step");

/// `$ examples-ipc posix msq -n /x -s -c 3 --timeout 15 &`
#[derive(Serialize)]
struct Started<'a> {
    step: &'static str,
    role: Role,
    args: &'a [String],
    background: bool,
}

impl fmt::Display for Started<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$ examples-ipc")?;
        for a in self.args {
            if a.contains(' ') || a.is_empty() {
                write!(f, " '{a}'")?;
            } else {
                write!(f, " {a}")?;
            }
        }
        if self.background {
            f.write_str(" &")?;
        }
        Ok(())
    }
}

crate::record_kind!(Started<'_>, "command");

/// What a child printed: its JSON object, or a line of text.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Body<'a> {
    Record(serde_json::Value),
    Text(&'a str),
}

/// `  server | line`, `  client ! error line`, or a clean run's line.
#[derive(Serialize)]
struct Output<'a> {
    step: &'static str,
    role: Role,
    stream: &'static str,
    #[serde(flatten)]
    body: Body<'a>,
}

impl fmt::Display for Output<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match &self.body {
            Body::Text(text) => text,
            // Only with --json, which prints the record instead.
            Body::Record(_) => "",
        };
        let sep = if self.stream == "stderr" { '!' } else { '|' };
        match self.role {
            Role::Clean => write!(f, "  {text}"),
            role => write!(f, "  {} {sep} {text}", role.name()),
        }
    }
}

crate::record_kind!(Output<'_>, "output");

/// `  client exit status 1 (as expected)`
#[derive(Serialize)]
struct Exit {
    step: &'static str,
    role: Role,
    code: i32,
    expected: i32,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "  client exit status {}", self.code)?;
        if self.code == self.expected {
            f.write_str(" (as expected)")?;
        }
        Ok(())
    }
}

crate::record_kind!(Exit, "exit");

/// `  step failed: ...`
#[derive(Serialize)]
struct StepResult {
    step: &'static str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl fmt::Display for StepResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(f, "  step failed: {e}"),
            None => f.write_str("  step ran"),
        }
    }
}

crate::record_kind!(StepResult, "result");

/// The tour's last line.
#[derive(Serialize)]
struct Done<'a> {
    ok: bool,
    steps: usize,
    failed: &'a [String],
}

impl fmt::Display for Done<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\nEvery step ran end to end and removed what it made.")
    }
}

crate::record_kind!(Done<'_>, "done");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lines_add_up_to_each_servers_count() {
        for step in steps("4242").unwrap() {
            let Some(server) = &step.server else {
                continue;
            };
            let count = served(server).count.unwrap();
            let caused: u64 = step.clients.iter().map(ClientRun::server_lines).sum();
            assert_eq!(step.initial_lines() + caused, count, "{}", step.title);
            assert!(step.clean.is_some(), "{}", step.title);
        }
    }
}
