//! `confusion.png` and `roc.png`: the confusion matrix as a heat map and a binary model's ROC
//! curve, drawn into an RGB8 buffer (text with the built-in bitmap font of
//! [`crate::train::plot`]), encoded as PNG by the image crate and written atomically.

use std::path::{Path, PathBuf};

use image::ImageEncoder;
use thiserror::Error;

use super::metrics::EvalReport;
use crate::train::atomic::{AtomicWriteError, write_atomic};
use crate::train::plot::{Align, Text, draw_text};

/// The size of `roc.png`.
pub const ROC_SIZE: (u32, u32) = (520, 540);

const GRID: [u8; 3] = [225, 225, 225];
const FRAME: [u8; 3] = [90, 90, 90];
const DIAGONAL: [u8; 3] = [150, 150, 150];
const CURVE: [u8; 3] = [31, 119, 180];
// The heat map runs from LOW (a zero cell) to HIGH (the largest count); HIGH is kept light
// enough for the dark-grey counts to stay legible on it.
const LOW: [u8; 3] = [247, 251, 255];
const HIGH: [u8; 3] = [66, 146, 198];
const CELL_BORDER: [u8; 3] = [200, 200, 200];

// confusion.png layout.
const C_TITLE_Y: i32 = 12;
const C_HEADER_Y: i32 = 42;
const C_COLUMN_Y: i32 = 68;
const C_GRID_Y: i32 = 94;
const C_MARGIN: i32 = 24;
const C_MAX_LABEL: usize = 16;

// roc.png plotting area.
const R_LEFT: i32 = 70;
const R_TOP: i32 = 60;
const R_SIDE: i32 = 420;

/// A failure to draw or write a chart, naming the file.
#[derive(Debug, Error)]
pub enum EvalPlotError {
    /// Writing the PNG failed; a previous file at the path is intact.
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    /// The PNG encoder failed.
    #[error("could not encode {} as PNG: {reason}", path.display())]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The encoder's message.
        reason: String,
    },
    /// There is nothing to draw (a report without classes).
    #[error("cannot draw {}: {reason}", path.display())]
    Empty {
        /// The file that was to be written.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
}

/// The side of one confusion-matrix cell for `k` classes.
fn cell_side(k: usize) -> i32 {
    if k <= 6 { 90 } else { (720 / k as i32).max(16) }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// How the columns of the confusion grid are labelled.
#[derive(Clone, Copy, PartialEq)]
enum ColumnLabels {
    /// Every class name fits its column at this text scale.
    Names(u32),
    /// Some name does not fit: columns show class indices, row labels end in `(index)`.
    Indices,
}

fn column_labels(report: &EvalReport) -> ColumnLabels {
    let cell = cell_side(report.class_names.len());
    let longest = report
        .class_names
        .iter()
        .map(|s| s.chars().count() as i32)
        .max()
        .unwrap_or(0);
    if longest * 12 <= cell - 4 {
        ColumnLabels::Names(2)
    } else if longest * 6 <= cell - 2 {
        ColumnLabels::Names(1)
    } else {
        ColumnLabels::Indices
    }
}

/// The label of true class `t` left of its row: the name (at most 16 characters), followed by
/// ` (t)` when the columns show indices.
fn row_label(report: &EvalReport, t: usize) -> String {
    let name = truncate(&report.class_names[t], C_MAX_LABEL);
    match column_labels(report) {
        ColumnLabels::Names(_) => name,
        ColumnLabels::Indices => format!("{name} ({t})"),
    }
}

/// The x of the confusion grid's left edge: room for the row labels.
fn grid_x(report: &EvalReport) -> i32 {
    let longest = (0..report.class_names.len())
        .map(|t| row_label(report, t).chars().count())
        .chain(["true".len()])
        .max()
        .unwrap_or(4);
    C_MARGIN + longest as i32 * 12 + 8
}

/// The pixel size of `confusion.png` for `report`: the grid's cells shrink as classes grow,
/// the left margin fits the class names (up to 16 characters). Columns are labelled with the
/// class names where they all fit, otherwise with class indices repeated after the row labels.
pub fn confusion_png_size(report: &EvalReport) -> (u32, u32) {
    let k = report.class_names.len() as i32;
    let grid = k * cell_side(k as usize);
    let w = (grid_x(report) + grid + C_MARGIN).max(320);
    let h = C_GRID_Y + grid + C_MARGIN;
    (w as u32, h as u32)
}

/// Draws the confusion matrix of `report` into an RGB8 buffer of [`confusion_png_size`]:
/// one cell per (true, predicted) pair shaded by its count relative to the largest, the count
/// written in it where it fits, true classes down the left, predicted classes along the top.
pub fn render_confusion(report: &EvalReport) -> Vec<u8> {
    let (w, h) = confusion_png_size(report);
    let size = (w, h);
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let k = report.class_names.len();
    let cell = cell_side(k);
    let gx = grid_x(report);
    let max = report
        .confusion_matrix
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let mut texts = vec![
        Text::new(
            w as i32 / 2,
            C_TITLE_Y,
            "confusion matrix".into(),
            2,
            Align::Center,
        ),
        Text::new(
            gx + (k as i32 * cell) / 2,
            C_HEADER_Y,
            "predicted".into(),
            2,
            Align::Center,
        ),
        Text::new(gx - 8, C_COLUMN_Y, "true".into(), 2, Align::Right),
    ];
    for (t, row) in report.confusion_matrix.iter().enumerate() {
        let y0 = C_GRID_Y + t as i32 * cell;
        for (p, &v) in row.iter().enumerate() {
            let x0 = gx + p as i32 * cell;
            let f = v as f64 / max as f64;
            let color: [u8; 3] = std::array::from_fn(|i| {
                (LOW[i] as f64 + (HIGH[i] as f64 - LOW[i] as f64) * f).round() as u8
            });
            fill_rect(&mut buf, size, x0, y0, cell, cell, color);
            stroke_rect(&mut buf, size, x0, y0, cell, cell, CELL_BORDER);
            let label = v.to_string();
            let chars = label.len() as i32;
            let scale = if chars * 12 <= cell - 6 && cell >= 24 {
                2
            } else if chars * 6 <= cell - 2 && cell >= 10 {
                1
            } else {
                0
            };
            if scale > 0 {
                texts.push(Text::new(
                    x0 + cell / 2,
                    y0 + (cell - 7 * scale) / 2,
                    label,
                    scale as u32,
                    Align::Center,
                ));
            }
        }
        let name = row_label(report, t);
        texts.push(Text::new(
            gx - 8,
            y0 + (cell - 14) / 2,
            name,
            2,
            Align::Right,
        ));
    }
    let columns = column_labels(report);
    for (p, name) in report.class_names.iter().enumerate() {
        let cx = gx + p as i32 * cell + cell / 2;
        texts.push(match columns {
            ColumnLabels::Names(2) => Text::new(cx, C_COLUMN_Y, name.clone(), 2, Align::Center),
            ColumnLabels::Names(scale) => {
                Text::new(cx, C_COLUMN_Y + 4, name.clone(), scale, Align::Center)
            }
            ColumnLabels::Indices => {
                let scale = if p.to_string().len() as i32 * 12 <= cell - 4 {
                    2
                } else {
                    1
                };
                Text::new(cx, C_COLUMN_Y, p.to_string(), scale, Align::Center)
            }
        });
    }
    stroke_rect(
        &mut buf,
        size,
        gx,
        C_GRID_Y,
        k as i32 * cell,
        k as i32 * cell,
        FRAME,
    );
    for t in &texts {
        draw_text(&mut buf, size, t);
    }
    buf
}

/// Writes the confusion matrix of `report` to `path` as a PNG ([`render_confusion`]),
/// atomically.
pub fn write_confusion_png(
    path: impl AsRef<Path>,
    report: &EvalReport,
) -> Result<(), EvalPlotError> {
    let path = path.as_ref();
    if report.class_names.is_empty() {
        return Err(EvalPlotError::Empty {
            path: path.to_path_buf(),
            reason: "the report has no classes".into(),
        });
    }
    let (w, h) = confusion_png_size(report);
    write_png(path, &render_confusion(report), w, h)
}

/// Draws a ROC curve into an RGB8 buffer of [`ROC_SIZE`]: both axes 0–1 with a grid every
/// 0.2, the chance diagonal dashed, the curve through `points` (`(fpr, tpr)`, clamped to
/// 0–1), and the AUC in the title (`n/a` when `None`).
pub fn render_roc(points: &[(f64, f64)], auc: Option<f64>) -> Vec<u8> {
    let (w, h) = ROC_SIZE;
    let size = (w, h);
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let to_px = |fpr: f64, tpr: f64| {
        let (x, y) = (fpr.clamp(0.0, 1.0), tpr.clamp(0.0, 1.0));
        (
            R_LEFT as f64 + x * R_SIDE as f64,
            (R_TOP + R_SIDE) as f64 - y * R_SIDE as f64,
        )
    };
    let mut texts = Vec::new();
    for i in 0..=5 {
        let v = i as f64 / 5.0;
        let (x, _) = to_px(v, 0.0);
        let (_, y) = to_px(0.0, v);
        let (x, y) = (x.round() as i32, y.round() as i32);
        fill_rect(&mut buf, size, x, R_TOP, 1, R_SIDE, GRID);
        fill_rect(&mut buf, size, R_LEFT, y, R_SIDE, 1, GRID);
        let label = format!("{v:.1}");
        texts.push(Text::new(
            x,
            R_TOP + R_SIDE + 8,
            label.clone(),
            2,
            Align::Center,
        ));
        texts.push(Text::new(R_LEFT - 8, y - 7, label, 2, Align::Right));
    }
    // The chance diagonal, dashed.
    let steps = 40;
    for s in (0..steps).step_by(2) {
        let (a, b) = (s as f64 / steps as f64, (s + 1) as f64 / steps as f64);
        line(&mut buf, size, to_px(a, a), to_px(b, b), 1, DIAGONAL);
    }
    stroke_rect(&mut buf, size, R_LEFT, R_TOP, R_SIDE + 1, R_SIDE + 1, FRAME);
    for seg in points.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        if [a.0, a.1, b.0, b.1].iter().all(|v| v.is_finite()) {
            line(&mut buf, size, to_px(a.0, a.1), to_px(b.0, b.1), 2, CURVE);
        }
    }
    let auc = auc.map_or_else(|| "n/a".into(), |a| format!("{a:.4}"));
    texts.push(Text::new(
        w as i32 / 2,
        12,
        format!("roc curve (auc {auc})"),
        2,
        Align::Center,
    ));
    texts.push(Text::new(
        R_LEFT,
        R_TOP - 20,
        "true positive rate".into(),
        2,
        Align::Left,
    ));
    texts.push(Text::new(
        R_LEFT + R_SIDE / 2,
        R_TOP + R_SIDE + 34,
        "false positive rate".into(),
        2,
        Align::Center,
    ));
    for t in &texts {
        draw_text(&mut buf, size, t);
    }
    buf
}

/// Writes a ROC curve ([`render_roc`]) to `path` as a [`ROC_SIZE`] PNG, atomically.
pub fn write_roc_png(
    path: impl AsRef<Path>,
    points: &[(f64, f64)],
    auc: Option<f64>,
) -> Result<(), EvalPlotError> {
    let (w, h) = ROC_SIZE;
    write_png(path.as_ref(), &render_roc(points, auc), w, h)
}

fn write_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<(), EvalPlotError> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| EvalPlotError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    write_atomic(path, &png)?;
    Ok(())
}

fn put(buf: &mut [u8], size: (u32, u32), x: i32, y: i32, color: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < size.0 && (y as u32) < size.1 {
        let o = (y as usize * size.0 as usize + x as usize) * 3;
        buf[o..o + 3].copy_from_slice(&color);
    }
}

fn fill_rect(buf: &mut [u8], size: (u32, u32), x: i32, y: i32, w: i32, h: i32, color: [u8; 3]) {
    for yy in y..y + h {
        for xx in x..x + w {
            put(buf, size, xx, yy, color);
        }
    }
}

fn stroke_rect(buf: &mut [u8], size: (u32, u32), x: i32, y: i32, w: i32, h: i32, color: [u8; 3]) {
    fill_rect(buf, size, x, y, w, 1, color);
    fill_rect(buf, size, x, y + h - 1, w, 1, color);
    fill_rect(buf, size, x, y, 1, h, color);
    fill_rect(buf, size, x + w - 1, y, 1, h, color);
}

/// A straight line `width` pixels thick from `a` to `b` (pixel coordinates).
fn line(
    buf: &mut [u8],
    size: (u32, u32),
    a: (f64, f64),
    b: (f64, f64),
    width: i32,
    color: [u8; 3],
) {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let steps = (len * 2.0).ceil().max(1.0) as usize;
    let lo = -(width - 1) / 2;
    let hi = width / 2;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let x = (a.0 + (b.0 - a.0) * t).round() as i32;
        let y = (a.1 + (b.1 - a.1) * t).round() as i32;
        for dy in lo..=hi {
            for dx in lo..=hi {
                put(buf, size, x + dx, y + dy, color);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: [u8; 3] = [255, 255, 255];

    #[test]
    fn lines_and_rects_clip_at_the_edges() {
        let size = (10, 10);
        let mut buf = vec![255u8; 300];
        line(&mut buf, size, (-5.0, -5.0), (20.0, 20.0), 3, CURVE);
        stroke_rect(&mut buf, size, -3, -3, 30, 30, FRAME);
        // The diagonal passes through (5, 5).
        assert_eq!(&buf[(5 * 10 + 5) * 3..(5 * 10 + 5) * 3 + 3], &CURVE);
        assert_eq!(&buf[(9 * 10) * 3..(9 * 10) * 3 + 3], &WHITE);
    }
}
