//! The debugging commands, each in a private IPC and mount namespace (its
//! own /dev/shm and mqueue mount): `doctor`, every finding from a situation
//! the test builds and none on the same namespace left healthy; `clean
//! --stale --save`. The modes of each mechanism (peek, save, restore,
//! dump, diff) are in `modes`.

mod hostile;
mod interrupted;
mod modes;

use serde_json::Value;

use crate::common::TempDir;

/// Runs `SITUATION`, then `doctor` twice (JSON, then text), in a new IPC and
/// mount namespace set up to be healthy: /dev/shm a 128 MiB tmpfs of its
/// own, mqueue mounted (on a directory of the test: /dev is the host's),
/// msg_max above the default. Returns doctor's JSON document, its text and
/// both exit codes. Everything the situation made ends with the namespace.
fn doctor_in(dev_shm_size: &str, situation: &str) -> (Value, String, i32, i32) {
    doctor_after(
        &format!(
            r#"mount -t tmpfs -o size={dev_shm_size} none /dev/shm || exit 100
               mount -t mqueue none "$1/mq" || exit 100
               echo 256 > /proc/sys/fs/mqueue/msg_max || exit 100"#
        ),
        situation,
    )
}

/// `doctor_in` a healthy 128 MiB setup where a Python program builds the
/// situation and holds it. `situation` runs with `ctypes`, `os`, `signal`
/// and `libc` at hand, and sets `held` (the id it prints once all is in
/// place) and, if it forked one, `child` (killed with it on SIGTERM, which
/// comes when doctor has looked).
fn doctor_with_holder(situation: &str) -> (Value, String, i32, i32) {
    let program = format!(
        "import ctypes, os, signal\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         child = None\n\
         {situation}\n\
         def stop(*_):\n\
         \x20   if child: os.kill(child, signal.SIGKILL)\n\
         \x20   os._exit(0)\n\
         signal.signal(signal.SIGTERM, stop)\n\
         print(held, flush=True)\n\
         signal.pause()\n"
    );
    doctor_in(
        "128m",
        &format!(
            r#"mkfifo "$1/ready" || exit 100
               python3 -c '{program}' > "$1/ready" & holder=$!
               read id < "$1/ready" || exit 100
               trap 'kill $holder' EXIT"#
        ),
    )
}

/// As [`doctor_in`], with `setup` instead of the healthy one.
fn doctor_after(setup: &str, situation: &str) -> (Value, String, i32, i32) {
    let dir = TempDir::new("doctor");
    std::fs::create_dir_all(dir.0.join("mq")).expect("a temporary directory");
    let script = format!(
        r#"{setup}
           {situation}
           "$0" --json doctor; echo "rc=$?"
           "$0" doctor; echo "rc=$?""#
    );
    let o = std::process::Command::new("unshare")
        .args(["--ipc", "--fork", "--mount", "--propagation", "private"])
        .args(["sh", "-c", &script])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .arg(&dir.0)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("unshare (util-linux) is needed");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut lines = out.lines();
    let doc: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    let rc = |line: Option<&str>| -> i32 {
        line.and_then(|l| l.strip_prefix("rc="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no exit code: {out}"))
    };
    let json_rc = rc(lines.next());
    let rest: Vec<&str> = lines.collect();
    let (last, text) = rest.split_last().expect("doctor's text");
    (doc, text.join("\n"), json_rc, rc(Some(last)))
}

fn ids(doc: &Value) -> Vec<&str> {
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["id"].as_str().unwrap_or_default())
        .collect()
}

/// Whether the finding names the python3 process the situation started.
fn has_python(f: &Value) -> bool {
    f["processes"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["command"] == "python3"))
}

fn finding<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["id"] == id))
        .unwrap_or_else(|| panic!("no {id} in {doc}"))
}

#[test]
fn doctor_finds_nothing_on_a_healthy_setup() {
    let (doc, text, json_rc, text_rc) = doctor_in("128m", "");
    assert_eq!(doc["healthy"], true, "{doc}");
    assert_eq!(ids(&doc), Vec::<&str>::new(), "{doc}");
    assert_eq!(text, "no problems found");
    assert_eq!((json_rc, text_rc), (0, 0));
}

#[test]
fn doctor_finds_a_small_dev_shm() {
    let (doc, text, json_rc, text_rc) = doctor_in("64k", "");
    assert_eq!(ids(&doc), ["dev-shm-small"], "{doc}");
    assert_eq!(finding(&doc, "dev-shm-small")["numbers"]["size"], 65536);
    assert!(text.starts_with("1 problem found\n"), "{text}");
    assert!(text.contains("warning: dev-shm-small: "), "{text}");
    assert_eq!((json_rc, text_rc), (1, 1));
}

#[test]
fn doctor_finds_orphans_with_their_count_and_bytes() {
    let (doc, text, json_rc, _) = doctor_in(
        "128m",
        r#"ipcmk -M 100 >/dev/null && ipcmk -Q >/dev/null || exit 100"#,
    );
    assert_eq!(ids(&doc), ["orphans"], "{doc}");
    let f = finding(&doc, "orphans");
    assert_eq!(f["numbers"]["count"], 2, "{f}");
    assert_eq!(f["numbers"]["bytes"], 100, "{f}");
    assert!(text.contains("2 orphaned objects (100 bytes)"), "{text}");
    assert!(
        text.contains("fix: examples-ipc clean --stale --dry-run"),
        "{text}"
    );
    assert_eq!(json_rc, 1);
}

/// A System V segment attached by a process, then marked for removal.
const REMOVED_ATTACHED: &str = r#"
libc.shmat.restype = ctypes.c_void_p
held = libc.shmget(0, 4096, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
assert held >= 0 and libc.shmat(held, None, 0) not in (None, 2**64 - 1)
assert libc.shmctl(held, 0, None) == 0  # IPC_RMID
"#;

#[test]
fn doctor_finds_a_removed_segment_still_attached() {
    let (doc, text, json_rc, _) = doctor_with_holder(REMOVED_ATTACHED);
    assert_eq!(ids(&doc), ["segment-removed-attached"], "{doc}");
    let f = finding(&doc, "segment-removed-attached");
    assert_eq!(f["numbers"]["nattch"], 1, "{f}");
    assert_eq!(f["numbers"]["bytes"], 4096, "{f}");
    assert!(has_python(f), "{f}");
    assert!(
        text.contains("is marked for removal but 1 process keeps its 4096 bytes attached"),
        "{text}"
    );
    assert_eq!(json_rc, 1);
}

/// A System V semaphore at 0 whose last user exited, and a process
/// waiting on it: prints the semid once the waiter is counted (GETNCNT).
const SEM_DEADLOCK: &str = r#"
class Sembuf(ctypes.Structure):
    _fields_ = [("num", ctypes.c_ushort), ("op", ctypes.c_short), ("flg", ctypes.c_short)]
def op(semid, n):
    b = Sembuf(0, n, 0)
    assert libc.semop(semid, ctypes.byref(b), 1) == 0
semid = libc.semget(0, 1, 0o1600)
assert semid >= 0
last = os.fork()
if last == 0:
    op(semid, 1); op(semid, -1); os._exit(0)
os.waitpid(last, 0)
waiter = os.fork()
if waiter == 0:
    op(semid, -1); os._exit(0)
while libc.semctl(semid, 0, 14) != 1:  # GETNCNT
    os.sched_yield()
held, child = semid, waiter
"#;

#[test]
fn doctor_finds_a_semaphore_deadlock() {
    let (doc, text, json_rc, _) = doctor_with_holder(SEM_DEADLOCK);
    assert_eq!(ids(&doc), ["semaphore-deadlock"], "{doc}");
    let f = finding(&doc, "semaphore-deadlock");
    assert_eq!(f["numbers"]["value"], 0, "{f}");
    assert_eq!(f["numbers"]["waiters"], 1, "{f}");
    assert!(f["numbers"]["last_pid"].as_u64().is_some(), "{f}");
    assert!(has_python(f), "{f}");
    assert!(text.contains("error: semaphore-deadlock: "), "{text}");
    assert!(text.contains("--release"), "{text}");
    assert_eq!(json_rc, 1);
}

/// A System V queue filled to msg_qbytes by a process that exited, and a
/// sender blocked on it: prints the msqid once the sender is blocked in
/// msgsnd on it (/proc/PID/syscall names the call's first argument).
const QUEUE_STUCK: &str = r#"
msqid = libc.msgget(0, 0o1600)
assert msqid >= 0
class Msg(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("text", ctypes.c_char * 8192)]
m = Msg(1, b"x" * 8192)
def send():
    assert libc.msgsnd(msqid, ctypes.byref(m), 8192, 0) == 0
filler = os.fork()
if filler == 0:
    send(); send(); os._exit(0)
os.waitpid(filler, 0)
sender = os.fork()
if sender == 0:
    send(); os._exit(0)
def blocked():
    try:
        fields = open(f"/proc/{sender}/syscall").read().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[1].startswith("0x") and int(fields[1], 16) == msqid
while not blocked():
    os.sched_yield()
held, child = msqid, sender
"#;

#[test]
fn doctor_finds_a_queue_stuck_with_a_blocked_sender() {
    let (doc, text, json_rc, _) = doctor_with_holder(QUEUE_STUCK);
    assert_eq!(ids(&doc), ["queue-stuck"], "{doc}");
    let f = finding(&doc, "queue-stuck");
    assert_eq!(f["numbers"]["messages"], 2, "{f}");
    assert_eq!(f["numbers"]["bytes"], 16384, "{f}");
    // At least ours: `ls` still counts a process of another IPC namespace
    // blocked on the same id (tests in parallel make their own id 0 too).
    assert!(f["numbers"]["blocked_senders"].as_u64() >= Some(1), "{f}");
    assert!(has_python(f), "{f}");
    assert!(text.contains("error: queue-stuck: "), "{text}");
    assert_eq!(json_rc, 1);
}

/// `sh -c SCRIPT BIN DIR` in a new IPC and mount namespace with a /dev/shm
/// of its own and mqueue mounted on DIR/mq: `clean --stale` there sees
/// only what the script made. Returns stdout; the script must succeed.
fn in_namespace(dir: &std::path::Path, script: &str) -> String {
    let script = format!(
        r#"mount -t tmpfs -o size=16m none /dev/shm || exit 100
           mount -t mqueue none "$1/mq" || exit 100
           {script}"#
    );
    let o = std::process::Command::new("unshare")
        .args(["--ipc", "--fork", "--mount", "--propagation", "private"])
        .args(["sh", "-c", &script])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("unshare (util-linux) is needed");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// One orphaned queue and segment of each family, with content.
const FOUR_OBJECTS: &str = r#"
    "$0" posix msq -n /cq -m 'one' >/dev/null && "$0" posix msq -n /cq -m 'two' >/dev/null &&
    "$0" posix shm -n /cs -m 'posix bytes' >/dev/null &&
    "$0" sysv msq -k 0x5a5a0001 -m 'sysv one' >/dev/null &&
    "$0" sysv shm -k 0x5a5a0002 -m 'sysv bytes' >/dev/null || exit 100
"#;

#[test]
fn clean_stale_save_leaves_a_file_for_each_removed_object() {
    let dir = TempDir::new("clean-save");
    std::fs::create_dir_all(dir.0.join("mq")).unwrap();
    std::fs::create_dir_all(dir.0.join("saved")).unwrap();
    let out = in_namespace(
        &dir.0,
        &format!(
            r#"{FOUR_OBJECTS}
               "$0" --json clean --stale --save "$1/saved" || exit 101
               "$0" --json ls"#
        ),
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let saved: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "saved").collect();
    assert_eq!(saved.len(), 4, "{out}");
    let removed = lines.iter().filter(|l| l["kind"] == "removed").count();
    assert_eq!(removed, 4, "{out}");
    let mut files: Vec<String> = std::fs::read_dir(dir.0.join("saved"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(
        files.contains(&"posix-msq-cq.jsonl".to_string()),
        "{files:?}"
    );
    assert!(
        files.contains(&"posix-shm-cs.jsonl".to_string()),
        "{files:?}"
    );
    let read = |prefix: &str| {
        let f = files.iter().find(|f| f.starts_with(prefix)).unwrap();
        std::fs::read_to_string(dir.0.join("saved").join(f)).unwrap()
    };
    let q = read("posix-msq-");
    assert!(
        q.contains(r#""text":"one""#) && q.contains(r#""text":"two""#),
        "{q}"
    );
    assert!(read("sysv-msq-0x5a5a0001-").contains(r#""text":"sysv one""#));
    assert!(read("posix-shm-").lines().count() >= 2);
    assert!(read("sysv-shm-0x5a5a0002-").lines().count() >= 2);
    // Nothing is left: the last line is ls's document, with no object.
    let ls = lines.last().unwrap();
    assert_eq!(ls["objects"].as_array().map(Vec::len), Some(0), "{ls}");
}

#[test]
fn clean_stale_save_into_an_unwritable_dir_keeps_everything() {
    let dir = TempDir::new("clean-nosave");
    std::fs::create_dir_all(dir.0.join("mq")).unwrap();
    let out = in_namespace(
        &dir.0,
        &format!(
            r#"{FOUR_OBJECTS}
               "$0" clean --stale --save "$1/missing" 2>&1; echo "rc=$?"
               "$0" posix msq -n /cq --server --count 2 --timeout 5"#
        ),
    );
    assert!(out.contains("rc=1"), "{out}");
    assert!(out.contains("cannot save posix-msq /cq, kept"), "{out}");
    assert!(
        out.contains("cannot save sysv-shm 0x5a5a0002, kept"),
        "{out}"
    );
    assert!(!out.contains("removed posix"), "{out}");
    // Both messages are still there, in order.
    let one = out.find("one").unwrap();
    assert!(out[one..].contains("two"), "{out}");
}

/// The queue's row of a `watch --json` line, if the line carries it.
fn queue_change<'a>(line: &'a Value, key: &str) -> Option<&'a Value> {
    line["changes"].as_array()?.iter().find(|c| c["key"] == key)
}

#[test]
fn watch_json_count_3_sees_a_queue_filling() {
    use crate::common::{Cleanup, Obj, Server, assert_ok, key_hex, run, unique_key};
    let key = unique_key();
    let k = key_hex(key);
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvMsq(key));
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-c", "0"]));
    // A message after each of the first two samples: the interval leaves
    // the send (one short command) ample time before the next sample.
    let mut watch = Server::spawn(&[
        "--json",
        "watch",
        "-k",
        &k,
        "--interval",
        "3",
        "--count",
        "3",
    ]);
    let mut lines = Vec::new();
    for i in 0..3 {
        let line = watch.next_out();
        lines.push(serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
        if i < 2 {
            assert_ok(&run(&["sysv", "msq", "-k", &k, "-m", "filling", "-c", "1"]));
        }
    }
    let (status, _, err) = watch.finish();
    assert!(status.success(), "{err:?}");
    let first = queue_change(&lines[0], &k).expect("the queue in the first sample");
    assert_eq!(first["event"], "present", "{first}");
    assert_eq!(first["messages"], 0, "{first}");
    let second = queue_change(&lines[1], &k).expect("the queue changed");
    assert_eq!(second["event"], "changed", "{second}");
    assert_eq!(second["messages"], 1, "{second}");
    let third = queue_change(&lines[2], &k).expect("the queue changed again");
    assert_eq!(third["messages"], 2, "{third}");
    assert_eq!(third["high_water_messages"], 2, "{third}");
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(line["sample"], n as u64 + 1, "{line}");
        assert_eq!(line["kind"], "sample", "{line}");
    }
}

#[test]
fn watch_writes_json_lines_when_stdout_is_not_a_terminal() {
    use crate::common::{Cleanup, Obj, assert_ok, key_hex, run, unique_key};
    let key = unique_key();
    let k = key_hex(key);
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvMsq(key));
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-m", "x", "-c", "1"]));
    let out = assert_ok(&run(&["watch", "-k", &k, "--count", "1"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let doc: Value = serde_json::from_str(lines[0]).unwrap();
    let q = queue_change(&doc, &k).expect("the queue");
    assert_eq!(q["messages"], 1, "{q}");
}

#[test]
fn doctor_finds_mqueue_unmounted_and_the_default_msg_max() {
    // A fresh IPC namespace has msg_max at its default, 10; nothing mounts
    // mqueue in this mount namespace unless /dev/mqueue was (it is
    // unmounted here if so).
    let (doc, text, json_rc, _) = doctor_after(
        r#"mount -t tmpfs -o size=128m none /dev/shm || exit 100
           while grep -q " mqueue " /proc/self/mounts; do
             umount "$(awk '$3 == "mqueue" { print $2; exit }' /proc/self/mounts)" || exit 100
           done"#,
        "",
    );
    assert_eq!(
        ids(&doc),
        ["mqueue-not-mounted", "msg-max-default"],
        "{doc}"
    );
    assert_eq!(finding(&doc, "msg-max-default")["numbers"]["msg_max"], 10);
    assert!(text.contains("fix: sysctl -w fs.mqueue.msg_max="), "{text}");
    assert_eq!(json_rc, 1);
}

#[test]
fn doctor_finds_an_invalid_semaphore_file_and_a_full_dev_shm() {
    let (doc, text, json_rc, _) = doctor_in(
        "1m",
        r#"printf 'not a sem_t' > /dev/shm/sem.broken &&
           head -c 960k /dev/zero > /dev/shm/filler || exit 100"#,
    );
    let found = ids(&doc);
    for id in [
        "dev-shm-small",
        "dev-shm-full",
        "semaphore-file-invalid",
        "orphans",
    ] {
        assert!(found.contains(&id), "{id} not in {doc}");
    }
    let f = finding(&doc, "semaphore-file-invalid");
    assert_eq!(f["objects"][0]["name"], "/broken", "{f}");
    assert!(text.contains("error: semaphore-file-invalid: "), "{text}");
    assert_eq!(json_rc, 1);
}

#[test]
fn doctor_finds_queues_near_rlimit_msgqueue() {
    let cost = {
        let o = crate::common::run(&["--json", "limits", "--max-msgs", "4", "--msg-size", "100"]);
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        doc["rlimit_msgqueue"]["queue"]["cost"].as_u64().unwrap()
    };
    // A user no other process is, so the limit charges only this queue,
    // which takes over 80 % of it.
    let uid = (3_000_000 + std::process::id() % 1_000_000).to_string();
    let limit = cost + cost / 10;
    let (doc, text, json_rc, _) = doctor_in(
        "128m",
        &format!(
            r#"exec prlimit --msgqueue={limit}:{limit} -- setpriv --reuid={uid} --regid={uid} --clear-groups sh -c '
                 "$0" posix msq -n /nearly --max-msgs 4 --msg-size 100 -m x >/dev/null || exit 100
                 "$0" --json doctor; echo "rc=$?"
                 "$0" doctor; echo "rc=$?"' "$0"
               "#
        ),
    );
    assert_eq!(ids(&doc), ["msgqueue-rlimit"], "{doc}");
    let f = finding(&doc, "msgqueue-rlimit");
    assert_eq!(f["numbers"]["used"], cost, "{f}");
    assert_eq!(f["numbers"]["limit"], limit, "{f}");
    assert!(text.contains("warning: msgqueue-rlimit: "), "{text}");
    assert_eq!(json_rc, 1);
}
