//! Training curves as a PNG: loss (left) and accuracy (right) per epoch, training and
//! validation, like the plots people draw from Keras' `history`.
//!
//! Lines, markers, grid, frame and legend samples are drawn by plotters' `BitMapBackend` into
//! an RGB buffer; titles, axis numbers and legend labels are drawn over them with the embedded
//! font of [`super::text`]. The buffer is encoded as PNG and written atomically.
//!
//! Missing or non-finite values (an epoch without validation, a diverged loss) leave a gap in
//! their line; a lone point still shows as a marker, so one epoch draws fine.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::text::{Align, Text, draw_text, size, text_width};
use super::{PlotError, write_png};

/// One epoch's values as the curves draw them: the trainer's metrics rows
/// ([`crate::train::metrics::EpochMetrics`]) implement it, so drawing depends on no trainer type.
pub trait EpochValues {
    /// The epoch, counted from 1.
    fn epoch(&self) -> usize;
    fn loss(&self) -> f32;
    fn accuracy(&self) -> f32;
    /// None when the epoch was not validated.
    fn val_loss(&self) -> Option<f32>;
    fn val_accuracy(&self) -> Option<f32>;
}

/// The size of `curves.png`: two 500×400 panels side by side.
pub const CURVES_SIZE: (u32, u32) = (1000, 400);
/// The training series' colour (matplotlib's first colour).
pub const TRAINING_COLOR: RGBColor = RGBColor(31, 119, 180);
/// The validation series' colour (matplotlib's second colour).
pub const VALIDATION_COLOR: RGBColor = RGBColor(255, 127, 14);
const GRID_COLOR: RGBColor = RGBColor(225, 225, 225);

// Panel margins around the plotting area, in pixels.
const MARGIN_TOP: i32 = 40;
const MARGIN_LEFT: i32 = 84;
const MARGIN_BOTTOM: i32 = 52;
const MARGIN_RIGHT: i32 = 20;

/// Writes `curves.png`-style training curves of `rows` to `path` ([`CURVES_SIZE`], PNG,
/// atomically).
pub fn write_curves_png(
    path: impl AsRef<Path>,
    rows: &[impl EpochValues],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    let (w, h) = CURVES_SIZE;
    let draw_err = |reason: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    };
    let rgb = render_curves(rows, w, h).map_err(|e| match e {
        PlotError::Draw { reason, .. } => draw_err(reason),
        e => e,
    })?;
    write_png(path, &rgb, w, h)
}

/// Draws the two-panel chart of `rows` into a `width`×`height` RGB8 buffer (row-major, 3 bytes
/// per pixel).
pub fn render_curves(
    rows: &[impl EpochValues],
    width: u32,
    height: u32,
) -> Result<Vec<u8>, PlotError> {
    if width < 320 || height < 180 {
        return Err(PlotError::TooSmall { width, height });
    }
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    let mut texts = Vec::new();
    draw_charts(&mut buf, (width, height), rows, &mut texts).map_err(|reason| PlotError::Draw {
        path: "<memory>".into(),
        reason,
    })?;
    for t in &texts {
        draw_text(&mut buf, (width, height), t);
    }
    Ok(buf)
}

/// One line of a panel: its legend name, its (epoch, value) points, its colour.
struct Series<'a> {
    name: &'static str,
    points: &'a [(f64, f64)],
    color: RGBColor,
}

/// One panel's content.
struct Panel<'a> {
    title: &'a str,
    training: Vec<(f64, f64)>,
    validation: Vec<(f64, f64)>,
    /// Keep the axis within [0, 1] (accuracy).
    unit_range: bool,
}

type Root<'b> = DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>;
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// plotters' drawing errors, as text for [`PlotError::Draw`].
fn de<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws both panels into `buf`; their text is pushed to `texts`, drawn afterwards.
fn draw_charts(
    buf: &mut [u8],
    size: (u32, u32),
    rows: &[impl EpochValues],
    texts: &mut Vec<Text>,
) -> Result<(), String> {
    let e = |r: &dyn EpochValues| r.epoch() as f64;
    let opt = |v: Option<f32>| v.map_or(f64::NAN, f64::from);
    let panels = [
        Panel {
            title: "loss",
            training: rows.iter().map(|r| (e(r), r.loss() as f64)).collect(),
            validation: rows.iter().map(|r| (e(r), opt(r.val_loss()))).collect(),
            unit_range: false,
        },
        Panel {
            title: "accuracy",
            training: rows.iter().map(|r| (e(r), r.accuracy() as f64)).collect(),
            validation: rows.iter().map(|r| (e(r), opt(r.val_accuracy()))).collect(),
            unit_range: true,
        },
    ];
    let (first, last) = match (rows.first(), rows.last()) {
        (Some(a), Some(b)) => (a.epoch() as f64, b.epoch() as f64),
        _ => (1.0, 1.0),
    };
    let x = if last > first {
        (first, last)
    } else {
        (first - 0.5, first + 0.5)
    };
    let root = BitMapBackend::with_buffer(buf, size).into_drawing_area();
    root.fill(&WHITE).map_err(de)?;
    let areas = root.split_evenly((1, 2));
    for (area, panel) in areas.iter().zip(&panels) {
        draw_panel(&root, area, panel, x, texts)?;
    }
    root.present().map_err(de)?;
    Ok(())
}

/// The y range of `panel` (all finite values, widened when flat) and its ticks.
fn y_range(panel: &Panel) -> (Ticks, f64, f64) {
    let finite: Vec<f64> = panel
        .training
        .iter()
        .chain(&panel.validation)
        .map(|p| p.1)
        .filter(|y| y.is_finite())
        .collect();
    let (mut lo, mut hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    if finite.is_empty() {
        (lo, hi) = (0.0, 1.0);
    } else if hi - lo < 1e-9 * hi.abs().max(1.0) {
        let pad = (lo.abs() * 0.1).max(0.05);
        (lo, hi) = (lo - pad, hi + pad);
    }
    let y_ticks = ticks(lo, hi, 6, false);
    let (mut y_lo, mut y_hi) = (y_ticks.lo.min(lo), y_ticks.hi.max(hi));
    if panel.unit_range && lo >= 0.0 && hi <= 1.0 {
        (y_lo, y_hi) = (y_lo.max(0.0), y_hi.min(1.0));
    }
    (y_ticks, y_lo, y_hi)
}

/// One panel: axes, series and legend in `area`, epochs `x` across.
fn draw_panel(
    root: &Root,
    area: &Root,
    panel: &Panel,
    x: (f64, f64),
    texts: &mut Vec<Text>,
) -> Result<(), String> {
    let (y_ticks, y_lo, y_hi) = y_range(panel);
    let mut chart = ChartBuilder::on(area)
        .margin_top(MARGIN_TOP as u32)
        .margin_left(MARGIN_LEFT as u32)
        .margin_bottom(MARGIN_BOTTOM as u32)
        .margin_right(MARGIN_RIGHT as u32)
        .build_cartesian_2d(x.0..x.1, y_lo..y_hi)
        .map_err(de)?;
    let x_ticks = ticks(x.0, x.1, 10, true);
    draw_axes(root, &mut chart, (&x_ticks, &y_ticks), texts)?;
    let (px, py) = chart.plotting_area().get_pixel_range();
    let mid = (px.start + px.end) / 2;
    texts.push(Text::new(
        mid,
        py.end + 28,
        "epoch",
        size::LABEL,
        Align::Center,
    ));
    texts.push(Text::new(
        mid,
        (py.start - 34).max(2),
        panel.title,
        size::TITLE,
        Align::Center,
    ));
    let series = [
        Series {
            name: "training",
            points: &panel.training,
            color: TRAINING_COLOR,
        },
        Series {
            name: "validation",
            points: &panel.validation,
            color: VALIDATION_COLOR,
        },
    ];
    let occupied = draw_series(&mut chart, &series)?;
    let shown: Vec<_> = series
        .iter()
        .filter(|s| s.points.iter().any(|p| p.1.is_finite()))
        .map(|s| (s.name, s.color))
        .collect();
    let plot_area = (px.start, py.start, px.end, py.end);
    draw_legend(root, &shown, &occupied, plot_area, texts)
}

/// Grid lines, the frame, ticks and their numbers.
fn draw_axes(
    root: &Root,
    chart: &mut Chart,
    (x_ticks, y_ticks): (&Ticks, &Ticks),
    texts: &mut Vec<Text>,
) -> Result<(), String> {
    let (xr, yr) = (chart.x_range(), chart.y_range());
    let (px, py) = chart.plotting_area().get_pixel_range();
    for &t in y_ticks
        .values
        .iter()
        .filter(|t| (yr.start..=yr.end).contains(*t))
    {
        let grid = PathElement::new(vec![(xr.start, t), (xr.end, t)], GRID_COLOR);
        chart.draw_series(std::iter::once(grid)).map_err(de)?;
        let (_, y) = chart.backend_coord(&(xr.start, t));
        let tick = PathElement::new(vec![(px.start - 5, y), (px.start, y)], BLACK);
        root.draw(&tick).map_err(de)?;
        let label = y_ticks.label(t);
        texts.push(Text::new(
            px.start - 8,
            y - 10,
            label,
            size::BODY,
            Align::Right,
        ));
    }
    for &t in x_ticks
        .values
        .iter()
        .filter(|t| (xr.start..=xr.end).contains(*t))
    {
        let grid = PathElement::new(vec![(t, yr.start), (t, yr.end)], GRID_COLOR);
        chart.draw_series(std::iter::once(grid)).map_err(de)?;
        let (x, _) = chart.backend_coord(&(t, yr.start));
        let tick = PathElement::new(vec![(x, py.end - 1), (x, py.end + 4)], BLACK);
        root.draw(&tick).map_err(de)?;
        let label = x_ticks.label(t);
        texts.push(Text::new(x, py.end + 6, label, size::BODY, Align::Center));
    }
    let frame = [(px.start, py.start), (px.end - 1, py.end - 1)];
    root.draw(&Rectangle::new(frame, BLACK.stroke_width(1)))
        .map_err(de)?;
    Ok(())
}

/// The series: lines over runs of finite points, a marker on every point. Returns the pixels
/// of the points, for the legend to avoid.
fn draw_series(chart: &mut Chart, series: &[Series]) -> Result<Vec<(i32, i32)>, String> {
    let mut occupied = Vec::new();
    for Series { points, color, .. } in series {
        for run in points.split(|p| !p.1.is_finite()) {
            if run.len() >= 2 {
                chart
                    .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                    .map_err(de)?;
            }
            chart
                .draw_series(run.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(de)?;
            occupied.extend(run.iter().map(|p| chart.backend_coord(p)));
        }
    }
    Ok(occupied)
}

/// The legend of the `shown` series, in the corner of the plotting area `(x0, y0, x1, y1)`
/// that covers the fewest `occupied` points.
fn draw_legend(
    root: &Root,
    shown: &[(&str, RGBColor)],
    occupied: &[(i32, i32)],
    (x0, y0, x1, y1): (i32, i32, i32, i32),
    texts: &mut Vec<Text>,
) -> Result<(), String> {
    if shown.is_empty() {
        return Ok(());
    }
    let label_w = shown
        .iter()
        .map(|s| text_width(s.0, size::BODY))
        .max()
        .unwrap_or(0);
    let (lw, lh) = (10 + 26 + 8 + label_w + 10, 8 + 22 * shown.len() as i32);
    let corners = [
        (x1 - 8 - lw, y0 + 8),
        (x1 - 8 - lw, y1 - 8 - lh),
        (x0 + 8, y0 + 8),
        (x0 + 8, y1 - 8 - lh),
    ];
    let (lx, ly) = *corners
        .iter()
        .min_by_key(|(x, y)| {
            occupied
                .iter()
                .filter(|(ox, oy)| {
                    (x - 6..x + lw + 6).contains(ox) && (y - 6..y + lh + 6).contains(oy)
                })
                .count()
        })
        .expect("four corners");
    let bounds = [(lx, ly), (lx + lw, ly + lh)];
    root.draw(&Rectangle::new(bounds, WHITE.filled()))
        .map_err(de)?;
    root.draw(&Rectangle::new(
        bounds,
        RGBColor(160, 160, 160).stroke_width(1),
    ))
    .map_err(de)?;
    for (i, (name, color)) in shown.iter().enumerate() {
        let y = ly + 4 + 22 * i as i32 + 11;
        let sample = PathElement::new(vec![(lx + 10, y), (lx + 36, y)], color.stroke_width(3));
        root.draw(&sample).map_err(de)?;
        texts.push(Text::new(lx + 44, y - 10, *name, size::BODY, Align::Left));
    }
    Ok(())
}

/// Axis ticks at a "nice" step (1, 2 or 5 times a power of ten).
struct Ticks {
    values: Vec<f64>,
    lo: f64,
    hi: f64,
    decimals: usize,
    step: f64,
}

impl Ticks {
    fn label(&self, v: f64) -> String {
        let v = if v.abs() < self.step * 1e-6 { 0.0 } else { v };
        if v.abs() >= 1e5 || (v != 0.0 && self.step < 1e-4) {
            format!("{v:.1e}")
        } else {
            format!("{v:.*}", self.decimals)
        }
    }
}

/// About `target` ticks covering [lo, hi]; `integer` keeps the step a whole number (epochs).
fn ticks(lo: f64, hi: f64, target: usize, integer: bool) -> Ticks {
    let raw = ((hi - lo) / target.max(1) as f64).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let mut step = mag
        * if norm <= 1.0 {
            1.0
        } else if norm <= 2.0 {
            2.0
        } else if norm <= 5.0 {
            5.0
        } else {
            10.0
        };
    if integer {
        step = step.round().max(1.0);
    }
    let t_lo = (lo / step - 1e-9).floor() * step;
    let t_hi = (hi / step + 1e-9).ceil() * step;
    let n = ((t_hi - t_lo) / step).round() as usize;
    let values = (0..=n.min(1000)).map(|i| t_lo + i as f64 * step).collect();
    let decimals = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
    Ticks {
        values,
        lo: t_lo,
        hi: t_hi,
        decimals,
        step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_cover_the_range() {
        let t = ticks(0.49, 0.96, 6, false);
        assert_eq!(t.step, 0.1);
        assert!(t.lo <= 0.49 && t.hi >= 0.96);
        assert_eq!(t.label(0.5), "0.5");
        let e = ticks(1.0, 25.0, 10, true);
        assert!(e.step >= 1.0 && e.step.fract() == 0.0);
        assert_eq!(e.label(5.0), "5");
        let one = ticks(0.5, 1.5, 10, true);
        assert!(one.values.contains(&1.0));
    }
}
