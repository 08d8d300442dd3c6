//! `watch`: what is changing, sample after sample, as pure code.
//!
//! The wiring step takes a [`Sample`] of the selected objects every
//! `--interval` (from `ls`'s scan: identity → numbers) and feeds it to
//! [`Watch::update`], which returns a [`Report`]: per object its numbers,
//! the high-water mark since the object was first seen, in and out rates,
//! and whether it appeared, vanished or changed. A report renders as the
//! live table ([`table`]) or as one JSON line ([`Report::json`]).
//!
//! On a terminal the wiring step redraws the table in place with
//! crossterm alone: the alternate screen, cursor home and clear per
//! sample, and the screen restored by a guard's `Drop` and on the SIGINT
//! flag the servers already use. ratatui is more than a redraw-in-place
//! table needs, so crossterm is the one crate to add, with that loop.
//!
//! # In and out rates of a queue
//!
//! The kernel keeps no send or receive counters. Between two samples it
//! shows the change of the message count (`Δ = qnum₁ - qnum₀`), and, for
//! System V, the time and pid of the last send and receive (`msg_stime`,
//! `msg_lspid`, `msg_rtime`, `msg_lrpid`); for POSIX, the queue's inode
//! times in the mqueue file system, which both a send and a receive set.
//! From these, the rates are the *fewest* sends (`in`) and receives
//! (`out`) that explain what was seen:
//!
//! - `in - out = Δ`, `in ≥ 0`, `out ≥ 0`;
//! - a send happened (stime advanced or lspid changed): `in ≥ 1`; a
//!   receive happened: `out ≥ 1`;
//! - activity without a change of count (POSIX inode time moved, `Δ = 0`):
//!   one send and one receive at least.
//!
//! so `in = max(Δ, sent, received + Δ, both)`, `out = in - Δ`. A queue
//! where a reader keeps up with a writer shows `Δ = 0` and rates of at
//! least one per interval, not the true thousands: the numbers are lower
//! bounds, marked `≥` in the table and `"rates":"lower bound"` in JSON.
//! System V times have one-second resolution, so a send in the same second
//! as the previous one and by the same pid is invisible: another reason
//! they are bounds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::object::Kind;

/// What identifies an object across samples: a System V object by its id
/// (a key reused by a new object is a new object), a POSIX one by name
/// and inode (unlinked and made again is a new object).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    #[serde(rename = "mechanism")]
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ipcs' form, `0x000000c8`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The System V id, or the POSIX inode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

impl ObjectKey {
    /// The name or key, escaped for text.
    pub fn label(&self) -> String {
        crate::object::label(self.name.as_deref(), self.key.as_deref(), self.id)
    }
}

/// What the kernel shows of a queue at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueNumbers {
    pub messages: u64,
    pub bytes: u64,
    /// System V: last send and receive, pid and time (seconds).
    pub lspid: Option<i32>,
    pub lrpid: Option<i32>,
    pub stime: Option<i64>,
    pub rtime: Option<i64>,
    /// POSIX: the queue's inode mtime in nanoseconds, which sends and
    /// receives both set.
    pub touched_ns: Option<i128>,
}

/// One object's numbers at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Numbers {
    Queue(QueueNumbers),
    /// Every semaphore of the object: its value and waiters
    /// (GETNCNT + GETZCNT; POSIX: the waiters word).
    Semaphore {
        values: Vec<u64>,
        waiters: Vec<u64>,
    },
    Segment {
        size: u64,
        nattch: Option<u64>,
    },
}

/// The selected objects at one moment. `elapsed` is seconds since the
/// watch began (a monotonic clock: rates must not jump with the wall clock).
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub elapsed: f64,
    pub objects: BTreeMap<ObjectKey, Numbers>,
}

/// How an object stands in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    /// There in the first sample.
    Present,
    /// New since the previous sample.
    Appeared,
    /// There before, gone now (shown once with its last numbers).
    Vanished,
    /// Numbers differ from the previous sample.
    Changed,
    /// As before.
    Same,
}

/// Messages in and out between two samples: lower bounds (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    #[serde(rename = "in")]
    pub sent: u64,
    #[serde(rename = "out")]
    pub received: u64,
    pub in_per_s: f64,
    pub out_per_s: f64,
}

/// One object's line in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: ObjectKey,
    pub mark: Mark,
    pub numbers: Numbers,
    /// Queues: the most messages and bytes seen since the object appeared.
    pub high_water: Option<(u64, u64)>,
    /// Queues, from the second sample on.
    pub rates: Option<Rates>,
    /// Queues: the fewest messages sent and received since the start.
    pub totals: Option<(u64, u64)>,
}

/// One sample's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// 1 for the first sample.
    pub sample: u64,
    pub elapsed: f64,
    /// Every object now there, then the vanished ones, in key order.
    pub rows: Vec<Row>,
}

/// What a watch remembers between samples.
#[derive(Debug, Default)]
pub struct Watch {
    samples: u64,
    prev: Option<Sample>,
    high: BTreeMap<ObjectKey, (u64, u64)>,
    totals: BTreeMap<ObjectKey, (u64, u64)>,
}

impl Watch {
    pub fn new() -> Watch {
        Watch::default()
    }

    /// Compare `sample` with the previous one.
    pub fn update(&mut self, sample: Sample) -> Report {
        self.samples += 1;
        let first = self.prev.is_none();
        let prev = self.prev.take().unwrap_or_default();
        let dt = sample.elapsed - prev.elapsed;
        let mut rows = Vec::with_capacity(sample.objects.len());
        for (key, now) in &sample.objects {
            let before = prev.objects.get(key);
            let mark = match before {
                _ if first => Mark::Present,
                None => Mark::Appeared,
                Some(b) if b == now => Mark::Same,
                Some(_) => Mark::Changed,
            };
            rows.push(self.row(key, now, before, mark, dt));
        }
        for (key, last) in &prev.objects {
            if !sample.objects.contains_key(key) {
                self.high.remove(key);
                self.totals.remove(key);
                rows.push(Row {
                    key: key.clone(),
                    mark: Mark::Vanished,
                    numbers: last.clone(),
                    high_water: None,
                    rates: None,
                    totals: None,
                });
            }
        }
        let report = Report {
            sample: self.samples,
            elapsed: sample.elapsed,
            rows,
        };
        self.prev = Some(sample);
        report
    }

    fn row(
        &mut self,
        key: &ObjectKey,
        now: &Numbers,
        before: Option<&Numbers>,
        mark: Mark,
        dt: f64,
    ) -> Row {
        let mut row = Row {
            key: key.clone(),
            mark,
            numbers: now.clone(),
            high_water: None,
            rates: None,
            totals: None,
        };
        let Numbers::Queue(q) = now else {
            return row;
        };
        let high = self.high.entry(key.clone()).or_insert((0, 0));
        *high = (high.0.max(q.messages), high.1.max(q.bytes));
        row.high_water = Some(*high);
        let total = self.totals.entry(key.clone()).or_insert((0, 0));
        if let Some(Numbers::Queue(b)) = before {
            let (sent, received) = moved(b, q);
            *total = (total.0 + sent, total.1 + received);
            let per_s = |n: u64| if dt > 0.0 { n as f64 / dt } else { 0.0 };
            row.rates = Some(Rates {
                sent,
                received,
                in_per_s: per_s(sent),
                out_per_s: per_s(received),
            });
        }
        row.totals = Some(*total);
        row
    }
}

/// The fewest sends and receives from `b` to `a` (module doc).
pub fn moved(b: &QueueNumbers, a: &QueueNumbers) -> (u64, u64) {
    let delta = i128::from(a.messages) - i128::from(b.messages);
    let advanced =
        |t0: Option<i64>, t1: Option<i64>| matches!((t0, t1), (Some(x), Some(y)) if y > x);
    let changed =
        |p0: Option<i32>, p1: Option<i32>| matches!((p0, p1), (Some(x), Some(y)) if x != y);
    let sent = advanced(b.stime, a.stime) || changed(b.lspid, a.lspid);
    let received = advanced(b.rtime, a.rtime) || changed(b.lrpid, a.lrpid);
    let touched = matches!((b.touched_ns, a.touched_ns), (Some(x), Some(y)) if x != y);
    let both = touched && delta == 0;
    let sent_in = [
        delta,
        i128::from(sent),
        i128::from(received) + delta,
        i128::from(both),
        0,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let out = sent_in - delta;
    (clamp_u64(sent_in), clamp_u64(out))
}

fn clamp_u64(n: i128) -> u64 {
    u64::try_from(n.max(0)).unwrap_or(u64::MAX)
}

/// A row as a JSON record's fields (`--json`).
#[derive(Serialize)]
struct RowJson<'a> {
    #[serde(flatten)]
    key: &'a ObjectKey,
    event: Mark,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high_water_messages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high_water_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rates: Option<Rates>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<&'a [u64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    waiters: Option<&'a [u64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nattch: Option<u64>,
}

impl<'a> From<&'a Row> for RowJson<'a> {
    fn from(row: &'a Row) -> RowJson<'a> {
        let mut j = RowJson {
            key: &row.key,
            event: row.mark,
            messages: None,
            bytes: None,
            high_water_messages: row.high_water.map(|h| h.0),
            high_water_bytes: row.high_water.map(|h| h.1),
            rates: row.rates,
            values: None,
            waiters: None,
            size: None,
            nattch: None,
        };
        match &row.numbers {
            Numbers::Queue(q) => {
                j.messages = Some(q.messages);
                j.bytes = Some(q.bytes);
            }
            Numbers::Semaphore { values, waiters } => {
                j.values = Some(values);
                j.waiters = Some(waiters);
            }
            Numbers::Segment { size, nattch } => {
                j.size = Some(*size);
                j.nattch = *nattch;
            }
        }
        j
    }
}

impl Report {
    /// The rows a JSON line carries: all of them in the first sample, then
    /// only those that appeared, vanished or changed.
    pub fn changes(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.mark != Mark::Same)
    }

    /// `{"sample":2,"elapsed":1.0,"rates":"lower bound","changes":[...]}`:
    /// the wiring adds the `time` field as every record has. A sample
    /// without changes still gives a line, so `--count N` gives N lines.
    pub fn json(&self) -> serde_json::Value {
        let changes: Vec<RowJson<'_>> = self.changes().map(RowJson::from).collect();
        serde_json::json!({
            "sample": self.sample,
            "elapsed": self.elapsed,
            "rates": "lower bound",
            "changes": changes,
        })
    }
}

/// The live table: a header, then one line per row. Marks: `+` appeared,
/// `-` vanished, `*` changed. Rates are per second, with `≥` since they
/// are lower bounds.
pub fn table(report: &Report) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<1} {:<10} {:<24} {:>9} {:>10} {:>14} {:>9} {:>9}  OTHER",
        "", "KIND", "NAME/KEY", "MESSAGES", "BYTES", "HIGH (MSG/B)", "IN/S", "OUT/S"
    )];
    for row in &report.rows {
        let mark = match row.mark {
            Mark::Appeared => "+",
            Mark::Vanished => "-",
            Mark::Changed => "*",
            Mark::Present | Mark::Same => "",
        };
        let mut line = format!(
            "{mark:<1} {:<10} {:<24}",
            row.key.kind.mechanism(),
            row.key.label()
        );
        match &row.numbers {
            Numbers::Queue(q) => {
                let high = row
                    .high_water
                    .map_or(String::new(), |(m, b)| format!("{m}/{b}"));
                let rate = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("≥{r:.1}"));
                let _ = write!(
                    line,
                    " {:>9} {:>10} {high:>14} {:>9} {:>9}",
                    q.messages,
                    q.bytes,
                    rate(row.rates.map(|r| r.in_per_s)),
                    rate(row.rates.map(|r| r.out_per_s)),
                );
            }
            Numbers::Semaphore { values, waiters } => {
                let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                let _ = write!(
                    line,
                    " {:>9} {:>10} {:>14} {:>9} {:>9}  values {} waiters {}",
                    "",
                    "",
                    "",
                    "",
                    "",
                    join(values),
                    join(waiters)
                );
            }
            Numbers::Segment { size, nattch } => {
                let n = nattch.map_or("-".to_string(), |n| n.to_string());
                let _ = write!(
                    line,
                    " {:>9} {:>10} {:>14} {:>9} {:>9}  nattch {n}",
                    "", size, "", "", ""
                );
            }
        }
        lines.push(line.trim_end().to_string());
    }
    lines
}

/// The objects of a sample in words, for a heading: `2 queues, 1 segment`.
pub fn summary(sample: &Sample) -> String {
    let parts: Vec<String> = ["queue", "semaphore", "segment"]
        .into_iter()
        .filter_map(|what| {
            let n = sample
                .objects
                .keys()
                .filter(|k| k.kind.what() == what)
                .count();
            (n > 0).then(|| format!("{n} {what}{}", if n == 1 { "" } else { "s" }))
        })
        .collect();
    if parts.is_empty() {
        "no objects".into()
    } else {
        parts.join(", ")
    }
}

mod run;
pub use run::{WatchOptions, run};

#[cfg(test)]
mod tests;
