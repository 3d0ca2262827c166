//! `gpucnn preview`: look at the data the way the model will (the Keras example's "visualize
//! your data" and "visualize the augmentations").

use std::path::Path;

use crate::cpu::augment::AugmentConfig;
use crate::data::dataset::{DatasetOptions, DirectoryDataset};
use crate::data::decode::{ResizeOptions, load_resized};
use crate::data::geometry::{ColorMode, ImageSize};
use crate::gpu::GpuContext;
use crate::kernels::augment::{Augment, NhwcShape};
use crate::kernels::augment_color::AugmentColor;

/// The first nine training images of `data` (split with `seed`, resized to `size` in colour
/// mode `mode` as the loader does), titled with their class; or, with `augment`, nine
/// augmentations of the first one through the trainer's GPU kernel (titled "augmented 1" …
/// "augmented 9"; with a crop each is the crop's size). The images come back as RGB, ready to
/// draw (gray ones replicated).
pub fn preview_images(
    ctx: Option<&GpuContext>,
    data: &Path,
    size: ImageSize,
    mode: ColorMode,
    seed: u64,
    augment: Option<AugmentConfig>,
) -> anyhow::Result<Vec<(Vec<f32>, String)>> {
    let ds = DirectoryDataset::open(
        data,
        &DatasetOptions {
            seed,
            ..DatasetOptions::default()
        },
    )?;
    let resize = ResizeOptions {
        height: size.height,
        width: size.width,
        crop_to_aspect_ratio: false,
        color_mode: mode,
    };
    let mut images = Vec::new();
    for s in &ds.train {
        if images.len() == 9 || (augment.is_some() && !images.is_empty()) {
            break;
        }
        // Unreadable files are skipped here as in training.
        if let Ok(v) = load_resized(&s.path, &resize) {
            images.push((
                v.iter().map(|x| x.round()).collect::<Vec<f32>>(),
                ds.class_names[s.label].clone(),
            ));
        }
    }
    if images.is_empty() {
        crate::bail_input!("no readable training image in {}", data.display());
    }
    let Some(cfg) = augment else {
        return Ok(images
            .into_iter()
            .map(|(px, title)| (mode.to_rgb(&px), title))
            .collect());
    };
    let ctx = ctx.expect("augmented previews need the GPU");
    let (first, _) = &images[0];
    let batch: Vec<f32> = (0..9).flat_map(|_| first.iter().copied()).collect();
    let k = Augment::new(ctx);
    let x = ctx.upload("preview input", &batch);
    let (oh, ow) = cfg.output_size(size.height, size.width);
    let y = ctx.zeros("preview output", 9 * oh * ow * mode.channels());
    let seed_buf = Augment::seed_buffer(ctx, seed as u32);
    let shape = NhwcShape {
        n: 9,
        h: size.height,
        w: size.width,
        c: mode.channels(),
    };
    let d = k.forward(ctx, &y, &x, &seed_buf, &shape, &cfg);
    let mut dispatches = vec![d];
    // Contrast and brightness after the geometry, in place, as the trainer runs them.
    let means = ctx.zeros("preview means", AugmentColor::means_len(&shape));
    if crate::cpu::augment_color::color_on(&cfg) {
        let colour = AugmentColor::new(ctx);
        dispatches.extend(colour.forward(ctx, &y, &means, &seed_buf, &shape, &cfg));
    }
    crate::kernels::run_all(ctx, &dispatches.iter().collect::<Vec<_>>())?;
    let out: Vec<f32> = ctx.read(&y)?;
    let len = oh * ow * mode.channels();
    Ok((0..9)
        .map(|i| {
            (
                mode.to_rgb(&out[i * len..(i + 1) * len]),
                format!("augmented {}", i + 1),
            )
        })
        .collect())
}
