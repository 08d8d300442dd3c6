//! `ls`, `clean --stale`, `limits`, `completions`, `man` against real
//! objects. Other tests run on this machine at the same time, so every `ls`
//! and every `clean` here is narrowed to this test's own names or keys.

use std::time::Instant;

use serde_json::Value;

use crate::common::*;

/// `ls --json ARGS`, parsed.
fn ls_json(args: &[&str]) -> Value {
    let mut all = vec!["ls", "--json"];
    all.extend_from_slice(args);
    let o = run(&all);
    let out = assert_ok(&o);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The objects of an `ls --json` document.
fn objects(doc: &Value) -> Vec<Value> {
    doc["objects"].as_array().cloned().unwrap_or_default()
}

/// The one object named `name` (POSIX) in `ls --json --name name`.
fn posix_obj(name: &str) -> Option<Value> {
    objects(&ls_json(&["--name", name]))
        .into_iter()
        .find(|o| o["name"] == name)
}

fn sysv_obj(key: i32) -> Option<Value> {
    let hex = key_hex(key);
    objects(&ls_json(&["--key", &hex]))
        .into_iter()
        .find(|o| o["key"] == hex.as_str())
}

fn pids(obj: &Value) -> Vec<i64> {
    obj["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["pid"].as_i64())
        .collect()
}

/// A System V object made with libc by this test process.
mod sysv {
    pub fn msq(key: i32) -> i32 {
        // SAFETY: plain msgget; the result is checked.
        let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "msgget: {}", std::io::Error::last_os_error());
        id
    }

    pub fn send(id: i32, text: &[u8]) {
        let mut buf = vec![0u8; 8 + text.len()];
        buf[..8].copy_from_slice(&1i64.to_ne_bytes());
        buf[8..].copy_from_slice(text);
        // SAFETY: buf holds an mtype followed by text.len() bytes.
        let r = unsafe { libc::msgsnd(id, buf.as_ptr().cast(), text.len(), libc::IPC_NOWAIT) };
        assert_eq!(r, 0, "msgsnd: {}", std::io::Error::last_os_error());
    }

    pub fn shm(key: i32, size: usize) -> i32 {
        // SAFETY: plain shmget; the result is checked.
        let id = unsafe { libc::shmget(key, size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        id
    }

    pub fn sem(key: i32, values: &[u16]) -> i32 {
        // SAFETY: plain semget; the result is checked.
        let id = unsafe {
            libc::semget(
                key,
                values.len() as i32,
                libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
            )
        };
        assert!(id >= 0, "semget: {}", std::io::Error::last_os_error());
        let mut v = values.to_vec();
        // SAFETY: SETALL reads values.len() shorts from the array.
        let r = unsafe { libc::semctl(id, 0, libc::SETALL, v.as_mut_ptr()) };
        assert_eq!(r, 0, "semctl SETALL: {}", std::io::Error::last_os_error());
        id
    }

    /// Attached for as long as it lives.
    pub struct Attached(*mut libc::c_void);

    impl Attached {
        pub fn new(id: i32) -> Attached {
            // SAFETY: shmat at an address the kernel picks; checked below.
            let p = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
            assert!(
                p as isize != -1,
                "shmat: {}",
                std::io::Error::last_os_error()
            );
            Attached(p)
        }
    }

    impl Drop for Attached {
        fn drop(&mut self) {
            // SAFETY: detaches the mapping made in new().
            unsafe { libc::shmdt(self.0) };
        }
    }

    /// Removes an object by id (for objects ipcmk made, whose key we learn after).
    pub struct ById(pub char, pub i32);

    impl Drop for ById {
        fn drop(&mut self) {
            // SAFETY: IPC_RMID with no buffer; failure (already gone) is fine.
            unsafe {
                match self.0 {
                    'q' => libc::msgctl(self.1, libc::IPC_RMID, std::ptr::null_mut()),
                    'm' => libc::shmctl(self.1, libc::IPC_RMID, std::ptr::null_mut()),
                    _ => libc::semctl(self.1, 0, libc::IPC_RMID),
                }
            };
        }
    }
}

#[test]
fn posix_objects_listed_with_sizes_values_and_gone_after_removal() {
    let shm = unique_name("ls-shm");
    let sem = unique_name("ls-sem");
    let mq = unique_name("ls-mq");
    let mut guard = Cleanup::new();
    guard
        .add(Obj::PosixShm(shm.clone()))
        .add(Obj::PosixSem(sem.clone()))
        .add(Obj::PosixMsq(mq.clone()));
    assert_ok(&run(&[
        "posix", "shm", "-n", &shm, "--size", "12288", "-m", "hello",
    ]));
    assert_ok(&run(&[
        "posix", "sem", "-s", "-n", &sem, "--value", "3", "--count", "1",
    ]));
    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &mq,
        "-c",
        "2",
        "--interval",
        "0",
        "--max-msgs",
        "5",
        "--msg-size",
        "64",
    ]));

    let o = posix_obj(&shm).expect("shm listed");
    assert_eq!(o["mechanism"], "posix-shm");
    assert_eq!(o["size"], 12288);
    assert_eq!(o["perms"], "0600");
    assert_eq!(o["uid"], 0);
    assert_eq!(o["owner"], "root");
    let o = posix_obj(&sem).expect("sem listed");
    assert_eq!(o["mechanism"], "posix-sem");
    assert_eq!(o["value"], 3);
    let o = posix_obj(&mq).expect("mq listed");
    assert_eq!(o["mechanism"], "posix-msq");
    assert_eq!(o["maxmsg"], 5);
    assert_eq!(o["msgsize"], 64);
    assert_eq!(o["curmsgs"], 2);
    // {"count":1} and {"count":2}: 11 bytes each.
    assert_eq!(o["bytes"], 22);

    // The table shows the same objects, sizes human-readable or exact.
    let prefix = shm.rsplit_once('-').map(|(p, _)| p).unwrap_or(&shm);
    let text = assert_ok(&run(&["ls", "--prefix", prefix]));
    let line = text.lines().find(|l| l.contains(&shm)).expect("shm row");
    assert!(
        line.starts_with("posix-shm") && line.contains(" 12K "),
        "{line}"
    );
    let text = assert_ok(&run(&["ls", "--bytes", "--name", &shm]));
    assert!(
        text.lines()
            .any(|l| l.contains(&shm) && l.contains(" 12288 ")),
        "{text}"
    );

    // The mqueue listing works whether or not /dev/mqueue is mounted.
    let doc = ls_json(&["--name", &mq]);
    assert_eq!(doc["mqueue"]["listed"], true, "{doc}");

    assert_ok(&run(&["posix", "shm", "--clean", "-n", &shm]));
    assert_ok(&run(&["posix", "sem", "--clean", "-n", &sem]));
    assert_ok(&run(&["posix", "msq", "--clean", "-n", &mq]));
    for name in [&shm, &sem, &mq] {
        assert!(posix_obj(name).is_none(), "{name} still listed");
    }
}

#[test]
fn sysv_objects_listed_with_keys_sizes_and_values() {
    let (kq, km, ks) = (unique_key(), unique_key(), unique_key());
    let mut guard = Cleanup::new();
    guard
        .add(Obj::SysvMsq(kq))
        .add(Obj::SysvShm(km))
        .add(Obj::SysvSem(ks));
    let qid = sysv::msq(kq);
    sysv::send(qid, b"abcde");
    let mid = sysv::shm(km, 12345);
    let sid = sysv::sem(ks, &[4, 0, 7]);

    let q = sysv_obj(kq).expect("queue listed");
    assert_eq!(q["mechanism"], "sysv-msq");
    assert_eq!(q["id"], qid);
    assert_eq!(q["qnum"], 1);
    assert_eq!(q["cbytes"], 5);
    assert_eq!(q["perms"], "0600");
    assert_eq!(q["lspid"], std::process::id());
    assert!(q["qbytes"].as_u64().is_some_and(|b| b > 0));
    assert!(q["ctime"].as_str().is_some_and(|t| t.contains('T')), "{q}");
    assert!(q["rtime"].is_null());
    let m = sysv_obj(km).expect("segment listed");
    assert_eq!(m["id"], mid);
    assert_eq!(m["size"], 12345);
    assert_eq!(m["nattch"], 0);
    assert_eq!(m["cpid"], std::process::id());
    let s = sysv_obj(ks).expect("set listed");
    assert_eq!(s["id"], sid);
    assert_eq!(s["nsems"], 3);
    assert_eq!(s["values"], serde_json::json!([4, 0, 7]));

    // This process created the segment and is alive: not orphaned.
    assert_eq!(m["orphaned"], false);
    assert!(pids(&m).contains(&(std::process::id() as i64)), "{m}");

    let text = assert_ok(&run(&["ls", "--key", &key_hex(ks)]));
    assert!(
        text.contains(&key_hex(ks)) && text.contains("values 4,0,7"),
        "{text}"
    );

    drop(guard);
    assert!(sysv_obj(kq).is_none() && sysv_obj(km).is_none() && sysv_obj(ks).is_none());
}

#[test]
fn users_of_a_served_segment_are_listed_and_it_is_not_stale() {
    let shm = unique_name("ls-used");
    let sem = unique_name("ls-used-sem");
    let mut guard = Cleanup::new();
    guard
        .add(Obj::PosixShm(shm.clone()))
        .add(Obj::PosixSem(sem.clone()));
    let server = Server::start(&["posix", "shm", "-s", "-n", &shm, "--interval", "60"]);
    let sem_server = Server::start(&["posix", "sem", "-s", "-n", &sem, "--interval", "60"]);

    let o = posix_obj(&shm).expect("listed");
    assert_eq!(o["orphaned"], false, "{o}");
    let users = o["users"].as_array().unwrap();
    let me = users
        .iter()
        .find(|u| u["pid"] == server.pid())
        .unwrap_or_else(|| panic!("server not a user: {o}"));
    assert_eq!(me["command"], "examples-ipc");
    let o = posix_obj(&sem).expect("listed");
    assert!(pids(&o).contains(&(sem_server.pid() as i64)), "{o}");
    assert_eq!(o["orphaned"], false);

    // clean --stale leaves objects in use alone.
    let out = assert_ok(&run(&["clean", "--stale", "--name", &shm]));
    assert!(!out.contains("removed posix-shm"), "{out}");
    assert!(posix_exists(&Obj::PosixShm(shm.clone())));
    assert!(posix_exists(&Obj::PosixSem(sem.clone())));
    drop(server);
    drop(sem_server);
}

#[test]
fn attached_and_blocked_sysv_users() {
    let (km, kq) = (unique_key(), unique_key());
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvShm(km)).add(Obj::SysvMsq(kq));
    let mid = sysv::shm(km, 4096);
    let attached = sysv::Attached::new(mid);
    let m = sysv_obj(km).expect("listed");
    // Ours; and for a moment also a child another test forks (a pty test's
    // pre_exec), which holds our attachments until it execs.
    assert!(m["nattch"].as_u64() >= Some(1), "{m}");
    let me = std::process::id() as i64;
    let users = m["users"].as_array().unwrap();
    assert!(
        users
            .iter()
            .any(|u| u["pid"] == me && u["how"] == "attached"),
        "{m}"
    );
    drop(attached);

    // A thread blocked in msgrcv uses the queue though no pid was recorded.
    let qid = sysv::msq(kq);
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        // SAFETY: buf holds an mtype and 56 bytes; returns on EIDRM at cleanup.
        unsafe { libc::msgrcv(qid, buf.as_mut_ptr().cast(), 56, 0, 0) };
    });
    let end = Instant::now() + DEADLINE;
    loop {
        let q = sysv_obj(kq).expect("listed");
        if q["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["pid"] == me && u["how"] == "blocked")
        {
            assert_eq!(q["orphaned"], false);
            break;
        }
        assert!(Instant::now() < end, "blocked reader never listed: {q}");
        std::thread::yield_now();
    }
}

#[test]
fn stale_objects_are_listed_by_dry_run_and_removed_by_clean() {
    let shm = unique_name("ls-stale");
    let sem = unique_name("ls-stale-sem");
    let mq = unique_name("ls-stale-mq");
    let mut guard = Cleanup::new();
    guard
        .add(Obj::PosixShm(shm.clone()))
        .add(Obj::PosixSem(sem.clone()))
        .add(Obj::PosixMsq(mq.clone()));
    // Made by clients that exited: nobody maps or holds them.
    assert_ok(&run(&["posix", "shm", "-n", &shm, "-m", "left behind"]));
    assert_ok(&run(&["posix", "sem", "-s", "-n", &sem, "--count", "1"]));
    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &mq,
        "-c",
        "1",
        "--interval",
        "0",
    ]));
    // A segment whose creator (ipcmk) exited and that nobody attaches.
    let made = assert_ok(&run_ipcmk(&["-M", "4096", "-p", "0600"]));
    let id: i32 = made
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("ipcmk id");
    let _by_id = sysv::ById('m', id);
    let key = sysv_key_of("shm", id).expect("key of ipcmk segment");
    guard.add(Obj::SysvShm(key));
    let hex = key_hex(key);

    for name in [&shm, &sem, &mq] {
        let o = posix_obj(name).expect("listed");
        assert_eq!(o["orphaned"], true, "{o}");
        assert!(pids(&o).is_empty());
    }
    let m = sysv_obj(key).expect("listed");
    assert_eq!(m["orphaned"], true, "{m}");

    // Narrowed to this test's own objects: other tests run at the same time.
    for (name, mech) in [(&shm, "posix-shm"), (&sem, "posix-sem"), (&mq, "posix-msq")] {
        let dry = assert_ok(&run(&["clean", "--stale", "--dry-run", "--name", name]));
        assert!(
            dry.contains(&format!("would remove {mech} {name}")),
            "{dry}"
        );
    }
    let dry = assert_ok(&run(&["clean", "--stale", "--dry-run", "--key", &hex]));
    assert!(
        dry.contains(&format!("would remove sysv-shm {hex}")),
        "{dry}"
    );
    assert!(posix_exists(&Obj::PosixShm(shm.clone())) && posix_exists(&Obj::PosixMsq(mq.clone())));
    assert!(sysv_obj(key).is_some());

    for name in [&shm, &sem, &mq] {
        let done = assert_ok(&run(&["clean", "--stale", "--json", "--name", name]));
        let removed: Vec<Value> = done
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            removed
                .iter()
                .any(|r| r["kind"] == "removed" && r["name"] == name.as_str()),
            "{done}"
        );
        assert!(posix_obj(name).is_none());
    }
    let done = assert_ok(&run(&["clean", "--stale", "--key", &hex]));
    assert!(done.contains(&format!("removed sysv-shm {hex}")), "{done}");
    assert!(sysv_obj(key).is_none());
}

/// Counts of one take the singular: the summary, clean's lines, DETAIL.
#[test]
fn one_object_and_one_message_are_singular() {
    let shm = unique_name("one");
    let key = unique_key();
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixShm(shm.clone())).add(Obj::SysvMsq(key));
    // Made by a client that exited: orphaned.
    assert_ok(&run(&["posix", "shm", "-n", &shm, "-m", "x"]));
    let out = assert_ok(&run(&["ls", "--name", &shm]));
    assert_eq!(out.lines().nth(2), Some("1 object, 1 orphaned"), "{out}");

    // Narrowed to this test's own segment: other tests run at the same time.
    let dry = assert_ok(&run(&["clean", "--stale", "--dry-run", "--name", &shm]));
    assert_eq!(
        dry,
        format!(
            "would remove posix-shm {shm}\nwould remove 1 orphaned object; 0 in use or unknown kept\n"
        )
    );
    assert!(posix_exists(&Obj::PosixShm(shm.clone())));

    let id = sysv::msq(key);
    sysv::send(id, b"one");
    let out = assert_ok(&run(&["ls", "--key", &key_hex(key), "-o", "detail"]));
    let detail = out.lines().nth(1).unwrap_or_default();
    assert!(detail.starts_with("1 msg, qbytes "), "{out}");
}

fn run_ipcmk(args: &[&str]) -> std::process::Output {
    std::process::Command::new("ipcmk")
        .args(args)
        .output()
        .expect("ipcmk (util-linux) is needed")
}

/// The key of a System V object by id, from /proc/sysvipc.
fn sysv_key_of(table: &str, id: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/sysvipc/{table}")).ok()?;
    text.lines().skip(1).find_map(|l| {
        let mut cols = l.split_ascii_whitespace();
        let key: i32 = cols.next()?.parse().ok()?;
        let this: i32 = cols.next()?.parse().ok()?;
        (this == id).then_some(key)
    })
}

#[test]
fn empty_and_truncated_semaphore_files_do_not_crash_ls() {
    let empty = unique_name("ls-empty");
    let short = unique_name("ls-short");
    let mut guard = Cleanup::new();
    let empty_path = std::path::PathBuf::from(format!("/dev/shm/sem.{}", &empty[1..]));
    let short_path = std::path::PathBuf::from(format!("/dev/shm/sem.{}", &short[1..]));
    guard
        .add(Obj::Path(empty_path.clone()))
        .add(Obj::Path(short_path.clone()));
    std::fs::write(&empty_path, b"").unwrap();
    std::fs::write(&short_path, [1u8; 10]).unwrap();

    for name in [&empty, &short] {
        let o = posix_obj(name).expect("listed");
        assert_eq!(o["mechanism"], "posix-sem");
        assert!(o["value"].is_null(), "{o}");
        assert!(
            o["note"]
                .as_str()
                .is_some_and(|n| n.contains("shorter than a sem_t")),
            "{o}"
        );
    }
    let o = run(&["ls", "--name", &empty]);
    let text = assert_ok(&o);
    assert!(text.contains("not a valid semaphore"), "{text}");
}

#[test]
fn filters_and_bad_usage() {
    let o = run(&["clean"]);
    assert_fails(&o, 2, "--stale");
    let o = run(&["ls", "--owner", "no-such-user-eipc"]);
    assert_fails(&o, 2, "no such user");
    let o = run(&["ls", "--type", "pipe"]);
    assert_fails(&o, 2, "invalid value");
    let o = run(&["ls", "--key", "0"]);
    assert_fails(&o, 2, "IPC_PRIVATE");
    let o = run(&["ls", "--posix", "--sysv"]);
    assert_fails(&o, 2, "cannot be used with");

    // --type and --owner narrow the listing.
    let shm = unique_name("ls-filter");
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixShm(shm.clone()));
    assert_ok(&run(&["posix", "shm", "-n", &shm, "-m", "x"]));
    assert!(objects(&ls_json(&["--type", "sem", "--name", &shm])).is_empty());
    assert!(objects(&ls_json(&["--sysv", "--name", &shm])).is_empty());
    assert_eq!(
        objects(&ls_json(&[
            "--type", "shm", "--owner", "root", "--name", &shm
        ]))
        .len(),
        1
    );
    assert_eq!(
        objects(&ls_json(&["--owner", "0", "--name", &shm])).len(),
        1
    );
    assert_eq!(objects(&ls_json(&["--orphaned", "--name", &shm])).len(), 1);
}

/// The names of an `ls --json` document's POSIX objects, with their kinds.
fn listed(args: &[&str]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = objects(&ls_json(args))
        .iter()
        .map(|o| {
            let name = o["name"].as_str().unwrap_or("").to_string();
            (o["mechanism"].as_str().unwrap_or("").to_string(), name)
        })
        .collect();
    v.sort();
    v
}

/// An empty name, `/` alone or an empty prefix (an unset shell variable in
/// `--name "$PREFIX"`) once selected every POSIX object, and `clean --stale`
/// removed the orphaned ones. Each is refused (exit 2) by `ls` and `clean`
/// before anything is scanned.
#[test]
fn empty_names_and_prefixes_are_refused_and_nothing_is_removed() {
    let shm = unique_name("sel-empty");
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixShm(shm.clone()));
    assert_ok(&run(&["posix", "shm", "-n", &shm, "-m", "left behind"]));
    assert_eq!(posix_obj(&shm).expect("listed")["orphaned"], true);

    let bad: [(&str, &str, &str); 4] = [
        (
            "--name",
            "",
            "a name needs at least one character after '/'",
        ),
        (
            "--name",
            "/",
            "a name needs at least one character after '/'",
        ),
        (
            "--prefix",
            "",
            "a prefix needs at least one character after '/'",
        ),
        (
            "--prefix",
            "/",
            "a prefix needs at least one character after '/'",
        ),
    ];
    // Read-only commands first: on a build that accepts the selection they
    // fail the test before any real `clean` runs.
    for (opt, value, message) in bad {
        for args in [
            vec!["ls", opt, value],
            vec!["ls", "--json", "--orphaned", opt, value],
            // A bad value next to a good one is refused too.
            vec!["ls", "--name", shm.as_str(), opt, value],
            vec!["clean", "--stale", "--dry-run", opt, value],
            vec!["clean", "--stale", "--dry-run", "--json", opt, value],
        ] {
            let o = run(&args);
            let err = assert_fails(&o, 2, message);
            assert!(o.stdout.is_empty(), "{args:?} printed: {err}");
        }
    }
    assert!(posix_exists(&Obj::PosixShm(shm.clone())));

    // The real `clean --stale` runs in its own IPC namespace over its own
    // /dev/shm, with an orphan of its own: were the selection ever accepted
    // again, it could only remove that orphan, never another user's objects.
    let exe = bin().get_program().to_owned();
    for (opt, value, message) in bad {
        let o = std::process::Command::new("unshare")
            .args(["--ipc", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(concat!(
                "mount -t tmpfs -o size=1m none /dev/shm || exit 90; ",
                "\"$0\" posix shm -n /eipc-orphan -m x >/dev/null || exit 91; ",
                "\"$0\" clean --stale \"$@\"; rc=$?; ",
                "test -e /dev/shm/eipc-orphan || { echo 'orphan removed' >&2; exit 92; }; ",
                "exit $rc"
            ))
            .arg(&exe)
            .args([opt, value])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("unshare (util-linux) is needed");
        let err = assert_fails(&o, 2, message);
        assert!(!err.contains("orphan removed"), "{opt} {value:?}: {err}");
        assert!(o.stdout.is_empty(), "{opt} {value:?}: {err}");
    }
    assert!(posix_exists(&Obj::PosixShm(shm.clone())));
    assert_eq!(posix_obj(&shm).expect("still listed")["orphaned"], true);
}

/// `--name` matches one name exactly and may be repeated; `--prefix`
/// selects by prefix. A semaphore is matched by its sem_open name, as ls
/// shows it, not by its `sem.` file name. Neither selects System V objects
/// unless `-k` is given too.
#[test]
fn name_is_exact_and_repeatable_and_prefix_selects_by_prefix() {
    let a = unique_name("sel");
    let more = format!("{a}-more");
    let mut guard = Cleanup::new();
    guard
        .add(Obj::PosixShm(a.clone()))
        .add(Obj::PosixSem(a.clone()))
        .add(Obj::PosixShm(more.clone()));
    // Orphans, all of them: made by programs that exited.
    assert_ok(&run(&["posix", "shm", "-n", &a, "-m", "x"]));
    assert_ok(&run(&["posix", "sem", "-s", "-n", &a, "--count", "1"]));
    assert_ok(&run(&["posix", "shm", "-n", &more, "-m", "x"]));
    let made = assert_ok(&run_ipcmk(&["-M", "4096", "-p", "0600"]));
    let id: i32 = made
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("ipcmk id");
    let _by_id = sysv::ById('m', id);
    let key = sysv_key_of("shm", id).expect("key of ipcmk segment");
    guard.add(Obj::SysvShm(key));
    let hex = key_hex(key);
    assert_eq!(sysv_obj(key).expect("listed")["orphaned"], true);

    let shm_a = || ("posix-shm".to_string(), a.clone());
    let sem_a = || ("posix-sem".to_string(), a.clone());
    let shm_more = || ("posix-shm".to_string(), more.clone());
    // Exact: /X does not select /X-more; the leading '/' is optional.
    assert_eq!(listed(&["--name", &a]), [sem_a(), shm_a()]);
    assert_eq!(listed(&["--name", &a[1..]]), [sem_a(), shm_a()]);
    assert_eq!(listed(&["--name", &more]), [shm_more()]);
    assert_eq!(listed(&["--name", &a, "-t", "shm"]), [shm_a()]);
    // Repeated: each name selects its own objects, no more.
    assert_eq!(
        listed(&["--name", &a, "--name", &more]),
        [sem_a(), shm_a(), shm_more()]
    );
    // A prefix selects both; a longer one only /X-more.
    assert_eq!(listed(&["--prefix", &a]), [sem_a(), shm_a(), shm_more()]);
    assert_eq!(listed(&["--prefix", &format!("{a}-")]), [shm_more()]);
    // Names, not file names: neither form of `sem.NAME` selects the semaphore.
    let file = format!("/sem.{}", &a[1..]);
    assert!(listed(&["--name", &file]).is_empty());
    assert!(listed(&["--prefix", &file]).is_empty());
    // No System V object without -k; with -k, the key's object as well.
    assert!(
        objects(&ls_json(&["--prefix", &a]))
            .iter()
            .all(|o| o["key"].is_null())
    );
    let both = objects(&ls_json(&["--name", &more, "-k", &hex]));
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both.iter().any(|o| o["key"] == hex.as_str()));

    // The same selection for clean: --name removes /X (shm and sem), not /X-more.
    let dry = assert_ok(&run(&["clean", "--stale", "--dry-run", "--name", &a]));
    assert!(
        dry.contains(&format!("would remove posix-shm {a}\n")),
        "{dry}"
    );
    assert!(
        dry.contains(&format!("would remove posix-sem {a}\n")),
        "{dry}"
    );
    assert!(!dry.contains(&more), "{dry}");
    let done = assert_ok(&run(&["clean", "--stale", "--name", &a]));
    assert!(done.contains("removed 2 orphaned objects"), "{done}");
    assert!(!done.contains(&more), "{done}");
    assert!(!posix_exists(&Obj::PosixShm(a.clone())));
    assert!(!posix_exists(&Obj::PosixSem(a.clone())));
    assert!(posix_exists(&Obj::PosixShm(more.clone())));
    // --prefix removes what is left under it; the orphaned System V segment
    // is outside the selection and stays.
    let done = assert_ok(&run(&["clean", "--stale", "--prefix", &a]));
    assert!(
        done.contains(&format!("removed posix-shm {more}\n")),
        "{done}"
    );
    assert!(done.contains("removed 1 orphaned object;"), "{done}");
    assert!(!posix_exists(&Obj::PosixShm(more.clone())));
    assert!(sysv_obj(key).is_some());
}

fn mqueue_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.split_once(" - ")
                .is_some_and(|(_, post)| post.starts_with("mqueue "))
        })
}

#[test]
fn queues_listed_without_dev_mqueue_and_nothing_left_mounted() {
    let mq = unique_name("ls-nsq");
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixMsq(mq.clone()));
    assert_ok(&run(&[
        "posix",
        "msq",
        "-n",
        &mq,
        "-c",
        "3",
        "--interval",
        "0",
    ]));
    let was_mounted = mqueue_mounted();
    let doc = ls_json(&["--name", &mq]);
    let o = objects(&doc)
        .into_iter()
        .find(|o| o["name"] == mq.as_str())
        .expect("queue listed");
    assert_eq!(o["curmsgs"], 3);
    if !was_mounted {
        assert_eq!(doc["mqueue"]["source"], "private-mount-namespace", "{doc}");
        let text = assert_ok(&run(&["ls", "--name", &mq]));
        assert!(text.contains("private mount namespace"), "{text}");
    }
    // The private mount died with the child: this namespace is as it was.
    assert_eq!(mqueue_mounted(), was_mounted);
}

fn proc_u64(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn limits_match_proc() {
    let doc: Value = serde_json::from_str(&assert_ok(&run(&["limits", "--json"]))).unwrap();
    for f in [
        "msg_max",
        "msgsize_max",
        "msg_default",
        "msgsize_default",
        "queues_max",
    ] {
        assert_eq!(
            doc["posix_mqueue"][f],
            proc_u64(&format!("/proc/sys/fs/mqueue/{f}")),
            "{f}"
        );
    }
    for f in ["msgmax", "msgmnb", "msgmni"] {
        assert_eq!(
            doc["sysv_msg"][f],
            proc_u64(&format!("/proc/sys/kernel/{f}")),
            "{f}"
        );
    }
    for f in ["shmmax", "shmall", "shmmni"] {
        assert_eq!(
            doc["sysv_shm"][f],
            proc_u64(&format!("/proc/sys/kernel/{f}")),
            "{f}"
        );
    }
    let sem: Vec<u64> = std::fs::read_to_string("/proc/sys/kernel/sem")
        .unwrap()
        .split_ascii_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    for (i, f) in ["semmsl", "semmns", "semopm", "semmni"].iter().enumerate() {
        assert_eq!(doc["sysv_sem"][f], sem[i], "{f}");
    }
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills rl.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut rl) };
    assert_eq!(got, 0);
    if rl.rlim_cur != libc::RLIM_INFINITY {
        assert_eq!(doc["rlimit_msgqueue"]["soft"], rl.rlim_cur);
    }
    assert!(doc["dev_shm"]["size"].as_u64().is_some_and(|s| s > 0));

    // The cost of a queue follows --max-msgs and --msg-size.
    let doc: Value = serde_json::from_str(&assert_ok(&run(&[
        "limits",
        "--json",
        "--max-msgs",
        "4",
        "--msg-size",
        "100",
    ])))
    .unwrap();
    let cost = doc["rlimit_msgqueue"]["queue"]["cost"].as_u64().unwrap();
    assert!((400..400 + 4 * 128).contains(&cost), "{cost}");
    let text = assert_ok(&run(&["limits"]));
    assert!(
        text.contains("msgsize_max") && text.contains("semopm") && text.contains("/dev/shm"),
        "{text}"
    );
}

#[test]
fn queue_above_msg_max_is_hinted() {
    // Above HARD_MSGMAX (65536) even root is refused with EINVAL.
    let mq = unique_name("ls-einval");
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixMsq(mq.clone()));
    let o = run(&[
        "posix",
        "msq",
        "-s",
        "-n",
        &mq,
        "--max-msgs",
        "100000",
        "--count",
        "1",
    ]);
    let err = assert_fails(&o, 1, "Invalid argument");
    assert!(
        err.contains("hint:") && err.contains("HARD_MSGMAX"),
        "{err}"
    );
    assert!(!posix_exists(&Obj::PosixMsq(mq.clone())));

    // Above msg_max but under the hard limit: refused unless the process has
    // CAP_SYS_RESOURCE, and then the hint names the sysctl.
    let msg_max = proc_u64("/proc/sys/fs/mqueue/msg_max");
    let over = (msg_max + 1).to_string();
    let o = run(&["posix", "msq", "-n", &mq, "-c", "0", "--max-msgs", &over]);
    if !o.status.success() {
        let err = assert_fails(&o, 1, "Invalid argument");
        assert!(err.contains("/proc/sys/fs/mqueue/msg_max"), "{err}");
        assert!(!posix_exists(&Obj::PosixMsq(mq)));
    }
}

#[test]
fn queue_above_rlimit_msgqueue_is_hinted() {
    // prlimit (util-linux) lowers RLIMIT_MSGQUEUE for the child only.
    let mq = unique_name("ls-emfile");
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixMsq(mq.clone()));
    let o = std::process::Command::new("prlimit")
        .args(["--msgqueue=1000:1000", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(["posix", "msq", "-s", "-n", &mq, "--count", "1"])
        .output()
        .expect("prlimit (util-linux) is needed");
    let err = assert_fails(&o, 1, "Too many open files");
    assert!(
        err.contains("RLIMIT_MSGQUEUE") && err.contains("1000 bytes"),
        "{err}"
    );
    assert!(!posix_exists(&Obj::PosixMsq(mq)));
}

#[test]
fn completions_and_man_page() {
    // The scripts call the binary for candidates, so they hold no option
    // names; tests/completion.rs drives them (`clean --<Tab>` offers --stale).
    for shell in ["bash", "zsh", "fish"] {
        let out = assert_ok(&run(&["completions", shell]));
        assert!(out.contains("examples-ipc"), "{shell}");
    }
    let o = run(&["completions", "tcsh"]);
    assert_fails(&o, 2, "invalid value");
    let man = assert_ok(&run(&["man"]));
    assert!(
        man.contains(".TH") && man.contains("examples\\-ipc"),
        "{man}"
    );
}

#[test]
fn files_vanishing_mid_scan_never_fail_ls() {
    // A thread keeps creating and removing semaphore-like and segment files
    // (some empty, some short) while ls runs: every run must succeed.
    let name = unique_name("ls-churn");
    let mut guard = Cleanup::new();
    let paths: Vec<std::path::PathBuf> = (0..8)
        .map(|i| {
            let prefix = if i % 2 == 0 { "sem." } else { "" };
            std::path::PathBuf::from(format!("/dev/shm/{prefix}{}-{i}", &name[1..]))
        })
        .collect();
    for p in &paths {
        guard.add(Obj::Path(p.clone()));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (stop, paths) = (stop.clone(), paths.clone());
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let p = &paths[n % paths.len()];
                let _ = std::fs::write(p, vec![1u8; n % 40]);
                let _ = std::fs::remove_file(&paths[(n + 3) % paths.len()]);
                n += 1;
            }
        })
    };
    for _ in 0..20 {
        let o = run(&["ls", "--json", "--prefix", &name]);
        let out = assert_ok(&o);
        assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
}

/// `--stat --json` and `ls --json` describe one object with the same values
/// under the same names, for all six kinds.
#[test]
fn stat_and_ls_agree_on_every_shared_field() {
    let (q, m, s) = (
        unique_name("agree-q"),
        unique_name("agree-shm"),
        unique_name("agree-sem"),
    );
    let keys = (unique_key(), unique_key(), unique_key());
    let _guard = Cleanup(vec![
        Obj::PosixMsq(q.clone()),
        Obj::PosixShm(m.clone()),
        Obj::PosixSem(s.clone()),
        Obj::SysvMsq(keys.0),
        Obj::SysvShm(keys.1),
        Obj::SysvSem(keys.2),
    ]);
    let (kq, km, ks) = (key_hex(keys.0), key_hex(keys.1), key_hex(keys.2));
    assert_ok(&run(&["posix", "msq", "-n", &q, "-m", "hi"]));
    assert_ok(&run(&[
        "posix", "shm", "-n", &m, "--size", "8192", "-m", "hello",
    ]));
    assert_ok(&run(&[
        "posix", "sem", "-s", "-n", &s, "--value", "3", "--count", "1",
    ]));
    assert_ok(&run(&["sysv", "msq", "-k", &kq, "-m", "hi"]));
    assert_ok(&run(&[
        "sysv", "shm", "-k", &km, "--size", "8192", "-m", "hello",
    ]));
    assert_ok(&run(&[
        "sysv", "sem", "-s", "-k", &ks, "--value", "3", "--count", "1",
    ]));

    let cases: [(&[&str], &[&str], &str); 6] = [
        (&["posix", "msq", "-n", &q], &["--name", &q], "posix-msq"),
        (&["posix", "shm", "-n", &m], &["--name", &m], "posix-shm"),
        (&["posix", "sem", "-n", &s], &["--name", &s], "posix-sem"),
        (
            &["sysv", "msq", "-k", &kq],
            &["-k", &kq, "-t", "msq"],
            "sysv-msq",
        ),
        (
            &["sysv", "shm", "-k", &km],
            &["-k", &km, "-t", "shm"],
            "sysv-shm",
        ),
        (
            &["sysv", "sem", "-k", &ks],
            &["-k", &ks, "-t", "sem"],
            "sysv-sem",
        ),
    ];
    for (stat_args, ls_args, mechanism) in cases {
        let mut args = vec!["--json"];
        args.extend_from_slice(stat_args);
        args.push("--stat");
        let stat: Value = serde_json::from_str(assert_ok(&run(&args)).trim()).unwrap();
        let listed = objects(&ls_json(ls_args));
        let obj = listed
            .iter()
            .find(|o| o["mechanism"] == mechanism)
            .unwrap_or_else(|| panic!("{mechanism} not listed: {listed:?}"));
        let stat = stat.as_object().unwrap();
        let shared: Vec<&String> = stat
            .keys()
            .filter(|k| obj.get(k.as_str()).is_some())
            .collect();
        // Everything --stat says, ls says too (extra --stat text-only fields aside).
        for must in ["mechanism", "uid", "owner", "gid", "group", "perms"] {
            assert!(
                shared.iter().any(|k| *k == must),
                "{mechanism}: {must} not shared"
            );
        }
        for key in shared {
            assert_eq!(stat[key], obj[key], "{mechanism}: field {key} differs");
        }
    }
}

/// `sh -c SCRIPT` with the binary under test as `$0`, run under `wrap`
/// (unshare, prlimit, setpriv...), environment kept as `bin()` keeps it.
fn sh_under(wrap: &[&str], script: &str, args: &[&str]) -> std::process::Output {
    let (program, wrap_args) = wrap.split_first().expect("a wrapper");
    let o = std::process::Command::new(program)
        .args(wrap_args)
        .args(["sh", "-c", script])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} (util-linux) is needed: {e}"));
    assert!(
        o.status.success(),
        "{wrap:?} {script}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The same command as root without CAP_SYS_RESOURCE, whatever this machine
/// grants root: dropped from the inheritable and the bounding set, so the
/// exec'ed program does not get it back.
const NO_CAP_SYS_RESOURCE: [&str; 5] = [
    "setpriv",
    "--inh-caps",
    "-sys_resource",
    "--bounding-set",
    "-sys_resource",
];

#[test]
fn limits_counts_shm_pages_per_segment_as_ipcs_does() {
    // A private IPC namespace holds only these three 100-byte segments
    // however many other tests make at the same time, and removes them
    // when it ends.
    let o = sh_under(
        &["unshare", "--ipc"],
        r#"for i in 1 2 3; do ipcmk -M 100 >/dev/null || exit 1; done
           "$0" --json limits && "$0" limits && ipcs -u"#,
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let (json, rest) = out.split_once('\n').unwrap();
    let doc: Value = serde_json::from_str(json).unwrap();
    let shm = &doc["sysv_shm"];
    assert_eq!(shm["segments"], 3, "{shm}");
    assert_eq!(shm["bytes"], 300, "{shm}");
    // Each segment takes a whole page: 3, not ceil(300 / page) = 1.
    assert_eq!(shm["pages"], 3, "{shm}");
    assert!(
        rest.lines()
            .any(|l| l.contains("shmall") && l.contains("in use: 3 (")),
        "{rest}"
    );
    // And the kernel's own count (shm_tot) says the same.
    let ipcs_pages = rest
        .lines()
        .find_map(|l| l.strip_prefix("pages allocated"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no pages allocated in ipcs -u: {rest}"));
    assert_eq!(shm["pages"], ipcs_pages);
}

#[test]
fn limits_never_claims_a_queue_that_cannot_be_created() {
    // RLIMIT_MSGQUEUE too small for one default queue: none fit, and why.
    let o = std::process::Command::new("prlimit")
        .args(["--msgqueue=1000:1000", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .arg("limits")
        .output()
        .expect("prlimit (util-linux) is needed");
    let text = assert_ok(&o);
    let line = text.lines().find(|l| l.contains("a queue of")).unwrap();
    assert!(
        line.contains("none fit") && line.contains("RLIMIT_MSGQUEUE (1000 bytes)"),
        "{line}"
    );
    assert!(!line.contains("more fit"), "{line}");
    let o = std::process::Command::new("prlimit")
        .args(["--msgqueue=1000:1000", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(["--json", "limits"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_str(&assert_ok(&o)).unwrap();
    assert_eq!(doc["rlimit_msgqueue"]["queue"]["fit"], 0, "{doc}");
    assert_eq!(doc["rlimit_msgqueue"]["queue"]["limit"], "rlimit_msgqueue");

    // Above msg_max without CAP_SYS_RESOURCE: EINVAL, so none fit, though
    // the rlimit has room for several; being root does not change that.
    let msg_max = proc_u64("/proc/sys/fs/mqueue/msg_max");
    if msg_max < 65536 {
        let over = (msg_max + 1).to_string();
        let o = sh_under(
            &NO_CAP_SYS_RESOURCE,
            r#""$0" limits --max-msgs "$1" --msg-size 16 && "$0" --json limits --max-msgs "$1" --msg-size 16"#,
            &[&over],
        );
        let out = String::from_utf8_lossy(&o.stdout);
        let line = out.lines().find(|l| l.contains("a queue of")).unwrap();
        assert!(
            line.contains("none fit")
                && line.contains(&format!("msg_max ({msg_max})"))
                && line.contains("CAP_SYS_RESOURCE"),
            "{line}"
        );
        assert!(out.contains("this process lacks CAP_SYS_RESOURCE"), "{out}");
        let doc: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(doc["posix_mqueue"]["cap_sys_resource"], false);
        assert_eq!(doc["rlimit_msgqueue"]["queue"]["fit"], 0, "{doc}");
        assert_eq!(doc["rlimit_msgqueue"]["queue"]["limit"], "msg_max");
    }

    // A private IPC namespace has its own mqueue sysctls: with queues_max 0
    // no queue fits, and mq_open's default size is capped by msg_max.
    let o = sh_under(
        &["unshare", "--ipc"],
        r#"echo 0 > /proc/sys/fs/mqueue/queues_max && echo 5 > /proc/sys/fs/mqueue/msg_max || exit 1
           exec setpriv --inh-caps -sys_resource --bounding-set -sys_resource "$0" --json limits"#,
        &[],
    );
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let queue = &doc["rlimit_msgqueue"]["queue"];
    assert_eq!(queue["max_msgs"], 5, "{doc}");
    assert_eq!(queue["fit"], 0, "{doc}");
    assert_eq!(queue["limit"], "queues_max", "{doc}");
}

/// Removes a directory the test made, in Drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn limits_fit_is_what_the_kernel_then_allows() {
    // A user no other process is, so RLIMIT_MSGQUEUE charges only the
    // queues made here; a private IPC namespace, so they end with it; its
    // mqueue filesystem mounted (in a private mount namespace) where that
    // user can list it.
    let uid = (3_000_000 + std::process::id() % 1_000_000).to_string();
    let dir = TempDir(std::env::temp_dir().join(&unique_name("mq-mnt")[1..]));
    std::fs::create_dir(&dir.0).unwrap();
    let cost = {
        let doc: Value = serde_json::from_str(&assert_ok(&run(&[
            "--json",
            "limits",
            "--max-msgs",
            "4",
            "--msg-size",
            "100",
        ])))
        .unwrap();
        doc["rlimit_msgqueue"]["queue"]["cost"].as_u64().unwrap()
    };
    // Room for two queues and a half.
    let rlimit = format!("--msgqueue={0}:{0}", 2 * cost + cost / 2);
    let o = sh_under(
        &["unshare", "--ipc", "--mount", "--propagation", "private"],
        r#"mount -t mqueue none "$1" || exit 1
           exec prlimit "$2" -- setpriv --reuid="$3" --regid="$3" --clear-groups sh -c '
             "$0" --json limits --max-msgs 4 --msg-size 100
             for q in /a /b /c; do
               "$0" posix msq -n $q --max-msgs 4 --msg-size 100 -m x >/dev/null 2>&1 || echo "refused $q"
             done
             "$0" --json limits --max-msgs 4 --msg-size 100' "$0""#,
        &[dir.0.to_str().unwrap(), &rlimit, &uid],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let before: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(before["rlimit_msgqueue"]["queue"]["fit"], 2, "{before}");
    assert_eq!(
        before["rlimit_msgqueue"]["queue"]["limit"],
        "rlimit_msgqueue"
    );
    // Two were created, the third refused.
    assert_eq!(lines[1], "refused /c", "{out}");
    let after: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(after["posix_mqueue"]["queues"], 2, "{after}");
    assert_eq!(after["rlimit_msgqueue"]["used"], 2 * cost, "{after}");
    assert_eq!(after["rlimit_msgqueue"]["queue"]["fit"], 0, "{after}");
}

#[test]
fn sem_sets_unreadable_or_vanishing_never_fail_ls() {
    let (ks, kc) = (unique_key(), unique_key());
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvSem(ks)).add(Obj::SysvSem(kc));
    sysv::sem(ks, &[1, 2]);
    // Another user may not read a 0600 set: it is listed, its semaphores
    // are null, and it is counted as unreadable.
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(["ls", "--json", "--key", &key_hex(ks)])
        .output()
        .expect("setpriv (util-linux) is needed");
    let doc: Value = serde_json::from_str(&assert_ok(&o)).unwrap();
    let set = objects(&doc)
        .into_iter()
        .find(|o| o["key"] == key_hex(ks).as_str())
        .unwrap_or_else(|| panic!("not listed: {doc}"));
    assert_eq!(set.get("sems"), Some(&Value::Null), "{set}");
    assert!(
        set["values"].is_null()
            && set["note"]
                .as_str()
                .is_some_and(|n| n.contains("not readable"))
    );
    assert!(doc["unreadable"].as_u64().is_some_and(|n| n >= 1), "{doc}");
    // Root reads it.
    let set = sysv_obj(ks).unwrap();
    assert_eq!(set["sems"][1]["value"], 2, "{set}");

    // A set removed between /proc/sysvipc/sem and semctl: ls goes on.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = sysv::sem(kc, &[1, 1, 1]);
                // SAFETY: IPC_RMID reads no fourth argument.
                unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
            }
        })
    };
    for _ in 0..20 {
        let doc = ls_json(&["--key", &key_hex(kc)]);
        for set in objects(&doc) {
            assert!(set["sems"].is_array() || set["note"].is_string(), "{set}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
}

/// A child killed and reaped when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `name` with its ESC and newline as the text output shows them.
fn shown(name: &str) -> String {
    name.replace('\x1b', "\\x1b")
        .replace('\n', "\\x0a")
        .replace('\x07', "\\x07")
}

#[test]
fn names_and_commands_are_escaped_in_text_and_exact_in_json() {
    let name = unique_name("esc\x1b[31mred\nX");
    let orphan = unique_name("esc\x1b]0;title\x07");
    let mut cleanup = Cleanup::new();
    cleanup
        .add(Obj::PosixShm(name.clone()))
        .add(Obj::PosixShm(orphan.clone()));
    assert_ok(&run(&["posix", "shm", "-n", &name, "-m", "hi"]));
    assert_ok(&run(&["posix", "shm", "-n", &orphan, "-m", "hi"]));

    // A process whose command name holds an ESC and a newline: comm is the
    // base name of the file exec'd, here a symlink to sleep so named (at
    // most 15 bytes; the pid keeps it apart from other runs).
    let comm = format!("\x1b[7m\n{}", std::process::id());
    let link = std::env::temp_dir().join(&comm);
    cleanup.add(Obj::Path(link.clone()));
    let sleep = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("sleep"))
                .find(|s| s.exists())
        })
        .expect("no sleep in PATH");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&sleep, &link).unwrap();
    let segment = std::fs::File::open(format!("/dev/shm/{}", &name[1..])).unwrap();
    let holder = Reaped(
        std::process::Command::new(&link)
            .arg("60")
            .stdin(segment)
            .spawn()
            .unwrap(),
    );
    let pid = holder.0.id();
    // Until exec, the child still carries this test's command name.
    let start = Instant::now();
    while std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default()
        != format!("{comm}\n").as_bytes()
    {
        assert!(start.elapsed() < DEADLINE, "the holder never exec'd");
        std::thread::yield_now();
    }

    let out = assert_ok(&run(&["ls", "--name", &name]));
    assert!(!out.contains('\x1b'), "{out:?}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(&shown(&name))).collect();
    assert_eq!(rows.len(), 1, "{out}");
    let user = format!("{pid}/{}(open)", shown(&comm));
    assert!(
        rows[0].starts_with("posix-shm") && rows[0].contains(&user),
        "{out}"
    );
    // The newlines split nothing: the line after the row is the summary.
    assert!(
        out.lines().nth(2).unwrap().starts_with("1 object,"),
        "{out}"
    );

    let obj = posix_obj(&name).expect("listed by --json");
    assert_eq!(obj["name"], name.as_str());
    let users = obj["users"].as_array().unwrap();
    assert!(
        users
            .iter()
            .any(|u| u["pid"] == pid && u["command"] == comm.as_str()),
        "{obj}"
    );

    let out = assert_ok(&run(&["clean", "--stale", "--dry-run", "--name", &orphan]));
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(
        out.starts_with(&format!("would remove posix-shm {}\n", shown(&orphan))),
        "{out}"
    );
    let o = run(&["clean", "--stale", "--dry-run", "--json", "--name", &orphan]);
    let first: Value = serde_json::from_str(assert_ok(&o).lines().next().unwrap()).unwrap();
    assert_eq!(first["name"], orphan.as_str());
}

// ---------- ls output controls: -o, --noheadings, --raw, --list-columns ----------

/// Every column name, as `ls --list-columns` prints them.
const COLUMNS: [&str; 15] = [
    "TYPE",
    "NAME/KEY",
    "NAME",
    "KEY",
    "ID",
    "OWNER",
    "UID",
    "GROUP",
    "GID",
    "PERMS",
    "SIZE",
    "STATE",
    "USERS",
    "DETAIL",
    "NAMESPACE",
];

/// Split an aligned line on runs of two or more blanks (single blanks stay
/// inside a cell, as in `in use`).
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn output_chooses_the_columns_in_order_in_any_case() {
    let shm = unique_name("cols");
    let key = unique_key();
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixShm(shm.clone())).add(Obj::SysvShm(key));
    assert_ok(&run(&[
        "posix", "shm", "-n", &shm, "--size", "8192", "-m", "x",
    ]));
    let id = sysv::shm(key, 100);
    let select = ["--name", shm.as_str(), "--key", &key_hex(key)];

    let mut args = vec!["ls", "-o", "key,Name,id,SIZE,uid,gid,group,type", "--bytes"];
    args.extend(select);
    let out = assert_ok(&run(&args));
    let lines: Vec<&str> = out.lines().collect();
    // Names are shown as the header spells them, whatever case was typed.
    assert_eq!(
        cells(lines[0]),
        ["KEY", "NAME", "ID", "SIZE", "UID", "GID", "GROUP", "TYPE"],
        "{out}"
    );
    assert_eq!(
        cells(lines[1]),
        [
            "-",
            shm.as_str(),
            "-",
            "8192",
            "0",
            "0",
            "root",
            "posix-shm"
        ],
        "{out}"
    );
    let (hex, id) = (key_hex(key), id.to_string());
    assert_eq!(
        cells(lines[2]),
        [
            hex.as_str(),
            "-",
            id.as_str(),
            "100",
            "0",
            "0",
            "root",
            "sysv-shm"
        ],
        "{out}"
    );
    // Numbers are right-aligned: the ID column ends where its header ends.
    let end = lines[0].find("ID").unwrap() + 2;
    assert!(lines[2][..end].ends_with(&id), "{out}");
    // The summary still follows the rows (the segment's creator, this
    // test, is alive: it is in use).
    assert_eq!(lines[3], "2 objects, 1 orphaned", "{out}");

    // A column may be given twice; the list may hold only one.
    let out = assert_ok(&run(&["ls", "-o", "ID,id", "--key", &hex]));
    assert_eq!(
        cells(out.lines().nth(1).unwrap()),
        [id.as_str(), id.as_str()]
    );

    // Without -o the table is as it always was.
    let out = assert_ok(&run(&["ls", "--key", &hex]));
    assert_eq!(
        cells(out.lines().next().unwrap()),
        [
            "TYPE", "NAME/KEY", "ID", "OWNER", "PERMS", "SIZE", "STATE", "USERS", "DETAIL"
        ]
    );
}

#[test]
fn noheadings_prints_only_the_rows() {
    let a = unique_name("nohead-a");
    let b = unique_name("nohead-b");
    let mut guard = Cleanup::new();
    guard
        .add(Obj::PosixShm(a.clone()))
        .add(Obj::PosixShm(b.clone()));
    for name in [&a, &b] {
        assert_ok(&run(&["posix", "shm", "-n", name, "-m", "x"]));
    }
    let o = run(&[
        "ls",
        "--noheadings",
        "-o",
        "NAME",
        "--name",
        &a,
        "--name",
        &b,
    ]);
    // Exactly the two names, aligned as usual, nothing above or below.
    assert_eq!(assert_ok(&o), format!("{a}\n{b}\n"));
    // Without -o: the default columns, still no header and no summary.
    let out = assert_ok(&run(&["ls", "--noheadings", "--name", &a]));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("posix-shm") && out.contains(&a), "{out}");
    // Notes about the scan (here, when /dev/mqueue is not mounted) would be
    // on stderr: stdout stays parseable.
    assert!(!out.contains("objects"), "{out}");
}

#[test]
fn raw_rows_split_on_single_spaces() {
    // A name with a space and a backslash: raw shows both as \xNN, as
    // `lsipc --raw` does, so that a row splits on single spaces and reads
    // back one way.
    let odd = unique_name("raw a\\b");
    let plain = unique_name("raw-plain");
    let mut guard = Cleanup::new();
    guard
        .add(Obj::PosixShm(odd.clone()))
        .add(Obj::PosixShm(plain.clone()));
    assert_ok(&run(&[
        "posix", "shm", "-n", &odd, "--size", "100", "-m", "x",
    ]));
    assert_ok(&run(&[
        "posix", "shm", "-n", &plain, "--size", "4096", "-m", "x",
    ]));
    let shown = odd.replace('\\', "\\x5c").replace(' ', "\\x20");
    let o = run(&[
        "ls",
        "--raw",
        "-o",
        "TYPE,NAME,SIZE,STATE,DETAIL",
        "--bytes",
        "--name",
        &odd,
        "--name",
        &plain,
    ]);
    let out = assert_ok(&o);
    // Header, then one row each; an empty value (DETAIL of a segment) is an
    // empty field, so every row has as many fields as the header; no
    // summary.
    assert_eq!(
        out,
        format!(
            "TYPE NAME SIZE STATE DETAIL\n\
             posix-shm {shown} 100 orphaned \n\
             posix-shm {plain} 4096 orphaned \n"
        )
    );
    for line in out.lines() {
        assert_eq!(line.split(' ').count(), 5, "{line:?}");
    }
    // A value with a space of its own: `in use`, and the default columns.
    let server = Server::start(&["posix", "shm", "-s", "-n", &plain, "--interval", "60"]);
    let out = assert_ok(&run(&["ls", "--raw", "--noheadings", "--name", &plain]));
    let fields: Vec<&str> = out.trim_end_matches('\n').split(' ').collect();
    assert_eq!(fields.len(), 9, "{out:?}");
    assert_eq!(fields[6], "in\\x20use", "{out:?}");
    assert!(
        fields[7].starts_with(&format!("{}/examples-ipc(", server.pid())),
        "{out:?}"
    );
    drop(server);
}

#[test]
fn unknown_columns_and_options_json_would_ignore_are_refused() {
    let name = unique_name("cols-bad");
    let mut guard = Cleanup::new();
    guard.add(Obj::PosixShm(name.clone()));
    assert_ok(&run(&["posix", "shm", "-n", &name, "-m", "x"]));
    // An unknown column: exit 2, and the message lists the valid names.
    for list in ["NAME,COLOUR", "", "NAME,", "name key"] {
        let o = run(&["ls", "-o", list, "--name", &name]);
        let err = assert_fails(&o, 2, "possible values: TYPE, NAME/KEY, NAME, KEY, ID");
        assert!(err.contains("DETAIL"), "{list:?}: {err}");
        assert!(o.stdout.is_empty(), "{list:?}");
    }
    // The JSON document is always whole: shaping options are refused with
    // --json (before or after the subcommand) instead of being ignored.
    for (flag, extra) in [
        ("--output", Some("ID")),
        ("--noheadings", None),
        ("--raw", None),
    ] {
        for json_first in [true, false] {
            let mut args = vec![];
            if json_first {
                args.push("--json");
            }
            args.extend(["ls", flag]);
            args.extend(extra);
            if !json_first {
                args.push("--json");
            }
            args.extend(["--name", &name]);
            let o = run(&args);
            assert_fails(&o, 2, &format!("{flag} shapes the text table"));
            assert!(o.stdout.is_empty(), "{args:?}");
        }
    }
    // -o is --output.
    let o = run(&["--json", "ls", "-o", "ID", "--name", &name]);
    assert_fails(&o, 2, "--output shapes the text table");
    // The document itself is unchanged.
    let obj = posix_obj(&name).expect("listed");
    assert_eq!(obj["mechanism"], "posix-shm");
}

#[test]
fn list_columns_names_every_column_once() {
    let out = assert_ok(&run(&["ls", "--list-columns"]));
    let names: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, COLUMNS, "{out}");
    for line in out.lines() {
        let about = line.split_once(' ').map_or("", |(_, a)| a.trim());
        assert!(!about.is_empty(), "no description: {line:?}");
    }
    // Each name is accepted by -o, in lower case too, and is its header.
    let all = COLUMNS.join(",").to_lowercase();
    let out = assert_ok(&run(&["ls", "-o", &all, "--name", "/eipc-test-none"]));
    assert_eq!(cells(out.lines().next().unwrap()), COLUMNS, "{out}");
    // JSON: one document, an array of {name, description}.
    let out = assert_ok(&run(&["ls", "--list-columns", "--json"]));
    let doc: Value = serde_json::from_str(&out).expect("one JSON document");
    let listed: Vec<&str> = doc
        .as_array()
        .expect("an array")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, COLUMNS);
    assert!(
        doc[0]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    // It lists; it does not take a selection or a layout.
    for extra in [["--name", "/x"], ["-o", "ID"]] {
        let mut args = vec!["ls", "--list-columns"];
        args.extend(extra);
        assert_fails(&run(&args), 2, "cannot be used with");
    }
    assert_fails(
        &run(&["ls", "--list-columns", "--raw"]),
        2,
        "cannot be used with",
    );
}
