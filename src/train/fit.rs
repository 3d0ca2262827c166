//! The training loop behind `gpucnn train`: dataset → loader → GPU step → metrics,
//! checkpoints, curves, with Keras' `fit` semantics (see ../shared/KERAS-SEMANTICS.md).
//!
//! Everything random derives from one seed: the split and the per-epoch shuffles (the dataset),
//! the initial weights, and per step the dropout and augmentation seeds (a hash of the seed,
//! the epoch and the step), so an interrupted run resumed from its last checkpoint continues
//! exactly as the uninterrupted run would have.
//!
//! The run folder (`--out`, see [`super::run_folder`]) is locked for the whole run and records the
//! run's fingerprint; `--resume` continues only a run with the same one. At the end of an epoch
//! its files are written in this order, each atomically: `metrics.csv`, `curves.png`,
//! `best.safetensors` (when validation accuracy improved), and last `save_at_<N>.safetensors`, the
//! commit point. `--resume` continues from the last checkpoint and drops later metrics rows, so
//! an interruption anywhere (a kill, a full disk) loses nothing: the rows and the best model
//! written ahead of the checkpoint are recomputed identically. A loss or weight that is not a
//! finite number stops the run before anything of that epoch is written.

use std::path::{Path, PathBuf};

use super::checkpoint::write_model_json;
use super::epoch::Trainer;
use super::metrics::EpochMetrics;
use super::run_folder::RunFolder;
use super::setup;
use crate::cpu::augment::AugmentConfig;
use crate::data::decode::ResizeOptions;
use crate::data::loader::{CacheOptions, Loader, LoaderOptions};
use crate::gpu::GpuContext;

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
    /// Delete the files of an earlier run in `out` (gpucnn's own only) and start afresh.
    pub overwrite: bool,
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
    if cfg.resume && cfg.overwrite {
        crate::bail_input!(
            "--resume continues the run in --out and --overwrite deletes it: pass one of them"
        );
    }
    Ok(())
}

/// The dropout and augmentation seed of step `step` of `epoch`.
pub(crate) fn step_seed(seed: u64, epoch: usize, step: usize) -> u32 {
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
    let mut data = setup::load_data(cfg, log)?;
    // The run folder: locked, and checked against this run's fingerprint, before any long work.
    let fingerprint = setup::fingerprint(cfg, &data)?;
    let folder = RunFolder::lock(&cfg.out)?;
    let plan = folder.plan(&fingerprint, cfg.resume, cfg.overwrite)?;
    let skipped_files = setup::skip_unreadable(cfg, &mut data, log)?;
    let (model, model_cfg) = setup::build_model(cfg, &data)?;
    let step = setup::compile_step(ctx, cfg, &model, log)?;
    let resume = setup::resume_point(cfg, plan, &step, &model_cfg, &fingerprint)?;
    let first_epoch = resume.as_ref().map_or(1, |r| r.epoch + 1);
    setup::check_free_space(cfg, &step, &data, first_epoch)?;
    folder.begin(plan, &fingerprint)?;
    let (first_epoch, mut best, mut csv) = setup::start(ctx, cfg, &step, resume, log)?;
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
            memory_budget: setup::MEMORY_CACHE_BUDGET,
            disk_dir: Some(cfg.out.clone()),
        },
    };
    let classes = data.class_names.len();
    let mut trainer = Trainer {
        ctx,
        cfg,
        step: &step,
        train: Loader::new(data.train, loader_opts(cfg.batch_size))?,
        val: Loader::new(data.val, loader_opts(cfg.batch_size))?,
        table: data.table.as_ref(),
        classes,
        first_epoch,
        model_cfg: &model_cfg,
        fingerprint: &fingerprint,
        warmup: None,
        advised: false,
        epoch_secs: None,
    };
    for epoch in first_epoch..=cfg.epochs {
        trainer.epoch(epoch, &mut csv, &mut best, log)?;
    }
    Ok(FitSummary {
        epochs: csv.rows().to_vec(),
        best_val_accuracy: best,
        skipped_files,
    })
}

/// The default output folder: `runs/<data folder name>`.
pub fn default_out(data: &Path) -> PathBuf {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    Path::new("runs").join(name)
}
