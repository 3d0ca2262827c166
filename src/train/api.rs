//! The trainer as a library: [`train`] runs what `gpucnn train` runs, from a [`FitConfig`]
//! (start from [`FitConfig::new`], which holds the CLI's defaults), reports what happens
//! through a [`FitObserver`] (the messages the CLI prints, every step, every epoch's
//! metrics) and fails with a typed [`Error`] (kind [`ErrorKind`]: bad input, interrupted,
//! failure); [`crate::predict::classify`] runs a trained model on images with the same typed
//! errors.
//!
//! ```no_run
//! use gpucnn::train::api::{train, FitConfig, FitObserver};
//! use gpucnn::train::metrics::EpochMetrics;
//!
//! struct Print;
//! impl FitObserver for Print {
//!     fn epoch(&mut self, row: &EpochMetrics) {
//!         println!("epoch {}: val_accuracy {:?}", row.epoch, row.val_accuracy);
//!     }
//! }
//!
//! let ctx = gpucnn::gpu::GpuContext::new(&Default::default()).unwrap();
//! let cfg = FitConfig {
//!     epochs: 3,
//!     image_size: gpucnn::data::ImageSize::square(64),
//!     ..FitConfig::new("Animals")
//! };
//! let summary = train(&ctx, &cfg, &mut Print).unwrap();
//! println!("best: {:?}", summary.best_val_accuracy);
//! ```

use std::path::PathBuf;

use super::callbacks::CallbackConfig;
use super::interrupt::Interrupted;
use super::metrics::EpochMetrics;
use super::regularization::Regularization;
use crate::cpu::augment::AugmentConfig;
use crate::data::geometry::{ColorMode, ImageSize};
use crate::dist::Job;
use crate::error::BadInput;
use crate::gpu::GpuContext;

pub use super::class_weight::ClassWeight;
pub use super::fit::{FitConfig, FitSummary, default_out};

impl FitConfig {
    /// The settings of `gpucnn train --data DATA` with no other flag: the Keras example's
    /// recipe (25 epochs, batch 128, 180×180, Adam 1e-3, 80/20 split with seed 1337, width 1.0,
    /// flip + rotation 0.1, dropout 0.5, no weight decay), the output in `runs/<name of
    /// DATA>`, no progress bar. Change
    /// fields with struct update syntax: `FitConfig { epochs: 5, ..FitConfig::new(dir) }`.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        let data = data.into();
        Self {
            out: default_out(&data),
            data,
            epochs: 25,
            batch_size: 128,
            image_size: ImageSize::square(180),
            lr: 1e-3,
            validation_split: 0.2,
            seed: 1337,
            width: 1.0,
            augment: Some(AugmentConfig::KERAS),
            crop_to_aspect_ratio: false,
            callbacks: CallbackConfig::default(),
            tensorboard: None,
            keep_checkpoints: None,
            init_from: None,
            micro_batch: None,
            labels: None,
            val_data: None,
            class_names: None,
            resume: false,
            overwrite: false,
            progress: false,
            regularization: Regularization::default(),
            class_weight: ClassWeight::None,
            color_mode: ColorMode::Rgb,
        }
    }
}

/// What a training reports as it goes; every method has an empty default, so implement only
/// what you use. The CLI's own display is one such observer ([`super::terminal::Terminal`]:
/// its lines and the per-epoch progress bar).
pub trait FitObserver {
    /// A line the CLI prints: what is being done (compiling, warming up), timing and ETA, each
    /// epoch's summary, warnings, the files skipped.
    fn message(&mut self, _line: &str) {}
    /// Epoch `epoch` of `epochs` starts its `steps` training steps; `done` of them already ran
    /// (an interrupted epoch resumed; 0 otherwise).
    fn epoch_begin(&mut self, _epoch: usize, _epochs: usize, _steps: usize, _done: usize) {}
    /// Step `step` (from 1) of the `steps` of epoch `epoch` was submitted to the GPU (not
    /// waited for). The first step of a run is reported once it has finished, after its
    /// warm-up line.
    fn step(&mut self, _epoch: usize, _step: usize, _steps: usize) {}
    /// Whether to send [`Self::running`] snapshots. Each costs a wait for the GPU (a readback
    /// of the epoch's sums), so the trainer sends them at most twice a second, and only to an
    /// observer that asks.
    fn wants_running(&self) -> bool {
        false
    }
    /// The epoch so far: running loss and accuracy, throughput and the time estimates.
    fn running(&mut self, _now: &Running) {}
    /// The training steps of epoch `epoch` are over; validation and the epoch's files follow.
    fn epoch_trained(&mut self, _epoch: usize) {}
    /// Epoch `row.epoch` ended, and its files (metrics, checkpoint) are written.
    fn epoch(&mut self, _row: &EpochMetrics) {}
}

/// An epoch in progress ([`FitObserver::running`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub epoch: usize,
    /// Steps submitted so far in this epoch (counting those of a resumed epoch), of `steps`.
    pub step: usize,
    pub steps: usize,
    /// The epoch's mean training loss and accuracy so far.
    pub loss: f32,
    pub accuracy: f32,
    /// Training images per second since the epoch began.
    pub images_per_sec: f64,
    /// Once steps after the warm-up were timed: seconds per step, and the seconds left in the
    /// epoch and in the run.
    pub step_secs: Option<f64>,
    pub epoch_eta_secs: Option<f64>,
    pub run_eta_secs: Option<f64>,
}

/// A structured event, as the trainer emits it (each becomes one [`FitObserver`] call:
/// [`Event::send`]).
pub enum Event<'a> {
    EpochBegin {
        epoch: usize,
        epochs: usize,
        steps: usize,
        done: usize,
    },
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
    },
    Running(&'a Running),
    EpochTrained {
        epoch: usize,
    },
    Epoch(&'a EpochMetrics),
}

impl Event<'_> {
    /// Calls the observer's method for this event.
    pub fn send(self, to: &mut dyn FitObserver) {
        match self {
            Event::EpochBegin {
                epoch,
                epochs,
                steps,
                done,
            } => to.epoch_begin(epoch, epochs, steps, done),
            Event::Step { epoch, step, steps } => to.step(epoch, step, steps),
            Event::Running(r) => to.running(r),
            Event::EpochTrained { epoch } => to.epoch_trained(epoch),
            Event::Epoch(row) => to.epoch(row),
        }
    }
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A setting, path or file given is at fault, or does not fit this GPU (the CLI's exit 2);
    /// the message says what to change.
    BadInput,
    /// Stopped by this signal (SIGINT 2, SIGTERM 15) after saving where it was; `resume`
    /// continues there (the CLI's exit 128 + signal).
    Interrupted { signal: i32 },
    /// A failure at run time: GPU, disk, I/O, a training that diverged (the CLI's exit 1).
    Failure,
}

/// The failure of a [`train`] or of [`crate::predict::classify`]: its kind, and the message with its causes (`{:#}`
/// or `source()`).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    error: anyhow::Error,
}

/// A failed training ([`train`]).
pub type TrainError = Error;
/// What kind of failure a [`TrainError`] is.
pub type TrainErrorKind = ErrorKind;

impl Error {
    /// Classifies `error` (see [`ErrorKind`]).
    pub fn new(error: anyhow::Error) -> Self {
        let kind = if let Some(i) = error.downcast_ref::<Interrupted>() {
            ErrorKind::Interrupted { signal: i.signal }
        } else if is_bad_input(&error) {
            ErrorKind::BadInput
        } else {
            ErrorKind::Failure
        };
        Self { kind, error }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The exit status the CLI gives this failure.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::BadInput => crate::error::EXIT_BAD_INPUT,
            ErrorKind::Interrupted { signal } => (128 + signal).clamp(0, 255) as u8,
            ErrorKind::Failure => crate::error::EXIT_FAILURE,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.chain().nth(1)
    }
}

/// Trains as `gpucnn train` does (every file in `cfg.out`, `--resume` semantics, the
/// callbacks), reporting to `observer`.
pub fn train(
    ctx: &GpuContext,
    cfg: &FitConfig,
    observer: &mut dyn FitObserver,
) -> Result<FitSummary, TrainError> {
    super::fit::fit_on(ctx, cfg, Job::solo(), observer).map_err(Error::new)
}

/// Whether any error in the chain is bad input: [`BadInput`], or a library error that is about
/// the user's data, flags or files rather than the machine.
pub fn is_bad_input(error: &anyhow::Error) -> bool {
    use crate::data::dataset::DatasetError;
    use crate::data::labels::LabelsError;
    use crate::graph::GraphError;
    use crate::graph::executor::ExecError;
    use crate::train::checkpoint::CheckpointError;
    use crate::train::metrics::MetricsError;
    error.chain().any(|e| {
        if e.is::<BadInput>() || e.is::<GraphError>() || e.is::<LabelsError>() {
            return true;
        }
        // GPUCNN_VARIANT names a variant that does not exist or cannot run here.
        if e.is::<crate::kernels::variants::VariantError>() {
            return true;
        }
        if let Some(d) = e.downcast_ref::<DatasetError>() {
            return !matches!(d, DatasetError::Unreadable { source, .. }
                if source.kind() != std::io::ErrorKind::NotFound);
        }
        if let Some(x) = e.downcast_ref::<ExecError>() {
            return !matches!(x, ExecError::NoClassifier | ExecError::Gpu(_));
        }
        if let Some(c) = e.downcast_ref::<CheckpointError>() {
            return match c {
                CheckpointError::Write(_) | CheckpointError::Serialize { .. } => false,
                CheckpointError::Read { source, .. } => {
                    source.kind() == std::io::ErrorKind::NotFound
                }
                _ => true,
            };
        }
        if let Some(v) = e.downcast_ref::<crate::plot::PlotError>() {
            return matches!(v, crate::plot::PlotError::UnsupportedExtension { .. });
        }
        if let Some(m) = e.downcast_ref::<MetricsError>() {
            return !matches!(
                m,
                MetricsError::Write(_) | MetricsError::Read { .. } | MetricsError::Append { .. }
            );
        }
        false
    })
}
