//! The namespace harness (tests/common/namespace.rs) itself, which the
//! tests of `ls --all-namespaces` stand on: its objects exist inside and
//! not outside, their users are alive, and nothing of it is left after
//! `Drop`. Checked from outside with nsenter, ipcs and the tool run inside.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn own_ipc_inode() -> u64 {
    ipc_inode_of(std::process::id() as i32).expect("our own namespace")
}

/// `examples-ipc --json ls` run inside the namespace: its objects.
fn ls_inside(ns: &Namespace) -> Vec<Value> {
    let out = ns.run_tool(&["--json", "ls"]);
    let doc: Value = serde_json::from_str(&assert_ok(&out)).expect("ls --json is JSON");
    doc["objects"].as_array().expect("objects").clone()
}

/// The row of `obj` in an ls listing.
fn row<'a>(rows: &'a [Value], obj: &Obj) -> Option<&'a Value> {
    let (mech, name) = match obj {
        Obj::PosixMsq(n) => ("posix-msq", n.clone()),
        Obj::PosixShm(n) => ("posix-shm", n.clone()),
        Obj::PosixSem(n) => ("posix-sem", n.clone()),
        Obj::SysvMsq(k) => ("sysv-msq", key_hex(*k)),
        Obj::SysvShm(k) => ("sysv-shm", key_hex(*k)),
        Obj::SysvSem(k) => ("sysv-sem", key_hex(*k)),
        Obj::Path(_) => unreachable!("no paths in a namespace"),
    };
    let field = if mech.starts_with("posix") {
        "name"
    } else {
        "key"
    };
    rows.iter()
        .find(|r| r["mechanism"] == mech && r[field] == name.as_str())
}

fn shm_file(name: &str) -> String {
    format!("/dev/shm/{}", &name[1..])
}

fn sem_file(name: &str) -> String {
    format!("/dev/shm/sem.{}", &name[1..])
}

fn ipcs(args: &[&str]) -> std::process::Output {
    std::process::Command::new("ipcs")
        .args(args)
        .output()
        .expect("ipcs (util-linux) runs")
}

#[test]
fn a_namespace_holds_each_kind_inside_and_nothing_outside() {
    let ns = Namespace::start();
    let o = ns.objects.clone();
    assert_ne!(ns.ipc_inode(), own_ipc_inode());
    assert_eq!(ipc_inode_of(ns.pid()), Some(ns.ipc_inode()));

    // Inside: the files in its /dev/shm, the keys in its ipcs, the queue.
    let files = assert_ok(&ns.nsenter("ls", &["-a", "/dev/shm"]));
    let files: Vec<&str> = files.lines().collect();
    assert!(files.contains(&&o.posix_shm[1..]), "{files:?}");
    assert!(
        files.contains(&format!("sem.{}", &o.posix_sem[1..]).as_str()),
        "{files:?}"
    );
    for (flag, key) in [("-q", o.sysv_msq), ("-m", o.sysv_shm), ("-s", o.sysv_sem)] {
        let out = ns.nsenter("ipcs", &[flag]);
        assert!(
            ipcs_lists(&out, key),
            "ipcs {flag} inside lacks {}",
            key_hex(key)
        );
        assert!(
            !ipcs_lists(&ipcs(&[flag]), key),
            "ipcs {flag} outside lists {}",
            key_hex(key)
        );
    }
    // A small queue: RLIMIT_MSGQUEUE counts a user's queues in all namespaces.
    let stat = assert_ok(&ns.run_tool(&["--json", "posix", "msq", "--stat", "-n", &o.posix_msq]));
    assert!(stat.contains(r#""maxmsg":1,"#), "{stat}");

    // Outside: none of it.
    assert!(!Path::new(&shm_file(&o.posix_shm)).exists());
    assert!(!Path::new(&sem_file(&o.posix_sem)).exists());
    assert!(!posix_exists(&Obj::PosixMsq(o.posix_msq.clone())));
    let out = run(&["posix", "msq", "--stat", "-n", &o.posix_msq]);
    assert_fails(&out, 1, "no such");
}

#[test]
fn each_object_has_a_live_server_of_the_namespace_as_its_user() {
    let ns = Namespace::start();
    let servers = ns.servers();
    assert_eq!(servers.len(), 6, "one server per object: {servers:?}");
    for pid in &servers {
        assert_eq!(ipc_inode_of(*pid), Some(ns.ipc_inode()), "server {pid}");
    }
    let rows = ls_inside(&ns);
    for obj in ns.objects.all() {
        let r = row(&rows, &obj).unwrap_or_else(|| panic!("{obj:?} not listed: {rows:?}"));
        assert_eq!(r["orphaned"], false, "{obj:?}: {r}");
        let users: Vec<i64> = r["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u["pid"].as_i64())
            .collect();
        assert!(
            users.iter().any(|u| servers.contains(&(*u as i32))),
            "{obj:?}: users {users:?}, servers {servers:?}"
        );
    }
}

#[test]
fn without_users_the_namespace_holds_its_objects_and_nobody_else() {
    let ns = Namespace::with(Users::None, DevShm::Private);
    assert!(ns.servers().is_empty());
    // Only unshare and the sleep that keeps the namespace: nobody who could
    // use an object. The shell prints its ready line just before it execs
    // that sleep, so it may still be `sh` here; it holds no object either. (Not checked with `ls`, which today counts a process
    // of another namespace blocked on the same System V id as a user: the
    // listing of every namespace must attribute within each namespace.)
    let comms: Vec<String> = processes_in(ns.ipc_inode())
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .map(|c| c.trim_end().to_string())
        .collect();
    assert!(
        !comms.is_empty()
            && comms
                .iter()
                .all(|c| matches!(c.as_str(), "unshare" | "sh" | "sleep")),
        "{comms:?}"
    );
    let rows = ls_inside(&ns);
    for obj in ns.objects.all() {
        assert!(row(&rows, &obj).is_some(), "{obj:?} not listed: {rows:?}");
    }
    let out = ns.nsenter("ipcs", &["-m"]);
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&key_hex(ns.objects.sysv_shm)))
        .map(str::to_string)
        .expect("the segment is in ipcs -m");
    // key shmid owner perms bytes nattch
    assert_eq!(line.split_whitespace().nth(5), Some("0"), "{line}");
}

#[test]
fn a_namespace_sharing_the_hosts_dev_shm_shows_its_posix_files_outside() {
    let ns = Namespace::with(Users::Live, DevShm::Shared);
    let o = ns.objects.clone();
    // /dev/shm is the host's: its POSIX shm and semaphore are seen here...
    assert!(Path::new(&shm_file(&o.posix_shm)).exists());
    assert!(Path::new(&sem_file(&o.posix_sem)).exists());
    // ... its queue and System V objects are not.
    assert!(!posix_exists(&Obj::PosixMsq(o.posix_msq.clone())));
    assert!(!ipcs_lists(&ipcs(&["-m"]), o.sysv_shm));
    drop(ns);
    assert!(!Path::new(&shm_file(&o.posix_shm)).exists());
    assert!(!Path::new(&sem_file(&o.posix_sem)).exists());
}

#[test]
fn after_drop_no_process_and_no_namespace_is_left() {
    for users in [Users::Live, Users::None] {
        let ns = Namespace::with(users, DevShm::Private);
        let (pid, inode) = (ns.pid(), ns.ipc_inode());
        let processes = ns.processes();
        assert!(processes.contains(&pid), "{processes:?}");
        assert!(processes_in(inode).contains(&pid));
        drop(ns);
        for p in &processes {
            assert_eq!(
                ipc_inode_of(*p),
                None,
                "{users:?}: process {p} is still in a namespace"
            );
        }
        assert_eq!(processes_in(inode), Vec::<i32>::new(), "{users:?}");
        let out = std::process::Command::new("nsenter")
            .arg(format!("--target={pid}"))
            .args(["--ipc", "--", "true"])
            .output()
            .expect("nsenter runs");
        assert!(!out.status.success(), "{users:?}: nsenter still entered");
    }
}

#[test]
fn ls_inside_a_namespace_counts_no_process_of_another_as_a_user() {
    // Both namespaces are new, so their System V objects have the same ids:
    // the servers of `live` are blocked on (or last operated on) ids that
    // in `idle` name objects nobody uses.
    let live = Namespace::with(Users::Live, DevShm::Private);
    let idle = Namespace::with(Users::None, DevShm::Private);
    let rows = ls_inside(&idle);
    let o = &idle.objects;
    for obj in [
        Obj::SysvMsq(o.sysv_msq),
        Obj::SysvShm(o.sysv_shm),
        Obj::SysvSem(o.sysv_sem),
    ] {
        let r = row(&rows, &obj).unwrap_or_else(|| panic!("{obj:?} not listed: {rows:?}"));
        let others = live.processes();
        for u in r["users"].as_array().expect("users") {
            // No process of `live`. The one user there can be is a pid the
            // kernel recorded for an exited client (lspid, cpid, sempid)
            // that a new process took meanwhile (pid_max is 32768 here and
            // the suite starts thousands): ls errs towards in use then.
            let pid = u["pid"].as_i64().expect("pid") as i32;
            assert!(!others.contains(&pid), "{obj:?}: {r}");
            assert!(
                matches!(u["how"].as_str(), Some("last-op" | "creator")),
                "{obj:?}: {r}"
            );
        }
        if user_pids(r).is_empty() {
            assert_eq!(r["orphaned"], true, "{obj:?}: {r}");
        }
    }
    drop(live);
}

/// `examples-ipc --json ls -A`: every namespace's objects.
fn ls_all() -> Vec<Value> {
    let out = run(&["--json", "ls", "-A"]);
    let doc: Value = serde_json::from_str(&assert_ok(&out)).expect("ls -A --json is JSON");
    doc["objects"].as_array().expect("objects").clone()
}

fn user_pids(r: &Value) -> Vec<i32> {
    r["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["pid"].as_i64())
        .map(|p| p as i32)
        .collect()
}

#[test]
fn ls_all_namespaces_shows_each_object_once_in_its_namespace_with_its_users() {
    let (a, b) = (Namespace::start(), Namespace::start());
    let idle = Namespace::with(Users::None, DevShm::Private);
    // One object of the current namespace, unchanged by -A.
    let here = unique_key();
    let mut guard = Cleanup::new();
    guard.add(Obj::SysvShm(here));
    assert_ok(&run(&["sysv", "shm", "-k", &here.to_string(), "-m", "x"]));
    let rows = ls_all();
    for ns in [&a, &b, &idle] {
        let servers = ns.servers();
        for obj in ns.objects.all() {
            let found: Vec<&Value> = rows
                .iter()
                .filter(|r| row(std::slice::from_ref(r), &obj).is_some())
                .collect();
            assert_eq!(found.len(), 1, "{obj:?} listed {} times", found.len());
            let r = found[0];
            assert_eq!(r["namespace"]["inode"], ns.ipc_inode(), "{obj:?}: {r}");
            assert_eq!(r["namespace"]["current"], false, "{obj:?}: {r}");
            let users = user_pids(r);
            if ns.users == Users::Live {
                assert_eq!(r["orphaned"], false, "{obj:?}: {r}");
                assert!(
                    users.iter().any(|u| servers.contains(u)),
                    "{obj:?}: users {users:?}, servers {servers:?}"
                );
            } else {
                assert_eq!(r["orphaned"], true, "{obj:?}: {r}");
            }
            // Nobody of another namespace.
            for u in users {
                assert_eq!(ipc_inode_of(u), Some(ns.ipc_inode()), "{obj:?}: user {u}");
            }
        }
    }
    let r = row(&rows, &Obj::SysvShm(here)).expect("the current namespace's segment");
    assert_eq!(r["namespace"]["inode"], own_ipc_inode(), "{r}");
    assert_eq!(r["namespace"]["current"], true, "{r}");
    let plain = assert_ok(&run(&["--json", "ls", "--sysv", "-t", "shm"]));
    assert!(plain.contains(&key_hex(here)), "{plain}");
    assert!(!plain.contains("\"namespace\""), "{plain}");
}

#[test]
fn a_namespace_whose_processes_exit_leaves_the_listing() {
    let ns = Namespace::start();
    let inode = ns.ipc_inode();
    let listed = |rows: &[Value]| rows.iter().any(|r| r["namespace"]["inode"] == inode);
    assert!(listed(&ls_all()), "namespace {inode} not listed");
    drop(ns);
    assert!(!listed(&ls_all()), "namespace {inode} still listed");
}

#[test]
fn ls_all_namespaces_text_has_a_namespace_column() {
    let ns = Namespace::start();
    let out = assert_ok(&run(&["ls", "-A", "--prefix", &ns.objects.posix_shm]));
    let header = out.lines().next().unwrap_or_default();
    assert!(header.starts_with("NAMESPACE "), "{out}");
    let inode = format!("{}/", ns.ipc_inode());
    assert!(
        out.lines()
            .any(|l| l.starts_with(&inode) && l.contains(&ns.objects.posix_shm)),
        "{out}"
    );
    let cols = assert_ok(&run(&["ls", "--list-columns"]));
    assert!(cols.lines().any(|l| l.starts_with("NAMESPACE ")), "{cols}");
}

#[test]
fn ls_namespace_by_inode_or_pid_lists_that_namespace_only() {
    let (a, b) = (Namespace::start(), Namespace::start());
    for sel in [a.ipc_inode().to_string(), a.pid().to_string()] {
        let out = run(&["--json", "ls", "--namespace", &sel]);
        let doc: Value = serde_json::from_str(&assert_ok(&out)).expect("JSON");
        let rows = doc["objects"].as_array().expect("objects");
        assert!(
            rows.iter()
                .all(|r| r["namespace"]["inode"] == a.ipc_inode()),
            "--namespace {sel}: {rows:?}"
        );
        for obj in a.objects.all() {
            assert!(
                row(rows, &obj).is_some(),
                "--namespace {sel}: {obj:?} missing"
            );
        }
        for obj in b.objects.all() {
            assert!(
                row(rows, &obj).is_none(),
                "--namespace {sel}: {obj:?} listed"
            );
        }
    }
    // An inode nobody is in (any more): an error, nothing listed.
    let gone = Namespace::with(Users::None, DevShm::Private);
    let inode = gone.ipc_inode().to_string();
    drop(gone);
    let out = run(&["ls", "--namespace", &inode]);
    assert_fails(&out, 1, "no IPC namespace has this inode or holds this pid");
    assert!(out.stdout.is_empty());
}

/// A process of nobody's alone in a new IPC namespace (`unshare --ipc`,
/// then setpriv, then sleep: one pid), killed and reaped in `Drop`.
struct NobodysNamespace(std::process::Child);

impl NobodysNamespace {
    fn start() -> NobodysNamespace {
        let child = std::process::Command::new("unshare")
            .args(["--ipc", "setpriv", "--reuid=65534", "--regid=65534"])
            .args(["--clear-groups", "sleep", "600"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("unshare and setpriv (util-linux) run");
        let ns = NobodysNamespace(child);
        let pid = ns.0.id() as i32;
        // Ready once the pid runs sleep (after both execs) in its namespace.
        let until = std::time::Instant::now() + DEADLINE;
        while std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .as_deref()
            != Some("sleep\n")
        {
            assert!(std::time::Instant::now() < until, "sleep never started");
            std::thread::yield_now();
        }
        assert_ne!(ipc_inode_of(pid), Some(own_ipc_inode()));
        ns
    }
}

impl NobodysNamespace {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn ipc_inode(&self) -> u64 {
        ipc_inode_of(self.pid()).expect("its namespace")
    }
}

impl Drop for NobodysNamespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `examples-ipc ARGS` run as nobody.
fn as_nobody(args: &[&str]) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin!("examples-ipc"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setpriv runs")
}

#[test]
fn unprivileged_ls_all_names_what_it_could_not_read_and_lists_the_rest() {
    let ns = NobodysNamespace::start();
    let (pid, inode) = (ns.pid(), ns.ipc_inode());
    let out = as_nobody(&["--json", "ls", "-A"]);
    let doc: Value = serde_json::from_str(&assert_ok(&out)).expect("ls -A --json is JSON");
    let notes: Vec<&str> = doc["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let want = format!(
        "could not read namespace ipc:[{inode}] (pid {pid}): setns(CLONE_NEWIPC): Operation not permitted (EPERM)"
    );
    assert!(notes.contains(&want.as_str()), "{notes:?}");
    // Root's processes are another user's: their namespaces are unknown.
    assert!(
        notes.iter().any(
            |n| n.starts_with("could not read the IPC namespace of ") && n.contains("(EACCES)")
        ),
        "{notes:?}"
    );
    // The rest is listed: the current namespace's objects carry it.
    let rows = doc["objects"].as_array().expect("objects");
    assert!(
        rows.iter().all(|r| r["namespace"]["current"] == true),
        "{rows:?}"
    );
    drop(ns);
}

/// `clean --stale` of exactly the six objects of `o` (by name and key),
/// in `--namespace ns` when given: the text of every run.
fn clean_six(o: &NsObjects, ns: Option<&str>) -> String {
    let mut text = String::new();
    let (k1, k2, k3) = (
        o.sysv_msq.to_string(),
        o.sysv_shm.to_string(),
        o.sysv_sem.to_string(),
    );
    let posix = vec![
        "--name",
        o.posix_msq.as_str(),
        "--name",
        o.posix_shm.as_str(),
        "--name",
        o.posix_sem.as_str(),
    ];
    for select in [posix, vec!["-k", &k1], vec!["-k", &k2], vec!["-k", &k3]] {
        let mut args = vec!["clean", "--stale"];
        if let Some(ns) = ns {
            args.extend(["--namespace", ns]);
        }
        args.extend(select);
        text.push_str(&assert_ok(&run(&args)));
    }
    text
}

fn listed_in(ns: &Namespace) -> Vec<Value> {
    let out = run(&["--json", "ls", "--namespace", &ns.ipc_inode().to_string()]);
    let doc: Value = serde_json::from_str(&assert_ok(&out)).expect("JSON");
    doc["objects"].as_array().expect("objects").clone()
}

#[test]
fn clean_stale_acts_in_another_namespace_only_when_named() {
    let idle = Namespace::with(Users::None, DevShm::Private);
    let live = Namespace::start();
    // Without --namespace: the current namespace only, where none of them is.
    let text = clean_six(&idle.objects, None);
    assert!(
        !text.contains("removed posix") && !text.contains("removed sysv"),
        "{text}"
    );
    let rows = listed_in(&idle);
    for obj in idle.objects.all() {
        assert!(row(&rows, &obj).is_some(), "{obj:?} gone: {text}");
    }
    // A namespace's objects in use stay, even when named.
    let text = clean_six(&live.objects, Some(&live.pid().to_string()));
    assert!(
        !text.contains("removed posix") && !text.contains("removed sysv"),
        "{text}"
    );
    let rows = listed_in(&live);
    for obj in live.objects.all() {
        assert!(row(&rows, &obj).is_some(), "{obj:?} gone: {text}");
    }
    // Named: its orphans are removed from within it, and the lines say where.
    let inode = idle.ipc_inode();
    let text = clean_six(&idle.objects, Some(&inode.to_string()));
    let removed = text.lines().filter(|l| l.starts_with("removed ")).count();
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("removed ") && l.ends_with(&format!(" in ipc:[{inode}]")))
            .count(),
        6,
        "{text}"
    );
    assert_eq!(removed, 6 + 4, "six lines and four summaries: {text}");
    let rows = listed_in(&idle);
    for obj in idle.objects.all() {
        assert!(row(&rows, &obj).is_none(), "{obj:?} left: {rows:?}");
    }
    let rows = listed_in(&live);
    for obj in live.objects.all() {
        assert!(row(&rows, &obj).is_some(), "{obj:?} gone");
    }
}

#[test]
fn limits_all_namespaces_reads_each_namespaces_own_sysctls() {
    let ns = Namespace::with(Users::None, DevShm::Private);
    // msgmni is per IPC namespace: this one changes only there.
    assert_ok(&ns.nsenter("sh", &["-c", "echo 123 > /proc/sys/kernel/msgmni"]));
    let out = assert_ok(&run(&["--json", "limits", "-A"]));
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let of = |inode: u64| {
        records
            .iter()
            .find(|r| r["namespace"] == inode)
            .unwrap_or_else(|| panic!("no record of {inode}: {out}"))
    };
    let theirs = &of(ns.ipc_inode())["limits"];
    assert_eq!(theirs["sysv_msg"]["msgmni"], 123, "{theirs}");
    assert_eq!(theirs["sysv_msg"]["queues"], 1, "{theirs}");
    assert_eq!(theirs["sysv_shm"]["segments"], 1, "{theirs}");
    assert_eq!(theirs["posix_mqueue"]["queues"], 1, "{theirs}");
    assert_eq!(theirs["dev_shm"]["objects"], 2, "{theirs}");
    let ours = &of(own_ipc_inode());
    assert_eq!(ours["current"], true);
    assert_ne!(ours["limits"]["sysv_msg"]["msgmni"], 123, "{ours}");
    let text = assert_ok(&run(&["limits", "-A"]));
    assert!(
        text.contains(&format!("IPC namespace ipc:[{}] (pid ", ns.ipc_inode())),
        "{text}"
    );
}

#[test]
fn a_dev_shm_shared_with_the_current_namespace_is_listed_once_under_it() {
    let ns = Namespace::with(Users::Live, DevShm::Shared);
    let rows = ls_all();
    let o = &ns.objects;
    for obj in [
        Obj::PosixShm(o.posix_shm.clone()),
        Obj::PosixSem(o.posix_sem.clone()),
    ] {
        let found: Vec<&Value> = rows
            .iter()
            .filter(|r| row(std::slice::from_ref(r), &obj).is_some())
            .collect();
        assert_eq!(found.len(), 1, "{obj:?}: {found:?}");
        assert_eq!(found[0]["namespace"]["current"], true, "{obj:?}");
        // Its users are in the other IPC namespace, and still count.
        assert_eq!(found[0]["orphaned"], false, "{obj:?}: {}", found[0]);
    }
    for obj in [
        Obj::PosixMsq(o.posix_msq.clone()),
        Obj::SysvMsq(o.sysv_msq),
        Obj::SysvShm(o.sysv_shm),
        Obj::SysvSem(o.sysv_sem),
    ] {
        let r = row(&rows, &obj).unwrap_or_else(|| panic!("{obj:?} not listed"));
        assert_eq!(r["namespace"]["inode"], ns.ipc_inode(), "{obj:?}");
    }
}

#[test]
fn ls_all_namespaces_combines_with_the_selection_and_orphaned() {
    let (live, idle) = (
        Namespace::start(),
        Namespace::with(Users::None, DevShm::Private),
    );
    let out = assert_ok(&run(&[
        "--json",
        "ls",
        "-A",
        "--sysv",
        "-t",
        "msq",
        "--orphaned",
    ]));
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    let rows = doc["objects"].as_array().expect("objects");
    assert!(
        rows.iter()
            .all(|r| r["mechanism"] == "sysv-msq" && r["orphaned"] == true),
        "{out}"
    );
    assert!(
        row(rows, &Obj::SysvMsq(idle.objects.sysv_msq)).is_some(),
        "{out}"
    );
    assert!(
        row(rows, &Obj::SysvMsq(live.objects.sysv_msq)).is_none(),
        "{out}"
    );
    let name = idle.objects.posix_shm.clone();
    let out = assert_ok(&run(&["--json", "ls", "-A", "--name", &name]));
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    let rows = doc["objects"].as_array().expect("objects");
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["namespace"]["inode"], idle.ipc_inode(), "{out}");
}

/// Make `ns` healthy for `doctor`: a 128 MiB /dev/shm (tmpfs reserves
/// nothing), msg_max above the default and mqueue mounted, on `dir` (/dev
/// is the host's). The mount lives in the namespace's own mount namespace.
fn make_healthy(ns: &Namespace, dir: &TempDir) {
    let script = r#"mount -o remount,size=128m /dev/shm && echo 256 > /proc/sys/fs/mqueue/msg_max && mount -t mqueue none "$1""#;
    let dir = dir.0.to_str().expect("a UTF-8 path");
    assert_ok(&ns.nsenter("sh", &["-c", script, "sh", dir]));
}

/// `doctor ARGS` (with --json first): its document and exit code.
fn doctor(args: &[&str]) -> (Value, i32) {
    let out = run(&[&["--json", "doctor"], args].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (doc, out.status.code().expect("an exit code"))
}

/// The findings of `doc` in namespace `inode`: (id, finding).
fn findings_in(doc: &Value, inode: u64) -> Vec<(&str, &Value)> {
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["namespace"]["inode"] == inode)
        .map(|f| (f["id"].as_str().unwrap_or_default(), f))
        .collect()
}

/// The name or key of each object of a finding, as ls prints them.
fn labels(f: &Value) -> Vec<String> {
    let mut labels: Vec<String> = f["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            o["name"]
                .as_str()
                .or(o["key"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    labels.sort();
    labels
}

#[test]
fn doctor_all_namespaces_names_the_namespace_of_each_finding() {
    let dir = TempDir::new("doctor-mq");
    // Every object orphaned, a 1 MiB /dev/shm filled up: problems only
    // inside (the tmpfs and its file end with the namespace).
    let sick = Namespace::with(Users::None, DevShm::Private);
    let fill = "head -c 1000000 /dev/zero > /dev/shm/fill";
    assert_ok(&sick.nsenter("sh", &["-c", fill]));
    let well = Namespace::start();
    make_healthy(&well, &dir);
    let (doc, rc) = doctor(&["-A"]);
    assert_eq!(rc, 1, "{doc}");
    assert_eq!(doc["healthy"], false);
    let theirs = findings_in(&doc, sick.ipc_inode());
    let ids: Vec<&str> = theirs.iter().map(|(id, _)| *id).collect();
    // Its own /dev/shm's size, not the host's.
    for id in ["dev-shm-small", "dev-shm-full"] {
        let (_, f) = theirs
            .iter()
            .find(|(i, _)| *i == id)
            .unwrap_or_else(|| panic!("no {id} in {ids:?}"));
        assert_eq!(f["numbers"]["size"], 1 << 20, "{f}");
    }
    // Left at the new namespace's default of 10.
    assert!(ids.contains(&"msg-max-default"), "{ids:?}");
    let (_, orphans) = theirs
        .iter()
        .find(|(id, _)| *id == "orphans")
        .unwrap_or_else(|| panic!("no orphans in {ids:?}"));
    let o = &sick.objects;
    let mut want = vec![
        o.posix_msq.clone(),
        o.posix_shm.clone(),
        o.posix_sem.clone(),
        "/fill".to_string(),
    ];
    want.extend([o.sysv_msq, o.sysv_shm, o.sysv_sem].map(key_hex));
    want.sort();
    assert_eq!(labels(orphans), want);
    assert_eq!(orphans["numbers"]["count"], 7);
    let ns = &orphans["namespace"];
    assert_eq!(ns["current"], false);
    let pid = ns["pid"].as_i64().and_then(|p| i32::try_from(p).ok());
    assert!(
        pid.is_some_and(|p| ipc_inode_of(p) == Some(sick.ipc_inode())),
        "{ns}"
    );
    // The healthy namespace has nothing, though its servers live in it.
    assert_eq!(findings_in(&doc, well.ipc_inode()), [], "{doc}");
    // The current namespace's doctor sees none of it (its unique names
    // and keys; other tests' objects there are none of ours).
    let (here, _) = doctor(&[]);
    let here = here.to_string();
    for label in want.iter().filter(|l| *l != "/fill") {
        assert!(!here.contains(label.as_str()), "{label} in {here}");
    }
    assert!(!here.contains("\"namespace\""), "{here}");
    let text = String::from_utf8_lossy(&run(&["doctor", "-A"]).stdout).into_owned();
    let line = format!("  namespace: {}/", sick.ipc_inode());
    assert!(text.contains(&line), "{text}");
    assert!(text.contains(" IPC namespaces"), "{text}");
}

#[test]
fn doctor_namespace_checks_that_one_only() {
    let dir = TempDir::new("doctor-mq");
    let sick = Namespace::with(Users::None, DevShm::Private);
    let well = Namespace::with(Users::None, DevShm::Private);
    make_healthy(&well, &dir);
    // Nobody uses them: remove them from inside, leaving nothing wrong.
    let o = &well.objects;
    for (kind, which) in [
        ("posix msq -n", o.posix_msq.clone()),
        ("posix shm -n", o.posix_shm.clone()),
        ("posix sem -n", o.posix_sem.clone()),
        ("sysv msq -k", o.sysv_msq.to_string()),
        ("sysv shm -k", o.sysv_shm.to_string()),
        ("sysv sem -k", o.sysv_sem.to_string()),
    ] {
        let mut args: Vec<&str> = kind.split(' ').collect();
        args.extend([which.as_str(), "--clean"]);
        assert_ok(&well.run_tool(&args));
    }
    // By pid: a healthy namespace finds nothing.
    let (doc, rc) = doctor(&["--namespace", &well.pid().to_string()]);
    assert_eq!((rc, &doc["healthy"]), (0, &Value::Bool(true)), "{doc}");
    assert_eq!(doc["findings"], Value::Array(Vec::new()));
    let out = run(&["doctor", "--namespace", &well.pid().to_string()]);
    assert_eq!(
        assert_ok(&out).lines().next(),
        Some("no problems found in 1 IPC namespace")
    );
    // By inode: only that namespace's findings.
    let (doc, rc) = doctor(&["--namespace", &sick.ipc_inode().to_string()]);
    assert_eq!(rc, 1, "{doc}");
    let all = doc["findings"].as_array().expect("findings");
    assert!(!all.is_empty());
    assert!(
        all.iter()
            .all(|f| f["namespace"]["inode"] == sick.ipc_inode() || f["id"] == "msgqueue-rlimit"),
        "{doc}"
    );
    // Refused: a namespace nobody is in, and both selections at once.
    let gone = sick.ipc_inode().to_string();
    drop(sick);
    let out = run(&["doctor", "--namespace", &gone]);
    assert_fails(&out, 1, "no IPC namespace has this inode or holds this pid");
    assert!(out.stdout.is_empty());
    let out = run(&["doctor", "-A", "--namespace", &gone]);
    assert_fails(&out, 2, "cannot be used with");
}

#[test]
fn unprivileged_doctor_all_names_the_namespaces_it_could_not_check() {
    let ns = NobodysNamespace::start();
    let (pid, inode) = (ns.pid(), ns.ipc_inode());
    let out = as_nobody(&["--json", "doctor", "-A"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let unchecked = doc["unchecked"].as_array().expect("unchecked");
    let theirs = unchecked
        .iter()
        .find(|u| u["namespace"]["inode"] == inode)
        .unwrap_or_else(|| panic!("{inode} not in {unchecked:?}"));
    assert_eq!(
        theirs["reason"],
        "setns(CLONE_NEWIPC): Operation not permitted (EPERM)"
    );
    // Said once: not again among the scan's notes.
    let needle = format!("ipc:[{inode}]");
    assert!(
        doc["notes"].as_array().is_none_or(|n| n
            .iter()
            .all(|n| !n.as_str().unwrap_or_default().contains(&needle))),
        "{doc}"
    );
    // Unchecked is not unhealthy: the status follows the findings alone.
    let findings = doc["findings"].as_array().expect("findings");
    assert_eq!(
        out.status.code(),
        Some(i32::from(!findings.is_empty())),
        "{doc}"
    );
    assert_eq!(doc["healthy"], findings.is_empty());
    let out = as_nobody(&["doctor", "-A"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "could not check namespace {inode}/{pid}: setns(CLONE_NEWIPC)"
        )),
        "{text}"
    );
    drop(ns);
}
