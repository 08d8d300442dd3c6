use std::collections::VecDeque;
use std::io::Write;

use super::*;
use crate::snapshot::file::AtomicFile;
use crate::snapshot::tests::{Body, TempDir, queue_file, read_all};
use crate::snapshot::{Mechanism, open};

/// A save that is never canceled.
fn never() -> bool {
    false
}

/// A queue in memory: FIFO, and `full` refuses a put once it holds that many.
struct Fake {
    q: VecDeque<Message>,
    full: usize,
}

impl Fake {
    /// The five `msgs()`, refusing puts beyond `full`.
    fn holding(full: usize) -> Fake {
        Fake {
            q: msgs().into(),
            full,
        }
    }

    /// Empty, refusing puts beyond `full`.
    fn empty(full: usize) -> Fake {
        Fake {
            q: VecDeque::new(),
            full,
        }
    }
}

impl QueueSource for Fake {
    fn take(&mut self) -> io::Result<Option<Message>> {
        Ok(self.q.pop_front())
    }

    fn put(&mut self, msg: &Message) -> io::Result<()> {
        if self.q.len() >= self.full {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.q.push_back(msg.clone());
        Ok(())
    }
}

/// A file that takes `room` bytes, then fails every write (ENOSPC), or
/// fails at commit.
struct Failing {
    written: Vec<u8>,
    room: usize,
    commit_fails: bool,
}

impl Failing {
    fn new(room: usize, commit_fails: bool) -> Failing {
        Failing {
            written: Vec::new(),
            room,
            commit_fails,
        }
    }
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written.len() + buf.len() > self.room {
            return Err(Errno::ENOSPC.into());
        }
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Commit for Failing {
    fn commit(self) -> io::Result<()> {
        if self.commit_fails {
            return Err(Errno::EIO.into());
        }
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.written.clear();
        Ok(())
    }
}

fn msgs() -> Vec<Message> {
    (1..=5)
        .map(|i| Message {
            tag: Tag::Type(i % 3 + 1),
            bytes: vec![i as u8; i as usize * 10],
        })
        .collect()
}

fn header() -> Header {
    Header::new(
        Origin::Key(0xc8),
        Attrs::SysvMsq { qbytes: 16384 },
        0o600,
        0,
        0,
    )
}

/// The bytes of the header line a save of `limit` messages writes.
fn header_len(limit: u64) -> usize {
    let mut h = header();
    h.messages = Some(limit);
    serde_json::to_vec(&h).unwrap().len() + 1
}

#[test]
fn a_header_that_cannot_be_written_takes_nothing() {
    let mut src = Fake::holding(100);
    let out = Failing::new(0, false);
    let e = save_queue(&mut src, header(), out, 100, &never).unwrap_err();
    assert_eq!(e.taken, 0);
    assert_eq!(Vec::from(src.q), msgs());
    assert!(e.to_string().contains("No space left"), "{e}");
}

#[test]
fn a_write_failing_midway_puts_everything_back_in_order() {
    let head = header_len(100);
    for (room, commit_fails) in [(head, false), (head + 300, false), (100_000, true)] {
        let mut src = Fake::holding(100);
        let out = Failing::new(room, commit_fails);
        let e = save_queue(&mut src, header(), out, 100, &never).unwrap_err();
        assert_eq!(e.taken, 5);
        assert!(e.stranded.is_empty());
        assert_eq!(Vec::from(src.q), msgs(), "room {room}");
        let want = if commit_fails {
            "Input/output"
        } else {
            "No space left"
        };
        assert!(e.to_string().contains(want), "{e}");
        assert!(
            e.to_string()
                .ends_with("(the 5 messages taken were put back, in order)")
        );
    }
}

#[test]
fn messages_that_cannot_go_back_are_handed_to_the_caller() {
    // Another sender filled the queue while we saved: two go back, three
    // are stranded, in order, with the reason.
    let mut src = Fake::holding(2);
    let out = Failing::new(header_len(100), false);
    let e = save_queue(&mut src, header(), out, 100, &never).unwrap_err();
    assert_eq!(Vec::from(src.q), msgs()[..2]);
    assert_eq!(e.stranded, msgs()[2..]);
    assert!(
        e.to_string()
            .contains("(3 of the 5 messages taken could not be put back: "),
        "{e}"
    );
}

#[test]
fn a_save_takes_at_most_the_limit_and_writes_them_in_order() {
    let mut src = Fake::holding(100);
    let out = Failing::new(usize::MAX, false);
    let saved = save_queue(&mut src, header(), out, 3, &never).unwrap();
    assert_eq!(
        saved,
        Saved {
            messages: 3,
            bytes: 60
        }
    );
    assert_eq!(Vec::from(src.q), msgs()[3..]);
}

#[test]
fn a_canceled_save_commits_what_it_took_under_their_count() {
    // Ctrl-C after the second take: two are in the file, counted as two,
    // and the rest never left the queue.
    let dir = TempDir::new("canceled");
    let path = dir.0.join("q.jsonl");
    let mut src = Fake::holding(100);
    let asked = std::cell::Cell::new(0);
    let stop = || {
        asked.set(asked.get() + 1);
        asked.get() > 2
    };
    let out = AtomicFile::create(&path).unwrap();
    assert_eq!(
        save_queue(&mut src, header(), out, 5, &stop).unwrap(),
        Saved {
            messages: 2,
            bytes: 30
        }
    );
    let (h, body) = read_all(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(h.messages, Some(2));
    assert!(matches!(body, Body::Messages(m) if m == msgs()[..2]));
    assert_eq!(Vec::from(src.q), msgs()[2..]);
    assert_eq!(dir.entries(), ["q.jsonl"]);
}

#[test]
fn fewer_messages_than_counted_are_written_again_with_their_count() {
    // Another reader took some after the count was read: the file is
    // written again under the count of what was taken.
    let dir = TempDir::new("fewer");
    let path = dir.0.join("q.jsonl");
    let mut src = Fake::holding(100);
    let out = AtomicFile::create(&path).unwrap();
    assert_eq!(
        save_queue(&mut src, header(), out, 100, &never)
            .unwrap()
            .messages,
        5
    );
    let (h, body) = read_all(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(h.messages, Some(5));
    assert!(matches!(body, Body::Messages(m) if m == msgs()));
    assert_eq!(dir.entries(), ["q.jsonl"]);
}

#[test]
fn a_saved_file_restores_the_same_messages() {
    let file = queue_file(Mechanism::SysvMsq, &msgs());
    let mut reader = Reader::new(&file[..]).unwrap();
    let mut target = Fake::empty(3);
    let e = restore(&mut target, &mut reader).unwrap_err();
    assert_eq!(e.sent, 3);
    assert!(
        e.to_string().ends_with("(after 3 messages were restored)"),
        "{e}"
    );
    let mut reader = Reader::new(&file[..]).unwrap();
    let mut target = Fake::empty(100);
    assert_eq!(restore(&mut target, &mut reader).unwrap().messages, 5);
    assert_eq!(Vec::from(target.q), msgs());
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("/eipc-test-{}-unit-{tag}-{n}", std::process::id())
}

#[test]
fn posix_queue_round_trip_keeps_bytes_priorities_order_and_attributes() {
    let dir = TempDir::new("posix-msq");
    let name = unique("snap-mq");
    let options = QueueOptions {
        access: Access::ReadWrite,
        nonblocking: true,
        mode: 0o640,
        capacity: 7,
        msg_size: 300,
    };
    let q = PosixQueue::open(&name, Creation::CreateNew, &options)
        .unwrap()
        .handle;
    let q = Owned::new(q);
    let sent = [
        (1, &b"low first"[..]),
        (9, b"\xff\x00high"),
        (1, b"low second"),
        (9, b""),
        (4, &[0xab; 300][..]),
    ];
    for (p, m) in sent {
        q.send(p, m).unwrap();
    }
    let path = dir.0.join("q.jsonl");
    let (header, count) = posix_header(&name, &q).unwrap();
    let mut source = PosixSource::new(&q).unwrap();
    let saved = save_into(&mut source, (header, count), &path).unwrap();
    assert_eq!(saved.messages, 5);
    assert_eq!(q.attributes().unwrap().current_messages, 0);
    drop(source);
    let mut q = q;
    q.remove_now().unwrap();
    drop(q);

    let mut reader = open(&path).unwrap();
    reader.expect(Mechanism::PosixMsq).unwrap();
    let opened = open_posix_for_restore(&name, reader.header()).unwrap();
    assert!(opened.created);
    let q = Owned::new(opened.handle);
    let attrs = q.attributes().unwrap();
    assert_eq!((attrs.capacity, attrs.max_msg_len), (7, 300));
    assert_eq!(q.stat().unwrap().st_mode & 0o777, 0o640);
    let mut target = PosixSource::new(&q).unwrap();
    assert_eq!(restore(&mut target, &mut reader).unwrap().messages, 5);
    let got = drain(&mut target);
    // mq_receive order: priority first, then arrival.
    let want: Vec<Message> = [sent[1], sent[3], sent[4], sent[0], sent[2]]
        .iter()
        .map(|&(p, m)| Message {
            tag: Tag::Priority(p),
            bytes: m.to_vec(),
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn sysv_queue_round_trip_and_keep_leave_types_and_order() {
    let dir = TempDir::new("sysv-msq");
    let q = Owned::new(SysvQueue::private(0o620).unwrap());
    q.set_qbytes(5000).unwrap();
    let sent = msgs();
    let mut source = SysvSource::new(*q);
    for m in &sent {
        source.put(m).unwrap();
    }
    // --keep: copies, the queue stays as it is.
    match peek_all(*q) {
        Ok(copies) => assert_eq!(copies, sent),
        Err(Errno::ENOSYS) => {}
        Err(e) => panic!("peek_all: {e}"),
    }
    assert_eq!(q.stat().unwrap().qnum, 5);

    let path = dir.0.join("q.jsonl");
    let (header, count) = sysv_header(*q).unwrap();
    assert_eq!(header.key, Some(0));
    save_into(&mut source, (header, count), &path).unwrap();
    assert_eq!(q.stat().unwrap().qnum, 0);
    let (h, body) = read_all(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(h.qbytes, Some(5000));
    assert_eq!(h.mode, 0o620);
    assert_eq!(body, Body::Messages(sent.clone()));

    // Restore into a new queue: qbytes and mode as saved.
    let new = Owned::new(SysvQueue::private(0o600).unwrap());
    let mut reader = open(&path).unwrap();
    let mut target = SysvSource::new(*new);
    restore(&mut target, &mut reader).unwrap();
    let got = drain(&mut target);
    assert_eq!(got, sent);
}

#[test]
fn sysv_restore_creates_with_the_saved_qbytes_and_mode() {
    let mut h = header();
    h.qbytes = Some(4321);
    h.mode = 0o604;
    // An unused key: derived from our pid, checked free.
    let key = crate::ipc::sysv::free_key::<crate::ipc::sysv_msq::Msq>(std::process::id() ^ 0x5a5a);
    let opened = open_sysv_for_restore(key, &h).unwrap();
    let q = Owned::new(opened.handle);
    assert!(opened.created);
    let st = q.stat().unwrap();
    assert_eq!((st.qbytes, st.perm.mode & 0o777), (4321, 0o604));
    let again = open_sysv_for_restore(key, &h).unwrap();
    assert!(!again.created);
    assert_eq!(again.handle.id(), q.id());
}

#[test]
fn saving_into_an_unwritable_place_loses_nothing() {
    let q = Owned::new(SysvQueue::private(0o600).unwrap());
    let mut source = SysvSource::new(*q);
    for m in msgs() {
        source.put(&m).unwrap();
    }
    let dir = TempDir::new("unwritable");
    // A directory in the way of the rename: the failure comes at commit,
    // after every message was taken and written.
    let blocked = dir.0.join("taken");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("f"), "x").unwrap();
    let (header, count) = sysv_header(*q).unwrap();
    let e = save_into(&mut source, (header, count), &blocked).unwrap_err();
    assert!(e.stranded.is_empty(), "{e}");
    assert_eq!(drain(&mut source), msgs());
    assert_eq!(dir.entries(), ["taken"]);
}

/// Every message `source` holds, taken in its order.
fn drain(source: &mut impl QueueSource) -> Vec<Message> {
    let mut got = Vec::new();
    while let Some(m) = source.take().unwrap() {
        got.push(m);
    }
    got
}

/// Save all `count` messages of `source` into a new file at `path`.
fn save_into(
    source: &mut impl QueueSource,
    (header, count): (Header, u64),
    path: &std::path::Path,
) -> Result<Saved, SaveError> {
    save_queue(
        source,
        header,
        AtomicFile::create(path).unwrap(),
        count,
        &never,
    )
}
