//! `gpucnn preview`: a 3×3 grid of a dataset's first training images, or of nine GPU
//! augmentations of its first image ([`crate::preview`]), drawn by [`crate::plot::grid`].

use std::path::PathBuf;
use std::process::ExitCode;

use super::open_gpu;
use super::train::parse_augment;
use crate::data::{ColorMode, ImageSize};
use crate::gpu::AdapterOptions;
use crate::plot::grid::write_grid_png;
use crate::preview::preview_images;

/// The flags of `gpucnn preview`.
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// Folder with one subfolder of images per class.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The PNG to write.
    #[arg(long, value_name = "FILE", default_value = "grid.png")]
    pub out: PathBuf,
    /// Show augmentations (random flip + rotation) of the first image instead.
    #[arg(long)]
    pub augment: bool,
    /// Images are resized to this size, as in training: N (N×N pixels) or H,W (height,width), as `train --image-size`.
    #[arg(long, default_value = "180", value_name = "N|H,W")]
    pub image_size: ImageSize,
    /// Input colours: rgb (3 channels) or grayscale (1), as `train --color-mode`.
    #[arg(long, default_value = "rgb", value_name = "MODE")]
    pub color_mode: ColorMode,
    /// Seed of the split (which images come first) and of the augmentations.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Rotation range as a fraction of a full turn, for --augment.
    #[arg(long, default_value_t = 0.1)]
    pub rotation: f32,
}

/// Runs `gpucnn preview`; only --augment opens the GPU (its kernel makes the augmentations).
pub fn run(a: &PreviewArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    let cfg = if a.augment {
        parse_augment("flip,rotate", a.rotation, 0.0, 0.0)?
    } else {
        None
    };
    let ctx = if a.augment {
        Some(open_gpu(adapter)?)
    } else {
        None
    };
    let size = a.image_size;
    let images = preview_images(ctx.as_ref(), &a.data, size, a.color_mode, a.seed, cfg)?;
    let (w, h) = write_grid_png(&a.out, &images, size.height, size.width)?;
    eprintln!("Wrote {} ({w}×{h})", a.out.display());
    Ok(ExitCode::SUCCESS)
}
