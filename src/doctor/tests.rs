use super::*;

fn healthy() -> Facts {
    Facts {
        machine: MachineFacts {
            dev_shm: Some(Space {
                size: 8 << 30,
                used: 100 << 20,
            }),
            mqueue_mount: Some(Some("/dev/mqueue".into())),
            msg_max: Some(1024),
            msgqueue_limit: Some(Some(819_200)),
            invalid_sem_files: Vec::new(),
        },
        objects: ObjectFacts {
            orphans: Vec::new(),
            semaphores: vec![
                sem(1, 0, Some(false)),
                sem(0, 0, Some(false)),
                sem(0, 2, Some(true)),
            ],
            queues: vec![queue(vec![proc(7, "sender")], vec![proc(8, "reader")])],
            segments: vec![segment(false, 2), segment(true, 0)],
            msgqueue_used: Some(100_000),
        },
    }
}

fn object(kind: Kind) -> ObjectFact {
    let posix = kind.is_posix();
    ObjectFact {
        mechanism: kind,
        name: posix.then(|| "/my queue".to_string()),
        key: (!posix).then(|| "0x000000c8".to_string()),
        id: (!posix).then_some(42),
        bytes: 4096,
    }
}

fn proc(pid: i32, command: &str) -> Process {
    Process {
        pid,
        command: command.into(),
    }
}

fn sem(value: u64, waiters: u64, holder_alive: Option<bool>) -> SemFact {
    SemFact {
        object: ObjectFact {
            bytes: 0,
            ..object(Kind::SysvSem)
        },
        semnum: 0,
        value,
        waiters,
        last_pid: Some(4242),
        holder_alive,
        waiting: vec![proc(10, "worker")],
    }
}

fn queue(blocked_senders: Vec<Process>, live_readers: Vec<Process>) -> QueueFact {
    QueueFact {
        object: object(Kind::PosixMsq),
        messages: 10,
        max_messages: Some(10),
        max_bytes: None,
        blocked_senders,
        live_readers,
    }
}

fn segment(removed: bool, nattch: u64) -> SegmentFact {
    SegmentFact {
        object: object(Kind::SysvShm),
        removed,
        nattch,
        attached: (0..nattch as i32).map(|i| proc(100 + i, "app")).collect(),
    }
}

/// The one finding of `facts`, which must be `id`.
fn only(facts: &Facts, id: &str) -> Finding {
    let found = check(facts);
    assert_eq!(
        found.iter().map(|f| f.id).collect::<Vec<_>>(),
        [id],
        "{found:?}"
    );
    found.into_iter().next().unwrap()
}

fn ids(facts: &Facts) -> Vec<&'static str> {
    check(facts).iter().map(|f| f.id).collect()
}

#[test]
fn a_healthy_machine_has_no_findings() {
    let facts = healthy();
    let found = check(&facts);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(exit_code(&found), 0);
    assert_eq!(render(&found), "no problems found\n");
    // Unknown facts are skipped, never guessed.
    assert!(check(&Facts::default()).is_empty());
}

#[test]
fn machine_findings_come_from_their_numbers() {
    let mut f = healthy();
    f.machine.dev_shm = Some(Space {
        size: 64 << 20,
        used: 60 << 20,
    });
    assert_eq!(ids(&f), ["dev-shm-full", "dev-shm-small"]);
    let full = &check(&f)[0];
    assert_eq!(full.severity, Severity::Error);
    assert_eq!(
        full.message.split(':').next(),
        Some("/dev/shm is 93 % full (60 MiB of 64 MiB)")
    );
    assert_eq!(full.numbers["used"], 60 << 20);
    f.machine.dev_shm = Some(Space {
        size: 65 << 20,
        used: 0,
    });
    assert!(ids(&f).is_empty());

    let mut f = healthy();
    f.machine.mqueue_mount = Some(None);
    assert_eq!(ids(&f), ["mqueue-not-mounted"]);
    assert!(
        check(&f)[0]
            .fix
            .contains("mount -t mqueue none /dev/mqueue")
    );

    let mut f = healthy();
    f.machine.msg_max = Some(10);
    assert_eq!(ids(&f), ["msg-max-default"]);
    assert!(check(&f)[0].fix.starts_with("sysctl -w fs.mqueue.msg_max="));
    f.machine.msg_max = Some(11);
    assert!(ids(&f).is_empty());

    let mut f = healthy();
    f.objects.msgqueue_used = Some(700_000);
    assert_eq!(ids(&f), ["msgqueue-rlimit"]);
    assert!(
        check(&f)[0]
            .message
            .contains("85 % of RLIMIT_MSGQUEUE (700000 of 819200 bytes)")
    );
    f.objects.msgqueue_used = Some(655_360);
    assert!(ids(&f).is_empty());
    f.objects.msgqueue_used = Some(u64::MAX);
    f.machine.msgqueue_limit = Some(None);
    assert!(ids(&f).is_empty());
    f.machine.msgqueue_limit = Some(Some(0));
    assert_eq!(ids(&f), ["msgqueue-rlimit"]);
}

#[test]
fn object_findings_name_objects_processes_and_fixes() {
    let mut f = healthy();
    f.objects.orphans = vec![object(Kind::PosixShm), object(Kind::SysvMsq)];
    let found = only(&f, "orphans");
    assert_eq!(
        found.message,
        "2 orphaned objects (8192 bytes) that no live process uses"
    );
    assert_eq!(found.objects.len(), 2);

    let mut f = healthy();
    f.objects.semaphores.push(sem(0, 3, Some(false)));
    let found = only(&f, "semaphore-deadlock");
    assert_eq!(
        found.message,
        "semaphore 0x000000c8 is at 0 with 3 waiting and its last user, pid 4242, is dead: a likely deadlock"
    );
    assert_eq!(found.fix, "examples-ipc sysv sem -k 0x000000c8 --release");
    assert_eq!(found.processes, [proc(10, "worker")]);
    assert_eq!(found.numbers["last_pid"], 4242);
    f.objects.semaphores.last_mut().unwrap().holder_alive = None;
    assert!(ids(&f).is_empty());

    let mut f = healthy();
    f.objects
        .queues
        .push(queue(vec![proc(7, "sender")], Vec::new()));
    let found = only(&f, "queue-stuck");
    assert_eq!(
        found.message,
        "queue /my queue is full (10 messages, 4096 bytes) with 1 blocked sender and no live reader"
    );
    assert_eq!(
        found.fix.lines().next(),
        Some("examples-ipc posix msq -n '/my queue' --server   # receive them")
    );
    assert_eq!(found.numbers["max_messages"], 10);

    let mut f = healthy();
    f.objects.segments.push(segment(true, 2));
    let found = only(&f, "segment-removed-attached");
    assert_eq!(
        found.fix,
        "kill 100 101   # the memory is freed when they detach or exit"
    );
    f.objects.segments.last_mut().unwrap().attached.clear();
    assert!(check(&f)[0].fix.contains("not visible here"));

    let mut f = healthy();
    f.machine.invalid_sem_files = vec![InvalidSemFile {
        name: "/bad".into(),
        why: "0 bytes, a sem_t needs 32".into(),
    }];
    let found = only(&f, "semaphore-file-invalid");
    assert_eq!(
        found.message,
        "semaphore /bad is not a valid sem_t (0 bytes, a sem_t needs 32): sem_open users crash on it"
    );
    assert_eq!(found.fix, "examples-ipc posix sem -n /bad --clean");
}

#[test]
fn errors_come_first_and_render_and_serialize() {
    let mut f = healthy();
    f.machine.msg_max = Some(10);
    f.objects
        .queues
        .push(queue(vec![proc(7, "send\x1b[2J")], Vec::new()));
    let found = check(&f);
    assert_eq!(
        found.iter().map(|f| f.id).collect::<Vec<_>>(),
        ["queue-stuck", "msg-max-default"]
    );
    assert_eq!(exit_code(&found), 1);
    let text = render(&found);
    assert!(
        text.starts_with("2 problems found\n\nerror: queue-stuck: queue "),
        "{text}"
    );
    assert!(text.contains("  processes: 7 (send\\x1b[2J)\n"), "{text}");
    assert!(
        text.contains("  fix: examples-ipc posix msq -n '/my queue' --save FILE"),
        "{text}"
    );
    assert!(!text.contains('\x1b'));
    let json = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(json["id"], "queue-stuck");
    assert_eq!(json["severity"], "error");
    assert_eq!(json["objects"][0]["mechanism"], "posix-msq");
    assert_eq!(json["objects"][0]["name"], "/my queue");
    assert!(json["objects"][0].get("key").is_none());
    assert_eq!(json["processes"][0]["pid"], 7);
    assert_eq!(json["numbers"]["blocked_senders"], 1);
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "severity",
            "message",
            "objects",
            "processes",
            "numbers",
            "fix"
        ]
    );
}

#[test]
fn mountinfo_and_quoting() {
    let text = "22 1 0:21 / /proc rw - proc proc rw\n\
                40 22 0:40 / /dev/mq\\040x rw,nosuid - mqueue mqueue rw\n";
    assert_eq!(mqueue_mount_point(text), Some("/dev/mq x".into()));
    assert_eq!(
        mqueue_mount_point("22 1 0:21 / /proc rw - proc proc rw\n"),
        None
    );
    assert_eq!(mqueue_mount_point("garbage\n\\\n"), None);
    assert_eq!(unescape_octal("a\\134b\\"), "a\\b\\");
    assert_eq!(shell_quote("/plain-name_1"), "/plain-name_1");
    assert_eq!(shell_quote("/it's"), r"'/it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn semaphore_files_are_checked_without_mapping() {
    let dir = crate::snapshot::tests::TempDir::new("doctor-sem");
    let mut good = [0u8; 32];
    good[8..12].copy_from_slice(&128u32.to_ne_bytes());
    std::fs::write(dir.0.join("sem.good"), good).unwrap();
    std::fs::write(dir.0.join("sem.empty"), b"").unwrap();
    std::fs::write(dir.0.join("sem.garbage"), [0x41u8; 32]).unwrap();
    std::fs::write(dir.0.join("not-a-sem"), b"").unwrap();
    std::fs::create_dir(dir.0.join("sem.dir")).unwrap();
    let found = invalid_sem_files(&dir.0);
    let names: Vec<(&str, &str)> = found
        .iter()
        .map(|f| (f.name.as_str(), f.why.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("/dir", "not a regular file"),
            ("/empty", "0 bytes, a sem_t needs 32"),
            (
                "/garbage",
                "its private word is 0x41414141, sem_open semaphores have 0x80"
            ),
        ]
    );
    assert!(invalid_sem_files(&dir.0.join("missing")).is_empty());
}

#[test]
fn the_machine_facts_of_this_system_are_read() {
    let m = gather_machine();
    // This machine has /dev/shm and /proc; the values are its own.
    assert!(m.dev_shm.is_some_and(|s| s.size > 0 && s.used <= s.size));
    assert!(m.mqueue_mount.is_some());
    assert!(m.msg_max.is_some());
    assert!(m.msgqueue_limit.is_some());
}

#[test]
fn a_finding_of_another_namespace_names_it_in_text_and_json() {
    let mut f = healthy();
    f.machine.msg_max = Some(10);
    let mut found = check(&f);
    found[0].namespace = Some(NsTag {
        inode: 4_026_532_262,
        pid: 1234,
        container: Some("docker 3f2a9c1b7d4e\x1b".into()),
        current: false,
    });
    let text = render(&found);
    assert!(
        text.contains("\n  namespace: 4026532262/1234 docker 3f2a9c1b7d4e\\x1b\n"),
        "{text}"
    );
    let json = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(json["namespace"]["inode"], 4_026_532_262_u64);
    assert_eq!(json["namespace"]["container"], "docker 3f2a9c1b7d4e\x1b");
    if let Some(ns) = &mut found[0].namespace {
        ns.current = true;
    }
    assert!(
        render(&found)
            .contains("  namespace: 4026532262/1234 docker 3f2a9c1b7d4e\\x1b (current)\n")
    );
}

#[test]
fn the_text_names_ten_objects_and_counts_the_rest() {
    let mut f = healthy();
    f.objects.orphans = vec![object(Kind::PosixShm); 12];
    let text = render(&check(&f));
    let line = text
        .lines()
        .find(|l| l.starts_with("  objects: "))
        .expect("an objects line");
    assert_eq!(line.matches("posix-shm").count(), 10, "{line}");
    assert!(line.ends_with(", and 2 more (see ls, or --json)"), "{line}");
}
