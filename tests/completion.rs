//! Shell completion driven as the shells drive it: the script the user
//! sources, its completion function called with the words typed so far, and
//! this binary found in PATH answering.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// PATH with the binary under test first, as an installed one would be.
fn path_with_bin() -> String {
    let bin = PathBuf::from(assert_cmd::cargo::cargo_bin!("examples-ipc"));
    let dir = bin.parent().expect("the binary is in a directory");
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `examples-ipc completions SHELL`, written into `dir`.
fn script(shell: &str, dir: &Path) -> PathBuf {
    let script = assert_ok(&run(&["completions", shell]));
    let path = dir.join(format!("examples-ipc.{shell}"));
    std::fs::write(&path, script).unwrap();
    path
}

/// A shell with a clean environment: only PATH, and HOME in the test's own
/// directory (fish writes its history and variables there).
fn shell(program: &str, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", path_with_bin())
        .env("HOME", home);
    cmd
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("-c")
        .arg("exit 0")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run `program -c CODE ARGS...` and return its stdout lines.
#[track_caller]
fn lines_of(mut cmd: Command) -> Vec<String> {
    let o = cmd.output().expect("cannot run the shell");
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{:?}\nstderr: {}",
        cmd,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What bash offers for `words` (the last one is the word at the cursor,
/// possibly empty): the script is sourced in `bash --norc`, and the
/// function `complete -p` names is called with COMP_WORDS/COMP_CWORD set,
/// as bash does on Tab.
fn bash_offers(script: &Path, words: &[&str]) -> Vec<String> {
    let home = script
        .parent()
        .expect("the script is in the test's directory");
    const DRIVER: &str = r#"
        source "$1"; shift
        spec=$(complete -p examples-ipc) || exit 3
        func=${spec##* -F }; func=${func%% *}
        COMP_WORDS=("$@")
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMP_LINE="${COMP_WORDS[*]}"
        COMP_POINT=${#COMP_LINE}
        COMP_TYPE=9
        "$func" examples-ipc "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        for c in "${COMPREPLY[@]}"; do printf '%s\n' "$c"; done
    "#;
    let mut cmd = shell("bash", home);
    cmd.args(["--norc", "--noprofile", "-c", DRIVER, "bash"])
        .arg(script)
        .arg("examples-ipc")
        .args(words);
    lines_of(cmd)
}

#[track_caller]
fn exactly(got: &[String], want: &[&str], words: &[&str]) {
    let mut got = got.to_vec();
    got.sort();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "examples-ipc {}<Tab>", words.join(" "));
}

#[track_caller]
fn includes(got: &[String], want: &[&str], words: &[&str]) {
    for w in want {
        assert!(
            got.iter().any(|g| g == w),
            "examples-ipc {}<Tab> lacks {w}: {got:?}",
            words.join(" ")
        );
    }
}

#[track_caller]
fn excludes(got: &[String], unwanted: &[&str], words: &[&str]) {
    for u in unwanted {
        assert!(
            !got.iter().any(|g| g == u),
            "examples-ipc {}<Tab> offers {u}: {got:?}",
            words.join(" ")
        );
    }
}

#[test]
fn bash_completes_every_level() {
    let dir = TempDir::new("bash-completion");
    let script = script("bash", &dir.0);
    bash_offers_commands(&script);
    bash_offers_flags_and_values(&script);
}

/// Levels 1 and 2: the commands, and a family's mechanisms.
fn bash_offers_commands(script: &Path) {
    let offers = |words: &[&str]| bash_offers(script, words);
    // Level 1: the commands.
    let w = [""];
    let got = offers(&w);
    includes(
        &got,
        &[
            "posix",
            "sysv",
            "tour",
            "bench",
            "ls",
            "clean",
            "limits",
            "completions",
            "man",
            "fifo",
            "pipe",
            "demo",
        ],
        &w,
    );
    let w = ["po"];
    exactly(&offers(&w), &["posix"], &w);
    // Level 2: the mechanisms of a family, after a global flag too.
    let w = ["posix", ""];
    includes(&offers(&w), &["msq", "shm", "sem"], &w);
    let w = ["--json", "sysv", "s"];
    exactly(&offers(&w), &["shm", "sem"], &w);
    let w = ["demo", ""];
    includes(
        &offers(&w),
        &[
            "race",
            "mutex",
            "atomic",
            "cures",
            "ring",
            "scoreboard",
            "sorted",
            "memfd",
        ],
        &w,
    );
}

/// Level 3 and values: a mechanism's flags, and the values of a flag.
fn bash_offers_flags_and_values(script: &Path) {
    let offers = |words: &[&str]| bash_offers(script, words);
    // Level 3: a mechanism's flags, and only its own.
    let w = ["posix", "msq", "--"];
    let got = offers(&w);
    includes(
        &got,
        &[
            "--server",
            "--clean",
            "--stat",
            "--name",
            "--count",
            "--priority",
        ],
        &w,
    );
    excludes(&got, &["--key", "--type"], &w);
    let w = ["sysv", "msq", "--ty"];
    exactly(&offers(&w), &["--type"], &w);
    // Values.
    let w = ["bench", "--pin", ""];
    exactly(&offers(&w), &["none", "same", "split"], &w);
    let w = ["bench", "--pin", "same,"];
    exactly(&offers(&w), &["same,none", "same,same", "same,split"], &w);
    let w = ["ls", "-t", ""];
    exactly(&offers(&w), &["msq", "shm", "sem"], &w);
    let w = ["clean", "--stale", "--posix", "--type", "s"];
    exactly(&offers(&w), &["shm", "sem"], &w);
    let w = ["clean", "--"];
    includes(&offers(&w), &["--stale", "--dry-run", "--prefix"], &w);
    let w = ["completions", ""];
    includes(&offers(&w), &["bash", "zsh", "fish"], &w);
    let w = ["tour", "--only", "posix-msq,sysv-"];
    exactly(
        &offers(&w),
        &[
            "posix-msq,sysv-msq",
            "posix-msq,sysv-shm",
            "posix-msq,sysv-sem",
        ],
        &w,
    );
    // The test hook is never offered.
    let w = ["bench", "--"];
    let got = offers(&w);
    includes(&got, &["--pin", "--mech", "--svg"], &w);
    excludes(&got, &["--corrupt-after"], &w);
    let w = ["bench", "--corr"];
    exactly(&offers(&w), &[], &w);
}

#[test]
fn names_and_keys_complete_to_the_objects_that_exist() {
    let dir = TempDir::new("bash-existing");
    let script = script("bash", &dir.0);
    let offers = |words: &[&str]| bash_offers(&script, words);
    let shm = unique_name("tab-shm");
    let key = unique_key();
    let mut cleanup = Cleanup::new();
    cleanup.add(Obj::PosixShm(shm.clone()));
    cleanup.add(Obj::SysvMsq(key));
    assert_ok(&run(&["posix", "shm", "-n", &shm, "-m", "x"]));
    let hex = key_hex(key);
    assert_ok(&run(&["sysv", "msq", "-k", &hex, "-m", "x", "-c", "1"]));

    // The segment is offered where a segment is meant, not as a queue.
    let w = ["posix", "shm", "--clean", "-n", &shm];
    exactly(&offers(&w), &[&shm], &w);
    let w = ["posix", "msq", "--clean", "-n", &shm];
    exactly(&offers(&w), &[], &w);
    let w = ["clean", "--stale", "--name", &shm];
    exactly(&offers(&w), &[&shm], &w);
    // The key as ipcs prints it.
    let w = ["sysv", "msq", "--stat", "-k", &hex];
    exactly(&offers(&w), &[&hex], &w);
    let w = ["ls", "-k", &hex];
    exactly(&offers(&w), &[&hex], &w);
    let w = ["sysv", "sem", "-k", &hex];
    exactly(&offers(&w), &[], &w);
}

#[test]
fn bash_script_registers_for_the_command_name() {
    let script = assert_ok(&run(&["completions", "bash"]));
    // Completion calls the binary found in PATH, so a saved script keeps
    // working when the binary moves.
    assert!(script.contains("complete "), "{script}");
    assert!(script.contains(" examples-ipc\n"), "{script}");
    assert!(!script.contains("/target/"), "{script}");
}

/// The candidates zsh's completion function passes to `_describe`, with
/// `words`/`CURRENT` set as zsh sets them; the description after `:` cut off.
fn zsh_offers(home: &Path, setup: &str, call: &str, words: &[&str]) -> Vec<String> {
    let code = format!(
        r#"
        {setup}
        _describe() {{ print -rl -- "${{(@P)3}}" }}
        words=(examples-ipc "$@")
        CURRENT=${{#words}}
        {call}
        "#
    );
    let mut cmd = shell("zsh", home);
    cmd.args(["-f", "-c", &code, "zsh"]).args(words);
    lines_of(cmd)
        .into_iter()
        .map(|l| l.split(':').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn zsh_completes_sourced_and_from_fpath() {
    let dir = TempDir::new("zsh-completion");
    let script = script("zsh", &dir.0);
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.starts_with("#compdef examples-ipc\n"), "{text}");
    if !have("zsh") {
        eprintln!("zsh is not installed (.ci/run installs it): only the script's text was checked");
        return;
    }
    let mut parse = shell("zsh", &dir.0);
    parse.arg("-n").arg(&script);
    lines_of(parse);

    // Sourced from .zshrc: it registers a function with compdef.
    let sourced = format!(
        r#"compdef() {{ REGISTERED=$1 }}; source {}"#,
        script.display()
    );
    let w = ["posix", ""];
    includes(
        &zsh_offers(&dir.0, &sourced, "$REGISTERED", &w),
        &["msq", "shm", "sem"],
        &w,
    );
    let w = ["bench", "--pin", ""];
    exactly(
        &zsh_offers(&dir.0, &sourced, "$REGISTERED", &w),
        &["none", "same", "split"],
        &w,
    );
    // Installed as _examples-ipc in $fpath: autoloaded, the file is the
    // completion function and must complete on the first Tab.
    let fpath = dir.0.join("fpath");
    std::fs::create_dir(&fpath).unwrap();
    std::fs::copy(&script, fpath.join("_examples-ipc")).unwrap();
    let autoload = format!(
        r#"fpath=({} $fpath); autoload -Uz _examples-ipc; compdef() {{ }}"#,
        fpath.display()
    );
    let w = ["ls", "-t", ""];
    exactly(
        &zsh_offers(&dir.0, &autoload, "_examples-ipc", &w),
        &["msq", "shm", "sem"],
        &w,
    );
    let w = ["demo", "r"];
    exactly(
        &zsh_offers(&dir.0, &autoload, "_examples-ipc", &w),
        &["race", "ring"],
        &w,
    );
}

#[test]
fn fish_completes_every_level() {
    let dir = TempDir::new("fish-completion");
    let script = script("fish", &dir.0);
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("complete "), "{text}");
    assert!(text.contains("--command examples-ipc"), "{text}");
    if !have("fish") {
        eprintln!(
            "fish is not installed (.ci/run installs it): only the script's text was checked"
        );
        return;
    }
    // `complete -C LINE` asks fish what Tab offers after LINE.
    let offers = |line: &str| {
        let code = format!("source {}; complete -C '{line}'", script.display());
        let mut cmd = shell("fish", &dir.0);
        cmd.args(["--no-config", "-c", &code]);
        lines_of(cmd)
            .into_iter()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    includes(
        &offers("examples-ipc posix "),
        &["msq", "shm", "sem"],
        &["posix", ""],
    );
    exactly(
        &offers("examples-ipc bench --pin "),
        &["none", "same", "split"],
        &["bench", "--pin", ""],
    );
    exactly(
        &offers("examples-ipc ls -t "),
        &["msq", "shm", "sem"],
        &["ls", "-t", ""],
    );
    let got = offers("examples-ipc bench --");
    excludes(&got, &["--corrupt-after"], &["bench", "--"]);
    includes(&got, &["--pin"], &["bench", "--"]);
}
