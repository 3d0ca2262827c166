//! The model description: what `model.json` (and every checkpoint's `model` metadata) records,
//! and the comparisons that name each field that differs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CheckpointError, GPUCNN_VERSION, MODEL_JSON, XCEPTION_MINI};
use crate::atomic::write_atomic;
use crate::data::geometry::{ColorMode, ImageSize};
use crate::model::XceptionConfig;

/// What `model.json` records: enough to rebuild the network a checkpoint belongs to and to
/// name its outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The network, `"xception_mini"`.
    pub architecture: String,
    /// Channel width multiplier (1.0 is the Keras example's network).
    pub width: f32,
    /// Input height and width in pixels: `N` for N×N (every file written before non-square
    /// inputs existed reads so), `[height, width]` otherwise.
    pub image_size: ImageSize,
    /// Input channels: 3 for RGB, 1 for grayscale (always `color_mode`'s).
    pub channels: usize,
    /// Class names in label order (label i is `classes[i]`).
    pub classes: Vec<String>,
    /// Dropout rate before the classifier.
    pub dropout: f32,
    /// `"sigmoid"` (two classes, one output unit) or `"softmax"` (one unit per class).
    pub output_activation: String,
    /// One sigmoid per class (`gpucnn train --labels`): any number of classes per image.
    #[serde(default)]
    pub multi_label: bool,
    /// Whether training centre-cropped each image to the input's aspect ratio before resizing
    /// (`--crop-to-aspect-ratio`) rather than stretching it; `predict` and `evaluate` do the
    /// same. Files written before gpucnn recorded it read as false.
    #[serde(default)]
    pub crop_to_aspect_ratio: bool,
    /// `"rgb"` or `"grayscale"` (`--color-mode`): what `predict` and `evaluate` convert every
    /// image to, whatever its file holds. Files written before gpucnn recorded it read as rgb.
    #[serde(default)]
    pub color_mode: ColorMode,
    /// How the model was regularized in training (`--weight-decay`, `--l2`,
    /// `--label-smoothing`): a record for whoever reads the file. They change neither the
    /// network nor what its weights mean, so [`Self::differences`] does not compare them
    /// (`--init-from` may fine-tune with other values; `--resume` is guarded by the run
    /// fingerprint, which records them). Files written before gpucnn recorded them read as 0.
    #[serde(default)]
    pub weight_decay: f32,
    /// Keras' `kernel_regularizer=l2(l2)` factor of every kernel (0: none).
    #[serde(default)]
    pub l2: f32,
    /// Keras' `label_smoothing` of the cross-entropy (0: none).
    #[serde(default)]
    pub label_smoothing: f32,
    /// The gpucnn version that wrote the description.
    pub gpucnn_version: String,
}

impl ModelConfig {
    /// The description of `xception_mini(cfg)` trained on `classes` (whose count overrides
    /// `cfg.classes`); the output activation follows from the class count, the colour mode
    /// from the channels (1: grayscale, else rgb). Images are stretched (`crop_to_aspect_ratio`
    /// false): set the field when training crops.
    pub fn xception_mini(cfg: &XceptionConfig, classes: Vec<String>) -> Self {
        let output_activation = if cfg.multi_label || classes.len() == 2 {
            "sigmoid"
        } else {
            "softmax"
        };
        Self {
            architecture: XCEPTION_MINI.into(),
            width: cfg.width,
            image_size: cfg.image_size,
            channels: cfg.channels,
            classes,
            dropout: cfg.dropout,
            output_activation: output_activation.into(),
            multi_label: cfg.multi_label,
            crop_to_aspect_ratio: false,
            color_mode: if cfg.channels == 1 {
                ColorMode::Grayscale
            } else {
                ColorMode::Rgb
            },
            weight_decay: 0.0,
            l2: 0.0,
            label_smoothing: 0.0,
            gpucnn_version: GPUCNN_VERSION.into(),
        }
    }

    /// The builder configuration for `gpucnn::model::xception_mini`.
    pub fn xception_config(&self) -> XceptionConfig {
        XceptionConfig {
            image_size: self.image_size,
            channels: self.channels,
            classes: self.classes.len(),
            width: self.width,
            dropout: self.dropout,
            multi_label: self.multi_label,
        }
    }

    /// Checks that the description is one gpucnn can build; the message says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.architecture != XCEPTION_MINI {
            return Err(format!(
                "architecture \"{}\" is unknown (gpucnn builds \"{XCEPTION_MINI}\")",
                self.architecture
            ));
        }
        crate::model::check_width(self.width)?;
        if self.image_size.is_empty() {
            return Err(format!(
                "image_size {} has a side of 0; it must be at least 1×1",
                self.image_size
            ));
        }
        if self.channels != self.color_mode.channels() {
            return Err(format!(
                "channels {} does not fit color_mode \"{}\" ({} channel(s))",
                self.channels,
                self.color_mode,
                self.color_mode.channels()
            ));
        }
        if self.classes.len() < 2 && !self.multi_label {
            return Err(format!(
                "{} class name(s); a classifier needs at least 2",
                self.classes.len()
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {} must be in [0, 1)", self.dropout));
        }
        let expected = if self.multi_label || self.classes.len() == 2 {
            "sigmoid"
        } else {
            "softmax"
        };
        if self.output_activation != expected {
            return Err(format!(
                "output_activation \"{}\" does not fit {} classes (expected \"{expected}\")",
                self.output_activation,
                self.classes.len()
            ));
        }
        Ok(())
    }

    /// The fields in which `requested` differs from `self` (the saved description), one line
    /// each with both values and the flag that sets it. The gpucnn version is not compared.
    pub fn differences(&self, requested: &ModelConfig) -> Vec<String> {
        self.differences_with(requested, |field, saved, req, flag| {
            format!("{field} {saved} saved, {req} requested ({flag})")
        })
    }

    /// Every field in which `other` differs from `self`, as `line(field, self's value, other's
    /// value, the flag that sets it)`: the one comparison behind [`Self::differences`] and
    /// predict's check of model.json against its checkpoint. The gpucnn version is not compared.
    pub fn differences_with(
        &self,
        other: &ModelConfig,
        line: impl Fn(&str, &str, &str, &str) -> String,
    ) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |field: &str, mine: String, theirs: String, flag: &str| {
            if mine != theirs {
                d.push(line(field, &mine, &theirs, flag));
            }
        };
        cmp(
            "architecture",
            self.architecture.clone(),
            other.architecture.clone(),
            "the model",
        );
        cmp(
            "width",
            self.width.to_string(),
            other.width.to_string(),
            "--width",
        );
        cmp(
            "image_size",
            self.image_size.to_string(),
            other.image_size.to_string(),
            "--image-size",
        );
        cmp(
            "color_mode",
            self.color_mode.to_string(),
            other.color_mode.to_string(),
            "--color-mode",
        );
        cmp(
            "channels",
            self.channels.to_string(),
            other.channels.to_string(),
            "--color-mode",
        );
        cmp(
            "classes",
            format!("{:?}", self.classes),
            format!("{:?}", other.classes),
            "the class subfolders of --data",
        );
        cmp(
            "dropout",
            self.dropout.to_string(),
            other.dropout.to_string(),
            "--dropout",
        );
        cmp(
            "output_activation",
            self.output_activation.clone(),
            other.output_activation.clone(),
            "the class count",
        );
        cmp(
            "crop_to_aspect_ratio",
            self.crop_to_aspect_ratio.to_string(),
            other.crop_to_aspect_ratio.to_string(),
            "--crop-to-aspect-ratio",
        );
        cmp(
            "multi_label",
            self.multi_label.to_string(),
            other.multi_label.to_string(),
            "--labels",
        );
        d
    }

    /// Fails with [`CheckpointError::ModelMismatch`] naming `saved_path` and every field that
    /// differs when `requested` is not the model `self` (read from `saved_path`: a `model.json`
    /// or a checkpoint's [`Checkpoint::model`]) describes. For `--resume` every field must
    /// agree; `image_size` alone does not change any parameter shape, so a caller that only
    /// evaluates may choose to ignore that difference.
    pub fn ensure_matches(
        &self,
        saved_path: impl AsRef<Path>,
        requested: &ModelConfig,
    ) -> Result<(), CheckpointError> {
        let diffs = self.differences(requested);
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(CheckpointError::ModelMismatch {
                path: saved_path.as_ref().to_path_buf(),
                diffs,
            })
        }
    }

    /// One line for messages: `xception_mini width 0.5, 128×128×3 input, 2 classes (cat, dog)`
    /// (height × width × channels).
    pub fn summary(&self) -> String {
        format!(
            "{} width {}, {}×{}×{} input, {} classes ({}), dropout {}",
            self.architecture,
            self.width,
            self.image_size.height,
            self.image_size.width,
            self.channels,
            self.classes.len(),
            self.classes.join(", "),
            self.dropout
        )
    }
}

/// Writes `model` as pretty JSON to `dir/model.json` (atomically) and returns the path.
pub fn write_model_json(
    dir: impl AsRef<Path>,
    model: &ModelConfig,
) -> Result<PathBuf, CheckpointError> {
    let path = dir.as_ref().join(MODEL_JSON);
    let mut json = serde_json::to_string_pretty(model).expect("a ModelConfig always serializes");
    json.push('\n');
    write_atomic(&path, json.as_bytes())?;
    Ok(path)
}

/// Reads and validates a `model.json`.
pub fn read_model_json(path: impl AsRef<Path>) -> Result<ModelConfig, CheckpointError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| CheckpointError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let model: ModelConfig =
        serde_json::from_str(&text).map_err(|source| CheckpointError::ModelJson {
            path: path.to_path_buf(),
            source,
        })?;
    model
        .validate()
        .map_err(|reason| CheckpointError::InvalidModel {
            path: path.to_path_buf(),
            reason,
        })?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ab() -> ModelConfig {
        ModelConfig::xception_mini(&XceptionConfig::default(), vec!["a".into(), "b".into()])
    }

    /// A model.json written before the regularization was recorded still loads (as 0), and
    /// the recorded values are never a difference: predict/evaluate's check of model.json
    /// against its checkpoint and --init-from accept a model regularized otherwise.
    #[test]
    fn regularization_is_recorded_read_from_old_files_and_not_compared() {
        let mut json = serde_json::to_value(ab()).unwrap();
        let obj = json.as_object_mut().unwrap();
        for field in ["weight_decay", "l2", "label_smoothing"] {
            assert_eq!(obj.remove(field), Some(serde_json::json!(0.0)), "{field}");
        }
        let old: ModelConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old, ab());
        assert!(old.validate().is_ok());
        let regularized = ModelConfig {
            weight_decay: 0.004,
            l2: 1e-4,
            label_smoothing: 0.1,
            ..ab()
        };
        let back: ModelConfig =
            serde_json::from_str(&serde_json::to_string(&regularized).unwrap()).unwrap();
        assert_eq!(back, regularized);
        assert!(old.differences(&regularized).is_empty());
        assert!(regularized.differences(&old).is_empty());
    }
}
