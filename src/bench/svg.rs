//! `bench --svg FILE`: the table as a horizontal bar chart, drawn with plotters.
//!
//! Ping-pong latencies span three orders of magnitude (a spinning round trip
//! against a blocking one across CPUs), so their axis is logarithmic; stream
//! throughput is drawn on a linear axis.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// One bar: a mechanism and its value in the chart's unit.
pub struct Bar<'a> {
    pub label: &'a str,
    pub value: f64,
}

/// Draw `bars` into an SVG file at `path`.
pub fn draw(path: &Path, title: &str, unit: &str, log: bool, bars: &[Bar<'_>]) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let height = 80 + 36 * bars.len().max(1) as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1e-9);
    let mut builder = ChartBuilder::on(&root);
    let chart = builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(90);
    // The two axes have different coordinate types, hence the generic helper.
    if log {
        let min = bars
            .iter()
            .map(|b| b.value)
            .fold(f64::INFINITY, f64::min)
            .max(1e-9);
        let low = 10f64.powf(min.log10().floor());
        let high = 10f64.powf(max.log10().ceil()).max(low * 10.0);
        plot(chart, (low..high).log_scale(), low, unit, bars).map_err(|e| fail(&e))?;
    } else {
        plot(chart, 0.0..max * 1.1, 0.0, unit, bars).map_err(|e| fail(&e))?;
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
    bars: &[Bar<'_>],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let n = bars.len() as i32;
    let labels = |i: &SegmentValue<i32>| match i {
        SegmentValue::CenterOf(i) => bars
            .get(*i as usize)
            .map_or(String::new(), |b| b.label.to_string()),
        _ => String::new(),
    };
    let bar = |i: usize, b: &Bar<'_>, low: f64| {
        let y0 = SegmentValue::Exact(i as i32);
        let y1 = SegmentValue::Exact(i as i32 + 1);
        Rectangle::new([(low, y0), (b.value.max(low), y1)], BLUE.mix(0.6).filled())
    };
    let mut c = chart.build_cartesian_2d(x, (0..n).into_segmented())?;
    c.configure_mesh()
        .x_desc(unit)
        .y_label_formatter(&labels)
        .disable_y_mesh()
        .draw()?;
    c.draw_series(bars.iter().enumerate().map(|(i, b)| bar(i, b, low)))?;
    Ok(())
}
