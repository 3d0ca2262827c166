//! `gpucnn preview`: a 3×3 grid of a dataset's first training images, or of nine GPU
//! augmentations of its first image ([`crate::preview`]), drawn by [`crate::plot::grid`].

use std::path::PathBuf;
use std::process::ExitCode;

use super::open_gpu;
use super::train::{AugmentArgs, parse_augment};
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
    /// Show nine augmentations of the first image instead, made by the trainer's GPU kernel:
    /// the same comma list as `train --augment` (flip, rotate, zoom, translate, contrast,
    /// brightness); `--augment`
    /// alone means train's default, flip,rotate.
    #[arg(
        long,
        value_name = "LIST",
        num_args = 0..=1,
        default_missing_value = "flip,rotate"
    )]
    pub augment: Option<String>,
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
    /// --zoom, --translate, --fill-mode, --fill-value, --random-crop, --contrast and
    /// --brightness, as `train`'s (with
    /// --random-crop the images load at --image-size and each tile is a random crop of it).
    #[command(flatten)]
    pub augment_flags: AugmentArgs,
}

/// Runs `gpucnn preview`; only --augment opens the GPU (its kernel makes the augmentations).
pub fn run(a: &PreviewArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    let cfg = match &a.augment {
        Some(list) => parse_augment(list, a.rotation, &a.augment_flags, a.image_size)?,
        None => {
            crate::ensure_input!(
                a.augment_flags.random_crop.is_none()
                    && a.augment_flags.zoom.is_none()
                    && a.augment_flags.translate.is_none()
                    && a.augment_flags.contrast.is_none()
                    && a.augment_flags.brightness.is_none(),
                "--zoom, --translate, --random-crop, --contrast and --brightness apply to --augment's \
                 previews; add --augment LIST"
            );
            None
        }
    };
    let ctx = if cfg.is_some() {
        Some(open_gpu(adapter)?)
    } else {
        None
    };
    let size = a.image_size;
    let images = preview_images(ctx.as_ref(), &a.data, size, a.color_mode, a.seed, cfg)?;
    let (th, tw) = match cfg {
        Some(c) => c.output_size(size.height, size.width),
        None => (size.height, size.width),
    };
    let (w, h) = write_grid_png(&a.out, &images, th, tw)?;
    crate::msgln!("Wrote {} ({w}×{h})", a.out.display());
    Ok(ExitCode::SUCCESS)
}
