//! Queue saves that do not end as planned: killed midway (the temporary
//! file they leave, and `--restore --partial` of it), and stopped by
//! Ctrl-C (what was taken is committed, the rest stays queued). Each
//! checks that no message is lost or duplicated.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use super::modes::{json_lines, peek, qnum};
use crate::common::{
    Cleanup, DEADLINE, Obj, TempDir, assert_fails, assert_ok, key_hex, run, unique_key,
};

/// Messages in the queue these tests save.
const SENT: usize = 20;

/// The text of message `i` of a killed save's queue: 100 bytes, numbered.
fn numbered(i: usize) -> String {
    format!("{i:02} {}", "x".repeat(97))
}

/// Fill the queue `k` with the SENT `numbered` messages, then save it
/// under RLIMIT_FSIZE, which kills the save with SIGXFSZ at the write
/// that passes 1000 bytes: a kill -9 at a known point, a few messages in.
/// The temporary file it left in `dir`.
fn killed_save(k: &str, dir: &TempDir) -> PathBuf {
    use std::os::unix::process::ExitStatusExt as _;
    assert_ok(&run(&["sysv", "msq", "-k", k, "-c", "0"]));
    for i in 0..SENT {
        assert_ok(&run(&[
            "sysv",
            "msq",
            "-k",
            k,
            "-m",
            &numbered(i),
            "-c",
            "1",
        ]));
    }
    let o = Command::new("prlimit")
        .args(["--fsize=1000", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(["sysv", "msq", "-k", k, "--save", &dir.file("snap.jsonl")])
        .output()
        .expect("prlimit (util-linux)");
    // SIGXFSZ is 25 on Linux (x86, Arm, RISC-V...).
    assert_eq!(o.status.signal(), Some(25), "{o:?}");
    let temps: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(temps.len(), 1, "{temps:?}");
    temps.into_iter().next().unwrap()
}

/// The messages of a snapshot's whole lines after its header: those that
/// end in a newline, and a last one that lacks only that.
fn whole_lines(text: &str) -> Vec<Value> {
    text.split_inclusive('\n')
        .skip(1)
        .map_while(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Two unique keys, the saved queue's and the one restored into, as hex,
/// and the guard that removes both queues.
fn two_queues() -> (String, String, Cleanup) {
    let (key, into) = (unique_key(), unique_key());
    let guard = Cleanup(vec![Obj::SysvMsq(key), Obj::SysvMsq(into)]);
    (key_hex(key), key_hex(into), guard)
}

#[test]
fn a_save_killed_midway_leaves_all_it_took_but_one_in_its_temporary_file() {
    let dir = TempDir::new("killed-save");
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    let temp = killed_save(&k, &dir);
    let saved = whole_lines(&std::fs::read_to_string(&temp).unwrap());
    let left = qnum(&k) as usize;
    assert!(!saved.is_empty());
    assert!(
        saved.len() + left + 1 >= SENT,
        "{} saved, {left} left",
        saved.len()
    );
    for (i, line) in saved.iter().enumerate() {
        assert_eq!(line["text"], numbered(i), "{line}");
    }
}

#[test]
fn restore_partial_gives_back_what_a_killed_save_took() {
    let dir = TempDir::new("partial");
    let (k, t, _guard) = two_queues();
    let temp = killed_save(&k, &dir);
    let temp = temp.to_str().unwrap();
    let taken = whole_lines(&std::fs::read_to_string(temp).unwrap());
    // Without --partial: refused, with what it holds and what works; the
    // queue is not created.
    let o = run(&["sysv", "msq", "-k", &t, "--restore", temp]);
    let err = assert_fails(
        &o,
        1,
        &format!(
            "truncated: the file ends after {} whole messages of the {SENT} its header counts",
            taken.len()
        ),
    );
    assert!(
        err.contains(&format!(
            "hint: --partial restores the {} whole",
            taken.len()
        )),
        "{err}"
    );
    assert_fails(&run(&["sysv", "msq", "-k", &t, "--stat"]), 1, "no such");
    let o = run(&["sysv", "msq", "-k", &t, "--restore", temp, "--partial"]);
    let out = assert_ok(&o);
    assert!(
        out.contains(&format!(
            "({} of the {SENT} messages the header counts, ",
            taken.len()
        )) && out.ends_with("; created; the file was cut short: an interrupted save)\n"),
        "{out}"
    );
    let restored: Vec<Value> = peek(&t).iter().map(|m| m["text"].clone()).collect();
    let want: Vec<Value> = taken.iter().map(|m| m["text"].clone()).collect();
    assert_eq!(restored, want);
}

/// `sysv msq -k K --save FILE`, each of its receives held for 0.2 s as it
/// returns (strace's fault injection): slow enough that the test signals
/// it midway, whatever the machine's load. `-D` leaves the traced command
/// at the pid spawned here, so the signal goes to it, not to strace.
fn slow_save(k: &str, file: &str) -> std::process::Child {
    Command::new("strace")
        .args(["-D", "-qq", "-o", "/dev/null", "-e", "trace=msgrcv"])
        .args(["-e", "inject=msgrcv:delay_exit=200000", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(["sysv", "msq", "-k", k, "--save", file])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace is needed")
}

#[test]
fn ctrl_c_during_a_save_commits_what_it_took_and_leaves_the_rest() {
    let dir = TempDir::new("ctrl-c-save");
    let (k, t, _guard) = two_queues();
    let sent = SENT.to_string();
    assert_ok(&run(&[
        "sysv",
        "msq",
        "-k",
        &k,
        "-c",
        &sent,
        "--interval",
        "0",
    ]));
    let file = dir.file("snap.jsonl");
    let save = slow_save(&k, &file);
    // The event: the save took its first message.
    let end = Instant::now() + DEADLINE;
    while qnum(&k) == SENT as u64 {
        assert!(Instant::now() < end, "the save took nothing");
    }
    // SAFETY: kill(2) on our own child's pid, which it still is: it cannot
    // have been reaped, as only `wait_with_output` below reaps it.
    unsafe { libc::kill(save.id() as i32, libc::SIGINT) };
    let o = save.wait_with_output().unwrap();
    let left = qnum(&k);
    let err = assert_fails(&o, 1, "the save was canceled: sysv-msq key ");
    assert!(
        err.contains(&format!("still holds {left} message")),
        "{err}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("saved sysv msq ")
            && lines[0].ends_with(&format!("; {left} left in the queue)")),
        "{out}"
    );
    assert_eq!(lines[1], "canceled.");
    // FILE holds exactly what left the queue, counted right; no
    // temporary file stays.
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["snap.jsonl"]);
    let text = std::fs::read_to_string(&file).unwrap();
    let header = json_lines(text.lines().next().unwrap());
    let saved = text.lines().count() as u64 - 1;
    assert_eq!(header[0]["messages"], saved, "{text}");
    assert!(saved >= 1 && left >= 1, "{saved} saved, {left} left");
    assert_eq!(saved + left, SENT as u64);
    // The file restored, then what is left: the original sequence.
    assert_ok(&run(&["sysv", "msq", "-k", &t, "--restore", &file]));
    let counts: Vec<Value> = peek(&t)
        .into_iter()
        .chain(peek(&k))
        .map(|m| m["payload"]["count"].clone())
        .collect();
    let want: Vec<Value> = (1..=SENT).map(Value::from).collect();
    assert_eq!(counts, want);
}
