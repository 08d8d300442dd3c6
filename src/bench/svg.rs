//! `bench --svg FILE`, drawn with plotters: for one size the table as a
//! horizontal bar chart, for several the curves against size.
//!
//! Ping-pong latencies span three orders of magnitude (a spinning round trip
//! against a blocking one across CPUs), so their axis is logarithmic; stream
//! throughput is drawn on a linear axis. The curves are log-log.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// One bar: a mechanism and its value in the chart's unit.
pub struct Bar<'a> {
    pub label: &'a str,
    pub value: f64,
}

/// Draw `bars` into an SVG file at `path`, one per row, the first on top.
pub fn draw(path: &Path, title: &str, unit: &str, log: bool, bars: &[Bar<'_>]) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let height = 90 + 34 * bars.len().max(1) as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1e-9);
    let mut builder = ChartBuilder::on(&root);
    let chart = builder
        .caption(title, ("sans-serif", 18))
        .margin(14)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(130);
    // The two axes have different coordinate types, hence the generic helper.
    if log {
        let min = bars
            .iter()
            .map(|b| b.value)
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min)
            .min(max);
        // A decade boundary a little below the shortest bar, so that every
        // bar shows.
        let low = 10f64.powf((min / 2.0).log10().floor());
        let high = 10f64.powf((max * 1.2).log10().ceil()).max(low * 10.0);
        let x = (low..high).log_scale();
        plot(chart, x, low, unit, &|v| nanos(v), bars).map_err(|e| fail(&e))?;
    } else {
        let x = 0.0..max * 1.1;
        plot(chart, x, 0.0, unit, &|v| format!("{v:.0}"), bars).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// Axes, labels and one bar per mechanism, from `low` on the value axis `x`.
fn plot<DB, X>(
    chart: &mut ChartBuilder<'_, '_, DB>,
    x: X,
    low: f64,
    unit: &str,
    x_fmt: &dyn Fn(f64) -> String,
    bars: &[Bar<'_>],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    // Row i (the first on top) spans STEP units of the y axis, its bar a
    // little less; its label sits at the middle.
    const STEP: i32 = 20;
    let n = bars.len().max(1) as i32;
    let centers: Vec<i32> = (0..n).map(|k| k * STEP + STEP / 2).collect();
    let label = |v: &i32| {
        let row = n - 1 - v.div_euclid(STEP);
        bars.get(row as usize)
            .map_or(String::new(), |b| b.label.to_string())
    };
    let bar = |i: usize, b: &Bar<'_>| {
        let top = (n - i as i32) * STEP - 3;
        let bottom = (n - i as i32 - 1) * STEP + 3;
        Rectangle::new(
            [(low, top), (b.value.max(low), bottom)],
            BLUE.mix(0.6).filled(),
        )
    };
    let y = (0..n * STEP).with_key_points(centers);
    let mut c = chart.build_cartesian_2d(x, y)?;
    c.configure_mesh()
        .x_desc(unit)
        .x_label_formatter(&|v| x_fmt(*v))
        .y_label_formatter(&label)
        .disable_y_mesh()
        .label_style(("sans-serif", 14))
        .draw()?;
    c.draw_series(bars.iter().enumerate().map(|(i, b)| bar(i, b)))?;
    Ok(())
}

/// One measured point of a curve.
pub struct Point {
    /// Message size in bytes.
    pub size: f64,
    /// Median round trip (pingpong) or time per message (stream), ns.
    pub latency_ns: f64,
    pub mb_per_sec: f64,
}

/// One mechanism (at one placement) across sizes.
pub struct Series {
    pub label: String,
    /// Which color (the mechanism) and which shade of it (the placement).
    pub color: usize,
    pub shade: usize,
    pub points: Vec<Point>,
}

/// Distinct colors for up to twelve mechanisms (Tableau's palette, then
/// four more); a thirteenth starts over.
const COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(0, 90, 50),
];

fn color_of(s: &Series) -> RGBAColor {
    let alpha = 1.0 - 0.45 * (s.shade.min(2) as f64);
    COLORS[s.color % COLORS.len()].mix(alpha)
}

/// 64 B, 4 KiB, 1 MiB
fn bytes(v: f64) -> String {
    let v = v.round() as u64;
    if v >= 1 << 20 && v % (1 << 20) == 0 {
        format!("{} MiB", v >> 20)
    } else if v >= 1 << 10 && v % (1 << 10) == 0 {
        format!("{} KiB", v >> 10)
    } else {
        format!("{v} B")
    }
}

/// 100 ns, 10 µs, 1 ms
fn nanos(v: f64) -> String {
    match super::report::in_unit(v) {
        (v, "ns") => format!("{v:.0} ns"),
        (v, unit) => format!("{v} {unit}"),
    }
}

/// `--svg FILE` with several sizes: latency against size above, throughput
/// against size below, both on log-log axes, one line per series, and the
/// legend beside them.
pub fn curves(path: &Path, pattern: super::Pattern, pin: &str, series: &[Series]) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let root = SVGBackend::new(path, (1100, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (charts, legend) = root.split_horizontally(860);
    let (top, bottom) = charts.split_vertically(500);
    let mut sizes: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.size))
        .collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let (title, unit) = match pattern {
        super::Pattern::Pingpong => (
            format!("round trip, pin {pin}: median latency against message size"),
            "median round trip",
        ),
        super::Pattern::Stream => (
            format!("one way, pin {pin}: time per message against message size"),
            "time per message",
        ),
    };
    let lat = |p: &Point| p.latency_ns;
    curve(&top, &title, unit, &sizes, series, &lat, &nanos).map_err(|e| fail(&e))?;
    let title = match pattern {
        super::Pattern::Pingpong => {
            format!("round trip, pin {pin}: MB/s one way (size × round trips/s)")
        }
        super::Pattern::Stream => format!("one way, pin {pin}: throughput against message size"),
    };
    let mb = |p: &Point| p.mb_per_sec;
    let mb_fmt = |v: f64| format!("{v} MB/s");
    curve(&bottom, &title, "MB/s", &sizes, series, &mb, &mb_fmt).map_err(|e| fail(&e))?;
    draw_legend(&legend, series).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// One chart: `value` of every series against size, log-log.
fn curve<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    sizes: &[f64],
    series: &[Series],
    value: &dyn Fn(&Point) -> f64,
    y_fmt: &dyn Fn(f64) -> String,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().map(value))
        .filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo, hi)
    } else {
        (1.0, 10.0)
    };
    // A decade boundary at least a little beyond the lowest and highest
    // points, so none sits on the frame.
    let y_lo = 10f64.powf((lo / 1.2).log10().floor());
    let y_hi = 10f64.powf((hi * 1.2).log10().ceil()).max(y_lo * 10.0);
    let x_lo = sizes.first().copied().unwrap_or(16.0) / 1.5;
    let x_hi = sizes.last().copied().unwrap_or(1e6) * 1.5;
    let x = (x_lo..x_hi).log_scale().with_key_points(sizes.to_vec());
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 19))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(86)
        .build_cartesian_2d(x, (y_lo..y_hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("message size (log scale)")
        .y_desc(format!("{unit} (log scale)"))
        .x_label_formatter(&|v| bytes(*v))
        .y_label_formatter(&|v| y_fmt(*v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    for s in series {
        let color = color_of(s);
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (p.size, value(p)))
            .filter(|&(_, v)| v > 0.0)
            .collect();
        let line = PathElement::new(points.clone(), color.stroke_width(2));
        chart.draw_series(std::iter::once(line))?;
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    Ok(())
}

/// The legend beside the charts: a colored square and the series' name.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = ("sans-serif", 15).into_font().color(&BLACK);
    area.draw(&Text::new("mechanism", (10, 24), style.clone()))?;
    for (i, s) in series.iter().enumerate() {
        let y = 50 + 24 * i as i32;
        area.draw(&Rectangle::new(
            [(10, y - 6), (28, y + 6)],
            color_of(s).filled(),
        ))?;
        area.draw(&Text::new(s.label.clone(), (36, y - 8), style.clone()))?;
    }
    Ok(())
}
