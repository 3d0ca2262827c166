//! `roc.png`: a binary model's ROC curve, both axes 0–1 with a grid every 0.2, the chance
//! diagonal dashed, and the area under the curve in the title.

use std::path::Path;

use super::raster::{fill_rect, line, stroke_rect};
use super::text::{Align, Text, draw_text, size};
use super::{PlotError, write_png};

/// The size of `roc.png`.
pub const ROC_SIZE: (u32, u32) = (520, 540);
/// The curve's colour (matplotlib's first colour).
pub const CURVE_COLOR: [u8; 3] = [31, 119, 180];

const GRID: [u8; 3] = [225, 225, 225];
const FRAME: [u8; 3] = [90, 90, 90];
const DIAGONAL: [u8; 3] = [150, 150, 150];

// The plotting area.
const LEFT: i32 = 70;
const TOP: i32 = 60;
const SIDE: i32 = 420;

/// The pixel of the point (fpr, tpr), clamped to 0–1.
fn to_px(fpr: f64, tpr: f64) -> (f64, f64) {
    let (x, y) = (fpr.clamp(0.0, 1.0), tpr.clamp(0.0, 1.0));
    (
        LEFT as f64 + x * SIDE as f64,
        (TOP + SIDE) as f64 - y * SIDE as f64,
    )
}

/// Draws a ROC curve into an RGB8 buffer of [`ROC_SIZE`]: both axes 0–1 with a grid every
/// 0.2, the chance diagonal dashed, the curve through `points` (`(fpr, tpr)`, clamped to
/// 0–1), and the AUC in the title (`n/a` when `None`).
pub fn render_roc(points: &[(f64, f64)], auc: Option<f64>) -> Vec<u8> {
    let (w, h) = ROC_SIZE;
    let size = (w, h);
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let mut texts = Vec::new();
    for i in 0..=5 {
        let v = i as f64 / 5.0;
        let (x, _) = to_px(v, 0.0);
        let (_, y) = to_px(0.0, v);
        let (x, y) = (x.round() as i32, y.round() as i32);
        fill_rect(&mut buf, size, x, TOP, 1, SIDE, GRID);
        fill_rect(&mut buf, size, LEFT, y, SIDE, 1, GRID);
        let label = format!("{v:.1}");
        let below = TOP + SIDE + 6;
        texts.push(Text::new(x, below, &label, size::BODY, Align::Center));
        texts.push(Text::new(LEFT - 8, y - 10, label, size::BODY, Align::Right));
    }
    // The chance diagonal, dashed.
    let steps = 40;
    for s in (0..steps).step_by(2) {
        let (a, b) = (s as f64 / steps as f64, (s + 1) as f64 / steps as f64);
        line(&mut buf, size, to_px(a, a), to_px(b, b), 1, DIAGONAL);
    }
    stroke_rect(&mut buf, size, LEFT, TOP, SIDE + 1, SIDE + 1, FRAME);
    for seg in points.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        if [a.0, a.1, b.0, b.1].iter().all(|v| v.is_finite()) {
            line(
                &mut buf,
                size,
                to_px(a.0, a.1),
                to_px(b.0, b.1),
                2,
                CURVE_COLOR,
            );
        }
    }
    let auc = auc.map_or_else(|| "n/a".into(), |a| format!("{a:.4}"));
    let title = format!("ROC curve (AUC {auc})");
    texts.extend([
        Text::new(w as i32 / 2, 10, title, size::TITLE, Align::Center),
        Text::new(
            LEFT,
            TOP - 24,
            "true positive rate",
            size::LABEL,
            Align::Left,
        ),
        Text::new(
            LEFT + SIDE / 2,
            TOP + SIDE + 30,
            "false positive rate",
            size::LABEL,
            Align::Center,
        ),
    ]);
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
) -> Result<(), PlotError> {
    let (w, h) = ROC_SIZE;
    write_png(path.as_ref(), &render_roc(points, auc), w, h)
}
