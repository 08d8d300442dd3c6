//! `bench`: every mechanism runs a short verified bench, a corrupted byte
//! fails the run loudly, JSON has every field, the floor, size lists,
//! placement lists and the curves are there, and nothing is left behind.
//! No timing assertions: only that numbers exist and are positive.

use std::process::{Output, Stdio};
use std::time::Instant;

use crate::common::{Cleanup, DEADLINE, Obj, assert_fails, assert_ok, bin};
use crate::posix::OnPty;

const MECHS: [&str; 12] = [
    "pipe",
    "vmsplice",
    "fifo",
    "unix",
    "unix-dgram",
    "tcp",
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
    // A tag per measurement of the run (floors, sizes, placements).
    for tag in 0..64 {
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

/// vmsplice is measured in pingpong only (see `vmsplice_streams_are_refused`).
fn stream_mechs() -> Vec<&'static str> {
    mechs().into_iter().filter(|m| *m != "vmsplice").collect()
}

#[test]
fn every_mechanism_stream() {
    for m in stream_mechs() {
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
        let list = if pattern == "stream" {
            stream_mechs()
        } else {
            mechs()
        };
        for m in list {
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
    let mut args = vec![
        "--json",
        "-c",
        "200",
        "--warmup",
        "10",
        "--no-floor",
        "--mech",
    ];
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
            "round_trip_ns",
            "floor_ns",
            "x_floor",
        ] {
            assert!(v.get(f).is_some(), "{f} missing in {line}");
        }
        // --no-floor: nothing to compare with.
        assert!(v["floor_ns"].is_null() && v["x_floor"].is_null(), "{line}");
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
    let (o, _) = bench(&[
        "--json",
        "-c",
        "100",
        "--no-floor",
        "--mech",
        "pipe",
        "--pin",
        "same",
    ]);
    let v: serde_json::Value = serde_json::from_str(assert_ok(&o).trim()).expect("not JSON");
    assert_eq!(v["pin"], "same");
    assert_eq!(v["parent_cpu"], v["child_cpu"]);
    if cpus() > 1 {
        let (o, _) = bench(&[
            "--json",
            "-c",
            "100",
            "--no-floor",
            "--mech",
            "pipe",
            "--pin",
            "split",
        ]);
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
            .args(["bench", "--no-floor", "--mech", m, "--duration", "60"])
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
        .args([
            "--json",
            "bench",
            "--no-floor",
            "--mech",
            "unix",
            "--duration",
            "60",
        ])
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
    let mut bench = OnPty::spawn(
        &[
            "bench",
            "--no-floor",
            "--mech",
            "sysv-msq",
            "--duration",
            "60",
        ],
        true,
    );
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
            .args(["bench", "--no-floor", "--mech", m, "--duration", "60"])
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

/// The JSON lines of a run, parsed.
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

/// `--floor` measures the floor alone, one record per placement: a spin
/// on two CPUs, sched_yield on one.
#[test]
fn floor_alone() {
    let (o, pid) = bench(&["--floor", "-c", "2000", "--warmup", "100"]);
    let out = assert_ok(&o);
    assert!(out.starts_with("floor: one atomic word"), "{out}");
    let rows: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(rows.len(), 1, "{out}");
    let wait = if cpus() > 1 { "spin" } else { "yield" };
    assert!(
        rows[0].starts_with("none ") && rows[0].contains(wait),
        "{out}"
    );
    assert!(!out.contains("mechanism"), "{out}");
    assert_nothing_left(pid);

    let pins = if cpus() > 1 { "same,split" } else { "same" };
    let (o, _) = bench(&["--json", "--floor", "--pin", pins, "-c", "500"]);
    let lines = json_lines(&assert_ok(&o));
    assert_eq!(lines.len(), pins.split(',').count(), "{lines:?}");
    for (v, pin) in lines.iter().zip(pins.split(',')) {
        assert_eq!(v["kind"], "floor", "{v}");
        assert_eq!(v["pin"], pin, "{v}");
        assert_eq!(v["wait"], if pin == "same" { "yield" } else { "spin" });
        assert_eq!(v["count"], 500, "{v}");
        for f in ["round_trip_ns", "mean_ns", "per_sec", "seconds"] {
            assert!(v[f].as_f64().is_some_and(|x| x > 0.0), "{f} in {v}");
        }
        let same_cpu = v["parent_cpu"] == v["child_cpu"];
        assert_eq!(same_cpu, pin == "same", "{v}");
    }
}

/// A pingpong run measures the floor first, and every row carries its
/// round trip (timed as the floor is) as a multiple of it: `round_trip_ns`,
/// `floor_ns` and `x_floor` in JSON, the `×floor` column in text.
#[test]
fn rows_are_compared_with_the_floor() {
    let (o, pid) = bench(&[
        "--json", "--mech", "pipe,tcp", "-c", "200", "--warmup", "10",
    ]);
    let lines = json_lines(&assert_ok(&o));
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["kind"], "floor");
    let floor = lines[0]["round_trip_ns"].as_f64().expect("a floor");
    for (v, m) in lines[1..].iter().zip(["pipe", "tcp"]) {
        assert_eq!(v["mechanism"], m, "{v}");
        assert_eq!(v["floor_ns"].as_f64(), Some(floor), "{v}");
        // Both sides timed alike: the median of batches of round trips.
        let rt = v["round_trip_ns"].as_f64().expect("round_trip_ns");
        assert!(rt > 0.0, "{v}");
        let x = v["x_floor"].as_f64().expect("x_floor");
        assert!((x - rt / floor).abs() <= 1e-9 * x.max(1.0), "{v}");
    }
    assert_nothing_left(pid);

    let (o, _) = bench(&["--mech", "unix-dgram", "-c", "200", "--warmup", "10"]);
    let out = assert_ok(&o);
    assert!(out.contains("×floor"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("unix-dgram "))
        .unwrap_or_else(|| panic!("no row: {out}"));
    let last = row.split_whitespace().last().unwrap_or_default();
    assert!(
        last.parse::<f64>().is_ok_and(|x| x > 0.0),
        "×floor {last:?} in {row}"
    );
    // Without the floor, nothing to compare with.
    let (o, _) = bench(&["--no-floor", "--mech", "pipe", "-c", "100"]);
    let out = assert_ok(&o);
    assert!(!out.contains("floor: one atomic word"), "{out}");
    let row = out.lines().find(|l| l.starts_with("pipe ")).unwrap_or("");
    assert!(row.ends_with(" -"), "{out}");
}

/// `--size LIST` runs every mechanism at every size: one JSON object per
/// mechanism and size (but those skipped with a note), and in text one
/// table per size, in the order given.
#[test]
fn size_lists() {
    let mechs = ["pipe", "tcp", "unix-dgram", "posix-msq"];
    let sizes = ["64", "4096", "65536"];
    let (o, pid) = bench(&[
        "--json",
        "--no-floor",
        "--mech",
        &mechs.join(","),
        "--size",
        &sizes.join(","),
        "-c",
        "50",
        "--warmup",
        "5",
    ]);
    let out = assert_ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    let mut want = Vec::new();
    for size in sizes {
        for m in mechs {
            if !err.contains(&format!("note: skipping {m} at {size} bytes: ")) {
                want.push((m.to_string(), size.parse::<u64>().expect("a size")));
            }
        }
    }
    // posix-msq above msgsize_max (8192 by default) is skipped, not refused.
    assert!(want.len() >= 10, "{err}");
    let got: Vec<(String, u64)> = json_lines(&out)
        .iter()
        .map(|v| {
            assert_eq!(v["kind"], "bench", "{v}");
            let m = v["mechanism"].as_str().expect("a mechanism").to_string();
            (m, v["size"].as_u64().expect("a size"))
        })
        .collect();
    assert_eq!(got, want);
    assert_nothing_left(pid);

    let (o, _) = bench(&[
        "--mech",
        "pipe,unix",
        "--size",
        "4096,64",
        "-c",
        "50",
        "--warmup",
        "5",
    ]);
    let out = assert_ok(&o);
    let headers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("pingpong, "))
        .collect();
    assert_eq!(headers.len(), 2, "{out}");
    assert!(headers[0].starts_with("pingpong, 4096 bytes"), "{out}");
    assert!(headers[1].starts_with("pingpong, 64 bytes"), "{out}");
    // Each group has its two rows, right after its header.
    let groups: Vec<&str> = out.split("pingpong, ").skip(1).collect();
    for g in groups {
        let rows: Vec<&str> = g.lines().skip(2).filter(|l| !l.is_empty()).collect();
        assert_eq!(rows.len(), 2, "{g}");
        assert!(
            rows[0].starts_with("pipe ") && rows[1].starts_with("unix "),
            "{g}"
        );
    }
}

/// `--pin same,split` measures both placements: a floor each, and a row
/// per mechanism and placement, side by side.
#[test]
fn pin_lists() {
    if cpus() < 2 {
        let (o, _) = bench(&["--pin", "same,split", "-c", "10"]);
        assert_fails(&o, 2, "--pin split needs two CPUs");
        return;
    }
    let (o, pid) = bench(&[
        "--json",
        "--pin",
        "same,split",
        "--mech",
        "pipe,shm-spin,tcp",
        "-c",
        "100",
        "--warmup",
        "10",
    ]);
    let out = assert_ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("note: skipping shm-spin (pin same): it busy-waits"),
        "{err}"
    );
    let lines = json_lines(&out);
    let got: Vec<(String, String, String)> = lines
        .iter()
        .map(|v| {
            let s = |f: &str| v[f].as_str().unwrap_or_default().to_string();
            (s("kind"), s("mechanism"), s("pin"))
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("floor", "", "same"),
        ("floor", "", "split"),
        ("bench", "pipe", "same"),
        ("bench", "pipe", "split"),
        ("bench", "shm-spin", "split"),
        ("bench", "tcp", "same"),
        ("bench", "tcp", "split"),
    ]
    .iter()
    .map(|(k, m, p)| (k.to_string(), m.to_string(), p.to_string()))
    .collect();
    assert_eq!(got, want);
    for v in &lines[2..] {
        // Each row is compared with the floor of its own placement.
        let floor = if v["pin"] == "same" {
            &lines[0]
        } else {
            &lines[1]
        };
        assert_eq!(v["floor_ns"], floor["round_trip_ns"], "{v}");
        let same_cpu = v["parent_cpu"] == v["child_cpu"];
        assert_eq!(same_cpu, v["pin"] == "same", "{v}");
    }
    assert_nothing_left(pid);
}

/// With several sizes, `--svg` draws two charts against size: latency
/// above, throughput below, on log-log axes, one line per mechanism in
/// each, and a legend naming them.
#[test]
fn svg_curves_against_size() {
    let path = std::env::temp_dir().join(format!("eipc-test-{}-curves.svg", std::process::id()));
    let _guard = Cleanup(vec![Obj::Path(path.clone())]);
    let (o, _) = bench(&[
        "--mech",
        "pipe,unix,tcp",
        "--size",
        "64,4096,65536",
        "-c",
        "50",
        "--warmup",
        "5",
        "--svg",
        path.to_str().unwrap(),
    ]);
    assert_ok(&o);
    let svg = std::fs::read_to_string(&path).expect("no SVG written");
    assert!(svg.starts_with("<svg"), "{svg}");
    for text in [
        "median latency against message size",
        "MB/s one way",
        "message size (log scale)",
        "median round trip (log scale)",
        "MB/s (log scale)",
        "64 B",
        "4 KiB",
        "64 KiB",
        // The legend.
        "\npipe\n",
        "\nunix\n",
        "\ntcp\n",
    ] {
        assert!(svg.contains(text), "{text} missing");
    }
    // Data lines are 2 px wide; axes and ticks are 1 px.
    let lines: Vec<&str> = svg
        .split("<polyline")
        .skip(1)
        .filter(|p| {
            p.split('>')
                .next()
                .unwrap_or("")
                .contains("stroke-width=\"2\"")
        })
        .collect();
    assert_eq!(lines.len(), 2 * 3, "one line per mechanism in each chart");
    for l in &lines {
        let points = l.split("points=\"").nth(1).unwrap_or("");
        let n = points
            .split('"')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .count();
        assert_eq!(n, 3, "one point per size: {l}");
    }
}

/// vmsplice lends the pipe the sender's pages, so it runs in pingpong
/// only; a datagram above what a socket pair takes is refused when asked
/// for by name, skipped with a note otherwise.
#[test]
fn new_mechanisms_refuse_what_they_cannot_do() {
    let (o, _) = bench(&["--mech", "vmsplice", "--pattern", "stream", "-c", "10"]);
    assert_fails(&o, 2, "cannot bench vmsplice: vmsplice lends the pipe");
    let (o, _) = bench(&["--pattern", "stream", "--mech", "pipe,vmsplice", "-c", "10"]);
    assert_fails(&o, 2, "cannot bench vmsplice");
    let (o, _) = bench(&["--pattern", "stream", "-c", "20", "--mech", "pipe"]);
    assert_ok(&o);
    let wmem = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if wmem.is_some_and(|w| w < 1_048_576) {
        let (o, _) = bench(&["--mech", "unix-dgram", "--size", "1048576", "-c", "5"]);
        assert_fails(&o, 2, "cannot bench unix-dgram: --size 1048576 is above");
        let (o, _) = bench(&[
            "--no-floor",
            "--mech",
            "unix-dgram",
            "--size",
            "64,1048576",
            "-c",
            "5",
        ]);
        let out = assert_ok(&o);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("note: skipping unix-dgram at 1048576 bytes: --size 1048576 is above"),
            "{err}"
        );
        assert!(out.contains("pingpong, 64 bytes"), "{out}");
        assert!(!out.contains("1048576 bytes"), "{out}");
    }
    // --floor measures the floor alone: nothing else goes with it.
    let (o, _) = bench(&["--floor", "--mech", "pipe"]);
    assert_fails(&o, 2, "cannot be used with");
    let (o, _) = bench(&["--floor", "--no-floor"]);
    assert_fails(&o, 2, "cannot be used with");
    let (o, _) = bench(&["--size", "64,8"]);
    assert_fails(&o, 2, "--size");
}
