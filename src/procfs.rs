//! The /proc/sysvipc tables (`msg`, `shm`, `sem`), read once here for
//! `ls` and `limits`: a header line naming the columns, then one line per
//! object, columns separated by blanks.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The text of /proc/sysvipc/`file`.
///
/// # Errors
/// The read error: ENOENT on a kernel without System V IPC.
pub fn read_sysvipc(file: &str) -> io::Result<String> {
    // A table of hundreds of rows: fs::read_to_string would start from a
    // 32-byte probe and double its reads, a dozen system calls.
    let mut buf = Vec::new();
    let len = fill(&mut File::open(sysvipc_path(file))?, &mut buf)?;
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The whole of the file at `path` as text, read into `buf`, whose
/// allocation is kept for the next file. /proc files report a size of 0, so
/// `fs::read_to_string` spends an fstat, an lseek and a small probe read
/// on each; `ls` reads hundreds of them.
///
/// # Errors
/// The open or read error; InvalidData when the text is not UTF-8 (as
/// `fs::read_to_string`).
pub fn read_into<'b>(path: &Path, buf: &'b mut Vec<u8>) -> io::Result<&'b str> {
    read_all(&mut File::open(path)?, buf)
}

/// The rest of an open file (any reader) as text, into `buf` as
/// [`read_into`] does.
///
/// # Errors
/// As [`read_into`].
pub fn read_all<'b>(file: &mut impl Read, buf: &'b mut Vec<u8>) -> io::Result<&'b str> {
    let len = fill(file, buf)?;
    std::str::from_utf8(&buf[..len]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads to the end into `buf` from its start, growing it; the length read.
fn fill(file: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    // Kept zeroed up to its length, so reads go straight into it.
    if buf.len() < 16 * 1024 {
        buf.resize(16 * 1024, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// `/proc/sysvipc/FILE`, for messages.
pub fn sysvipc_path(file: &str) -> String {
    format!("/proc/sysvipc/{file}")
}

/// A parsed table, borrowing its text.
pub struct Table<'t> {
    header: Vec<&'t str>,
    lines: Vec<&'t str>,
}

/// One object's line, its columns found by header name.
pub struct Row<'a> {
    header: &'a [&'a str],
    cols: Vec<&'a str>,
}

impl<'t> Table<'t> {
    /// The header line and the data lines of `text` (an empty text is an
    /// empty table).
    pub fn parse(text: &'t str) -> Table<'t> {
        let mut lines = text.lines();
        let header = lines
            .next()
            .map(|h| h.split_ascii_whitespace().collect())
            .unwrap_or_default();
        Table {
            header,
            lines: lines.collect(),
        }
    }

    /// The number of objects (data lines).
    pub fn len(&self) -> u64 {
        self.lines.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.lines.iter().map(|l| Row {
            header: &self.header,
            cols: l.split_ascii_whitespace().collect(),
        })
    }

    /// The values of one column, lines where it does not parse (or a
    /// table without that column) left out.
    pub fn column_u64(&self, name: &str) -> Vec<u64> {
        self.rows()
            .filter_map(|r| r.text(name)?.parse().ok())
            .collect()
    }
}

impl Row<'_> {
    /// The column `name` as it stands.
    pub fn text(&self, name: &str) -> Option<&str> {
        let i = self.header.iter().position(|h| *h == name)?;
        self.cols.get(i).copied()
    }

    /// The column `name` as a decimal number.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.text(name)?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_by_name() {
        let text = "       key      msqid perms      cbytes       qnum\n\
                    200 3 644 10 1\n\
                    201 4 600 x 2\n";
        let t = Table::parse(text);
        assert_eq!(t.len(), 2);
        let rows: Vec<Row> = t.rows().collect();
        assert_eq!(rows[0].get("msqid"), Some(3));
        assert_eq!(rows[0].text("perms"), Some("644"));
        assert_eq!(rows[1].get("cbytes"), None);
        assert_eq!(t.column_u64("cbytes"), vec![10]);
        assert!(t.column_u64("nothing").is_empty());
        assert_eq!(Table::parse("").len(), 0);
    }

    /// Hands out at most 1000 bytes a read, and EINTR before the first.
    struct Chunks<'a>(&'a [u8], bool);

    impl Read for Chunks<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if !self.1 {
                self.1 = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.0.len().min(out.len()).min(1000);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_all_grows_and_reuses() {
        let text = "x".repeat(40_000) + "\n";
        let mut buf = Vec::new();
        let got = read_all(&mut Chunks(text.as_bytes(), false), &mut buf);
        assert_eq!(got.unwrap(), text);
        // A shorter text after a longer one: nothing of the first is left.
        let got = read_all(&mut Chunks(b"ab\n", false), &mut buf);
        assert_eq!(got.unwrap(), "ab\n");
        assert_eq!(read_all(&mut &b""[..], &mut buf).unwrap(), "");
        let err = read_all(&mut &[0xffu8, 0xfe][..], &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
