//! Writing a checkpoint: the layout's tensors, Adam's moments, and the metadata.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, View};

use super::{
    CheckpointError, FORMAT_NAME, FORMAT_VERSION, GPUCNN_VERSION, ModelConfig, TrainState,
};
use crate::atomic::write_atomic;
use crate::graph::ParamLayout;

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
pub(super) fn moment_names(name: &str) -> [String; 2] {
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

    let tensors = tensors(layout, params, state);
    let meta = metadata(model, state);
    let bytes = safetensors::tensor::serialize(tensors, Some(meta)).map_err(|e| {
        CheckpointError::Serialize {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Every parameter under its layout name, and with `state` Adam's moments of the trainable
/// ones under [`moment_names`].
fn tensors<'a>(
    layout: &'a ParamLayout,
    params: &'a [f32],
    state: Option<&'a TrainState>,
) -> Vec<(String, F32Tensor<'a>)> {
    let mut tensors = Vec::new();
    for slot in &layout.slots {
        let range = slot.offset..slot.offset + slot.len;
        let shape = &slot.shape;
        tensors.push((
            slot.name.clone(),
            F32Tensor {
                shape,
                data: &params[range.clone()],
            },
        ));
        if let (Some(s), true) = (state, slot.trainable) {
            let [m, v] = moment_names(&slot.name);
            let (dm, dv) = (&s.m[range.clone()], &s.v[range]);
            tensors.push((m, F32Tensor { shape, data: dm }));
            tensors.push((v, F32Tensor { shape, data: dv }));
        }
    }
    tensors
}

/// The string metadata (see the module doc of [`super`]).
fn metadata(model: &ModelConfig, state: Option<&TrainState>) -> HashMap<String, String> {
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
        if let Some(p) = &s.position {
            meta.insert(
                "position".into(),
                serde_json::to_string(p).expect("a position always serializes"),
            );
        }
        if let Some(c) = &s.callbacks {
            meta.insert(
                "callbacks".into(),
                serde_json::to_string(c).expect("a callback state always serializes"),
            );
        }
    }
    meta
}
