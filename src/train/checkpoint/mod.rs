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
//! | `position` | JSON, `interrupted.safetensors` only: the epoch in progress, its steps done and their metrics sums |
//! | `callbacks` | JSON: early stopping's and the learning-rate schedules' state (best monitored value and its epoch, patience counters, the plateau schedule's rate) |
//!
//! Numbers are written with Rust's shortest round-trip formatting, so a load gives back the
//! exact values saved. Whether `best.safetensors` carries the optimizer state is the caller's
//! choice: with it (three times the size) it can be resumed from, without it it is a plain
//! weights file; [`load_checkpoint`] reads both.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::run_folder::RunFingerprint;
use crate::atomic::AtomicWriteError;
use crate::graph::ParamLayout;

mod load;
mod model_config;
mod save;

pub use load::load_checkpoint;
pub use model_config::{ModelConfig, read_model_json, write_model_json};
pub use save::save_checkpoint;

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
    /// Early stopping's and the schedules' state (`None` in files written before them).
    pub callbacks: Option<crate::train::callbacks::CallbackState>,
    /// Where in an epoch an interrupted run stopped (`interrupted.safetensors` only).
    pub position: Option<Position>,
}

/// A place inside an epoch: epoch `epoch` (from 1) had its first `step` steps done, with the
/// training metrics `metrics` ([loss sum, correct, seen]) accumulated by them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub epoch: usize,
    pub step: usize,
    pub metrics: [f32; 3],
}

/// The checkpoint an interrupted run writes (see [`crate::train::interrupt`]).
pub fn interrupted_path(dir: impl AsRef<Path>) -> PathBuf {
    dir.as_ref().join("interrupted.safetensors")
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
