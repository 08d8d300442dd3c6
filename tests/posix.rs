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
