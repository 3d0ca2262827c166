//! `gpucnn demo`: the main job on a built-in dataset, for a first run on any machine.
//!
//! It generates a small two-class dataset (no download), trains the Keras example's network on
//! it with [`crate::train::fit::fit`] at a size chosen for the adapter, then runs
//! [`crate::predict::predict`] on a few images it kept aside.
//!
//! The images are textured shapes: a disc or a square, filled with a striped or checked
//! texture of two random colours, on a background with its own texture, with pixel noise, at a
//! random size and position. Colours, textures and sizes are drawn from the same distributions
//! for both classes, so no colour statistic tells them apart (a unit test checks that a
//! threshold on the mean of any channel does little better than chance): the network has to
//! see the outline, which is the convolutional part of the job.
//!
//! Everything goes into one folder (`--out`): `data/<class>/*.png` (the training set, split
//! 80/20 by `train`), `held_out/*.png` (the images predicted at the end), `run/` (the run folder
//! of `train`) and `demo.json`, which marks the folder as a demo's so that a second demo into it
//! may replace what the first wrote (and nothing else).

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::gpu::GpuContext;
use crate::predict::Prediction;
use crate::train::fit::{FitConfig, FitSummary};

/// The classes of the generated dataset, in folder (and so label) order.
pub const CLASSES: [&str; 2] = ["discs", "squares"];

/// Height and width of the generated images, in pixels (training resizes them to
/// [`DemoPlan::image_size`]).
pub const SOURCE_SIZE: u32 = 32;

/// The file that marks a folder as written by `gpucnn demo`.
pub const MARKER: &str = "demo.json";

/// How big a demo is: dataset size and training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPlan {
    /// Generated training images per class (split 80/20 into training and validation).
    pub per_class: usize,
    /// Images per class kept aside for `predict` at the end.
    pub held_out_per_class: usize,
    /// Training image size (`--image-size`).
    pub image_size: usize,
    /// Network width multiplier (`--width`).
    pub width: f32,
    /// `--epochs`.
    pub epochs: usize,
    /// `--batch-size`.
    pub batch_size: usize,
    /// Adam's learning rate (`--lr`).
    pub lr: f32,
}

impl DemoPlan {
    /// The plan for an adapter: on a software adapter (the CPU runs the kernels) small enough to
    /// finish in about a minute on two cores; on a hardware GPU larger, and still seconds.
    ///
    /// Both train for several hundred steps because validation uses batch normalisation's
    /// moving statistics (momentum 0.99), which need that many steps to follow the training
    /// weights. Measured on lavapipe with 2 cores: the software plan reaches a validation
    /// accuracy of 0.94 (seed 1337) in about 45 s; at 10 epochs it was still at 0.86, and at
    /// 48 pixels and width 0.125 it took 10 s an epoch.
    pub fn for_adapter(software: bool) -> DemoPlan {
        if software {
            DemoPlan {
                per_class: 250,
                held_out_per_class: 3,
                image_size: 32,
                width: 0.0625,
                epochs: 16,
                batch_size: 8,
                lr: 3e-3,
            }
        } else {
            DemoPlan {
                per_class: 500,
                held_out_per_class: 3,
                image_size: 32,
                width: 0.25,
                epochs: 16,
                batch_size: 16,
                lr: 2e-3,
            }
        }
    }
}

/// What a demo did, for the command to report.
#[derive(Debug)]
pub struct DemoReport {
    /// The plan it ran.
    pub plan: DemoPlan,
    /// The run folder of the training (`OUT/run`).
    pub run_dir: PathBuf,
    /// The generated training set (`OUT/data`).
    pub data_dir: PathBuf,
    /// The training's summary (per-epoch metrics, best validation accuracy).
    pub fit: FitSummary,
    /// The class names, in the model's order.
    pub classes: Vec<String>,
    /// The predictions on the held-out images, with the true class of each.
    pub predictions: Vec<(String, Prediction)>,
}

/// One generated image of class `class` (an index into [`CLASSES`]), `size`×`size`, drawn
/// from `rng`.
pub fn draw_image(rng: &mut StdRng, class: usize, size: u32) -> RgbImage {
    let s = size as f32;
    // One light and one dark texture, either way round with the same odds for both classes,
    // so that the shape stands out but its colour says nothing about its class.
    let light = Texture::random(rng, 140.0..255.0);
    let dark = Texture::random(rng, 0.0..115.0);
    let (fg, bg) = if rng.random_bool(0.5) {
        (light, dark)
    } else {
        (dark, light)
    };
    // The same size distribution for both classes; a square's half side is 0.89 r, so that
    // both shapes cover the same area (π r² = (2 · 0.886 r)²) and area says nothing.
    let r = rng.random_range(0.2..0.38) * s;
    let cx = rng.random_range(r..s - r);
    let cy = rng.random_range(r..s - r);
    let angle = rng.random_range(0.0..std::f32::consts::FRAC_PI_2);
    let (sin, cos) = angle.sin_cos();
    let noise = rng.random_range(5.0..20.0f32);
    let mut img = RgbImage::new(size, size);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let (dx, dy) = (fx - cx, fy - cy);
        let inside = if class == 0 {
            dx * dx + dy * dy <= r * r
        } else {
            // A square turned by `angle`, so that its edges are not always along the axes.
            let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
            u.abs().max(v.abs()) <= 0.886 * r
        };
        let base = if inside { fg.at(fx, fy) } else { bg.at(fx, fy) };
        let mut c = [0u8; 3];
        for (k, v) in c.iter_mut().enumerate() {
            let n: f32 = rng.random_range(-1.0..1.0f32) * noise;
            *v = (base[k] + n).clamp(0.0, 255.0) as u8;
        }
        *px = Rgb(c);
    }
    img
}

/// Stripes or a checkerboard of a colour and a shade of it, at a random scale and direction:
/// texture that the network must see through, faint enough to leave the outline the
/// strongest edge.
struct Texture {
    a: [f32; 3],
    b: [f32; 3],
    checker: bool,
    period: f32,
    dir: (f32, f32),
}

impl Texture {
    /// A texture around a colour from `range` in every channel.
    fn random(rng: &mut StdRng, range: std::ops::Range<f32>) -> Texture {
        let a = [0; 3].map(|_: u8| rng.random_range(range.clone()));
        let shade = rng.random_range(-40.0..40.0f32);
        let b = a.map(|v| (v + shade).clamp(0.0, 255.0));
        let checker = rng.random_bool(0.5);
        let period = rng.random_range(2.0..6.0f32);
        let t = rng.random_range(0.0..std::f32::consts::PI);
        Texture {
            a,
            b,
            checker,
            period,
            dir: (t.cos(), t.sin()),
        }
    }

    fn at(&self, x: f32, y: f32) -> [f32; 3] {
        let u = (x * self.dir.0 + y * self.dir.1) / self.period;
        let v = (-x * self.dir.1 + y * self.dir.0) / self.period;
        let first = if self.checker {
            (u.floor() as i64 + v.floor() as i64) % 2 == 0
        } else {
            (u.floor() as i64) % 2 == 0
        };
        if first { self.a } else { self.b }
    }
}

/// Writes the dataset for `seed`: `per_class` images per class into `data/<class>/`, and
/// `held_out` per class into `held_out/` (named after their class). Returns the held-out
/// files with their class. Deterministic: the same seed writes the same bytes.
pub fn write_dataset(
    data: &Path,
    held: &Path,
    seed: u64,
    per_class: usize,
    held_out: usize,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kept = Vec::new();
    std::fs::create_dir_all(held).with_context(|| format!("cannot create {}", held.display()))?;
    for (c, class) in CLASSES.iter().enumerate() {
        let dir = data.join(class);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for i in 0..per_class + held_out {
            let img = draw_image(&mut rng, c, SOURCE_SIZE);
            let path = if i < per_class {
                dir.join(format!("{class}_{i:04}.png"))
            } else {
                held.join(format!("{class}_{:02}.png", i - per_class))
            };
            img.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if i >= per_class {
                kept.push((class.to_string(), path));
            }
        }
    }
    Ok(kept)
}

/// Makes `out` ready for a demo: a missing or empty folder is fine; a folder marked by an
/// earlier demo has its generated images removed (the run folder is replaced by `train`'s
/// `--overwrite`, which deletes only gpucnn's own files). Any other folder is refused, so the
/// demo never writes over files it did not make. Returns whether an earlier demo was there.
pub fn prepare_out(out: &Path) -> anyhow::Result<bool> {
    if out.join(MARKER).is_file() {
        for dir in CLASSES
            .iter()
            .map(|c| out.join("data").join(c))
            .chain([out.join("held_out")])
        {
            remove_generated(&dir)?;
        }
        return Ok(true);
    }
    let occupied = match std::fs::read_dir(out) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) if !out.is_dir() => {
            crate::bail_input!(
                "--out {} is not a folder: pick another --out",
                out.display()
            )
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {} (--out)", out.display()));
        }
    };
    crate::ensure_input!(
        !occupied,
        "--out {} already holds files that `gpucnn demo` did not write (no {MARKER}): pick an \
         empty or new folder for --out",
        out.display()
    );
    Ok(false)
}

/// Deletes the `.png` files of `dir` (the names the demo writes), leaving anything else.
fn remove_generated(dir: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "png") && path.is_file() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// Runs the demo into `out` with `plan` (see [`DemoPlan::for_adapter`]): generate, train,
/// predict. `log` receives the training's lines; `progress` shows progress bars.
pub fn run(
    ctx: &GpuContext,
    out: &Path,
    seed: u64,
    plan: &DemoPlan,
    progress: bool,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<DemoReport> {
    let again = prepare_out(out)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create {} (--out)", out.display()))?;
    let marker = serde_json::json!({ "written_by": "gpucnn demo", "seed": seed });
    crate::atomic::write_atomic(
        out.join(MARKER),
        serde_json::to_string_pretty(&marker)?.as_bytes(),
    )?;
    let data_dir = out.join("data");
    let held = write_dataset(
        &data_dir,
        &out.join("held_out"),
        seed,
        plan.per_class,
        plan.held_out_per_class,
    )?;
    log(&format!(
        "Generated {} images of {} ({}×{} pixels) in {}, and {} kept aside in {}",
        plan.per_class * CLASSES.len(),
        CLASSES.join(" and "),
        SOURCE_SIZE,
        SOURCE_SIZE,
        data_dir.display(),
        held.len(),
        out.join("held_out").display()
    ));
    let run_dir = out.join("run");
    let cfg = FitConfig {
        micro_batch: None,
        callbacks: Default::default(),
        keep_checkpoints: None,
        tensorboard: None,
        init_from: None,
        data: data_dir.clone(),
        out: run_dir.clone(),
        epochs: plan.epochs,
        batch_size: plan.batch_size,
        image_size: crate::data::ImageSize::square(plan.image_size),
        lr: plan.lr,
        validation_split: 0.2,
        seed,
        width: plan.width,
        // Flips keep the class (a mirrored disc is a disc); rotation costs steps to learn.
        augment: Some(crate::cpu::augment::AugmentConfig {
            flip: true,
            rotate: false,
            factor: 0.0,
            ..crate::cpu::augment::AugmentConfig::NONE
        }),
        crop_to_aspect_ratio: false,
        labels: None,
        val_data: None,
        class_names: None,
        resume: false,
        // Only a folder this demo marked as its own reaches here with files in `run/`.
        overwrite: again && run_dir.exists(),
        progress,
        regularization: Default::default(),
        class_weight: Default::default(),
        color_mode: crate::data::ColorMode::Rgb,
    };
    let fit = crate::train::fit::fit_on(
        ctx,
        &cfg,
        crate::dist::Job::solo(),
        &mut crate::train::terminal::Terminal::new(progress, log),
    )?;
    let paths: Vec<PathBuf> = held.iter().map(|(_, p)| p.clone()).collect();
    let (model, preds) = crate::predict::predict(ctx, &run_dir, &paths, paths.len().max(1))?;
    Ok(DemoReport {
        plan: plan.clone(),
        run_dir,
        data_dir,
        fit,
        classes: model.classes,
        predictions: held.into_iter().map(|(c, _)| c).zip(preds).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_images_other_seed_other_images() {
        let a = draw_image(&mut StdRng::seed_from_u64(7), 0, SOURCE_SIZE);
        let b = draw_image(&mut StdRng::seed_from_u64(7), 0, SOURCE_SIZE);
        let c = draw_image(&mut StdRng::seed_from_u64(8), 0, SOURCE_SIZE);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn write_dataset_is_deterministic_and_lays_out_classes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for run in ["one", "two"] {
            let root = tmp.path().join(run);
            let held = write_dataset(&root.join("data"), &root.join("held"), 5, 4, 2).unwrap();
            assert_eq!(held.len(), 4);
            assert_eq!(held[0].0, "discs");
            assert_eq!(held[3].0, "squares");
            let mut files = Vec::new();
            for class in CLASSES {
                for i in 0..4 {
                    files.push(
                        std::fs::read(root.join(format!("data/{class}/{class}_{i:04}.png")))
                            .unwrap(),
                    );
                }
            }
            bytes.push(files);
        }
        assert_eq!(bytes[0], bytes[1]);
    }

    /// Best accuracy of a threshold (either direction) on one number per image.
    fn best_threshold_accuracy(values: &[(f32, usize)]) -> f32 {
        let mut best = 0.0f32;
        for &(t, _) in values {
            let right = values
                .iter()
                .filter(|&&(v, c)| (v <= t) == (c == 0))
                .count();
            let acc = right as f32 / values.len() as f32;
            best = best.max(acc).max(1.0 - acc);
        }
        best
    }

    #[test]
    fn no_colour_statistic_separates_the_classes() {
        let mut rng = StdRng::seed_from_u64(1337);
        let n = 300;
        // Per image: mean of each channel, and the overall brightness spread.
        let mut stats: Vec<[f32; 5]> = Vec::new();
        let mut labels = Vec::new();
        for c in 0..2 {
            for _ in 0..n {
                let img = draw_image(&mut rng, c, SOURCE_SIZE);
                let px = img.pixels().count() as f32;
                let mut m = [0.0f32; 3];
                for p in img.pixels() {
                    for k in 0..3 {
                        m[k] += p[k] as f32 / px;
                    }
                }
                let grey: Vec<f32> = img
                    .pixels()
                    .map(|p| (p[0] as f32 + p[1] as f32 + p[2] as f32) / 3.0)
                    .collect();
                let gm = grey.iter().sum::<f32>() / px;
                let sd = (grey.iter().map(|g| (g - gm).powi(2)).sum::<f32>() / px).sqrt();
                stats.push([m[0], m[1], m[2], gm, sd]);
                labels.push(c);
            }
        }
        for k in 0..5 {
            let v: Vec<(f32, usize)> = stats
                .iter()
                .map(|s| s[k])
                .zip(labels.iter().copied())
                .collect();
            let acc = best_threshold_accuracy(&v);
            // 600 images: the best of 600 thresholds on pure noise reaches about 0.55-0.57.
            assert!(
                acc < 0.6,
                "statistic {k} separates the classes with accuracy {acc}"
            );
        }
    }

    #[test]
    fn prepare_out_refuses_a_folder_it_did_not_write_and_reuses_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!prepare_out(&tmp.path().join("new")).unwrap());
        assert!(!prepare_out(tmp.path()).unwrap(), "an empty folder is fine");
        std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
        let e = prepare_out(tmp.path()).unwrap_err();
        assert!(crate::commands::exit::is_bad_input(&e), "{e:#}");
        assert!(e.to_string().contains("--out"), "{e:#}");

        let own = tmp.path().join("demo");
        write_dataset(&own.join("data"), &own.join("held_out"), 1, 2, 1).unwrap();
        std::fs::write(own.join(MARKER), "{}").unwrap();
        std::fs::write(own.join("data/discs/keep.txt"), "user's").unwrap();
        assert!(prepare_out(&own).unwrap());
        assert!(!own.join("data/discs/discs_0000.png").exists());
        assert!(!own.join("held_out/squares_00.png").exists());
        assert!(
            own.join("data/discs/keep.txt").exists(),
            "only .png files go"
        );
    }

    #[test]
    fn software_plan_is_smaller_than_hardware_plan() {
        let (s, h) = (DemoPlan::for_adapter(true), DemoPlan::for_adapter(false));
        assert!(s.per_class < h.per_class && s.width < h.width && s.image_size <= h.image_size);
        // A few hundred steps (see for_adapter): 80% of the images train.
        let steps = |p: &DemoPlan| p.epochs * (p.per_class * 2 * 4 / 5).div_ceil(p.batch_size);
        assert!(steps(&s) >= 300, "{}", steps(&s));
        assert!(steps(&h) >= 300, "{}", steps(&h));
    }
}
