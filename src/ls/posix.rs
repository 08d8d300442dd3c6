//! POSIX objects: files in /dev/shm (segments and `sem.*` semaphores) and
//! queues in the mqueue filesystem (listed by `mqfs`).
//!
//! Nothing here maps a file or takes a semaphore: a semaphore's value is read
//! with `pread` from the file and checked as `posix sem` checks it
//! (`ipc::semfile`), so an empty, truncated or garbage `sem.*` file is
//! reported, never a SIGBUS, and `ls` never shows up as a user itself.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::record::{PosixMsq, PosixSem, PosixShm, Time};
use super::{Fields, Object, Scan};
use crate::ipc::semfile::{Invalid, SEM_T_SIZE, SemFile, SemWord};
use crate::mqfs;

pub const SHM_DIR: &str = "/dev/shm";

/// Segments and semaphores in /dev/shm, or in `at` (another mount
/// namespace's, through /proc/PID/root/dev/shm).
pub fn scan_shm_dir(scan: &mut Scan, at: Option<&Path>, want_shm: bool, want_sem: bool) {
    let path = at.unwrap_or(Path::new(SHM_DIR));
    let dir = match fs::read_dir(path) {
        Ok(dir) => dir,
        Err(e) => {
            scan.notes
                .push(format!("cannot read {}: {e}", path.display()));
            return;
        }
    };
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else {
            // POSIX names are bytes; one this tool cannot print is still counted.
            scan.unreadable += 1;
            continue;
        };
        let is_sem = file.starts_with("sem.") && file.len() > 4;
        if (is_sem && !want_sem) || (!is_sem && !want_shm) {
            continue;
        }
        // A semaphore the directory lists as a regular file is opened
        // first and described by its open file: one fstat, where an lstat of
        // the path would come on top. Anything else, or a semaphore this
        // user may not open, gets the lstat.
        let sem = (is_sem && entry.file_type().is_ok_and(|t| t.is_file()))
            .then(|| open_sem(&entry.path()))
            .flatten();
        // lstat: a file removed since read_dir is simply gone, not an error.
        let meta = match sem
            .as_ref()
            .map_or_else(|| fs::symlink_metadata(entry.path()), |s| Ok(s.1.clone()))
        {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                scan.unreadable += 1;
                continue;
            }
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let (inode, mtime) = ((meta.dev(), meta.ino()), Time(meta.mtime()));
        let mut obj = if is_sem {
            let value = match &sem {
                Some((file, meta)) => file.check_as(meta),
                None => read_sem_value(&entry.path()),
            };
            let Some(mut obj) = read_sem(value, mtime, inode, &mut scan.unreadable) else {
                continue;
            };
            obj.name = Some(format!("/{}", &file[4..]));
            obj
        } else {
            let mut obj = Object::new(Fields::PosixShm(PosixShm {
                size: meta.size(),
                mtime,
                inode,
            }));
            obj.name = Some(format!("/{file}"));
            obj
        };
        obj.set_owner(meta.uid(), meta.gid(), meta.mode());
        scan.objects.push(obj);
    }
}

/// A `sem.NAME` file open for reading, and its `fstat`; None when it
/// cannot be opened (gone, or not readable by this user).
fn open_sem(path: &Path) -> Option<(SemFile, Metadata)> {
    let file = SemFile::open(path.to_str()?, false).ok()?;
    let meta = file.metadata().ok()?;
    Some((file, meta))
}

/// A `sem.NAME` file as a semaphore, from what reading it gave: its value,
/// or a note saying why there is none (one not readable is counted in
/// `unreadable`). None when the file is gone.
fn read_sem(
    read: io::Result<Result<SemWord, Invalid>>,
    mtime: Time,
    inode: (u64, u64),
    unreadable: &mut usize,
) -> Option<Object> {
    let (value, waiters, note) = match read {
        Ok(Ok(word)) => (Some(word.value), Some(word.waiters), None),
        Ok(Err(Invalid::Short(len))) => (
            None,
            None,
            Some(format!(
                "{len} bytes, shorter than a sem_t ({SEM_T_SIZE}): not a valid semaphore"
            )),
        ),
        Ok(Err(why)) => (None, None, Some(format!("not a valid semaphore: {why}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(_) => {
            *unreadable += 1;
            (None, None, Some("not readable by this user".into()))
        }
    };
    let mut obj = Object::new(Fields::PosixSem(PosixSem {
        value,
        waiters,
        mtime,
        inode,
    }));
    obj.note = note;
    Some(obj)
}

/// The value and waiters of a glibc semaphore file, read (not mapped) and
/// checked as the semaphore commands check it before they map it.
fn read_sem_value(path: &Path) -> io::Result<Result<SemWord, Invalid>> {
    let path = path.to_str().ok_or(io::ErrorKind::InvalidInput)?;
    SemFile::open(path, false)?.check()
}

/// The queues a listing found, as objects; or the note saying why none.
pub fn add_queues(listed: Result<mqfs::Listing, String>, scan: &mut Scan) {
    let listing = match listed {
        Ok(listing) => listing,
        Err(note) => {
            scan.mq_note = Some(note);
            return;
        }
    };
    scan.mq_source = Some(listing.source);
    scan.objects.reserve(listing.queues.len());
    for e in listing.queues {
        let attr = e.attr;
        let mut obj = Object::new(Fields::PosixMsq(PosixMsq {
            maxmsg: attr.map(|a| a.maxmsg),
            msgsize: attr.map(|a| a.msgsize),
            curmsgs: attr.map(|a| a.curmsgs),
            bytes: e.qsize,
            mtime: Time(e.mtime),
            dev: e.dev,
            notify_pid: e.notify_pid.filter(|p| *p > 0),
            file: e.name.clone(),
        }));
        obj.name = Some(format!("/{}", e.name));
        obj.set_owner(e.uid, e.gid, e.mode);
        if attr.is_none() {
            scan.unreadable += 1;
            obj.note = Some("not readable by this user: maxmsg and msgsize unknown".into());
        }
        scan.objects.push(obj);
    }
}
