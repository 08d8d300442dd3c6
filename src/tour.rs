//! `tour`: every mechanism end to end in one command. Each step starts this
//! very binary as a server child, runs clients against it, shows both sides'
//! output as it happens, and removes the object, also when a step fails.
//! Names and keys are unique to this run, so a user's `/test` is never touched.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

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
        server: args(&["fifo", "-s", "-p", fifo, "--count", "3", "--timeout", "15"]),
        initial_lines: 0,
        clients: vec![
            client(
                args(&["fifo", "-p", fifo, "-c", "2", "--interval", "0"]),
                0,
                2,
            ),
            client(
                args(&["fifo", "-p", fifo, "-m", "a second writer", "-c", "1"]),
                0,
                1,
            ),
        ],
        clean: args(&["fifo", "--clean", "-p", fifo]),
    }
}

pub fn run(args: &TourArgs, out: &mut Out) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let tag = std::process::id().to_string();
    let mut failed = Vec::new();
    for step in steps(&tag) {
        if !args.only.is_empty() && !args.only.contains(&step.id) {
            continue;
        }
        let w = out.writer();
        writeln!(w, "\n== {} ==", step.title)?;
        out.flush()?;
        let result = run_step(&exe, &step, out);
        // Remove the object whatever happened; a missing object is fine here.
        if !step.clean.is_empty() {
            let cleaned = shown(&step.clean);
            let clean = Command::new(&exe).args(&step.clean).output();
            let w = out.writer();
            writeln!(w, "$ {cleaned}")?;
            if let Ok(o) = &clean {
                for line in String::from_utf8_lossy(&o.stdout).lines() {
                    writeln!(w, "  {line}")?;
                }
            }
        }
        let w = out.writer();
        if let Err(e) = result {
            writeln!(w, "  step failed: {e:#}")?;
            failed.push(step.title);
        }
        out.flush()?;
    }
    if !failed.is_empty() {
        bail!(
            "{} tour step(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    writeln!(
        out.writer(),
        "\nEvery step ran end to end and removed what it made."
    )?;
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

fn run_step(exe: &std::path::Path, step: &Step, out: &mut Out) -> Result<()> {
    if step.server.is_empty() {
        return run_clients(exe, step, None, out);
    }
    writeln!(out.writer(), "$ {} &", shown(&step.server))?;
    out.flush()?;
    let mut child = Command::new(exe)
        .args(&step.server)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the server")?;
    // Kills and reaps the server when the step ends early.
    let mut server = ChildGuard::spawned(&child);
    let lines = forward_lines(&mut child)?;
    expect_lines(&lines, 1 + step.initial_lines, out)?;
    run_clients(exe, step, Some(&lines), out)?;
    let status = server.reap().context("cannot wait for the server")?;
    // Whatever the server printed last (its stderr on failure).
    while let Ok(line) = lines.try_recv() {
        writeln!(out.writer(), "  {line}")?;
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
    step: &Step,
    lines: Option<&Receiver<String>>,
    out: &mut Out,
) -> Result<()> {
    for run in &step.clients {
        writeln!(out.writer(), "$ {}", shown(&run.args))?;
        out.flush()?;
        let o = Command::new(exe)
            .args(&run.args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run the client")?;
        let w = out.writer();
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            writeln!(w, "  client | {line}")?;
        }
        for line in String::from_utf8_lossy(&o.stderr).lines() {
            writeln!(w, "  client ! {line}")?;
        }
        let code = o.status.code().unwrap_or(-1);
        if code != 0 {
            writeln!(
                w,
                "  client exit status {code}{}",
                if code == run.expect_code {
                    " (as expected)"
                } else {
                    ""
                }
            )?;
        }
        out.flush()?;
        if code != run.expect_code {
            bail!("the client exited {code}, expected {}", run.expect_code);
        }
        if let Some(lines) = lines {
            expect_lines(lines, run.server_lines, out)?;
        }
    }
    Ok(())
}

/// Stream the child's stdout and stderr into one channel of display lines.
fn forward_lines(child: &mut Child) -> Result<Receiver<String>> {
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
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(format!("server | {line}")).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx_err.send(format!("server ! {line}")).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Print the next `n` server lines, failing if they do not come in time.
fn expect_lines(lines: &Receiver<String>, n: usize, out: &mut Out) -> Result<()> {
    let deadline = Instant::now() + LINE_DEADLINE;
    for _ in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                writeln!(out.writer(), "  {line}")?;
                out.flush()?;
                if line.starts_with("server !") {
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
