//! What Keras users add to `model.fit` through `keras.callbacks`: early stopping
//! (`EarlyStopping`, with `restore_best_weights` as `--restore-best`), learning-rate schedules
//! (`LearningRateScheduler` for cosine and step decay, `ReduceLROnPlateau`), decided once per
//! epoch from its validation metrics. Their state ([`CallbackState`]) is saved with every
//! checkpoint, so `--resume` continues the patience counters and the learning rate where the
//! interrupted run had them.

use serde::{Deserialize, Serialize};

use super::metrics::EpochMetrics;

/// The validation quantity early stopping, the plateau schedule and `--restore-best` follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Monitor {
    /// Lower is better.
    #[value(name = "val_loss")]
    ValLoss,
    /// Higher is better.
    #[value(name = "val_accuracy")]
    ValAccuracy,
}

impl Monitor {
    /// The monitored value of an epoch (`None` when it was not validated or is not a number).
    pub fn value(self, row: &EpochMetrics) -> Option<f32> {
        match self {
            Monitor::ValLoss => row.val_loss,
            Monitor::ValAccuracy => row.val_accuracy,
        }
        .filter(|v| v.is_finite())
    }

    /// Whether `new` improves on `best` (strictly: Keras' min_delta 0).
    pub fn improves(self, new: f32, best: Option<f32>) -> bool {
        match (self, best) {
            (_, None) => true,
            (Monitor::ValLoss, Some(b)) => new < b,
            (Monitor::ValAccuracy, Some(b)) => new > b,
        }
    }

    /// The flag value, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValLoss => "val_loss",
            Monitor::ValAccuracy => "val_accuracy",
        }
    }
}

/// The learning rate epoch by epoch (`--lr-schedule`); `--lr` is the base rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    /// `--lr` throughout (the Keras example's).
    Constant,
    /// Linear warm-up over `warmup` epochs (epoch e ≤ warmup: lr·e/warmup), then cosine decay
    /// over the remaining epochs of the run: lr·½(1 + cos(π·k/n)) for the k-th of n.
    Cosine { warmup: usize },
    /// lr·factor^⌊(e − 1)/every⌋.
    Step { every: usize, factor: f32 },
    /// ReduceLROnPlateau: lr·factor after `patience` epochs without improvement of the
    /// monitored value, never below `min_lr`.
    Plateau {
        factor: f32,
        patience: usize,
        min_lr: f32,
    },
}

impl LrSchedule {
    /// A short description, for the log.
    pub fn describe(&self) -> String {
        match *self {
            LrSchedule::Constant => "constant".into(),
            LrSchedule::Cosine { warmup } => format!("cosine decay, {warmup} warm-up epoch(s)"),
            LrSchedule::Step { every, factor } => format!("×{factor} every {every} epoch(s)"),
            LrSchedule::Plateau {
                factor,
                patience,
                min_lr,
            } => format!(
                "×{factor} after {patience} epoch(s) without improvement, down to {min_lr:e}"
            ),
        }
    }
}

/// The callbacks' settings (from the flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallbackConfig {
    pub monitor: Monitor,
    /// Stop after this many epochs without improvement of `monitor`.
    pub patience: Option<usize>,
    /// best.safetensors follows `monitor` (else the best val_accuracy, as without callbacks).
    pub restore_best: bool,
    pub schedule: LrSchedule,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            monitor: Monitor::ValLoss,
            patience: None,
            restore_best: false,
            schedule: LrSchedule::Constant,
        }
    }
}

/// What the callbacks carry from epoch to epoch (and through a checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CallbackState {
    /// The best monitored value so far and its epoch.
    pub best: Option<f32>,
    pub best_epoch: usize,
    /// Epochs since the last improvement, for early stopping and for the plateau schedule
    /// (which restarts its count after each reduction).
    pub early_wait: usize,
    pub plateau_wait: usize,
    /// The plateau schedule's current rate (the other schedules compute theirs).
    pub plateau_lr: f32,
}

impl CallbackState {
    /// The state before the first epoch, with base rate `lr`.
    pub fn new(lr: f32) -> Self {
        Self {
            best: None,
            best_epoch: 0,
            early_wait: 0,
            plateau_wait: 0,
            plateau_lr: lr,
        }
    }
}

/// What the callbacks decided at the end of an epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochDecision {
    /// The monitored value improved (best.safetensors follows it with `--restore-best`).
    pub improved: bool,
    /// Early stopping ends the run after this epoch.
    pub stop: bool,
    /// The plateau schedule lowered the rate to this for the next epoch.
    pub reduced_to: Option<f32>,
}

impl CallbackConfig {
    /// The learning rate of epoch `epoch` (from 1) of `epochs`, with base rate `lr`.
    pub fn lr(&self, lr: f32, epoch: usize, epochs: usize, state: &CallbackState) -> f32 {
        match self.schedule {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine { warmup } => {
                if epoch <= warmup {
                    lr * epoch as f32 / warmup as f32
                } else {
                    let n = epochs.saturating_sub(warmup).max(1) as f64;
                    let k = (epoch - warmup - 1) as f64;
                    (lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * k / n).cos())) as f32
                }
            }
            LrSchedule::Step { every, factor } => {
                lr * factor.powi(((epoch - 1) / every.max(1)) as i32)
            }
            LrSchedule::Plateau { .. } => state.plateau_lr,
        }
    }

    /// Updates `state` with epoch `row` and says what follows.
    pub fn end_epoch(&self, row: &EpochMetrics, state: &mut CallbackState) -> EpochDecision {
        let value = self.monitor.value(row);
        let improved = value.is_some_and(|v| self.monitor.improves(v, state.best));
        if improved {
            state.best = value;
            state.best_epoch = row.epoch;
            state.early_wait = 0;
            state.plateau_wait = 0;
        } else {
            state.early_wait += 1;
            state.plateau_wait += 1;
        }
        let mut reduced_to = None;
        if let LrSchedule::Plateau {
            factor,
            patience,
            min_lr,
        } = self.schedule
            && state.plateau_wait >= patience
        {
            let lower = (state.plateau_lr * factor).max(min_lr);
            if lower < state.plateau_lr {
                state.plateau_lr = lower;
                reduced_to = Some(lower);
            }
            state.plateau_wait = 0;
        }
        EpochDecision {
            improved,
            // As Keras: an improving epoch never stops; patience 0 stops at the first that
            // does not improve.
            stop: !improved && self.patience.is_some_and(|p| state.early_wait >= p),
            reduced_to,
        }
    }

    /// Whether a resumed run had already been stopped early (nothing left to train).
    pub fn stopped(&self, state: &CallbackState) -> bool {
        self.patience
            .is_some_and(|p| state.early_wait > 0 && state.early_wait >= p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize, val_loss: f32) -> EpochMetrics {
        EpochMetrics {
            epoch,
            loss: 1.0,
            accuracy: 0.5,
            val_loss: Some(val_loss),
            val_accuracy: Some(1.0 - val_loss),
            seconds: 1.0,
            images_per_sec: 1.0,
            lr: Some(1e-3),
        }
    }

    #[test]
    fn early_stopping_counts_epochs_without_strict_improvement() {
        let cfg = CallbackConfig {
            patience: Some(2),
            ..Default::default()
        };
        let mut s = CallbackState::new(1e-3);
        let losses = [0.9, 0.8, 0.8, 0.85, 0.7];
        let stops: Vec<bool> = losses
            .iter()
            .enumerate()
            .map(|(i, &l)| cfg.end_epoch(&row(i + 1, l), &mut s).stop)
            .collect();
        // 0.8 again is no improvement (min_delta 0); two such epochs stop the run at epoch 4.
        assert_eq!(stops, [false, false, false, true, false]);
        assert_eq!((s.best, s.best_epoch), (Some(0.7), 5));
    }

    #[test]
    fn val_accuracy_is_better_when_higher_and_a_nan_never_improves() {
        let cfg = CallbackConfig {
            monitor: Monitor::ValAccuracy,
            patience: Some(1),
            ..Default::default()
        };
        let mut s = CallbackState::new(1e-3);
        assert!(cfg.end_epoch(&row(1, 0.5), &mut s).improved); // val_accuracy 0.5
        let mut nan = row(2, 0.1);
        nan.val_accuracy = Some(f32::NAN);
        let d = cfg.end_epoch(&nan, &mut s);
        assert!(!d.improved && d.stop);
    }

    #[test]
    fn schedules_give_keras_rates() {
        let s = CallbackState::new(1e-3);
        let at = |schedule, e| {
            CallbackConfig {
                schedule,
                ..Default::default()
            }
            .lr(1e-3, e, 10, &s)
        };
        assert_eq!(at(LrSchedule::Constant, 7), 1e-3);
        let cos = LrSchedule::Cosine { warmup: 2 };
        assert!((at(cos, 1) - 0.5e-3).abs() < 1e-9);
        assert!((at(cos, 2) - 1e-3).abs() < 1e-9);
        assert!((at(cos, 3) - 1e-3).abs() < 1e-9); // first decay epoch: cos 0
        assert!((at(cos, 7) - 0.5e-3).abs() < 1e-9); // halfway through the 8 decay epochs
        assert!(at(cos, 10) > 0.0 && at(cos, 10) < 0.05e-3);
        let step = LrSchedule::Step {
            every: 3,
            factor: 0.5,
        };
        let rates: Vec<f32> = (1..=7).map(|e| at(step, e)).collect();
        assert_eq!(rates, [1e-3, 1e-3, 1e-3, 0.5e-3, 0.5e-3, 0.5e-3, 0.25e-3]);
    }

    #[test]
    fn plateau_lowers_the_rate_after_patience_epochs_down_to_min_lr() {
        let cfg = CallbackConfig {
            schedule: LrSchedule::Plateau {
                factor: 0.1,
                patience: 2,
                min_lr: 2e-5,
            },
            ..Default::default()
        };
        let mut s = CallbackState::new(1e-3);
        let mut rates = Vec::new();
        for (i, l) in [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6].iter().enumerate() {
            let d = cfg.end_epoch(&row(i + 1, *l), &mut s);
            rates.push(d.reduced_to);
        }
        let expected = [None, None, Some(1e-4), None, Some(2e-5), None, None];
        for (got, want) in rates.iter().zip(expected) {
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9 * w.max(1.0), "{rates:?}"),
                (g, w) => assert_eq!(g.is_some(), w.is_some(), "{rates:?}"),
            }
        }
        assert_eq!(cfg.lr(1e-3, 8, 10, &s), 2e-5);
    }
}
