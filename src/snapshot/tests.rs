use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// A private directory under the system's temporary one, removed in Drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("eipc-test-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }

    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything a snapshot holds, read through the strict reader.
#[derive(Debug, PartialEq)]
pub enum Body {
    Messages(Vec<Message>),
    Chunks(Vec<Chunk>),
}

pub fn read_all(bytes: &[u8]) -> Result<(Header, Body), SnapshotError> {
    let mut r = Reader::new(bytes)?;
    let body = if r.header().mechanism.is_queue() {
        let mut v = Vec::new();
        while let Some(m) = r.message()? {
            v.push(m);
        }
        Body::Messages(v)
    } else {
        let mut v = Vec::new();
        while let Some(c) = r.chunk()? {
            v.push(c);
        }
        Body::Chunks(v)
    };
    Ok((r.header().clone(), body))
}

fn err(bytes: &[u8]) -> String {
    match read_all(bytes) {
        Ok(x) => panic!("read {x:?}"),
        Err(e) => e.to_string(),
    }
}

pub fn queue_file(mechanism: Mechanism, msgs: &[Message]) -> Vec<u8> {
    let (origin, attrs) = match mechanism {
        Mechanism::PosixMsq => (
            Origin::Name("/q".into()),
            Attrs::PosixMsq {
                maxmsg: 10,
                msgsize: 64,
            },
        ),
        _ => (Origin::Key(0xc8), Attrs::SysvMsq { qbytes: 16384 }),
    };
    let mut h = Header::new(origin, attrs, 0o640, 1000, 100);
    h.messages = Some(msgs.len() as u64);
    let mut w = Writer::new(Vec::new(), &h).unwrap();
    for m in msgs {
        w.message(m).unwrap();
    }
    w.into_inner()
}

fn segment_file(bytes: &[u8], chunk: usize) -> Vec<u8> {
    let h = Header::new(
        Origin::Key(-5),
        Attrs::Segment {
            size: bytes.len() as u64,
        },
        0o600,
        0,
        0,
    );
    let mut w = Writer::new(Vec::new(), &h).unwrap();
    for (i, c) in bytes.chunks(chunk).enumerate() {
        w.chunk((i * chunk) as u64, c).unwrap();
    }
    w.into_inner()
}

fn sysv(t: i64, bytes: &[u8]) -> Message {
    Message {
        tag: Tag::Type(t),
        bytes: bytes.to_vec(),
    }
}

fn posix(p: u32, bytes: &[u8]) -> Message {
    Message {
        tag: Tag::Priority(p),
        bytes: bytes.to_vec(),
    }
}

#[test]
fn lines_are_as_documented() {
    let file = queue_file(
        Mechanism::SysvMsq,
        &[sysv(1, b"{\"count\":1}"), sysv(7, b"\xff\x00\x01\x02")],
    );
    let text = String::from_utf8(file.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    let header = lines[0];
    let want = r#"{"format":"examples-ipc-snapshot","version":1,"mechanism":"sysv-msq","key":"0x000000c8","qbytes":16384,"mode":"0640","uid":1000,"gid":100,"messages":2,"saved_at":"#;
    assert!(header.starts_with(want), "{header}");
    assert_eq!(lines[1], r#"{"type":1,"text":"{\"count\":1}"}"#);
    assert_eq!(lines[2], r#"{"type":7,"base64":"/wABAg=="}"#);
    let (h, body) = read_all(&file).unwrap();
    assert_eq!(h.origin(), Some(Origin::Key(0xc8)));
    assert_eq!(h.attrs(), Some(Attrs::SysvMsq { qbytes: 16384 }));
    assert_eq!(
        body,
        Body::Messages(vec![
            sysv(1, b"{\"count\":1}"),
            sysv(7, b"\xff\x00\x01\x02")
        ])
    );

    let file = queue_file(Mechanism::PosixMsq, &[posix(3, b""), posix(0, b"a\nb")]);
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(text.contains(r#""mechanism":"posix-msq","name":"/q","maxmsg":10,"msgsize":64,"#));
    assert!(
        text.contains("\n{\"priority\":3,\"text\":\"\"}\n{\"priority\":0,\"text\":\"a\\nb\"}\n")
    );
    assert_eq!(
        read_all(&file).unwrap().1,
        Body::Messages(vec![posix(3, b""), posix(0, b"a\nb")])
    );
}

#[test]
fn segments_are_contiguous_chunks_and_zero_runs() {
    let mut bytes = vec![0u8; 10];
    bytes.extend_from_slice(b"abc");
    bytes.extend(std::iter::repeat_n(0, 7));
    let file = segment_file(&bytes, 10);
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(text.contains(r#""mechanism":"sysv-shm","key":"0xfffffffb","size":20,"mode":"0600""#));
    assert!(text.contains(
        "\n{\"offset\":0,\"zeros\":10}\n{\"offset\":10,\"base64\":\"YWJjAAAAAAAAAA==\"}\n"
    ));
    let (h, body) = read_all(&file).unwrap();
    assert_eq!(h.key, Some(-5));
    let Body::Chunks(chunks) = body else {
        panic!("a segment")
    };
    let offsets: Vec<u64> = chunks.iter().map(Chunk::offset).collect();
    assert_eq!(offsets, [0, 10]);
    let mut back = Vec::new();
    for c in chunks {
        match c {
            Chunk::Zeros { len, .. } => back.extend(std::iter::repeat_n(0, len as usize)),
            Chunk::Bytes { bytes, .. } => back.extend(bytes),
        }
    }
    assert_eq!(back, bytes);
    // An empty POSIX segment: a header and nothing else.
    let h = Header::new(
        Origin::Name("/s".into()),
        Attrs::Segment { size: 0 },
        0o600,
        0,
        0,
    );
    let file = Writer::new(Vec::new(), &h).unwrap().into_inner();
    assert_eq!(read_all(&file).unwrap().1, Body::Chunks(vec![]));
}

/// Replace the first `from` in the file's text with `to`.
fn edit(file: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(file.to_vec()).unwrap();
    assert!(text.contains(from), "{from} in {text}");
    text.replacen(from, to, 1).into_bytes()
}

/// Each edit of `file` (the first `from` replaced by `to`) is refused with
/// exactly `want`.
fn assert_refused(file: &[u8], cases: &[(&str, &str, &str)]) {
    assert_refused_by(file, cases, |got, want| got == want);
}

/// Each edit of `file` is refused with an error for which `matches(error,
/// want)` holds: for errors whose tail is the parser's own wording.
fn assert_refused_by(file: &[u8], cases: &[(&str, &str, &str)], matches: fn(&str, &str) -> bool) {
    for (from, to, want) in cases {
        let got = err(&edit(file, from, to));
        assert!(
            matches(&got, want),
            "{from} -> {to}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn bad_headers_are_refused_with_their_line() {
    let good = queue_file(Mechanism::SysvMsq, &[sysv(1, b"a"), sysv(2, b"\xff")]);
    assert_eq!(err(b""), "the file is empty, not a snapshot");
    assert!(err(b"hello\n").starts_with("line 1: not JSON"));
    assert!(err(b"{\"a\":1}\n").starts_with("line 1: not a snapshot header"));
    assert_refused(
        &good,
        &[
            (
                "\"version\":1",
                "\"version\":2",
                "line 1: snapshot version 2 is not supported (this build reads version 1)",
            ),
            (
                "\"qbytes\":16384,",
                "",
                "line 1: a sysv-msq snapshot needs 'qbytes'",
            ),
            (
                "\"qbytes\":16384,",
                "\"qbytes\":1,\"size\":4,",
                "line 1: a sysv-msq snapshot has no 'size'",
            ),
            (
                "\"key\":\"0x000000c8\",",
                "",
                "line 1: a sysv-msq snapshot needs a key and no name",
            ),
        ],
    );
    let named = queue_file(Mechanism::PosixMsq, &[]);
    assert_refused(
        &named,
        &[
            (
                "\"/q\"",
                "\"/a/b\"",
                "line 1: bad name '/a/b' for posix-msq",
            ),
            ("\"/q\"", "\"/\"", "line 1: bad name '/' for posix-msq"),
        ],
    );
    assert_refused_by(
        &good,
        &[
            (
                "examples-ipc-snapshot",
                "other",
                "line 1: not an examples-ipc snapshot",
            ),
            ("sysv-msq", "sysv-sem", "unknown mechanism 'sysv-sem'"),
            ("\"0640\"", "\"0999\"", "bad mode '0999'"),
            ("\"0x000000c8\"", "\"0x1000000c8\"", "bad key"),
            ("\"gid\"", "\"extra\":1,\"gid\"", "unknown field `extra`"),
            (
                "\"gid\"",
                "\"x\\u001b[2J\":1,\"gid\"",
                "unknown field `x\\x1b[2J`",
            ),
        ],
        |got, want| got.contains(want),
    );
}

/// Every message of a queue file read with `partial`.
fn read_partial(bytes: &[u8]) -> Result<Vec<Message>, SnapshotError> {
    let mut r = Reader::new(bytes)?.partial(true);
    let mut v = Vec::new();
    while let Some(m) = r.message()? {
        v.push(m);
    }
    Ok(v)
}

#[test]
fn partial_reads_the_whole_messages_of_a_file_cut_anywhere() {
    let msgs = [sysv(1, b"one"), sysv(2, b"\xff"), sysv(3, b"three")];
    let good = queue_file(Mechanism::SysvMsq, &msgs);
    let header_end = good.iter().position(|&b| b == b'\n').unwrap() + 1;
    // Cut at every byte after the header: the lines that ended before the
    // cut are read, whole, and nothing else; no cut is an error.
    for cut in header_end..=good.len() {
        let kept = &good[..cut];
        let lines = kept[header_end..].iter().filter(|&&b| b == b'\n').count();
        // A line that lacks only its newline is whole.
        let whole = lines + usize::from(good.get(cut) == Some(&b'\n'));
        let got = read_partial(kept).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(got, msgs[..whole], "cut at {cut}");
    }
    // A bad line before the cut is still an error, and so are more lines
    // than counted.
    let bad = edit(&good, "{\"type\":2,", "{\"type\":0,");
    assert!(read_partial(&bad[..bad.len() - 2]).is_err());
    let more = edit(&good, "\"messages\":3", "\"messages\":2");
    assert!(read_partial(&more).is_err());
    // A header cut short is no snapshot.
    assert!(read_partial(&good[..header_end - 1]).is_err());
}

#[test]
fn bad_message_lines_are_refused_with_their_line() {
    let good = queue_file(Mechanism::SysvMsq, &[sysv(1, b"a"), sysv(2, b"\xff")]);
    assert_refused_by(
        &good,
        &[
            (
                "\"base64\":\"/w==\"",
                "\"base64\":\"/w=!\"",
                "line 3: bad base64",
            ),
            (
                "{\"type\":1,",
                "\n{\"type\":1,",
                "line 2: not a snapshot line",
            ),
        ],
        |got, want| got.starts_with(want),
    );
    assert_refused(
        &good,
        &[
            (
                "{\"type\":2,",
                "{\"type\":0,",
                "line 3: type 0 is not above 0",
            ),
            (
                "{\"type\":2,",
                "{\"priority\":2,",
                "line 3: a message needs 'type'",
            ),
            (
                "\"text\":\"a\"",
                "\"text\":\"a\",\"base64\":\"YQ==\"",
                "line 2: both 'text' and 'base64'",
            ),
            (
                ",\"text\":\"a\"",
                "",
                "line 2: no payload ('text' or 'base64')",
            ),
            (
                "\"messages\":2",
                "\"messages\":3",
                "truncated: the file ends after 2 whole messages of the 3 its header counts",
            ),
            (
                "\"messages\":2",
                "\"messages\":1",
                "line 3: more messages than the header's 1",
            ),
        ],
    );
    // Only the newline is missing: the line is whole, the file is not.
    assert_eq!(
        err(&good[..good.len() - 1]),
        "truncated: the file ends after 2 whole messages of the 2 its header counts, \
         in a line cut short"
    );
    assert_eq!(
        err(&good[..good.len() - 3]),
        "truncated: the file ends after 1 whole message of the 2 its header counts, \
         in a line cut short"
    );
    let posix_file = queue_file(Mechanism::PosixMsq, &[posix(1, b"x")]);
    assert_refused(
        &posix_file,
        &[(
            "\"priority\":1",
            "\"priority\":32768",
            "line 2: priority 32768 is not below 32768",
        )],
    );
}

#[test]
fn bad_segment_lines_are_refused_with_their_line() {
    let seg = segment_file(b"0123456789abcdef", 8);
    assert_refused(
        &seg,
        &[
            (
                "\"offset\":8",
                "\"offset\":9",
                "line 3: offset 9, expected 8",
            ),
            (
                "\"size\":16",
                "\"size\":12",
                "line 3: 8 bytes at offset 8 do not fit the size 12",
            ),
            (
                "\"size\":16",
                "\"size\":17",
                "truncated: the file ends at byte 16 of 17",
            ),
            (
                "{\"offset\":8,",
                "{\"offset\":8,\"zeros\":8,",
                "line 3: a segment's line needs 'base64' or 'zeros'",
            ),
            (
                "{\"offset\":8,",
                "{\"offset\":8,\"text\":\"x\",",
                "line 3: a segment's line has only 'offset' and 'base64' or 'zeros'",
            ),
        ],
    );
}

#[test]
fn the_mechanism_is_checked_against_the_command() {
    let file = queue_file(Mechanism::PosixMsq, &[]);
    let r = Reader::new(&file[..]).unwrap();
    assert!(r.expect(Mechanism::PosixMsq).is_ok());
    assert_eq!(
        r.expect(Mechanism::SysvShm).unwrap_err().to_string(),
        "line 1: a posix-msq snapshot, not one of a sysv-shm"
    );
    let mut r = Reader::new(&file[..]).unwrap();
    assert!(
        r.chunk()
            .unwrap_err()
            .to_string()
            .contains("holds no bytes")
    );
}

/// xorshift64: the same "random" cases every run, without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn every_truncation_is_an_error_and_nothing_panics() {
    let msgs = [
        sysv(1, b"hello"),
        sysv(2, b"\xff\xfe binary \x00"),
        sysv(3, "ünïcode ✓".as_bytes()),
        sysv(4, b""),
    ];
    let mut data = vec![0u8; 300];
    data[100..150].copy_from_slice(&[0xab; 50]);
    let files = [
        queue_file(Mechanism::SysvMsq, &msgs),
        queue_file(Mechanism::PosixMsq, &[posix(5, b"x"), posix(1, b"\x80")]),
        segment_file(&data, 96),
    ];
    for file in &files {
        assert!(read_all(file).is_ok());
        for len in 0..file.len() {
            assert!(
                read_all(&file[..len]).is_err(),
                "a file cut at byte {len} of {} was read as whole",
                file.len()
            );
        }
    }
    // Flipped bytes, inserted and deleted ones: an error or a result,
    // never a panic.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let mut f = files[rng.below(files.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(f.len());
            match rng.below(3) {
                0 => f[at] = rng.next() as u8,
                1 => f.insert(at, b"{}\",:0\n\\"[rng.below(8)]),
                _ => {
                    f.remove(at);
                }
            }
        }
        let _ = read_all(&f);
    }
}
