//! System V msq, shm and sem: servers and clients in separate processes,
//! objects made by `ipcmk`, every refused input, and nothing left behind.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{
    Cleanup, Obj, Server, Stalled, assert_at_most_one_lost, assert_fails, assert_ok, bin, counts,
    key_hex, run, run_on_endless_stdin, unique_key, untimed,
};

#[derive(Clone, Copy)]
enum Kind {
    Msq,
    Shm,
    Sem,
}

/// Whether an object of `kind` exists with `key` (get without IPC_CREAT).
fn exists(kind: Kind, key: i32) -> bool {
    // SAFETY: lookups without IPC_CREAT take integers and create nothing.
    let id = unsafe {
        match kind {
            Kind::Msq => libc::msgget(key, 0),
            Kind::Shm => libc::shmget(key, 0, 0),
            Kind::Sem => libc::semget(key, 0, 0),
        }
    };
    id >= 0
}

/// `--stat --json` of our own object, as JSON.
fn stat_json(mech: &str, key: &str) -> Value {
    let o = run(&["--json", "sysv", mech, "--stat", "-k", key]);
    serde_json::from_str(&assert_ok(&o)).expect("stat is one JSON object")
}

/// Removes objects by id (for `ipcmk`, whose keys are only known afterwards).
struct IdCleanup(Vec<(&'static str, String)>);

impl Drop for IdCleanup {
    fn drop(&mut self) {
        for (flag, id) in &self.0 {
            let _ = Command::new("ipcrm").args([*flag, id.as_str()]).output();
        }
    }
}

/// Run `ipcmk ARGS` and return the id it prints (`... id: N`).
fn ipcmk(args: &[&str]) -> String {
    let o = Command::new("ipcmk")
        .args(args)
        .output()
        .expect("ipcmk is installed (util-linux)");
    let out = assert_ok(&o);
    out.trim().rsplit(' ').next().expect("an id").to_string()
}

#[test]
fn msq_server_and_client() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    let mut server = Server::spawn(&[
        "sysv",
        "msq",
        "-s",
        "-k",
        &k,
        "--count",
        "3",
        "--timeout",
        "20",
        "--mode",
        "0640",
    ]);
    let start = server.next_out();
    assert!(
        start.contains(&format!("sysv msq {k} (id ")) && start.contains("created"),
        "{start}"
    );
    let sent = assert_ok(&run(&[
        "sysv",
        "msq",
        "-k",
        &k,
        "-c",
        "2",
        "--interval",
        "0",
    ]));
    assert_eq!(
        untimed(sent.lines().next().unwrap()),
        r#"sent type 1: {"count":1}"#
    );
    assert_ok(&run(&[
        "sysv", "msq", "-k", &k, "-m", "hi there", "--type", "7", "-c", "1",
    ]));
    assert_eq!(untimed(&server.next_out()), r#"type 1: {"count":1}"#);
    assert_eq!(untimed(&server.next_out()), r#"type 1: {"count":2}"#);
    assert_eq!(untimed(&server.next_out()), "type 7: hi there");
    let (status, _, err) = server.finish();
    assert!(status.success(), "{err:?}");
    let st = stat_json("msq", &k);
    assert_eq!(st["perms"], "0640");
    assert_eq!(st["key"], k.as_str());
    assert_eq!(st["qnum"], 0);
    assert!(st["lrpid"].as_i64().unwrap() > 0);
}

#[test]
fn msq_json_and_type_selector() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    // The client first: it creates the queue (start order does not matter).
    assert_ok(&run(&[
        "sysv", "msq", "-k", &k, "-m", "three", "--type", "3", "-c", "1",
    ]));
    assert_ok(&run(&[
        "sysv",
        "msq",
        "-k",
        &k,
        "-m",
        r#"{"five":5}"#,
        "--type",
        "5",
        "-c",
        "1",
    ]));
    let mut server = Server::spawn(&[
        "--json",
        "sysv",
        "msq",
        "-s",
        "-k",
        &k,
        "--type",
        "5",
        "--count",
        "1",
        "--timeout",
        "20",
    ]);
    let start: Value = serde_json::from_str(&server.next_out()).unwrap();
    assert_eq!(start["kind"], "start");
    assert_eq!(start["mechanism"], "sysv-msq");
    assert_eq!(start["created"], false);
    let msg: Value = serde_json::from_str(&server.next_out()).unwrap();
    assert_eq!(msg["kind"], "message");
    assert_eq!(msg["type"], 5);
    assert_eq!(msg["payload"]["five"], 5);
    assert!(server.finish().0.success());
    // The type-3 message is still queued.
    assert_eq!(stat_json("msq", &k)["qnum"], 1);
}

#[test]
fn msq_full_queue_and_too_big() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-c", "0"]));
    let qbytes = stat_json("msq", &k)["qbytes"].as_u64().unwrap();
    let msgmax: u64 = std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let limit = qbytes.min(msgmax);
    // One byte too many: refused before sending, both sizes named.
    let big = "x".repeat(limit as usize + 1);
    let err = assert_fails(
        &run(&["sysv", "msq", "-k", &k, "-m", &big, "-c", "1"]),
        1,
        "larger than",
    );
    assert!(
        err.contains(&format!("{}", limit + 1)) && err.contains(&qbytes.to_string()),
        "{err}"
    );
    assert_eq!(stat_json("msq", &k)["qnum"], 0);
    // Fill the queue exactly, then --nonblock fails with "queue is full".
    let fill = "y".repeat(limit as usize);
    let n = (qbytes / limit).to_string();
    assert_ok(&run(&[
        "sysv",
        "msq",
        "-k",
        &k,
        "-m",
        &fill,
        "-c",
        &n,
        "--interval",
        "0",
        "--nonblock",
    ]));
    assert_fails(
        &run(&["sysv", "msq", "-k", &k, "-m", "z", "-c", "1", "--nonblock"]),
        1,
        "queue is full",
    );
}

#[test]
fn refused_inputs_leave_nothing_behind() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![
        Obj::SysvMsq(key),
        Obj::SysvShm(key),
        Obj::SysvSem(key),
    ]);
    for mech in ["msq", "shm", "sem"] {
        assert_fails(&run(&["sysv", mech, "-s", "-k", "0"]), 2, "IPC_PRIVATE");
        assert_fails(&run(&["sysv", mech, "-k", "0x0"]), 2, "IPC_PRIVATE");
        assert_fails(
            &run(&["sysv", mech, "-s", "-k", "0x100000000"]),
            2,
            "32 bits",
        );
        assert_fails(&run(&["sysv", mech, "-k", "4294967296"]), 2, "32 bits");
        assert_fails(&run(&["sysv", mech, "-k", "banana"]), 2, "not a key");
        assert_fails(&run(&["sysv", mech, "--stat", "-i", "x"]), 2, "not an id");
        assert_fails(&run(&["sysv", mech, "--clean", "-i", "-3"]), 2, "");
        assert_fails(
            &run(&["sysv", mech, "-s", "-k", &k, "-i", "1"]),
            2,
            "--id works with --clean and --stat",
        );
        assert_fails(
            &run(&["sysv", mech, "-k", &k, "-i", "1"]),
            2,
            "--id works with --clean and --stat",
        );
        assert_fails(&run(&["sysv", mech, "--clean", "-k", &k]), 1, "no such");
        assert_fails(&run(&["sysv", mech, "--stat", "-k", &k]), 1, "no such");
        // An id no object has: "no such", exit 1.
        assert_fails(
            &run(&["sysv", mech, "--clean", "-i", "2147480000"]),
            1,
            "no such",
        );
        assert_fails(
            &run(&["sysv", mech, "--stat", "-i", "2147480000"]),
            1,
            "no such",
        );
        assert_fails(
            &run(&["sysv", mech, "--mode", "0999", "-s", "-k", &k]),
            2,
            "octal",
        );
    }
    assert_fails(
        &run(&["sysv", "msq", "-k", &k, "--type", "0", "-c", "1"]),
        2,
        "at least 1",
    );
    assert_fails(&run(&["sysv", "shm", "-s", "-k", &k, "--size", "0"]), 2, "");
    assert_fails(
        &run(&["sysv", "sem", "-s", "-k", &k, "--value", "40000"]),
        2,
        "SEMVMX",
    );
    assert_fails(
        &run(&["sysv", "sem", "-k", &k, "--timeout", "1"]),
        2,
        "goes with --wait",
    );
    let err = assert_fails(&run(&["sysv", "sem", "-k", &k]), 1, "no such semaphore");
    assert!(
        err.contains("hint: ") && err.contains("start the server first"),
        "{err}"
    );
    for kind in [Kind::Msq, Kind::Shm, Kind::Sem] {
        assert!(
            !exists(kind, key),
            "a refused command left an object behind"
        );
    }
}

#[test]
fn sigterm_ends_each_server_and_keeps_the_object() {
    for (mech, kind, obj) in [
        ("msq", Kind::Msq, Obj::SysvMsq as fn(i32) -> Obj),
        ("shm", Kind::Shm, Obj::SysvShm),
        ("sem", Kind::Sem, Obj::SysvSem),
    ] {
        let key = unique_key();
        let k = key_hex(key);
        let _guard = Cleanup(vec![obj(key)]);
        let mut server = Server::spawn(&["sysv", mech, "-s", "-k", &k, "--timeout", "30"]);
        server.next_out();
        server.signal(libc::SIGTERM);
        let (status, out, err) = server.finish();
        assert_eq!(status.code(), Some(0), "{mech}: {out:?} {err:?}");
        assert_eq!(out.last().map(String::as_str), Some("canceled."), "{mech}");
        assert!(exists(kind, key), "{mech}: the object must stay in place");
    }
}

#[test]
fn shm_server_and_client() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvShm(key)]);
    let mut server = Server::spawn(&[
        "sysv",
        "shm",
        "-s",
        "-k",
        &k,
        "--interval",
        "0.05",
        "--on-change",
        "--count",
        "3",
        "--timeout",
        "20",
    ]);
    assert!(server.next_out().contains("created, 4096 bytes"));
    assert_eq!(untimed(&server.next_out()), "(empty)");
    assert_ok(&run(&["sysv", "shm", "-k", &k, "-m", "hello shm"]));
    assert_eq!(untimed(&server.next_out()), "hello shm");
    let mut client = bin()
        .args(["sysv", "shm", "-k", &k])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\nignored\n")
        .unwrap();
    assert!(client.wait().unwrap().success());
    assert_eq!(untimed(&server.next_out()), "from stdin");
    assert!(server.finish().0.success());
    assert_eq!(stat_json("shm", &k)["size"], 4096);
}

#[test]
fn shm_too_long_text_writes_nothing_and_size_is_kept() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvShm(key)]);
    assert_ok(&run(&[
        "sysv", "shm", "-k", &k, "--size", "16", "-m", "abc",
    ]));
    let err = assert_fails(
        &run(&["sysv", "shm", "-k", &k, "-m", &"x".repeat(16)]),
        1,
        "nothing was written",
    );
    assert!(err.contains("16 bytes"), "{err}");
    // An existing segment keeps its size, whatever --size says.
    let mut server = Server::spawn(&[
        "sysv", "shm", "-s", "-k", &k, "--size", "9999", "--count", "1",
    ]);
    assert!(server.next_out().contains("opened, 16 bytes"));
    assert_eq!(untimed(&server.next_out()), "abc");
    assert!(server.finish().0.success());
}

#[test]
fn shm_removed_under_the_server_is_reported() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvShm(key)]);
    let mut server = Server::spawn(&[
        "sysv",
        "shm",
        "-s",
        "-k",
        &k,
        "--interval",
        "0.05",
        "--timeout",
        "20",
    ]);
    server.next_out();
    server.next_out();
    assert_ok(&run(&["sysv", "shm", "--clean", "-k", &k]));
    server.fails_with("was removed under the server (IPC_RMID)");
    assert!(
        !exists(Kind::Shm, key),
        "the last detach frees the removed segment"
    );
}

#[test]
fn sem_busy_wait_timeout_release_and_undo() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvSem(key)]);
    let mut server = Server::spawn(&[
        "sysv",
        "sem",
        "-s",
        "-k",
        &k,
        "--value",
        "1",
        "--interval",
        "0.05",
        "--timeout",
        "20",
    ]);
    assert!(server.next_out().contains("created with value 1"));
    assert_eq!(untimed(&server.next_out()), "semaphore: 1");
    assert!(assert_ok(&run(&["sysv", "sem", "-k", &k])).contains("semaphore: 0"));
    assert_eq!(untimed(&server.next_out()), "semaphore: 0");
    assert_fails(&run(&["sysv", "sem", "-k", &k]), 1, "semaphore is busy");
    assert_fails(
        &run(&["sysv", "sem", "-k", &k, "--wait", "--timeout", "0.2"]),
        1,
        "semaphore is busy",
    );
    assert_ok(&run(&["sysv", "sem", "-k", &k, "-r"]));
    assert_eq!(untimed(&server.next_out()), "semaphore: 1");
    // --wait gets a unit that is free.
    assert_ok(&run(&["sysv", "sem", "-k", &k, "--wait", "--timeout", "5"]));
    assert_eq!(untimed(&server.next_out()), "semaphore: 0");
    assert_ok(&run(&["sysv", "sem", "-k", &k, "-r"]));
    assert_eq!(untimed(&server.next_out()), "semaphore: 1");
    // SEM_UNDO: the kernel gives the unit back when the client exits.
    assert_ok(&run(&["sysv", "sem", "-k", &k, "--undo"]));
    assert_eq!(stat_json("sem", &k)["values"][0], 1);
    server.signal(libc::SIGINT);
    let (status, out, _) = server.finish();
    assert!(status.success());
    assert_eq!(out.last().map(String::as_str), Some("canceled."));
}

#[test]
fn sem_waiting_client_gets_a_released_unit() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvSem(key)]);
    let mut server = Server::spawn(&[
        "sysv",
        "sem",
        "-s",
        "-k",
        &k,
        "--value",
        "0",
        "--interval",
        "0.05",
        "--timeout",
        "20",
    ]);
    server.next_out();
    assert_eq!(untimed(&server.next_out()), "semaphore: 0");
    let waiter = bin()
        .args(["sysv", "sem", "-k", &k, "--wait", "--timeout", "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The waiter shows as semncnt in the kernel; release once it is there or not, the unit is kept for it.
    assert_ok(&run(&["sysv", "sem", "-k", &k, "-r"]));
    let o = waiter.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("took one unit"));
}

#[test]
fn sem_existing_value_is_kept_by_a_new_server() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvSem(key)]);
    let mut first = Server::spawn(&["sysv", "sem", "-s", "-k", &k, "--count", "1"]);
    assert!(first.next_out().contains("created with value 2"));
    assert_eq!(untimed(&first.next_out()), "semaphore: 2");
    assert!(first.finish().0.success());
    assert_ok(&run(&["sysv", "sem", "-k", &k]));
    let mut second = Server::spawn(&[
        "sysv", "sem", "-s", "-k", &k, "--value", "5", "--count", "1",
    ]);
    let start = second.next_out();
    assert!(
        start.contains("opened") && !start.contains("with value"),
        "{start}"
    );
    assert_eq!(untimed(&second.next_out()), "semaphore: 1");
    assert!(second.finish().0.success());
}

#[test]
fn objects_made_by_ipcmk_work() {
    let mut ids = IdCleanup(Vec::new());
    let q = ipcmk(&["-Q"]);
    ids.0.push(("-q", q.clone()));
    let m = ipcmk(&["-M", "1234"]);
    ids.0.push(("-m", m.clone()));
    let s = ipcmk(&["-S", "1"]);
    ids.0.push(("-s", s.clone()));

    // ipcmk picks a random key: read it back by id.
    serve_ipcmk_queue(&key_of("msq", &q), &q);
    serve_ipcmk_segment(&key_of("shm", &m));
    serve_ipcmk_semaphore(&key_of("sem", &s));

    // --clean -i removes by id, as ipcrm does.
    for (mech, id) in [("msq", &q), ("shm", &m), ("sem", &s)] {
        assert!(assert_ok(&run(&["sysv", mech, "--clean", "-i", id])).contains("removed"));
        assert_fails(&run(&["sysv", mech, "--clean", "-i", id]), 1, "no such");
    }
}

/// The key of the System V object `id` of `mech`, as `--stat -i` reports it.
fn key_of(mech: &str, id: &str) -> String {
    let o = run(&["--json", "sysv", mech, "--stat", "-i", id]);
    let v: Value = serde_json::from_str(&assert_ok(&o)).unwrap();
    assert_eq!(v["id"].to_string(), id);
    v["key"].as_str().unwrap().to_string()
}

/// ipcmk's queue `q` (key `qk`) is the one ipcs lists, and carries a message.
fn serve_ipcmk_queue(qk: &str, q: &str) {
    let listing =
        String::from_utf8(Command::new("ipcs").arg("-q").output().unwrap().stdout).unwrap();
    assert!(
        listing
            .lines()
            .any(|l| l.split_whitespace().take(2).eq([qk, q])),
        "ipcs -q does not list {qk} {q}: {listing}"
    );
    let mut server = Server::spawn(&[
        "sysv",
        "msq",
        "-s",
        "-k",
        qk,
        "--count",
        "1",
        "--timeout",
        "20",
    ]);
    assert!(server.next_out().contains("opened"));
    assert_ok(&run(&[
        "sysv",
        "msq",
        "-k",
        qk,
        "-m",
        "to ipcmk's queue",
        "-c",
        "1",
    ]));
    assert_eq!(untimed(&server.next_out()), "type 1: to ipcmk's queue");
    assert!(server.finish().0.success());
}

/// ipcmk's segment has its size and mode, and carries a message.
fn serve_ipcmk_segment(mk: &str) {
    let st = stat_json("shm", mk);
    assert_eq!(st["size"], 1234);
    assert_eq!(st["perms"], "0644");
    assert_ok(&run(&[
        "sysv",
        "shm",
        "-k",
        mk,
        "-m",
        "into ipcmk's segment",
    ]));
    let mut server = Server::spawn(&["sysv", "shm", "-s", "-k", mk, "--count", "1"]);
    assert!(server.next_out().contains("opened, 1234 bytes"));
    assert_eq!(untimed(&server.next_out()), "into ipcmk's segment");
    assert!(server.finish().0.success());
}

/// ipcmk's semaphore serves, as made.
fn serve_ipcmk_semaphore(sk: &str) {
    // ipcmk's semaphore has value 0 and sem_otime 0: the server must not wait
    // forever for an initialisation nobody will do, nor reset the value.
    let mut server = Server::spawn(&[
        "sysv",
        "sem",
        "-s",
        "-k",
        sk,
        "--interval",
        "0.05",
        "--count",
        "2",
        "--timeout",
        "20",
    ]);
    assert!(server.next_out().contains("opened"));
    assert_eq!(untimed(&server.next_out()), "semaphore: 0");
    assert_ok(&run(&["sysv", "sem", "-k", sk, "-r"]));
    assert_eq!(untimed(&server.next_out()), "semaphore: 1");
    assert!(server.finish().0.success());
}

#[test]
fn ipcrm_removes_ours_and_clean_by_id() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![
        Obj::SysvMsq(key),
        Obj::SysvShm(key),
        Obj::SysvSem(key),
    ]);
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-c", "0"]));
    assert_ok(&run(&["sysv", "shm", "-k", &k, "-m", "x"]));
    let mut sem = Server::spawn(&["sysv", "sem", "-s", "-k", &k, "--count", "1"]);
    sem.next_out();
    assert!(sem.finish().0.success());
    let o = Command::new("ipcrm")
        .args(["-Q", &k, "-M", &k])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!exists(Kind::Msq, key) && !exists(Kind::Shm, key));
    let id = stat_json("sem", &k)["id"].to_string();
    let o = run(&["--json", "sysv", "sem", "--clean", "-i", &id]);
    let v: Value = serde_json::from_str(&assert_ok(&o)).unwrap();
    assert_eq!(v["kind"], "removed");
    assert_eq!(v["mechanism"], "sysv-sem");
    assert!(!exists(Kind::Sem, key));
}

#[test]
fn tour_runs_the_sysv_steps_and_removes_their_objects() {
    let o = run(&["tour", "--only", "sysv-msq,sysv-shm,sysv-sem"]);
    let out = assert_ok(&o);
    assert!(out.contains("Every step ran end to end"), "{out}");
    for title in [
        "System V message queue",
        "System V shared memory",
        "System V semaphore",
    ] {
        assert!(out.contains(title), "{out}");
    }
    // Every key the tour used (`-k 0x...`) is gone again.
    let keys: Vec<i32> = out
        .split("-k ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|k| u32::from_str_radix(k.trim_start_matches("0x"), 16).ok())
        .map(|k| k as i32)
        .collect();
    assert!(!keys.is_empty());
    for key in keys {
        for kind in [Kind::Msq, Kind::Shm, Kind::Sem] {
            assert!(!exists(kind, key), "the tour left {} behind", key_hex(key));
        }
    }
}

#[test]
fn shm_text_longer_than_a_page_is_printed_whole() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvShm(key)]);
    let long: String = (0..5000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_ok(&run(&[
        "sysv", "shm", "-k", &k, "--size", "10000", "-m", &long,
    ]));
    let mut server = Server::spawn(&["sysv", "shm", "-s", "-k", &k, "--count", "1"]);
    assert!(server.next_out().contains("opened, 10000 bytes"));
    assert_eq!(untimed(&server.next_out()), long);
    assert!(server.finish().0.success());
}

#[test]
fn msq_and_sem_servers_report_removal() {
    for (mech, obj) in [
        ("msq", Obj::SysvMsq as fn(i32) -> Obj),
        ("sem", Obj::SysvSem),
    ] {
        let key = unique_key();
        let k = key_hex(key);
        let _guard = Cleanup(vec![obj(key)]);
        // --interval is the sem server's poll; a msq server takes none.
        let mut args = vec!["sysv", mech, "-s", "-k", &k, "--timeout", "20"];
        if mech == "sem" {
            args.extend(["--interval", "0.05"]);
        }
        let mut server = Server::spawn(&args);
        server.next_out();
        assert_ok(&run(&["sysv", mech, "--clean", "-k", &k]));
        server.fails_with("was removed under the server (IPC_RMID)");
    }
}

#[test]
fn ctrl_c_ends_a_client_blocked_in_semop() {
    use std::os::unix::process::ExitStatusExt;
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvSem(key)]);
    let mut server = Server::spawn(&[
        "sysv", "sem", "-s", "-k", &k, "--value", "0", "--count", "1",
    ]);
    server.next_out();
    assert!(server.finish().0.success());
    let mut waiter = bin()
        .args(["sysv", "sem", "-k", &k, "--wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Synchronise on the kernel: semncnt counts processes blocked in semop.
    // SAFETY: lookups and GETNCNT take integers and write no memory of ours.
    let id = unsafe { libc::semget(key, 0, 0) };
    let deadline = std::time::Instant::now() + crate::common::DEADLINE;
    // SAFETY: as above.
    while unsafe { libc::semctl(id, 0, libc::GETNCNT) } < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the client never blocked"
        );
        std::thread::yield_now();
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(waiter.id() as i32, libc::SIGINT) };
    let status = waiter.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGINT));
    // SAFETY: GETVAL takes integers and writes no memory of ours.
    let value = unsafe { libc::semctl(id, 0, libc::GETVAL) };
    assert_eq!(value, 0, "no unit was taken");
}

/// Messages waiting in queue `key` (msg_qnum of IPC_STAT).
fn qnum(key: i32) -> u64 {
    // SAFETY: msgget without IPC_CREAT creates nothing.
    let id = unsafe { libc::msgget(key, 0) };
    assert!(id >= 0, "msgget {key}: {}", std::io::Error::last_os_error());
    // SAFETY: msqid_ds is plain integers: all zero is valid.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a writable msqid_ds for IPC_STAT to fill.
    let rc = unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) };
    assert_eq!(rc, 0, "msgctl {key}: {}", std::io::Error::last_os_error());
    ds.msg_qnum as u64
}

#[test]
fn msq_server_killed_mid_stream_loses_at_most_the_message_in_flight() {
    let key = unique_key();
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    let k = key.to_string();
    let mut server = Stalled::start(&["sysv", "msq", "-s", "-k", &k]);
    assert!(
        server.start_line.contains("created"),
        "{}",
        server.start_line
    );
    // Twenty messages are waiting when the server goes on, and its stdout
    // takes no more lines: it can print none of them.
    server.pause();
    assert_ok(&run(&[
        "sysv",
        "msq",
        "-k",
        &k,
        "-c",
        "20",
        "--interval",
        "0",
    ]));
    server.fill_stdout();
    server.resume();
    server.wait_blocked(|| qnum(key) < 20);
    let first = counts(&server.kill());
    // The next server gets what the first one left in the queue.
    let left = qnum(key).to_string();
    let second = if left == "0" {
        String::new()
    } else {
        assert_ok(&run(&["sysv", "msq", "-s", "-k", &k, "--count", &left]))
    };
    let second = counts(&second.lines().skip(1).map(String::from).collect::<Vec<_>>());
    assert_at_most_one_lost(20, &first, &second);
    assert_eq!(qnum(key), 0);
}

/// SIGTERM or SIGINT right after the start line, many times and a little
/// later each time: the signal may land just before the server blocks in
/// msgrcv, where only the server's interrupter ends the call. A missed one
/// shows as exit 1 from `--timeout`, or, without it, as a server still
/// blocked at the harness's deadline.
#[test]
fn msq_server_sees_sigterm_in_every_phase() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    for round in 0..100u32 {
        let sig = [libc::SIGTERM, libc::SIGINT][round as usize % 2];
        let mut args = vec!["sysv", "msq", "-s", "-k", &k];
        if round % 4 < 2 {
            args.extend(["--timeout", "25"]);
        }
        let mut server = Server::spawn(&args);
        server.next_out();
        // Another point on the server's way into msgrcv each round.
        for _ in 0..round * 50 {
            std::hint::spin_loop();
        }
        server.signal(sig);
        let (status, out, err) = server.finish();
        assert_eq!(status.code(), Some(0), "round {round}: {out:?} {err:?}");
        assert_eq!(
            out.last().map(String::as_str),
            Some("canceled."),
            "round {round}"
        );
    }
}

/// The syscall the first thread of `pid` is in (/proc/PID/syscall), or
/// None while it runs in user space or on a CPU.
fn syscall_of(pid: i32) -> Option<libc::c_long> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    line.split_whitespace().next()?.parse().ok()
}

/// A field of /proc/PID/status (the first thread's).
fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status"))
        .unwrap_or_else(|e| panic!("status of {pid}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in the status of {pid}"))
        .trim()
        .to_string()
}

/// An idle server sleeps in msgrcv with nothing to wake it, so `ls` finds
/// it as the queue's reader on every look. It has received nothing (lrpid
/// 0): taken out of msgrcv even briefly, as a periodic tick did, its queue
/// would look orphaned then, and `clean --stale` could remove it.
#[test]
fn idle_msq_server_is_the_blocked_reader_on_every_look() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    let server = Server::start(&["sysv", "msq", "-s", "-k", &k]);
    let pid = server.pid();
    let asleep_in_msgrcv =
        || status_field(pid, "State").starts_with('S') && syscall_of(pid) == Some(libc::SYS_msgrcv);
    let end = std::time::Instant::now() + crate::common::DEADLINE;
    while !asleep_in_msgrcv() {
        assert!(
            std::time::Instant::now() < end,
            "the server never slept in msgrcv"
        );
        std::thread::yield_now();
    }
    let switches = status_field(pid, "voluntary_ctxt_switches");
    for look in 0..2000 {
        assert_eq!(syscall_of(pid), Some(libc::SYS_msgrcv), "look {look}");
    }
    for look in 0..200 {
        let doc: Value =
            serde_json::from_str(&assert_ok(&run(&["--json", "ls", "-k", &k]))).unwrap();
        let q = &doc["objects"][0];
        assert_eq!(q["key"], k, "ls {look}: {doc}");
        assert_eq!(q["orphaned"], false, "ls {look}: {q}");
        assert!(
            q["users"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| u["pid"] == pid && u["how"] == "blocked")),
            "ls {look}: {q}"
        );
    }
    // Not one wake-up meanwhile: nothing took it out of msgrcv.
    assert_eq!(status_field(pid, "voluntary_ctxt_switches"), switches);
    server.signal(libc::SIGINT);
    let (status, out, err) = server.finish();
    assert_eq!(status.code(), Some(0), "{out:?} {err:?}");
    assert_eq!(out.last().map(String::as_str), Some("canceled."));
}

/// `--timeout` still ends a server blocked in msgrcv, after a message too.
#[test]
fn msq_server_times_out_in_msgrcv() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    let mut server = Server::spawn(&["sysv", "msq", "-s", "-k", &k, "--timeout", "0.3"]);
    server.next_out();
    assert_ok(&run(&["sysv", "msq", "-k", &k, "-m", "one"]));
    assert!(
        server.next_out().ends_with("type 1: one"),
        "{:?}",
        server.seen_out
    );
    server.fails_with("timed out: no event within 0.3 s (--timeout)");
}

/// A client blocked in msgsnd on a full queue installs no handler: Ctrl-C
/// ends it by the default action, and nothing more is sent.
#[test]
fn ctrl_c_ends_a_msq_client_blocked_on_a_full_queue() {
    use std::os::unix::process::ExitStatusExt;
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    let client = client_on_a_full_queue(&k);
    client.signal(libc::SIGINT);
    let (status, out, err) = client.finish();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{out:?} {err:?}");
    assert_eq!(qnum(key), 2);
}

#[test]
fn msq_message_alone_is_sent_once() {
    let key = unique_key();
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    let k = key_hex(key);
    let out = assert_ok(&run(&["sysv", "msq", "-k", &k, "-m", "once"]));
    assert_eq!(out.lines().count(), 1, "{out}");
    let stat = assert_ok(&run(&["--json", "sysv", "msq", "-k", &k, "--stat"]));
    let stat: serde_json::Value = serde_json::from_str(stat.trim()).unwrap();
    assert_eq!(stat["qnum"], 1);
}

/// Every byte of the segment with `key`, read through an attachment of our own.
fn shm_bytes(key: i32) -> Vec<u8> {
    // SAFETY: shmget without IPC_CREAT creates nothing.
    let id = unsafe { libc::shmget(key, 0, 0) };
    assert!(id >= 0, "no segment {}", key_hex(key));
    // SAFETY: all zero is a valid shmid_ds (integers only).
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a writable shmid_ds for the kernel to fill.
    assert_eq!(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) }, 0);
    // SAFETY: a null address lets the kernel choose; read-only attachment.
    let p = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
    assert_ne!(p as isize, -1, "shmat");
    // SAFETY: the attachment is shm_segsz bytes long and stays until shmdt below.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), ds.shm_segsz) }.to_vec();
    // SAFETY: p is the address shmat returned, detached once.
    unsafe { libc::shmdt(p) };
    bytes
}

#[test]
fn shm_shorter_text_clears_the_tail_of_the_older_one() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvShm(key)]);
    assert_ok(&run(&[
        "sysv",
        "shm",
        "-k",
        &k,
        "--size",
        "64",
        "-m",
        "hello world long text",
    ]));
    assert_ok(&run(&["sysv", "shm", "-k", &k, "-m", "hi"]));
    let raw = shm_bytes(key);
    assert_eq!(raw.len(), 64);
    assert_eq!(&raw[..3], b"hi\0");
    assert!(raw[3..].iter().all(|&b| b == 0), "old tail left: {raw:?}");
    // A text that fills the segment to its last byte, then a shorter one.
    assert_ok(&run(&["sysv", "shm", "-k", &k, "-m", &"y".repeat(63)]));
    assert_ok(&run(&["sysv", "shm", "-k", &k, "-m", "z"]));
    let raw = shm_bytes(key);
    assert_eq!(&raw[..2], b"z\0");
    assert!(raw[2..].iter().all(|&b| b == 0), "old tail left: {raw:?}");
}

#[test]
fn shm_endless_stdin_is_refused_without_reading_it_all() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvShm(key)]);
    assert_ok(&run(&[
        "sysv", "shm", "-k", &k, "--size", "64", "-m", "kept",
    ]));
    let err = assert_fails(
        &run_on_endless_stdin(&["sysv", "shm", "-k", &k]),
        1,
        "does not fit",
    );
    assert!(
        err.contains("64 bytes") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(&shm_bytes(key)[..5], b"kept\0");
}

#[test]
fn refused_clients_remove_only_what_they_created() {
    let (kq, ks, ke) = (unique_key(), unique_key(), unique_key());
    let _guard = Cleanup(vec![Obj::SysvMsq(kq), Obj::SysvShm(ks), Obj::SysvShm(ke)]);
    let msgmax: usize = std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let big = "x".repeat(msgmax + 1);
    let err = assert_fails(
        &run(&["sysv", "msq", "-k", &key_hex(kq), "-m", &big]),
        1,
        "larger than",
    );
    assert!(err.contains("nothing was created"), "{err}");
    assert!(!exists(Kind::Msq, kq), "refused queue stays");
    let o = run(&[
        "sysv",
        "shm",
        "-k",
        &key_hex(ks),
        "--size",
        "16",
        "-m",
        &"x".repeat(16),
    ]);
    let err = assert_fails(&o, 1, "does not fit");
    assert!(err.contains("nothing was created"), "{err}");
    assert!(!exists(Kind::Shm, ks), "refused segment stays");
    assert_fails(
        &run_on_endless_stdin(&["sysv", "shm", "-k", &key_hex(ke)]),
        1,
        "does not fit",
    );
    assert!(!exists(Kind::Shm, ke), "refused segment stays");
    // What existed before is kept (msq_full_queue_and_too_big and
    // shm_too_long_text_writes_nothing_and_size_is_kept check it as well).
    assert_ok(&run(&["sysv", "msq", "-k", &key_hex(kq), "-c", "0"]));
    assert_fails(
        &run(&["sysv", "msq", "-k", &key_hex(kq), "-m", &big]),
        1,
        "larger than",
    );
    assert!(exists(Kind::Msq, kq));
}

/// The rows under the `semnum` header of `--stat` or `ipcs -s -i`, as words.
fn sem_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with("semnum"))
        .skip(1)
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|r| !r.is_empty())
        .collect()
}

#[test]
fn sem_stat_and_ls_show_every_semaphore_with_its_waiters() {
    let key = unique_key();
    let k = key_hex(key);
    let guard = Cleanup(vec![Obj::SysvSem(key)]);
    // SAFETY: plain semget; the result is checked.
    let id = unsafe { libc::semget(key, 3, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    assert!(id >= 0, "semget: {}", std::io::Error::last_os_error());
    let mut values = [0u16, 2, 5];
    // SAFETY: SETALL reads 3 unsigned shorts from the array.
    let r = unsafe { libc::semctl(id, 0, libc::SETALL, values.as_mut_ptr()) };
    assert_eq!(r, 0, "SETALL: {}", std::io::Error::last_os_error());
    // A thread waits for semaphore 1 to reach zero (zcount); removing the
    // set at the end wakes it with EIDRM.
    // It retries EINTR, and its errno says why it ended.
    let zero_waiter = std::thread::spawn(move || {
        loop {
            let mut op = libc::sembuf {
                sem_num: 1,
                sem_op: 0,
                sem_flg: 0,
            };
            // SAFETY: one valid sembuf for one operation.
            let r = unsafe { libc::semop(id, &mut op, 1) };
            let err = std::io::Error::last_os_error();
            if r == -1 && err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return (r, err.raw_os_error());
        }
    });
    // A client waits for a unit of semaphore 0, which has none (ncount).
    let client = Server::spawn(&["sysv", "sem", "-k", &k, "--wait", "--timeout", "60"]);

    // Synchronise on what --stat itself reports: both waiters blocked.
    let end = std::time::Instant::now() + crate::common::DEADLINE;
    let stat = loop {
        let stat = stat_json("sem", &k);
        if stat["sems"][0]["ncount"] == 1 && stat["sems"][1]["zcount"] == 1 {
            break stat;
        }
        assert!(
            !zero_waiter.is_finished(),
            "the zero waiter ended early: {:?}; {stat}",
            zero_waiter.join()
        );
        assert!(
            std::time::Instant::now() < end,
            "the waiters never showed: {stat}"
        );
        std::thread::yield_now();
    };
    // SETALL made this process the last to change each semaphore.
    let me = std::process::id();
    let sem = |semnum: u16, value: u16, ncount: i32, zcount: i32| serde_json::json!({"semnum": semnum, "value": value, "ncount": ncount, "zcount": zcount, "pid": me});
    assert_eq!(
        stat["sems"],
        serde_json::json!([sem(0, 0, 1, 0), sem(1, 2, 0, 1), sem(2, 5, 0, 0)]),
        "{stat}"
    );
    assert_eq!(stat["values"], serde_json::json!([0, 2, 5]));

    assert_sem_text_is_ipcs_table(&k, id, me);
    assert_ls_has_sem_set(&k, &stat);

    // Removing the set wakes both waiters.
    drop(guard);
    assert_eq!(zero_waiter.join().unwrap(), (-1, Some(libc::EIDRM)));
    client.fails_with("was removed");
}

/// `--stat`'s text of the set `k` (id `id`, last changed by `me`) has the
/// same table as `ipcs -s -i ID`.
fn assert_sem_text_is_ipcs_table(k: &str, id: i32, me: u32) {
    // The text has the same table as `ipcs -s -i ID`.
    let text = assert_ok(&run(&["sysv", "sem", "--stat", "-k", k]));
    assert!(
        text.lines().any(|l| l
            .split_whitespace()
            .eq(["semnum", "value", "ncount", "zcount", "pid"])),
        "{text}"
    );
    let rows = sem_rows(&text);
    let me = me.to_string();
    assert_eq!(
        rows,
        [
            ["0", "0", "1", "0", me.as_str()],
            ["1", "2", "0", "1", me.as_str()],
            ["2", "5", "0", "0", me.as_str()],
        ],
        "{text}"
    );
    let ipcs = Command::new("ipcs")
        .args(["-s", "-i", &id.to_string()])
        .output()
        .expect("ipcs (util-linux) is needed");
    assert_eq!(sem_rows(&assert_ok(&ipcs)), rows);
}

/// ls --json has the same array for the set `k` as `--stat`, and the
/// waiters in total.
fn assert_ls_has_sem_set(k: &str, stat: &Value) {
    let doc: Value = serde_json::from_str(&assert_ok(&run(&["ls", "--json", "--key", k]))).unwrap();
    let listed = doc["objects"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o["key"] == k))
        .unwrap_or_else(|| panic!("set not listed: {doc}"));
    assert_eq!(listed["sems"], stat["sems"], "{listed}");
    assert_eq!(listed["waiters"], 2, "{listed}");
}

/// A client sending three messages of 8000 bytes to queue `k`, once it has
/// said that it waits for room: two fill the default 16384 bytes.
fn client_on_a_full_queue(k: &str) -> Server {
    let text = "y".repeat(8000);
    let mut client = Server::spawn(&[
        "sysv",
        "msq",
        "-k",
        k,
        "-m",
        &text,
        "-c",
        "3",
        "--interval",
        "0",
    ]);
    assert_eq!(
        client.next_err(),
        format!("queue {k} is full (16000 of 16384 bytes): waiting for a reader (Ctrl-C to stop)")
    );
    client
}

#[test]
fn msq_client_on_a_full_queue_says_so() {
    let key = unique_key();
    let k = key_hex(key);
    let _guard = Cleanup(vec![Obj::SysvMsq(key)]);
    let client = client_on_a_full_queue(&k);
    let mut server = Server::start(&["sysv", "msq", "-s", "-k", &k, "--count", "3"]);
    server.next_out();
    let (status, out, err) = client.finish();
    assert!(status.success(), "{out:?} {err:?}");
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(server.finish().0.success());
}
