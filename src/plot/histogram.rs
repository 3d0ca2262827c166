//! `classes.png` of `gpucnn inspect`: images per class as horizontal bars, the training part
//! and the validation part of each stacked, the counts written after each bar, and the
//! imbalance ratio in the title. Bars run sideways so that long class names and many classes
//! stay readable: rows shrink with the class count, and names are left out below 14 pixels.

use std::path::Path;

use super::raster::{fill_rect, stroke_rect};
use super::text::{Align, Text, draw_text, fit_width, size, text_width};
use super::{PlotError, write_png};

const TRAIN: [u8; 3] = [66, 146, 198];
const VALIDATION: [u8; 3] = [253, 141, 60];
const FRAME: [u8; 3] = [90, 90, 90];
const MARGIN: i32 = 24;
const TOP: i32 = 84;
const BAR_AREA: i32 = 520;
/// Widest class name drawn, in pixels (longer names are cut with `…`).
const NAME_WIDTH: i32 = 220;
/// Room after the longest bar for its count.
const COUNT_WIDTH: i32 = 150;

/// One class's bar: its name and its images in each split.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassBar {
    /// The class name.
    pub name: String,
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub validation: usize,
}

fn row_height(k: usize) -> i32 {
    if k <= 24 { 28 } else { (720 / k as i32).max(2) }
}

/// The pixel size of the chart for `k` classes: `(width, height)`.
pub fn histogram_size(k: usize) -> (u32, u32) {
    let w = MARGIN + NAME_WIDTH + 8 + BAR_AREA + COUNT_WIDTH + MARGIN;
    let h = TOP + k as i32 * row_height(k) + MARGIN;
    (w as u32, h as u32)
}

/// Draws the bars into an RGB8 buffer of [`histogram_size`]; `title` goes on top.
pub fn render_histogram(bars: &[ClassBar], title: &str) -> (Vec<u8>, u32, u32) {
    let (w, h) = histogram_size(bars.len());
    let size = (w, h);
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let row = row_height(bars.len());
    let max = bars
        .iter()
        .map(|b| b.train + b.validation)
        .max()
        .unwrap_or(0)
        .max(1);
    let x0 = MARGIN + NAME_WIDTH + 8;
    let mut texts = vec![Text::new(
        w as i32 / 2,
        10,
        fit_width(title, size::TITLE, w as i32 - 2 * MARGIN),
        size::TITLE,
        Align::Center,
    )];
    // Legend.
    let ly = 48;
    let mut lx = x0;
    for (color, label) in [(TRAIN, "train"), (VALIDATION, "validation")] {
        fill_rect(&mut buf, size, lx, ly + 3, 14, 14, color);
        texts.push(Text::new(lx + 20, ly, label, size::BODY, Align::Left));
        lx += 40 + text_width(label, size::BODY);
    }
    let bar_h = (row - 6).max(1);
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + i as i32 * row;
        let len = |n: usize| (n as f64 / max as f64 * BAR_AREA as f64).round() as i32;
        let (lt, lv) = (len(b.train), len(b.validation));
        fill_rect(&mut buf, size, x0, y + 3, lt, bar_h, TRAIN);
        fill_rect(&mut buf, size, x0 + lt, y + 3, lv, bar_h, VALIDATION);
        if row >= 14 {
            let px = if row >= 24 { size::BODY } else { size::SMALL };
            let ty = y + (row - px as i32) / 2;
            let name = fit_width(&b.name, px, NAME_WIDTH);
            texts.push(Text::new(x0 - 8, ty, name, px, Align::Right));
            let count = format!("{} + {}", b.train, b.validation);
            texts.push(Text::new(x0 + lt + lv + 6, ty, count, px, Align::Left));
        }
    }
    let axis_h = (bars.len() as i32 * row).max(1);
    stroke_rect(&mut buf, size, x0 - 1, TOP, 1, axis_h, FRAME);
    for t in &texts {
        draw_text(&mut buf, size, t);
    }
    (buf, w, h)
}

/// Writes [`render_histogram`] to `path` as a PNG, atomically.
pub fn write_histogram_png(
    path: impl AsRef<Path>,
    bars: &[ClassBar],
    title: &str,
) -> Result<(), PlotError> {
    let path = path.as_ref();
    if bars.is_empty() {
        return Err(PlotError::Empty {
            path: path.to_path_buf(),
            reason: "no classes".into(),
        });
    }
    let (rgb, w, h) = render_histogram(bars, title);
    write_png(path, &rgb, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_as_long_as_their_counts() {
        let bars = [
            ClassBar {
                name: "big".into(),
                train: 30,
                validation: 10,
            },
            ClassBar {
                name: "small".into(),
                train: 10,
                validation: 0,
            },
        ];
        let (buf, w, _) = render_histogram(&bars, "t");
        let x0 = MARGIN + NAME_WIDTH + 8;
        let px = |x: i32, y: i32| {
            let o = ((y as u32 * w + x as u32) * 3) as usize;
            [buf[o], buf[o + 1], buf[o + 2]]
        };
        let mid = |i: i32| TOP + i * 28 + 14;
        // The big class: train to 3/4 of the area, validation to its end.
        assert_eq!(px(x0 + 389, mid(0)), TRAIN);
        assert_eq!(px(x0 + 391, mid(0)), VALIDATION);
        assert_eq!(px(x0 + BAR_AREA - 1, mid(0)), VALIDATION);
        // The small class: a quarter, then white.
        assert_eq!(px(x0 + 129, mid(1)), TRAIN);
        assert_eq!(px(x0 + 200, mid(1)), [255, 255, 255]);
    }
}
