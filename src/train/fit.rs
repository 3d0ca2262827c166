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

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::api::{Event, FitObserver};
use super::callbacks::{CallbackConfig, CallbackState};
use super::checkpoint::write_model_json;
use super::class_weight::ClassWeight;
use super::epoch::Trainer;
use super::metrics::EpochMetrics;
use super::regularization::Regularization;
use super::run_folder::RunFolder;
use super::setup;
use super::tensorboard::TensorBoard;
use crate::cpu::augment::AugmentConfig;
use crate::data::decode::ResizeOptions;
use crate::data::geometry::{ColorMode, ImageSize};
use crate::data::loader::{CacheOptions, Loader, LoaderOptions};
use crate::dist::{self, DataParallel, Job, digest, same_everywhere};
use crate::gpu::GpuContext;
use crate::graph::params::Region;

/// Everything `gpucnn train` takes.
#[derive(Debug, Clone)]
pub struct FitConfig {
    pub data: PathBuf,
    pub out: PathBuf,
    pub epochs: usize,
    pub batch_size: usize,
    /// `--image-size`: what every image is resized to, and the model's input height and width
    /// (unless `augment` crops: then training images load at this size and the model's input
    /// is the crop's, see [`FitConfig::model_size`]).
    pub image_size: ImageSize,
    pub lr: f32,
    pub validation_split: f32,
    pub seed: u64,
    pub width: f32,
    pub augment: Option<AugmentConfig>,
    pub crop_to_aspect_ratio: bool,
    /// Early stopping, the learning-rate schedule and what best.safetensors follows.
    pub callbacks: CallbackConfig,
    /// Write TensorBoard event files under `out/logs`, with batch scalars every this many
    /// steps (0: per epoch only); `None`: no TensorBoard files.
    pub tensorboard: Option<usize>,
    /// Keep only the last this many `save_at_*` checkpoints (`None`: all).
    pub keep_checkpoints: Option<usize>,
    /// Start from these weights (another run's checkpoint) with a fresh optimizer.
    pub init_from: Option<PathBuf>,
    /// Run each step as micro-batches of at most this many images (gradients accumulated,
    /// batch norm per micro-batch); `None`: only where the GPU's limits need it.
    pub micro_batch: Option<usize>,
    /// Multi-label training from a CSV of `path,label1;label2` rows (paths relative to `data`).
    pub labels: Option<PathBuf>,
    /// A separate validation folder (`--val-data`): every image of `data` trains, every image
    /// of this folder validates, and `validation_split` is not used. Single-label only.
    pub val_data: Option<PathBuf>,
    /// Keras' `class_names` (`--class-names`): only these class sub-folders, in this order.
    /// Single-label only.
    pub class_names: Option<Vec<String>>,
    pub resume: bool,
    /// Delete the files of an earlier run in `out` (gpucnn's own only) and start afresh.
    pub overwrite: bool,
    /// Show progress bars (off in tests and when stderr is not a terminal).
    pub progress: bool,
    /// Weight decay and dropout (`--weight-decay`, `--dropout`).
    pub regularization: Regularization,
    /// `--class-weight`: Keras' `class_weight` on the training loss (see
    /// [`super::class_weight`]); the reported `loss` is then the weighted one. Single-label only.
    pub class_weight: ClassWeight,
    /// `--color-mode` (Keras' `color_mode`): images decoded to RGB or to one gray channel; the
    /// model's input has that many channels.
    pub color_mode: ColorMode,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct FitSummary {
    pub epochs: Vec<EpochMetrics>,
    pub best_val_accuracy: Option<f32>,
    pub skipped_files: usize,
}

impl FitConfig {
    /// The model's input size: the random crop's when `augment` crops (Keras' `RandomCrop`
    /// after loading at `image_size`), else `image_size`. Validation (and so predict and
    /// evaluate, which read model.json) load images at this size directly.
    pub fn model_size(&self) -> ImageSize {
        match self.augment.and_then(|a| a.crop) {
            Some(c) => ImageSize {
                height: c.height,
                width: c.width,
            },
            None => self.image_size,
        }
    }
}

/// Checks the flags before anything is read or written (exit status 2 at the CLI).
pub fn validate(cfg: &FitConfig) -> anyhow::Result<()> {
    if cfg.epochs == 0 {
        crate::bail_input!("--epochs must be at least 1");
    }
    if cfg.batch_size == 0 {
        crate::bail_input!("--batch-size must be at least 1");
    }
    if cfg.micro_batch == Some(0) {
        crate::bail_input!("--micro-batch must be at least 1");
    }
    if cfg.keep_checkpoints == Some(0) {
        crate::bail_input!(
            "--keep-checkpoints must be at least 1: the last checkpoint is what --resume needs"
        );
    }
    if cfg.image_size.is_empty() {
        crate::bail_input!(
            "--image-size must be at least 1 on each side, got {}",
            cfg.image_size
        );
    }
    if let Some(c) = cfg.augment.and_then(|a| a.crop) {
        let size = cfg.image_size;
        crate::ensure_input!(
            c.height >= 1 && c.width >= 1 && c.height <= size.height && c.width <= size.width,
            "--random-crop {}x{} must be at least 1 and at most --image-size {size} on each side",
            c.height,
            c.width
        );
        crate::ensure_input!(
            c.from == (size.height, size.width),
            "the random crop is configured for {}x{} images but --image-size is {size}",
            c.from.0,
            c.from.1
        );
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
    cfg.regularization.validate()?;
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

/// Runs a whole training (see the module doc). `log` receives the lines a user reads; no
/// progress bar is drawn (that is [`super::terminal::Terminal`]'s, through [`fit_on`]).
pub fn fit(
    ctx: &GpuContext,
    cfg: &FitConfig,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<FitSummary> {
    fit_on(ctx, cfg, Job::solo(), &mut Lines(log))
}

/// A [`FitObserver`] that passes the lines on and ignores the rest.
struct Lines<'a>(&'a mut dyn FnMut(&str));

impl FitObserver for Lines<'_> {
    fn message(&mut self, line: &str) {
        (self.0)(line)
    }
}

/// [`fit`] as one rank of a data-parallel job (see [`crate::dist`]), reporting to `observer`;
/// with [`Job::solo`] this is [`super::api::train`]. Every rank loads and checks the data (and
/// they check they share flags and files); rank 0 alone uses the run folder, decides where the
/// run starts and sends its parameters to the others; then every step exchanges gradients and
/// every epoch end compares the replicas.
pub fn fit_on(
    ctx: &GpuContext,
    cfg: &FitConfig,
    job: Job,
    observer: &mut dyn FitObserver,
) -> anyhow::Result<FitSummary> {
    let running = observer.wants_running();
    // The trainer holds a line sink and an event sink at once; both are this one observer,
    // and neither is ever called from inside the other.
    let observer = RefCell::new(observer);
    let events = |e: Event| e.send(*observer.borrow_mut());
    let mut log = |line: &str| observer.borrow_mut().message(line);
    fit_inner(ctx, cfg, job, &mut log, &events, running)
}

fn fit_inner(
    ctx: &GpuContext,
    cfg: &FitConfig,
    job: Job,
    log: &mut dyn FnMut(&str),
    events: &dyn Fn(Event),
    running: bool,
) -> anyhow::Result<FitSummary> {
    let lead = job.lead();
    job.agree(validate(cfg))?;
    same_everywhere(job.comm, "the same flags", digest(&settings_key(cfg)))?;
    let mut data = job.agree(setup::load_data(cfg, log))?;
    let fingerprint = job.agree(setup::fingerprint(cfg, &data))?;
    same_everywhere(
        job.comm,
        "the same data files",
        digest(&format!("{fingerprint:?}")),
    )?;
    // The run folder: locked, and checked against this run's fingerprint, before any long work.
    let folder = job.agree(if lead {
        RunFolder::lock(&cfg.out).and_then(|f| {
            let plan = f.plan(&fingerprint, cfg.resume, cfg.overwrite)?;
            Ok(Some((f, plan)))
        })
    } else {
        Ok(None)
    })?;
    let skipped_files = job.agree(setup::skip_unreadable(cfg, &mut data, log, job.comm))?;
    let class_weights = job.agree(setup::class_weights(cfg, &data, log))?;
    let (model, model_cfg) = job.agree(setup::build_model(cfg, &data))?;
    let local_batch = dist::local_batch(cfg.batch_size, job.comm.size());
    let step = job.agree(setup::compile_step(ctx, cfg, &model, local_batch, log))?;
    if let Some(w) = &class_weights {
        step.set_class_weights(ctx, w);
    }
    let started = job.agree(match folder {
        Some((folder, plan)) => (|| {
            let resume = setup::resume_point(cfg, plan, &step, &model_cfg, &fingerprint)?;
            let first_epoch = resume.as_ref().map_or(1, |r| r.epoch + 1);
            setup::check_free_space(cfg, &step, &data, first_epoch)?;
            folder.begin(plan, &fingerprint)?;
            let started = setup::start(ctx, cfg, &step, &model_cfg, resume, log)?;
            write_model_json(&cfg.out, &model_cfg)?;
            Ok(Some((folder, started)))
        })(),
        None => Ok(None),
    })?;
    let (_folder, first_epoch, mut best, mut csv, mut callbacks, position) = match started {
        Some((folder, s)) => (
            Some(folder),
            s.first_epoch,
            s.best,
            Some(s.csv),
            s.callbacks,
            s.position,
        ),
        None => (None, 0, None, None, CallbackState::new(cfg.lr), None),
    };
    // Only a single process writes interrupted.safetensors (under mpirun a signal ends the
    // job, and --resume continues from the last epoch's checkpoint).
    job.agree(if position.is_some() && job.parallel() {
        Err(crate::error::bad_input(format!(
            "{} holds a single process's interrupted epoch: finish it without mpirun (the same \
             command and --resume), or delete that file to resume from the last epoch's \
             checkpoint",
            crate::train::checkpoint::interrupted_path(&cfg.out).display()
        )))
    } else {
        Ok(())
    })?;
    // The other ranks start where rank 0 does, from its parameters and Adam state.
    let (first_epoch, best_so_far) = job.local(setup::share_start(
        ctx,
        job.comm,
        &step,
        cfg.lr,
        first_epoch,
        best,
        &mut callbacks,
    ))?;
    best = best_so_far;
    let parallel = job.parallel().then(|| {
        let (start, len) = step.layout.regions[Region::State as usize];
        let params = step.read_params(ctx)?;
        Ok::<_, anyhow::Error>(DataParallel::new(
            job.comm,
            &model,
            &step.layout,
            &params[start..start + len],
        ))
    });
    let parallel = job.local(parallel.transpose())?;

    // Training images load at --image-size; validation at the model's input size, which
    // differs with --random-crop (Keras resizes to the crop's size at inference).
    let loader_opts = |batch, size: ImageSize| LoaderOptions {
        resize: ResizeOptions {
            height: size.height,
            width: size.width,
            crop_to_aspect_ratio: cfg.crop_to_aspect_ratio,
            color_mode: cfg.color_mode,
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
        job,
        step: &step,
        parallel,
        train: Loader::new(data.train, loader_opts(cfg.batch_size, cfg.image_size))?,
        val: Loader::new(data.val, loader_opts(cfg.batch_size, cfg.model_size()))?,
        table: data.table.as_ref(),
        classes,
        first_epoch,
        model_cfg: &model_cfg,
        fingerprint: &fingerprint,
        warmup: None,
        advised: false,
        epoch_secs: None,
        callbacks,
        resume_at: position,
        events,
        running,
        tensorboard: match (cfg.tensorboard, lead) {
            (Some(_), true) => Some(
                TensorBoard::create(&cfg.out)
                    .with_context(|| format!("creating {}", cfg.out.join("logs").display()))?,
            ),
            _ => None,
        },
    };
    if !job.parallel() {
        super::interrupt::install();
    }
    let mut rows = Vec::new();
    if !cfg.callbacks.stopped(&trainer.callbacks) {
        for epoch in first_epoch..=cfg.epochs {
            let (row, stop) = trainer.epoch(epoch, csv.as_mut(), &mut best, log)?;
            rows.push(row);
            if stop {
                break;
            }
        }
    }
    Ok(FitSummary {
        epochs: csv.map_or(rows, |c| c.rows().to_vec()),
        best_val_accuracy: best,
        skipped_files,
    })
}

/// The settings every rank of a job must share (all of `cfg` but whether a bar is drawn).
fn settings_key(cfg: &FitConfig) -> String {
    format!(
        "{:?}",
        FitConfig {
            progress: false,
            ..cfg.clone()
        }
    )
}

/// The default output folder: `runs/<data folder name>`.
pub fn default_out(data: &Path) -> PathBuf {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    Path::new("runs").join(name)
}
