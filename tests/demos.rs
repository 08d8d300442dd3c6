//! `demo` and `pipe`: each demo's claim, checked on its JSON result line.
//! The race is never asserted to lose updates (that depends on timing), only
//! to count correctly; the cures must be exact.

use serde_json::Value;

use crate::common::*;

/// The JSON lines of a successful run.
fn json_lines(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = run(&all);
    let stdout = assert_ok(&o);
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn result_of(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|v| v["kind"] == "result")
        .expect("no result line")
}

#[test]
fn race_counts_and_reports_what_it_lost() {
    let lines = json_lines(&["demo", "race", "--procs", "3", "--iters", "20000"]);
    let r = result_of(&lines);
    assert_eq!(r["expected"], 60000);
    let actual = r["actual"].as_u64().unwrap();
    // Lost updates can only make the count smaller, never larger.
    assert!((20000..=60000).contains(&actual), "{r}");
    assert_eq!(r["lost"].as_u64().unwrap(), 60000 - actual);
}

#[test]
fn mutex_is_exact_and_leaves_no_semaphore() {
    let lines = json_lines(&["demo", "mutex", "--procs", "3", "--iters", "20000"]);
    let r = result_of(&lines);
    assert_eq!(r["expected"], 60000);
    assert_eq!(r["actual"], 60000, "{r}");
    assert_eq!(r["lost"], 0);
    let name = lines[0]["name"]
        .as_str()
        .expect("start line names the semaphore");
    assert!(
        !posix_exists(&Obj::PosixSem(name.to_string())),
        "{name} left behind"
    );
}

#[test]
fn atomic_is_exact() {
    let lines = json_lines(&["demo", "atomic", "--procs", "4", "--iters", "50000"]);
    let r = result_of(&lines);
    assert_eq!(r["expected"], 200000);
    assert_eq!(r["actual"], 200000, "{r}");
}

#[test]
fn text_output_shows_expected_actual_lost() {
    let o = run(&["demo", "atomic", "--procs", "2", "--iters", "1000"]);
    let out = assert_ok(&o);
    assert!(out.contains("expected 2000"), "{out}");
    assert!(out.contains("actual   2000"), "{out}");
    assert!(out.contains("lost     0"), "{out}");
}

fn assert_ring(producers: u64, items: u64, slots: u64) {
    let (p, n, s) = (producers.to_string(), items.to_string(), slots.to_string());
    let lines = json_lines(&[
        "demo",
        "ring",
        "--producers",
        &p,
        "--items",
        &n,
        "--slots",
        &s,
    ]);
    let r = result_of(&lines);
    assert_eq!(r["expected"], producers * items, "{r}");
    assert_eq!(r["received"], producers * items, "{r}");
    assert_eq!(r["bad_checksum"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["missing"], 0, "{r}");
}

#[test]
fn ring_one_producer_delivers_every_item_once() {
    assert_ring(1, 20000, 16);
}

#[test]
fn ring_three_producers_delivers_every_item_once() {
    assert_ring(3, 20000, 16);
    // A ring of one slot forces a hand-over per item.
    assert_ring(3, 2000, 1);
}

#[test]
fn sorted_ends_sorted_and_complete() {
    let lines = json_lines(&["demo", "sorted", "--count", "40", "--interval", "0.001"]);
    let r = result_of(&lines);
    assert_eq!(r["sorted"], true, "{r}");
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(r["n"], 40);
    // The last `sorted` line holds all 40, in order.
    let last = lines
        .iter()
        .rev()
        .find(|v| v["kind"] == "sorted")
        .expect("no sorted line");
    let a: Vec<i64> = last["array"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(a.len(), 40);
    assert!(a.is_sorted(), "{a:?}");
}

#[test]
fn sorted_text_lines() {
    let o = run(&["demo", "sorted", "--count", "3", "--interval", "0"]);
    let out = assert_ok(&o);
    assert!(
        out.lines().any(|l| untimed(l).starts_with("Sorting(")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| untimed(l).starts_with("Sorted(3): {")),
        "{out}"
    );
    assert!(
        out.contains("sorted, every appended number present"),
        "{out}"
    );
}

#[test]
fn scoreboard_reaches_every_item() {
    let lines = json_lines(&["demo", "scoreboard", "--workers", "3", "--items", "40"]);
    let r = result_of(&lines);
    assert_eq!(r["items"], 120, "{r}");
    let last = lines
        .iter()
        .rev()
        .find(|v| v["kind"] == "scoreboard")
        .expect("no table");
    for w in last["workers"].as_array().unwrap() {
        assert_eq!(w["state"], "done", "{last}");
        assert_eq!(w["done"], 40, "{last}");
    }
}

#[test]
fn pipe_round_trips_in_upper_case() {
    let lines = json_lines(&["pipe", "-m", "hello", "-m", "grüße"]);
    let trips: Vec<&Value> = lines.iter().filter(|v| v["kind"] == "roundtrip").collect();
    assert_eq!(trips.len(), 2);
    assert_eq!(trips[0]["reply"], "HELLO");
    assert_eq!(trips[1]["reply"], "GRÜSSE");
    assert_eq!(lines.last().unwrap()["kind"], "done");
}

#[test]
fn bad_options_are_usage_errors() {
    assert_fails(&run(&["demo", "race", "--procs", "0"]), 2, "procs");
    assert_fails(&run(&["demo", "ring", "--slots", "0"]), 2, "slots");
    assert_fails(&run(&["demo", "sorted", "--count", "x"]), 2, "count");
}

/// SIGINT to the parent: it kills its children, prints `canceled.`, exits 0,
/// and the named semaphore is gone.
#[test]
fn ctrl_c_kills_children_and_leaves_nothing() {
    let mut server = Server::spawn(&[
        "--json",
        "demo",
        "mutex",
        "--procs",
        "2",
        "--iters",
        "100000000",
    ]);
    let start: Value = serde_json::from_str(&server.next_out()).unwrap();
    let name = start["name"].as_str().unwrap().to_string();
    server.signal(libc::SIGINT);
    let (status, out, err) = server.finish();
    assert_eq!(status.code(), Some(0), "{out:?} {err:?}");
    assert!(out.last().unwrap().contains("canceled"), "{out:?}");
    assert!(
        !posix_exists(&Obj::PosixSem(name.clone())),
        "{name} left behind"
    );
}

/// The workers a monitor showed are gone (killed and reaped) after SIGTERM.
#[test]
fn sigterm_kills_and_reaps_workers() {
    let mut server = Server::spawn(&[
        "--json",
        "demo",
        "scoreboard",
        "--workers",
        "2",
        "--items",
        "100000",
    ]);
    let pids = loop {
        let line: Value = serde_json::from_str(&server.next_out()).unwrap();
        if line["kind"] != "scoreboard" {
            continue;
        }
        let pids: Vec<u64> = line["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["pid"].as_u64().unwrap())
            .collect();
        if pids.iter().all(|p| *p != 0) {
            break pids;
        }
    };
    server.signal(libc::SIGTERM);
    let (status, out, err) = server.finish();
    assert_eq!(status.code(), Some(0), "{out:?} {err:?}");
    assert!(out.last().unwrap().contains("canceled"), "{out:?}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} still exists"
        );
    }
}

#[test]
fn tour_runs_fifo_and_pipe_and_removes_the_fifo() {
    let o = run(&["tour", "--only", "fifo,pipe"]);
    let out = assert_ok(&o);
    assert!(
        out.contains("server | ") && out.contains("a second writer"),
        "{out}"
    );
    assert!(out.contains("child replied \"HELLO\""), "{out}");
    let fifo = out
        .lines()
        .find_map(|l| l.strip_prefix("  removed FIFO "))
        .expect("the tour removes its FIFO");
    assert!(!std::path::Path::new(fifo).exists());
}

/// A tour started in its own process group, read up to its first server's
/// start line: the first step's object exists from then on. The guard
/// removes whatever of the tour's POSIX objects and files a failing test
/// would otherwise leave.
fn tour_at_its_first_object() -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    Cleanup,
) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut child = bin()
        .arg("tour")
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut cleanup = Cleanup::new();
    cleanup
        .add(Obj::PosixMsq(format!("/eipc-tour-{pid}-msq")))
        .add(Obj::PosixShm(format!("/eipc-tour-{pid}-shm")))
        .add(Obj::PosixSem(format!("/eipc-tour-{pid}-sem")));
    for ext in ["fifo", "socket"] {
        let file = std::env::temp_dir().join(format!("eipc-tour-{pid}.{ext}"));
        cleanup.add(Obj::Path(file));
    }
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !(line.contains("server | ") && line.contains("created")) {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the tour ended early"
        );
    }
    (child, stdout, cleanup)
}

/// What a tour of pid `pid` may have left: POSIX objects of its names and
/// files of its FIFO and socket (its System V keys are free keys, not
/// derived from anything a test can list).
fn tour_leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("/eipc-tour-{pid}-");
    let o = run(&["--json", "ls", "--prefix", &prefix]);
    let listing: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut left: Vec<String> = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|obj| obj["name"].to_string())
        .collect();
    for ext in ["fifo", "socket"] {
        let file = std::env::temp_dir().join(format!("eipc-tour-{pid}.{ext}"));
        if file.exists() {
            left.push(file.display().to_string());
        }
    }
    left
}

/// `tour | head`: once stdout is gone, the tour stops, and still removes
/// what the step in progress made (it used to stop before `--clean`).
#[test]
fn tour_whose_stdout_closes_leaves_nothing() {
    let (mut child, stdout, _cleanup) = tour_at_its_first_object();
    drop(stdout);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "EPIPE ends the tour quietly");
    assert_eq!(tour_leftovers(child.id()), Vec::<String>::new());
}

/// Ctrl-C during the tour: the children end, the tour removes what the
/// step made, then says `canceled.` and exits 0, as a server does.
#[test]
fn tour_canceled_by_ctrl_c_leaves_nothing() {
    let (mut child, mut stdout, _cleanup) = tour_at_its_first_object();
    // SAFETY: kill(2) on the process group of our own child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    // On a machine slow enough to finish all nine steps before the signal
    // lands, the tour ends as usual; either way it removed everything.
    assert!(
        rest.trim_end().ends_with("canceled.") || rest.contains("Every step ran end to end"),
        "{rest}"
    );
    assert_eq!(tour_leftovers(child.id()), Vec::<String>::new(), "{rest}");
}

/// A memfd exchange name no other test uses, its publication registered for removal.
fn memfd_name(tag: &str, cleanup: &mut Cleanup) -> String {
    let name = unique_name(tag)[1..].to_string();
    cleanup.add(Obj::Path(
        std::env::temp_dir().join(format!("examples-ipc-memfd-{name}")),
    ));
    name
}

#[test]
fn memfd_exchange_sealed_and_gone_with_the_server() {
    let mut cleanup = Cleanup::new();
    let name = memfd_name("memfd", &mut cleanup);
    let mut server = Server::spawn(&[
        "--json",
        "demo",
        "memfd",
        "-s",
        "-n",
        &name,
        "--interval",
        "0.02",
        "--on-change",
        "--count",
        "2",
        "--timeout",
        "20",
    ]);
    let start: Value = serde_json::from_str(&server.next_out()).unwrap();
    let (pid, fd) = (
        start["pid"].as_u64().unwrap(),
        start["fd"].as_u64().unwrap(),
    );
    let published = std::path::PathBuf::from(start["path"].as_str().unwrap());
    let meta = std::fs::symlink_metadata(&published).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let first: Value = serde_json::from_str(&server.next_out()).unwrap();
    assert_eq!(first["text"], "");

    let o = run(&[
        "demo",
        "memfd",
        "-n",
        &name,
        "-m",
        "hello memfd",
        "--shrink",
    ]);
    let out = assert_ok(&o);
    assert!(out.contains("seals: seal, shrink"), "{out}");
    assert!(out.contains("refused with EPERM"), "{out}");
    let (status, lines, err) = server.finish();
    assert!(status.success(), "{lines:?} {err:?}");
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["text"], "hello memfd");

    // Gone with the server: no descriptor, no publication, nothing in /dev/shm.
    assert!(!std::path::Path::new(&format!("/proc/{pid}/fd/{fd}")).exists());
    assert!(!published.exists(), "publication left behind");
    let in_shm = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains(&name));
    assert!(!in_shm);
    assert_fails(
        &run(&["demo", "memfd", "-n", &name, "-m", "late"]),
        1,
        "no server publishes it",
    );
}

#[test]
fn memfd_killed_server_leaves_a_stale_publication_that_is_replaced() {
    let mut cleanup = Cleanup::new();
    let name = memfd_name("memfd-stale", &mut cleanup);
    let mut server = Server::spawn(&["--json", "demo", "memfd", "-s", "-n", &name]);
    let start: Value = serde_json::from_str(&server.next_out()).unwrap();
    let old_pid = start["pid"].as_u64().unwrap();
    // A second server on the same exchange is refused while the first lives.
    assert_fails(
        &run(&["demo", "memfd", "-s", "-n", &name]),
        1,
        "already publishes it",
    );
    server.signal(libc::SIGKILL);
    let _ = server.finish();
    // The file survived the crash, the segment did not.
    let e = assert_fails(
        &run(&["demo", "memfd", "-n", &name, "-m", "x"]),
        1,
        "has exited",
    );
    assert!(e.contains("its segment with it"), "{e}");
    let mut server = Server::spawn(&["--json", "demo", "memfd", "-s", "-n", &name]);
    let start: Value = serde_json::from_str(&server.next_out()).unwrap();
    assert_eq!(start["replaced_pid"], old_pid);
    let published = std::path::PathBuf::from(start["path"].as_str().unwrap());
    server.signal(libc::SIGINT);
    let (status, out, _) = server.finish();
    assert_eq!(status.code(), Some(0));
    assert!(out.last().unwrap().contains("canceled"), "{out:?}");
    assert!(!published.exists());
}

#[test]
fn memfd_refuses_bad_names_and_text_that_does_not_fit() {
    let mut cleanup = Cleanup::new();
    assert_fails(
        &run(&["demo", "memfd", "-n", "a/b"]),
        2,
        "not a valid exchange name",
    );
    assert_fails(
        &run(&["demo", "memfd", "-n", ".hidden"]),
        2,
        "not a valid exchange name",
    );
    let name = memfd_name("memfd-fit", &mut cleanup);
    let server = Server::start(&["demo", "memfd", "-s", "-n", &name, "--size", "8"]);
    assert_fails(
        &run(&["demo", "memfd", "-n", &name, "-m", "12345678"]),
        1,
        "nothing was written",
    );
    server.signal(libc::SIGTERM);
    let (status, _, _) = server.finish();
    assert_eq!(status.code(), Some(0));
}

/// Ctrl-C in a terminal signals the whole process group: children die of
/// SIGINT at the same moment, and the demo still ends with `canceled.`, 0.
#[test]
fn sigint_to_the_process_group_is_a_clean_cancel() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    // Each with a line that shows the children are running (the ring's
    // first line comes before its fork: that case covers an early Ctrl-C).
    for (demo, ready) in [
        (
            &["demo", "ring", "--producers", "2", "--items", "10000000"][..],
            "demo ring",
        ),
        (
            &["demo", "sorted", "--count", "4000", "--interval", "0.01"][..],
            "Sorted(",
        ),
        (&["demo", "scoreboard", "--items", "100000"][..], "running"),
    ] {
        let mut child = bin()
            .args(demo)
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains(ready) {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "{demo:?} ended early"
            );
        }
        let pgid = child.id() as i32;
        // SAFETY: kill(2) on the process group of our own child.
        unsafe { libc::kill(-pgid, libc::SIGINT) };
        let end = std::time::Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(std::time::Instant::now() < end, "{demo:?} did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(0), "{demo:?}: {rest} {err}");
        assert!(
            rest.trim_end().ends_with("canceled."),
            "{demo:?}: {rest} {err}"
        );
    }
}

#[test]
fn cures_side_by_side_are_exact() {
    let lines = json_lines(&["demo", "cures", "--procs", "2", "--iters", "10000"]);
    let results: Vec<&Value> = lines.iter().filter(|v| v["kind"] == "result").collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["demo"], "race");
    for r in &results[1..] {
        assert_eq!(r["actual"], 20000, "{r}");
    }
}
