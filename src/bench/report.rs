//! The bench's records: a [`Row`] per mechanism, size and placement, a
//! [`FloorRow`] per placement. Each is one JSON object as it is measured,
//! and a line of the text tables at the end, from the same fields.

use std::io::Write;

use serde::Serialize;

use super::drive::Sample;
use super::floor::Wait;
use super::{Mech, Pattern, Pin};

/// Round-trip latency in ns, from an HDR histogram of every round trip.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// One measured mechanism at one size and placement.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Row {
    kind: &'static str,
    pub mechanism: &'static str,
    pub pattern: &'static str,
    pub size: usize,
    pub pin: &'static str,
    pub parent_cpu: i32,
    pub child_cpu: i32,
    pub count: u64,
    pub seconds: f64,
    pub per_sec: f64,
    pub mb_per_sec: f64,
    /// Pingpong only.
    pub latency_ns: Option<Latency>,
    pub cpu_ns_per_op: f64,
    /// Pingpong: the median over batches of 1024 round trips of their mean,
    /// measured as the floor is.
    pub round_trip_ns: Option<f64>,
    /// The floor of this row's placement, when one was measured.
    pub floor_ns: Option<f64>,
    /// `round_trip_ns` as a multiple of the floor.
    pub x_floor: Option<f64>,
}

impl Row {
    pub fn new(
        m: Mech,
        pattern: Pattern,
        size: usize,
        pin: Pin,
        s: &Sample,
        floor_ns: Option<f64>,
    ) -> Row {
        let r = &s.measured;
        let per_sec = r.count as f64 / r.secs.max(1e-12);
        let latency_ns = r.lat.map(|[mean, p50, p99, p999, max]| Latency {
            mean,
            p50,
            p99,
            p999,
            max,
        });
        let x_floor = match (r.round_trip_ns, floor_ns) {
            (Some(rt), Some(f)) if f > 0.0 => Some(rt / f),
            _ => None,
        };
        Row {
            kind: "bench",
            mechanism: m.name(),
            pattern: pattern.name(),
            size,
            pin: pin.name(),
            parent_cpu: r.cpu,
            child_cpu: s.child_cpu,
            count: r.count,
            seconds: r.secs,
            per_sec,
            mb_per_sec: per_sec * size as f64 / 1e6,
            latency_ns,
            cpu_ns_per_op: s.cpu_ns_per_op,
            round_trip_ns: r.round_trip_ns,
            floor_ns,
            x_floor,
        }
    }

    /// `none 1/0`: the mode and the CPUs parent/child ended on.
    fn placement(&self) -> String {
        format!("{} {}/{}", self.pin, self.parent_cpu, self.child_cpu)
    }
}

/// The floor of one placement: one atomic word bounced between the two
/// processes, no payload, timed in batches (no clock per round trip).
#[derive(Debug, Clone, Serialize)]
pub(super) struct FloorRow {
    kind: &'static str,
    pub pin: &'static str,
    /// How each side waits for the other: `spin` on two CPUs, `yield` on one.
    pub wait: &'static str,
    pub parent_cpu: i32,
    pub child_cpu: i32,
    pub count: u64,
    pub seconds: f64,
    pub per_sec: f64,
    /// The floor: the median over batches of 1024 round trips of their
    /// mean, ns.
    pub round_trip_ns: f64,
    /// All round trips over all the time.
    pub mean_ns: f64,
    pub cpu_ns_per_op: f64,
}

impl FloorRow {
    pub fn new(pin: Pin, wait: Wait, s: &Sample) -> FloorRow {
        let r = &s.measured;
        FloorRow {
            kind: "floor",
            pin: pin.name(),
            wait: wait.name(),
            parent_cpu: r.cpu,
            child_cpu: s.child_cpu,
            count: r.count,
            seconds: r.secs,
            per_sec: r.count as f64 / r.secs.max(1e-12),
            round_trip_ns: r.round_trip_ns.unwrap_or(0.0),
            mean_ns: r.secs * 1e9 / r.count.max(1) as f64,
            cpu_ns_per_op: s.cpu_ns_per_op,
        }
    }
}

/// Nanoseconds in the largest unit below them: (4.21, "µs").
pub(super) fn in_unit(ns: f64) -> (f64, &'static str) {
    [(1e9, "s"), (1e6, "ms"), (1e3, "µs")]
        .into_iter()
        .find(|&(scale, _)| ns >= scale)
        .map_or((ns, "ns"), |(scale, unit)| (ns / scale, unit))
}

/// 102ns, 4.21µs, 1.30ms, 2.00s
pub(super) fn dur(ns: f64) -> String {
    match in_unit(ns) {
        (v, "ns") => format!("{v:.0}ns"),
        (v, unit) => format!("{v:.2}{unit}"),
    }
}

fn rate(r: f64) -> String {
    let s = format!("{:.0}", r);
    // Thousands separators make 9,876,543 readable at a glance.
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 0.0046, 1.32, 12.4, 603: two or three significant digits.
fn times(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(x) if x < 0.1 && x > 0.0 => {
            let decimals = (1.0 - x.log10().floor()) as usize;
            format!("{x:.decimals$}")
        }
        Some(x) if x < 10.0 => format!("{x:.2}"),
        Some(x) if x < 100.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.0}"),
    }
}

/// The floors, then one table per size, in the order they were measured.
pub(super) fn print_tables(
    w: &mut impl Write,
    floors: &[FloorRow],
    rows: &[Row],
    pattern: Pattern,
) -> std::io::Result<()> {
    let mut first = true;
    if !floors.is_empty() {
        print_floors(w, floors)?;
        first = false;
    }
    let mut sizes: Vec<usize> = Vec::new();
    for r in rows {
        if !sizes.contains(&r.size) {
            sizes.push(r.size);
        }
    }
    for size in sizes {
        if !first {
            writeln!(w)?;
        }
        first = false;
        let group = rows.iter().filter(|r| r.size == size);
        match pattern {
            Pattern::Pingpong => table(
                w,
                format_args!("pingpong, {size} bytes; pin: parent/child CPU at the end of the run"),
                &PINGPONG_COLUMNS,
                group,
                pingpong_cells,
            )?,
            Pattern::Stream => table(
                w,
                format_args!(
                    "stream, {size} bytes one way; pin: parent/child CPU at the end of the run"
                ),
                &STREAM_COLUMNS,
                group,
                stream_cells,
            )?,
        }
    }
    Ok(())
}

/// One column of a text table: its heading, its width, and whether its
/// cells are left-aligned (names) or right-aligned (numbers).
struct Column(&'static str, usize, Align);

enum Align {
    Left,
    Right,
}

/// One line of a table: each cell padded to its column, one space apart.
fn line(w: &mut impl Write, columns: &[Column], cells: &[&str]) -> std::io::Result<()> {
    for (i, (Column(_, width, align), cell)) in columns.iter().zip(cells).enumerate() {
        let sep = if i == 0 { "" } else { " " };
        match align {
            Align::Left => write!(w, "{sep}{cell:<width$}")?,
            Align::Right => write!(w, "{sep}{cell:>width$}")?,
        }
    }
    writeln!(w)
}

/// The heading line of a table.
fn headings(w: &mut impl Write, columns: &[Column]) -> std::io::Result<()> {
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    line(w, columns, &names)
}

const FLOOR_COLUMNS: [Column; 5] = [
    Column("pin", 10, Align::Left),
    Column("wait", 6, Align::Left),
    Column("round trips/s", 13, Align::Right),
    Column("per rt", 9, Align::Right),
    Column("cpu/rt", 9, Align::Right),
];

const PINGPONG_COLUMNS: [Column; 10] = [
    Column("mechanism", 10, Align::Left),
    Column("pin", 9, Align::Left),
    Column("round trips/s", 12, Align::Right),
    Column("mean", 9, Align::Right),
    Column("p50", 9, Align::Right),
    Column("p99", 9, Align::Right),
    Column("p99.9", 9, Align::Right),
    Column("max", 9, Align::Right),
    Column("cpu/rt", 9, Align::Right),
    Column("×floor", 7, Align::Right),
];

const STREAM_COLUMNS: [Column; 5] = [
    Column("mechanism", 10, Align::Left),
    Column("pin", 9, Align::Left),
    Column("messages/s", 12, Align::Right),
    Column("MB/s", 10, Align::Right),
    Column("cpu/msg", 9, Align::Right),
];

/// A table: its title line, the headings, and the cells of each row.
fn table<T, const N: usize>(
    w: &mut impl Write,
    title: std::fmt::Arguments<'_>,
    columns: &[Column; N],
    rows: impl IntoIterator<Item = T>,
    cells: impl Fn(T) -> [String; N],
) -> std::io::Result<()> {
    writeln!(w, "{title}")?;
    headings(w, columns)?;
    for row in rows {
        line(w, columns, &cells(row).each_ref().map(String::as_str))?;
    }
    Ok(())
}

fn print_floors(w: &mut impl Write, floors: &[FloorRow]) -> std::io::Result<()> {
    table(
        w,
        format_args!(
            "floor: one atomic word between the two processes, no payload, no clock per round trip"
        ),
        &FLOOR_COLUMNS,
        floors,
        |f| {
            [
                format!("{} {}/{}", f.pin, f.parent_cpu, f.child_cpu),
                f.wait.to_string(),
                rate(f.per_sec),
                dur(f.round_trip_ns),
                dur(f.cpu_ns_per_op),
            ]
        },
    )
}

fn pingpong_cells(r: &Row) -> [String; 10] {
    let l = r.latency_ns.unwrap_or(Latency {
        mean: 0.0,
        p50: 0.0,
        p99: 0.0,
        p999: 0.0,
        max: 0.0,
    });
    [
        r.mechanism.to_string(),
        r.placement(),
        rate(r.per_sec),
        dur(l.mean),
        dur(l.p50),
        dur(l.p99),
        dur(l.p999),
        dur(l.max),
        dur(r.cpu_ns_per_op),
        times(r.x_floor),
    ]
}

fn stream_cells(r: &Row) -> [String; 5] {
    [
        r.mechanism.to_string(),
        r.placement(),
        rate(r.per_sec),
        format!("{:.1}", r.mb_per_sec),
        dur(r.cpu_ns_per_op),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(columns: &[Column], cells: &[&str]) -> String {
        let mut w = Vec::new();
        headings(&mut w, columns).unwrap();
        line(&mut w, columns, cells).unwrap();
        String::from_utf8(w).unwrap()
    }

    #[test]
    fn table_columns_are_padded_one_space_apart() {
        let cells = ["posix-msq", "same 1/1", "1,234,567", "4.21µs", "0.0046"];
        let narrow = [
            Column("mechanism", 10, Align::Left),
            Column("pin", 9, Align::Left),
            Column("round trips/s", 12, Align::Right),
            Column("mean", 9, Align::Right),
            Column("×floor", 7, Align::Right),
        ];
        assert_eq!(
            lines(&narrow, &cells),
            format!(
                "{:<10} {:<9} {:>12} {:>9} {:>7}\n{:<10} {:<9} {:>12} {:>9} {:>7}\n",
                "mechanism",
                "pin",
                "round trips/s",
                "mean",
                "×floor",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4]
            )
        );
    }

    #[test]
    fn ratios_keep_their_digits() {
        assert_eq!(times(None), "-");
        assert_eq!(times(Some(0.0046)), "0.0046");
        assert_eq!(times(Some(0.05)), "0.050");
        assert_eq!(times(Some(0.74)), "0.74");
        assert_eq!(times(Some(1.324)), "1.32");
        assert_eq!(times(Some(12.44)), "12.4");
        assert_eq!(times(Some(603.2)), "603");
    }
}
