//! `AtomicFile`: FILE appears whole and durable, or not at all.
//!
//! The lines go to a temporary file in FILE's directory (so the rename
//! cannot cross file systems), created exclusively and readable by the
//! owner only (a snapshot holds other programs' data). `commit` flushes,
//! fsyncs the file, renames it over FILE and fsyncs the directory, so that
//! success means the file survives a crash; a save reports success only
//! after that. A writer dropped without `commit` (an error on the way)
//! removes its temporary file, and FILE is as it was.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A writer whose output only counts once committed. The savers write
/// through it, so a test can fail a write or the commit.
pub trait Commit: Write {
    /// Make what was written durable and visible.
    ///
    /// # Errors
    /// The flush, fsync or rename error; nothing is visible then.
    fn commit(self) -> io::Result<()>;

    /// Discard everything written so far, to write the file again.
    ///
    /// # Errors
    /// The flush, truncate or seek error.
    fn restart(&mut self) -> io::Result<()>;
}

/// Buffered lines to a temporary file, renamed over the target on commit.
pub struct AtomicFile {
    out: Option<BufWriter<File>>,
    temp: PathBuf,
    target: PathBuf,
    /// Commit fails when the target exists (see [`AtomicFile::create_new`]).
    no_replace: bool,
}

/// Numbers the temporary files of one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The directory a rename into `path` needs synced: its parent, or `.`.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

impl AtomicFile {
    /// Create `.NAME.PID.N.tmp` next to `target`, exclusively, mode 0600.
    ///
    /// # Errors
    /// The create error: ENOENT (no such directory), EACCES (not
    /// writable), EROFS, ENOSPC; EISDIR-like InvalidInput when `target`
    /// names no file.
    pub fn create(target: &Path) -> io::Result<AtomicFile> {
        // `dir/` names a directory: file_name() would give `dir`, and the
        // temporary file would go beside it, to fail only at commit.
        let trailing_slash = target.as_os_str().as_encoded_bytes().ends_with(b"/");
        let name = target.file_name().filter(|_| !trailing_slash);
        let Some(name) = name else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path names no file",
            ));
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.{n}.tmp", std::process::id()));
        let temp = dir_of(target).join(temp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        Ok(AtomicFile {
            out: Some(BufWriter::with_capacity(256 * 1024, file)),
            temp,
            target: target.to_path_buf(),
            no_replace: false,
        })
    }

    /// As [`AtomicFile::create`], but the commit never replaces a file:
    /// it links the temporary file to the target, which fails with
    /// AlreadyExists when something is there, even if it appeared after
    /// this call (a check alone would race with it).
    ///
    /// # Errors
    /// As for [`AtomicFile::create`].
    pub fn create_new(target: &Path) -> io::Result<AtomicFile> {
        let mut f = AtomicFile::create(target)?;
        f.no_replace = true;
        Ok(f)
    }

    fn out(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("the snapshot file was already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out()?.flush()
    }
}

impl Commit for AtomicFile {
    /// Flush, `fsync` the file, `rename` it over the target, `fsync` the
    /// directory.
    fn commit(mut self) -> io::Result<()> {
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("committed twice"))?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        if self.no_replace {
            fs::hard_link(&self.temp, &self.target)?;
            // The target holds the data now: failing here would put a
            // save's messages back while the file has them too. A
            // temporary name left behind is only clutter.
            let _ = fs::remove_file(&self.temp);
        } else {
            fs::rename(&self.temp, &self.target)?;
        }
        // From here the temporary name is gone: nothing for Drop to remove.
        self.temp = PathBuf::new();
        File::open(dir_of(&self.target))?.sync_all()
    }

    /// Flush, truncate the temporary file to 0 and write from its start.
    fn restart(&mut self) -> io::Result<()> {
        use std::io::{Seek as _, SeekFrom};
        let out = self.out()?;
        out.flush()?;
        let file = out.get_mut();
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            // Uncommitted: the partial file must not stay. Nothing to
            // report to here; the caller already has the error that
            // brought it here.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::TempDir;

    #[test]
    fn commit_replaces_the_target_and_a_drop_leaves_it_alone() {
        let dir = TempDir::new("atomic");
        let target = dir.0.join("snap.jsonl");
        fs::write(&target, "old\n").unwrap();
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(fs::read_to_string(&target).unwrap(), "old\n");
        assert_eq!(dir.entries(), ["snap.jsonl"]);
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"new\n").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
        assert_eq!(dir.entries(), ["snap.jsonl"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn create_new_never_replaces_even_a_file_that_appears_late() {
        let dir = TempDir::new("atomic-new");
        let target = dir.0.join("snap.jsonl");
        let mut f = AtomicFile::create_new(&target).unwrap();
        f.write_all(b"new\n").unwrap();
        fs::write(&target, "earlier\n").unwrap();
        let err = f.commit().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&target).unwrap(), "earlier\n");
        assert_eq!(dir.entries(), ["snap.jsonl"]);
        fs::remove_file(&target).unwrap();
        let mut f = AtomicFile::create_new(&target).unwrap();
        f.write_all(b"new\n").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
        assert_eq!(dir.entries(), ["snap.jsonl"]);
    }

    #[test]
    fn bad_targets_fail_before_or_at_commit_and_leave_nothing() {
        let dir = TempDir::new("atomic-bad");
        assert!(AtomicFile::create(&dir.0.join("no/such/dir/f")).is_err());
        assert!(AtomicFile::create(Path::new("/")).is_err());
        assert!(AtomicFile::create(&dir.0.join("sub/")).is_err());
        // A directory in the way: the rename fails, the temp file goes.
        let sub = dir.0.join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("x"), "keep").unwrap();
        let mut f = AtomicFile::create(&sub).unwrap();
        f.write_all(b"data\n").unwrap();
        assert!(f.commit().is_err());
        assert_eq!(dir.entries(), ["sub"]);
        assert_eq!(fs::read_to_string(sub.join("x")).unwrap(), "keep");
    }
}
