//! The `ls` table: columns, cells, alignment, `--raw`, the summary and
//! the notes below it.

use std::fmt::Write as _;

use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;

use super::record::{PosixSem, SysvSem};
use super::{Fields, ListOptions, MqSource, NsScope, Object, Scan, State};
use crate::error::usage;
use crate::output::{Escaped, Out, escape, human, or_unknown, plural};

/// A column of the `ls` table. The doc line of each is what --list-columns
/// prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Column {
    /// Kind of object: posix-msq, posix-shm, posix-sem, sysv-msq, sysv-shm, sysv-sem
    #[value(name = "TYPE")]
    Type,
    /// POSIX name or System V key, as the object is addressed
    #[value(name = "NAME/KEY")]
    NameKey,
    /// POSIX name (- for System V objects)
    #[value(name = "NAME")]
    Name,
    /// System V key as ipcs prints it (- for POSIX objects)
    #[value(name = "KEY")]
    Key,
    /// System V identifier (- for POSIX objects)
    #[value(name = "ID")]
    Id,
    /// Owner's user name (the uid when it has none)
    #[value(name = "OWNER")]
    Owner,
    /// Owner's user id
    #[value(name = "UID")]
    Uid,
    /// Group name (the gid when it has none)
    #[value(name = "GROUP")]
    Group,
    /// Group id
    #[value(name = "GID")]
    Gid,
    /// Permission bits, octal
    #[value(name = "PERMS")]
    Perms,
    /// Segment size, or bytes queued in a message queue (human-readable unless --bytes)
    #[value(name = "SIZE")]
    Size,
    /// in use, orphaned, or unknown (some processes or the object not readable)
    #[value(name = "STATE")]
    State,
    /// Live processes using the object: pid/command(how), at most three
    #[value(name = "USERS")]
    Users,
    /// What matters most for the kind: messages, semaphore values, nattch, notes
    #[value(name = "DETAIL")]
    Detail,
    /// IPC namespace (with -A): inode/pid inside, and the container its cgroup names
    #[value(name = "NAMESPACE")]
    Namespace,
}

impl Column {
    /// The table's columns when --output is not given.
    pub const DEFAULT: [Column; 9] = [
        Column::Type,
        Column::NameKey,
        Column::Id,
        Column::Owner,
        Column::Perms,
        Column::Size,
        Column::State,
        Column::Users,
        Column::Detail,
    ];
}

/// One line of `--list-columns`.
#[derive(Serialize)]
struct ColumnInfo {
    name: String,
    description: String,
}

/// `--list-columns`: each column's name and one line about it.
pub(super) fn list_columns(out: &mut Out) -> Result<()> {
    let columns: Vec<ColumnInfo> = Column::value_variants()
        .iter()
        .map(|&c| ColumnInfo {
            name: header(c),
            description: about(c),
        })
        .collect();
    if out.is_json() {
        out.record("", || &columns)?;
    } else {
        let width = columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for ColumnInfo { name, description } in &columns {
            out.record(format_args!("{name:width$}  {description}"), || ())?;
        }
    }
    Ok(())
}

/// The name of a column, as the header shows it and --output takes it.
fn header(col: Column) -> String {
    col.to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

fn about(col: Column) -> String {
    col.to_possible_value()
        .and_then(|v| v.get_help().map(ToString::to_string))
        .unwrap_or_default()
}

/// How the text table is printed.
pub(super) struct Layout {
    columns: Vec<Column>,
    headings: bool,
    raw: bool,
    bytes: bool,
}

impl Layout {
    pub(super) fn resolve(opts: &ListOptions, json: bool) -> Result<Layout> {
        if json {
            // The JSON document is the same whatever the table looks like:
            // an option that would be ignored is refused instead.
            let given = [
                (!opts.columns.is_empty(), "--output"),
                (!opts.headings, "--noheadings"),
                (opts.raw, "--raw"),
            ];
            if let Some((_, flag)) = given.iter().find(|(on, _)| *on) {
                return Err(usage(format!(
                    "{flag} shapes the text table; the --json document always has every field"
                )));
            }
        }
        let columns = if opts.columns.is_empty() && opts.namespaces != NsScope::Current {
            std::iter::once(Column::Namespace)
                .chain(Column::DEFAULT)
                .collect()
        } else if opts.columns.is_empty() {
            Column::DEFAULT.to_vec()
        } else {
            opts.columns.clone()
        };
        Ok(Layout {
            columns,
            headings: opts.headings,
            raw: opts.raw,
            bytes: opts.bytes,
        })
    }

    /// The table for people: header, aligned rows, summary and notes.
    pub(super) fn plain(&self) -> bool {
        self.headings && !self.raw
    }
}

/// The DETAIL column: what matters most for each kind, then the note.
fn detail(obj: &Object, bytes: bool) -> String {
    let mut s = match &obj.fields {
        Fields::PosixMsq(q) => format!(
            "{}/{} msgs, msgsize {}",
            or_unknown(q.curmsgs),
            or_unknown(q.maxmsg),
            or_unknown(q.msgsize)
        ),
        Fields::PosixShm(_) => String::new(),
        Fields::PosixSem(PosixSem {
            value: Some(v),
            waiters,
            ..
        }) => match waiters.unwrap_or(0) {
            0 => format!("value {v}"),
            w => format!("value {v}, {w} waiting"),
        },
        Fields::PosixSem(_) => String::new(),
        Fields::SysvMsq(q) => format!(
            "{}, qbytes {}",
            match q.qnum.and_then(|n| u64::try_from(n).ok()) {
                Some(n) => plural(n, "msg", "msgs"),
                None => format!("{} msgs", or_unknown(q.qnum)),
            },
            q.qbytes.map_or_else(|| "?".into(), |b| size(b, bytes))
        ),
        Fields::SysvShm(s) => format!("nattch {}", or_unknown(s.nattch)),
        Fields::SysvSem(SysvSem {
            values: Some(values),
            ..
        }) => {
            let list: Vec<String> = values.iter().map(u16::to_string).collect();
            format!("values {}", list.join(","))
        }
        Fields::SysvSem(s) => format!("nsems {}", s.nsems),
    };
    if let Some(note) = &obj.note {
        if !s.is_empty() {
            s.push_str("; ");
        }
        s.push_str(note);
    }
    s
}

/// Bytes: exact with `--bytes`, else human-readable.
fn size(b: u64, bytes: bool) -> String {
    if bytes { b.to_string() } else { human(b) }
}

fn users_cell(obj: &Object) -> String {
    const SHOWN: usize = 3;
    let mut s: Vec<String> = obj
        .users
        .iter()
        .take(SHOWN)
        .map(|u| format!("{}/{}({})", u.pid, u.command, u.how))
        .collect();
    if obj.users.len() > SHOWN {
        s.push(format!("+{} more", obj.users.len() - SHOWN));
    }
    if s.is_empty() {
        "-".into()
    } else {
        s.join(" ")
    }
}

/// One cell, before escaping.
fn cell(col: Column, o: &Object, bytes: bool) -> String {
    let absent = || "-".to_string();
    match col {
        Column::Type => o.kind.mechanism().into(),
        Column::NameKey => o.name.clone().or_else(|| o.key_hex()).unwrap_or_default(),
        Column::Name => o.name.clone().unwrap_or_else(absent),
        Column::Key => o.key_hex().unwrap_or_else(absent),
        Column::Id => o.id.map_or_else(absent, |i| i.to_string()),
        Column::Owner => o.owner.clone(),
        Column::Uid => o.uid.to_string(),
        Column::Group => o.group.clone(),
        Column::Gid => o.gid.to_string(),
        Column::Perms => format!("{:04o}", o.perms),
        Column::Size => o.size().map_or_else(absent, |b| size(b, bytes)),
        Column::State => o.state.text().into(),
        Column::Users => users_cell(o),
        Column::Detail => detail(o, bytes),
        Column::Namespace => o.namespace.as_ref().map_or_else(absent, |n| n.text()),
    }
}

/// Numbers are right-aligned, text left-aligned.
fn right_aligned(col: Column) -> bool {
    matches!(col, Column::Id | Column::Uid | Column::Gid | Column::Size)
}

/// A value as `--raw` prints it, as `lsipc --raw` does: one field without
/// blanks, so rows split on single spaces. Spaces, backslashes (so that
/// `\xNN` reads back one way) and control characters are written `\xNN`,
/// a byte each; other text, non-ASCII too, is kept. An empty value is an
/// empty field.
fn raw_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch == ' ' || ch == '\\' || ch.is_control() {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{b:02x}");
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// The header and rows: aligned, or `--raw`.
pub(super) fn table(scan: &Scan, layout: &Layout) -> String {
    let cols = &layout.columns;
    let header: Vec<String> = cols.iter().map(|&c| header(c)).collect();
    let rows: Vec<Vec<String>> = scan
        .objects
        .iter()
        .map(|o| {
            cols.iter()
                .map(|&c| {
                    let cell = cell(c, o, layout.bytes);
                    // Names, commands, notes: every cell is escaped here,
                    // once, so none can break the table or reach the
                    // terminal as a control sequence, and the widths count
                    // what is printed.
                    if layout.raw {
                        raw_cell(&cell)
                    } else {
                        escape(&cell).into_owned()
                    }
                })
                .collect()
        })
        .collect();
    let mut s = String::new();
    let shown = layout.headings.then_some(&header).into_iter();
    if layout.raw {
        for row in shown.chain(&rows) {
            s.push_str(&row.join(" "));
            s.push('\n');
        }
        return s;
    }
    let mut width: Vec<usize> = vec![0; cols.len()];
    for row in shown.clone().chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in shown.chain(&rows) {
        let mut l = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = width[i].saturating_sub(cell.chars().count());
            if right_aligned(cols[i]) {
                let _ = write!(l, "{}{cell}", " ".repeat(pad));
            } else if i + 1 == row.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell}{}", " ".repeat(pad));
            }
            if i + 1 < row.len() {
                l.push_str("  ");
            }
        }
        // No trailing blanks.
        s.push_str(l.trim_end());
        s.push('\n');
    }
    s
}

/// The summary line and the notes below the table.
pub(super) fn footer(scan: &Scan) -> String {
    let count = |state| scan.objects.iter().filter(|o| o.state == state).count();
    let (orphaned, unknown) = (count(State::Orphaned), count(State::Unknown));
    let mut s = format!(
        "{}, {orphaned} orphaned",
        plural(scan.objects.len(), "object", "objects")
    );
    if unknown > 0 {
        let _ = write!(s, ", {unknown} unknown");
    }
    s.push('\n');
    for note in notes(scan) {
        s.push_str(&note);
        s.push('\n');
    }
    s
}

/// What the user should know about the scan itself, one line each, escaped.
pub(super) fn notes(scan: &Scan) -> Vec<String> {
    let mut notes = Vec::new();
    if scan.hidden_matter {
        notes.push(format!(
            "{} not readable by this user: their use of objects is unknown (run as root to see every user)",
            plural(scan.hidden_procs.len(), "process", "processes")
        ));
    } else if !scan.hidden_procs.is_empty() {
        let list: Vec<String> = scan
            .hidden_procs
            .iter()
            .map(|p| format!("{}/{}", p.pid, Escaped(&p.command)))
            .collect();
        notes.push(format!(
            "not readable even by root (not counted as users): {}",
            list.join(" ")
        ));
    }
    if let Some(MqSource::Private) = scan.mq_source {
        notes.push(
            "POSIX queues listed through a private mount namespace (/dev/mqueue is not mounted)"
                .into(),
        );
    }
    if let Some(note) = &scan.mq_note {
        notes.push(Escaped(note).to_string());
    }
    if scan.unreadable > 0 {
        notes.push(format!(
            "{} not readable by this user",
            plural(scan.unreadable, "object", "objects")
        ));
    }
    for note in &scan.notes {
        notes.push(Escaped(note).to_string());
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_cells_have_no_blanks_and_read_back_one_way() {
        assert_eq!(raw_cell("in use"), "in\\x20use");
        assert_eq!(raw_cell("a\\x20b"), "a\\x5cx20b");
        assert_eq!(raw_cell("tab\there\nnl"), "tab\\x09here\\x0anl");
        // C1 controls are two bytes in UTF-8; other non-ASCII text is kept.
        assert_eq!(raw_cell("\u{85}é"), "\\xc2\\x85é");
        assert_eq!(raw_cell(""), "");
        assert_eq!(raw_cell("/q-1"), "/q-1");
    }

    #[test]
    fn header_names_are_the_clap_names() {
        let names: Vec<String> = Column::DEFAULT.iter().map(|&c| header(c)).collect();
        assert_eq!(
            names,
            [
                "TYPE", "NAME/KEY", "ID", "OWNER", "PERMS", "SIZE", "STATE", "USERS", "DETAIL"
            ]
        );
    }
}
