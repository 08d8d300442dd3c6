//! The /proc/sysvipc tables (`msg`, `shm`, `sem`), read once here for
//! `ls` and `limits`: a header line naming the columns, then one line per
//! object, columns separated by blanks.

use std::io;

/// The text of /proc/sysvipc/`file`.
///
/// # Errors
/// The read error: ENOENT on a kernel without System V IPC.
pub fn read_sysvipc(file: &str) -> io::Result<String> {
    std::fs::read_to_string(sysvipc_path(file))
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
}
