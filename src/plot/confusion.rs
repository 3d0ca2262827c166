//! `confusion.png`: the confusion matrix of an [`Confusion`] (an evaluation's report) as a heat map, true classes
//! down the left, predicted classes along the top, each cell shaded by its count relative to
//! the largest and the count written in it where it fits.

use std::path::Path;

use super::raster::{fill_rect, stroke_rect};
use super::text::{Align, Text, draw_text, size, text_width};
use super::{PlotError, write_png};

/// A confusion matrix as the heat map draws it: the evaluation's report
/// ([`crate::eval::metrics::EvalReport`]) implements it, so drawing depends on no evaluation type.
pub trait Confusion {
    /// The class names, index = class.
    fn class_names(&self) -> &[String];
    /// counts[true class][predicted class].
    fn counts(&self) -> &[Vec<usize>];
}

const FRAME: [u8; 3] = [90, 90, 90];
// The heat map runs from LOW (a zero cell) to HIGH (the largest count); HIGH is kept light
// enough for the dark-grey counts to stay legible on it.
const LOW: [u8; 3] = [247, 251, 255];
const HIGH: [u8; 3] = [66, 146, 198];
const CELL_BORDER: [u8; 3] = [200, 200, 200];

// Layout: the title, the "predicted" header, the column labels, then the grid.
const TITLE_Y: i32 = 10;
const HEADER_Y: i32 = 42;
const COLUMN_Y: i32 = 68;
const GRID_Y: i32 = 94;
const MARGIN: i32 = 24;
/// Row labels are cut to this many characters.
const MAX_LABEL: usize = 16;

/// The side of one confusion-matrix cell for `k` classes.
fn cell_side(k: usize) -> i32 {
    if k <= 6 { 90 } else { (720 / k as i32).max(16) }
}

/// How the columns of the confusion grid are labelled.
#[derive(Clone, Copy, PartialEq)]
enum ColumnLabels {
    /// Every class name fits its column at this font size.
    Names(f32),
    /// Some name does not fit: columns show class indices, row labels end in `(index)`.
    Indices,
}

fn column_labels(report: &impl Confusion) -> ColumnLabels {
    let cell = cell_side(report.class_names().len());
    let widest = |px| {
        report
            .class_names()
            .iter()
            .map(|s| text_width(s, px))
            .max()
            .unwrap_or(0)
    };
    if widest(size::BODY) <= cell - 4 {
        ColumnLabels::Names(size::BODY)
    } else if widest(size::SMALL) <= cell - 2 {
        ColumnLabels::Names(size::SMALL)
    } else {
        ColumnLabels::Indices
    }
}

/// The label of true class `t` left of its row: the name (at most 16 characters), followed by
/// ` (t)` when the columns show indices.
fn row_label(report: &impl Confusion, t: usize) -> String {
    let name: String = report.class_names()[t].chars().take(MAX_LABEL).collect();
    match column_labels(report) {
        ColumnLabels::Names(_) => name,
        ColumnLabels::Indices => format!("{name} ({t})"),
    }
}

/// The x of the confusion grid's left edge: room for the row labels.
fn grid_x(report: &impl Confusion) -> i32 {
    let widest = (0..report.class_names().len())
        .map(|t| text_width(&row_label(report, t), size::BODY))
        .chain([text_width("true", size::LABEL)])
        .max()
        .unwrap_or(0);
    MARGIN + widest + 8
}

/// The pixel size of `confusion.png` for `report`: the grid's cells shrink as classes grow,
/// the left margin fits the class names (up to 16 characters). Columns are labelled with the
/// class names where they all fit, otherwise with class indices repeated after the row labels.
pub fn confusion_png_size(report: &impl Confusion) -> (u32, u32) {
    let k = report.class_names().len() as i32;
    let grid = k * cell_side(k as usize);
    let w = (grid_x(report) + grid + MARGIN).max(320);
    let h = GRID_Y + grid + MARGIN;
    (w as u32, h as u32)
}

/// Draws the confusion matrix of `report` into an RGB8 buffer of [`confusion_png_size`]:
/// one cell per (true, predicted) pair shaded by its count relative to the largest, the count
/// written in it where it fits, true classes down the left, predicted classes along the top.
pub fn render_confusion(report: &impl Confusion) -> Vec<u8> {
    let (w, h) = confusion_png_size(report);
    let size = (w, h);
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let k = report.class_names().len() as i32;
    let (cell, gx) = (cell_side(k as usize), grid_x(report));
    let mut texts = vec![
        Text::new(
            w as i32 / 2,
            TITLE_Y,
            "confusion matrix",
            size::TITLE,
            Align::Center,
        ),
        Text::new(
            gx + k * cell / 2,
            HEADER_Y,
            "predicted",
            size::LABEL,
            Align::Center,
        ),
        Text::new(gx - 8, COLUMN_Y, "true", size::LABEL, Align::Right),
    ];
    draw_cells(&mut buf, size, report, &mut texts);
    column_texts(report, &mut texts);
    stroke_rect(&mut buf, size, gx, GRID_Y, k * cell, k * cell, FRAME);
    for t in &texts {
        draw_text(&mut buf, size, t);
    }
    buf
}

/// The shaded cells with their counts, and the row labels.
fn draw_cells(buf: &mut [u8], size: (u32, u32), report: &impl Confusion, texts: &mut Vec<Text>) {
    let cell = cell_side(report.class_names().len());
    let gx = grid_x(report);
    let max = report
        .counts()
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    for (t, row) in report.counts().iter().enumerate() {
        let y0 = GRID_Y + t as i32 * cell;
        for (p, &v) in row.iter().enumerate() {
            let x0 = gx + p as i32 * cell;
            let f = v as f64 / max as f64;
            let color: [u8; 3] = std::array::from_fn(|i| {
                (LOW[i] as f64 + (HIGH[i] as f64 - LOW[i] as f64) * f).round() as u8
            });
            fill_rect(buf, size, x0, y0, cell, cell, color);
            stroke_rect(buf, size, x0, y0, cell, cell, CELL_BORDER);
            let label = v.to_string();
            let fits = |px| text_width(&label, px) <= cell - 6 && cell as f32 >= px + 4.0;
            let px = [size::BODY, size::SMALL].into_iter().find(|&px| fits(px));
            if let Some(px) = px {
                let y = y0 + (cell - px as i32) / 2;
                texts.push(Text::new(x0 + cell / 2, y, label, px, Align::Center));
            }
        }
        let y = y0 + (cell - size::BODY as i32) / 2;
        let name = row_label(report, t);
        texts.push(Text::new(gx - 8, y, name, size::BODY, Align::Right));
    }
}

/// The labels above the columns: the class names, or their indices.
fn column_texts(report: &impl Confusion, texts: &mut Vec<Text>) {
    let cell = cell_side(report.class_names().len());
    let gx = grid_x(report);
    let columns = column_labels(report);
    for (p, name) in report.class_names().iter().enumerate() {
        let cx = gx + p as i32 * cell + cell / 2;
        texts.push(match columns {
            ColumnLabels::Names(px) => {
                // Small names sit lower, on the same baseline as large ones would.
                let y = COLUMN_Y + (size::BODY - px) as i32;
                Text::new(cx, y, name.clone(), px, Align::Center)
            }
            ColumnLabels::Indices => {
                let index = p.to_string();
                let px = if text_width(&index, size::BODY) <= cell - 4 {
                    size::BODY
                } else {
                    size::SMALL
                };
                Text::new(cx, COLUMN_Y, index, px, Align::Center)
            }
        });
    }
}

/// Writes the confusion matrix of `report` to `path` as a PNG ([`render_confusion`]),
/// atomically.
pub fn write_confusion_png(
    path: impl AsRef<Path>,
    report: &impl Confusion,
) -> Result<(), PlotError> {
    let path = path.as_ref();
    if report.class_names().is_empty() {
        return Err(PlotError::Empty {
            path: path.to_path_buf(),
            reason: "the report has no classes".into(),
        });
    }
    let (w, h) = confusion_png_size(report);
    write_png(path, &render_confusion(report), w, h)
}
