//! Why a model cannot be compiled into a step on a device.

use thiserror::Error;

use crate::gpu::GpuError;
use crate::kernels::variants::VariantError;

/// Why a model cannot be compiled into a step on this device.
#[derive(Debug, Error)]
pub enum ExecError {
    /// A tensor of one micro-batch does not fit one binding.
    #[error(
        "tensor '{name}' needs {mib:.1} MiB at a micro-batch of {batch}, more than this GPU can \
         bind in one buffer ({limit_mib:.1} MiB); use a smaller --image-size or --width"
    )]
    TooLarge {
        name: String,
        mib: f64,
        limit_mib: f64,
        batch: usize,
    },
    /// One parameter tensor does not fit one binding (its layer binds it whole).
    #[error(
        "parameter '{name}' needs {mib:.1} MiB, more than this GPU can bind in one buffer \
         ({limit_mib:.1} MiB): this model is too wide for this GPU; scale --width by at most \
         {width_factor:.2} (a layer's weights grow with the square of the width)"
    )]
    ParameterTooLarge {
        name: String,
        mib: f64,
        limit_mib: f64,
        /// √(limit / size): the factor on the width multiplier that makes this tensor fit.
        width_factor: f64,
    },
    /// A whole-model buffer (parameters, gradients, Adam's moments) exceeds the largest buffer.
    #[error(
        "the model's {what} need {mib:.1} MiB in one buffer, more than this GPU's largest buffer \
         ({limit_mib:.1} MiB): this model is too wide for this GPU; scale --width by at most \
         {width_factor:.2}"
    )]
    ModelTooLarge {
        what: &'static str,
        mib: f64,
        limit_mib: f64,
        width_factor: f64,
    },
    /// The whole batch's input does not fit one buffer (it is uploaded at once and split into
    /// micro-batches on the GPU).
    #[error(
        "--batch-size {batch} needs {mib:.1} MiB for the batch's images in one buffer, more than \
         this GPU's largest buffer ({limit_mib:.1} MiB); the largest batch that fits at this \
         --image-size is {max_batch}"
    )]
    BatchTooLarge {
        batch: usize,
        mib: f64,
        limit_mib: f64,
        max_batch: usize,
    },
    #[error("the model's last layer must be Dense with a sigmoid or softmax activation")]
    NoClassifier,
    #[error("layer '{0}' cannot be compiled: {1}")]
    Unsupported(String, String),
    #[error("GPUCNN_FUSION={0:?} is not understood: set it to off (plan the unfused step) or on")]
    Fusion(String),
    #[error(transparent)]
    Variant(#[from] VariantError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}
