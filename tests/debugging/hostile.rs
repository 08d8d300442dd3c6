//! The debugging modes under hostile input and broken machines: files that
//! are no snapshot, names in /dev/shm that are no segment, full file
//! systems, escape sequences in a snapshot's fields. Each refusal gives its
//! exit code and message and leaves nothing behind.

use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{
    Cleanup, DEADLINE, Obj, TempDir, assert_fails, assert_ok, posix_exists, run, unique_name,
};

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

/// A snapshot header line of `mechanism`: the format's fields, mode 0600,
/// then `fields` (which may replace any of them).
fn header_line(mechanism: &str, fields: Value) -> String {
    let mut header = serde_json::json!({
        "format": "examples-ipc-snapshot", "version": 1, "mechanism": mechanism,
        "mode": "0600", "saved_at": "x",
    });
    if let (Some(h), Value::Object(extra)) = (header.as_object_mut(), fields) {
        h.extend(extra);
    }
    format!("{header}\n")
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

/// `sh -c SCRIPT BIN DIR` in a private mount namespace where DIR is a
/// tmpfs of one page, already full: every write into it is ENOSPC.
fn on_a_full_file_system(dir: &TempDir, script: &str) -> (String, String) {
    let script = format!(
        r#"mount -t tmpfs -o size=4k none "$1" || exit 100
           head -c 4k /dev/zero > "$1/fill"
           {script}"#
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .arg(&dir.0)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("unshare (util-linux)");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn save_and_restore_errors_name_the_errno_once_as_everywhere() {
    let dir = TempDir::new("errno-once");
    let name = unique_name("errno-once");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    assert_ok(&run(&["posix", "msq", "-n", &name, "-m", "kept"]));
    let (out, err) = on_a_full_file_system(
        &dir,
        &format!(r#""$0" posix msq -n {name} --save "$1/snap.jsonl"; echo "rc=$?""#),
    );
    assert_eq!(out, "rc=1\n", "{err}");
    assert!(
        err.contains("No space left on device (ENOSPC) (the message taken was put back)"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    let o = run(&["posix", "msq", "-n", &name, "--restore", &dir.file("none")]);
    let err = assert_fails(&o, 1, "none: No such file or directory (ENOENT)");
    assert!(!err.contains("os error") && !err.contains("hint:"), "{err}");
    // The message is still in the queue.
    let o = run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "-s",
        "-c",
        "1",
        "--timeout",
        "5",
    ]);
    assert!(assert_ok(&o).contains("kept"));
}

#[test]
fn clean_stale_save_says_one_message_and_names_the_errno() {
    let dir = TempDir::new("clean-words");
    std::fs::create_dir_all(dir.0.join("mq")).unwrap();
    std::fs::create_dir_all(dir.0.join("saved")).unwrap();
    let out = super::in_namespace(
        &dir.0,
        r#""$0" sysv msq -k 0x5a5a0003 -m 'x' >/dev/null || exit 100
           "$0" clean --stale --save "$1/missing" 2>&1; echo "rc=$?"
           "$0" clean --stale --save "$1/saved" || exit 101"#,
    );
    assert!(
        out.contains("kept: cannot create a file in ")
            && out.contains("missing: No such file or directory (ENOENT)"),
        "{out}"
    );
    assert!(!out.contains("os error"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    assert!(
        out.contains("saved/sysv-msq-0x5a5a0003-") && out.contains(" (1 message, 1 byte)"),
        "{out}"
    );
}

#[test]
fn a_restored_name_with_escapes_is_exact_in_json_and_escaped_in_text() {
    let dir = TempDir::new("escapes");
    let name = format!("{}\x1b[31m\n", unique_name("esc"));
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    let header = header_line(
        "posix-msq",
        serde_json::json!({
            "name": name, "maxmsg": 4, "msgsize": 64, "messages": 1, "saved_at": "\u{1b}[31m",
        }),
    );
    let file = dir.file("esc.jsonl");
    let message = r#"{"priority":1,"text":"hi"}"#;
    std::fs::write(&file, format!("{header}{message}\n")).unwrap();
    let o = run(&["--json", "posix", "msq", "--restore", &file]);
    let line: Value = serde_json::from_str(assert_ok(&o).trim()).unwrap();
    assert_eq!(line["object"], name.as_str(), "{line}");
    let o = run(&["posix", "msq", "--restore", &file]);
    let out = assert_ok(&o);
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.contains("\\x1b[31m\\x0a from"), "{out:?}");
}

#[test]
fn a_fifo_in_dev_shm_is_no_segment_to_dump_save_or_restore() {
    let dir = TempDir::new("shmfifo");
    let name = unique_name("shmfifo");
    let path = format!("/dev/shm{name}");
    let made = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
    assert!(made.success());
    let _guard = Cleanup(vec![Obj::Path(path.clone().into())]);
    let what = "in /dev/shm is a FIFO, not a segment";
    assert_fails(&run(&["posix", "shm", "-n", &name, "--dump"]), 1, what);
    let file = dir.file("snap.jsonl");
    assert_fails(
        &run(&["posix", "shm", "-n", &name, "--save", &file]),
        1,
        what,
    );
    assert!(!std::path::Path::new(&file).exists());
    let snapshot = header_line("posix-shm", serde_json::json!({"name": name, "size": 0}));
    std::fs::write(&file, snapshot).unwrap();
    let o = run(&["posix", "shm", "-n", &name, "--restore", &file]);
    assert_fails(&o, 1, what);
}

#[test]
fn doctors_fix_for_a_name_with_a_newline_and_an_escape_is_one_exact_line() {
    let (doc, text, _, _) = super::doctor_in(
        "128m",
        r#": > "/dev/shm/sem.$(printf 'bad\033[31m\nname')""#,
    );
    let fix = r"examples-ipc posix sem -n $'/bad\x1b[31m\nname' --clean";
    assert!(text.contains(&format!("  fix: {fix}\n")), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
    let finding = super::finding(&doc, "semaphore-file-invalid");
    assert_eq!(finding["fix"], fix, "{finding}");
}

#[test]
fn diff_of_a_segment_whose_every_other_byte_changed_stays_small() {
    use std::io::{BufRead as _, BufReader};
    const SIZE: usize = 16 << 20;
    let name = unique_name("diff-every-other");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    let size = SIZE.to_string();
    assert_ok(&run(&[
        "posix", "shm", "-n", &name, "--size", &size, "-m", "x",
    ]));
    let path = format!("/dev/shm{name}");
    // Even bytes 1, odd bytes 0: the text (up to the first NUL) stays
    // one byte, so the memory measured is the diff's.
    let segment = |even: u8| -> Vec<u8> {
        (0..SIZE)
            .map(|i| match i {
                0 => 1,
                i if i % 2 == 0 => even,
                _ => 0,
            })
            .collect()
    };
    // In place, never truncated: a segment that shrinks under the server
    // stops it.
    let write = |bytes: Vec<u8>| {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(&bytes).unwrap();
    };
    write(segment(1));
    // One range per changed byte took 16 bytes for each of them, twice:
    // far beyond this cap, while the two copies of the segment fit.
    let mut server = Command::new("timeout")
        .args(["-s", "KILL", &DEADLINE.as_secs().to_string()])
        .args(["prlimit", "--as=268435456", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(["posix", "shm", "-n", &name, "-s", "--on-change", "--diff"])
        .args(["--interval", "0.1", "-c", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("timeout and prlimit are needed");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    // The start line, then the first print.
    for _ in 0..2 {
        lines.next().expect("a line").unwrap();
    }
    write(segment(2));
    let diff = lines.next().expect("the diff line").unwrap();
    // One range from byte 2, merged over the unchanged odd bytes. A read
    // that races the write sees part of it (the two move through the
    // segment at their own pace), which gives a few ranges, from wherever
    // they crossed: never one per changed byte.
    assert!(diff.contains(r"\x01 (changed: "), "{diff}");
    assert!(diff.matches(", ").count() < 8, "{diff}");
    let o = server.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_restore_over_rlimit_msgqueue_names_the_limit_and_creates_nothing() {
    let dir = TempDir::new("rlimit-restore");
    let name = unique_name("rlimit-restore");
    let guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    let snapshot = header_line(
        "posix-msq",
        serde_json::json!({"name": name, "maxmsg": 10, "msgsize": 8192, "messages": 1}),
    );
    let file = dir.file("q.jsonl");
    std::fs::write(
        &file,
        format!("{snapshot}{{\"priority\":0,\"text\":\"a\"}}\n"),
    )
    .unwrap();
    let o = Command::new("prlimit")
        .args(["--msgqueue=1000", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(["posix", "msq", "--restore", &file])
        .output()
        .expect("prlimit (util-linux)");
    let err = assert_fails(&o, 1, "Too many open files (EMFILE)");
    assert!(err.contains("hint: this queue needs about"), "{err}");
    assert!(err.contains("RLIMIT_MSGQUEUE"), "{err}");
    assert!(!posix_exists(&guard.0[0]));
}

#[test]
fn a_save_to_a_path_ending_in_a_slash_takes_nothing() {
    let dir = TempDir::new("slash");
    let key = crate::common::unique_key();
    let k = crate::common::key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-m", "first"]));
    let file = format!("{}/", dir.file("missing"));
    let o = run(&["sysv", "msq", "-k", &k, "--save", &file]);
    let err = assert_fails(&o, 1, "the path names no file");
    assert!(!err.contains("taken"), "{err}");
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
}

#[test]
fn diff_of_a_sparse_terabyte_segment_is_an_error_not_an_abort() {
    let name = unique_name("sparse-diff");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    // What posix_ipc and others do: ftruncate, no pages behind it.
    let seg = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(format!("/dev/shm{name}"))
        .unwrap();
    seg.set_len(1 << 40).unwrap();
    // The address-space cap makes the allocation fail here as it would on
    // any machine with less than a TiB to give.
    let o = Command::new("timeout")
        .args(["-s", "KILL", &DEADLINE.as_secs().to_string()])
        .args(["prlimit", "--as=4294967296", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args([
            "posix",
            "shm",
            "-n",
            &name,
            "-s",
            "--on-change",
            "--diff",
            "-c",
            "1",
        ])
        .output()
        .expect("timeout and prlimit are needed");
    assert_fails(&o, 1, "1099511627776 bytes cannot be held in memory");
}

/// A sparse POSIX segment of `size` bytes made as ftruncate makes it, with
/// `data` written at each offset.
fn sparse_segment(name: &str, size: u64, data: &[(u64, &[u8])]) {
    use std::os::unix::fs::FileExt as _;
    let seg = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(format!("/dev/shm{name}"))
        .unwrap();
    seg.set_len(size).unwrap();
    for (at, bytes) in data {
        seg.write_all_at(bytes, *at).unwrap();
    }
}

#[test]
fn a_sparse_segment_saves_its_holes_as_zeros_lines_without_reading_them() {
    let dir = TempDir::new("sparse-save");
    let (big, small, copy) = (
        unique_name("sparse-big"),
        unique_name("sparse-small"),
        unique_name("sparse-copy"),
    );
    let _guard = Cleanup(vec![
        Obj::PosixShm(big.clone()),
        Obj::PosixShm(small.clone()),
        Obj::PosixShm(copy.clone()),
    ]);
    // 1 TiB read 48 KiB at a time took hours.
    sparse_segment(&big, 1 << 40, &[(0, b"head"), (1 << 30, b"middle")]);
    let file = dir.file("big.jsonl");
    let o = run_within_deadline(&["posix", "shm", "-n", &big, "--save", &file]);
    assert!(assert_ok(&o).contains("(1099511627776 bytes)"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.lines().count() < 10, "{}", text.lines().count());
    assert!(text.contains(r#""zeros":"#), "{text}");
    // A round trip through the zeros lines gives the same bytes.
    let data: [(u64, &[u8]); 2] = [(5, b"start"), (600_000, b"\xffdata")];
    sparse_segment(&small, 1 << 20, &data);
    let file = dir.file("small.jsonl");
    assert_ok(&run(&["posix", "shm", "-n", &small, "--save", &file]));
    assert_ok(&run(&["posix", "shm", "-n", &copy, "--restore", &file]));
    let dump = |name: &str| assert_ok(&run(&["posix", "shm", "-n", name, "--dump"]));
    assert_eq!(dump(&copy), dump(&small));
}

#[test]
fn a_snapshot_of_an_ipc_private_object_needs_a_key_and_makes_nothing_without() {
    let dir = TempDir::new("private");
    for mechanism in ["msq", "shm"] {
        let snapshot = match mechanism {
            "msq" => header_line(
                "sysv-msq",
                serde_json::json!({"key": "0x00000000", "qbytes": 16384, "messages": 0}),
            ),
            _ => header_line(
                "sysv-shm",
                serde_json::json!({"key": "0x00000000", "size": 0}),
            ),
        };
        let file = dir.file(&format!("{mechanism}.jsonl"));
        std::fs::write(&file, snapshot).unwrap();
        // In an IPC namespace of its own, so that ipcs sees only what it made.
        let script = r#""$0" sysv "$1" --restore "$2"; echo "rc=$?"; ipcs -q -m | grep -c 0x"#;
        let o = Command::new("unshare")
            .args(["--ipc", "sh", "-c", script])
            .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
            .args([mechanism, &file])
            .output()
            .expect("unshare (util-linux)");
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(out, "rc=2\n0\n", "{err}");
        assert!(err.contains("IPC_PRIVATE object (key 0x00000000)"), "{err}");
    }
}
