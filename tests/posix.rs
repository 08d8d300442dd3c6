//! POSIX msq, shm and sem across real processes.

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use crate::common::*;

fn stat_json(args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    full.push("--stat");
    let out = assert_ok(&run(&full));
    serde_json::from_str(out.trim()).expect("stat is one JSON object")
}

// ---------- msq ----------

#[test]
fn msq_server_prints_every_message_of_a_client() {
    let name = unique_name("msq");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    let server = Server::start(&[
        "posix",
        "msq",
        "-s",
        "-n",
        &name,
        "--count",
        "3",
        "--timeout",
        "30",
    ]);
    let out = assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "-c",
        "3",
        "--interval",
        "0",
    ]));
    let sent: Vec<&str> = out.lines().map(untimed).collect();
    assert_eq!(
        sent,
        [
            r#"sent {"count":1}"#,
            r#"sent {"count":2}"#,
            r#"sent {"count":3}"#
        ]
    );
    let (status, lines, _) = server.finish();
    assert!(status.success());
    let got: Vec<&str> = lines[1..].iter().map(|l| untimed(l)).collect();
    assert_eq!(got, [r#"{"count":1}"#, r#"{"count":2}"#, r#"{"count":3}"#]);
    // HH:MM:SS.ffffff
    let stamp = lines[1].split(' ').next().unwrap();
    assert_eq!(stamp.len(), 15, "{stamp}");
    assert_eq!(&stamp[8..9], ".");
}

#[test]
fn msq_client_first_then_server() {
    let name = unique_name("msq-first");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "-c",
        "2",
        "--interval",
        "0",
        "-m",
        "héllo\u{1}",
    ]));
    let server = Server::spawn(&[
        "posix",
        "msq",
        "-s",
        "-n",
        &name,
        "--count",
        "2",
        "--timeout",
        "30",
    ]);
    let (status, lines, _) = server.finish();
    assert!(status.success());
    assert!(lines[0].contains("opened"), "{}", lines[0]);
    assert!(lines[0].contains("2 queued"), "{}", lines[0]);
    assert_eq!(untimed(&lines[1]), "héllo\\x01");
}

#[test]
fn msq_priority_and_json() {
    let name = unique_name("msq-json");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    let server = Server::start(&[
        "posix",
        "msq",
        "-s",
        "-n",
        &name,
        "--count",
        "2",
        "--timeout",
        "30",
        "--json",
    ]);
    assert_ok(&run(&[
        "--json",
        "posix",
        "msq",
        "-n",
        &name,
        "-c",
        "1",
        "-p",
        "7",
        "-m",
        "plain text",
    ]));
    let out = assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "-c",
        "1",
        "-m",
        r#"{ "a" : [1, 2] }"#,
        "--json",
    ]));
    let sent: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(sent["kind"], "sent");
    assert_eq!(sent["payload"]["a"][1], 2);
    let (status, lines, _) = server.finish();
    assert!(status.success());
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed[0]["kind"], "start");
    assert_eq!(parsed[0]["msgsize"], 8192);
    assert_eq!(parsed[1]["kind"], "message");
    assert_eq!(parsed[1]["priority"], 7);
    assert_eq!(parsed[1]["text"], "plain text");
    assert_eq!(parsed[2]["payload"], serde_json::json!({"a": [1, 2]}));
    assert!(parsed[1]["time"].as_str().unwrap().contains('T'));
}

#[test]
fn msq_text_server_shows_priority() {
    let name = unique_name("msq-prio");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    assert_ok(&run(&["posix", "msq", "-n", &name, "-p", "3", "-m", "x"]));
    let (status, lines, _) =
        Server::spawn(&["posix", "msq", "-s", "-n", &name, "--count", "1"]).finish();
    assert!(status.success());
    assert!(lines[0].contains("1 queued"), "-m sends once: {}", lines[0]);
    assert_eq!(untimed(&lines[1]), "priority 3: x");
}

#[test]
fn msq_message_over_the_size_limit_is_refused_before_sending() {
    let name = unique_name("msq-big");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    // The client creates the queue with the attributes it is given.
    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "--msg-size",
        "16",
        "-c",
        "0",
    ]));
    let o = run(&["posix", "msq", "-n", &name, "-m", &"x".repeat(100)]);
    let err = assert_fails(&o, 1, "100 bytes");
    assert!(err.contains("16 bytes"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(o.stdout.is_empty());
    assert_eq!(stat_json(&["posix", "msq", "-n", &name])["curmsgs"], 0);
    // -c counts too: {"count":1000000} is 17 bytes.
    let o = run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "-c",
        "1000000",
        "--interval",
        "0",
    ]);
    assert_fails(&o, 1, "17 bytes");
    assert_eq!(stat_json(&["posix", "msq", "-n", &name])["curmsgs"], 0);
}

#[test]
fn msq_nonblock_on_a_full_queue_fails() {
    let name = unique_name("msq-full");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "--max-msgs",
        "1",
        "-c",
        "1",
        "--interval",
        "0",
    ]));
    let o = run(&["posix", "msq", "-n", &name, "-c", "1", "--nonblock"]);
    assert_fails(&o, 1, "queue is full");
    let st = stat_json(&["posix", "msq", "-n", &name]);
    assert_eq!(st["maxmsg"], 1);
    assert_eq!(st["curmsgs"], 1);
}

#[test]
fn msq_blocked_client_continues_when_a_server_drains() {
    let name = unique_name("msq-block");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    // Capacity 1 and 5 messages: the client must wait for the server each time.
    let client = bin()
        .args([
            "posix",
            "msq",
            "-n",
            &name,
            "--max-msgs",
            "1",
            "-c",
            "5",
            "--interval",
            "0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server::spawn(&[
        "posix",
        "msq",
        "-s",
        "-n",
        &name,
        "--count",
        "5",
        "--timeout",
        "30",
    ]);
    server.wait_for(r#"{"count":5}"#);
    let o = client.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 5);
    assert!(server.finish().0.success());
}

#[test]
fn msq_client_on_a_full_queue_says_so_once() {
    let name = unique_name("msq-note");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    // Capacity 1 and 3 messages: the client waits at the second and the
    // third, and says so once, on stderr, after about a second.
    let mut client = Server::spawn(&[
        "posix",
        "msq",
        "-n",
        &name,
        "--max-msgs",
        "1",
        "-c",
        "3",
        "--interval",
        "0",
    ]);
    assert_eq!(
        client.next_err(),
        format!("queue {name} is full (1 of 1): waiting for a reader (Ctrl-C to stop)")
    );
    let mut server = Server::start(&["posix", "msq", "-s", "-n", &name, "--count", "3"]);
    server.wait_for(r#"{"count":3}"#);
    let (status, out, err) = client.finish();
    assert!(status.success(), "{out:?} {err:?}");
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(err.len(), 1, "once: {err:?}");
    assert!(server.finish().0.success());
}

/// Messages waiting in queue `name` (mq_getattr).
fn queued(name: &str) -> i64 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: opening read-only without O_CREAT creates nothing.
    let mq = unsafe { libc::mq_open(c.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) };
    assert!(
        mq >= 0,
        "mq_open {name}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: mq_attr is plain integers: all zero is valid.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: mq is open and attr is a writable mq_attr.
    let rc = unsafe { libc::mq_getattr(mq, &mut attr) };
    // SAFETY: mq is the descriptor opened above.
    unsafe { libc::mq_close(mq) };
    assert_eq!(rc, 0, "mq_getattr {name}");
    attr.mq_curmsgs
}

#[test]
fn msq_server_killed_mid_stream_loses_at_most_the_message_in_flight() {
    let name = unique_name("msq-kill9");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    let mut server = Stalled::start(&["posix", "msq", "-s", "-n", &name]);
    assert!(
        server.start_line.contains("created"),
        "{}",
        server.start_line
    );
    // Ten messages (a full default queue) are waiting when the server goes
    // on, and its stdout takes no more lines: it can print none of them.
    server.pause();
    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "-c",
        "10",
        "--interval",
        "0",
    ]));
    server.fill_stdout();
    server.resume();
    server.wait_blocked(|| queued(&name) < 10);
    let first = counts(&server.kill());
    // The next server gets what the first one left in the queue.
    let left = queued(&name).to_string();
    let second = if left == "0" {
        String::new()
    } else {
        assert_ok(&run(&["posix", "msq", "-s", "-n", &name, "--count", &left]))
    };
    let second = counts(&second.lines().skip(1).map(String::from).collect::<Vec<_>>());
    assert_at_most_one_lost(10, &first, &second);
    assert_eq!(queued(&name), 0);
}

#[test]
fn msq_sigterm_and_sigint_cancel_the_server_and_keep_the_queue() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let name = unique_name("msq-sig");
        let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
        let server = Server::start(&["posix", "msq", "-s", "-n", &name]);
        server.signal(sig);
        let (status, lines, err) = server.finish();
        assert_eq!(status.code(), Some(0), "{err:?}");
        assert_eq!(lines.last().map(String::as_str), Some("canceled."));
        assert!(posix_exists(&Obj::PosixMsq(name.clone())));
    }
}

#[test]
fn msq_server_timeout_exits_1() {
    let name = unique_name("msq-timeout");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    Server::spawn(&["posix", "msq", "-s", "-n", &name, "--timeout", "0.2"]).fails_with("timed out");
}

#[test]
fn msq_count_zero_exits_after_the_start_line() {
    let name = unique_name("msq-zero");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    let (status, lines, _) =
        Server::spawn(&["posix", "msq", "-s", "-n", &name, "--count", "0"]).finish();
    assert!(status.success());
    assert_eq!(lines.len(), 1);
}

#[test]
fn msq_clean_and_stat() {
    let name = unique_name("msq-clean");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    assert_fails(
        &run(&["posix", "msq", "--clean", "-n", &name]),
        1,
        "no such queue",
    );
    assert_fails(
        &run(&["posix", "msq", "--stat", "-n", &name]),
        1,
        "no such queue",
    );
    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "-c",
        "0",
        "--max-msgs",
        "3",
        "--msg-size",
        "64",
        "--mode",
        "0640",
    ]));
    let st = stat_json(&["posix", "msq", "-n", &name]);
    assert_eq!(st["mechanism"], "posix-msq");
    assert_eq!(st["maxmsg"], 3);
    assert_eq!(st["msgsize"], 64);
    assert_eq!(st["perms"], "0640");
    let text = assert_ok(&run(&["posix", "msq", "--stat", "-n", &name]));
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().eq(["maxmsg", "3"])),
        "{text}"
    );
    let out = assert_ok(&run(&["posix", "msq", "--clean", "-n", &name]));
    assert!(out.contains("removed queue"));
    assert!(!posix_exists(&Obj::PosixMsq(name.clone())));
}

#[test]
fn msq_create_limits_are_named() {
    let name = unique_name("msq-limit");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    // Above HARD_MSGMAX (65536), refused even for root.
    let o = run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "--max-msgs",
        "100000",
        "-c",
        "0",
    ]);
    let err = assert_fails(&o, 1, "cannot create queue");
    assert!(err.contains("hint:") && err.contains("65536"), "{err}");
    assert!(!posix_exists(&Obj::PosixMsq(name.clone())));
}

#[test]
fn msg_max_hint_names_the_capability_not_root() {
    // As root without CAP_SYS_RESOURCE (a container's usual root): msg_max
    // binds, and the hint says the capability, not uid 0, would lift it.
    let msg_max: u64 = std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if msg_max >= 65536 {
        return;
    }
    let name = unique_name("msq-nocap");
    let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
    let over = (msg_max + 1).to_string();
    let o = std::process::Command::new("setpriv")
        .args([
            "--inh-caps",
            "-sys_resource",
            "--bounding-set",
            "-sys_resource",
            "--",
        ])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(["posix", "msq", "-n", &name, "-c", "0", "--max-msgs", &over])
        .output()
        .expect("setpriv (util-linux) is needed");
    let err = assert_fails(&o, 1, "Invalid argument");
    let hint = err
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        hint.contains(&format!("msg_max ({msg_max})"))
            && hint.contains("lacks CAP_SYS_RESOURCE")
            && hint.contains("65536")
            && !hint.contains("root may"),
        "{hint}"
    );
    assert!(!posix_exists(&Obj::PosixMsq(name)));
}

// ---------- shm ----------

fn shm_file(name: &str) -> std::path::PathBuf {
    format!("/dev/shm/{}", &name[1..]).into()
}

#[test]
fn shm_server_sees_what_a_client_writes() {
    let name = unique_name("shm");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    let mut server = Server::start(&[
        "posix",
        "shm",
        "-s",
        "-n",
        &name,
        "--interval",
        "0.02",
        "--on-change",
        "--count",
        "3",
        "--timeout",
        "30",
    ]);
    assert_eq!(untimed(&server.next_out()), "(empty)");
    assert_ok(&run(&["posix", "shm", "-n", &name, "-m", "hello"]));
    assert_eq!(untimed(&server.next_out()), "hello");
    // The raw layout: text then NUL at offset 0, readable as a plain file.
    let raw = std::fs::read(shm_file(&name)).unwrap();
    assert_eq!(raw.len(), 4096);
    assert_eq!(&raw[..6], b"hello\0");
    // A line from standard input, without its newline.
    let mut client = bin()
        .args(["posix", "shm", "-n", &name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    assert!(client.wait_with_output().unwrap().status.success());
    assert_eq!(untimed(&server.next_out()), "from stdin");
    assert!(server.finish().0.success());
}

#[test]
fn shm_text_that_does_not_fit_is_refused_and_nothing_is_written() {
    let name = unique_name("shm-fit");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    assert_ok(&run(&[
        "posix", "shm", "-n", &name, "--size", "8", "-m", "1234567",
    ]));
    let o = run(&["posix", "shm", "-n", &name, "-m", "abcdefgh"]);
    let err = assert_fails(&o, 1, "8 bytes");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(std::fs::read(shm_file(&name)).unwrap(), b"1234567\0");
}

#[test]
fn shm_existing_segment_keeps_its_size() {
    let name = unique_name("shm-size");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    assert_ok(&run(&[
        "posix", "shm", "-n", &name, "--size", "8192", "-m", "a",
    ]));
    let (status, lines, _) = Server::spawn(&[
        "posix", "shm", "-s", "-n", &name, "--size", "100", "--count", "1",
    ])
    .finish();
    assert!(status.success());
    assert!(lines[0].contains("opened, 8192 bytes"), "{}", lines[0]);
    assert_ok(&run(&[
        "posix", "shm", "-n", &name, "--size", "100", "-m", "b",
    ]));
    assert_eq!(stat_json(&["posix", "shm", "-n", &name])["size"], 8192);
}

#[test]
fn shm_shrunk_segment_is_reported_not_a_crash() {
    let name = unique_name("shm-shrink");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    let mut server = Server::start(&[
        "posix",
        "shm",
        "-s",
        "-n",
        &name,
        "--interval",
        "0.02",
        "--timeout",
        "30",
    ]);
    server.next_out();
    std::fs::OpenOptions::new()
        .write(true)
        .open(shm_file(&name))
        .unwrap()
        .set_len(0)
        .unwrap();
    server.fails_with("shrank from 4096 to 0 bytes");
}

#[test]
fn shm_removed_segment_is_reported() {
    let name = unique_name("shm-rm");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    let mut server = Server::start(&[
        "posix",
        "shm",
        "-s",
        "-n",
        &name,
        "--interval",
        "0.02",
        "--timeout",
        "30",
    ]);
    server.next_out();
    assert_ok(&run(&["posix", "shm", "--clean", "-n", &name]));
    server.fails_with("was removed");
}

#[test]
fn shm_server_sigterm_json_and_stat() {
    let name = unique_name("shm-term");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    let mut server = Server::start(&[
        "--json", "posix", "shm", "-s", "-n", &name, "--size", "64", "--mode", "0604",
    ]);
    let first: Value = serde_json::from_str(&server.next_out()).unwrap();
    assert_eq!(first["kind"], "memory");
    assert_eq!(first["text"], "");
    server.signal(libc::SIGTERM);
    let (status, lines, _) = server.finish();
    assert!(status.success());
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["kind"], "canceled");
    let st = stat_json(&["posix", "shm", "-n", &name]);
    assert_eq!(st["size"], 64);
    assert_eq!(st["perms"], "0604");
    assert_fails(
        &run(&["posix", "shm", "--clean", "-n", &unique_name("none")]),
        1,
        "no such segment",
    );
}

#[test]
fn shm_shorter_text_clears_the_tail_of_the_older_one() {
    let name = unique_name("shm-tail");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    assert_ok(&run(&[
        "posix",
        "shm",
        "-n",
        &name,
        "--size",
        "64",
        "-m",
        "hello world long text",
    ]));
    assert_ok(&run(&["posix", "shm", "-n", &name, "-m", "hi"]));
    // `cat` shows exactly the new text: after its NUL, only zeros.
    let raw = std::fs::read(shm_file(&name)).unwrap();
    assert_eq!(raw.len(), 64);
    assert_eq!(&raw[..3], b"hi\0");
    assert!(raw[3..].iter().all(|&b| b == 0), "old tail left: {raw:?}");
    // A text that fills the segment to its last byte, then a shorter one.
    assert_ok(&run(&["posix", "shm", "-n", &name, "-m", &"y".repeat(63)]));
    assert_ok(&run(&["posix", "shm", "-n", &name, "-m", "z"]));
    let raw = std::fs::read(shm_file(&name)).unwrap();
    assert_eq!(&raw[..2], b"z\0");
    assert!(raw[2..].iter().all(|&b| b == 0), "old tail left: {raw:?}");
}

#[test]
fn shm_endless_stdin_is_refused_without_reading_it_all() {
    let name = unique_name("shm-zero");
    let _guard = Cleanup(vec![Obj::PosixShm(name.clone())]);
    assert_ok(&run(&[
        "posix", "shm", "-n", &name, "--size", "64", "-m", "kept",
    ]));
    let o = run_on_endless_stdin(&["posix", "shm", "-n", &name]);
    let err = assert_fails(&o, 1, "does not fit");
    assert!(
        err.contains("64 bytes") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(&std::fs::read(shm_file(&name)).unwrap()[..5], b"kept\0");
    // Exactly what fits still works from standard input, with CR LF too.
    let mut client = bin()
        .args(["posix", "shm", "-n", &name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = "w".repeat(63).into_bytes();
    line.extend_from_slice(b"\r\n");
    client.stdin.take().unwrap().write_all(&line).unwrap();
    assert!(client.wait_with_output().unwrap().status.success());
    let raw = std::fs::read(shm_file(&name)).unwrap();
    assert_eq!(&raw[..63], "w".repeat(63).as_bytes());
    assert_eq!(raw[63], 0);
}

#[test]
fn refused_clients_remove_only_what_they_created() {
    let (q, m, e) = (
        unique_name("made-q"),
        unique_name("made-shm"),
        unique_name("made-empty"),
    );
    let _guard = Cleanup(vec![
        Obj::PosixMsq(q.clone()),
        Obj::PosixShm(m.clone()),
        Obj::PosixShm(e.clone()),
    ]);
    let o = run(&[
        "posix",
        "msq",
        "-n",
        &q,
        "--msg-size",
        "16",
        "-m",
        "a message longer than sixteen bytes",
    ]);
    let err = assert_fails(&o, 1, "16 bytes");
    assert!(err.contains("nothing was created"), "{err}");
    assert!(
        !posix_exists(&Obj::PosixMsq(q.clone())),
        "refused queue stays"
    );
    let o = run(&["posix", "shm", "-n", &m, "--size", "8", "-m", "abcdefgh"]);
    let err = assert_fails(&o, 1, "does not fit");
    assert!(err.contains("nothing was created"), "{err}");
    assert!(
        !posix_exists(&Obj::PosixShm(m.clone())),
        "refused segment stays"
    );
    // Standard input without a line is refused as well (stdin is /dev/null).
    assert_fails(&run(&["posix", "shm", "-n", &e]), 1, "no text");
    assert!(
        !posix_exists(&Obj::PosixShm(e.clone())),
        "refused segment stays"
    );
    // What existed before is kept (see also the *_refused_* tests above).
    assert_ok(&run(&["posix", "shm", "-n", &m, "--size", "8", "-m", "a"]));
    assert_fails(
        &run(&["posix", "shm", "-n", &m, "-m", "abcdefgh"]),
        1,
        "does not fit",
    );
    assert_fails(&run(&["posix", "shm", "-n", &m]), 1, "no text");
    assert!(posix_exists(&Obj::PosixShm(m.clone())));
}

/// A sparse segment (sized with ftruncate, as many programs do) on a full
/// /dev/shm: a write that needs new pages fails with ENOSPC and changes
/// nothing; one within pages that exist still works. Runs in a private mount
/// namespace on a 64 KiB tmpfs, so nothing outside it fills up or stays.
#[test]
fn shm_full_dev_shm_is_enospc_not_sigbus() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for a private tmpfs");
        return;
    }
    let script = r#"
        mount -t tmpfs -o size=64k tmpfs /dev/shm || exit 97
        f="/dev/shm/${NAME#/}"
        truncate -s 1M "$f" || exit 98
        printf 'old text' | dd of="$f" conv=notrunc status=none || exit 98
        dd if=/dev/zero of=/dev/shm/fill bs=4096 status=none 2>/dev/null
        before=$(md5sum < "$f")
        "$BIN" posix shm -n "$NAME" -m "$LONG"
        echo "long=$?"
        [ "$(md5sum < "$f")" = "$before" ] && echo "unchanged" || echo "changed"
        "$BIN" posix shm -n "$NAME" -m hi
        echo "short=$?"
        echo "text=$(tr -d '\000' < "$f" | head -c 64)"
    "#;
    let o = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("BIN", assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .env("NAME", unique_name("shm-full"))
        .env("LONG", "x".repeat(10_000))
        .stdin(Stdio::null())
        .output()
        .expect("unshare (util-linux)");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "setup failed: {out} {err}");
    assert!(
        out.contains("long=1\n"),
        "no exit 1 (135 is SIGBUS): {out} {err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(
        out.contains("unchanged\n"),
        "a refused write changed the segment: {out}"
    );
    assert!(out.contains("short=0\n"), "{out} {err}");
    assert!(out.contains("text=hi\n"), "{out}");
}

// ---------- sem ----------

#[test]
fn sem_server_follows_take_and_release() {
    let name = unique_name("sem");
    let _guard = Cleanup(vec![Obj::PosixSem(name.clone())]);
    let mut server = Server::start(&[
        "posix",
        "sem",
        "-s",
        "-n",
        &name,
        "--interval",
        "0.02",
        "--timeout",
        "30",
    ]);
    assert_eq!(untimed(&server.next_out()), "semaphore: 2");
    let out = assert_ok(&run(&["posix", "sem", "-n", &name]));
    assert!(out.contains("semaphore: 1"), "{out}");
    assert_eq!(untimed(&server.next_out()), "semaphore: 1");
    assert_ok(&run(&["posix", "sem", "-n", &name, "-r"]));
    assert_eq!(untimed(&server.next_out()), "semaphore: 2");
    server.signal(libc::SIGINT);
    let (status, lines, _) = server.finish();
    assert!(status.success());
    assert_eq!(lines.last().unwrap(), "canceled.");
    assert_eq!(stat_json(&["posix", "sem", "-n", &name])["value"], 2);
}

#[test]
fn sem_busy_wait_and_timeout() {
    let name = unique_name("sem-busy");
    let _guard = Cleanup(vec![Obj::PosixSem(name.clone())]);
    let (status, _, _) = Server::spawn(&[
        "posix", "sem", "-s", "-n", &name, "--value", "0", "--count", "1",
    ])
    .finish();
    assert!(status.success());
    assert_fails(&run(&["posix", "sem", "-n", &name]), 1, "semaphore is busy");
    assert_fails(
        &run(&["posix", "sem", "-n", &name, "--wait", "--timeout", "0.1"]),
        1,
        "semaphore is busy",
    );
    // A waiting client gets the unit another process gives back.
    let waiter = bin()
        .args(["posix", "sem", "-n", &name, "--wait", "--timeout", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_ok(&run(&["posix", "sem", "-n", &name, "-r"]));
    let o = waiter.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("took one unit"));
}

#[test]
fn sem_client_never_creates() {
    let name = unique_name("sem-missing");
    let _guard = Cleanup(vec![Obj::PosixSem(name.clone())]);
    let err = assert_fails(&run(&["posix", "sem", "-n", &name]), 1, "no such semaphore");
    assert!(err.contains("start the server first"), "{err}");
    assert_fails(
        &run(&["posix", "sem", "-n", &name, "-r"]),
        1,
        "no such semaphore",
    );
    assert!(!posix_exists(&Obj::PosixSem(name.clone())));
    assert_fails(
        &run(&["posix", "sem", "--clean", "-n", &name]),
        1,
        "no such semaphore",
    );
}

#[test]
fn sem_server_keeps_the_value_of_an_existing_semaphore() {
    let name = unique_name("sem-keep");
    let _guard = Cleanup(vec![Obj::PosixSem(name.clone())]);
    let (_, lines, _) = Server::spawn(&[
        "posix", "sem", "-s", "-n", &name, "--value", "5", "--count", "1",
    ])
    .finish();
    assert_eq!(untimed(&lines[1]), "semaphore: 5");
    assert_ok(&run(&["posix", "sem", "-n", &name]));
    let (_, lines, _) = Server::spawn(&[
        "posix", "sem", "-s", "-n", &name, "--value", "9", "--count", "1",
    ])
    .finish();
    assert!(lines[0].contains("opened"), "{}", lines[0]);
    assert_eq!(untimed(&lines[1]), "semaphore: 4");
}

// ---------- sem: files that are not valid semaphores ----------

fn sem_path(name: &str) -> std::path::PathBuf {
    format!("/dev/shm/sem.{}", &name[1..]).into()
}

/// glibc's 64-bit sem_t: value and waiters in one 64-bit word, then the
/// futex `private` word (sem_open writes 128), then padding to 32 bytes.
fn sem_bytes(value: u32, waiters: u32, private: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 32];
    let data = u64::from(value) | (u64::from(waiters) << 32);
    buf[..8].copy_from_slice(&data.to_ne_bytes());
    buf[8..12].copy_from_slice(&private.to_ne_bytes());
    buf
}

/// Exit 1 with exactly one `error:` line that contains `fragment`, not
/// death by a signal.
#[track_caller]
fn assert_refused(o: &std::process::Output, what: &str, fragment: &str) {
    use std::os::unix::process::ExitStatusExt;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.signal(), None, "{what}: killed by a signal; {err}");
    assert_eq!(o.status.code(), Some(1), "{what}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{what}: {err}");
    assert!(errors[0].contains(fragment), "{what}: {err}");
    assert!(
        o.stdout.is_empty(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A file planted at /dev/shm/sem.NAME is refused by every mode of
/// `posix sem` with `error: FILE is not a valid semaphore: WHY`, exit 1,
/// and is left exactly as it was; `ls` lists it and `--clean` removes it.
fn refused_by_every_mode(tag: &str, bytes: &[u8], why: &str) {
    let name = unique_name(tag);
    let path = sem_path(&name);
    let _guard = Cleanup(vec![Obj::PosixSem(name.clone()), Obj::Path(path.clone())]);
    std::fs::write(&path, bytes).unwrap();
    let expected = format!("error: {} is not a valid semaphore: {why}", path.display());
    let modes: [&[&str]; 6] = [
        &[],
        &["-r"],
        &["--wait"],
        &["--wait", "--timeout", "0.2"],
        // --count 1: a server that wrongly accepts the file ends at once.
        &["-s", "--count", "1"],
        &["--stat"],
    ];
    for mode in modes {
        let mut args = vec!["posix", "sem", "-n", &name];
        args.extend_from_slice(mode);
        let o = run(&args);
        assert_refused(&o, &format!("{tag} {mode:?}"), &expected);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().next(), Some(expected.as_str()), "{mode:?}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{mode:?} changed it");
    }
    let listed = assert_ok(&run(&["ls", "--name", &name]));
    assert!(listed.contains("not a valid semaphore"), "{listed}");
    assert_ok(&run(&["posix", "sem", "--clean", "-n", &name]));
    assert!(!path.exists());
}

#[test]
fn sem_empty_file_is_refused_not_sigbus() {
    refused_by_every_mode("sem-empty", b"", "0 bytes, a sem_t needs 32");
}

#[test]
fn sem_file_shorter_than_a_sem_t_is_refused() {
    // Within the first page, so no SIGBUS: glibc would take and post on the
    // bytes past the end of the file, and write into the file.
    refused_by_every_mode("sem-short", b"abcde", "5 bytes, a sem_t needs 32");
}

#[test]
fn sem_garbage_private_word_is_refused_not_sigabrt() {
    // A waiter recorded and value 0: -r and --wait reach the futex call,
    // where glibc aborts on the error this private word causes.
    refused_by_every_mode(
        "sem-private",
        &sem_bytes(0, 1, 0x4141_4141),
        "its private word is 0x41414141, sem_open semaphores have 0x80",
    );
}

#[test]
fn sem_value_above_sem_value_max_is_refused() {
    refused_by_every_mode(
        "sem-value",
        &sem_bytes(u32::MAX, 0, 128),
        "its value is 4294967295, above SEM_VALUE_MAX (2147483647)",
    );
}

#[test]
fn sem_file_truncated_under_the_server_is_reported() {
    let name = unique_name("sem-trunc-server");
    let _guard = Cleanup(vec![Obj::PosixSem(name.clone())]);
    let mut server = Server::start(&[
        "posix",
        "sem",
        "-s",
        "-n",
        &name,
        "--interval",
        "0.02",
        "--timeout",
        "30",
    ]);
    assert_eq!(untimed(&server.next_out()), "semaphore: 2");
    std::fs::OpenOptions::new()
        .write(true)
        .open(sem_path(&name))
        .unwrap()
        .set_len(0)
        .unwrap();
    let err = server.fails_with("is not a valid semaphore: 0 bytes, a sem_t needs 32");
    assert!(
        err.iter().any(|l| l.contains("changed under the server")),
        "{err:?}"
    );
}

#[test]
fn sem_file_truncated_under_a_waiting_client_is_reported() {
    use std::os::unix::process::ExitStatusExt;
    // To 0 bytes, glibc's next access to the mapping faults (SIGBUS); to 5,
    // the page stays and the check between waits sees it.
    for len in [0u64, 5] {
        let name = unique_name("sem-trunc-wait");
        let path = sem_path(&name);
        let _guard = Cleanup(vec![Obj::PosixSem(name.clone())]);
        let (status, _, _) = Server::spawn(&[
            "posix", "sem", "-s", "-n", &name, "--value", "0", "--count", "1",
        ])
        .finish();
        assert!(status.success());
        let waiter = bin()
            .args(["posix", "sem", "-n", &name, "--wait", "--timeout", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The waiter is blocked once glibc has recorded it in the file's
        // waiter count (the high half of the first 64-bit word).
        let end = std::time::Instant::now() + DEADLINE;
        loop {
            let raw = std::fs::read(&path).unwrap();
            let data = u64::from_ne_bytes(raw[..8].try_into().unwrap());
            if data >> 32 != 0 {
                break;
            }
            assert!(std::time::Instant::now() < end, "the client never waited");
            std::thread::yield_now();
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        let o = waiter.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.signal(), None, "{len}: {err}");
        assert_refused(
            &o,
            &format!("truncated to {len}"),
            &format!("is not a valid semaphore: {len} bytes, a sem_t needs 32"),
        );
        assert!(err.contains(&format!("semaphore {name}")), "{err}");
    }
}

// ---------- another program on the plain POSIX API ----------

const C_PEER: &str = r#"
#include <fcntl.h>
#include <mqueue.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* argv: queue shm sem. Reads our message and segment, answers on each. */
int main(int argc, char **argv) {
    if (argc != 4) return 2;
    mqd_t q = mq_open(argv[1], O_RDWR);
    if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
    char buf[8192]; unsigned prio;
    ssize_t n = mq_receive(q, buf, sizeof buf, &prio);
    if (n < 0) { perror("mq_receive"); return 1; }
    printf("queue: %.*s\n", (int)n, buf);
    const char *reply = "{\"from\":\"c\"}";
    if (mq_send(q, reply, strlen(reply), 4) != 0) { perror("mq_send"); return 1; }

    int fd = shm_open(argv[2], O_RDWR, 0);
    if (fd < 0) { perror("shm_open"); return 1; }
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    printf("shm: %s\n", p);
    strcpy(p, "written by C");

    sem_t *s = sem_open(argv[3], 0);
    if (s == SEM_FAILED) { perror("sem_open"); return 1; }
    if (sem_post(s) != 0) { perror("sem_post"); return 1; }
    fflush(stdout);
    return 0;
}
"#;

#[test]
fn a_c_program_on_the_plain_posix_api_shares_our_objects() {
    let (q, s, m) = (
        unique_name("peer-q"),
        unique_name("peer-shm"),
        unique_name("peer-sem"),
    );
    let dir = std::env::temp_dir().join(format!("eipc-peer-{}-{}", std::process::id(), &q[1..]));
    let _guard = Cleanup(vec![
        Obj::PosixMsq(q.clone()),
        Obj::PosixShm(s.clone()),
        Obj::PosixSem(m.clone()),
        Obj::Path(dir.join("peer.c")),
        Obj::Path(dir.join("peer")),
    ]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("peer.c"), C_PEER).unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-O1", "-o"])
        .arg(dir.join("peer"))
        .arg(dir.join("peer.c"))
        .args(["-lrt", "-pthread"])
        .output()
        .expect("a C compiler (cc) is needed for the interop test");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );

    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &q,
        "-c",
        "1",
        "-m",
        r#"{"from":"rust"}"#,
    ]));
    assert_ok(&run(&["posix", "shm", "-n", &s, "-m", "written by Rust"]));
    let (status, _, _) = Server::spawn(&[
        "posix", "sem", "-s", "-n", &m, "--value", "0", "--count", "1",
    ])
    .finish();
    assert!(status.success());

    let peer = std::process::Command::new(dir.join("peer"))
        .args([&q, &s, &m])
        .output()
        .unwrap();
    let said = assert_ok(&peer);
    assert!(said.contains(r#"queue: {"from":"rust"}"#), "{said}");
    assert!(said.contains("shm: written by Rust"), "{said}");

    let (status, lines, _) =
        Server::spawn(&["posix", "msq", "-s", "-n", &q, "--count", "1"]).finish();
    assert!(status.success());
    assert_eq!(untimed(&lines[1]), r#"priority 4: {"from":"c"}"#);
    let (_, lines, _) = Server::spawn(&["posix", "shm", "-s", "-n", &s, "--count", "1"]).finish();
    assert_eq!(untimed(&lines[1]), "written by C");
    assert_eq!(stat_json(&["posix", "sem", "-n", &m])["value"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------- another user ----------

/// Run the binary as `nobody` (needs root and util-linux's setpriv).
fn run_as_nobody(args: &[&str]) -> Option<std::process::Output> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let exe = assert_cmd::cargo::cargo_bin!("examples-ipc");
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(exe)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .ok()
}

#[test]
fn another_users_object_gives_eacces_with_a_hint() {
    let (q, m) = (unique_name("perm-q"), unique_name("perm-shm"));
    let _guard = Cleanup(vec![Obj::PosixMsq(q.clone()), Obj::PosixShm(m.clone())]);
    assert_ok(&run(&["posix", "msq", "-n", &q, "-c", "0"]));
    assert_ok(&run(&["posix", "shm", "-n", &m, "-m", "root's"]));
    let Some(o) = run_as_nobody(&["posix", "msq", "-n", &q, "-c", "1"]) else {
        eprintln!("skipped: needs root and setpriv");
        return;
    };
    let err = assert_fails(&o, 1, "Permission denied");
    assert!(
        err.contains("hint:") && err.contains("another user"),
        "{err}"
    );
    let o = run_as_nobody(&["posix", "shm", "-n", &m, "-m", "nobody's"]).unwrap();
    assert_fails(&o, 1, "Permission denied");
    assert_eq!(&std::fs::read(shm_file(&m)).unwrap()[..7], b"root's\0");
}

/// Errno is written one way, `<strerror text> (<NAME>)`, whether it came
/// through std (io::Error: `(os error 13)`) or nix (`EACCES: ...`).
#[test]
fn errno_is_written_as_its_text_and_name() {
    let (q, m) = (unique_name("errno-q"), unique_name("errno-shm"));
    let key = unique_key();
    let _guard = Cleanup(vec![
        Obj::PosixMsq(q.clone()),
        Obj::PosixShm(m.clone()),
        Obj::SysvMsq(key),
    ]);
    let hex = key_hex(key);
    assert_ok(&run(&["posix", "msq", "-n", &q, "-c", "0"]));
    assert_ok(&run(&["posix", "shm", "-n", &m, "-m", "root's"]));
    assert_ok(&run(&["sysv", "msq", "-k", &hex, "-c", "0"]));
    let Some(o) = run_as_nobody(&["posix", "msq", "-n", &q, "-c", "1"]) else {
        eprintln!("skipped: needs root and setpriv");
        return;
    };
    for (o, first) in [
        (
            o,
            format!("error: cannot open queue {q}: Permission denied (EACCES)"),
        ),
        (
            run_as_nobody(&["posix", "shm", "-n", &m, "-m", "nobody's"]).unwrap(),
            format!("error: cannot open segment {m}: Permission denied (EACCES)"),
        ),
        (
            run_as_nobody(&["sysv", "msq", "-k", &hex, "-m", "nobody's"]).unwrap(),
            format!("error: cannot read attributes of queue {hex}: Permission denied (EACCES)"),
        ),
    ] {
        let err = assert_fails(&o, 1, "");
        assert_eq!(err.lines().next(), Some(first.as_str()), "{err}");
        assert!(
            err.lines().nth(1).is_some_and(|l| l.starts_with("hint: ")),
            "{err}"
        );
    }
}

/// A name with an ESC sequence and a newline: printed escaped in every text
/// line (stdout and stderr), exact in JSON.
#[test]
fn odd_names_are_escaped_in_text_and_exact_in_json() {
    let name = unique_name("esc\x1b[31mred\nX");
    let shown = name.replace('\x1b', "\\x1b").replace('\n', "\\x0a");
    let mut cleanup = Cleanup::new();
    cleanup.add(Obj::PosixShm(name.clone()));
    let no_controls = |what: &str, text: &str| {
        assert!(
            !text.contains('\x1b') && text.lines().count() <= 1,
            "{what}: {text:?}"
        );
        assert!(text.contains(&shown), "{what}: {text:?}");
    };
    let out = assert_ok(&run(&["posix", "shm", "-n", &name, "-m", "hi"]));
    no_controls("client", &out);
    let o = run(&["posix", "shm", "-n", &name, "-m", "hi", "--json"]);
    let line: Value = serde_json::from_str(&assert_ok(&o)).unwrap();
    assert_eq!(line["name"], name.as_str());
    let out = assert_ok(&run(&["posix", "shm", "--stat", "-n", &name]));
    let name_line = out.lines().find(|l| l.starts_with("name")).unwrap();
    no_controls("stat", name_line);
    assert!(!out.contains('\x1b'), "{out:?}");
    assert_eq!(
        stat_json(&["posix", "shm", "-n", &name])["name"],
        name.as_str()
    );
    let out = assert_ok(&run(&["posix", "shm", "--clean", "-n", &name]));
    no_controls("clean", &out);
    let o = run(&["posix", "shm", "--clean", "-n", &name]);
    let err = assert_fails(&o, 1, "no such segment");
    no_controls("missing", &err);
    let o = run(&["posix", "sem", "-n", &name]);
    let err = assert_fails(&o, 1, "cannot open semaphore");
    assert!(!err.contains('\x1b') && err.contains(&shown), "{err:?}");
    assert_eq!(err.lines().count(), 2, "error and hint: {err:?}");
}

// ---------- Ctrl-C on a terminal ----------

/// A command on a pseudo-terminal, as an interactive shell runs it: in a
/// session of its own whose controlling terminal the pty is, with stdin,
/// stdout and stderr on it. Writing Ctrl-C (0x03) to the master makes the
/// line discipline send SIGINT to the foreground process group and echo
/// `^C`, as a real terminal does. Drop kills the command.
pub(crate) struct OnPty {
    child: std::process::Child,
    master: std::fs::File,
    bytes: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Everything the command wrote so far (onlcr makes "\n" "\r\n").
    pub seen: Vec<u8>,
}

impl OnPty {
    /// Start `examples-ipc ARGS` on a new 24x80 pty; `echoctl: false` is
    /// `stty -echoctl` (the key still interrupts, but echoes no `^C`).
    pub(crate) fn spawn(args: &[&str], echoctl: bool) -> OnPty {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        use std::os::unix::process::CommandExt as _;
        let size = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
        let mut modes = tcgetattr(&pty.slave).expect("tcgetattr");
        modes.local_flags.set(LocalFlags::ECHOCTL, echoctl);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &modes).expect("tcsetattr");
        let child = {
            // In a block: the Command's copies of the slave are closed when
            // it ends, so the master reads EOF (EIO) once the command exits.
            let mut cmd = bin();
            let stdio = || Stdio::from(pty.slave.try_clone().expect("dup"));
            // A terminal that takes cursor movements, as terminals say.
            cmd.args(args)
                .env("TERM", "xterm")
                .stdin(stdio())
                .stdout(stdio())
                .stderr(stdio());
            // SAFETY: between fork and exec the child only calls setsid and
            // ioctl, both async-signal-safe, and touches no shared state.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("cannot start on a pty");
            drop(pty.slave);
            child
        };
        let master = std::fs::File::from(pty.master);
        let mut reader = master.try_clone().expect("dup");
        let (tx, bytes) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO: every slave descriptor is closed.
            while let Ok(n @ 1..) = std::io::Read::read(&mut reader, &mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        OnPty {
            child,
            master,
            bytes,
            seen: Vec::new(),
        }
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Read until the output holds `needle`, within DEADLINE.
    pub(crate) fn wait_for(&mut self, needle: &str) {
        let end = std::time::Instant::now() + DEADLINE;
        while !self.text().contains(needle) {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.bytes.recv_timeout(left) {
                Ok(b) => self.seen.extend(b),
                Err(_) => panic!("no {needle:?} on the pty; so far {:?}", self.text()),
            }
        }
    }

    /// Type Ctrl-C.
    pub(crate) fn ctrl_c(&mut self) {
        self.master.write_all(b"\x03").expect("write to the pty");
    }

    /// Wait for the exit (within DEADLINE) and the rest of the output.
    pub(crate) fn finish(mut self) -> (std::process::ExitStatus, String) {
        let end = std::time::Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.bytes.recv_timeout(left) {
                Ok(b) => self.seen.extend(b),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(_) => panic!("the command did not end: {:?}", self.text()),
            }
        }
        let status = self.child.wait().expect("wait");
        (status, self.text())
    }
}

impl Drop for OnPty {
    /// After a failed assertion: SIGTERM first, so that a bench removes its
    /// private System V queue (SIGKILL would leave it), then SIGKILL.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let end = std::time::Instant::now() + DEADLINE;
            while let Ok(None) = self.child.try_wait() {
                if std::time::Instant::now() > end {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let _ = self.child.wait();
    }
}

/// On a terminal that echoes `^C`, `canceled.` starts a line of its own
/// instead of following the `^C`; with `stty -echoctl`, nothing is echoed
/// and no empty line is added.
#[test]
fn ctrl_c_on_a_terminal_puts_canceled_on_its_own_line() {
    for echoctl in [true, false] {
        let name = unique_name("msq-pty");
        let _guard = Cleanup(vec![Obj::PosixMsq(name.clone())]);
        let mut server = OnPty::spawn(&["posix", "msq", "-s", "-n", &name], echoctl);
        server.wait_for("waiting for messages\r\n");
        server.ctrl_c();
        let (status, out) = server.finish();
        assert_eq!(status.code(), Some(0), "{out:?}");
        let tail = out
            .split("waiting for messages\r\n")
            .nth(1)
            .unwrap_or_default();
        if echoctl {
            assert_eq!(tail, "^C\r\ncanceled.\r\n");
        } else {
            // The key's own byte is echoed raw (invisible): no line break.
            assert_eq!(tail.trim_start_matches('\x03'), "canceled.\r\n");
        }
        assert!(posix_exists(&Obj::PosixMsq(name.clone())));
    }
}
