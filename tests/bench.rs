//! `bench`: every mechanism runs a short verified bench, a corrupted byte
//! fails the run loudly, JSON has every field, and nothing is left behind.
//! No timing assertions: only that numbers exist and are positive.

use std::process::{Output, Stdio};
use std::time::Instant;

use crate::common::{Cleanup, DEADLINE, Obj, assert_fails, assert_ok, bin};
use crate::posix::OnPty;

const MECHS: [&str; 9] = [
    "pipe",
    "fifo",
    "unix",
    "posix-msq",
    "sysv-msq",
    "shm-spin",
    "shm-futex",
    "shm-sem",
    "eventfd",
];

/// Two CPUs? shm-spin is refused on one.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn mechs() -> Vec<&'static str> {
    MECHS
        .iter()
        .copied()
        .filter(|m| *m != "shm-spin" || cpus() > 1)
        .collect()
}

/// Run bench and return its output and pid, to look for its leftovers.
fn bench(args: &[&str]) -> (Output, u32) {
    let child = bin()
        .arg("bench")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run examples-ipc");
    let pid = child.id();
    (
        child
            .wait_with_output()
            .expect("cannot wait for examples-ipc"),
        pid,
    )
}

/// Nothing named after this bench process exists any more: POSIX queues,
/// named semaphores, the FIFO directory, System V queues it created.
fn assert_nothing_left(pid: u32) {
    let prefix = format!("examples-ipc-bench-{pid}-");
    for tag in 0..MECHS.len() {
        for dir in ["down", "up"] {
            let name = format!("/{prefix}{tag}-{dir}");
            let open = posixmq::OpenOptions::readonly().open(name.as_str());
            assert!(open.is_err(), "queue {name} was left behind");
        }
    }
    for dir in ["/dev/shm", "/tmp"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                assert!(!name.contains(&prefix), "{dir}/{name} was left behind");
            }
        }
    }
    // /proc/sysvipc/msg: key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid ...
    // The creator pid is not listed, but lspid/lrpid are the bench's two processes.
    if let Ok(text) = std::fs::read_to_string("/proc/sysvipc/msg") {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert!(
                f.get(5) != Some(&pid.to_string().as_str())
                    && f.get(6) != Some(&pid.to_string().as_str()),
                "System V queue left behind: {line}"
            );
        }
    }
}

#[test]
fn every_mechanism_pingpong() {
    for m in mechs() {
        let (o, pid) = bench(&["--mech", m, "-c", "300", "--warmup", "20"]);
        let out = assert_ok(&o);
        assert!(out.contains("round trips/s"), "{out}");
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("{m} ")))
            .unwrap_or_else(|| panic!("no row for {m}: {out}"));
        assert!(row.contains("none"), "{row}");
        assert_nothing_left(pid);
    }
}

#[test]
fn every_mechanism_stream() {
    for m in mechs() {
        let (o, pid) = bench(&[
            "--mech",
            m,
            "-c",
            "300",
            "--warmup",
            "20",
            "--pattern",
            "stream",
            "--size",
            "4096",
        ]);
        let out = assert_ok(&o);
        assert!(out.contains("MB/s"), "{out}");
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{m} "))),
            "no row for {m}: {out}"
        );
        assert_nothing_left(pid);
    }
}

#[test]
fn corruption_fails_loudly() {
    for pattern in ["pingpong", "stream"] {
        for m in mechs() {
            let (o, pid) = bench(&[
                "--mech",
                m,
                "-c",
                "300",
                "--warmup",
                "20",
                "--pattern",
                pattern,
                "--corrupt-after",
                "50",
            ]);
            let err = assert_fails(&o, 1, "checksum mismatch: the data was corrupted");
            assert!(
                err.contains(&format!("bench {m} failed")),
                "{pattern}: {err}"
            );
            assert!(
                o.stdout.is_empty(),
                "{pattern}: a corrupted run printed results"
            );
            assert_nothing_left(pid);
        }
    }
}

#[test]
fn json_has_every_field() {
    let mut args = vec!["--json", "-c", "200", "--warmup", "10", "--mech"];
    let list = mechs().join(",");
    args.push(&list);
    let (o, pid) = bench(&args);
    let out = assert_ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), mechs().len(), "{out}");
    for (line, m) in lines.iter().zip(mechs()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a line is not JSON");
        for f in [
            "kind",
            "mechanism",
            "pattern",
            "size",
            "pin",
            "parent_cpu",
            "child_cpu",
            "count",
            "seconds",
            "per_sec",
            "mb_per_sec",
            "latency_ns",
            "cpu_ns_per_op",
        ] {
            assert!(v.get(f).is_some(), "{f} missing in {line}");
        }
        assert_eq!(v["mechanism"], m);
        assert_eq!(v["kind"], "bench");
        assert_eq!(v["pattern"], "pingpong");
        assert_eq!(v["size"], 64);
        assert_eq!(v["count"], 200);
        assert!(v["per_sec"].as_f64().is_some_and(|x| x > 0.0), "{line}");
        for q in ["mean", "p50", "p99", "p999", "max"] {
            assert!(
                v["latency_ns"][q].as_f64().is_some_and(|x| x > 0.0),
                "{q} in {line}"
            );
        }
    }
    assert_nothing_left(pid);
}

#[test]
fn json_stream_has_null_latency() {
    let (o, _) = bench(&[
        "--json",
        "-c",
        "100",
        "--mech",
        "pipe",
        "--pattern",
        "stream",
    ]);
    let out = assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("not JSON");
    assert!(v["latency_ns"].is_null());
    assert!(v["mb_per_sec"].as_f64().is_some_and(|x| x > 0.0));
}

#[test]
fn pinning_is_reported() {
    let (o, _) = bench(&["--json", "-c", "100", "--mech", "pipe", "--pin", "same"]);
    let v: serde_json::Value = serde_json::from_str(assert_ok(&o).trim()).expect("not JSON");
    assert_eq!(v["pin"], "same");
    assert_eq!(v["parent_cpu"], v["child_cpu"]);
    if cpus() > 1 {
        let (o, _) = bench(&["--json", "-c", "100", "--mech", "pipe", "--pin", "split"]);
        let v: serde_json::Value = serde_json::from_str(assert_ok(&o).trim()).expect("not JSON");
        assert_eq!(v["pin"], "split");
        assert_ne!(v["parent_cpu"], v["child_cpu"]);
    }
}

#[test]
fn bad_usage() {
    let (o, _) = bench(&["--mech", "shm-spin", "--pin", "same", "-c", "10"]);
    assert_fails(&o, 2, "cannot bench shm-spin: it busy-waits");
    let (o, _) = bench(&["--size", "8"]);
    assert_fails(&o, 2, "--size");
    let (o, _) = bench(&["--size", "2000000"]);
    assert_fails(&o, 2, "--size");
    let (o, _) = bench(&["-c", "5", "--duration", "1"]);
    assert_fails(&o, 2, "cannot be used with");
    let (o, _) = bench(&["--mech", "carrier-pigeon"]);
    assert_fails(&o, 2, "invalid value");
    let (o, _) = bench(&["--mech", "posix-msq", "--size", "1048576", "-c", "10"]);
    assert_fails(&o, 2, "msgsize_max");
}

/// The pid of the first child `pid` forked, waited for (bounded): the run
/// has started once it exists.
fn forked_child(pid: u32) -> i32 {
    let children = format!("/proc/{pid}/task/{pid}/children");
    let start = Instant::now();
    loop {
        let c = std::fs::read_to_string(&children).unwrap_or_default();
        if let Some(first) = c.split_whitespace().next() {
            return first.parse().expect("a pid");
        }
        assert!(start.elapsed() < DEADLINE, "bench never forked");
        std::thread::yield_now();
    }
}

/// The id of the System V queue that `pids` last sent to or received from,
/// from /proc/sysvipc/msg (key msqid perms cbytes qnum lspid lrpid ...),
/// waited for (bounded): the bench's queue is private (key 0) and is known
/// by its users once messages move.
fn sysv_queue_used_by(pids: &[String]) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string("/proc/sysvipc/msg").unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 6 && (pids.iter().any(|p| p == f[5] || p == f[6])) {
                return f[1].to_string();
            }
        }
        assert!(start.elapsed() < DEADLINE, "no queue used by {pids:?}");
        std::thread::yield_now();
    }
}

/// Ctrl-C (SIGINT) or SIGTERM ends a long run at once, as it ends a server:
/// `canceled.` on stdout, exit 0, no error; the child is killed and reaped,
/// and nothing the run made is left behind.
#[test]
fn sigint_and_sigterm_cancel_the_run_and_clean_up() {
    let runs = [
        ("sysv-msq", libc::SIGINT),
        ("posix-msq", libc::SIGINT),
        ("shm-futex", libc::SIGINT),
        ("shm-sem", libc::SIGINT),
        ("fifo", libc::SIGINT),
        ("sysv-msq", libc::SIGTERM),
        ("pipe", libc::SIGTERM),
    ];
    for (m, sig) in runs {
        let child = bin()
            .args(["bench", "--mech", m, "--duration", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run examples-ipc");
        let pid = child.id();
        let forked = forked_child(pid);
        let queue =
            (m == "sysv-msq").then(|| sysv_queue_used_by(&[pid.to_string(), forked.to_string()]));
        // SAFETY: kill(2) with a pid we spawned and a valid signal.
        unsafe { libc::kill(pid as i32, sig) };
        let o = child.wait_with_output().expect("cannot wait");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{m}: {err}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), "canceled.\n", "{m}");
        assert!(!err.contains("error"), "{m}: {err}");
        assert!(
            !std::path::Path::new(&format!("/proc/{forked}")).exists()
                || std::fs::read_to_string(format!("/proc/{forked}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "child {forked} of {m} survived"
        );
        assert_nothing_left(pid);
        if let Some(id) = queue {
            let text = std::fs::read_to_string("/proc/sysvipc/msg").unwrap_or_default();
            assert!(
                !text
                    .lines()
                    .skip(1)
                    .any(|l| l.split_whitespace().nth(1) == Some(&id)),
                "queue {id} of {m} left behind"
            );
        }
    }
}

/// With --json, a canceled run ends with the servers' `canceled` event.
#[test]
fn canceled_run_in_json_ends_with_the_canceled_event() {
    let child = bin()
        .args(["--json", "bench", "--mech", "unix", "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run examples-ipc");
    let pid = child.id();
    forked_child(pid);
    // SAFETY: kill(2) with a pid we spawned and a valid signal.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let o = child.wait_with_output().expect("cannot wait");
    let out = assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(v["kind"], "canceled", "{out}");
    assert_nothing_left(pid);
}

/// Ctrl-C typed on a terminal: the whole foreground group gets SIGINT (the
/// bench's child too), the terminal echoes `^C` after the progress bar, and
/// the bench clears the bar's line, `^C` with it, before `canceled.`.
#[test]
fn ctrl_c_on_a_terminal_clears_the_bar_and_cancels() {
    let mut bench = OnPty::spawn(&["bench", "--mech", "sysv-msq", "--duration", "60"], true);
    // The bar is drawn as soon as the mechanism starts.
    bench.wait_for("/60000 ms");
    bench.ctrl_c();
    let (status, out) = bench.finish();
    assert_eq!(status.code(), Some(0), "{out:?}");
    assert!(out.ends_with("canceled.\r\n"), "{out:?}");
    assert!(!out.contains("error"), "{out:?}");
    // After the echoed ^C (which may land in the middle of a redraw): no
    // line break before `canceled.`, and the line cleared just before it.
    let after = out.rsplit("^C").next().unwrap_or_default();
    assert!(after.ends_with("\r\x1b[2Kcanceled.\r\n"), "{out:?}");
    assert!(
        !after.trim_end_matches("canceled.\r\n").contains('\n'),
        "{out:?}"
    );
    // Every drawing of the bar, blanks included, leaves the last two of the
    // pty's 80 columns free: a ^C echoed after it stays on its line instead
    // of wrapping onto one the clearing misses.
    for drawn in out.split("\r\x1b[2K").filter(|d| d.contains("/60000 ms")) {
        let width = drawn.replace("^C", "").chars().count();
        assert!(width <= 78, "{width} columns: {drawn:?}");
    }
}

/// The bar counts the measured phase only and never passes its length,
/// however long the warmup before it (it showed `915/300 ms`).
#[test]
fn progress_bar_never_overruns() {
    let mut bench = OnPty::spawn(
        &[
            "bench",
            "--mech",
            "pipe",
            "--duration",
            "0.2",
            "--warmup",
            "200000",
        ],
        true,
    );
    bench.wait_for("round trips/s");
    let (status, out) = bench.finish();
    assert_eq!(status.code(), Some(0), "{out:?}");
    let mut drawn = 0;
    for part in out.split(" ms") {
        if let Some((pos, len)) = part.rsplit(' ').next().and_then(|s| s.split_once('/')) {
            if let (Ok(pos), Ok(len)) = (pos.parse::<u64>(), len.parse::<u64>()) {
                assert_eq!(len, 200, "{part:?}");
                assert!(pos <= len, "the bar shows {pos}/{len} ms");
                drawn += 1;
            }
        }
    }
    assert!(drawn > 0, "no bar drawn: {out:?}");
}

/// The child dying mid-run ends the run at once with a message that says
/// so, whatever the parent was waiting in; nothing is left behind.
#[test]
fn child_death_ends_the_run() {
    for m in mechs() {
        let child = bin()
            .args(["bench", "--mech", m, "--duration", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run examples-ipc");
        let pid = child.id();
        let forked = forked_child(pid);
        // SAFETY: kill(2) with the pid of the bench's child and a valid signal.
        unsafe { libc::kill(forked, libc::SIGKILL) };
        let o = child.wait_with_output().expect("cannot wait");
        let err = assert_fails(&o, 1, "the child process was killed by SIGKILL");
        assert!(err.contains(&format!("bench {m} failed")), "{err}");
        assert_nothing_left(pid);
    }
}

#[test]
fn svg_chart_names_every_mechanism() {
    for (pattern, unit) in [("pingpong", "ns per round trip"), ("stream", "MB/s")] {
        let path =
            std::env::temp_dir().join(format!("eipc-test-{}-{pattern}.svg", std::process::id()));
        let _guard = Cleanup(vec![Obj::Path(path.clone())]);
        let (o, _) = bench(&[
            "--mech",
            "pipe,unix",
            "-c",
            "100",
            "--warmup",
            "10",
            "--pattern",
            pattern,
            "--svg",
            path.to_str().unwrap(),
        ]);
        assert_ok(&o);
        let svg = std::fs::read_to_string(&path).expect("no SVG written");
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["pipe", "unix", unit] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
    // An unwritable path fails the run (exit 1) after the table.
    let (o, _) = bench(&[
        "--mech",
        "pipe",
        "-c",
        "50",
        "--svg",
        "/nonexistent-dir/x.svg",
    ]);
    assert_fails(&o, 1, "cannot draw");
}
