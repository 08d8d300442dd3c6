//! The debugging modes of each mechanism, on objects made by other programs
//! (a C peer, ipcmk, python3's sysv_ipc) and by the tool:
//! `sysv msq --peek`, `--save`/`--restore` of the four kinds that hold
//! data, `--dump`, and the shm servers' `--on-change --diff`. Each test
//! uses its own names and keys, and its files live in a directory it
//! removes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::TempDir;

use crate::common::{
    Cleanup, Obj, Server, assert_fails, assert_ok, key_hex, posix_exists, run, unique_key,
    unique_name, untimed,
};

/// A C program on the plain APIs, the other side of these tests:
/// `sysv-msq KEY` sends three messages of types 5, 2, 5 (the first not
/// UTF-8), `posix-msq NAME` the same payloads at priorities 1, 9, 1, and
/// `sysv-shm KEY` writes bytes that are not UTF-8 into a segment.
const C_PEER: &str = r#"
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/shm.h>

static const char *payloads[3] = {"\xff\x00\x01\x1b[31mbin", "hello", "{\"n\":1}"};
static const size_t sizes[3] = {11, 5, 7};

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    if (strcmp(argv[1], "sysv-msq") == 0) {
        int id = msgget((key_t)strtoul(argv[2], NULL, 0), 0);
        if (id < 0) { perror("msgget"); return 1; }
        long types[3] = {5, 2, 5};
        for (int i = 0; i < 3; i++) {
            struct { long mtype; char text[16]; } m;
            m.mtype = types[i];
            memcpy(m.text, payloads[i], sizes[i]);
            if (msgsnd(id, &m, sizes[i], 0) != 0) { perror("msgsnd"); return 1; }
        }
    } else if (strcmp(argv[1], "posix-msq") == 0) {
        mqd_t q = mq_open(argv[2], O_WRONLY);
        if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
        unsigned prio[3] = {1, 9, 1};
        for (int i = 0; i < 3; i++)
            if (mq_send(q, payloads[i], sizes[i], prio[i]) != 0) { perror("mq_send"); return 1; }
    } else if (strcmp(argv[1], "sysv-shm") == 0) {
        int id = shmget((key_t)strtoul(argv[2], NULL, 0), 0, 0);
        if (id < 0) { perror("shmget"); return 1; }
        char *p = shmat(id, NULL, 0);
        if (p == (void *)-1) { perror("shmat"); return 1; }
        memcpy(p, payloads[0], sizes[0]);
        memcpy(p + 64, "\xfe\xfd", 2);
        shmdt(p);
    } else {
        return 2;
    }
    return 0;
}
"#;

/// The C peer, compiled into `dir`.
fn c_peer(dir: &TempDir) -> PathBuf {
    let src = dir.0.join("peer.c");
    let exe = dir.0.join("peer");
    std::fs::write(&src, C_PEER).unwrap();
    let cc = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-lrt")
        .output()
        .expect("a C compiler (cc) is needed for these tests");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    exe
}

fn peer(exe: &Path, args: &[&str]) {
    let o = Command::new(exe)
        .args(args)
        .output()
        .expect("the C peer runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every line of a `--json` command's stdout.
pub(super) fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A System V queue's qnum, from `--stat --json`.
pub(super) fn qnum(k: &str) -> u64 {
    let doc = json_lines(&assert_ok(&run(&[
        "--json", "sysv", "msq", "-k", k, "--stat",
    ])));
    doc[0]["qnum"].as_u64().expect("qnum")
}

/// The messages of a peek, as JSON lines (the summary left out).
pub(super) fn peek(k: &str) -> Vec<Value> {
    let mut lines = json_lines(&assert_ok(&run(&[
        "--json", "sysv", "msq", "-k", k, "--peek",
    ])));
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["kind"], "peeked", "{summary}");
    lines
}

/// A queue `ipcmk -Q` makes, with the random key it picks: found by the
/// id it prints, in /proc/sysvipc/msg.
fn ipcmk_queue() -> i32 {
    let o = Command::new("ipcmk")
        .args(["-Q", "-p", "0600"])
        .output()
        .expect("ipcmk (util-linux)");
    let out = String::from_utf8_lossy(&o.stdout);
    let id: i32 = out
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("ipcmk printed {out:?}"));
    let table = std::fs::read_to_string("/proc/sysvipc/msg").unwrap();
    table
        .lines()
        .skip(1)
        .find_map(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            (cols.get(1)? == &id.to_string()).then(|| cols[0].parse().ok())?
        })
        .unwrap_or_else(|| panic!("queue id {id} not in {table}"))
}

#[test]
fn peek_shows_a_c_programs_messages_in_an_ipcmk_queue_and_takes_none() {
    let dir = TempDir::new("peek");
    let exe = c_peer(&dir);
    let mut guard = Cleanup::new();
    let key = ipcmk_queue();
    guard.add(Obj::SysvMsq(key));
    let k = key_hex(key);
    peer(&exe, &["sysv-msq", &k]);
    assert_eq!(qnum(&k), 3);

    let text = assert_ok(&run(&["sysv", "msq", "-k", &k, "--peek"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            r"[0] type 5: \xff\x00\x01\x1b[31mbin",
            "[1] type 2: hello",
            r#"[2] type 5: {"n":1}"#,
            "3 messages, 23 bytes",
        ],
        "{text}"
    );
    let msgs = peek(&k);
    assert_eq!(msgs[2]["payload"]["n"], 1, "{:?}", msgs);
    assert_eq!(msgs[1]["index"], 1);
    assert_eq!(msgs[1]["type"], 2);
    assert_eq!(msgs[1]["text"], "hello");
    assert_eq!(qnum(&k), 3, "peek took nothing");

    let t5 = assert_ok(&run(&["sysv", "msq", "-k", &k, "--peek", "-t", "5"]));
    assert!(t5.ends_with("2 messages, 18 bytes (of 3 queued)\n"), "{t5}");
    let upto2 = assert_ok(&run(&["sysv", "msq", "-k", &k, "--peek", "--type", "-2"]));
    assert_eq!(upto2.lines().next(), Some("[1] type 2: hello"), "{upto2}");
    assert!(
        upto2.ends_with("1 message, 5 bytes (of 3 queued)\n"),
        "{upto2}"
    );
    assert_eq!(qnum(&k), 3);
}

#[test]
fn peek_shows_what_python_sysv_ipc_sent() {
    let has = Command::new("python3")
        .args(["-c", "import sysv_ipc"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has,
        "python3's sysv_ipc is needed: python3 -m pip install sysv_ipc (.ci/run installs it)"
    );
    let key = unique_key();
    let k = key_hex(key);
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvMsq(key));
    let script = format!(
        "import sysv_ipc\nq = sysv_ipc.MessageQueue({key}, sysv_ipc.IPC_CREX, 0o600)\n\
         q.send(b'from python', type=3)\nq.send(b'\\xfe', type=4)\n"
    );
    let o = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = assert_ok(&run(&["sysv", "msq", "-k", &k, "--peek"]));
    assert!(
        text.starts_with("[0] type 3: from python\n[1] type 4: \\xfe\n"),
        "{text}"
    );
    assert_eq!(qnum(&k), 2);
}

#[test]
fn peek_of_an_empty_queue_and_of_a_posix_queue() {
    let key = unique_key();
    let k = key_hex(key);
    let name = unique_name("nopeek");
    let mut guard = Cleanup::new();
    guard
        .add(Obj::SysvMsq(key))
        .add(Obj::PosixMsq(name.clone()));
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-c", "0"]));
    let out = assert_ok(&run(&["sysv", "msq", "-k", &k, "--peek"]));
    assert_eq!(out, "0 messages, 0 bytes\n");
    // A missing queue is the contract's "no such".
    assert_ok(&run(&["sysv", "msq", "-k", &k, "--clean"]));
    assert_fails(
        &run(&["sysv", "msq", "-k", &k, "--peek"]),
        1,
        "no such queue",
    );

    let err = assert_fails(&run(&["posix", "msq", "-n", &name, "--peek"]), 2, "--peek");
    assert!(
        err.contains("without taking") && err.contains("--save FILE"),
        "{err}"
    );
    assert_fails(
        &run(&[
            "posix",
            "msq",
            "-n",
            &name,
            "--save",
            "/nonexistent/f",
            "--keep",
        ]),
        2,
        "cannot be copied without taking",
    );
    assert!(
        !posix_exists(&Obj::PosixMsq(name)),
        "a refusal creates nothing"
    );
}

#[test]
fn sysv_queue_round_trip_keeps_bytes_types_order_and_qbytes() {
    let dir = TempDir::new("sysv-rt");
    let exe = c_peer(&dir);
    let (key, other) = (unique_key(), unique_key());
    let (k, k2) = (key_hex(key), key_hex(other));
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvMsq(key)).add(Obj::SysvMsq(other));
    assert_ok(&run(&[
        "sysv", "msq", "-k", &k, "-c", "0", "--mode", "0640",
    ]));
    peer(&exe, &["sysv-msq", &k]);
    let before = peek(&k);

    // --keep copies: the queue stays as it was.
    let kept = dir.file("kept.jsonl");
    let out = assert_ok(&run(&["sysv", "msq", "-k", &k, "--save", &kept, "--keep"]));
    assert!(
        out.starts_with(&format!("copied sysv msq {k} to {kept} (3 messages")),
        "{out}"
    );
    assert_eq!(qnum(&k), 3);

    let file = dir.file("q.jsonl");
    let out = assert_ok(&run(&["--json", "sysv", "msq", "-k", &k, "--save", &file]));
    let saved = &json_lines(&out)[0];
    assert_eq!(saved["kind"], "saved", "{saved}");
    assert_eq!(saved["messages"], 3, "{saved}");
    assert_eq!(qnum(&k), 0, "a save drains the queue");
    assert_ok(&run(&["sysv", "msq", "-k", &k, "--clean"]));

    // Back under the file's own key, created with its mode and qbytes.
    let out = assert_ok(&run(&["sysv", "msq", "--restore", &file]));
    assert!(out.contains("(3 messages, 23 bytes; created)"), "{out}");
    assert_eq!(peek(&k), before);
    let stat = &json_lines(&assert_ok(&run(&[
        "--json", "sysv", "msq", "-k", &k, "--stat",
    ])))[0];
    assert_eq!(stat["perms"], "0640", "{stat}");
    // And under another key, given on the command line.
    assert_ok(&run(&["sysv", "msq", "--restore", &kept, "-k", &k2]));
    assert_eq!(peek(&k2), before);
}

#[test]
fn posix_queue_round_trip_keeps_bytes_priorities_and_attributes() {
    let dir = TempDir::new("posix-rt");
    let exe = c_peer(&dir);
    let (name, other) = (unique_name("rt"), unique_name("rt2"));
    let mut guard = Cleanup::new();
    guard
        .add(Obj::PosixMsq(name.clone()))
        .add(Obj::PosixMsq(other.clone()));
    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &name,
        "-c",
        "0",
        "--max-msgs",
        "5",
        "--msg-size",
        "32",
    ]));
    peer(&exe, &["posix-msq", &name]);
    let first = dir.file("first.jsonl");
    assert_ok(&run(&["posix", "msq", "-n", &name, "--save", &first]));
    assert_ok(&run(&["posix", "msq", "-n", &name, "--clean"]));
    let out = assert_ok(&run(&["posix", "msq", "--restore", &first, "-n", &other]));
    assert!(
        out.contains(&format!("restored posix msq {other} from")),
        "{out}"
    );
    let again = dir.file("again.jsonl");
    assert_ok(&run(&["posix", "msq", "-n", &other, "--save", &again]));

    let lines = |f: &str| -> Vec<Value> { json_lines(&std::fs::read_to_string(f).unwrap()) };
    let (a, b) = (lines(&first), lines(&again));
    assert_eq!(a[1..], b[1..], "same messages, same order");
    // Highest priority first, the others in their order; binary as base64.
    assert_eq!(a[1]["priority"], 9, "{a:?}");
    assert_eq!(a[2]["base64"], "/wABG1szMW1iaW4=", "{a:?}");
    assert_eq!(a[3]["text"], r#"{"n":1}"#, "{a:?}");
    for field in ["maxmsg", "msgsize", "mode", "messages"] {
        assert_eq!(a[0][field], b[0][field], "{field}");
    }
    assert_eq!(a[0]["maxmsg"], 5);
    assert_eq!(a[0]["msgsize"], 32);
}

#[test]
fn segments_round_trip_with_their_bytes_size_and_mode() {
    let dir = TempDir::new("shm-rt");
    let exe = c_peer(&dir);
    let (name, other) = (unique_name("seg"), unique_name("seg2"));
    let key = unique_key();
    let k = key_hex(key);
    let mut guard = Cleanup::new();
    guard
        .add(Obj::PosixShm(name.clone()))
        .add(Obj::PosixShm(other.clone()))
        .add(Obj::SysvShm(key));

    // POSIX: bytes that are not UTF-8, written as a file by another program.
    assert_ok(&run(&[
        "posix", "shm", "-n", &name, "-m", "x", "--size", "200", "--mode", "0640",
    ]));
    let path = format!("/dev/shm/{}", &name[1..]);
    let bytes: Vec<u8> = (0..200u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let file = dir.file("posix.jsonl");
    assert_ok(&run(&["posix", "shm", "-n", &name, "--save", &file]));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "a save changes nothing"
    );
    assert_ok(&run(&["posix", "shm", "-n", &name, "--clean"]));
    assert_ok(&run(&["posix", "shm", "--restore", &file]));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_ok(&run(&["posix", "shm", "--restore", &file, "-n", &other]));
    assert_eq!(
        std::fs::read(format!("/dev/shm/{}", &other[1..])).unwrap(),
        bytes
    );
    // An existing segment of the saved size is written over; another size refused.
    assert_fails(
        &run(&[
            "posix",
            "shm",
            "--restore",
            &file,
            "-n",
            &other,
            "--size",
            "3",
        ]),
        2,
        "--size does not apply to posix shm --restore",
    );

    // System V: the C peer's bytes, restored into a new segment.
    assert_ok(&run(&["sysv", "shm", "-k", &k, "-m", "x", "--size", "100"]));
    peer(&exe, &["sysv-shm", &k]);
    let dump = assert_ok(&run(&["sysv", "shm", "-k", &k, "--dump"]));
    assert!(
        dump.starts_with("00000000: ff00 011b 5b33 316d 6269 6e00"),
        "{dump}"
    );
    let file = dir.file("sysv.jsonl");
    assert_ok(&run(&["sysv", "shm", "-k", &k, "--save", &file]));
    assert_ok(&run(&["sysv", "shm", "-k", &k, "--clean"]));
    let out = assert_ok(&run(&["sysv", "shm", "--restore", &file]));
    assert!(out.contains("(100 bytes; created)"), "{out}");
    assert_eq!(assert_ok(&run(&["sysv", "shm", "-k", &k, "--dump"])), dump);
}

#[test]
fn a_save_that_cannot_be_written_loses_no_message_and_never_replaces_a_file() {
    let dir = TempDir::new("unwritable");
    let exe = c_peer(&dir);
    let key = unique_key();
    let k = key_hex(key);
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvMsq(key));
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-c", "0"]));
    peer(&exe, &["sysv-msq", &k]);
    let before = peek(&k);
    // /dev/null is not a directory: the file cannot be created.
    assert_fails(
        &run(&["sysv", "msq", "-k", &k, "--save", "/dev/null/x"]),
        1,
        "/dev/null/x",
    );
    assert_eq!(peek(&k), before);
    // A full file system: the messages are taken, the write fails, and they
    // go back in order. A tmpfs of one page in a private mount namespace.
    let script = r#"mount -t tmpfs -o size=4k none "$1" || exit 100
        head -c 4k /dev/zero > "$1/fill"
        "$0" sysv msq -k "$2" --save "$1/snap.jsonl"; echo "rc=$?"
        ls -A "$1""#;
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .arg(&dir.0)
        .arg(&k)
        .output()
        .expect("unshare (util-linux)");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(out, "rc=1\nfill\n", "{err}");
    assert!(
        err.contains("the 3 messages taken were put back, in order"),
        "{err}"
    );
    assert_eq!(peek(&k), before);

    // An existing file may hold the only copy of an earlier save's messages.
    let file = dir.file("earlier.jsonl");
    std::fs::write(&file, "precious\n").unwrap();
    assert_fails(
        &run(&["sysv", "msq", "-k", &k, "--save", &file]),
        1,
        "exists",
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious\n");
    assert_eq!(peek(&k), before);
    assert_fails(&run(&["sysv", "msq", "-k", &k, "--save", "-"]), 2, "not -");
}

#[test]
fn bad_snapshots_are_refused_with_file_and_line_and_create_nothing() {
    let dir = TempDir::new("bad-snap");
    let name = unique_name("never");
    let key = unique_key();
    let k = key_hex(key);
    let mut guard = Cleanup::new();
    guard
        .add(Obj::PosixMsq(name.clone()))
        .add(Obj::SysvShm(key));
    assert_ok(&run(&["posix", "msq", "-n", &name, "-m", "one", "-c", "1"]));
    let good = dir.file("good.jsonl");
    assert_ok(&run(&["posix", "msq", "-n", &name, "--save", &good]));
    assert_ok(&run(&["posix", "msq", "-n", &name, "--clean"]));
    let text = std::fs::read_to_string(&good).unwrap();

    let err = assert_fails(
        &run(&["sysv", "shm", "-k", &k, "--restore", &good]),
        1,
        &good,
    );
    assert!(
        err.contains("line 1: a posix-msq snapshot, not one of a sysv-shm"),
        "{err}"
    );
    let truncated = dir.file("truncated.jsonl");
    std::fs::write(&truncated, &text[..text.len() - 3]).unwrap();
    let err = assert_fails(
        &run(&["posix", "msq", "--restore", &truncated]),
        1,
        &truncated,
    );
    assert!(
        err.contains("ends after 0 whole messages of the 1 its header counts, in a line cut short"),
        "{err}"
    );
    assert!(err.contains("hint: it holds no whole message"), "{err}");
    let empty = dir.file("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert_fails(
        &run(&["posix", "msq", "--restore", &empty]),
        1,
        "the file is empty",
    );
    let missing = dir.file("missing.jsonl");
    assert_fails(&run(&["posix", "msq", "--restore", &missing]), 1, &missing);

    assert!(!posix_exists(&Obj::PosixMsq(name)), "nothing created");
    assert_fails(&run(&["sysv", "shm", "-k", &k, "--stat"]), 1, "no such");
}

#[test]
fn dump_is_xxd_of_the_bytes_also_after_a_shrink() {
    let name = unique_name("dump");
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixShm(name.clone()));
    let path = format!("/dev/shm/{}", &name[1..]);
    assert_ok(&run(&[
        "posix",
        "shm",
        "-n",
        &name,
        "-m",
        "hello, segment",
        "--size",
        "100",
    ]));
    let xxd = |args: &[&str]| {
        let o = Command::new("xxd")
            .args(args)
            .arg(&path)
            .output()
            .expect("xxd");
        String::from_utf8(o.stdout).unwrap()
    };
    let dump = assert_ok(&run(&["posix", "shm", "-n", &name, "--dump"]));
    assert!(
        dump.starts_with("00000000: 6865 6c6c 6f2c 2073 6567 6d65 6e74 0000  hello, segment..")
    );
    assert_eq!(dump, xxd(&[]));
    let part = assert_ok(&run(&[
        "posix", "shm", "-n", &name, "--dump", "--offset", "7", "--length", "20",
    ]));
    assert_eq!(part, xxd(&["-s", "7", "-l", "20"]));
    let json = json_lines(&assert_ok(&run(&[
        "--json", "posix", "shm", "-n", &name, "--dump", "--length", "5",
    ])));
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["hex"], "68656c6c6f");
    assert_eq!(json[0]["ascii"], "hello");
    // Past the end: nothing, as xxd -s.
    assert_eq!(
        assert_ok(&run(&[
            "posix", "shm", "-n", &name, "--dump", "--offset", "500"
        ])),
        ""
    );
    assert_fails(
        &run(&["posix", "shm", "-n", &name, "--length", "5"]),
        2,
        "--dump",
    );

    // Another program shrinks it: the dump shows what is left.
    let t = Command::new("truncate")
        .args(["-s", "10", &path])
        .status()
        .unwrap();
    assert!(t.success());
    let dump = assert_ok(&run(&["posix", "shm", "-n", &name, "--dump"]));
    assert_eq!(
        dump,
        "00000000: 6865 6c6c 6f2c 2073 6567                 hello, seg\n"
    );
    assert_eq!(dump, xxd(&[]));
}

#[test]
fn on_change_diff_prints_the_changed_ranges() {
    let key = unique_key();
    let k = key_hex(key);
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvShm(key));
    let mut server = Server::start(&[
        "sysv",
        "shm",
        "-k",
        &k,
        "-s",
        "--on-change",
        "--diff",
        "--interval",
        "0.05",
        "--count",
        "3",
        "--size",
        "64",
    ]);
    assert_eq!(untimed(&server.next_out()), "(empty)");
    assert_ok(&run(&["sysv", "shm", "-k", &k, "-m", "hello"]));
    assert_eq!(untimed(&server.next_out()), "hello (changed: 0..5)");
    assert_ok(&run(&["sysv", "shm", "-k", &k, "-m", "help"]));
    assert_eq!(untimed(&server.next_out()), "help (changed: 3..5)");
    let (status, _, err) = server.finish();
    assert!(status.success(), "{err:?}");
    assert_fails(
        &run(&["sysv", "shm", "-k", &k, "-s", "--diff"]),
        2,
        "--on-change",
    );
}

/// A kernel without CONFIG_CHECKPOINT_RESTORE answers MSG_COPY with ENOSYS.
/// This one has it, so strace's fault injection stands in for that kernel.
#[test]
fn peek_without_msg_copy_says_which_kernel_option_and_what_works() {
    let key = unique_key();
    let k = key_hex(key);
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvMsq(key));
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-m", "kept", "-c", "2"]));
    let dir = TempDir::new("enosys");
    let file = dir.file("copy.jsonl");
    for mode in [&["--peek"][..], &["--save", &file, "--keep"]] {
        let o = Command::new("strace")
            .args(["-qq", "-o", "/dev/null", "-e", "trace=msgrcv"])
            .args(["-e", "inject=msgrcv:error=ENOSYS", "--"])
            .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
            .args(["sysv", "msq", "-k", &k])
            .args(mode)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("strace is needed");
        let err = assert_fails(&o, 1, "CONFIG_CHECKPOINT_RESTORE");
        assert!(err.contains("hint: --save FILE (without --keep)"), "{err}");
    }
    assert_eq!(qnum(&k), 2);
    assert!(
        !std::path::Path::new(&file).exists(),
        "a failed copy leaves no file"
    );
}
