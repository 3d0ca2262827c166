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
use std::time::{Duration, Instant};

use anyhow::Context;

use super::checkpoint::{
    ModelConfig, TrainState, checkpoint_path, checkpoint_size_bound, latest_checkpoint,
    load_checkpoint, save_checkpoint, write_model_json,
};
use super::metrics::{EpochMetrics, MetricsCsv};
use super::progress::{
    ESTIMATE_STEPS, Settings, Status, Work, estimate, format_duration, format_step, slow_run_advice,
};
use super::run_folder::{self, Plan, RunFingerprint, RunFolder};
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

/// Most bytes of decoded images the loader keeps in memory (beyond, it caches on disk in --out).
const MEMORY_CACHE_BUDGET: u64 = 2 << 30;

/// `--augment`/`--rotation` as the fingerprint records them.
fn augment_label(a: &Option<AugmentConfig>) -> String {
    match a {
        None => "none".into(),
        Some(a) => {
            let mut parts = Vec::new();
            if a.flip {
                parts.push("flip".to_string());
            }
            if a.rotate {
                parts.push(format!("rotate {}", a.factor));
            }
            parts.join(",")
        }
    }
}

/// Per class (single-label) or label (multi-label: images carrying it), how many of `samples`.
fn per_class(samples: &[Sample], classes: usize, table: Option<&LabelTable>) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for s in samples {
        match table {
            Some(t) => {
                for (c, &on) in counts.iter_mut().zip(&t.targets[s.label]) {
                    if on > 0.5 {
                        *c += 1;
                    }
                }
            }
            None => counts[s.label] += 1,
        }
    }
    counts
}

/// Refuses a class without a single readable image (it would train "perfectly" on the others)
/// and warns about a class missing from one split.
fn check_classes(
    cfg: &FitConfig,
    names: &[String],
    table: Option<&LabelTable>,
    train: &[Sample],
    val: &[Sample],
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let (t, v) = (
        per_class(train, names.len(), table),
        per_class(val, names.len(), table),
    );
    let place = |name: &str| match (&cfg.labels, table) {
        (Some(csv), Some(_)) => format!("label '{name}' of {} (--labels)", csv.display()),
        _ => format!("class '{name}' ({})", cfg.data.join(name).display()),
    };
    for (i, name) in names.iter().enumerate() {
        if t[i] + v[i] == 0 {
            crate::bail_input!(
                "{} has no readable image: every one of its files was skipped as unreadable \
                 (listed above). Replace them with images gpucnn can decode, or remove the class",
                place(name)
            );
        }
        if t[i] == 0 {
            log(&format!(
                "warning: {} has no training image after the split and skipping unreadable \
                 files: the model cannot learn it; add images or change --validation-split",
                place(name)
            ));
        }
        if v[i] == 0 {
            log(&format!(
                "warning: {} has no validation image after the split and skipping unreadable \
                 files: val_accuracy says nothing about it; add images or raise \
                 --validation-split",
                place(name)
            ));
        }
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

    // The run folder: locked, and checked against this run's fingerprint, before any long work.
    let all: Vec<Sample> = train.iter().chain(&val).cloned().collect();
    let fingerprint = RunFingerprint {
        seed: cfg.seed,
        validation_split: cfg.validation_split,
        lr: cfg.lr,
        batch_size: cfg.batch_size,
        image_size: cfg.image_size,
        width: cfg.width,
        augment: augment_label(&cfg.augment),
        crop_to_aspect_ratio: cfg.crop_to_aspect_ratio,
        classes: class_names.clone(),
        multi_label: table.is_some(),
        labels_csv: match &cfg.labels {
            Some(csv) => Some(run_folder::file_digest(csv)?),
            None => None,
        },
        data: run_folder::data_digest(&cfg.data, all.iter().map(|s| s.path.as_path()))?,
    };
    let folder = RunFolder::lock(&cfg.out)?;
    let plan = folder.plan(&fingerprint, cfg.resume, cfg.overwrite)?;

    // Decode every file once; corrupt ones are listed and left out.
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
    check_classes(cfg, &class_names, table.as_ref(), &train, &val, log)?;
    if train.is_empty() || val.is_empty() {
        let fix = if train.is_empty() {
            "add images or lower --validation-split"
        } else {
            "add images or raise --validation-split"
        };
        crate::bail_input!(
            "{}: after skipping unreadable files, {} training and {} validation images remain; \
             {fix}",
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

    // Compiling takes seconds to minutes on a software adapter: say so before it starts.
    let compiling = Status::begin(cfg.progress, "Compiling GPU pipelines…", log);
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
    let secs = compiling.elapsed();
    compiling.finish(&format!("GPU pipelines compiled in {secs:.1}s."), log);
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
    let latest = if plan == Plan::Resume {
        latest_checkpoint(&cfg.out)?
    } else {
        None
    };
    let resume_from = match latest {
        Some((epoch, path)) => {
            let ck = load_checkpoint(&path, &step.layout)?;
            if let Some(saved) = &ck.model {
                saved.ensure_matches(&path, &model_cfg)?;
            }
            let state = ck.state.with_context(|| {
                format!("{} holds no optimizer state to resume from", path.display())
            })?;
            // run.json agreed; the checkpoint itself must be this run's too.
            match &state.run {
                Some(old) => {
                    let diffs = old.differences(&fingerprint);
                    crate::ensure_input!(
                        diffs.is_empty(),
                        "{} was written by another run than the one requested: {}. Pass \
                         --overwrite to delete that run's files and start afresh, or pick another \
                         --out",
                        path.display(),
                        diffs.join("; ")
                    );
                }
                None => crate::bail_input!(
                    "{} records no run fingerprint (written by an older gpucnn), so it cannot be \
                     checked against these settings: pass --overwrite to start afresh, or pick \
                     another --out",
                    path.display()
                ),
            }
            Some((epoch, path, ck.params, state))
        }
        None => None,
    };
    if let Some((epoch, ..)) = &resume_from {
        first_epoch = epoch + 1;
    }
    check_free_space(cfg, &step, &train, &val, first_epoch)?;
    folder.begin(plan, &fingerprint)?;
    match resume_from {
        Some((epoch, path, params, state)) => {
            let ck_params = params;
            step.load_params(ctx, &ck_params);
            step.load_optimizer(ctx, state.adam_t, cfg.lr, &state.m, &state.v);
            best = state.best_val_accuracy;
            csv = MetricsCsv::resume(cfg.out.join("metrics.csv"), epoch)?;
            log(&format!(
                "Resuming from {} (epoch {epoch}).",
                path.display()
            ));
            if epoch >= cfg.epochs {
                log(&format!(
                    "{} already holds {epoch} epochs, --epochs is {}: nothing to train. Raise \
                     --epochs to train further.",
                    cfg.out.display(),
                    cfg.epochs
                ));
            }
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
            memory_budget: MEMORY_CACHE_BUDGET,
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

    let val_steps = val_loader.len().div_ceil(cfg.batch_size);
    let settings = Settings {
        image_size: cfg.image_size,
        width: cfg.width,
        epochs: cfg.epochs,
    };
    // The first step of a run loads the first batch and runs every GPU program for the first
    // time (slow on a software adapter): a status line until it is done, then a first estimate
    // after ESTIMATE_STEPS more, with the advice when the run is long (checked once).
    let mut warmup = None;
    let mut advised = false;
    // A whole epoch as measured (less the warm-up), for the later epochs' estimate.
    let mut epoch_secs: Option<f64> = None;
    for epoch in first_epoch..=cfg.epochs {
        let started = Instant::now();
        if epoch == first_epoch {
            warmup = Some(Status::begin(cfg.progress, "Warming up: first step…", log));
        }
        let order = epoch_order(train_loader.len(), epoch, cfg.seed);
        let mut batches = train_loader.epoch(&order)?;
        let steps = batches.batch_count();
        let bar = progress_bar(
            cfg.progress,
            warmup.is_some(),
            steps as u64,
            epoch,
            cfg.epochs,
        );
        let work = |done| Work {
            steps_per_epoch: steps,
            val_steps,
            steps_done: done,
            epochs_after: cfg.epochs - epoch,
        };
        step.reset_metrics(ctx);
        let mut images = 0usize;
        let mut submitted = 0usize;
        let mut last_report = Instant::now();
        // Steps are timed between two moments the GPU had finished every step submitted
        // (submit does not wait): from here, with this many steps done.
        let mut clock = (started, 0usize);
        let mut warmup_secs = 0.0;
        for (i, batch) in batches.by_ref().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let n = upload(&batch);
            step.set_dropout_seed(ctx, step_seed(cfg.seed, epoch, i));
            step.submit(ctx, n);
            images += n;
            submitted += 1;
            bar.inc(1);
            if let Some(w) = warmup.take() {
                // Once per run: wait for the first step, so that its end is known.
                ctx.wait()?;
                warmup_secs = w.elapsed();
                w.finish(
                    &format!(
                        "First step done in {} (includes one-time warm-up).",
                        format_duration(warmup_secs)
                    ),
                    log,
                );
                clock = (Instant::now(), submitted);
                if cfg.progress {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
            } else if !advised && submitted == clock.1 + ESTIMATE_STEPS && epoch == first_epoch {
                // Once per run: wait for a few steps after the first, for the first estimate.
                ctx.wait()?;
                advised = true;
                let per_step = clock.0.elapsed().as_secs_f64() / ESTIMATE_STEPS as f64;
                let eta = estimate(&work(submitted), per_step, None);
                bar.suspend(|| {
                    log(&format!(
                        "Timing: {} after the first step: epoch {epoch} ends in about {}, the \
                         whole run ({} epoch(s)) in about {}.",
                        format_step(per_step),
                        format_duration(eta.epoch),
                        cfg.epochs + 1 - first_epoch,
                        format_duration(eta.run)
                    ));
                    let name = &ctx.info.name;
                    if let Some(a) = slow_run_advice(eta.run, ctx.is_software(), name, &settings) {
                        log(&a);
                    }
                });
            }
            // A readback waits for the GPU: do it at most twice a second for the bar.
            if cfg.progress && last_report.elapsed() > Duration::from_millis(500) {
                let [l, c, s] = step.read_metrics(ctx)?;
                let timed = submitted - clock.1;
                let pace = if timed > 0 {
                    let per_step = clock.0.elapsed().as_secs_f64() / timed as f64;
                    let eta = estimate(&work(submitted), per_step, epoch_secs);
                    format!(
                        "{} · epoch ETA {} · run ETA {} · ",
                        format_step(per_step),
                        format_duration(eta.epoch),
                        format_duration(eta.run)
                    )
                } else {
                    String::new()
                };
                bar.set_message(format!(
                    "{pace}loss {:.4} acc {:.4} {:.1} img/s",
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
        // The steady time per step: the warm-up step left out when there were others.
        let timed = submitted - clock.1;
        let per_step = if timed > 0 {
            clock.0.elapsed().as_secs_f64() / timed as f64
        } else {
            train_secs / submitted.max(1) as f64
        };

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
        // Later epochs: as this one, less the warm-up's excess over a steady step.
        let steady = row.seconds - (warmup_secs - per_step).max(0.0);
        epoch_secs = Some(steady);
        let done = Work {
            val_steps: 0,
            ..work(steps)
        };
        let left = estimate(&done, per_step, epoch_secs).run;
        let eta = if epoch < cfg.epochs {
            format!(" - run ETA {}", format_duration(left))
        } else {
            String::new()
        };
        log(&format!(
            "Epoch {epoch}/{}: {steps} steps, {:.1}s ({}, {:.1} img/s, waited {:.1}s for data) - loss: {:.4} - accuracy: {:.4} - val_loss: {:.4} - val_accuracy: {:.4}{eta}",
            cfg.epochs,
            row.seconds,
            format_step(per_step),
            row.images_per_sec,
            stats.wait.as_secs_f64(),
            row.loss,
            row.accuracy,
            vl / vs,
            vc / vs
        ));
        if !advised {
            // An epoch too short for the in-epoch estimate: decide on the measured one.
            advised = true;
            if let Some(a) = slow_run_advice(left, ctx.is_software(), &ctx.info.name, &settings) {
                log(&a);
            }
        }
        for s in &stats.skipped {
            log(&format!("  skipped {}: {}", s.path.display(), s.reason));
        }

        // Outputs of the epoch, each written atomically, the checkpoint last (see the module
        // doc): nothing of a diverged epoch is written.
        let params = step.read_params(ctx)?;
        let diverged = [("training loss", row.loss), ("validation loss", vl / vs)]
            .into_iter()
            .find(|(_, x)| !x.is_finite())
            .map(|(what, x)| format!("the {what} is {x}"))
            .or_else(|| {
                (!params.iter().all(|p| p.is_finite()))
                    .then(|| "the weights are no longer finite numbers".to_string())
            });
        if let Some(what) = diverged {
            anyhow::bail!(
                "training diverged in epoch {epoch}: {what}. Nothing of epoch {epoch} was saved; \
                 {} holds the epochs before it. Lower --lr (it is {:e}; try {:e}) and start \
                 afresh with --overwrite",
                cfg.out.display(),
                cfg.lr,
                cfg.lr / 10.0
            );
        }
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
            run: Some(fingerprint.clone()),
            best_val_accuracy: best,
        };
        let incomplete = || {
            format!(
                "epoch {epoch} could not be saved; {} holds every epoch before it intact: free \
                 disk space and continue with --resume",
                cfg.out.display()
            )
        };
        csv.append(row).with_context(incomplete)?;
        crate::plot::curves::write_curves_png(cfg.out.join("curves.png"), csv.rows())
            .with_context(incomplete)?;
        if improved {
            save_checkpoint(
                cfg.out.join("best.safetensors"),
                &step.layout,
                &params,
                &model_cfg,
                None,
            )
            .with_context(incomplete)?;
        }
        save_checkpoint(
            checkpoint_path(&cfg.out, epoch),
            &step.layout,
            &params,
            &model_cfg,
            Some(&state),
        )
        .with_context(incomplete)?;
    }
    Ok(FitSummary {
        epochs: csv.rows().to_vec(),
        best_val_accuracy: best,
        skipped_files: report.bad.len(),
    })
}

/// Refuses a run whose outputs cannot fit the free space of `--out`'s file system: a checkpoint
/// per remaining epoch, best.safetensors (twice, old and new, during its replacement), the small
/// files, and the loader's disk cache when the images do not fit its memory budget.
fn check_free_space(
    cfg: &FitConfig,
    step: &TrainStep,
    train: &[Sample],
    val: &[Sample],
    first_epoch: usize,
) -> anyhow::Result<()> {
    let epochs = (cfg.epochs + 1).saturating_sub(first_epoch) as u64;
    if epochs == 0 {
        return Ok(());
    }
    let checkpoint = checkpoint_size_bound(&step.layout, true);
    let record = (cfg.image_size * cfg.image_size * 3) as u64;
    let cache: u64 = [train.len(), val.len()]
        .iter()
        .map(|&n| record * n as u64)
        .filter(|&b| b > MEMORY_CACHE_BUDGET)
        .sum();
    let small = 4 << 20; // metrics.csv, curves.png, model.json, run.json and their temporaries
    let needed = epochs
        .saturating_mul(checkpoint)
        .saturating_add(2 * checkpoint_size_bound(&step.layout, false))
        .saturating_add(small)
        .saturating_add(cache);
    let free = match run_folder::free_space(&cfg.out) {
        Ok(Some(f)) => f,
        // Unknown (another platform, or statvfs failed): write failures still stop the run
        // cleanly, naming the file.
        _ => return Ok(()),
    };
    if needed > free {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let cache_note = if cache > 0 {
            format!(
                ", and {:.1} MiB of decoded images cached on disk",
                mib(cache)
            )
        } else {
            String::new()
        };
        anyhow::bail!(
            "not enough free disk space for this run in {} (--out): it will write about {:.1} MiB \
             ({epochs} checkpoint(s) of up to {:.2} MiB, one per epoch, and best.safetensors{cache_note}) \
             and {:.1} MiB are free. Free disk space, pick an --out on a larger disk, or lower \
             --epochs",
            cfg.out.display(),
            mib(needed),
            mib(checkpoint),
            mib(free)
        );
    }
    Ok(())
}

/// The epoch's bar (hidden when `show` is false); drawn from the start unless `later`, when it
/// appears at `set_draw_target` (after the warm-up's status line).
fn progress_bar(
    show: bool,
    later: bool,
    steps: u64,
    epoch: usize,
    epochs: usize,
) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let target = if later {
        indicatif::ProgressDrawTarget::hidden()
    } else {
        indicatif::ProgressDrawTarget::stderr()
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(steps), target);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "Epoch {epoch}/{epochs} {{bar:30}} {{pos}}/{{len}} {{msg}}"
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
