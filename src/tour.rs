//! `tour`: every mechanism end to end in one command. Each step starts this
//! very binary as a server child, runs clients against it, shows both sides'
//! output as it happens, and removes the object, also when a step fails.
//! Names and keys are unique to this run, so a user's `/test` is never touched.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::ValueEnum as _;
use serde_json::json;

use crate::cli::{TourArgs, TourStep};
use crate::ipc::process::{ChildGuard, exit_status};
use crate::ipc::sysv::free_key;
use crate::ipc::sysv_msq::Msq;
use crate::ipc::sysv_sem::Sem;
use crate::ipc::sysv_shm::Shm;
use crate::output::Out;
use crate::target::SysvKey;

/// How long any one expected line may take: generous for a loaded machine,
/// and every server in the tour also has its own --timeout.
const LINE_DEADLINE: Duration = Duration::from_secs(15);

/// One client run and what the server prints because of it.
pub struct ClientRun {
    pub args: Vec<String>,
    /// Exit status the step expects (a busy semaphore is shown on purpose).
    pub expect_code: i32,
    /// Server lines this client causes; the tour waits for them before going on.
    pub server_lines: usize,
}

/// One mechanism end to end.
pub struct Step {
    pub id: TourStep,
    pub title: String,
    /// Empty for a step without a server (the pipe: parent and child are one command).
    pub server: Vec<String>,
    /// Server lines after the start line and before any client runs.
    pub initial_lines: usize,
    pub clients: Vec<ClientRun>,
    /// Empty when the step leaves nothing to remove.
    pub clean: Vec<String>,
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `target` (e.g. `posix shm -n NAME`) followed by `rest`.
fn at(target: &[&str], rest: &[&str]) -> Vec<String> {
    target.iter().chain(rest).map(|s| s.to_string()).collect()
}

fn client(args: Vec<String>, expect_code: i32, server_lines: usize) -> ClientRun {
    ClientRun {
        args,
        expect_code,
        server_lines,
    }
}

/// A message queue of either family: `clients` send three messages in all.
fn msq_step(id: TourStep, title: &str, target: &[&str], clients: Vec<ClientRun>) -> Step {
    Step {
        id,
        title: title.into(),
        server: at(target, &["-s", "--count", "3", "--timeout", "15"]),
        initial_lines: 0,
        clients,
        clean: at(target, &["--clean"]),
    }
}

/// Shared memory of either family: the server prints the empty segment,
/// then the client's text.
fn shm_step(id: TourStep, kind: &str, target: &[&str]) -> Step {
    Step {
        id,
        title: format!("{kind}: the server watches the text the client writes"),
        server: at(
            target,
            &[
                "-s",
                "--interval",
                "0.05",
                "--on-change",
                "--count",
                "2",
                "--timeout",
                "15",
            ],
        ),
        initial_lines: 1,
        clients: vec![client(at(target, &["-m", "hello from the tour"]), 0, 1)],
        clean: at(target, &["--clean"]),
    }
}

/// A semaphore of either family with one unit: take it, fail to take
/// another (exit 1, shown on purpose), give it back.
fn sem_step(id: TourStep, kind: &str, target: &[&str]) -> Step {
    Step {
        id,
        title: format!("{kind}: take the only unit, fail to take another, give it back"),
        server: at(
            target,
            &[
                "-s",
                "--value",
                "1",
                "--interval",
                "0.05",
                "--count",
                "3",
                "--timeout",
                "15",
            ],
        ),
        initial_lines: 1,
        clients: vec![
            client(at(target, &[]), 0, 1),
            client(at(target, &[]), 1, 0),
            client(at(target, &["-r"]), 0, 1),
        ],
        clean: at(target, &["--clean"]),
    }
}

/// Every step, in tour order.
fn steps(tag: &str) -> Vec<Step> {
    let msq = format!("/eipc-tour-{tag}-msq");
    let shm = format!("/eipc-tour-{tag}-shm");
    let sem = format!("/eipc-tour-{tag}-sem");
    let seed = tag.parse::<u32>().unwrap_or_else(|_| std::process::id());
    // Keys no object uses now, so the tour's servers create their objects.
    let sysv_msq = SysvKey(free_key::<Msq>(seed)).to_string();
    let sysv_shm = SysvKey(free_key::<Shm>(seed)).to_string();
    let sysv_sem = SysvKey(free_key::<Sem>(seed)).to_string();
    let fifo_path = std::env::temp_dir().join(format!("eipc-tour-{tag}.fifo"));
    let fifo = fifo_path.to_string_lossy();
    let posix_msq = ["posix", "msq", "-n", &msq];
    let sysv_msq = ["sysv", "msq", "-k", &sysv_msq];
    vec![
        msq_step(
            TourStep::PosixMsq,
            "POSIX message queue: the server prints each message the client sends",
            &posix_msq,
            vec![client(
                at(&posix_msq, &["-c", "3", "--interval", "0"]),
                0,
                3,
            )],
        ),
        shm_step(
            TourStep::PosixShm,
            "POSIX shared memory",
            &["posix", "shm", "-n", &shm],
        ),
        sem_step(
            TourStep::PosixSem,
            "POSIX named semaphore",
            &["posix", "sem", "-n", &sem],
        ),
        msq_step(
            TourStep::SysvMsq,
            "System V message queue: the server prints each message with its type",
            &sysv_msq,
            vec![
                client(at(&sysv_msq, &["-c", "2", "--interval", "0"]), 0, 2),
                client(
                    at(&sysv_msq, &["-m", "hello", "--type", "7", "-c", "1"]),
                    0,
                    1,
                ),
            ],
        ),
        shm_step(
            TourStep::SysvShm,
            "System V shared memory",
            &["sysv", "shm", "-k", &sysv_shm],
        ),
        sem_step(
            TourStep::SysvSem,
            "System V semaphore",
            &["sysv", "sem", "-k", &sysv_sem],
        ),
        fifo_step(&fifo),
        Step {
            id: TourStep::Pipe,
            title: "Anonymous pipes: a parent and its child, one pipe each way".into(),
            server: Vec::new(),
            initial_lines: 0,
            clients: vec![client(args(&["pipe"]), 0, 0)],
            clean: Vec::new(),
        },
    ]
}

/// A FIFO at `fifo`: two writers in turn, the server outlives both.
fn fifo_step(fifo: &str) -> Step {
    Step {
        id: TourStep::Fifo,
        title: "Named pipe (FIFO): two writers in turn, the server outlives both".into(),
        server: args(&[
            "fifo",
            "-s",
            "--path",
            fifo,
            "--count",
            "3",
            "--timeout",
            "15",
        ]),
        initial_lines: 0,
        clients: vec![
            client(
                args(&["fifo", "--path", fifo, "-c", "2", "--interval", "0"]),
                0,
                2,
            ),
            client(
                args(&["fifo", "--path", fifo, "-m", "a second writer", "-c", "1"]),
                0,
                1,
            ),
        ],
        clean: args(&["fifo", "--clean", "--path", fifo]),
    }
}

pub fn run(args: &TourArgs, out: &mut Out) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let tag = std::process::id().to_string();
    let mut failed = Vec::new();
    let mut ran = 0;
    for step in steps(&tag) {
        if !args.only.is_empty() && !args.only.contains(&step.id) {
            continue;
        }
        ran += 1;
        let tour = Tour::new(&step, out.is_json());
        tour.step_start(out)?;
        let result = run_step(&exe, &tour, out);
        // Remove the object whatever happened; a missing object is fine here.
        if !step.clean.is_empty() {
            let clean = tour.child_args(&step.clean);
            tour.command(out, Role::Clean, &clean, false)?;
            if let Ok(o) = Command::new(&exe).args(&clean).output() {
                for text in String::from_utf8_lossy(&o.stdout).lines() {
                    tour.line(out, &Line::new(Role::Clean, false, text))?;
                }
            }
        }
        tour.step_result(out, result.as_ref().err())?;
        if result.is_err() {
            failed.push(step.title);
        }
        out.flush()?;
    }
    if out.is_json() {
        out.record(
            "",
            || json!({"kind": "done", "ok": failed.is_empty(), "steps": ran, "failed": failed}),
        )?;
    } else if failed.is_empty() {
        writeln!(
            out.writer(),
            "\nEvery step ran end to end and removed what it made."
        )?;
    }
    if !failed.is_empty() {
        bail!(
            "{} tour step(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn shown(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(' ') || a.is_empty() {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect();
    format!("examples-ipc {}", quoted.join(" "))
}

/// Which process of a step printed a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
/// is:
///
/// - `{"kind":"step","step":"posix-msq","title":...}` when a step starts;
/// - `{"kind":"command","step":...,"role":"server"|"client"|"clean","args":[...],"background":bool}`
///   for each child started, `args` as given to this program;
/// - `{"kind":"output","step":...,"role":...,"stream":"stdout","record":{...}}`
///   for each line a child printed: its own JSON object, or `"text"` for
///   what is not JSON (standard error is always text);
/// - `{"kind":"exit","step":...,"role":"client","code":N,"expected":N}` after each client;
/// - `{"kind":"result","step":...,"ok":bool,"error":...}` when the step ends;
/// - `{"kind":"done","ok":bool,"steps":N,"failed":[titles]}` at the end.
struct Tour<'s> {
    step: &'s Step,
    json: bool,
}

impl<'s> Tour<'s> {
    fn new(step: &'s Step, json: bool) -> Self {
        Tour { step, json }
    }

    fn id(&self) -> String {
        self.step
            .id
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }

    /// The arguments a child runs with: `--json` first when the tour prints JSON.
    fn child_args(&self, args: &[String]) -> Vec<String> {
        let json = self.json.then(|| "--json".to_string());
        json.into_iter().chain(args.iter().cloned()).collect()
    }

    fn step_start(&self, out: &mut Out) -> Result<()> {
        out.record(
            format_args!("\n== {} ==", self.step.title),
            || json!({"kind": "step", "step": self.id(), "title": self.step.title}),
        )?;
        Ok(out.flush()?)
    }

    fn command(&self, out: &mut Out, role: Role, args: &[String], background: bool) -> Result<()> {
        let amp = if background { " &" } else { "" };
        out.record(format_args!("$ {}{amp}", shown(args)), || {
            json!({"kind": "command", "step": self.id(), "role": role.name(),
                   "args": args, "background": background})
        })?;
        Ok(out.flush()?)
    }

    fn line(&self, out: &mut Out, line: &Line) -> Result<()> {
        let sep = if line.stderr { '!' } else { '|' };
        let text = match line.role {
            Role::Clean => format!("  {}", line.text),
            role => format!("  {} {sep} {}", role.name(), line.text),
        };
        out.record(text, || {
            let mut v = json!({"kind": "output", "step": self.id(), "role": line.role.name(),
                               "stream": if line.stderr { "stderr" } else { "stdout" }});
            let parsed = (!line.stderr)
                .then(|| serde_json::from_str::<serde_json::Value>(&line.text).ok())
                .flatten()
                .filter(serde_json::Value::is_object);
            match parsed {
                Some(record) => v["record"] = record,
                None => v["text"] = line.text.clone().into(),
            }
            v
        })?;
        Ok(())
    }

    /// A client's exit status: in text only when it is not 0.
    fn client_exit(&self, out: &mut Out, code: i32, expected: i32) -> Result<()> {
        if self.json {
            out.record("", || {
                json!({"kind": "exit", "step": self.id(), "role": "client",
                       "code": code, "expected": expected})
            })?;
        } else if code != 0 {
            let note = if code == expected {
                " (as expected)"
            } else {
                ""
            };
            writeln!(out.writer(), "  client exit status {code}{note}")?;
        }
        Ok(out.flush()?)
    }

    fn step_result(&self, out: &mut Out, error: Option<&anyhow::Error>) -> Result<()> {
        if self.json {
            out.record("", || match error {
                None => json!({"kind": "result", "step": self.id(), "ok": true}),
                Some(e) => json!({"kind": "result", "step": self.id(), "ok": false,
                                  "error": format!("{e:#}")}),
            })?;
        } else if let Some(e) = error {
            writeln!(out.writer(), "  step failed: {e:#}")?;
        }
        Ok(out.flush()?)
    }
}

fn run_step(exe: &std::path::Path, tour: &Tour, out: &mut Out) -> Result<()> {
    let step = tour.step;
    if step.server.is_empty() {
        return run_clients(exe, tour, None, out);
    }
    let server_args = tour.child_args(&step.server);
    tour.command(out, Role::Server, &server_args, true)?;
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
    expect_lines(tour, &lines, 1 + step.initial_lines, out)?;
    run_clients(exe, tour, Some(&lines), out)?;
    let status = server.reap().context("cannot wait for the server")?;
    // Whatever the server printed last (its stderr on failure).
    while let Ok(line) = lines.try_recv() {
        tour.line(out, &line)?;
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
    exe: &std::path::Path,
    tour: &Tour,
    lines: Option<&Receiver<Line>>,
    out: &mut Out,
) -> Result<()> {
    for run in &tour.step.clients {
        let args = tour.child_args(&run.args);
        tour.command(out, Role::Client, &args, false)?;
        let o = Command::new(exe)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run the client")?;
        for text in String::from_utf8_lossy(&o.stdout).lines() {
            tour.line(out, &Line::new(Role::Client, false, text))?;
        }
        for text in String::from_utf8_lossy(&o.stderr).lines() {
            tour.line(out, &Line::new(Role::Client, true, text))?;
        }
        let code = o.status.code().unwrap_or(-1);
        tour.client_exit(out, code, run.expect_code)?;
        if code != run.expect_code {
            bail!("the client exited {code}, expected {}", run.expect_code);
        }
        if let Some(lines) = lines {
            expect_lines(tour, lines, run.server_lines, out)?;
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
fn expect_lines(tour: &Tour, lines: &Receiver<Line>, n: usize, out: &mut Out) -> Result<()> {
    let deadline = Instant::now() + LINE_DEADLINE;
    for _ in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                tour.line(out, &line)?;
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
