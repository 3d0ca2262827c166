//! Reading a checkpoint back, every tensor checked against the layout and every metadata value
//! parsed, errors naming the file, the tensor or key, and the model the file was written for.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};

use super::save::moment_names;
use super::{Checkpoint, CheckpointError, FORMAT_VERSION, ModelConfig, TrainState};
use crate::graph::ParamLayout;

/// Reads a checkpoint written by [`super::save_checkpoint`] (or any safetensors file with the
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
    let model = read_model(&reader)?;
    let hint = match &model {
        Some(m) => format!(
            ". The file was written for {}; build the model with those settings (the run's model.json) or load a checkpoint of this model",
            m.summary()
        ),
        None => ". The file was written for another model (other width or class count?)".into(),
    };
    let has_state = meta.contains_key("optimizer") || meta.contains_key("step");
    let file = File {
        path,
        st: &st,
        hint: &hint,
    };
    let Tensors {
        params,
        moments,
        expected,
    } = file.read_tensors(layout, has_state)?;
    file.refuse_extra(&expected, has_state)?;
    let state = match moments {
        Some((m, v)) => Some(TrainState {
            epoch: reader.require("epoch")?,
            adam_t: reader.require("step")?,
            lr: reader.require("lr")?,
            m,
            v,
            run: reader.json("run")?,
            best_val_accuracy: reader.parse("best_val_accuracy")?,
            callbacks: reader.json("callbacks")?,
            position: reader.json("position")?,
        }),
        None => None,
    };
    Ok(Checkpoint {
        params,
        state,
        model,
    })
}

/// Refuses a newer format, and reads the model description the file records, if any.
fn read_model(reader: &MetaReader) -> Result<Option<ModelConfig>, CheckpointError> {
    if let Some(v) = reader.parse::<u32>("format_version")?
        && v > FORMAT_VERSION
    {
        return Err(CheckpointError::NewerFormat {
            path: reader.path.to_path_buf(),
            found: v,
            supported: FORMAT_VERSION,
        });
    }
    reader.json("model")
}

/// Adam's m and v, flat over the trainable prefix.
type Moments = (Vec<f32>, Vec<f32>);

/// What [`File::read_tensors`] read: the parameters, the moments (when the file has a state),
/// and the tensor names it expected.
struct Tensors {
    params: Vec<f32>,
    moments: Option<Moments>,
    expected: HashSet<String>,
}

/// An opened checkpoint, and the hint its errors carry (which model it was written for).
struct File<'a> {
    path: &'a Path,
    st: &'a SafeTensors<'a>,
    hint: &'a str,
}

impl File<'_> {
    /// Every parameter of `layout` (and with `has_state` Adam's moments of the trainable ones),
    /// flat in layout order, and the names read.
    fn read_tensors(
        &self,
        layout: &ParamLayout,
        has_state: bool,
    ) -> Result<Tensors, CheckpointError> {
        let mut expected: HashSet<String> = HashSet::new();
        let mut params = vec![0.0f32; layout.total_len];
        let t = layout.trainable_len;
        let mut moments = has_state.then(|| (vec![0.0f32; t], vec![0.0f32; t]));
        for slot in &layout.slots {
            let range = slot.offset..slot.offset + slot.len;
            self.read(&slot.name, &slot.shape, &mut params[range.clone()])?;
            expected.insert(slot.name.clone());
            if let (Some((m, v)), true) = (&mut moments, slot.trainable) {
                let [mn, vn] = moment_names(&slot.name);
                self.read(&mn, &slot.shape, &mut m[range.clone()])?;
                self.read(&vn, &slot.shape, &mut v[range])?;
                expected.insert(mn);
                expected.insert(vn);
            }
        }
        Ok(Tensors {
            params,
            moments,
            expected,
        })
    }

    fn read(&self, name: &str, shape: &[usize], dst: &mut [f32]) -> Result<(), CheckpointError> {
        read_tensor(self.path, self.st, name, shape, self.hint, dst)
    }

    /// Refuses tensors the layout does not have (a file of another model), naming a few.
    fn refuse_extra(
        &self,
        expected: &HashSet<String>,
        has_state: bool,
    ) -> Result<(), CheckpointError> {
        let mut extra: Vec<&str> = self
            .st
            .names()
            .into_iter()
            .filter(|n| !expected.contains(*n))
            .collect();
        if extra.is_empty() {
            return Ok(());
        }
        extra.sort_unstable();
        let count = extra.len();
        let mut names = extra.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        if count > 5 {
            let _ = write!(names, ", …");
        }
        let hint = if !has_state && extra.iter().any(|n| n.starts_with("optimizer/")) {
            ". It has optimizer tensors but no 'step' metadata: it was not written by gpucnn's save_checkpoint".to_string()
        } else {
            self.hint.to_string()
        };
        Err(CheckpointError::UnexpectedTensors {
            path: self.path.to_path_buf(),
            count,
            names,
            hint,
        })
    }
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
