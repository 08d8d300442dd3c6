//! Refused input: exit 2 with clap's or our message, nothing created, never a panic.

use crate::common::*;

#[track_caller]
fn refused(args: &[&str], fragment: &str) {
    let o = run(args);
    assert_fails(&o, 2, fragment);
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn bad_posix_names_are_refused() {
    refused(&["posix", "msq", "-n", "/"], "at least one character");
    refused(&["posix", "msq", "-n", ""], "at least one character");
    refused(
        &["posix", "shm", "-n", "/a/b", "-m", "x"],
        "one path component",
    );
    refused(&["posix", "sem", "-s", "-n", "a/b"], "one path component");
    refused(&["posix", "msq", "-n", "/.."], "not a valid object name");
    let long = format!("/{}", "x".repeat(256));
    refused(&["posix", "msq", "-s", "-n", &long], "NAME_MAX");
}

#[test]
fn a_semaphore_name_must_leave_room_for_the_sem_prefix() {
    // 252 bytes fit NAME_MAX but not /dev/shm/sem.NAME.
    let prefix = format!("/eipc-test-{}-", std::process::id());
    let name = format!("{prefix}{}", "y".repeat(254 - prefix.len()));
    assert!(
        name.len() - 1 > 251 && name.len() - 1 <= 255,
        "{}",
        name.len()
    );
    let _guard = Cleanup(vec![Obj::PosixSem(name.clone())]);
    refused(
        &["posix", "sem", "-s", "-n", &name, "--count", "0"],
        "at most 251 bytes",
    );
    assert!(!posix_exists(&Obj::PosixSem(name)));
}

#[test]
fn bad_numbers_are_refused() {
    refused(&["posix", "shm", "-s", "--size", "0"], "--size");
    refused(&["posix", "shm", "-s", "--size", "-5"], "error:");
    refused(&["posix", "shm", "-s", "--interval=-1"], "non-negative");
    refused(&["posix", "shm", "-s", "--interval", "-1"], "error:");
    refused(&["posix", "shm", "-s", "--interval", "nan"], "non-negative");
    refused(&["posix", "msq", "-s", "--timeout", "soon"], "not a number");
    refused(&["posix", "msq", "-s", "--count=-1"], "--count");
    refused(&["posix", "msq", "-s", "--max-msgs", "0"], "--max-msgs");
    refused(&["posix", "msq", "-s", "--msg-size", "0"], "--msg-size");
    refused(&["posix", "msq", "-p", "32768"], "--priority");
    refused(&["posix", "msq", "-s", "--mode", "0999"], "octal");
    refused(&["posix", "msq", "-s", "--mode", "01777"], "octal");
    refused(&["posix", "sem", "-s", "--value", "2147483648"], "--value");
}

/// A number out of range says what it must be in words, never in Rust's
/// range syntax (`40000 is not in 0..32768`), in clap's own error shape.
#[test]
fn numbers_out_of_range_say_what_they_must_be() {
    for (args, line) in [
        (
            &["posix", "msq", "-p", "40000"][..],
            "invalid value '40000' for '--priority <P>': must be between 0 and 32767",
        ),
        (
            &["posix", "msq", "-p", "x"],
            "invalid value 'x' for '--priority <P>': must be a whole number between 0 and 32767",
        ),
        (
            &["posix", "msq", "-s", "--max-msgs", "0"],
            "invalid value '0' for '--max-msgs <N>': must be at least 1",
        ),
        (
            &["limits", "--msg-size", "4294967296"],
            "invalid value '4294967296' for '--msg-size <BYTES>': must be at most 4294967295",
        ),
        (
            &["posix", "shm", "-s", "--size", "many"],
            "invalid value 'many' for '--size <BYTES>': must be a whole number, at least 1",
        ),
        (
            &["sysv", "sem", "-s", "--value", "2147483648"],
            "invalid value '2147483648' for '--value <N>': must be between 0 and 2147483647",
        ),
        (
            &["bench", "--size", "15"],
            "invalid value '15' for '--size <BYTES>': must be between 16 and 1048576",
        ),
        (
            &["bench", "-c", "0"],
            "invalid value '0' for '--count <N>': must be at least 1",
        ),
        (
            &["demo", "race", "--procs", "65"],
            "invalid value '65' for '--procs <P>': must be between 1 and 64",
        ),
        (
            &["demo", "ring", "--slots", "65537"],
            "invalid value '65537' for '--slots <S>': must be between 1 and 65536",
        ),
        (
            &["demo", "sorted", "-c", "0"],
            "invalid value '0' for '--count <N>': must be between 1 and 4096",
        ),
        (
            &["posix", "msq", "-s", "-c", "some"],
            "invalid value 'some' for '--count <N>': must be a whole number",
        ),
    ] {
        let o = run(args);
        let err = assert_fails(&o, 2, &format!("error: {line}\n"));
        assert!(!err.contains(".."), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn modes_are_exclusive_and_options_checked() {
    refused(&["posix", "msq", "-s", "--clean"], "cannot be used with");
    refused(
        &["posix", "shm", "--stat", "--clean"],
        "cannot be used with",
    );
    refused(&["posix", "sem", "-r", "--wait"], "cannot be used with");
    refused(&["posix", "pigeon"], "unrecognized subcommand");
    refused(&["posix"], "Usage");
    refused(&["--bogus"], "unexpected argument");
    let name = unique_name("usage-sem");
    let _guard = Cleanup(vec![Obj::PosixSem(name.clone())]);
    refused(
        &["posix", "sem", "-n", &name, "--timeout", "1"],
        "--timeout goes with --wait",
    );
}

#[test]
fn bad_sysv_keys_are_refused() {
    refused(&["sysv", "msq", "-k", "0"], "IPC_PRIVATE");
    refused(&["sysv", "msq", "-k", "0x0"], "IPC_PRIVATE");
    refused(&["sysv", "shm", "-k", "0x100000000"], "32 bits");
    refused(&["sysv", "sem", "-k", "4294967296"], "32 bits");
    refused(&["sysv", "sem", "-k", "-2147483649"], "32 bits");
    refused(&["sysv", "msq", "-k", "twelve"], "not a key");
    refused(&["sysv", "msq", "--clean", "-i", "x3"], "not an id");
    refused(&["sysv", "msq", "--clean", "-i", "-3"], "error:");
}

#[test]
fn help_and_version_exit_0_and_json_is_global() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("posix"));
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("examples-ipc "));
    // --json after the subcommand, on a failing call: still exit 1, stderr text.
    let name = unique_name("usage-json");
    let o = run(&["posix", "msq", "--clean", "-n", &name, "--json"]);
    assert_fails(&o, 1, "no such queue");
}

#[test]
fn version_is_the_name_and_version_exactly() {
    let want = format!("examples-ipc {}\n", env!("CARGO_PKG_VERSION"));
    // Alone, the flag is answered without clap; with another argument, by
    // clap: the same bytes either way.
    for args in [
        &["--version"][..],
        &["-V"],
        &["--json", "--version"],
        &["-V", "--json"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), want, "{args:?}");
        assert!(o.stderr.is_empty(), "{args:?}");
    }
    let o = run(&["posix", "--version"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("examples-ipc-posix {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// `ARGS` with stdout on `stdout`: exit 1, one line saying the write to
/// standard output failed, no hint about the operation's own limits.
#[track_caller]
fn stdout_fails(args: &[&str], stdout: std::process::Stdio) {
    let o = bin()
        .args(args)
        .stdout(stdout)
        .output()
        .expect("cannot run examples-ipc");
    let err = assert_fails(&o, 1, "");
    assert!(
        err.starts_with("error: cannot write to standard output: ") && err.lines().count() == 1,
        "{args:?}: {err:?}"
    );
}

fn dev_full() -> std::process::Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("cannot open /dev/full")
        .into()
}

#[test]
fn failed_writes_to_stdout_are_reported_as_such() {
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["limits"],
        &["completions", "bash"],
        &["completions", "fish"],
        &["man"],
    ] {
        stdout_fails(args, dev_full());
    }
    // Descriptor 1 open only for reading: write(2) fails with EBADF.
    let read_only = std::fs::File::open("/dev/null").unwrap();
    stdout_fails(&["ls"], read_only.into());

    let name = unique_name("full");
    let mut cleanup = Cleanup::new();
    cleanup.add(Obj::PosixShm(name.clone()));
    // A server fails at its start line; the segment it made stays, as after any server.
    stdout_fails(
        &["posix", "shm", "-s", "-n", &name, "--timeout", "20"],
        dev_full(),
    );
    stdout_fails(&["posix", "shm", "--stat", "-n", &name], dev_full());
    stdout_fails(&["posix", "shm", "-n", &name, "-m", "hi"], dev_full());
}

#[test]
fn a_reader_going_away_is_not_an_error() {
    // Whether the write meets the closed pipe (EPIPE) or fits in its buffer
    // first, the run ends with 0 and nothing on stderr.
    let mut child = bin()
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run examples-ipc");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_test_hook_is_not_offered() {
    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"],
        &["completions", "fish"],
        &["man"],
        &["bench", "--help"],
    ] {
        let out = assert_ok(&run(args));
        assert!(!out.contains("corrupt"), "{args:?}");
    }
}

/// `examples-ipc ARGS --help`, text.
fn help_of(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    assert_ok(&run(&all))
}

/// The help line of one option: from `  -c, --count` or `      --timeout`
/// up to the next option.
fn option_help(help: &str, long: &str) -> String {
    let mut lines = help.lines().skip_while(|l| {
        !l.trim_start()
            .split(", ")
            .any(|f| f.split(' ').next() == Some(long))
    });
    let mut text = lines
        .next()
        .unwrap_or_else(|| panic!("no {long}: {help}"))
        .to_string();
    for l in lines {
        // The next option starts within the flag column; a wrapped help
        // line is indented to the help column, even when it starts with `--`.
        let indent = l.len() - l.trim_start().len();
        if (indent <= 6 && l.trim_start().starts_with('-')) || l.trim().is_empty() {
            break;
        }
        text.push(' ');
        text.push_str(l.trim());
    }
    text
}

#[test]
fn every_mechanism_help_names_its_modes_and_shows_examples() {
    for cmd in [
        &["posix", "msq"][..],
        &["posix", "shm"],
        &["posix", "sem"],
        &["sysv", "msq"],
        &["sysv", "shm"],
        &["sysv", "sem"],
        &["fifo"],
        &["demo", "memfd"],
    ] {
        for flag in ["--help", "-h"] {
            let mut args = cmd.to_vec();
            args.push(flag);
            let help = assert_ok(&run(&args));
            assert!(
                help.contains("Modes (at most one; with none, the client runs):"),
                "{cmd:?} {flag}: {help}"
            );
            assert!(help.contains("-s, --server"), "{cmd:?}: {help}");
            // The column is as wide as the longest mode (`--restore FILE`).
            let client = help.lines().any(|l| {
                l.trim_start()
                    .strip_prefix("(no flag)")
                    .is_some_and(|rest| rest.trim_start().starts_with("Client:"))
            });
            assert!(client, "{cmd:?}: {help}");
            let examples = help.split("Examples:").nth(1).unwrap_or("");
            let shown = examples
                .lines()
                .filter(|l| l.trim_start().starts_with("examples-ipc "))
                .count();
            assert!(shown >= 2, "{cmd:?}: {shown} examples: {help}");
            assert!(examples.contains(&cmd.join(" ")), "{cmd:?}: {help}");
        }
    }
    // Every other command shows examples too.
    for cmd in [
        &[][..],
        &["ls"],
        &["bench"],
        &["tour"],
        &["demo", "ring"],
        &["man"],
    ] {
        let help = help_of(cmd);
        assert!(help.contains("Examples:\n  "), "{cmd:?}: {help}");
    }
}

#[test]
fn shared_options_describe_what_they_do_in_this_command() {
    // Before: `posix shm --help` offered "Message client: send N messages"
    // and `posix msq --help` "Semaphore client with --wait".
    for family in ["posix", "sysv"] {
        let shm = help_of(&[family, "shm"]);
        let count = option_help(&shm, "--count");
        assert!(count.contains("prints of the text"), "{count}");
        assert!(
            !shm.contains("Message client") && !shm.contains("send N messages"),
            "{shm}"
        );
        assert!(!shm.contains("Semaphore"), "{shm}");
        assert!(option_help(&shm, "--server").contains("segment"), "{shm}");

        let msq = help_of(&[family, "msq"]);
        let timeout = option_help(&msq, "--timeout");
        assert!(timeout.contains("no message comes"), "{timeout}");
        assert!(
            !msq.contains("Semaphore") && !msq.contains("--wait"),
            "{msq}"
        );
        assert!(option_help(&msq, "--count").contains("Client: send N messages"));
        assert!(option_help(&msq, "--clean").contains("Remove the queue"));

        let sem = help_of(&[family, "sem"]);
        let timeout = option_help(&sem, "--timeout");
        assert!(timeout.contains("Client with --wait"), "{timeout}");
        assert!(
            !sem.contains("Message client") && !sem.contains("send N"),
            "{sem}"
        );
        assert!(option_help(&sem, "--stat").contains("semaphore"), "{sem}");
    }
    let fifo = help_of(&["fifo"]);
    assert!(
        option_help(&fifo, "--count").contains("write N lines"),
        "{fifo}"
    );
    assert!(!fifo.contains("Semaphore"), "{fifo}");
    let memfd = help_of(&["demo", "memfd"]);
    assert!(
        !memfd.contains("Message client") && !memfd.contains("Semaphore"),
        "{memfd}"
    );
}

#[test]
fn json_is_refused_where_it_makes_no_sense() {
    for args in [
        &["--json", "completions", "bash"][..],
        &["completions", "zsh", "--json"],
        &["--json", "man"],
        &["man", "--json", "--dir", "/nonexistent-never-made"],
    ] {
        let o = run(args);
        assert_fails(&o, 2, "--json does not apply");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    assert!(!std::path::Path::new("/nonexistent-never-made").exists());
}

#[test]
fn json_tour_prints_only_json_lines() {
    let o = run(&["--json", "tour", "--only", "posix-sem,pipe"]);
    let out = assert_ok(&o);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().all(|v| v.is_object() && v["kind"].is_string()),
        "{out}"
    );
    let kinds = |kind: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|v| v["kind"] == kind).collect()
    };
    let steps: Vec<_> = kinds("step").iter().map(|v| v["step"].clone()).collect();
    assert_eq!(steps, ["posix-sem", "pipe"], "{out}");
    // The server ran with --json, and its lines come through as its objects.
    let server_start = lines
        .iter()
        .find(|v| v["kind"] == "output" && v["role"] == "server")
        .expect("a server line");
    assert_eq!(server_start["record"]["kind"], "start", "{out}");
    let name = server_start["record"]["name"].as_str().unwrap().to_string();
    let commands = kinds("command");
    assert!(
        commands
            .iter()
            .all(|c| c["args"][0] == "--json" && c["role"].is_string()),
        "{out}"
    );
    // The busy semaphore is shown on purpose: exit 1, as expected, on stderr as text.
    assert!(
        kinds("exit")
            .iter()
            .any(|e| e["code"] == 1 && e["expected"] == 1),
        "{out}"
    );
    assert!(
        lines.iter().any(|v| v["stream"] == "stderr"
            && v["text"]
                .as_str()
                .is_some_and(|t| t.contains("semaphore is busy"))),
        "{out}"
    );
    let results = kinds("result");
    assert_eq!(results.len(), 2, "{out}");
    assert!(results.iter().all(|r| r["ok"] == true), "{out}");
    let done = kinds("done");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["ok"], true);
    assert_eq!(done[0]["steps"], 2);
    assert_eq!(lines.last().unwrap()["kind"], "done");
    // And the step removed its semaphore.
    assert!(!posix_exists(&Obj::PosixSem(name)));
}

#[track_caller]
fn tip(args: &[&str], tip: &str) {
    let o = run(args);
    let err = assert_fails(&o, 2, "unexpected argument");
    assert!(err.contains(&format!("tip: {tip}")), "{args:?}: {err}");
    // The tip replaces clap's guesses (`--name` on System V is not `--mode`).
    assert!(!err.contains("similar argument"), "{args:?}: {err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn a_flag_of_the_other_family_gets_a_tip_naming_the_right_one() {
    for kind in ["msq", "shm", "sem"] {
        tip(
            &["posix", kind, "-k", "200"],
            "POSIX objects are named with -n NAME; -k is for System V",
        );
        tip(
            &["sysv", kind, "-n", "/x"],
            "System V objects are addressed with -k KEY (or -i ID); -n is for POSIX",
        );
    }
    tip(
        &["posix", "shm", "-s", "--key=0x10"],
        "POSIX objects are named with -n NAME; --key is for System V",
    );
    tip(
        &["posix", "msq", "-k200"],
        "POSIX objects are named with -n NAME; -k is for System V",
    );
    tip(
        &["posix", "sem", "--clean", "-i", "3"],
        "POSIX objects are named with -n NAME; -i is for System V",
    );
    tip(
        &["--json", "sysv", "sem", "--name=/x"],
        "System V objects are addressed with -k KEY (or -i ID); --name is for POSIX",
    );
    tip(
        &["sysv", "msq", "-p", "3"],
        "System V messages have a type (--type T), not a priority",
    );
    tip(
        &["posix", "msq", "--type", "3"],
        "POSIX messages have a priority (-p P), not a type",
    );
    // Without a mix-up, clap's error is left as it is.
    let err = assert_fails(&run(&["posix", "msq", "--bogus"]), 2, "unexpected argument");
    assert!(!err.contains("System V"), "{err}");
}

#[test]
fn short_flags_that_meant_something_else_are_gone() {
    // Explicit behaviour change: -n, -s and -p mean --name, --server and
    // --priority only; the other commands use long names, with a tip.
    tip(&["clean", "--stale", "-n"], "a dry run is --dry-run");
    tip(
        &["fifo", "-p", "/tmp/x"],
        "the FIFO's path is given with --path",
    );
    tip(
        &["socket", "-p", "/tmp/x"],
        "the socket's path is given with --path",
    );
    tip(
        &["demo", "race", "-p", "2"],
        "processes and increments are --procs P and --iters N",
    );
    tip(
        &["demo", "mutex", "-n", "5"],
        "processes and increments are --procs P and --iters N",
    );
    tip(
        &["demo", "ring", "-s", "8"],
        "the ring's sizes are --producers P, --items N and --slots S",
    );
    tip(
        &["demo", "scoreboard", "-n", "5"],
        "items per worker are --items N",
    );
    tip(
        &["demo", "sorted", "-n", "5"],
        "the count of numbers is -c N",
    );
    // -c is the count everywhere, demo sorted included.
    let o = assert_ok(&run(&[
        "--json",
        "demo",
        "sorted",
        "-c",
        "2",
        "--interval",
        "0",
    ]));
    assert!(o.contains(r#""count":2"#), "{o}");
}

#[test]
fn version_on_a_full_stdout_is_reported() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = crate::common::bin()
        .arg("--version")
        .stdout(full)
        .output()
        .expect("run");
    crate::common::assert_fails(&o, 1, "error: cannot write to standard output:");
}

/// Whether a System V object of any kind has `key`.
fn sysv_exists(key: i32) -> bool {
    let o = run(&["--json", "ls", "--sysv", "-k", &key_hex(key)]);
    let doc: serde_json::Value = serde_json::from_str(&assert_ok(&o)).expect("ls --json");
    doc["objects"].as_array().is_some_and(|a| !a.is_empty())
}

#[test]
fn options_that_do_not_apply_to_the_mode_are_refused() {
    let name = unique_name("notapply");
    let key = unique_key();
    let k = key_hex(key);
    let fifo = std::env::temp_dir().join(format!("eipc-test-{}-notapply.fifo", std::process::id()));
    let fifo = fifo.to_str().expect("a UTF-8 temp dir");
    let _guard = Cleanup(vec![
        Obj::PosixMsq(name.clone()),
        Obj::PosixShm(name.clone()),
        Obj::PosixSem(name.clone()),
        Obj::SysvMsq(key),
        Obj::SysvShm(key),
        Obj::SysvSem(key),
        Obj::Path(fifo.into()),
    ]);
    // The issue's example, word for word: a sem client takes one unit.
    refused(
        &["posix", "sem", "-n", &name, "-c", "3"],
        "error: --count does not apply to the posix sem client: it is an option of the server (-s)\n",
    );
    let n = name.as_str();
    server_options_on_a_client(n, &k, fifo);
    client_options_on_a_server(n, &k, fifo);
    creation_options_with_clean_and_stat(n, &k, fifo);
    // Nothing was made on the way.
    for obj in [
        Obj::PosixMsq(name.clone()),
        Obj::PosixShm(name.clone()),
        Obj::PosixSem(name.clone()),
        Obj::Path(fifo.into()),
    ] {
        assert!(!posix_exists(&obj), "{obj:?}");
    }
    assert!(!sysv_exists(key));
}

/// A server's options on a client.
fn server_options_on_a_client(n: &str, k: &str, fifo: &str) {
    not_applying(&[
        (
            &["posix", "shm", "-n", n, "-m", "x", "--interval", "1"],
            "the posix shm client",
        ),
        (
            &["posix", "shm", "-n", n, "-m", "x", "--on-change"],
            "the posix shm client",
        ),
        (
            &["sysv", "shm", "-k", k, "-m", "x", "-c", "2"],
            "the sysv shm client",
        ),
        (
            &["posix", "msq", "-n", n, "--timeout", "1"],
            "the posix msq client",
        ),
        (
            &["sysv", "sem", "-k", k, "--value", "3"],
            "the sysv sem client",
        ),
        (
            &["posix", "sem", "-n", n, "--mode", "0644"],
            "the posix sem client",
        ),
        (
            &["fifo", "--path", fifo, "--timeout", "1"],
            "the fifo client",
        ),
        (
            &["fifo", "--path", fifo, "--mode", "0644"],
            "the fifo client",
        ),
        (
            &["demo", "memfd", "-n", "x", "--size", "10"],
            "the demo memfd client",
        ),
    ]);
}

/// A client's options on a server.
fn client_options_on_a_server(n: &str, k: &str, fifo: &str) {
    not_applying(&[
        (
            &["posix", "msq", "-s", "-n", n, "--nonblock"],
            "the posix msq server",
        ),
        (
            &["posix", "msq", "-s", "-n", n, "-p", "3"],
            "the posix msq server",
        ),
        (
            &["sysv", "msq", "-s", "-k", k, "--interval", "0"],
            "the sysv msq server",
        ),
        (
            &["posix", "sem", "-s", "-n", n, "-r"],
            "the posix sem server",
        ),
        (
            &["sysv", "sem", "-s", "-k", k, "--undo"],
            "the sysv sem server",
        ),
        (
            &["posix", "shm", "-s", "-n", n, "-m", "x"],
            "the posix shm server",
        ),
        (
            &["fifo", "-s", "--path", fifo, "-m", "x"],
            "the fifo server",
        ),
        (
            &["demo", "memfd", "-s", "-n", "x", "--shrink"],
            "the demo memfd server",
        ),
    ]);
}

/// What makes an object, with --clean and --stat.
fn creation_options_with_clean_and_stat(n: &str, k: &str, fifo: &str) {
    not_applying(&[
        (
            &["posix", "shm", "--clean", "-n", n, "--size", "10"],
            "posix shm --clean",
        ),
        (
            &["posix", "msq", "--stat", "-n", n, "--max-msgs", "3"],
            "posix msq --stat",
        ),
        (
            &["sysv", "sem", "--stat", "-k", k, "--value", "3"],
            "sysv sem --stat",
        ),
        (
            &["sysv", "msq", "--clean", "-k", k, "--mode", "0644"],
            "sysv msq --clean",
        ),
        (
            &["sysv", "msq", "--clean", "-k", k, "-c", "2"],
            "sysv msq --clean",
        ),
        (
            &["fifo", "--clean", "--path", fifo, "-c", "2"],
            "fifo --clean",
        ),
    ]);
}

/// Each command is refused (exit 2, one line, no output): the option does
/// not apply to the mode.
fn not_applying(cases: &[(&[&str], &str)]) {
    for (args, mode) in cases {
        let o = run(args);
        let err = assert_fails(
            &o,
            2,
            &format!("does not apply to {mode}: it is an option of "),
        );
        assert!(o.stdout.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn an_option_given_in_its_own_mode_or_left_at_its_default_is_taken() {
    let name = unique_name("applies");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    // Every client option of posix msq at once, with the ones both ends
    // take: all of them apply.
    let out = assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "-c",
        "2",
        "-m",
        "x",
        "--interval",
        "0",
        "--nonblock",
        "-p",
        "3",
        "--max-msgs",
        "4",
        "--msg-size",
        "16",
        "--mode",
        "0640",
    ]));
    assert_eq!(out.lines().count(), 2, "{out}");
    // The server's own options, and the defaults of the client's (not given).
    let o = run(&[
        "posix",
        "msq",
        "-s",
        "-n",
        &name,
        "--count",
        "2",
        "--timeout",
        "5",
    ]);
    let out = assert_ok(&o);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn ls_bytes_and_json_do_not_go_together() {
    refused(
        &["--json", "ls", "--bytes"],
        "--bytes shapes the text table; the --json document always has exact sizes in bytes",
    );
}

#[test]
fn every_server_words_a_removal_alike() {
    let name = unique_name("removed");
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![
        Obj::PosixMsq(name.clone()),
        Obj::PosixShm(name.clone()),
        Obj::PosixSem(name.clone()),
        Obj::SysvMsq(key),
        Obj::SysvShm(key),
        Obj::SysvSem(key),
    ]);
    for (family, mech, what, call) in [
        ("posix", "msq", "queue", "mq_unlink"),
        ("posix", "shm", "segment", "shm_unlink"),
        ("posix", "sem", "semaphore", "sem_unlink"),
        ("sysv", "msq", "queue", "IPC_RMID"),
        ("sysv", "shm", "segment", "IPC_RMID"),
        ("sysv", "sem", "semaphore", "IPC_RMID"),
    ] {
        let at: [&str; 2] = if family == "posix" {
            ["-n", &name]
        } else {
            ["-k", &k]
        };
        let mut args = vec![family, mech, "-s", at[0], at[1], "--timeout", "30"];
        if mech != "msq" {
            args.extend(["--interval", "0.02"]);
        }
        let mut server = Server::spawn(&args);
        let start = server.next_out();
        assert_ok(&run(&[family, mech, "--clean", at[0], at[1]]));
        // The object as the start line names it: `/name`, or `0x... (id N)`.
        let named = if family == "posix" {
            name.clone()
        } else {
            let id = start
                .split("(id ")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .expect("a System V start line names the id");
            format!("{k} (id {id})")
        };
        let err = server.fails_with("");
        assert_eq!(
            err.last().map(String::as_str),
            Some(format!("error: {what} {named} was removed under the server ({call})").as_str()),
            "{family} {mech}"
        );
    }
}

/// The keys of a JSON object, in the order printed.
fn keys(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    v.as_object().expect("an object").keys().cloned().collect()
}

#[test]
fn stat_json_keeps_its_fields_in_order() {
    let name = unique_name("statkeys");
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![
        Obj::PosixMsq(name.clone()),
        Obj::PosixShm(name.clone()),
        Obj::SysvMsq(key),
        Obj::SysvSem(key),
    ]);
    assert_ok(&run(&["posix", "msq", "-n", &name, "-c", "1", "-m", "x"]));
    assert_ok(&run(&["posix", "shm", "-n", &name, "-m", "x"]));
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-c", "1", "-m", "x"]));
    let server = Server::start(&["sysv", "sem", "-s", "-k", &k, "--count", "1"]);
    let _ = server.finish();
    let owner = ["uid", "owner", "gid", "group", "perms"];
    let head = [
        "mechanism",
        "key",
        "id",
        "uid",
        "owner",
        "gid",
        "group",
        "cuid",
        "cgid",
        "perms",
    ];
    let expect = |first: &[&str], own: &[&str], last: &[&str]| -> Vec<String> {
        first
            .iter()
            .chain(own)
            .chain(last)
            .map(|s| s.to_string())
            .collect()
    };
    let stat = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        all.push("--stat");
        keys(&assert_ok(&run(&all)))
    };
    assert_eq!(
        stat(&["posix", "msq", "-n", &name]),
        expect(
            &["mechanism", "name", "maxmsg", "msgsize", "curmsgs"],
            &owner,
            &[]
        )
    );
    assert_eq!(
        stat(&["posix", "shm", "-n", &name]),
        expect(&["mechanism", "name", "size"], &owner, &[])
    );
    assert_eq!(
        stat(&["sysv", "msq", "-k", &k]),
        expect(
            &head,
            &["qnum", "qbytes", "cbytes", "lspid", "lrpid"],
            &["stime", "rtime", "ctime"]
        )
    );
    assert_eq!(
        stat(&["sysv", "sem", "-k", &k]),
        expect(&head, &["nsems", "values", "otime", "ctime"], &["sems"])
    );
}
