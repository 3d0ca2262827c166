//! The training loop behind `gpucnn train`: dataset → loader → GPU step → metrics,
//! checkpoints, curves, with Keras' `fit` semantics (see ../shared/KERAS-SEMANTICS.md).
//!
//! Everything random derives from one seed: the split and the per-epoch shuffles (the dataset),
//! the initial weights, and per step the dropout and augmentation seeds (a hash of the seed,
//! the epoch and the step), so an interrupted run resumed from its last checkpoint continues
//! exactly as the uninterrupted run would have.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::checkpoint::{
    ModelConfig, TrainState, checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint,
    write_model_json,
};
use super::metrics::{EpochMetrics, MetricsCsv};
use crate::cpu::augment::AugmentConfig;
use crate::data::dataset::{DatasetOptions, DirectoryDataset, Sample, epoch_order};
use crate::data::decode::ResizeOptions;
use crate::data::labels::LabelTable;
use crate::data::loader::{Batch, CacheOptions, Loader, LoaderOptions};
use crate::data::scan::{ScanOptions, scan};
use crate::gpu::GpuContext;
use crate::graph::executor::{BatchTargets, StepOptions, TrainStep};
use crate::model::{XceptionConfig, xception_mini};

/// Everything `gpucnn train` takes.
#[derive(Debug, Clone)]
pub struct FitConfig {
    pub data: PathBuf,
    pub out: PathBuf,
    pub epochs: usize,
    pub batch_size: usize,
    pub image_size: usize,
    pub lr: f32,
    pub validation_split: f32,
    pub seed: u64,
    pub width: f32,
    pub augment: Option<AugmentConfig>,
    pub crop_to_aspect_ratio: bool,
    /// Multi-label training from a CSV of `path,label1;label2` rows (paths relative to `data`).
    pub labels: Option<PathBuf>,
    pub resume: bool,
    /// Show progress bars (off in tests and when stderr is not a terminal).
    pub progress: bool,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct FitSummary {
    pub epochs: Vec<EpochMetrics>,
    pub best_val_accuracy: Option<f32>,
    pub skipped_files: usize,
}

/// Checks the flags before anything is read or written (exit status 2 at the CLI).
pub fn validate(cfg: &FitConfig) -> anyhow::Result<()> {
    if cfg.epochs == 0 {
        crate::bail_input!("--epochs must be at least 1");
    }
    if cfg.batch_size == 0 {
        crate::bail_input!("--batch-size must be at least 1");
    }
    if cfg.image_size == 0 {
        crate::bail_input!("--image-size must be at least 1");
    }
    if !(cfg.validation_split > 0.0 && cfg.validation_split < 1.0) {
        crate::bail_input!(
            "--validation-split must be strictly between 0 and 1, got {}",
            cfg.validation_split
        );
    }
    if !(cfg.width.is_finite() && cfg.width > 0.0) {
        crate::bail_input!("--width must be a positive number, got {}", cfg.width);
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        crate::bail_input!("--lr must be a positive number, got {}", cfg.lr);
    }
    Ok(())
}

fn step_seed(seed: u64, epoch: usize, step: usize) -> u32 {
    // SplitMix64 of (seed, epoch, step): decorrelated seeds for dropout and augmentation.
    let mut z = seed ^ ((epoch as u64) << 32 | step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

/// Runs a whole training (see the module doc). `log` receives the lines a user reads.
pub fn fit(
    ctx: &GpuContext,
    cfg: &FitConfig,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<FitSummary> {
    validate(cfg)?;
    let split = DatasetOptions {
        validation_split: cfg.validation_split,
        seed: cfg.seed,
    };
    // Single-label: class folders. Multi-label: a labels CSV whose rows index `table.targets`.
    let (class_names, mut train, mut val, table) = match &cfg.labels {
        Some(csv) => {
            let t = LabelTable::from_csv(csv, &cfg.data, &split)?;
            log(&format!(
                "Found {} images with {} labels ({}). Using {} for training, {} for validation.",
                t.train.len() + t.val.len(),
                t.label_names.len(),
                t.label_names.join(", "),
                t.train.len(),
                t.val.len()
            ));
            (
                t.label_names.clone(),
                t.train.clone(),
                t.val.clone(),
                Some(t),
            )
        }
        None => {
            let ds = DirectoryDataset::open(&cfg.data, &split)?;
            log(&ds.summary());
            (ds.class_names, ds.train, ds.val, None)
        }
    };

    // Decode every file once; corrupt ones are listed and left out.
    let all: Vec<Sample> = train.iter().chain(&val).cloned().collect();
    let report = scan(&all, &ScanOptions::default());
    if !report.bad.is_empty() {
        log(&format!(
            "Skipping {} unreadable file(s):",
            report.bad.len()
        ));
        for b in &report.bad {
            log(&format!("  {}: {}", b.path.display(), b.reason));
        }
        let bad: std::collections::HashSet<PathBuf> =
            report.bad.iter().map(|b| b.path.clone()).collect();
        train.retain(|s| !bad.contains(&s.path));
        val.retain(|s| !bad.contains(&s.path));
    }
    if train.is_empty() || val.is_empty() {
        crate::bail_input!(
            "{}: after skipping unreadable files, {} training and {} validation images remain; \
             add images or lower --validation-split",
            cfg.data.display(),
            train.len(),
            val.len()
        );
    }

    let classes = class_names.len();
    let xcfg = XceptionConfig {
        image_size: cfg.image_size,
        channels: 3,
        classes,
        width: cfg.width,
        dropout: 0.5,
        multi_label: table.is_some(),
    };
    let model = xception_mini(&xcfg)?;
    let model_cfg = ModelConfig {
        crop_to_aspect_ratio: cfg.crop_to_aspect_ratio,
        ..ModelConfig::xception_mini(&xcfg, class_names.clone())
    };

    // The output folder: created (or checked) before any long work.
    std::fs::create_dir_all(&cfg.out).with_context(|| {
        format!(
            "cannot create the output folder {} (--out)",
            cfg.out.display()
        )
    })?;

    let step = TrainStep::with_options(
        ctx,
        &model,
        cfg.batch_size,
        &StepOptions {
            lr: cfg.lr,
            micro: None,
            augment: cfg.augment,
        },
    )?;
    if step.micro < cfg.batch_size {
        log(&format!(
            "Batch {} runs as micro-batches of {} with gradient accumulation: one batch would need \
             more than the GPU's {} MiB per binding (batch norm uses each micro-batch's statistics).",
            cfg.batch_size,
            step.micro,
            ctx.limits.max_storage_buffer_binding_size >> 20
        ));
    }

    // Fresh start or resume.
    let mut first_epoch = 1;
    let mut best = None;
    let mut csv;
    let latest = if cfg.resume {
        latest_checkpoint(&cfg.out)?
    } else {
        None
    };
    match latest {
        Some((epoch, path)) => {
            let ck = load_checkpoint(&path, &step.layout)?;
            if let Some(saved) = &ck.model {
                saved.ensure_matches(&path, &model_cfg)?;
            }
            let state = ck.state.with_context(|| {
                format!("{} holds no optimizer state to resume from", path.display())
            })?;
            step.load_params(ctx, &ck.params);
            step.load_optimizer(ctx, state.adam_t, cfg.lr, &state.m, &state.v);
            best = state.best_val_accuracy;
            first_epoch = epoch + 1;
            csv = MetricsCsv::resume(cfg.out.join("metrics.csv"), epoch)?;
            log(&format!(
                "Resuming from {} (epoch {epoch}).",
                path.display()
            ));
        }
        None => {
            if cfg.resume {
                log(&format!(
                    "No checkpoint in {}: starting from scratch.",
                    cfg.out.display()
                ));
            }
            step.load_params(ctx, &step.layout.initial_values(cfg.seed));
            csv = MetricsCsv::create(cfg.out.join("metrics.csv"))?;
        }
    }
    write_model_json(&cfg.out, &model_cfg)?;

    let loader_opts = |batch| LoaderOptions {
        resize: ResizeOptions {
            height: cfg.image_size,
            width: cfg.image_size,
            crop_to_aspect_ratio: cfg.crop_to_aspect_ratio,
        },
        batch_size: batch,
        workers: 0,
        prefetch: 2,
        cache: CacheOptions {
            memory_budget: 2 << 30,
            disk_dir: Some(cfg.out.clone()),
        },
    };
    let train_loader = Loader::new(train, loader_opts(cfg.batch_size))?;
    let val_loader = Loader::new(val, loader_opts(cfg.batch_size))?;
    let binary = classes == 2;
    let upload = |b: &Batch| {
        if let Some(t) = &table {
            step.write_batch(
                ctx,
                &b.images,
                BatchTargets::Binary(&t.batch_targets(&b.labels)),
            )
        } else if binary {
            let t: Vec<f32> = b.labels.iter().map(|&l| l as f32).collect();
            step.write_batch(ctx, &b.images, BatchTargets::Binary(&t))
        } else {
            step.write_batch(ctx, &b.images, BatchTargets::Classes(&b.labels))
        }
    };

    for epoch in first_epoch..=cfg.epochs {
        let started = Instant::now();
        let order = epoch_order(train_loader.len(), epoch, cfg.seed);
        let mut batches = train_loader.epoch(&order)?;
        let steps = batches.batch_count();
        let bar = progress_bar(cfg.progress, steps as u64, epoch, cfg.epochs);
        step.reset_metrics(ctx);
        let mut images = 0usize;
        let mut last_report = Instant::now();
        for (i, batch) in batches.by_ref().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let n = upload(&batch);
            step.set_dropout_seed(ctx, step_seed(cfg.seed, epoch, i));
            step.submit(ctx, n);
            images += n;
            bar.inc(1);
            // A readback waits for the GPU: do it at most twice a second for the bar.
            if cfg.progress && last_report.elapsed() > Duration::from_millis(500) {
                let [l, c, s] = step.read_metrics(ctx)?;
                bar.set_message(format!(
                    "loss {:.4} acc {:.4} {:.1} img/s",
                    l / s,
                    c / s,
                    images as f64 / started.elapsed().as_secs_f64()
                ));
                last_report = Instant::now();
            }
        }
        let stats = batches.stats();
        let [loss_sum, correct, seen] = step.read_metrics(ctx)?;
        let train_secs = started.elapsed().as_secs_f64();
        bar.finish_and_clear();

        // Validation: moving statistics, no dropout, in order.
        step.reset_metrics(ctx);
        let val_order: Vec<usize> = (0..val_loader.len()).collect();
        for batch in val_loader.epoch(&val_order)? {
            if batch.is_empty() {
                continue;
            }
            let n = upload(&batch);
            step.submit_eval(ctx, n);
        }
        let [vl, vc, vs] = step.read_metrics(ctx)?;
        let row = EpochMetrics {
            epoch,
            loss: loss_sum / seen,
            accuracy: correct / seen,
            val_loss: Some(vl / vs),
            val_accuracy: Some(vc / vs),
            seconds: started.elapsed().as_secs_f64(),
            images_per_sec: images as f64 / train_secs,
        };
        log(&format!(
            "Epoch {epoch}/{}: {steps} steps, {:.1}s ({:.1} img/s, waited {:.1}s for data) - loss: {:.4} - accuracy: {:.4} - val_loss: {:.4} - val_accuracy: {:.4}",
            cfg.epochs,
            row.seconds,
            row.images_per_sec,
            stats.wait.as_secs_f64(),
            row.loss,
            row.accuracy,
            vl / vs,
            vc / vs
        ));
        for s in &stats.skipped {
            log(&format!("  skipped {}: {}", s.path.display(), s.reason));
        }

        // Outputs of the epoch, each written atomically.
        let params = step.read_params(ctx)?;
        let (t, m, v) = step.read_optimizer(ctx)?;
        let val_acc = vc / vs;
        let improved = best.is_none_or(|b| val_acc > b);
        if improved {
            best = Some(val_acc);
        }
        let state = TrainState {
            epoch,
            adam_t: t,
            lr: cfg.lr,
            m,
            v,
            rng_state: vec![cfg.seed],
            best_val_accuracy: best,
        };
        save_checkpoint(
            checkpoint_path(&cfg.out, epoch),
            &step.layout,
            &params,
            &model_cfg,
            Some(&state),
        )?;
        if improved {
            save_checkpoint(
                cfg.out.join("best.safetensors"),
                &step.layout,
                &params,
                &model_cfg,
                None,
            )?;
        }
        csv.append(row)?;
        super::plot::write_curves_png(cfg.out.join("curves.png"), csv.rows())?;
    }
    Ok(FitSummary {
        epochs: csv.rows().to_vec(),
        best_val_accuracy: best,
        skipped_files: report.bad.len(),
    })
}

fn progress_bar(show: bool, steps: u64, epoch: usize, epochs: usize) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "Epoch {epoch}/{epochs} {{bar:30}} {{pos}}/{{len}} ETA {{eta}} {{msg}}"
        ))
        .expect("a valid template"),
    );
    bar
}

/// The default output folder: `runs/<data folder name>`.
pub fn default_out(data: &Path) -> PathBuf {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    Path::new("runs").join(name)
}
