//! The debugging modes under hostile input and broken machines: files that
//! are no snapshot, names in /dev/shm that are no segment, full file
//! systems, escape sequences in a snapshot's fields. Each refusal gives its
//! exit code and message and leaves nothing behind.

use std::process::{Command, Output};

use crate::common::{Cleanup, DEADLINE, Obj, TempDir, assert_fails, posix_exists, unique_name};

/// Run the binary under `timeout`, killed at the deadline: a command that
/// would block forever fails the test (exit 137) instead of stalling it.
fn run_within_deadline(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-s", "KILL", &DEADLINE.as_secs().to_string()])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("timeout (coreutils) is needed")
}

#[test]
fn a_restore_refuses_a_fifo_a_device_or_a_directory_at_once() {
    let dir = TempDir::new("notafile");
    let fifo = dir.file("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let name = unique_name("notafile");
    let guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    // A FIFO nobody writes to blocked the open forever.
    for (file, what) in [
        (fifo.as_str(), "a FIFO, not a snapshot file"),
        ("/dev/zero", "a character device, not a snapshot file"),
        (&dir.file(""), "a directory, not a snapshot file"),
    ] {
        let o = run_within_deadline(&["posix", "msq", "-n", &name, "--restore", file]);
        assert_fails(&o, 1, what);
        assert!(!posix_exists(&guard.0[0]), "{file} created {name}");
    }
}
