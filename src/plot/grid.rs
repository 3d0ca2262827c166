//! A 3×3 grid of images with a title above each, like the Keras example's "visualize your
//! data" figure (`plt.subplot(3, 3, i + 1); plt.imshow(...); plt.title(...)`).
//!
//! Each image is scaled by nearest neighbour to fit a `cell`×`cell` square, keeping its aspect
//! ratio, centred; its title is drawn above it as written (cut to the cell's width with `…`).
//! The canvas always has room for nine cells; with fewer images the remaining
//! cells stay white, as in a matplotlib figure of fixed size.

use std::path::Path;

use super::text::{Align, Text, draw_text, fit_width, size};
use super::{PlotError, write_png};

/// The cell size [`write_grid_png`] uses, in pixels.
pub const GRID_CELL: u32 = 240;
/// Images per row and per column.
pub const GRID_SIDE: u32 = 3;

/// Font size of the titles.
const TITLE_PX: f32 = size::BODY;
/// Space around each cell, in pixels.
const PAD: u32 = 10;
/// Height of the title band above each image.
const TITLE_H: u32 = TITLE_PX as u32 + 8;

/// The canvas size for cells of `cell` pixels: `(width, height)`.
pub fn grid_size(cell: u32) -> (u32, u32) {
    let cw = cell + 2 * PAD;
    let ch = TITLE_H + cell + PAD;
    (GRID_SIDE * cw, GRID_SIDE * ch + PAD)
}

/// The top-left pixel of image `index`'s `cell`×`cell` square in a grid of cells of `cell`
/// pixels (row-major: 0–2 the top row).
pub fn cell_origin(index: usize, cell: u32) -> (u32, u32) {
    let (col, row) = (index as u32 % GRID_SIDE, index as u32 / GRID_SIDE);
    let cw = cell + 2 * PAD;
    let ch = TITLE_H + cell + PAD;
    (col * cw + PAD, PAD + row * ch + TITLE_H)
}

/// Draws up to nine `(image, title)` pairs in a 3×3 grid on white; returns the RGB8 buffer
/// (row-major, 3 bytes per pixel) and its width and height ([`grid_size`]).
///
/// Each image is `h`×`w`×3 values in 0–255, channels last (HWC); values are rounded and
/// clamped, NaN draws as 0. Images past the ninth are ignored.
///
/// # Panics
/// If an image does not hold exactly `h * w * 3` values ([`write_grid_png`] checks this and
/// returns an error instead).
pub fn render_grid(
    images: &[(Vec<f32>, String)],
    h: usize,
    w: usize,
    cell: u32,
) -> (Vec<u8>, u32, u32) {
    let cell = cell.max(1);
    let (width, height) = grid_size(cell);
    let size = (width, height);
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    for (i, (pixels, title)) in images.iter().take(9).enumerate() {
        assert_eq!(
            pixels.len(),
            h * w * 3,
            "image {i} ('{title}') must hold {h}×{w}×3 values"
        );
        let (ox, oy) = cell_origin(i, cell);
        if h > 0 && w > 0 {
            // Fit the image in the square, keeping its aspect ratio.
            let (dw, dh) = if w >= h {
                (cell, ((cell as u64 * h as u64) / w as u64).max(1) as u32)
            } else {
                (((cell as u64 * w as u64) / h as u64).max(1) as u32, cell)
            };
            let (x0, y0) = (ox + (cell - dw) / 2, oy + (cell - dh) / 2);
            for dy in 0..dh {
                let sy = (dy as u64 * h as u64 / dh as u64) as usize;
                for dx in 0..dw {
                    let sx = (dx as u64 * w as u64 / dw as u64) as usize;
                    let s = (sy * w + sx) * 3;
                    let o = (((y0 + dy) * width + x0 + dx) * 3) as usize;
                    for c in 0..3 {
                        buf[o + c] = pixels[s + c].round().clamp(0.0, 255.0) as u8;
                    }
                }
            }
        }
        let title = fit_width(title, TITLE_PX, (cell + 2 * PAD - 4) as i32);
        let (tx, ty) = (ox as i32 + cell as i32 / 2, oy as i32 - TITLE_H as i32 + 4);
        let text = Text::new(tx, ty, title, TITLE_PX, Align::Center);
        draw_text(&mut buf, size, &text);
    }
    (buf, width, height)
}

/// Writes the grid of [`render_grid`] with cells of [`GRID_CELL`] pixels to `path` as a PNG,
/// atomically; returns the image's width and height.
pub fn write_grid_png(
    path: impl AsRef<Path>,
    images: &[(Vec<f32>, String)],
    h: usize,
    w: usize,
) -> Result<(u32, u32), PlotError> {
    let path = path.as_ref();
    for (index, (pixels, title)) in images.iter().take(9).enumerate() {
        if pixels.len() != h * w * 3 {
            return Err(PlotError::ImageSize {
                path: path.to_path_buf(),
                index,
                title: title.clone(),
                len: pixels.len(),
                h,
                w,
            });
        }
    }
    let (rgb, width, height) = render_grid(images, h, w, GRID_CELL);
    write_png(path, &rgb, width, height)?;
    Ok((width, height))
}
