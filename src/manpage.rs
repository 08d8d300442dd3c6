//! `completions` and `man`: both generated from the clap definition, so they
//! never drift from the real command line.
//!
//! Completion is dynamic: the script a shell sources is a few lines that
//! call this binary back on every Tab, with the words typed so far in the
//! environment, and clap_complete's engine answers from the same clap tree
//! that parses. clap_complete's static bash generator breaks for a binary
//! name with a hyphen (the case labels it writes and the names it looks up
//! disagree, so completion stops after the first word); the engine walks the
//! real tree instead, so every level completes, values included, and nothing
//! hidden is offered.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, EnvCompleter, Fish, Shells};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::channel;
use crate::help::{self, CLIENT, MODES_INTRO};
use crate::output::{Escaped, Out};

const BIN: &str = "examples-ipc";

/// The environment variable that makes a run a completion request. Ours
/// alone, not clap's default `COMPLETE`: a variable that generic could be set
/// for something else and would turn every run into a completion.
const COMPLETE_VAR: &str = "EXAMPLES_IPC_COMPLETE";

/// The shells `completions` writes scripts for, and only those.
const SHELLS: Shells<'static> = Shells(&[&Bash, &Zsh, &Fish]);

/// When the shell script called this run to complete a command line, answer
/// and exit; otherwise return at once (one environment lookup: `--version`
/// stays as fast as it was).
///
/// The script calls `examples-ipc` by name, found in `PATH` as the command
/// being completed is, so a saved script keeps working when the binary is
/// reinstalled elsewhere.
pub fn complete_if_asked(command: fn() -> clap::Command) {
    clap_complete::CompleteEnv::with_factory(command)
        .var(COMPLETE_VAR)
        .bin(BIN)
        .completer(BIN)
        .shells(SHELLS)
        .complete();
}

/// The shells `completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn completions(shell: Shell, out: &mut Out) -> Result<ExitCode> {
    let shell: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
    };
    // Into memory first, then one write: a full disk or a closed pipe is a
    // failed write, reported like any other.
    let mut script = Vec::new();
    shell.write_registration(COMPLETE_VAR, BIN, BIN, BIN, &mut script)?;
    out.writer().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// clap_complete's zsh script, made to work from `$fpath` too.
///
/// Its last line registers the completion function with `compdef`, which is
/// right when the script is sourced. Installed as `_examples-ipc` in
/// `$fpath`, though, zsh autoloads the file as the completion function
/// itself on the first Tab: it would only register and complete nothing.
/// So, as clap_complete's static zsh scripts do, complete when called as
/// `_examples-ipc`, register otherwise.
struct Zsh;

impl EnvCompleter for Zsh {
    fn name(&self) -> &'static str {
        "zsh"
    }

    fn is(&self, name: &str) -> bool {
        name == "zsh"
    }

    fn write_registration(
        &self,
        var: &str,
        name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let mut script = Vec::new();
        clap_complete::env::Zsh.write_registration(var, name, bin, completer, &mut script)?;
        let script = String::from_utf8_lossy(&script);
        let function = format!("_clap_dynamic_completer_{}", name.replace('-', "_"));
        let register = format!("compdef {function} {bin}");
        let Some(body) = script.trim_end().strip_suffix(&register) else {
            // Another clap_complete wrote another script: keep it as it is
            // (a test notices).
            return buf.write_all(script.as_bytes());
        };
        write!(
            buf,
            "{body}if [ \"$funcstack[1]\" = \"_{bin}\" ]; then\n    \
             {function} \"$@\"\nelse\n    {register}\nfi\n"
        )
    }

    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&Path>,
        buf: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        clap_complete::env::Zsh.write_complete(cmd, args, current_dir, buf)
    }
}

// ---- Values that exist on this machine ----

/// The kinds of object whose names or keys Tab offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    PosixMsq,
    PosixShm,
    PosixSem,
    /// Every POSIX object: `ls --name`, `clean --name`.
    Posix,
    SysvMsq,
    SysvShm,
    SysvSem,
    /// Every System V object: `ls -k`, `clean -k`.
    Sysv,
}

/// For `mut_args`: `-n NAME` and `-k KEY` complete to the objects of `kind`
/// that exist now, so `posix msq --clean -n <Tab>` offers the queues there are.
pub fn existing(kind: Existing) -> impl FnMut(clap::Arg) -> clap::Arg {
    move |arg| match arg.get_id().as_str() {
        "name" | "key" => existing_arg(kind)(arg),
        _ => arg,
    }
}

/// The same for one argument (`#[arg(add = ...)]` is spelled `mut_arg`).
pub fn existing_arg(kind: Existing) -> impl FnOnce(clap::Arg) -> clap::Arg {
    move |arg| arg.add(ArgValueCandidates::new(move || candidates(kind)))
}

fn candidates(kind: Existing) -> Vec<CompletionCandidate> {
    let mut values = Vec::new();
    let posix = |values: &mut Vec<String>, dir: &str, pick: fn(&str) -> Option<&str>| {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if let (true, Ok(name)) = (is_file, entry.file_name().into_string())
                && let Some(name) = pick(&name)
            {
                values.push(format!("/{name}"));
            }
        }
    };
    let msq: fn(&str) -> Option<&str> = |n| Some(n);
    let shm: fn(&str) -> Option<&str> = |n| (!n.starts_with("sem.")).then_some(n);
    let sem: fn(&str) -> Option<&str> = |n| n.strip_prefix("sem.");
    match kind {
        Existing::PosixMsq => posix(&mut values, "/dev/mqueue", msq),
        Existing::PosixShm => posix(&mut values, "/dev/shm", shm),
        Existing::PosixSem => posix(&mut values, "/dev/shm", sem),
        Existing::Posix => {
            posix(&mut values, "/dev/mqueue", msq);
            posix(&mut values, "/dev/shm", shm);
            posix(&mut values, "/dev/shm", sem);
        }
        Existing::SysvMsq => sysv_keys(&mut values, "msg"),
        Existing::SysvShm => sysv_keys(&mut values, "shm"),
        Existing::SysvSem => sysv_keys(&mut values, "sem"),
        Existing::Sysv => {
            for table in ["msg", "shm", "sem"] {
                sysv_keys(&mut values, table);
            }
        }
    }
    values.sort();
    values.dedup();
    values.into_iter().map(CompletionCandidate::new).collect()
}

/// The keys in /proc/sysvipc/TABLE, as ipcs prints them (`0x0000c0de`);
/// IPC_PRIVATE (0) is left out: no key finds such an object again.
fn sysv_keys(values: &mut Vec<String>, table: &str) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{table}")) else {
        return;
    };
    for line in text.lines().skip(1) {
        if let Some(key) = line
            .split_whitespace()
            .next()
            .and_then(|k| k.parse::<i32>().ok())
            .filter(|k| *k != 0)
        {
            values.push(crate::ipc::sysv::key_hex(key));
        }
    }
}

// ---- man ----

/// One man page: its file name and roff text.
pub struct Page {
    pub file: String,
    pub roff: Vec<u8>,
}

/// `man`: the top page of `cmd` (the whole command line) on stdout, or one
/// page per command into `dir`.
pub fn man(cmd: clap::Command, dir: Option<&Path>, out: &mut Out) -> Result<ExitCode> {
    let pages = pages(cmd).context("cannot render the man pages")?;
    let Some(dir) = dir else {
        // The top page comes first.
        out.writer().write_all(&pages[0].roff)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    for page in &pages {
        let path = dir.join(&page.file);
        std::fs::write(&path, &page.roff)
            .with_context(|| format!("cannot write man page {}", path.display()))?;
    }
    writeln!(
        out.writer(),
        "wrote {} man pages to {}",
        pages.len(),
        Escaped(dir.display())
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Every page of `cmd`: the top one first, then one per command, depth
/// first.
///
/// # Errors
/// A page that could not be rendered.
pub fn pages(mut cmd: clap::Command) -> std::io::Result<Vec<Page>> {
    cmd.build();
    let mut pages = Vec::new();
    let mut names = Vec::new();
    collect_names(&cmd, &mut names);
    render_tree(&cmd, "", &names, &mut pages)?;
    Ok(pages)
}

/// Whether clap's own `help` subcommand: it gets no page of its own.
fn is_help(cmd: &clap::Command) -> bool {
    cmd.get_name() == "help"
}

/// The page name of every command, `examples-ipc-posix-msq` and so on.
fn collect_names(cmd: &clap::Command, names: &mut Vec<String>) {
    names.push(page_name(cmd).to_string());
    for sub in cmd.get_subcommands().filter(|s| !is_help(s)) {
        collect_names(sub, names);
    }
}

fn page_name(cmd: &clap::Command) -> &str {
    // clap sets the display name of a subcommand to `parent-child` as it
    // builds the tree.
    cmd.get_display_name().unwrap_or(cmd.get_name())
}

fn render_tree(
    cmd: &clap::Command,
    path: &str,
    names: &[String],
    pages: &mut Vec<Page>,
) -> std::io::Result<()> {
    pages.push(Page {
        file: format!("{}.1", page_name(cmd)),
        roff: render(cmd, path, names)?,
    });
    for sub in cmd.get_subcommands().filter(|s| !is_help(s)) {
        let sub_path = if path.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{path} {}", sub.get_name())
        };
        render_tree(sub, &sub_path, names, pages)?;
    }
    Ok(())
}

/// One page: clap_mangen's title, name, synopsis, description and options,
/// with our modes, commands, examples, exit status, files and see-also.
fn render(cmd: &clap::Command, path: &str, names: &[String]) -> std::io::Result<Vec<u8>> {
    let man =
        Man::new(cmd.clone()).source(format!("{BIN} {}", cmd.get_version().unwrap_or_default()));
    let guide = help::guide(path);
    let mut page = Vec::new();
    let mut first = true;
    let mut part = |page: &mut Vec<u8>, fragment: Vec<u8>| {
        // Each fragment repeats roff's apostrophe preamble; once is enough.
        let text = if first {
            &fragment[..]
        } else {
            fragment
                .strip_prefix(PREAMBLE.as_bytes())
                .unwrap_or(&fragment)
        };
        first = false;
        page.extend_from_slice(text);
    };
    for section in [
        Man::render_title,
        Man::render_name_section,
        Man::render_synopsis_section,
        Man::render_description_section,
    ] {
        let mut fragment = Vec::new();
        section(&man, &mut fragment)?;
        part(&mut page, fragment);
    }
    let mut roff = Roff::default();
    if let Some(guide) = guide.filter(|g| !g.modes.is_empty()) {
        modes(&mut roff, guide.modes);
    }
    part(&mut page, to_bytes(&roff)?);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let mut fragment = Vec::new();
        man.render_options_section(&mut fragment)?;
        part(&mut page, fragment);
    }
    let mut roff = Roff::default();
    commands(&mut roff, cmd);
    if let Some(guide) = guide {
        examples(&mut roff, guide.examples);
    }
    exit_status(&mut roff, path);
    files(&mut roff, path);
    see_also(&mut roff, cmd, path, names);
    part(&mut page, to_bytes(&roff)?);
    Ok(page)
}

/// What `Roff::to_writer` puts before every document it writes.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

fn to_bytes(roff: &Roff) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    roff.to_writer(&mut buf)?;
    Ok(buf)
}

fn modes(roff: &mut Roff, modes: &[(&str, &str)]) {
    roff.control("SH", ["MODES"]);
    roff.text([roman(format!(
        "{}{}.",
        MODES_INTRO[..1].to_uppercase(),
        &MODES_INTRO[1..]
    ))]);
    for (flags, what) in modes {
        roff.control("TP", []);
        if *flags == CLIENT {
            roff.text([italic("no mode flag")]);
        } else {
            roff.text([bold(*flags)]);
        }
        roff.text([roman(*what)]);
    }
}

fn commands(roff: &mut Roff, cmd: &clap::Command) {
    let subs: Vec<_> = cmd
        .get_subcommands()
        .filter(|s| !is_help(s) && !s.is_hide_set())
        .collect();
    if subs.is_empty() {
        return;
    }
    roff.control("SH", ["COMMANDS"]);
    for sub in subs {
        roff.control("TP", []);
        roff.text([bold(page_name(sub)), roman("(1)")]);
        if let Some(about) = sub.get_about() {
            roff.text([roman(about.to_string())]);
        }
    }
}

fn examples(roff: &mut Roff, examples: &[(&str, &[&str])]) {
    roff.control("SH", ["EXAMPLES"]);
    for (what, lines) in examples {
        roff.control("PP", []);
        roff.text([roman(*what)]);
        roff.control("RS", ["4"]);
        roff.control("nf", []);
        for line in *lines {
            roff.text([bold(*line)]);
        }
        roff.control("fi", []);
        roff.control("RE", []);
    }
}

/// Whether the command at `path` has a server mode, or commands that have one.
fn has_server(path: &str) -> bool {
    matches!(path, "" | "posix" | "sysv")
        || help::guide(path).is_some_and(|g| g.modes.iter().any(|(f, _)| f.contains("--server")))
}

fn exit_status(roff: &mut Roff, path: &str) {
    roff.control("SH", ["EXIT STATUS"]);
    roff.control("TP", []);
    roff.text([bold("0")]);
    if has_server(path) {
        roff.text([roman(
            "Success. A server also exits 0 after --count events and when \
             stopped by SIGINT (Ctrl-C) or SIGTERM; it prints \"canceled.\" \
             and leaves the object in place.",
        )]);
    } else {
        roff.text([roman("Success.")]);
    }
    roff.control("TP", []);
    roff.text([bold("1")]);
    roff.text([roman(failure(path))]);
    roff.control("TP", []);
    roff.text([bold("2")]);
    roff.text([roman(
        "Bad usage or input: an unknown option, an option this command or mode \
         does not take, or a value that is not valid (a name, key or number). \
         Nothing is created.",
    )]);
    roff.control("PP", []);
    roff.text([roman(
        "An error is one line on standard error, error: what failed: why, \
         often followed by a hint: line that says what to do.",
    )]);
}

/// What exit status 1 means for the command at `path`.
fn failure(path: &str) -> &'static str {
    if let Some(channel) = channel::find(path) {
        return channel.about().failure;
    }
    let kind = path.rsplit(' ').next().unwrap_or("");
    match (path, kind) {
        (_, "msq") => {
            "The operation failed: no such queue, a full queue with --nonblock, \
             a message larger than the queue takes, no permission, a kernel \
             limit, or a server's --timeout passed."
        }
        (_, "shm") => {
            "The operation failed: no such segment, a text that does not fit, \
             no permission, a kernel limit, a segment shrunk or removed under \
             the server, or a server's --timeout passed."
        }
        (_, "sem") => {
            "The operation failed: the semaphore is busy (its value is 0), no \
             such semaphore (the client does not create one), no permission, \
             --wait gave up after --timeout, or a server's --timeout passed."
        }
        ("tour", _) => "A step of the tour failed; the output shows which and why.",
        ("bench", _) => {
            "A measurement failed: a mechanism could not be set up, or a reply \
             did not match what was sent."
        }
        ("clean", _) => "An object could not be removed; the others were.",
        _ => "The operation failed; standard error says what and why.",
    }
}

/// The files the command at `path` reads or makes, with what they are.
fn files_of(path: &str) -> Vec<(&'static str, &'static str)> {
    const MQUEUE: (&str, &str) = ("/dev/mqueue", "POSIX message queues, one file each");
    const MQ_LIMITS: (&str, &str) = (
        "/proc/sys/fs/mqueue/*",
        "POSIX queue limits: msg_max, msgsize_max, msg_default, msgsize_default, queues_max",
    );
    const SHM: (&str, &str) = (
        "/dev/shm",
        "POSIX shared memory segments, and named semaphores as sem.NAME",
    );
    const SYSV_MSG: (&str, &str) = ("/proc/sysvipc/msg", "System V message queues");
    const SYSV_SHM: (&str, &str) = ("/proc/sysvipc/shm", "System V shared memory segments");
    const SYSV_SEM: (&str, &str) = ("/proc/sysvipc/sem", "System V semaphore sets");
    const SYSV_LIMITS: (&str, &str) = (
        "/proc/sys/kernel/{msgmax,msgmnb,msgmni,shmmax,shmall,shmmni,sem}",
        "System V limits",
    );
    const PROCS: (&str, &str) = (
        "/proc/*/fd, /proc/*/maps",
        "which processes hold or map an object",
    );
    match path {
        "" => vec![
            MQUEUE,
            MQ_LIMITS,
            SHM,
            SYSV_MSG,
            SYSV_SHM,
            SYSV_SEM,
            SYSV_LIMITS,
        ],
        "posix" => vec![MQUEUE, MQ_LIMITS, SHM],
        "posix msq" => vec![MQUEUE, MQ_LIMITS],
        "posix shm" | "posix sem" => vec![SHM],
        "sysv" => vec![SYSV_MSG, SYSV_SHM, SYSV_SEM, SYSV_LIMITS],
        "sysv msq" => vec![SYSV_MSG, SYSV_LIMITS],
        "sysv shm" => vec![SYSV_SHM, SYSV_LIMITS],
        "sysv sem" => vec![SYSV_SEM, SYSV_LIMITS],
        "ls" | "clean" | "doctor" | "watch" => {
            vec![MQUEUE, SHM, SYSV_MSG, SYSV_SHM, SYSV_SEM, PROCS]
        }
        "limits" => vec![
            MQ_LIMITS,
            SYSV_LIMITS,
            MQUEUE,
            SHM,
            SYSV_MSG,
            SYSV_SHM,
            SYSV_SEM,
        ],
        "demo mutex" | "demo cures" => vec![SHM],
        "demo memfd" => vec![
            (
                "$XDG_RUNTIME_DIR/examples-ipc-memfd-NAME",
                "where the server publishes its pid and descriptor; in the temporary \
                 directory when XDG_RUNTIME_DIR is unset",
            ),
            ("/proc/PID/fd/FD", "how a client opens the server's memfd"),
        ],
        _ => channel::find(path).map_or_else(Vec::new, |c| c.about().files.to_vec()),
    }
}

fn files(roff: &mut Roff, path: &str) {
    let files = files_of(path);
    if files.is_empty() {
        return;
    }
    roff.control("SH", ["FILES"]);
    for (file, what) in files {
        roff.control("TP", []);
        roff.text([italic(file)]);
        roff.text([roman(what)]);
    }
}

/// Pages of the system that the command at `path` relates to.
fn system_pages(path: &str) -> Vec<&'static str> {
    let mut pages = vec!["ipcs(1)", "lsipc(1)", "ipcrm(1)", "mq_overview(7)"];
    let topic: &[&str] = match path {
        "" => {
            pages.extend(["shm_overview(7)", "sem_overview(7)", "sysvipc(7)"]);
            // Each channel's overview (section 7); its calls are on its own page.
            let channels = channel::ALL.iter().flat_map(|c| c.about().man_pages);
            pages.extend(channels.filter(|p| p.ends_with("(7)")));
            &["pipe(7)"]
        }
        p if p.starts_with("posix shm") => &["shm_overview(7)"],
        p if p.starts_with("posix sem") => &["sem_overview(7)"],
        "posix" => &["shm_overview(7)", "sem_overview(7)"],
        p if p.starts_with("sysv") => &["sysvipc(7)"],
        "ls" | "clean" | "limits" | "doctor" | "watch" | "bench" | "tour" => {
            &["shm_overview(7)", "sem_overview(7)", "sysvipc(7)"]
        }
        "pipe" => &["pipe(7)"],
        "demo memfd" => &["memfd_create(2)", "shm_overview(7)"],
        p if p.starts_with("demo") => &["shm_overview(7)", "sem_overview(7)"],
        p => channel::find(p).map_or(&[], |c| c.about().man_pages),
    };
    pages.extend_from_slice(topic);
    pages
}

/// Our pages worth reading next: the parent, the same mechanism of the
/// other family, and for the top page the most used ones; all of them pages
/// that `man --dir` writes.
fn related(cmd: &clap::Command, path: &str, names: &[String]) -> Vec<String> {
    let own = page_name(cmd);
    let mut wanted = Vec::new();
    if let Some((parent, _)) = own.rsplit_once('-').filter(|_| !path.is_empty()) {
        wanted.push(parent.to_string());
    }
    let other = match path.split_once(' ') {
        Some(("posix", kind)) => Some(format!("{BIN}-sysv-{kind}")),
        Some(("sysv", kind)) => Some(format!("{BIN}-posix-{kind}")),
        _ => None,
    };
    wanted.extend(other);
    match path {
        "" => wanted.extend(["tour", "ls"].map(|c| format!("{BIN}-{c}"))),
        "ls" => wanted.push(format!("{BIN}-clean")),
        "clean" => wanted.push(format!("{BIN}-ls")),
        "posix" | "sysv" => wanted.push(format!("{BIN}-ls")),
        _ => {}
    }
    wanted.retain(|w| names.contains(w) && w != own);
    wanted
}

fn see_also(roff: &mut Roff, cmd: &clap::Command, path: &str, names: &[String]) {
    roff.control("SH", ["SEE ALSO"]);
    let ours = related(cmd, path, names);
    let theirs = system_pages(path);
    let mut line = Vec::new();
    let all = ours
        .iter()
        .map(|name| (name.as_str(), "1"))
        .chain(theirs.iter().filter_map(|p| {
            let (name, rest) = p.split_once('(')?;
            Some((name, rest.trim_end_matches(')')))
        }));
    for (i, (name, section)) in all.enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name.to_string()));
        line.push(roman(format!("({section})")));
    }
    roff.text(line);
}
