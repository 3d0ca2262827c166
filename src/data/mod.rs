//! The training data pipeline, with the semantics of Keras' `image_dataset_from_directory`.
//!
//! - [`dataset`]: class folders (all, or those chosen) → sorted file list → seeded
//!   train/validation split, or a separate validation folder; per-epoch training order.
//! - [`geometry`]: the input's size and colour mode ([`ImageSize`], [`ColorMode`]).
//! - [`decode`]: file → RGB u8 (JPEG, PNG, BMP, GIF, WebP; decompression bombs refused from the
//!   header) → (grayscale: one luma channel) → TensorFlow's bilinear resize
//!   without antialiasing → f32 HWC 0–255.
//! - [`scan`]: a parallel pre-scan that finds (and optionally deletes) unusable files.
//! - [`inspect`]: `gpucnn inspect`'s dataset report (class balance, exact and near duplicates,
//!   sizes, colour modes), and the train/validation leak check `train` runs at start.
//! - [`loader`]: worker threads that decode ahead of the consumer into a bounded queue, batch in a
//!   given order, and cache the resized images for later epochs.

pub mod dataset;
pub mod decode;
pub mod geometry;
pub mod inspect;
pub mod labels;
pub mod loader;
pub mod resize;
pub mod scan;

pub use dataset::{
    ClassSelection, DatasetError, DatasetOptions, DirectoryDataset, IMAGE_EXTENSIONS, Sample,
    epoch_order, image_files,
};
pub use decode::{DecodeError, MAX_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, ResizeOptions};
pub use geometry::{ColorMode, ImageSize};
pub use loader::{
    Batch, CacheKind, CacheOptions, Epoch, Loader, LoaderError, LoaderOptions, LoaderStats,
};
pub use scan::{BadFile, ScanOptions, ScanReport, scan};

/// `gpucnn scan`: decodes every image of the class folders of `dir` once and reports the files
/// that cannot be used (and, with `delete`, removes them). With `keras_jfif`, applies the Keras
/// example's filter instead ([`scan::keras_jfif_filter`]).
pub fn scan_folder(
    dir: &std::path::Path,
    delete: bool,
    keras_jfif: bool,
) -> Result<String, DatasetError> {
    let ds = DirectoryDataset::open(dir, &DatasetOptions::default())?;
    let mut all: Vec<Sample> = ds.train.iter().chain(&ds.val).cloned().collect();
    all.sort_by(|a, b| a.path.cmp(&b.path));
    if keras_jfif {
        return Ok(scan::keras_jfif_filter(&all, delete).summary());
    }
    let report = scan(
        &all,
        &ScanOptions {
            delete,
            ..ScanOptions::default()
        },
    );
    Ok(report.summary())
}
