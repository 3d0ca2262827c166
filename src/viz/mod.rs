//! Pictures of the data and the network, for `gpucnn preview` and `gpucnn summary --plot`.
//!
//! - [`grid`]: a 3×3 grid of images titled with their labels (the Keras example's "visualize
//!   your data" figure, or nine augmented versions of one image), as a PNG.
//! - [`model_plot`]: the network as a graph of layers with their output shapes, like
//!   `keras.utils.plot_model`, as Graphviz DOT, a self-contained SVG or a PNG.
//!
//! Raster output is drawn into RGB8 buffers with the built-in 5×7 bitmap font of
//! [`crate::train::plot`] (no system fonts), encoded by the image crate and written atomically.

use std::path::{Path, PathBuf};

use image::ImageEncoder;
use thiserror::Error;

use crate::train::atomic::{AtomicWriteError, write_atomic};
use crate::train::plot::{Align, Text, draw_text};

pub mod grid;
pub mod model_plot;

/// A failure to draw or write a picture, naming the file.
#[derive(Debug, Error)]
pub enum VizError {
    /// Writing the file failed; any previous file at the path is intact.
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
    /// The output path's extension names no supported format.
    #[error(
        "cannot tell the format of {}: use a file name ending in {supported}",
        path.display()
    )]
    UnsupportedExtension {
        /// The requested output file.
        path: PathBuf,
        /// The supported extensions, e.g. `.png, .svg or .dot`.
        supported: &'static str,
    },
    /// An image's pixel count does not match the stated size.
    #[error(
        "cannot draw {}: image {index} ('{title}') has {len} values, but {h}×{w}×3 = {} were stated",
        path.display(),
        h * w * 3
    )]
    ImageSize {
        /// The file being written.
        path: PathBuf,
        /// Position of the image in the list.
        index: usize,
        /// The image's title.
        title: String,
        /// Values supplied.
        len: usize,
        /// Stated height.
        h: usize,
        /// Stated width.
        w: usize,
    },
}

/// Encodes an RGB8 buffer as PNG and writes it atomically to `path`.
pub(crate) fn write_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<(), VizError> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| VizError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    write_atomic(path, &png)?;
    Ok(())
}

/// Draws `text` with the built-in font, left-aligned at (x, y), lowercased; commas (which the
/// font lacks) are drawn as a small tick instead of a box.
pub(crate) fn draw_label(buf: &mut [u8], size: (u32, u32), x: i32, y: i32, text: &str, scale: u32) {
    let lower: String = text
        .chars()
        .map(|c| {
            if c == ',' {
                ' '
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    draw_text(buf, size, &Text::new(x, y, lower, scale, Align::Left));
    let s = scale.max(1) as i32;
    for (i, c) in text.chars().enumerate() {
        if c == ',' {
            // A comma: two pixels at the baseline and one below, slanting left.
            let gx = x + i as i32 * 6 * s + 2 * s;
            fill_rect(buf, size, gx, y + 5 * s, s, 2 * s, [30, 30, 30]);
            fill_rect(buf, size, gx - s, y + 7 * s, s, s, [30, 30, 30]);
        }
    }
}

/// Width in pixels of `text` drawn by [`draw_label`] at `scale`.
pub(crate) fn label_width(text: &str, scale: u32) -> i32 {
    Text::new(0, 0, text.to_string(), scale, Align::Left).width()
}

/// Fills a `w`×`h` rectangle at (x, y) with `color`, clipped to the buffer.
pub(crate) fn fill_rect(
    buf: &mut [u8],
    size: (u32, u32),
    x: i32,
    y: i32,
    w: i32,
    h: i32,
    color: [u8; 3],
) {
    let (bw, bh) = (size.0 as i32, size.1 as i32);
    for yy in y.max(0)..(y + h).min(bh) {
        for xx in x.max(0)..(x + w).min(bw) {
            let o = (yy as usize * bw as usize + xx as usize) * 3;
            buf[o..o + 3].copy_from_slice(&color);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dark pixels of `text` drawn at scale 1 on a white 40×12 canvas.
    fn ink(text: &str) -> Vec<(i32, i32)> {
        let size = (40, 12);
        let mut buf = vec![255u8; 40 * 12 * 3];
        draw_label(&mut buf, size, 0, 0, text, 1);
        (0..12)
            .flat_map(|y| (0..40).map(move |x| (x, y)))
            .filter(|&(x, y)| buf[(y as usize * 40 + x as usize) * 3] != 255)
            .collect()
    }

    #[test]
    fn commas_draw_as_a_tick_not_a_box() {
        let comma = ink(",");
        assert_eq!(comma, vec![(2, 5), (2, 6), (1, 7)]);
        // A character without a glyph draws as a box of 5×7 outline pixels.
        assert_eq!(ink(";").len(), 20);
        // Uppercase is drawn lowercased, identical to the lowercase text.
        assert_eq!(ink("Ab"), ink("ab"));
        assert_eq!(label_width("ab", 2), 22);
    }
}
