//! What keeps a model from overfitting, as `gpucnn train` sets it: AdamW's decoupled weight
//! decay (`--weight-decay`, Keras' `keras.optimizers.AdamW(weight_decay=...)`, applied on the
//! GPU in the Adam kernel: θ −= θ·wd·lr before each update, every trainable value) and the
//! dropout rate before the classifier (`--dropout`, the example's `layers.Dropout(0.5)`).

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
}

fn default_dropout() -> f32 {
    DEFAULT_DROPOUT
}

impl Default for Regularization {
    /// The Keras example's: no weight decay, dropout 0.5.
    fn default() -> Self {
        Self {
            weight_decay: 0.0,
            dropout: DEFAULT_DROPOUT,
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
        Ok(())
    }

    /// How a fingerprint comparison shows the settings: `weight decay 0, dropout 0.5`.
    pub fn label(&self) -> String {
        format!(
            "weight decay {}, dropout {}",
            self.weight_decay, self.dropout
        )
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
        ] {
            let e = bad.validate().unwrap_err();
            assert!(crate::train::api::is_bad_input(&e), "{e}");
            assert!(e.to_string().contains(flag), "{e}");
        }
    }
}
