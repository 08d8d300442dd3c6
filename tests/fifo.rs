//! `fifo`: a server that outlives its writers, and paths it must refuse.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::common::*;

/// A path in the temp dir no other test uses, registered for removal.
fn unique_path(tag: &str, cleanup: &mut Cleanup) -> PathBuf {
    let name = unique_name(tag);
    let path = std::env::temp_dir().join(format!("{}.fifo", &name[1..]));
    cleanup.add(Obj::Path(path.clone()));
    path
}

#[test]
fn server_survives_two_writers_in_turn() {
    let mut cleanup = Cleanup::new();
    let path = unique_path("fifo-two", &mut cleanup);
    let p = path.to_str().unwrap();
    let mut server = Server::start(&["fifo", "-s", "--path", p, "--count", "4", "--timeout", "20"]);
    assert!(
        server.seen_out[0].contains("created"),
        "{:?}",
        server.seen_out
    );
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    assert_ok(&run(&["fifo", "--path", p, "-c", "2", "--interval", "0"]));
    assert_eq!(untimed(&server.next_out()), r#"{"count":1}"#);
    assert_eq!(untimed(&server.next_out()), r#"{"count":2}"#);
    // The first writer has closed: the server keeps going.
    assert_ok(&run(&[
        "fifo",
        "--path",
        p,
        "-m",
        "second writer",
        "-c",
        "2",
        "--interval",
        "0",
    ]));
    assert_eq!(untimed(&server.next_out()), "second writer");
    let (status, out, err) = server.finish();
    assert!(status.success(), "{out:?} {err:?}");
    assert_eq!(untimed(out.last().unwrap()), "second writer");
    // The server leaves the FIFO; --clean removes it.
    assert!(path.exists());
    let o = assert_ok(&run(&["fifo", "--clean", "--path", p]));
    assert!(o.contains("removed FIFO"), "{o}");
    assert!(!path.exists());
}

#[test]
fn server_json_lines_and_sigint() {
    let mut cleanup = Cleanup::new();
    let path = unique_path("fifo-json", &mut cleanup);
    let p = path.to_str().unwrap();
    let mut server = Server::start(&["--json", "fifo", "-s", "--path", p]);
    assert_ok(&run(&["fifo", "--path", p, "-c", "1"]));
    let line: serde_json::Value = serde_json::from_str(&server.next_out()).unwrap();
    assert_eq!(line["kind"], "message");
    assert_eq!(line["payload"]["count"], 1);
    server.signal(libc::SIGINT);
    let (status, out, _) = server.finish();
    assert_eq!(status.code(), Some(0));
    assert!(out.last().unwrap().contains("canceled"), "{out:?}");
}

/// Bytes waiting in the FIFO open as `fifo` (FIONREAD).
fn unread(fifo: &std::fs::File) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer it is given.
    let rc = unsafe { libc::ioctl(fifo.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

#[test]
fn server_killed_mid_stream_loses_at_most_the_line_in_flight() {
    let mut cleanup = Cleanup::new();
    let path = unique_path("fifo-kill9", &mut cleanup);
    let p = path.to_str().unwrap();
    let mut server = Stalled::start(&["fifo", "-s", "--path", p]);
    assert!(
        server.start_line.contains("created"),
        "{}",
        server.start_line
    );
    // Our own read end keeps what the FIFO holds alive after the kill, as a
    // writer still streaming would; we never read from it.
    let probe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    // Twenty lines are waiting when the server goes on, and its stdout
    // takes no more lines: it can print none of them.
    server.pause();
    assert_ok(&run(&["fifo", "--path", p, "-c", "20", "--interval", "0"]));
    let lines: Vec<String> = (1..=20).map(|i| format!("{{\"count\":{i}}}\n")).collect();
    let total: usize = lines.iter().map(String::len).sum();
    assert_eq!(unread(&probe), total);
    server.fill_stdout();
    server.resume();
    server.wait_blocked(|| unread(&probe) < total);
    let first = counts(&server.kill());
    // What is left is whole lines, the last ones; the next server gets them.
    let left_bytes = unread(&probe);
    let left = (0..=20)
        .find(|&k| lines[20 - k..].iter().map(String::len).sum::<usize>() == left_bytes)
        .unwrap_or_else(|| panic!("{left_bytes} bytes left are not whole lines"));
    let second = if left == 0 {
        String::new()
    } else {
        assert_ok(&run(&[
            "fifo",
            "-s",
            "--path",
            p,
            "--count",
            &left.to_string(),
        ]))
    };
    let second = counts(&second.lines().skip(1).map(String::from).collect::<Vec<_>>());
    assert_at_most_one_lost(20, &first, &second);
    assert_eq!(unread(&probe), 0);
}

#[test]
fn refuses_a_regular_file_and_leaves_it() {
    let mut cleanup = Cleanup::new();
    let path = unique_path("fifo-reg", &mut cleanup);
    std::fs::write(&path, "precious").unwrap();
    let p = path.to_str().unwrap();
    assert_fails(
        &run(&["fifo", "-s", "--path", p]),
        1,
        "is a regular file, not a FIFO",
    );
    assert_fails(
        &run(&["fifo", "--clean", "--path", p]),
        1,
        "is a regular file, not a FIFO",
    );
    assert_fails(&run(&["fifo", "--path", p, "-c", "1"]), 1, "not a FIFO");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn refuses_a_symlink_even_to_a_fifo() {
    let mut cleanup = Cleanup::new();
    let target = unique_path("fifo-target", &mut cleanup);
    let link = unique_path("fifo-link", &mut cleanup);
    nix::unistd::mkfifo(&target, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let l = link.to_str().unwrap();
    assert_fails(&run(&["fifo", "-s", "--path", l]), 1, "symbolic link");
    assert_fails(&run(&["fifo", "--clean", "--path", l]), 1, "symbolic link");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn client_without_fifo_or_reader_fails() {
    let mut cleanup = Cleanup::new();
    let path = unique_path("fifo-none", &mut cleanup);
    let p = path.to_str().unwrap();
    assert_fails(&run(&["fifo", "--path", p, "-c", "1"]), 1, "no such FIFO");
    assert!(!path.exists(), "a client must not create the FIFO");
    assert_fails(&run(&["fifo", "--clean", "--path", p]), 1, "no such FIFO");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_fails(
        &run(&["fifo", "--path", p, "-c", "1"]),
        1,
        "no server is reading it",
    );
    assert_fails(
        &run(&["fifo", "--path", p, "-m", "two\nlines"]),
        2,
        "newline",
    );
}

#[test]
fn server_in_a_missing_directory_names_enoent() {
    let mut cleanup = Cleanup::new();
    // A directory that does not exist: nothing can be made in it.
    let dir = unique_path("fifo-nodir", &mut cleanup);
    let path = dir.join("x.fifo");
    let p = path.to_str().unwrap();
    let err = assert_fails(&run(&["fifo", "-s", "--path", p, "-c", "1"]), 1, "");
    assert_eq!(
        err.lines().next(),
        Some(format!("error: cannot create FIFO {p}: No such file or directory (ENOENT)").as_str()),
        "{err}"
    );
    assert!(!dir.exists());
}

#[test]
fn server_times_out_without_lines() {
    let mut cleanup = Cleanup::new();
    let path = unique_path("fifo-idle", &mut cleanup);
    let p = path.to_str().unwrap();
    let o = run(&["fifo", "-s", "--path", p, "--timeout", "0.2"]);
    assert_fails(&o, 1, "timed out");
}

#[test]
fn message_alone_is_written_once() {
    let mut cleanup = Cleanup::new();
    let path = unique_path("fifo-once", &mut cleanup);
    let p = path.to_str().unwrap();
    let server = Server::start(&["fifo", "-s", "--path", p, "--count", "1", "--timeout", "20"]);
    let out = assert_ok(&run(&["fifo", "--path", p, "-m", "once"]));
    assert_eq!(out.lines().count(), 1, "{out}");
    let (status, lines, _) = server.finish();
    assert!(status.success());
    assert_eq!(untimed(&lines[1]), "once");
}

/// A path with an ESC and a newline is escaped in text, stdout and stderr.
#[test]
fn odd_paths_are_escaped() {
    let mut cleanup = Cleanup::new();
    let path = unique_path("esc\x1b[31m\nX", &mut cleanup);
    let p = path.to_str().unwrap();
    let shown = p.replace('\x1b', "\\x1b").replace('\n', "\\x0a");
    let o = run(&["fifo", "-s", "--path", p, "--count", "0"]);
    let out = assert_ok(&o);
    assert!(
        out.contains(&shown) && !out.contains('\x1b') && out.lines().count() == 1,
        "{out:?}"
    );
    let out = assert_ok(&run(&["fifo", "--clean", "--path", p]));
    assert_eq!(out, format!("removed FIFO {shown}\n"));
    let o = run(&["fifo", "--clean", "--path", p]);
    let err = assert_fails(&o, 1, "no such FIFO");
    assert_eq!(
        err,
        format!("error: cannot remove FIFO {shown}: no such FIFO\n")
    );
}

#[test]
fn a_writer_on_a_full_fifo_says_so() {
    let mut cleanup = Cleanup::new();
    let path = unique_path("fifo-full", &mut cleanup);
    let p = path.to_str().unwrap();
    examples_ipc::ipc::fifo::create(&path, 0o600).expect("mkfifo");
    // A reader that never reads: the pipe fills after 64 KiB.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open the FIFO");
    let line = "x".repeat(4000);
    let mut client = Server::spawn(&[
        "fifo",
        "--path",
        p,
        "-m",
        &line,
        "-c",
        "40",
        "--interval",
        "0",
    ]);
    let note = client.next_err();
    assert!(
        note.starts_with(&format!("FIFO {p} is full ("))
            && note.ends_with(" bytes): waiting for a reader (Ctrl-C to stop)"),
        "{note}"
    );
}
