//! Training curves as a PNG: loss (left) and accuracy (right) per epoch, training and
//! validation, like the plots people draw from Keras' `history`.
//!
//! Lines, markers, grid, frame and legend samples are drawn by plotters' `BitMapBackend` into
//! an RGB buffer. plotters is built without any font feature (no system fonts, no font files),
//! so titles, axis numbers and legend labels are drawn by [`draw_text`] from a small built-in
//! 5×7 bitmap font (digits, lowercase letters, `. - + : % ( ) /`), scaled by whole pixels. The
//! buffer is encoded as PNG by the image crate and written atomically.
//!
//! Missing or non-finite values (an epoch without validation, a diverged loss) leave a gap in
//! their line; a lone point still shows as a marker, so one epoch draws fine.

use std::path::Path;

use image::ImageEncoder;
use plotters::prelude::*;
use thiserror::Error;

use super::atomic::{AtomicWriteError, write_atomic};
use super::metrics::EpochMetrics;

/// The size of `curves.png`: two 500×400 panels side by side.
pub const CURVES_SIZE: (u32, u32) = (1000, 400);
/// The training series' colour (matplotlib's first colour).
pub const TRAINING_COLOR: RGBColor = RGBColor(31, 119, 180);
/// The validation series' colour (matplotlib's second colour).
pub const VALIDATION_COLOR: RGBColor = RGBColor(255, 127, 14);
const GRID_COLOR: RGBColor = RGBColor(225, 225, 225);
const TEXT_COLOR: [u8; 3] = [30, 30, 30];

// Panel margins around the plotting area, in pixels.
const MARGIN_TOP: i32 = 40;
const MARGIN_LEFT: i32 = 84;
const MARGIN_BOTTOM: i32 = 52;
const MARGIN_RIGHT: i32 = 20;

/// A failure to draw or write the chart, naming the file.
#[derive(Debug, Error)]
pub enum PlotError {
    /// Writing the PNG failed; the previous file is intact.
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    /// The requested image is too small for the chart's margins.
    #[error("a {width}×{height} chart is too small (at least 320×180)")]
    TooSmall {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// plotters or the PNG encoder failed.
    #[error("could not draw {}: {reason}", path.display())]
    Draw {
        /// The file being drawn.
        path: std::path::PathBuf,
        /// The drawing library's message.
        reason: String,
    },
}

/// Writes `curves.png`-style training curves of `rows` to `path` ([`CURVES_SIZE`], PNG,
/// atomically).
pub fn write_curves_png(path: impl AsRef<Path>, rows: &[EpochMetrics]) -> Result<(), PlotError> {
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
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| draw_err(e.to_string()))?;
    write_atomic(path, &png)?;
    Ok(())
}

/// Draws the two-panel chart of `rows` into a `width`×`height` RGB8 buffer (row-major, 3 bytes
/// per pixel).
pub fn render_curves(rows: &[EpochMetrics], width: u32, height: u32) -> Result<Vec<u8>, PlotError> {
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

/// One panel's content.
struct Panel<'a> {
    title: &'a str,
    training: Vec<(f64, f64)>,
    validation: Vec<(f64, f64)>,
    /// Keep the axis within [0, 1] (accuracy).
    unit_range: bool,
}

fn draw_charts(
    buf: &mut [u8],
    size: (u32, u32),
    rows: &[EpochMetrics],
    texts: &mut Vec<Text>,
) -> Result<(), String> {
    let e = |r: &EpochMetrics| r.epoch as f64;
    let opt = |v: Option<f32>| v.map_or(f64::NAN, f64::from);
    let panels = [
        Panel {
            title: "loss",
            training: rows.iter().map(|r| (e(r), r.loss as f64)).collect(),
            validation: rows.iter().map(|r| (e(r), opt(r.val_loss))).collect(),
            unit_range: false,
        },
        Panel {
            title: "accuracy",
            training: rows.iter().map(|r| (e(r), r.accuracy as f64)).collect(),
            validation: rows.iter().map(|r| (e(r), opt(r.val_accuracy))).collect(),
            unit_range: true,
        },
    ];
    let (first, last) = match (rows.first(), rows.last()) {
        (Some(a), Some(b)) => (a.epoch as f64, b.epoch as f64),
        _ => (1.0, 1.0),
    };
    let (x_lo, x_hi) = if last > first {
        (first, last)
    } else {
        (first - 0.5, first + 0.5)
    };
    let x_ticks = ticks(x_lo, x_hi, 10, true);

    let root = BitMapBackend::with_buffer(buf, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((1, 2));
    for (area, panel) in areas.iter().zip(&panels) {
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

        let mut chart = ChartBuilder::on(area)
            .margin_top(MARGIN_TOP as u32)
            .margin_left(MARGIN_LEFT as u32)
            .margin_bottom(MARGIN_BOTTOM as u32)
            .margin_right(MARGIN_RIGHT as u32)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(|e| e.to_string())?;
        let (px, py) = chart.plotting_area().get_pixel_range();
        let de = |e: DrawingAreaErrorKind<_>| e.to_string();

        // Grid, then frame, ticks and their numbers.
        for &t in y_ticks.values.iter().filter(|t| (y_lo..=y_hi).contains(*t)) {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x_lo, t), (x_hi, t)],
                    GRID_COLOR,
                )))
                .map_err(de)?;
            let (_, y) = chart.backend_coord(&(x_lo, t));
            root.draw(&PathElement::new(
                vec![(px.start - 5, y), (px.start, y)],
                BLACK,
            ))
            .map_err(de)?;
            texts.push(Text::new(
                px.start - 8,
                y - 7,
                y_ticks.label(t),
                2,
                Align::Right,
            ));
        }
        for &t in x_ticks.values.iter().filter(|t| (x_lo..=x_hi).contains(*t)) {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(t, y_lo), (t, y_hi)],
                    GRID_COLOR,
                )))
                .map_err(de)?;
            let (x, _) = chart.backend_coord(&(t, y_lo));
            root.draw(&PathElement::new(
                vec![(x, py.end - 1), (x, py.end + 4)],
                BLACK,
            ))
            .map_err(de)?;
            texts.push(Text::new(x, py.end + 8, x_ticks.label(t), 2, Align::Center));
        }
        root.draw(&Rectangle::new(
            [(px.start, py.start), (px.end - 1, py.end - 1)],
            BLACK.stroke_width(1),
        ))
        .map_err(de)?;
        let mid = (px.start + px.end) / 2;
        texts.push(Text::new(
            mid,
            py.end + 30,
            "epoch".into(),
            2,
            Align::Center,
        ));
        texts.push(Text::new(
            mid,
            (py.start - 31).max(2),
            panel.title.into(),
            3,
            Align::Center,
        ));

        // The series: lines over runs of finite points, a marker on every point.
        let series = [
            ("training", &panel.training, TRAINING_COLOR),
            ("validation", &panel.validation, VALIDATION_COLOR),
        ];
        let mut occupied = Vec::new();
        for (_, points, color) in &series {
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

        // Legend: the series that have any value, in the corner with the fewest points.
        let shown: Vec<_> = series
            .iter()
            .filter(|(_, pts, _)| pts.iter().any(|p| p.1.is_finite()))
            .collect();
        if shown.is_empty() {
            continue;
        }
        let label_w = shown.iter().map(|s| s.0.len() as i32).max().unwrap_or(0) * 12;
        let (lw, lh) = (10 + 26 + 8 + label_w + 8, 8 + 20 * shown.len() as i32);
        let corners = [
            (px.end - 8 - lw, py.start + 8),
            (px.end - 8 - lw, py.end - 8 - lh),
            (px.start + 8, py.start + 8),
            (px.start + 8, py.end - 8 - lh),
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
        root.draw(&Rectangle::new(
            [(lx, ly), (lx + lw, ly + lh)],
            WHITE.filled(),
        ))
        .map_err(de)?;
        root.draw(&Rectangle::new(
            [(lx, ly), (lx + lw, ly + lh)],
            RGBColor(160, 160, 160).stroke_width(1),
        ))
        .map_err(de)?;
        for (i, (name, _, color)) in shown.iter().enumerate() {
            let y = ly + 4 + 20 * i as i32 + 10;
            root.draw(&PathElement::new(
                vec![(lx + 10, y), (lx + 36, y)],
                color.stroke_width(3),
            ))
            .map_err(de)?;
            texts.push(Text::new(lx + 44, y - 7, (*name).into(), 2, Align::Left));
        }
    }
    root.present().map_err(|e| e.to_string())?;
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

/// Horizontal anchoring of a [`Text`] at its x.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// x is the left edge.
    Left,
    /// x is the centre.
    Center,
    /// x is the right edge.
    Right,
}

/// A string to draw with the built-in font.
#[derive(Debug, Clone)]
pub struct Text {
    /// Anchor x in pixels (see `align`).
    pub x: i32,
    /// Top edge in pixels.
    pub y: i32,
    /// The string; characters without a glyph draw as a hollow box.
    pub text: String,
    /// Whole-pixel scale: a glyph is 5·scale wide, 7·scale above the baseline and 2·scale
    /// below, advancing 6·scale.
    pub scale: u32,
    /// Horizontal anchoring.
    pub align: Align,
}

impl Text {
    /// A dark-grey text at (x, y).
    pub fn new(x: i32, y: i32, text: String, scale: u32, align: Align) -> Self {
        Self {
            x,
            y,
            text,
            scale,
            align,
        }
    }

    /// Width in pixels as drawn (no trailing spacing).
    pub fn width(&self) -> i32 {
        let n = self.text.chars().count() as i32;
        (n * 6 - 1).max(0) * self.scale as i32
    }
}

/// Draws `t` into an RGB8 buffer of `size` with the built-in 5×7 font, clipped to the buffer.
pub fn draw_text(buf: &mut [u8], size: (u32, u32), t: &Text) {
    let (w, h) = (size.0 as i32, size.1 as i32);
    let s = t.scale.max(1) as i32;
    let x0 = match t.align {
        Align::Left => t.x,
        Align::Center => t.x - t.width() / 2,
        Align::Right => t.x - t.width(),
    };
    for (i, c) in t.text.chars().enumerate() {
        let rows = glyph(c);
        let gx = x0 + i as i32 * 6 * s;
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        let (x, y) = (gx + col * s + dx, t.y + r as i32 * s + dy);
                        if (0..w).contains(&x) && (0..h).contains(&y) {
                            let o = (y as usize * w as usize + x as usize) * 3;
                            buf[o..o + 3].copy_from_slice(&TEXT_COLOR);
                        }
                    }
                }
            }
        }
    }
}

/// The 5×7 glyph of `c` plus two descender rows (g, j, p, q, y), one byte per row, bit 4 the
/// leftmost column.
fn glyph(c: char) -> [u8; 9] {
    match c {
        ' ' => [0; 9],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00, 0x00],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00, 0x00],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00, 0x00],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00, 0x00],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00, 0x00],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00, 0x00],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00, 0x00],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00],
        'a' => [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00, 0x00],
        'b' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00, 0x00],
        'c' => [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00],
        'd' => [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00, 0x00],
        'e' => [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00, 0x00],
        'f' => [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00, 0x00],
        'g' => [0x00, 0x00, 0x0F, 0x11, 0x11, 0x13, 0x0D, 0x01, 0x0E],
        'h' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00],
        'i' => [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00],
        'j' => [0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'k' => [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00],
        'm' => [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00, 0x00],
        'n' => [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00],
        'o' => [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00],
        'p' => [0x00, 0x00, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10],
        'q' => [0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01],
        'r' => [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00],
        's' => [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0x00, 0x00],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00],
        'u' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00, 0x00],
        'v' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00],
        'w' => [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00, 0x00],
        'x' => [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00, 0x00],
        'y' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x01, 0x0E],
        'z' => [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00],
        c if c.is_ascii_uppercase() => glyph(c.to_ascii_lowercase()),
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F, 0x00, 0x00],
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

    #[test]
    fn text_draws_glyph_pixels_and_clips() {
        let size = (40, 20);
        let mut buf = vec![255u8; 40 * 20 * 3];
        draw_text(&mut buf, size, &Text::new(1, 1, "1".into(), 1, Align::Left));
        // '1': row 0 has only column 2 set.
        let px = |b: &[u8], x: usize, y: usize| b[(y * 40 + x) * 3];
        assert_eq!(px(&buf, 3, 1), TEXT_COLOR[0]);
        assert_eq!(px(&buf, 1, 1), 255);
        // Text running off every edge must not panic.
        draw_text(
            &mut buf,
            size,
            &Text::new(-10, -5, "accuracy 0.95".into(), 3, Align::Left),
        );
        draw_text(
            &mut buf,
            size,
            &Text::new(39, 18, "loss".into(), 2, Align::Center),
        );
    }
}
