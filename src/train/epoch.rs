//! One epoch of `fit`: the training steps (with the warm-up status, the first estimate and the
//! events an observer's progress bar follows), the validation pass, the epoch's line, and its files written in the order
//! that makes an interruption harmless (see [`super::fit`]).

use std::time::{Duration, Instant};

use anyhow::Context;

use super::api::{Event, Running};
use super::callbacks::{CallbackState, EpochDecision, LrSchedule};
use super::checkpoint::{
    ModelConfig, Position, TrainState, checkpoint_path, interrupted_path, save_checkpoint,
};
use super::fit::{FitConfig, step_seed};
use super::interrupt::Interrupted;
use super::metrics::{EpochMetrics, MetricsCsv};
use super::progress::{
    ESTIMATE_STEPS, Eta, Settings, Status, Work, estimate, format_duration, format_step,
    slow_run_advice,
};
use super::run_folder::RunFingerprint;
use super::tensorboard::TensorBoard;
use crate::data::dataset::epoch_order;
use crate::data::labels::LabelTable;
use crate::data::loader::{Batch, Loader, LoaderStats};
use crate::dist::{DataParallel, Job, digest, local_batch, shard, shard_order};
use crate::gpu::GpuContext;
use crate::graph::executor::{BatchTargets, TrainStep};

/// What the epochs of one run share.
pub struct Trainer<'a> {
    pub ctx: &'a GpuContext,
    pub cfg: &'a FitConfig,
    /// The job's processes: one, or the ranks of a data-parallel run (see [`crate::dist`]).
    pub job: Job<'a>,
    pub step: &'a TrainStep,
    /// Data-parallel runs: the exchange after each step's backward.
    pub parallel: Option<DataParallel<'a>>,
    pub train: Loader,
    pub val: Loader,
    /// Multi-label runs: the labels CSV the samples index.
    pub table: Option<&'a LabelTable>,
    pub classes: usize,
    pub first_epoch: usize,
    pub model_cfg: &'a ModelConfig,
    pub fingerprint: &'a RunFingerprint,
    /// Once per run: the warm-up status line, the first estimate and the slow-run advice.
    pub warmup: Option<Status>,
    pub advised: bool,
    /// A whole epoch as measured (less the warm-up), for the later epochs' estimate.
    pub epoch_secs: Option<f64>,
    /// Early stopping's and the schedules' state, carried from epoch to epoch.
    pub callbacks: CallbackState,
    /// Where an interrupted run stopped inside its epoch: the first epoch continues there.
    pub resume_at: Option<Position>,
    /// `--tensorboard` (rank 0): the event files.
    pub tensorboard: Option<TensorBoard>,
    /// The observer ([`super::api::FitObserver`]): each epoch, step and running snapshot.
    pub events: &'a dyn Fn(Event),
    /// Whether the observer wants [`super::api::Running`] snapshots (each a readback).
    pub running: bool,
}

/// What the training half of an epoch measured.
struct Trained {
    steps: usize,
    images: usize,
    /// [loss sum, correct, seen].
    metrics: [f32; 3],
    train_secs: f64,
    /// The steady time per step (the warm-up step left out when there were others).
    per_step: f64,
    warmup_secs: f64,
    stats: LoaderStats,
    /// A signal stopped the epoch after this many of its steps (see [`super::interrupt`]).
    interrupted: Option<usize>,
}

/// Where the epoch's step timing starts: steps are timed between two moments the GPU had
/// finished every step submitted (submit does not wait).
struct Clock {
    since: Instant,
    steps: usize,
}

impl Trainer<'_> {
    /// Uploads a batch (its pixels as bytes, a quarter of f32's upload) with the targets the
    /// model's loss takes; returns its size.
    ///
    /// `training`: a batch to train on, at `--image-size` (larger than the model's input with
    /// --random-crop); else a validation batch at the model's input size.
    fn upload(&self, b: &Batch, training: bool) -> usize {
        let (ctx, step) = (self.ctx, self.step);
        let write = |targets| {
            if training {
                step.write_training_batch_u8(ctx, &b.images, targets)
            } else {
                step.write_batch_u8(ctx, &b.images, targets)
            }
        };
        if let Some(t) = self.table {
            write(BatchTargets::Binary(&t.batch_targets(&b.labels)))
        } else if self.classes == 2 {
            let t: Vec<f32> = b.labels.iter().map(|&l| l as f32).collect();
            write(BatchTargets::Binary(&t))
        } else {
            write(BatchTargets::Classes(&b.labels))
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            image_size: self.cfg.image_size,
            width: self.cfg.width,
            epochs: self.cfg.epochs,
        }
    }

    fn work(&self, steps: usize, done: usize, epoch: usize) -> Work {
        Work {
            steps_per_epoch: steps,
            val_steps: self.val.len().div_ceil(self.cfg.batch_size),
            steps_done: done,
            epochs_after: self.cfg.epochs - epoch,
        }
    }

    /// Trains, validates, reports and saves epoch `epoch` (the files: rank 0, into `csv`'s
    /// folder); returns its metrics row and whether early stopping ends the run.
    pub fn epoch(
        &mut self,
        epoch: usize,
        csv: Option<&mut MetricsCsv>,
        best: &mut Option<f32>,
        log: &mut dyn FnMut(&str),
    ) -> anyhow::Result<(EpochMetrics, bool)> {
        let started = Instant::now();
        let callbacks = self.cfg.callbacks;
        let lr = callbacks.lr(self.cfg.lr, epoch, self.cfg.epochs, &self.callbacks);
        self.step.set_lr(self.ctx, lr);
        if epoch == self.first_epoch {
            let w = Status::begin(self.cfg.progress, "Warming up: first step…", log);
            self.warmup = Some(w);
        }
        let t = self.train_epoch(epoch, started, log);
        let t = self.job.local(t)?;
        if let Some(done) = t.interrupted {
            return Err(self.save_interrupted(epoch, done, t.steps, lr, *best, csv.is_some())?);
        }
        let v = self.validate();
        let ([vl, vc, vs], confusion) = self.job.local(v)?;
        let [loss_sum, correct, seen] = t.metrics;
        let row = EpochMetrics {
            epoch,
            loss: loss_sum / seen,
            accuracy: correct / seen,
            val_loss: Some(vl / vs),
            val_accuracy: Some(vc / vs),
            seconds: started.elapsed().as_secs_f64(),
            images_per_sec: t.images as f64 / t.train_secs,
            lr: Some(lr),
        };
        self.report(&row, &t, log);
        self.log_epoch(&row, confusion)?;
        let decision = callbacks.end_epoch(&row, &mut self.callbacks);
        let (ctx, step) = (self.ctx, self.step);
        let state =
            (|| Ok::<_, anyhow::Error>((step.read_params(ctx)?, step.read_optimizer(ctx)?)))();
        let (params, optimizer) = self.job.local(state)?;
        if self.job.parallel() {
            let (t, m, v) = &optimizer;
            let bytes: [&[u8]; 4] = [
                bytemuck::cast_slice(&params),
                &t.to_le_bytes(),
                bytemuck::cast_slice(m),
                bytemuck::cast_slice(v),
            ];
            self.job.check_replicas(digest(&bytes), epoch)?;
        }
        let saved = match csv {
            Some(csv) => self.save(row, csv, best, &params, optimizer, decision.improved),
            None => Ok(()),
        };
        self.job.agree(saved)?;
        self.announce(&row, &decision, log);
        (self.events)(Event::Epoch(&row));
        if !self.job.parallel()
            && let Some(signal) = super::interrupt::requested()
        {
            return Err(Interrupted {
                signal,
                message: format!(
                    "Interrupted by {} after epoch {epoch} was saved. Continue with the same \
                     command and --resume.",
                    super::interrupt::signal_name(signal)
                ),
            }
            .into());
        }
        Ok((row, decision.stop))
    }

    /// A signal stopped epoch `epoch` after `done` of its `steps` steps: waits for the steps
    /// submitted, saves `interrupted.safetensors` (the state after them and the position) and
    /// returns the error that ends the run with the signal's exit status.
    fn save_interrupted(
        &self,
        epoch: usize,
        done: usize,
        steps: usize,
        lr: f32,
        best: Option<f32>,
        lead: bool,
    ) -> anyhow::Result<anyhow::Error> {
        let (ctx, step, cfg) = (self.ctx, self.step, self.cfg);
        let signal = super::interrupt::requested().unwrap_or(2);
        let params = step.read_params(ctx)?;
        let (t, m, v) = step.read_optimizer(ctx)?;
        let metrics = step.read_metrics(ctx)?;
        let path = interrupted_path(&cfg.out);
        if lead {
            let state = TrainState {
                epoch: epoch - 1,
                adam_t: t,
                lr,
                m,
                v,
                run: Some(self.fingerprint.clone()),
                best_val_accuracy: best,
                callbacks: Some(self.callbacks),
                position: Some(Position {
                    epoch,
                    step: done,
                    metrics,
                }),
            };
            save_checkpoint(&path, &step.layout, &params, self.model_cfg, Some(&state))
                .with_context(|| {
                    format!(
                        "interrupted in epoch {epoch}: saving where it stopped failed; \
                         --resume continues from the last epoch's checkpoint instead"
                    )
                })?;
        }
        Ok(Interrupted {
            signal,
            message: format!(
                "Interrupted by {} in epoch {epoch} after step {done} of {steps}: saved {}. \
                 Continue exactly there with the same command and --resume.",
                super::interrupt::signal_name(signal),
                path.display()
            ),
        }
        .into())
    }

    /// `--tensorboard`: the epoch's scalars, in logs/train and logs/validation (Keras' tags).
    fn log_epoch(&mut self, row: &EpochMetrics, confusion: Option<Counts>) -> anyhow::Result<()> {
        let Some(tb) = self.tensorboard.as_mut() else {
            return Ok(());
        };
        if let Some(counts) = confusion {
            let m = ConfusionCounts {
                names: self.model_cfg.classes.clone(),
                counts,
            };
            let rgb = crate::plot::confusion::render_confusion(&m);
            let (w, h) = crate::plot::confusion::confusion_png_size(&m);
            let png = super::tensorboard::png_bytes(&rgb, w, h)?;
            tb.validation
                .image(row.epoch as i64, "confusion_matrix", png, w, h)
                .with_context(|| format!("writing {}", tb.validation.path().display()))?;
        }
        let at = row.epoch as i64;
        let nan = f32::NAN;
        tb.train
            .scalars(
                at,
                &[
                    ("epoch_loss", row.loss),
                    ("epoch_accuracy", row.accuracy),
                    ("epoch_learning_rate", row.lr.unwrap_or(nan)),
                    ("epoch_images_per_sec", row.images_per_sec as f32),
                ],
            )
            .with_context(|| format!("writing {}", tb.train.path().display()))?;
        tb.validation
            .scalars(
                at,
                &[
                    ("epoch_loss", row.val_loss.unwrap_or(nan)),
                    ("epoch_accuracy", row.val_accuracy.unwrap_or(nan)),
                ],
            )
            .with_context(|| format!("writing {}", tb.validation.path().display()))?;
        Ok(())
    }

    /// `--tensorboard`: the run's first training batch as a 3×3 grid titled with the labels
    /// (the images as the loader gives them, before the GPU's augmentation).
    fn log_first_batch(&mut self, b: &Batch) -> anyhow::Result<()> {
        let Some(tb) = self.tensorboard.as_mut() else {
            return Ok(());
        };
        let (size, mode) = (self.cfg.image_size, self.cfg.color_mode);
        let per = size.pixels() * mode.channels();
        let names = &self.model_cfg.classes;
        let images: Vec<(Vec<f32>, String)> = (b.images.chunks(per).zip(&b.labels))
            .take(9)
            .map(|(px, &label)| {
                let title = match self.table {
                    Some(t) => (t.targets[label as usize].iter().zip(names))
                        .filter(|(on, _)| **on > 0.5)
                        .map(|(_, n)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => names.get(label as usize).cloned().unwrap_or_default(),
                };
                let px: Vec<f32> = px.iter().map(|&v| v as f32).collect();
                // The grid draws RGB: a gray image is drawn gray.
                (mode.to_rgb(&px), title)
            })
            .collect();
        let cell = crate::plot::grid::GRID_CELL;
        let (rgb, w, h) = crate::plot::grid::render_grid(&images, size.height, size.width, cell);
        let png = super::tensorboard::png_bytes(&rgb, w, h)?;
        tb.train
            .image(0, "first_batch", png, w, h)
            .with_context(|| format!("writing {}", tb.train.path().display()))
    }

    /// What the callbacks decided, in the log.
    fn announce(&self, row: &EpochMetrics, d: &EpochDecision, log: &mut dyn FnMut(&str)) {
        let (c, s) = (&self.cfg.callbacks, &self.callbacks);
        if let Some(lr) = d.reduced_to {
            log(&format!(
                "ReduceLROnPlateau: {} has not improved for {} epoch(s); learning rate {lr:e} \
                 from epoch {}.",
                c.monitor.name(),
                match c.schedule {
                    LrSchedule::Plateau { patience, .. } => patience,
                    _ => 0,
                },
                row.epoch + 1
            ));
        }
        if d.stop && row.epoch < self.cfg.epochs {
            let best = s.best.map_or("none".into(), |b| format!("{b:.4}"));
            let which = if c.restore_best {
                format!(
                    "best.safetensors holds epoch {} (--restore-best)",
                    s.best_epoch
                )
            } else {
                "best.safetensors holds the epoch of the best val_accuracy".into()
            };
            log(&format!(
                "Early stopping: {} has not improved for {} epoch(s) (best {best} at epoch {}); \
                 the run ends after epoch {} of {}. {which}.",
                c.monitor.name(),
                s.early_wait,
                s.best_epoch,
                row.epoch,
                self.cfg.epochs
            ));
        }
    }

    /// This epoch's metrics summed over the ranks ([loss sum, correct, seen]).
    fn all_ranks(&self, m: [f32; 3]) -> [f32; 3] {
        let mut x = m.map(f64::from);
        self.job.comm.sum_f64(&mut x);
        x.map(|v| v as f32)
    }

    /// The training steps of one epoch, in the epoch's shuffled order.
    fn train_epoch(
        &mut self,
        epoch: usize,
        started: Instant,
        log: &mut dyn FnMut(&str),
    ) -> anyhow::Result<Trained> {
        let (ctx, step, cfg) = (self.ctx, self.step, self.cfg);
        let order = epoch_order(self.train.len(), epoch, cfg.seed);
        let (rank, size) = (self.job.comm.rank(), self.job.comm.size());
        let (mine, sizes) = shard_order(&order, cfg.batch_size, size, rank);
        // An epoch an interrupted run stopped in continues after its steps done, with their
        // metrics sums (its order and step seeds are those of the uninterrupted run).
        let from = self.resume_at.take().filter(|p| p.epoch == epoch);
        let skip = from.map_or(0, |p| p.step.min(sizes.len()));
        let offset: usize = sizes[..skip].iter().sum();
        let mut batches = self
            .train
            .epoch_in_batches(&mine[offset..], &sizes[skip..])?;
        let steps = sizes.len();
        (self.events)(Event::EpochBegin {
            epoch,
            epochs: cfg.epochs,
            steps,
            done: skip,
        });
        match from {
            Some(p) => step.write_metrics(ctx, p.metrics),
            None => step.reset_metrics(ctx),
        }
        let mut interrupted = None;
        // Signals are caught in a single process only: under mpirun, mpirun ends the ranks.
        let catch = !self.job.parallel();
        let (mut images, mut submitted) = (0usize, 0usize);
        let mut last_report = Instant::now();
        let mut clock = Clock {
            since: started,
            steps: 0,
        };
        let mut warmup_secs = 0.0;
        for (j, batch) in batches.by_ref().enumerate() {
            let i = skip + j;
            if catch && super::interrupt::requested().is_some() {
                interrupted = Some(i);
                break;
            }
            let n = if batch.is_empty() {
                0
            } else {
                self.upload(&batch, true)
            };
            if epoch == 1 && i == 0 && n > 0 {
                self.log_first_batch(&batch)?;
            }
            let seed = step_seed(cfg.seed, epoch, i);
            match self.parallel.as_mut() {
                None if n == 0 => continue,
                None => {
                    step.set_dropout_seed(ctx, seed);
                    step.submit(ctx, n);
                    images += n;
                }
                Some(parallel) => {
                    if n > 0 {
                        // Rank r's micro-batches continue the numbering of the ranks before
                        // it, as one process running every shard as micro-batches would.
                        let global = cfg.batch_size.min(order.len() - i * cfg.batch_size);
                        let per = local_batch(cfg.batch_size, size);
                        let before: usize = (0..rank)
                            .map(|q| shard(global, per, q).len().div_ceil(step.micro))
                            .sum();
                        step.set_dropout_seed(
                            ctx,
                            seed.wrapping_add((before as u32).wrapping_mul(0x9E37_79B9)),
                        );
                        step.submit_gradients(ctx, n);
                    }
                    let done = parallel.step(ctx, step, n)?;
                    if done.samples == 0 {
                        continue;
                    }
                    images += done.samples;
                }
            }
            submitted += 1;
            if let (Some(tb), Some(every)) = (self.tensorboard.as_mut(), cfg.tensorboard)
                && every > 0
                && (i + 1).is_multiple_of(every)
            {
                // Keras' batch logs: the epoch's running means so far (a readback).
                let [l, c, s] = step.read_metrics(ctx)?;
                let at = ((epoch - 1) * steps + i + 1) as i64;
                tb.train
                    .scalars(at, &[("batch_loss", l / s), ("batch_accuracy", c / s)])
                    .with_context(|| format!("writing {}", tb.train.path().display()))?;
            }
            if let Some(w) = self.warmup.take() {
                (warmup_secs, clock) = self.end_warmup(w, submitted, log)?;
            } else if !self.advised
                && submitted == clock.steps + ESTIMATE_STEPS
                && epoch == self.first_epoch
            {
                self.first_estimate(&clock, steps, submitted, epoch, log)?;
            }
            (self.events)(Event::Step {
                epoch,
                step: i + 1,
                steps,
            });
            // A readback waits for the GPU: do it at most twice a second, and only for an
            // observer that shows it.
            if self.running && last_report.elapsed() > Duration::from_millis(500) {
                let sums = step.read_metrics(ctx)?;
                let at = (epoch, i + 1, steps);
                let now = self.running(&clock, sums, at, (submitted, images), started);
                (self.events)(Event::Running(&now));
                last_report = Instant::now();
            }
        }
        let stats = batches.stats();
        let metrics = self.all_ranks(step.read_metrics(ctx)?);
        if self.running && interrupted.is_none() {
            // The epoch's final sums (read anyway): an observer's last snapshot is exact.
            let at = (epoch, steps, steps);
            let end = self.running(&clock, metrics, at, (submitted, images), started);
            (self.events)(Event::Running(&end));
        }
        let train_secs = started.elapsed().as_secs_f64();
        (self.events)(Event::EpochTrained { epoch });
        let timed = submitted - clock.steps;
        let per_step = if timed > 0 {
            clock.since.elapsed().as_secs_f64() / timed as f64
        } else {
            train_secs / submitted.max(1) as f64
        };
        Ok(Trained {
            steps,
            images,
            metrics,
            train_secs,
            per_step,
            warmup_secs,
            stats,
            interrupted,
        })
    }

    /// Once per run: waits for the first step, so that its end is known, closes the warm-up
    /// status line and shows the bar. Returns the warm-up's seconds and the clock the later
    /// steps are timed from.
    fn end_warmup(
        &self,
        w: Status,
        submitted: usize,
        log: &mut dyn FnMut(&str),
    ) -> anyhow::Result<(f64, Clock)> {
        self.ctx.wait()?;
        let secs = w.elapsed();
        let line = format!(
            "First step done in {} (includes one-time warm-up).",
            format_duration(secs)
        );
        w.finish(&line, log);
        let clock = Clock {
            since: Instant::now(),
            steps: submitted,
        };
        Ok((secs, clock))
    }

    /// Once per run: waits for a few steps after the first, for the first estimate, and
    /// advises when the run will be long.
    fn first_estimate(
        &mut self,
        clock: &Clock,
        steps: usize,
        submitted: usize,
        epoch: usize,
        log: &mut dyn FnMut(&str),
    ) -> anyhow::Result<()> {
        self.ctx.wait()?;
        self.advised = true;
        let per_step = clock.since.elapsed().as_secs_f64() / ESTIMATE_STEPS as f64;
        let eta = estimate(&self.work(steps, submitted, epoch), per_step, None);
        let (ctx, cfg) = (self.ctx, self.cfg);
        let settings = self.settings();
        log(&format!(
            "Timing: {} after the first step: epoch {epoch} ends in about {}, the whole run \
             ({} epoch(s)) in about {}.",
            format_step(per_step),
            format_duration(eta.epoch),
            cfg.epochs + 1 - self.first_epoch,
            format_duration(eta.run)
        ));
        let name = &ctx.info.name;
        if let Some(a) = slow_run_advice(eta.run, ctx.is_software(), name, &settings) {
            log(&a);
        }
        Ok(())
    }

    /// A snapshot for the observer from the epoch's sums [loss, correct, seen] so far, at
    /// (epoch, step, steps), after (steps submitted, images) in this process's epoch.
    fn running(
        &self,
        clock: &Clock,
        [l, c, s]: [f32; 3],
        (epoch, step, steps): (usize, usize, usize),
        (submitted, images): (usize, usize),
        started: Instant,
    ) -> Running {
        let timed = self.timed(clock, steps, submitted, epoch);
        Running {
            epoch,
            step,
            steps,
            loss: l / s,
            accuracy: c / s,
            images_per_sec: images as f64 / started.elapsed().as_secs_f64(),
            step_secs: timed.map(|t| t.0),
            epoch_eta_secs: timed.map(|t| t.1.epoch),
            run_eta_secs: timed.map(|t| t.1.run),
        }
    }

    /// Seconds per step and the time left, once a step after the warm-up has been timed.
    fn timed(
        &self,
        clock: &Clock,
        steps: usize,
        submitted: usize,
        epoch: usize,
    ) -> Option<(f64, Eta)> {
        let timed = submitted - clock.steps;
        if timed == 0 {
            return None;
        }
        let per_step = clock.since.elapsed().as_secs_f64() / timed as f64;
        let work = self.work(steps, submitted, epoch);
        Some((per_step, estimate(&work, per_step, self.epoch_secs)))
    }

    /// Validation: moving statistics, no dropout, in order. Returns [loss sum, correct, seen].
    /// Each rank evaluates its shard of every batch; the sums are the job's. With
    /// `--tensorboard` on a single-label model, also the confusion matrix (counts[true][pred],
    /// summed over the ranks), from the logits read back batch by batch.
    fn validate(&self) -> anyhow::Result<([f32; 3], Option<Counts>)> {
        self.step.reset_metrics(self.ctx);
        let order: Vec<usize> = (0..self.val.len()).collect();
        let (rank, size) = (self.job.comm.rank(), self.job.comm.size());
        let (mine, sizes) = shard_order(&order, self.cfg.batch_size, size, rank);
        let k = self.classes;
        let mut confusion = (self.cfg.tensorboard.is_some() && self.table.is_none())
            .then(|| vec![vec![0usize; k]; k]);
        for batch in self.val.epoch_in_batches(&mine, &sizes)? {
            if batch.is_empty() {
                continue;
            }
            let n = self.upload(&batch, false);
            match confusion.as_mut() {
                None => self.step.submit_eval(self.ctx, n),
                Some(counts) => {
                    let logits = self.step.submit_eval_logits(self.ctx, n)?;
                    let per = logits.len() / n;
                    for (row, &label) in logits.chunks(per).zip(&batch.labels) {
                        // One sigmoid unit: class 1 above logit 0; softmax: the largest.
                        let pred = if per == 1 {
                            usize::from(row[0] > 0.0)
                        } else {
                            (0..per).fold(0, |b, c| if row[c] > row[b] { c } else { b })
                        };
                        counts[label as usize][pred] += 1;
                    }
                }
            }
        }
        let metrics = self.all_ranks(self.step.read_metrics(self.ctx)?);
        if let Some(counts) = confusion.as_mut()
            && self.job.parallel()
        {
            let mut flat: Vec<f64> = counts.iter().flatten().map(|&c| c as f64).collect();
            self.job.comm.sum_f64(&mut flat);
            for (i, c) in counts.iter_mut().flatten().enumerate() {
                *c = flat[i] as usize;
            }
        }
        Ok((metrics, confusion))
    }

    /// The epoch's line, the run's ETA, the slow-run advice if not given yet, and the files the
    /// loader skipped.
    fn report(&mut self, row: &EpochMetrics, t: &Trained, log: &mut dyn FnMut(&str)) {
        let (cfg, epoch) = (self.cfg, row.epoch);
        // Later epochs: as this one, less the warm-up's excess over a steady step.
        let steady = row.seconds - (t.warmup_secs - t.per_step).max(0.0);
        self.epoch_secs = Some(steady);
        let done = Work {
            val_steps: 0,
            ..self.work(t.steps, t.steps, epoch)
        };
        let left = estimate(&done, t.per_step, self.epoch_secs).run;
        let eta = if epoch < cfg.epochs {
            format!(" - run ETA {}", format_duration(left))
        } else {
            String::new()
        };
        log(&format!(
            "Epoch {epoch}/{}: {} steps, {:.1}s ({}, {:.1} img/s, waited {:.1}s for data) - loss: {:.4} - accuracy: {:.4} - val_loss: {:.4} - val_accuracy: {:.4}{eta}",
            cfg.epochs,
            t.steps,
            row.seconds,
            format_step(t.per_step),
            row.images_per_sec,
            t.stats.wait.as_secs_f64(),
            row.loss,
            row.accuracy,
            row.val_loss.unwrap_or(f32::NAN),
            row.val_accuracy.unwrap_or(f32::NAN)
        ));
        if !self.advised {
            // An epoch too short for the in-epoch estimate: decide on the measured one.
            self.advised = true;
            let (ctx, settings) = (self.ctx, self.settings());
            if let Some(a) = slow_run_advice(left, ctx.is_software(), &ctx.info.name, &settings) {
                log(&a);
            }
        }
        for s in &t.stats.skipped {
            log(&format!("  skipped {}: {}", s.path.display(), s.reason));
        }
    }

    /// The epoch's files, each written atomically, the checkpoint last (see the module doc of
    /// [`super::fit`]): nothing of a diverged epoch is written.
    fn save(
        &self,
        row: EpochMetrics,
        csv: &mut MetricsCsv,
        best: &mut Option<f32>,
        params: &[f32],
        (t, m, v): (u32, Vec<f32>, Vec<f32>),
        monitor_improved: bool,
    ) -> anyhow::Result<()> {
        let (cfg, step, epoch) = (self.cfg, self.step, row.epoch);
        check_finite(cfg, &row, params)?;
        let val_acc = row.val_accuracy.unwrap_or(f32::NAN);
        let acc_improved = best.is_none_or(|b| val_acc > b);
        if acc_improved {
            *best = Some(val_acc);
        }
        // best.safetensors: the best --monitor epoch with --restore-best, else val_accuracy's.
        let improved = if cfg.callbacks.restore_best {
            monitor_improved
        } else {
            acc_improved
        };
        let state = TrainState {
            epoch,
            adam_t: t,
            lr: row.lr.unwrap_or(cfg.lr),
            m,
            v,
            run: Some(self.fingerprint.clone()),
            best_val_accuracy: *best,
            callbacks: Some(self.callbacks),
            position: None,
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
        let layout = &step.layout;
        if improved {
            let best_path = cfg.out.join("best.safetensors");
            save_checkpoint(best_path, layout, params, self.model_cfg, None)
                .with_context(incomplete)?;
        }
        let path = checkpoint_path(&cfg.out, epoch);
        save_checkpoint(path, layout, params, self.model_cfg, Some(&state))
            .with_context(incomplete)?;
        // A run interrupted inside this epoch has finished it: its mid-epoch state is stale.
        match std::fs::remove_file(interrupted_path(&cfg.out)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e)
                    .with_context(|| format!("deleting {}", interrupted_path(&cfg.out).display()));
            }
            _ => {}
        }
        if let Some(keep) = cfg.keep_checkpoints {
            // Every older one, not just the one falling out: --keep-checkpoints may have been
            // lowered on --resume.
            for old in 1..=epoch.saturating_sub(keep) {
                let p = checkpoint_path(&cfg.out, old);
                match std::fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).with_context(|| {
                            format!("deleting {} (--keep-checkpoints {keep})", p.display())
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// counts[true class][predicted class].
type Counts = Vec<Vec<usize>>;

/// A validation confusion matrix, as the confusion plot draws it.
struct ConfusionCounts {
    names: Vec<String>,
    counts: Counts,
}

impl crate::plot::confusion::Confusion for ConfusionCounts {
    fn class_names(&self) -> &[String] {
        &self.names
    }
    fn counts(&self) -> &[Vec<usize>] {
        &self.counts
    }
}

/// Stops a run whose loss or weights are no longer finite numbers, before anything of the
/// epoch is written.
fn check_finite(cfg: &FitConfig, row: &EpochMetrics, params: &[f32]) -> anyhow::Result<()> {
    let epoch = row.epoch;
    let val_loss = row.val_loss.unwrap_or(f32::NAN);
    let diverged = [("training loss", row.loss), ("validation loss", val_loss)]
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
    Ok(())
}
