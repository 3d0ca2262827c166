//! Checkpoints (safetensors) and the model description (`model.json`).
//!
//! A checkpoint holds every parameter tensor under its Keras-style name from the
//! [`ParamLayout`] (`conv2d/kernel`, `batch_normalization_3/moving_mean`, …), in Keras' shape
//! and order, as F32. The alignment padding between slots of the flat space is not stored; it
//! reads back as zeros. A resumable checkpoint also holds Adam's moments as
//! `optimizer/m/<name>` and `optimizer/v/<name>` for every trainable slot, and the scalars of
//! [`TrainState`] in the safetensors string metadata:
//!
//! | key | value |
//! |---|---|
//! | `format` | `gpucnn-checkpoint` |
//! | `format_version` | [`FORMAT_VERSION`] |
//! | `gpucnn_version` | the crate version that wrote the file |
//! | `model` | the [`ModelConfig`] as JSON (what `model.json` holds) |
//! | `optimizer` | `adam` (only with a [`TrainState`]) |
//! | `epoch`, `step`, `lr` | epochs completed, Adam's t, the learning rate |
//! | `run` | the run's [`RunFingerprint`] as JSON: seed, split, data digest, … (`--resume` checks it) |
//! | `best_val_accuracy` | the best validation accuracy so far (absent if none) |
//!
//! Numbers are written with Rust's shortest round-trip formatting, so a load gives back the
//! exact values saved. Whether `best.safetensors` carries the optimizer state is the caller's
//! choice: with it (three times the size) it can be resumed from, without it it is a plain
//! weights file; [`load_checkpoint`] reads both.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::run_folder::RunFingerprint;
use crate::atomic::{AtomicWriteError, write_atomic};
use crate::graph::ParamLayout;
use crate::model::XceptionConfig;

/// The checkpoint format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The value of the `format` metadata key.
pub const FORMAT_NAME: &str = "gpucnn-checkpoint";
/// The crate version recorded in `model.json` and in checkpoints.
pub const GPUCNN_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The only architecture gpucnn builds today.
pub const XCEPTION_MINI: &str = "xception_mini";
/// File name of the model description in a run directory.
pub const MODEL_JSON: &str = "model.json";

/// Everything that can go wrong reading or writing a checkpoint or `model.json`; every
/// variant names the file at fault.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// Writing failed (the temporary file was removed, the old file is intact).
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    /// safetensors refused to serialize the tensors (e.g. a header over its size limit).
    #[error("not writing {}: safetensors could not serialize it: {reason}", path.display())]
    Serialize {
        /// The file that was to be written.
        path: PathBuf,
        /// safetensors' message.
        reason: String,
    },
    /// The file could not be read.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid safetensors file.
    #[error(
        "{} is not a safetensors file ({reason}); pass a save_at_<epoch>.safetensors or best.safetensors written by gpucnn",
        path.display()
    )]
    NotSafetensors {
        /// The file.
        path: PathBuf,
        /// What the safetensors parser said.
        reason: String,
    },
    /// A tensor the model needs is not in the file.
    #[error("{} has no tensor '{name}'{hint}", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The missing tensor's name.
        name: String,
        /// Which model the file was written for, when it says.
        hint: String,
    },
    /// A tensor has another shape than the model's parameter.
    #[error(
        "{}: tensor '{name}' has shape {found:?}, the model expects {expected:?}{hint}",
        path.display()
    )]
    WrongShape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
        /// Which model the file was written for, when it says.
        hint: String,
    },
    /// A tensor is not F32.
    #[error("{}: tensor '{name}' is {found}, gpucnn checkpoints hold F32", path.display())]
    WrongDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The file's dtype.
        found: String,
    },
    /// The file holds tensors the model does not have.
    #[error(
        "{} holds {count} tensor(s) this model does not have ({names}){hint}",
        path.display()
    )]
    UnexpectedTensors {
        /// The file.
        path: PathBuf,
        /// How many.
        count: usize,
        /// The first few names, comma-separated.
        names: String,
        /// Which model the file was written for, when it says.
        hint: String,
    },
    /// A metadata entry is missing or unreadable.
    #[error("{}: metadata '{key}': {reason}", path.display())]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by a newer gpucnn.
    #[error(
        "{} has checkpoint format version {found}; this gpucnn reads up to {supported}: use a newer gpucnn",
        path.display()
    )]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The file's version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The values handed to [`save_checkpoint`] do not fit the layout (a caller bug).
    #[error(
        "not writing {}: {what} has {found} values, the parameter layout needs {expected}",
        path.display()
    )]
    WrongLength {
        /// The file that was to be written.
        path: PathBuf,
        /// `params`, `optimizer m` or `optimizer v`.
        what: &'static str,
        /// The layout's length.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// `model.json` is not valid JSON of a [`ModelConfig`].
    #[error("{} is not a valid model description: {source}", path.display())]
    ModelJson {
        /// The file.
        path: PathBuf,
        /// The parse error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// `model.json` parses but describes no model gpucnn can build.
    #[error("{}: {reason}", path.display())]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A saved model description (`model.json`, or the one in a checkpoint) differs from the
    /// model requested.
    #[error(
        "{} was written for another model than the one requested: {}. Use the settings of the run that wrote it (its model.json), or start a new run in another output directory",
        path.display(), diffs.join("; ")
    )]
    ModelMismatch {
        /// The `model.json` (or checkpoint) holding the saved description.
        path: PathBuf,
        /// One entry per disagreeing field: the saved value, the requested one, the flag.
        diffs: Vec<String>,
    },
}

/// What `model.json` records: enough to rebuild the network a checkpoint belongs to and to
/// name its outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The network, `"xception_mini"`.
    pub architecture: String,
    /// Channel width multiplier (1.0 is the Keras example's network).
    pub width: f32,
    /// Input height and width in pixels.
    pub image_size: usize,
    /// Input channels (3 for RGB).
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
    /// The gpucnn version that wrote the description.
    pub gpucnn_version: String,
}

impl ModelConfig {
    /// The description of `xception_mini(cfg)` trained on `classes` (whose count overrides
    /// `cfg.classes`); the output activation follows from the class count. Images are
    /// stretched (`crop_to_aspect_ratio` false): set the field when training crops.
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
        if self.image_size == 0 || self.channels == 0 {
            return Err("image_size and channels must be at least 1".into());
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
            "channels",
            self.channels.to_string(),
            other.channels.to_string(),
            "the input channels",
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

    /// One line for messages: `xception_mini width 0.5, 128×128×3 input, 2 classes (cat, dog)`.
    pub fn summary(&self) -> String {
        format!(
            "{} width {}, {}×{}×{} input, {} classes ({}), dropout {}",
            self.architecture,
            self.width,
            self.image_size,
            self.image_size,
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

/// The training loop's state beyond the parameters: what `--resume` needs to continue exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Adam's step counter t (updates applied so far).
    pub adam_t: u32,
    /// The learning rate.
    pub lr: f32,
    /// Adam's first moment, flat in layout order, `layout.trainable_len` long.
    pub m: Vec<f32>,
    /// Adam's second moment, flat in layout order, `layout.trainable_len` long.
    pub v: Vec<f32>,
    /// The fingerprint of the run that wrote the checkpoint: every random stream (split,
    /// shuffles, initial weights, dropout, augmentation) derives from its seed and the epoch and
    /// step, so this, checked on resume, is the whole RNG state. `None` for a file without one.
    pub run: Option<RunFingerprint>,
    /// The best validation accuracy reached so far, if any epoch was validated.
    pub best_val_accuracy: Option<f32>,
}

/// A checkpoint as read back by [`load_checkpoint`].
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// All parameters, `layout.total_len` long, alignment padding zero.
    pub params: Vec<f32>,
    /// The optimizer and loop state, when the file was saved with one.
    pub state: Option<TrainState>,
    /// The model description stored in the file, when it has one.
    pub model: Option<ModelConfig>,
}

/// A borrowed f32 tensor for safetensors' serializer.
struct F32Tensor<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl View for F32Tensor<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        if cfg!(target_endian = "little") {
            Cow::Borrowed(bytemuck::cast_slice(self.data))
        } else {
            Cow::Owned(self.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// Names of Adam's moment tensors for the parameter `name`.
fn moment_names(name: &str) -> [String; 2] {
    [format!("optimizer/m/{name}"), format!("optimizer/v/{name}")]
}

/// Writes a checkpoint to `path` (atomically): every parameter of `layout` from `params`
/// (`layout.total_len` long), the model description, and with `state` Adam's moments and the
/// loop scalars (see the module doc). `state: None` writes a weights-only file.
pub fn save_checkpoint(
    path: impl AsRef<Path>,
    layout: &ParamLayout,
    params: &[f32],
    model: &ModelConfig,
    state: Option<&TrainState>,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let check = |what, found: usize, expected: usize| {
        if found == expected {
            Ok(())
        } else {
            Err(CheckpointError::WrongLength {
                path: path.to_path_buf(),
                what,
                expected,
                found,
            })
        }
    };
    check("params", params.len(), layout.total_len)?;
    if let Some(s) = state {
        check("optimizer m", s.m.len(), layout.trainable_len)?;
        check("optimizer v", s.v.len(), layout.trainable_len)?;
    }

    let mut tensors: Vec<(String, F32Tensor)> = Vec::new();
    for slot in &layout.slots {
        let range = slot.offset..slot.offset + slot.len;
        tensors.push((
            slot.name.clone(),
            F32Tensor {
                shape: &slot.shape,
                data: &params[range.clone()],
            },
        ));
        if let (Some(s), true) = (state, slot.trainable) {
            let [m, v] = moment_names(&slot.name);
            tensors.push((
                m,
                F32Tensor {
                    shape: &slot.shape,
                    data: &s.m[range.clone()],
                },
            ));
            tensors.push((
                v,
                F32Tensor {
                    shape: &slot.shape,
                    data: &s.v[range],
                },
            ));
        }
    }

    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT_NAME.to_string());
    meta.insert("format_version".into(), FORMAT_VERSION.to_string());
    meta.insert("gpucnn_version".into(), GPUCNN_VERSION.into());
    meta.insert(
        "model".into(),
        serde_json::to_string(model).expect("a ModelConfig always serializes"),
    );
    if let Some(s) = state {
        meta.insert("optimizer".into(), "adam".into());
        meta.insert("epoch".into(), s.epoch.to_string());
        meta.insert("step".into(), s.adam_t.to_string());
        meta.insert("lr".into(), s.lr.to_string());
        if let Some(run) = &s.run {
            meta.insert(
                "run".into(),
                serde_json::to_string(run).expect("a fingerprint always serializes"),
            );
        }
        if let Some(best) = s.best_val_accuracy {
            meta.insert("best_val_accuracy".into(), best.to_string());
        }
    }

    let bytes = safetensors::tensor::serialize(tensors, Some(meta)).map_err(|e| {
        CheckpointError::Serialize {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Reads a checkpoint written by [`save_checkpoint`] (or any safetensors file with the
/// layout's tensor names) for the model of `layout`. Every tensor of the layout must be there
/// with its exact shape, as F32, and no other tensor may be; a mismatch error says which model
/// the file was written for when the file records it.
pub fn load_checkpoint(
    path: impl AsRef<Path>,
    layout: &ParamLayout,
) -> Result<Checkpoint, CheckpointError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let not_st = |e: safetensors::SafeTensorError| CheckpointError::NotSafetensors {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let st = SafeTensors::deserialize(&bytes).map_err(not_st)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(not_st)?;
    let meta = header.metadata().clone().unwrap_or_default();
    let reader = MetaReader { path, meta: &meta };

    if let Some(v) = reader.parse::<u32>("format_version")?
        && v > FORMAT_VERSION
    {
        return Err(CheckpointError::NewerFormat {
            path: path.to_path_buf(),
            found: v,
            supported: FORMAT_VERSION,
        });
    }
    let model: Option<ModelConfig> = match meta.get("model") {
        Some(json) => {
            Some(
                serde_json::from_str(json).map_err(|e| CheckpointError::BadMetadata {
                    path: path.to_path_buf(),
                    key: "model".into(),
                    reason: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    let hint = match &model {
        Some(m) => format!(
            ". The file was written for {}; build the model with those settings (the run's model.json) or load a checkpoint of this model",
            m.summary()
        ),
        None => ". The file was written for another model (other width or class count?)".into(),
    };
    let has_state = meta.contains_key("optimizer") || meta.contains_key("step");

    let mut expected: HashSet<String> = HashSet::new();
    let mut params = vec![0.0f32; layout.total_len];
    let (mut m, mut v) = if has_state {
        (
            vec![0.0f32; layout.trainable_len],
            vec![0.0f32; layout.trainable_len],
        )
    } else {
        (Vec::new(), Vec::new())
    };
    for slot in &layout.slots {
        let range = slot.offset..slot.offset + slot.len;
        read_tensor(
            path,
            &st,
            &slot.name,
            &slot.shape,
            &hint,
            &mut params[range.clone()],
        )?;
        expected.insert(slot.name.clone());
        if has_state && slot.trainable {
            let [mn, vn] = moment_names(&slot.name);
            read_tensor(path, &st, &mn, &slot.shape, &hint, &mut m[range.clone()])?;
            read_tensor(path, &st, &vn, &slot.shape, &hint, &mut v[range])?;
            expected.insert(mn);
            expected.insert(vn);
        }
    }
    let mut extra: Vec<&str> = st
        .names()
        .into_iter()
        .filter(|n| !expected.contains(*n))
        .collect();
    if !extra.is_empty() {
        extra.sort_unstable();
        let count = extra.len();
        let mut names = extra.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        if count > 5 {
            let _ = write!(names, ", …");
        }
        let hint = if !has_state && extra.iter().any(|n| n.starts_with("optimizer/")) {
            ". It has optimizer tensors but no 'step' metadata: it was not written by gpucnn's save_checkpoint".to_string()
        } else {
            hint
        };
        return Err(CheckpointError::UnexpectedTensors {
            path: path.to_path_buf(),
            count,
            names,
            hint,
        });
    }

    let state = if has_state {
        Some(TrainState {
            epoch: reader.require("epoch")?,
            adam_t: reader.require("step")?,
            lr: reader.require("lr")?,
            m,
            v,
            run: reader.json("run")?,
            best_val_accuracy: reader.parse("best_val_accuracy")?,
        })
    } else {
        None
    };
    Ok(Checkpoint {
        params,
        state,
        model,
    })
}

/// Copies tensor `name` of `st` into `dst` after checking dtype and shape.
fn read_tensor(
    path: &Path,
    st: &SafeTensors,
    name: &str,
    shape: &[usize],
    hint: &str,
    dst: &mut [f32],
) -> Result<(), CheckpointError> {
    let t = st
        .tensor(name)
        .map_err(|_| CheckpointError::MissingTensor {
            path: path.to_path_buf(),
            name: name.to_string(),
            hint: hint.to_string(),
        })?;
    if t.dtype() != Dtype::F32 {
        return Err(CheckpointError::WrongDtype {
            path: path.to_path_buf(),
            name: name.to_string(),
            found: format!("{:?}", t.dtype()),
        });
    }
    if t.shape() != shape {
        return Err(CheckpointError::WrongShape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: shape.to_vec(),
            found: t.shape().to_vec(),
            hint: hint.to_string(),
        });
    }
    // The data need not be 4-byte aligned in the file buffer: decode bytewise.
    for (d, b) in dst.iter_mut().zip(t.data().chunks_exact(4)) {
        *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(())
}

/// Typed access to the string metadata, with errors naming the file and key.
struct MetaReader<'a> {
    path: &'a Path,
    meta: &'a HashMap<String, String>,
}

impl MetaReader<'_> {
    fn bad(&self, key: &str, reason: String) -> CheckpointError {
        CheckpointError::BadMetadata {
            path: self.path.to_path_buf(),
            key: key.into(),
            reason,
        }
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, CheckpointError>
    where
        T::Err: std::fmt::Display,
    {
        match self.meta.get(key) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|e| self.bad(key, format!("'{s}' is not a valid value: {e}"))),
        }
    }

    fn require<T: std::str::FromStr>(&self, key: &str) -> Result<T, CheckpointError>
    where
        T::Err: std::fmt::Display,
    {
        self.parse(key)?.ok_or_else(|| {
            self.bad(
                key,
                "missing; the file has optimizer state but not this value".into(),
            )
        })
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, CheckpointError> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(s) => serde_json::from_str(s)
                .map(Some)
                .map_err(|e| self.bad(key, format!("not valid JSON of this field: {e}"))),
        }
    }
}

/// An upper bound on the size of a checkpoint of `layout` written by [`save_checkpoint`], with
/// (`with_state`) or without Adam's moments: the tensors' bytes (padding not stored) plus a
/// generous allowance for the JSON header (names, shapes, offsets, the model and run metadata).
pub fn checkpoint_size_bound(layout: &ParamLayout, with_state: bool) -> u64 {
    // Metadata (the model and run JSON, under 2 kB) plus, per tensor, its data and its header
    // entry: `"optimizer/m/<name>":{"dtype":"F32","shape":[..],"data_offsets":[..,..]},`.
    let mut bytes = 8 * 1024u64;
    for slot in &layout.slots {
        let copies = if with_state && slot.trainable { 3 } else { 1 };
        bytes += copies * (slot.len as u64 * 4 + slot.name.len() as u64 + 112);
    }
    bytes
}

/// The path of epoch `epoch`'s checkpoint in `dir`: `dir/save_at_{epoch}.safetensors`.
pub fn checkpoint_path(dir: impl AsRef<Path>, epoch: usize) -> PathBuf {
    dir.as_ref().join(format!("save_at_{epoch}.safetensors"))
}

/// The highest-epoch `save_at_{epoch}.safetensors` in `dir`, or `None` when there is none (or
/// the directory does not exist). Other files, temporary files included, are ignored.
pub fn latest_checkpoint(
    dir: impl AsRef<Path>,
) -> Result<Option<(usize, PathBuf)>, CheckpointError> {
    let dir = dir.as_ref();
    let read_err = |source| CheckpointError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name();
        let Some(epoch) = name
            .to_str()
            .and_then(|n| n.strip_prefix("save_at_"))
            .and_then(|n| n.strip_suffix(".safetensors"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(e, _)| epoch > *e) {
            best = Some((epoch, entry.path()));
        }
    }
    Ok(best)
}
