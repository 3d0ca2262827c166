//! The trainer from another Rust program (`gpucnn::train::api`): generates a small folder of
//! two classes (bright discs and squares on dark backgrounds), trains the Keras example's
//! network on it at a tiny size with an observer that prints each epoch, then predicts two
//! held-out images. Seconds on a GPU, about a minute on lavapipe (2 cores).
//!
//! `cargo run --example train_library`; exits non-zero when training does not beat chance.

use std::path::Path;

use gpucnn::train::api::{FitConfig, FitObserver, train};
use gpucnn::train::metrics::EpochMetrics;

/// One 24×24 image: a disc or a square of random size and place.
fn draw(disc: bool, seed: u64) -> image::RgbImage {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |n: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    };
    let (r, cx, cy) = (5 + next(4) as i32, 8 + next(8) as i32, 8 + next(8) as i32);
    image::RgbImage::from_fn(24, 24, |x, y| {
        let (dx, dy) = (x as i32 - cx, y as i32 - cy);
        let inside = if disc {
            dx * dx + dy * dy <= r * r
        } else {
            dx.abs() <= r && dy.abs() <= r
        };
        image::Rgb(if inside {
            [230, 220, 120]
        } else {
            [25, 30, 60]
        })
    })
}

fn write_folder(root: &Path, per_class: usize, first_seed: u64) {
    for (class, disc) in [("discs", true), ("squares", false)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..per_class {
            let path = root.join(class).join(format!("{i:03}.png"));
            draw(disc, first_seed + i as u64 * 2 + disc as u64)
                .save(path)
                .unwrap();
        }
    }
}

/// Prints each epoch's row, and counts the steps.
struct Report {
    steps: usize,
}

impl FitObserver for Report {
    fn step(&mut self, _epoch: usize, _step: usize, _steps: usize) {
        self.steps += 1;
    }
    fn epoch(&mut self, row: &EpochMetrics) {
        println!(
            "epoch {}: loss {:.4}, val_accuracy {:.3}, lr {:e}",
            row.epoch,
            row.loss,
            row.val_accuracy.unwrap_or(f32::NAN),
            row.lr.unwrap_or(f32::NAN)
        );
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (data, held_out) = (dir.path().join("data"), dir.path().join("held_out"));
    write_folder(&data, 250, 1);
    write_folder(&held_out, 1, 10_000);
    let ctx = gpucnn::gpu::GpuContext::new(&Default::default()).expect("a GPU adapter");
    let cfg = gpucnn::train::api::FitConfig {
        out: dir.path().join("run"),
        // Batch norm's moving statistics (momentum 0.99, what validation and prediction use)
        // need several hundred steps to follow the training: 50 steps an epoch.
        epochs: 16,
        batch_size: 8,
        image_size: gpucnn::model::ImageSize::square(24),
        width: 0.0625,
        augment: None,
        ..FitConfig::new(&data)
    };
    let mut report = Report { steps: 0 };
    let summary = match train(&ctx, &cfg, &mut report) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("training failed ({:?}): {e}", e.kind());
            std::process::exit(e.exit_code().into());
        }
    };
    println!(
        "{} steps; best val_accuracy {:?}",
        report.steps, summary.best_val_accuracy
    );
    let images = [
        held_out.join("discs/000.png"),
        held_out.join("squares/000.png"),
    ];
    let (model, preds) = gpucnn::predict::classify(&ctx, &cfg.out, &images, 2).unwrap();
    for p in &preds {
        let probs = p.result.as_ref().unwrap();
        println!("{}: {:?} {:?}", p.path.display(), model.classes, probs);
    }
    let best = summary.best_val_accuracy.unwrap_or(0.0);
    if best <= 0.6 {
        eprintln!("the model did not learn: best val_accuracy {best}");
        std::process::exit(1);
    }
}
