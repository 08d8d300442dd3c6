//! `bench --svg FILE`: the table as a horizontal bar chart, drawn with plotters.
//!
//! Ping-pong latencies span three orders of magnitude (a spinning round trip
//! against a blocking one across CPUs), so their axis is logarithmic; stream
//! throughput is drawn on a linear axis.

use std::path::Path;

use anyhow::{Result, anyhow};
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
    let n = bars.len() as i32;
    let mut builder = ChartBuilder::on(&root);
    let chart = builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(90);
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
    if log {
        let min = bars
            .iter()
            .map(|b| b.value)
            .fold(f64::INFINITY, f64::min)
            .max(1e-9);
        let low = 10f64.powf(min.log10().floor());
        let high = 10f64.powf(max.log10().ceil()).max(low * 10.0);
        let mut c = chart
            .build_cartesian_2d((low..high).log_scale(), (0..n).into_segmented())
            .map_err(|e| fail(&e))?;
        c.configure_mesh()
            .x_desc(unit)
            .y_label_formatter(&labels)
            .disable_y_mesh()
            .draw()
            .map_err(|e| fail(&e))?;
        c.draw_series(bars.iter().enumerate().map(|(i, b)| bar(i, b, low)))
            .map_err(|e| fail(&e))?;
    } else {
        let mut c = chart
            .build_cartesian_2d(0.0..max * 1.1, (0..n).into_segmented())
            .map_err(|e| fail(&e))?;
        c.configure_mesh()
            .x_desc(unit)
            .y_label_formatter(&labels)
            .disable_y_mesh()
            .draw()
            .map_err(|e| fail(&e))?;
        c.draw_series(bars.iter().enumerate().map(|(i, b)| bar(i, b, 0.0)))
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
