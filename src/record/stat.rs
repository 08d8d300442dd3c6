//! `--stat`: one renderer for the six kinds. A stat is a [`PosixStat`]
//! (mechanism, name, the kind's fields, owner) or a [`SysvStat`] (the
//! `ipc_perm` head, the kind's fields); each kind writes only its own
//! fields, a [`StatBody`] in its command's file, with `Serialize` for the
//! one JSON object and [`StatBody::text`] for the aligned `field value`
//! lines.

use std::fmt::{self, Display, Write as _};

use chrono::{Local, TimeZone};
use serde::Serialize;

use crate::ipc::Id;
use crate::ipc::sysv::{Perm, key_hex};
use crate::object::Kind;
use crate::output::Escaped;
use crate::sys::{group_name, user_name};
use crate::target::PosixName;

/// An object's attributes as `--stat` prints them.
pub trait Stat: Serialize {
    /// The column where the values start in the text: a POSIX stat puts
    /// two spaces after its longest label (`mechanism`), a System V stat
    /// pads its labels to 9 as `ipcs -i` does.
    const COLUMN: usize;

    /// The text lines, in order.
    fn text(&self, t: &mut StatText);
}

/// The fields of one kind's stat, between the head and (POSIX) the owner.
pub trait StatBody: Serialize {
    /// Its text lines, in order.
    fn text(&self, t: &mut StatText);
}

/// A body of one field: `Field("size", 4096)`, `"size":4096` in JSON.
pub struct Field<T>(pub &'static str, pub T);

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

impl<T: Serialize + Display> StatBody for Field<T> {
    fn text(&self, t: &mut StatText) {
        t.line(self.0, &self.1);
    }
}

/// A POSIX object's stat: mechanism and name, the kind's fields, owner.
#[derive(Serialize)]
pub struct PosixStat<'a, B> {
    pub mechanism: Kind,
    #[serde(serialize_with = "crate::record::posix_name")]
    pub name: &'a PosixName,
    #[serde(flatten)]
    pub body: B,
    #[serde(flatten)]
    pub ownership: Ownership,
}

impl<B: StatBody> Stat for PosixStat<'_, B> {
    /// `mechanism` and two spaces.
    const COLUMN: usize = 11;

    fn text(&self, t: &mut StatText) {
        t.line("mechanism", self.mechanism);
        t.line("name", self.name);
        self.body.text(t);
        self.ownership.text(t);
    }
}

/// A System V object's stat: the `ipc_perm` head, then the kind's fields.
#[derive(Serialize)]
pub struct SysvStat<B> {
    #[serde(flatten)]
    pub head: SysvHead,
    #[serde(flatten)]
    pub body: B,
}

impl<B: StatBody> Stat for SysvStat<B> {
    const COLUMN: usize = 9;

    fn text(&self, t: &mut StatText) {
        self.head.text(t);
        self.body.text(t);
    }
}

/// The text of a stat being written: `label value` lines aligned at a
/// column, and tables after them.
pub struct StatText {
    column: usize,
    text: String,
}

impl StatText {
    /// `label` padded to the column, then `value`. A value from outside (a
    /// name) comes escaped: see [`Escaped`].
    pub fn line(&mut self, label: &str, value: impl Display) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let column = self.column;
        // Writing into a String cannot fail.
        let _ = write!(self.text, "{label:<column$}{value}");
    }

    /// A kernel time as [`time_rfc3339`] gives it: `not set` for never.
    pub fn time(&mut self, label: &str, shown: Option<&str>) {
        self.line(label, shown.unwrap_or("not set"));
    }

    /// A table as `ipcs -i` prints one: a header, then a row each, columns
    /// 10 wide.
    pub fn table<R: IntoIterator<Item = i64>>(
        &mut self,
        header: &[&str],
        rows: impl IntoIterator<Item = R>,
    ) {
        let mut line = |cells: &mut dyn Iterator<Item = String>| {
            let mut l = String::new();
            for c in cells {
                let _ = write!(l, "{c:<10} ");
            }
            self.text.push('\n');
            self.text.push_str(l.trim_end());
        };
        line(&mut header.iter().map(|h| h.to_string()));
        for row in rows {
            line(&mut row.into_iter().map(|v| v.to_string()));
        }
    }
}

/// The text of `stat`: its lines, without a final line break.
pub fn text<S: Stat>(stat: &S) -> String {
    let mut t = StatText {
        column: S::COLUMN,
        text: String::new(),
    };
    stat.text(&mut t);
    t.text
}

/// Owner, group and permission bits of a POSIX object, under the field
/// names `--stat` and `ls` share.
#[derive(Debug, Serialize)]
pub struct Ownership {
    pub uid: u32,
    pub owner: String,
    pub gid: u32,
    pub group: String,
    pub perms: String,
}

impl Ownership {
    pub fn new(uid: u32, gid: u32, mode: u32) -> Ownership {
        Ownership {
            uid,
            owner: user_name(uid),
            gid,
            group: group_name(gid),
            perms: format!("{:04o}", mode & 0o777),
        }
    }

    pub fn text(&self, t: &mut StatText) {
        t.line("uid", self.uid);
        t.line("owner", Escaped(&self.owner));
        t.line("gid", self.gid);
        t.line("group", Escaped(&self.group));
        t.line("perms", &self.perms);
    }
}

/// The head of every System V stat: mechanism, key, id and the `ipc_perm`
/// fields. The text names the type (`sysv msq`) where JSON has the
/// mechanism, and shows the creator's ids with their names.
#[derive(Debug, Serialize)]
pub struct SysvHead {
    pub mechanism: Kind,
    pub key: String,
    pub id: Id,
    pub uid: u32,
    pub owner: String,
    pub gid: u32,
    pub group: String,
    pub cuid: u32,
    pub cgid: u32,
    pub perms: String,
}

impl SysvHead {
    pub fn new(kind: Kind, perm: &Perm) -> SysvHead {
        SysvHead {
            mechanism: kind,
            key: key_hex(perm.key),
            id: perm.id,
            uid: perm.uid,
            owner: user_name(perm.uid),
            gid: perm.gid,
            group: group_name(perm.gid),
            cuid: perm.cuid,
            cgid: perm.cgid,
            perms: perm.perms(),
        }
    }

    pub fn text(&self, t: &mut StatText) {
        t.line("key", &self.key);
        t.line("id", self.id);
        t.line("type", self.mechanism.mechanism().replace('-', " "));
        t.line("owner", Escaped(&self.owner));
        t.line("group", Escaped(&self.group));
        t.line("cuid", Creator(self.cuid, user_name(self.cuid)));
        t.line("cgid", Creator(self.cgid, group_name(self.cgid)));
        t.line("perms", &self.perms);
    }
}

/// `0 (root)`: an id and its name.
struct Creator(u32, String);

impl Display for Creator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, Escaped(&self.1))
    }
}

/// A kernel timestamp as RFC 3339 with the local offset; None for 0 (never).
pub fn time_rfc3339(t: i64) -> Option<String> {
    if t == 0 {
        return None;
    }
    Local
        .timestamp_opt(t, 0)
        .earliest()
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time_rfc3339(0), None);
        assert!(time_rfc3339(1_700_000_000).is_some_and(|s| s.starts_with("2023-11-1")));
    }

    #[derive(Serialize)]
    struct Two {
        name: &'static str,
        n: u32,
    }

    impl Stat for Two {
        const COLUMN: usize = 11;
        fn text(&self, t: &mut StatText) {
            t.line("name", self.name);
            t.line("n", self.n);
            t.table(&["a", "bb"], [[1, 22]]);
        }
    }

    #[test]
    fn lines_align_at_the_column_and_tables_follow() {
        assert_eq!(
            text(&Two { name: "x", n: 7 }),
            "name       x\nn          7\na          bb\n1          22"
        );
    }
}
