//! What the demos print: each line a record with its JSON fields and its
//! text, as every command's output is.

use std::fmt;

use serde::Serialize;

use crate::output::plural;
use crate::record::Record;

// ---- race, mutex, atomic, cures ----

/// How the counter demos increment: the text after a start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How<'a> {
    Race,
    /// Each increment under the named semaphore.
    Mutex(&'a str),
    Atomic,
    /// `demo cures`: the three ways in a table.
    Cures,
}

/// `demo race: 4 processes x 1000000 increments of one shared counter (...)`
#[derive(Serialize)]
pub struct CounterStart<'a> {
    pub demo: &'static str,
    pub procs: usize,
    pub iters: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip)]
    pub how: How<'a>,
}

impl fmt::Display for CounterStart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (demo, procs, iters) = (self.demo, self.procs, self.iters);
        write!(
            f,
            "demo {demo}: {procs} processes x {iters} increments of one shared counter"
        )?;
        match self.how {
            How::Race => f.write_str(" (load + store, no synchronisation)"),
            How::Mutex(name) => write!(
                f,
                " (each increment between sem_wait and sem_post on named semaphore {name})"
            ),
            How::Atomic => f.write_str(" (atomic fetch_add)"),
            How::Cures => write!(
                f,
                ", three ways\n  {:<8} {:>10} {:>10} {:>10} {:>7} {:>12} {:>14}",
                "way", "expected", "actual", "lost", "lost%", "time", "per increment"
            ),
        }
    }
}

crate::record_kind!(CounterStart<'_>, "start");

/// The count after a counter demo: a block with the verdict, or a row of
/// the `cures` table.
#[derive(Serialize)]
pub struct CounterResult {
    pub demo: &'static str,
    pub procs: usize,
    pub iters: u64,
    pub expected: u64,
    pub actual: u64,
    pub lost: u64,
    pub ms: f64,
    pub ns_per_increment: f64,
    /// The verdict of a single run; None for a row of `cures`.
    #[serde(skip)]
    pub verdict: Option<&'static str>,
}

impl fmt::Display for CounterResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = self.lost as f64 * 100.0 / self.expected as f64;
        match self.verdict {
            Some(verdict) => write!(
                f,
                "  expected {}\n  actual   {}\n  lost     {} ({pct:.1}%)\n  time     {:.3} ms ({:.1} ns per increment)\n  {verdict}",
                self.expected, self.actual, self.lost, self.ms, self.ns_per_increment
            ),
            None => write!(
                f,
                "  {:<8} {:>10} {:>10} {:>10} {:>6.1}% {:>9.3} ms {:>11.1} ns",
                self.demo,
                self.expected,
                self.actual,
                self.lost,
                pct,
                self.ms,
                self.ns_per_increment
            ),
        }
    }
}

crate::record_kind!(CounterResult, "result");

/// A semaphore an earlier run left behind, replaced.
#[derive(Serialize)]
pub struct Stale<'a> {
    pub name: &'a str,
}

impl fmt::Display for Stale<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replaced a stale semaphore {} from an earlier run",
            self.name
        )
    }
}

crate::record_kind!(Stale<'_>, "stale");

// ---- ring ----

/// `demo ring: 2 producers x 100000 items -> 1 consumer, 64 slots of 24 bytes (...)`
#[derive(Serialize)]
pub struct RingStart {
    pub demo: &'static str,
    pub producers: u64,
    pub items: u64,
    pub slots: usize,
    #[serde(skip)]
    pub slot_bytes: usize,
}

impl fmt::Display for RingStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let claim = if self.producers > 1 {
            "compare-and-swap on the head"
        } else {
            "the only producer owns the head"
        };
        write!(
            f,
            "demo ring: {} x {} items -> 1 consumer, {} slots of {} bytes ({claim})",
            plural(self.producers, "producer", "producers"),
            self.items,
            self.slots,
            self.slot_bytes
        )
    }
}

crate::record_kind!(RingStart, "start");

/// The consumer's account of a ring run.
#[derive(Serialize)]
pub struct RingResult {
    pub demo: &'static str,
    pub producers: u64,
    pub items: u64,
    pub slots: usize,
    pub expected: u64,
    pub received: u64,
    pub bad_checksum: u64,
    pub duplicates: u64,
    pub missing: u64,
    pub cas_retries: u64,
    pub ms: f64,
    pub wall_ms: f64,
    pub items_per_sec: f64,
    #[serde(skip)]
    pub ns_per_item: f64,
}

impl RingResult {
    pub fn ok(&self) -> bool {
        self.received == self.expected
            && self.bad_checksum == 0
            && self.duplicates == 0
            && self.missing == 0
    }
}

impl fmt::Display for RingResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.ok() {
            "every item arrived exactly once, checksums valid"
        } else {
            "ITEMS WENT WRONG"
        };
        write!(
            f,
            "  received    {} of {}\n  checksums   {} bad\n  duplicates  {}\n  missing     {}\n  cas retries {}\n  time        {:.3} ms ({:.0} items/s, {:.0} ns per item)\n  {verdict}",
            self.received,
            self.expected,
            self.bad_checksum,
            self.duplicates,
            self.missing,
            self.cas_retries,
            self.ms,
            self.items_per_sec,
            self.ns_per_item
        )
    }
}

crate::record_kind!(RingResult, "result");

// ---- scoreboard ----

/// `demo scoreboard: 4 workers x 800 items; table of N bytes (...)`
#[derive(Serialize)]
pub struct ScoreboardStart {
    pub demo: &'static str,
    pub workers: usize,
    pub items: u64,
    pub size: usize,
    #[serde(skip)]
    pub slot_bytes: usize,
}

impl fmt::Display for ScoreboardStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "demo scoreboard: {} workers x {} items; table of {} bytes (magic {:#x}, version {}), one {}-byte slot per worker",
            self.workers,
            self.items,
            self.size,
            super::shared::MAGIC,
            super::shared::VERSION,
            self.slot_bytes
        )
    }
}

crate::record_kind!(ScoreboardStart, "start");

/// One worker's row of the table.
#[derive(Serialize)]
pub struct WorkerRow {
    pub worker: usize,
    pub pid: u32,
    pub state: &'static str,
    pub done: u64,
    pub items: u64,
}

/// The live table: `1200/3200 items (38%) after 250 ms` and a row per worker.
#[derive(Serialize)]
pub struct Table {
    pub workers: Vec<WorkerRow>,
    #[serde(skip)]
    pub elapsed_ms: f64,
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sum: u64 = self.workers.iter().map(|w| w.done).sum();
        let all: u64 = self.workers.iter().map(|w| w.items).sum();
        write!(
            f,
            "{sum}/{all} items ({:.0}%) after {:.0} ms",
            sum as f64 * 100.0 / all.max(1) as f64,
            self.elapsed_ms
        )?;
        for w in &self.workers {
            let width = 20;
            let filled = (w.done * width / w.items.max(1)) as usize;
            let bar: String = "#".repeat(filled) + &".".repeat(width as usize - filled);
            write!(
                f,
                "\n    worker {:<2} pid {:<7} {:<7} [{bar}] {:>6}/{}",
                w.worker, w.pid, w.state, w.done, w.items
            )?;
        }
        Ok(())
    }
}

crate::record_kind!(Table, "scoreboard");

/// `all 4 workers done: 3200 items in 812.345 ms`
#[derive(Serialize)]
pub struct ScoreboardResult {
    pub demo: &'static str,
    pub workers: usize,
    pub items: u64,
    pub ms: f64,
}

impl fmt::Display for ScoreboardResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "all {} workers done: {} items in {:.3} ms",
            self.workers, self.items, self.ms
        )
    }
}

crate::record_kind!(ScoreboardResult, "result");

// ---- sorted ----

/// `demo sorted: the client appends 12 random numbers, ...`
#[derive(Serialize)]
pub struct SortedStart {
    pub demo: &'static str,
    pub count: usize,
}

impl fmt::Display for SortedStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "demo sorted: the client appends {} random numbers, the server keeps them sorted (spin lock: compare-and-swap on a busy flag)",
            self.count
        )
    }
}

crate::record_kind!(SortedStart, "start");

/// The array before (`Sorting(3): {5, 1, 9}`) or after a sort.
#[derive(Serialize)]
pub struct Array<'a> {
    #[serde(skip)]
    pub sorted: bool,
    pub n: usize,
    pub array: &'a [i64],
}

impl fmt::Display for Array<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = if self.sorted { "Sorted" } else { "Sorting" };
        write!(f, "{label}({}): {}", self.n, Braces(self.array))
    }
}

impl Record for Array<'_> {
    fn kind(&self) -> &'static str {
        if self.sorted { "sorted" } else { "sorting" }
    }
}

/// `{1, 5, 9}`, shortened in the middle beyond 20 numbers.
struct Braces<'a>(&'a [i64]);

impl fmt::Display for Braces<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |f: &mut fmt::Formatter<'_>, part: &[i64]| -> fmt::Result {
            for (i, x) in part.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{x}")?;
            }
            Ok(())
        };
        let v = self.0;
        f.write_str("{")?;
        if v.len() <= 20 {
            show(f, v)?;
        } else {
            show(f, &v[..10])?;
            write!(f, ", ... {} more ..., ", v.len() - 15)?;
            show(f, &v[v.len() - 5..])?;
        }
        f.write_str("}")
    }
}

/// The claim checked at the end: sorted, and every appended number there.
#[derive(Serialize)]
pub struct SortedResult {
    pub demo: &'static str,
    pub n: usize,
    pub count: usize,
    pub sorted: bool,
    pub complete: bool,
    pub spins: u64,
    pub ms: f64,
}

impl fmt::Display for SortedResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "check: {} of {} numbers, {}, {} (lock waits: {} spins) in {:.3} ms",
            self.n,
            self.count,
            if self.sorted { "sorted" } else { "NOT SORTED" },
            if self.complete {
                "every appended number present"
            } else {
                "NUMBERS LOST OR CHANGED"
            },
            self.spins,
            self.ms
        )
    }
}

crate::record_kind!(SortedResult, "result");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_start_counts_its_producers() {
        let start = |producers| RingStart {
            demo: "ring",
            producers,
            items: 5,
            slots: 4,
            slot_bytes: 24,
        };
        assert_eq!(
            start(1).to_string(),
            "demo ring: 1 producer x 5 items -> 1 consumer, 4 slots of 24 bytes \
             (the only producer owns the head)"
        );
        assert!(
            start(2)
                .to_string()
                .starts_with("demo ring: 2 producers x 5 items")
        );
    }

    #[test]
    fn long_arrays_are_shortened_in_the_middle() {
        let v: Vec<i64> = (0..25).collect();
        assert_eq!(
            Braces(&v).to_string(),
            "{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... 10 more ..., 20, 21, 22, 23, 24}"
        );
        assert_eq!(Braces(&[3, 1]).to_string(), "{3, 1}");
    }
}
