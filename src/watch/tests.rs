use super::*;

fn key(kind: Kind, label: &str, id: u64) -> ObjectKey {
    let posix = kind.is_posix();
    ObjectKey {
        kind,
        name: posix.then(|| label.to_string()),
        key: (!posix).then(|| label.to_string()),
        id: Some(id),
    }
}

fn sysv_q(messages: u64, stime: i64, rtime: i64) -> Numbers {
    Numbers::Queue(QueueNumbers {
        messages,
        bytes: messages * 10,
        lspid: Some(100),
        lrpid: Some(200),
        stime: Some(stime),
        rtime: Some(rtime),
        touched_ns: None,
    })
}

fn q(n: &Numbers) -> QueueNumbers {
    match n {
        Numbers::Queue(q) => *q,
        _ => panic!("a queue"),
    }
}

#[test]
fn rates_are_the_fewest_moves_that_explain_the_counts_and_times() {
    let base = q(&sysv_q(5, 1000, 1000));
    let at = |messages, stime, rtime| q(&sysv_q(messages, stime, rtime));
    assert_eq!(moved(&base, &at(5, 1000, 1000)), (0, 0));
    assert_eq!(moved(&base, &at(8, 1001, 1000)), (3, 0));
    // A reader keeps up: count unchanged, both times moved.
    assert_eq!(moved(&base, &at(5, 1001, 1001)), (1, 1));
    // Drained by 2 while something was also sent.
    assert_eq!(moved(&base, &at(3, 1001, 1002)), (1, 3));
    // Drained by 2, no send.
    assert_eq!(moved(&base, &at(3, 1000, 1002)), (0, 2));
    // Same second, another sender: the pid tells; with the count
    // unchanged, something was received too.
    let mut other = at(5, 1000, 1000);
    other.lspid = Some(101);
    assert_eq!(moved(&base, &other), (1, 1));
    other.messages = 6;
    assert_eq!(moved(&base, &other), (1, 0));
    // A count that moved with no time moved (one-second resolution) still counts.
    assert_eq!(moved(&base, &at(7, 1000, 1000)), (2, 0));

    // POSIX: only the count and the inode's time.
    let p = |messages, touched_ns| QueueNumbers {
        messages,
        touched_ns: Some(touched_ns),
        ..QueueNumbers::default()
    };
    assert_eq!(moved(&p(4, 10), &p(4, 10)), (0, 0));
    assert_eq!(moved(&p(4, 10), &p(4, 11)), (1, 1));
    assert_eq!(moved(&p(4, 10), &p(6, 11)), (2, 0));
    assert_eq!(moved(&p(4, 10), &p(1, 11)), (0, 3));
}

#[test]
fn a_watch_marks_high_water_rates_and_comings_and_goings() {
    let queue = key(Kind::SysvMsq, "0x000000c8", 7);
    let sem = key(Kind::PosixSem, "/s", 99);
    let seg = key(Kind::SysvShm, "0x000000c9", 8);
    let mut w = Watch::new();
    let mut s1 = Sample {
        elapsed: 0.0,
        ..Sample::default()
    };
    s1.objects.insert(queue.clone(), sysv_q(0, 1000, 1000));
    s1.objects.insert(
        sem.clone(),
        Numbers::Semaphore {
            values: vec![1],
            waiters: vec![0],
        },
    );
    s1.objects.insert(
        seg.clone(),
        Numbers::Segment {
            size: 4096,
            nattch: Some(1),
        },
    );
    assert_eq!(summary(&s1), "1 queue, 1 semaphore, 1 segment");
    let r1 = w.update(s1.clone());
    assert_eq!(r1.sample, 1);
    assert!(r1.rows.iter().all(|r| r.mark == Mark::Present));
    assert_eq!(r1.changes().count(), 3);
    let qrow = r1.rows.iter().find(|r| r.key == queue).unwrap();
    assert_eq!(
        (qrow.high_water, qrow.rates, qrow.totals),
        (Some((0, 0)), None, Some((0, 0)))
    );

    // Two seconds later: the queue filled, the segment went, a queue with
    // the same key but a new id came (a new object).
    let reborn = key(Kind::SysvMsq, "0x000000c8", 9);
    let mut s2 = s1.clone();
    s2.elapsed = 2.0;
    s2.objects.insert(queue.clone(), sysv_q(6, 1002, 1000));
    s2.objects.remove(&seg);
    s2.objects.insert(reborn.clone(), sysv_q(0, 0, 0));
    let r2 = w.update(s2.clone());
    let mark = |r: &Report, k: &ObjectKey| r.rows.iter().find(|row| &row.key == k).unwrap().mark;
    assert_eq!(mark(&r2, &queue), Mark::Changed);
    assert_eq!(mark(&r2, &sem), Mark::Same);
    assert_eq!(mark(&r2, &seg), Mark::Vanished);
    assert_eq!(mark(&r2, &reborn), Mark::Appeared);
    assert_eq!(r2.rows.last().unwrap().key, seg, "vanished rows come last");
    let qrow = r2.rows.iter().find(|r| r.key == queue).unwrap();
    assert_eq!(
        qrow.rates,
        Some(Rates {
            sent: 6,
            received: 0,
            in_per_s: 3.0,
            out_per_s: 0.0
        })
    );
    assert_eq!(qrow.high_water, Some((6, 60)));

    // Half drained: the high-water mark stays, totals add up.
    let mut s3 = s2.clone();
    s3.elapsed = 3.0;
    s3.objects.insert(queue.clone(), sysv_q(3, 1002, 1003));
    let r3 = w.update(s3);
    let qrow = r3.rows.iter().find(|r| r.key == queue).unwrap();
    assert_eq!(qrow.high_water, Some((6, 60)));
    assert_eq!(qrow.totals, Some((6, 3)));
    assert_eq!(qrow.rates.unwrap().out_per_s, 3.0);
    assert!(
        r3.rows.iter().all(|r| r.key != seg),
        "a vanished object is shown once"
    );

    assert_second_sample_json(&r2);
    assert_second_sample_table(&r2);
}

/// The JSON of the second sample of the test above: the changes only.
fn assert_second_sample_json(r2: &Report) {
    let json = r2.json();
    assert_eq!(json["sample"], 2);
    assert_eq!(json["rates"], "lower bound");
    let events: Vec<(&str, &str)> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["mechanism"].as_str().unwrap(),
                c["event"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("sysv-msq", "changed"),
            ("sysv-msq", "appeared"),
            ("sysv-shm", "vanished")
        ]
    );
    let first = &json["changes"][0];
    assert_eq!(first["key"], "0x000000c8");
    assert_eq!(first["id"], 7);
    assert_eq!(first["messages"], 6);
    assert_eq!(first["high_water_messages"], 6);
    assert_eq!(first["rates"]["in"], 6);
    assert_eq!(first["rates"]["in_per_s"], 3.0);
    assert_eq!(json["changes"][2]["size"], 4096);
}

/// The table of the second sample of the test above: a mark a row.
fn assert_second_sample_table(r2: &Report) {
    let lines = table(r2);
    assert!(lines[0].starts_with("  KIND"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* sysv-msq") && l.contains("6/60") && l.contains("≥3.0")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("+ sysv-msq")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("- sysv-shm") && l.ends_with("nattch 1")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  posix-sem") && l.ends_with("values 1 waiters 0")),
        "{lines:?}"
    );
}

#[test]
fn an_unchanged_sample_still_gives_a_line_and_names_are_escaped() {
    let mut w = Watch::new();
    let mut s = Sample::default();
    s.objects.insert(
        key(Kind::PosixShm, "/a\x1b[2Jb", 1),
        Numbers::Segment {
            size: 1,
            nattch: None,
        },
    );
    w.update(s.clone());
    s.elapsed = 1.0;
    let r = w.update(s);
    assert_eq!(r.json()["changes"], serde_json::json!([]));
    let lines = table(&r);
    assert!(lines[1].contains("/a\\x1b[2Jb"), "{lines:?}");
    assert!(lines[1].ends_with("nattch -"), "{lines:?}");
    assert_eq!(summary(&Sample::default()), "no objects");
}
