//! What keeps a model from overfitting, as `gpucnn train` sets it: AdamW's decoupled weight
//! decay (`--weight-decay`, Keras' `keras.optimizers.AdamW(weight_decay=...)`, applied on the
//! GPU in the Adam kernel: θ −= θ·wd·lr before each update, every trainable value) and the
//! dropout rate before the classifier (`--dropout`, the example's `layers.Dropout(0.5)`), the
//! L2 kernel regularizer (`--l2`, Keras' `kernel_regularizer=regularizers.l2(L)` on every
//! kernel: the penalty joins the reported loss, its gradient the kernels' before Adam) and the
//! cross-entropy's label smoothing (`--label-smoothing`, Keras' `label_smoothing`).
//!
//! What Keras does, and so gpucnn: both the L2 penalty and the smoothed targets are part of
//! the loss `fit` reports for training *and* for validation (Keras 3's `Trainer.compute_loss`
//! adds the model's regularization losses whatever `training` is, and `test_step` computes
//! `val_loss` with it and the compiled loss object, smoothing included). Accuracy uses the
//! given labels. `gpucnn evaluate` reports the plain, unsmoothed cross-entropy of a model.

use serde::{Deserialize, Serialize};

/// The example's dropout rate.
pub const DEFAULT_DROPOUT: f32 = 0.5;

/// The regularization settings of a run (part of its fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Regularization {
    /// AdamW's decoupled weight decay per step, times the learning rate (0: plain Adam, the
    /// example's optimizer).
    #[serde(default)]
    pub weight_decay: f32,
    /// Dropout rate before the classifier, in [0, 1).
    #[serde(default = "default_dropout")]
    pub dropout: f32,
    /// L2 factor of every kernel (0: none, the example's).
    #[serde(default)]
    pub l2: f32,
    /// Label smoothing of the cross-entropy, in [0, 1] (0: none, the example's).
    #[serde(default)]
    pub label_smoothing: f32,
}

fn default_dropout() -> f32 {
    DEFAULT_DROPOUT
}

impl Default for Regularization {
    /// The Keras example's: no weight decay, dropout 0.5, no L2, no label smoothing.
    fn default() -> Self {
        Self {
            weight_decay: 0.0,
            dropout: DEFAULT_DROPOUT,
            l2: 0.0,
            label_smoothing: 0.0,
        }
    }
}

impl Regularization {
    /// Whether these are the example's settings (a run fingerprint leaves them out then, so
    /// that a run.json written before the flags existed still matches).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the values; the message names the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        let wd = self.weight_decay;
        crate::ensure_input!(
            wd.is_finite() && wd >= 0.0,
            "--weight-decay must be a number ≥ 0 (Keras' AdamW default is 0.004), got {wd}"
        );
        let rate = self.dropout;
        crate::ensure_input!(
            (0.0..1.0).contains(&rate),
            "--dropout must be in [0, 1) (the fraction of units dropped; the example uses \
             0.5), got {rate}"
        );
        let l2 = self.l2;
        crate::ensure_input!(
            l2.is_finite() && l2 >= 0.0,
            "--l2 must be a number ≥ 0 (Keras' regularizers.l2 default is 0.01; 0 is none), \
             got {l2}"
        );
        let s = self.label_smoothing;
        crate::ensure_input!(
            (0.0..=1.0).contains(&s),
            "--label-smoothing must be in [0, 1], as Keras' label_smoothing (0 is none; 0.1 is \
             usual), got {s}"
        );
        Ok(())
    }

    /// How a fingerprint comparison shows the settings:
    /// `weight decay 0, dropout 0.5, l2 0, label smoothing 0`.
    pub fn label(&self) -> String {
        format!(
            "weight decay {}, dropout {}, l2 {}, label smoothing {}",
            self.weight_decay, self.dropout, self.l2, self.label_smoothing
        )
    }

    /// Each setting with the flag that sets it, for comparisons that name the flag at fault.
    pub fn by_flag(&self) -> [(&'static str, f32); 4] {
        [
            ("--weight-decay", self.weight_decay),
            ("--dropout", self.dropout),
            ("--l2", self.l2),
            ("--label-smoothing", self.label_smoothing),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_example_and_values_are_checked() {
        let d = Regularization::default();
        assert!(d.is_default());
        assert!(d.validate().is_ok());
        // A fingerprint written before the flags existed reads as the defaults.
        let old: Regularization = serde_json::from_str("{}").unwrap();
        assert_eq!(old, d);
        for (bad, flag) in [
            (
                Regularization {
                    weight_decay: -1.0,
                    ..d
                },
                "--weight-decay",
            ),
            (
                Regularization {
                    weight_decay: f32::NAN,
                    ..d
                },
                "--weight-decay",
            ),
            (Regularization { dropout: 1.0, ..d }, "--dropout"),
            (Regularization { dropout: -0.1, ..d }, "--dropout"),
            (Regularization { l2: -1e-4, ..d }, "--l2"),
            (
                Regularization {
                    l2: f32::INFINITY,
                    ..d
                },
                "--l2",
            ),
            (
                Regularization {
                    label_smoothing: 1.5,
                    ..d
                },
                "--label-smoothing",
            ),
            (
                Regularization {
                    label_smoothing: -0.1,
                    ..d
                },
                "--label-smoothing",
            ),
            (
                Regularization {
                    label_smoothing: f32::NAN,
                    ..d
                },
                "--label-smoothing",
            ),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(crate::train::api::is_bad_input(&e), "{e}");
            assert!(e.to_string().contains(flag), "{e}");
        }
        // Keras' bounds are inclusive for label smoothing: 1 is the uniform target.
        for s in [0.0, 1.0] {
            let ok = Regularization {
                label_smoothing: s,
                l2: 1e-4,
                ..d
            };
            assert!(ok.validate().is_ok());
            assert!(!ok.is_default());
        }
        // A fingerprint with weight decay written before --l2 and --label-smoothing existed.
        let old: Regularization =
            serde_json::from_str(r#"{"weight_decay":0.1,"dropout":0.5}"#).unwrap();
        assert_eq!((old.l2, old.label_smoothing), (0.0, 0.0));
    }
}
