//! Every picture gpucnn draws, in one place:
//!
//! - [`curves`]: `curves.png`, the training curves (loss and accuracy per epoch), written by
//!   `gpucnn train` every epoch.
//! - [`confusion`] and [`roc`]: `confusion.png` (the confusion matrix as a heat map) and
//!   `roc.png` (a binary model's ROC curve), written by `gpucnn evaluate`.
//! - [`grid`]: a 3×3 grid of images titled with their labels (`gpucnn preview`, and
//!   `gpucnn inspect`'s `duplicates.png`).
//! - [`histogram`]: `classes.png` of `gpucnn inspect`, images per class and split.
//! - [`model`]: the network as a graph of layers with their output shapes, like
//!   `keras.utils.plot_model` (`gpucnn summary --plot`), as Graphviz DOT, SVG or PNG.
//!
//! Raster pictures are drawn into RGB8 buffers ([`raster`] for shapes, plotters for the curves'
//! lines), their text with the embedded DejaVu Sans font ([`text`]), then encoded as PNG by the
//! image crate and written atomically ([`crate::atomic`]). One error type, [`PlotError`],
//! names the file at fault.

use std::path::{Path, PathBuf};

use image::ImageEncoder;
use thiserror::Error;

use crate::atomic::{AtomicWriteError, write_atomic};

pub mod confusion;
pub mod curves;
pub mod grid;
pub mod histogram;
pub mod model;
pub mod raster;
pub mod roc;
pub mod text;

/// A failure to draw or write a picture, naming the file.
#[derive(Debug, Error)]
pub enum PlotError {
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
    /// The drawing library failed.
    #[error("could not draw {}: {reason}", path.display())]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// The drawing library's message.
        reason: String,
    },
    /// The requested image is too small for the chart's margins.
    #[error("a {width}×{height} chart is too small (at least 320×180)")]
    TooSmall {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// There is nothing to draw (a report without classes).
    #[error("cannot draw {}: {reason}", path.display())]
    Empty {
        /// The file that was to be written.
        path: PathBuf,
        /// What is missing.
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
pub(crate) fn write_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<(), PlotError> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| PlotError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    write_atomic(path, &png)?;
    Ok(())
}
