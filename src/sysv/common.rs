//! What the three System V commands share: how an object is addressed (key
//! or id), `--clean` and `--stat` over any kind (`ipc::sysv::Sysv<K>`), the
//! `ipc_perm` part of `--stat`, times as `ipcs` and JSON show them, and the
//! errno conventions of msgget/shmget/semget. The handles live in `ipc`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{Local, TimeZone};
use nix::errno::Errno;
use serde_json::{Map, Value};

use crate::cli::{Mode, SysvKeyArgs};
use crate::error::usage;
use crate::ipc::Id;
use crate::ipc::Remove;
use crate::ipc::sysv::{Perm, Sysv, SysvKind, key_hex};
use crate::output::Out;
use crate::sys::{group_name, user_name};
use crate::target::{IpcId, SysvKey};

/// How a command finds its object.
#[derive(Debug, Clone, Copy)]
pub enum Addr {
    Key(SysvKey),
    Id(IpcId),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Key(key) => write!(f, "key {key}"),
            Addr::Id(id) => write!(f, "id {id}"),
        }
    }
}

/// `-i ID` goes with `--clean` and `--stat` only (as `ipcrm -q ID` and
/// `ipcs -i ID`): a server or client by id could not create the object, and
/// a key it does not know would make its start line lie. Refused, exit 2.
pub fn addr(target: &SysvKeyArgs, mode: Mode) -> Result<Addr> {
    match (target.id, mode) {
        (Some(id), Mode::Clean | Mode::Stat) => Ok(Addr::Id(id)),
        (Some(_), _) => Err(usage(
            "--id works with --clean and --stat only; a server or client addresses the object by key (-k)",
        )),
        (None, _) => Ok(Addr::Key(target.key)),
    }
}

/// Turn the errno of a lookup (msgget/shmget/semget without IPC_CREAT, or
/// *ctl on an id) into the contract's "no such ..." error, exit 1.
fn no_such(errno: Errno, what: &str, addr: Addr) -> anyhow::Error {
    match (errno, addr) {
        (Errno::ENOENT, Addr::Key(_)) => anyhow::anyhow!("no such {what}"),
        // An id never used, or used by a removed object: EINVAL (or EIDRM).
        (Errno::EINVAL | Errno::EIDRM, Addr::Id(_)) => anyhow::anyhow!("no such {what}"),
        (e, _) => e.into(),
    }
}

/// The line `--clean` prints: `removed queue (key 0x000000c8, id 3)`, or
/// `removed queue (id 3)` when addressed by id; JSON adds mechanism and key.
fn record_removed(
    out: &mut Out,
    what: &str,
    mechanism: &str,
    at: Addr,
    id: Id,
) -> std::io::Result<()> {
    let text = match at {
        Addr::Key(key) => format!("removed {what} (key {key}, id {id})"),
        Addr::Id(_) => format!("removed {what} (id {id})"),
    };
    out.record(text, || {
        let mut v = serde_json::json!({"kind": "removed", "mechanism": mechanism, "id": id});
        if let Addr::Key(key) = at {
            v["key"] = key.to_string().into();
        }
        v
    })
}

/// The object at `at` with its IPC_STAT, or the contract's "no such ...".
pub fn find<K: SysvKind>(at: Addr) -> Result<(Sysv<K>, K::Stat)> {
    let obj = match at {
        Addr::Key(key) => Sysv::<K>::open_existing(key.raw()),
        Addr::Id(id) => Ok(Sysv::<K>::with_id(id.0)),
    };
    obj.and_then(|o| o.stat().map(|ds| (o, ds)))
        .map_err(|e| no_such(e, K::WHAT, at))
}

/// `--clean`: IPC_RMID of the object at `at`, and its `removed` line.
pub fn clean<K: SysvKind>(at: Addr, out: &mut Out) -> Result<ExitCode> {
    let context = || format!("cannot remove {} ({at})", K::WHAT);
    let obj = match at {
        Addr::Key(key) => Sysv::<K>::open_existing(key.raw()).map_err(|e| no_such(e, K::WHAT, at)),
        Addr::Id(id) => Ok(Sysv::<K>::with_id(id.0)),
    }
    .with_context(context)?;
    obj.remove()
        .map_err(|e| no_such(e, K::WHAT, at))
        .with_context(context)?;
    record_removed(out, K::WHAT, K::MECHANISM, at, obj.id())?;
    Ok(ExitCode::SUCCESS)
}

/// `--stat`: the object at `at`, its `ipc_perm` lines, then the lines
/// `fill` adds for the kind, as text or one JSON object.
pub fn stat<K: SysvKind>(
    at: Addr,
    out: &mut Out,
    fill: impl FnOnce(Sysv<K>, &K::Stat, &mut StatLines) -> Result<()>,
) -> Result<ExitCode> {
    let (obj, ds) = find::<K>(at).with_context(|| format!("cannot stat {} ({at})", K::WHAT))?;
    let mut s = StatLines::new(K::MECHANISM, &K::MECHANISM.replace('-', " "), K::perm(&ds));
    fill(obj, &ds, &mut s)?;
    let (text, json) = s.into_parts();
    out.record(text, || json)?;
    Ok(ExitCode::SUCCESS)
}

/// `--stat` output: aligned `field value` lines, or one JSON object with the
/// same fields in the same order (numbers as numbers, times as RFC 3339).
pub struct StatLines {
    text: String,
    json: Map<String, Value>,
}

impl StatLines {
    /// Start with mechanism, key, id and the ipc_perm fields.
    pub fn new(mechanism: &str, type_text: &str, perm: &Perm) -> StatLines {
        let mut s = StatLines {
            text: String::new(),
            json: Map::new(),
        };
        s.json.insert("mechanism".into(), mechanism.into());
        s.line("key", key_hex(perm.key), key_hex(perm.key).into());
        s.line("id", perm.id.to_string(), perm.id.into());
        s.text_only("type", type_text);
        s.json.insert("uid".into(), perm.uid.into());
        s.line("owner", user_name(perm.uid), user_name(perm.uid).into());
        s.json.insert("gid".into(), perm.gid.into());
        s.line("group", group_name(perm.gid), group_name(perm.gid).into());
        s.line(
            "cuid",
            format!("{} ({})", perm.cuid, user_name(perm.cuid)),
            perm.cuid.into(),
        );
        s.line(
            "cgid",
            format!("{} ({})", perm.cgid, group_name(perm.cgid)),
            perm.cgid.into(),
        );
        s.line("perms", perm.perms(), perm.perms().into());
        s
    }

    pub fn line(&mut self, field: &str, text: impl std::fmt::Display, json: Value) {
        self.text_only(field, text);
        self.json.insert(field.into(), json);
    }

    fn text_only(&mut self, field: &str, text: impl std::fmt::Display) {
        use std::fmt::Write as _;
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let _ = write!(self.text, "{field:<9}{text}");
    }

    pub fn number(&mut self, field: &str, n: impl Into<Value> + std::fmt::Display + Copy) {
        self.line(field, n, n.into());
    }

    /// A kernel time: RFC 3339 in local time, `not set` / null when 0.
    pub fn time(&mut self, field: &str, t: i64) {
        let shown = time_rfc3339(t);
        let text = shown.clone().unwrap_or_else(|| "not set".into());
        self.line(field, text, shown.map_or(Value::Null, Value::from));
    }

    /// A table after the lines in the text, as `ipcs -i` prints one (a
    /// header, then a row each, columns 10 wide), and `json` under `field`.
    pub fn table<R: IntoIterator<Item = i64>>(
        &mut self,
        field: &str,
        header: &[&str],
        rows: impl IntoIterator<Item = R>,
        json: Value,
    ) {
        use std::fmt::Write as _;
        let mut line = |cells: Vec<String>| {
            let mut l = String::new();
            for c in cells {
                let _ = write!(l, "{c:<10} ");
            }
            self.text.push('\n');
            self.text.push_str(l.trim_end());
        };
        line(header.iter().map(|h| h.to_string()).collect());
        for row in rows {
            line(row.into_iter().map(|v| v.to_string()).collect());
        }
        self.json.insert(field.into(), json);
    }

    pub fn into_parts(self) -> (String, Value) {
        (self.text, Value::Object(self.json))
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

/// Hint for EINVAL/ENOSPC from a get call with IPC_CREAT, naming the limit.
pub fn limit_hint(what: &str, file: &str) -> String {
    let path = format!("/proc/sys/kernel/{file}");
    let value = crate::sys::read_proc_u64(&path).map_or_else(|| "?".into(), |v| v.to_string());
    format!("the system-wide {what} limit is reached ({path} is {value}); `ipcs` shows what exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time_rfc3339(0), None);
        assert!(time_rfc3339(1_700_000_000).is_some_and(|s| s.starts_with("2023-11-1")));
    }
}
