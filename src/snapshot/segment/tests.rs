use super::*;
use crate::ipc::sysv::IPC_PRIVATE;
use crate::snapshot::file::AtomicFile;
use crate::snapshot::open;
use crate::snapshot::tests::TempDir;

/// Bytes with runs of zeros, text and binary, over several chunks.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| match (i / 10_000) % 3 {
            0 => 0,
            1 => b"text "[i % 5],
            _ => (i * 31 % 251) as u8,
        })
        .collect()
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("/eipc-test-{}-unit-{tag}-{n}", std::process::id())
}

fn read_posix(shm: &PosixShm) -> Vec<u8> {
    let mut seg = PosixSegment::new(shm).unwrap();
    let mut back = vec![0; seg.size as usize];
    assert_eq!(
        SegmentSource::read_at(&mut seg, &mut back, 0).unwrap(),
        back.len()
    );
    back
}

#[test]
fn posix_segment_round_trip_recreates_size_mode_and_bytes() {
    let dir = TempDir::new("posix-shm");
    let name = unique("snap-shm");
    let data = pattern(3 * CHUNK + 1234);
    let shm = PosixShm::open(&name, Creation::CreateNew, 0o604)
        .unwrap()
        .handle;
    let mut shm = Owned::new(shm);
    shm.allocate(data.len() as u64).unwrap();
    shm.write_all_at(&data, 0).unwrap();
    let path = dir.0.join("s.jsonl");
    let header = posix_header(&name, &shm).unwrap();
    let mut source = PosixSegment::new(&shm).unwrap();
    let saved = save(&mut source, header, AtomicFile::create(&path).unwrap()).unwrap();
    assert_eq!(saved.bytes, data.len() as u64);
    shm.remove_now().unwrap();
    drop(shm);

    // A whole pass first, as a restore does before it changes anything.
    assert_eq!(
        open(&path).unwrap().check_to_end().unwrap().size,
        Some(data.len() as u64)
    );
    let mut reader = open(&path).unwrap();
    let opened = open_posix_for_restore(&name, reader.header()).unwrap();
    assert!(opened.created);
    let shm = Owned::new(opened.handle);
    assert_eq!(shm.stat().unwrap().st_mode & 0o777, 0o604);
    let mut target = PosixSegment::new(&shm).unwrap();
    assert_eq!(
        restore(&mut target, &mut reader, true).unwrap(),
        data.len() as u64
    );
    assert_eq!(read_posix(&shm), data);

    // Over an existing segment of the same size whose bytes changed: the
    // zero runs are written too.
    shm.write_all_at(&[0x55; 20_000], 0).unwrap();
    let mut reader = open(&path).unwrap();
    let opened = open_posix_for_restore(&name, reader.header()).unwrap();
    assert!(!opened.created);
    let mut target = PosixSegment::new(&opened.handle).unwrap();
    restore(&mut target, &mut reader, false).unwrap();
    assert_eq!(read_posix(&shm), data);

    // Another size is refused before anything is written.
    shm.allocate(data.len() as u64 + 1).unwrap();
    let mut reader = open(&path).unwrap();
    let mut target = PosixSegment::new(&shm).unwrap();
    shm.write_all_at(b"kept", 0).unwrap();
    let e = restore(&mut target, &mut reader, false).unwrap_err();
    assert_eq!(e.sent, 0);
    assert!(e.to_string().contains("a restore does not resize"), "{e}");
    assert_eq!(&read_posix(&shm)[..4], b"kept");
}

/// A segment that shrinks while it is saved.
struct Shrinking(u64);

impl SegmentSource for Shrinking {
    fn size(&self) -> u64 {
        self.0
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let end = (self.0 / 2).saturating_sub(offset);
        let n = (buf.len() as u64).min(end) as usize;
        buf[..n].fill(1);
        Ok(n)
    }
}

#[test]
fn a_segment_shrinking_during_the_save_fails_it_and_leaves_no_file() {
    let dir = TempDir::new("shrink");
    let path = dir.0.join("s.jsonl");
    let header = Header::new(
        Origin::Name("/s".into()),
        Attrs::Segment { size: 0 },
        0o600,
        0,
        0,
    );
    let mut source = Shrinking(4 * CHUNK as u64);
    let e = save(&mut source, header, AtomicFile::create(&path).unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the segment shrank from {} to {} bytes while it was saved",
            4 * CHUNK,
            2 * CHUNK
        )
    );
    assert!(dir.entries().is_empty());
}

#[test]
fn sysv_segment_round_trip_through_attachments() {
    let dir = TempDir::new("sysv-shm");
    let data = pattern(2 * CHUNK + 77);
    let seg = SysvSegment::open(IPC_PRIVATE, Creation::CreateNew, data.len(), 0o640).unwrap();
    let seg = Owned::new(seg.handle);
    seg.write_all_at(&data, 0).unwrap();
    let path = dir.0.join("s.jsonl");
    let header = sysv_header(*seg).unwrap();
    assert_eq!(header.size, Some(data.len() as u64));
    let mut source = SysvAttachment::new(*seg, false).unwrap();
    save(&mut source, header, AtomicFile::create(&path).unwrap()).unwrap();
    drop(source);
    assert_eq!(seg.stat().unwrap().nattch, 0);

    // Into an existing segment of that size, full of other bytes.
    let other = SysvSegment::open(IPC_PRIVATE, Creation::CreateNew, data.len(), 0o600).unwrap();
    let other = Owned::new(other.handle);
    other.write_all_at(&vec![0xee; data.len()], 0).unwrap();
    let mut reader = open(&path).unwrap();
    assert_eq!(reader.header().mode, 0o640);
    let mut target = SysvAttachment::new(*other, true).unwrap();
    restore(&mut target, &mut reader, false).unwrap();
    drop(target);
    assert_eq!(other.read_all().unwrap(), data);

    // A read-only attachment refuses the writes.
    let mut reader = open(&path).unwrap();
    let mut target = SysvAttachment::new(*other, false).unwrap();
    assert!(restore(&mut target, &mut reader, false).is_err());
}

#[test]
fn sysv_restore_creates_a_missing_segment_with_the_saved_size_and_mode() {
    let key = crate::ipc::sysv::free_key::<crate::ipc::sysv_shm::Shm>(std::process::id() ^ 0x3c3c);
    let header = Header::new(Origin::Key(key), Attrs::Segment { size: 5000 }, 0o604, 0, 0);
    let opened = open_sysv_for_restore(key, &header).unwrap();
    let seg = Owned::new(opened.handle);
    assert!(opened.created);
    let st = seg.stat().unwrap();
    assert_eq!((st.size, st.perm.mode & 0o777), (5000, 0o604));
}
