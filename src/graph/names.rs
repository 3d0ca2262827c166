//! Typed names of a layer's parameters and of the tensors its backward pass needs from its
//! forward pass, shared by the GPU plan and the CPU reference (no string lookups).

/// A parameter of a layer; [`Param::keras_name`] is its Keras weight name, which checkpoints
/// and summaries show (`conv2d/kernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    Kernel,
    Bias,
    DepthwiseKernel,
    PointwiseKernel,
    Gamma,
    Beta,
    MovingMean,
    MovingVariance,
}

impl Param {
    /// The Keras weight name.
    pub fn keras_name(self) -> &'static str {
        match self {
            Param::Kernel => "kernel",
            Param::Bias => "bias",
            Param::DepthwiseKernel => "depthwise_kernel",
            Param::PointwiseKernel => "pointwise_kernel",
            Param::Gamma => "gamma",
            Param::Beta => "beta",
            Param::MovingMean => "moving_mean",
            Param::MovingVariance => "moving_variance",
        }
    }

    /// Whether the parameter lives in the biases region: a layer's backward writes its kernel
    /// (or γ) gradient and its bias (or β) gradient in one dispatch, so the two must be in
    /// different buffers (see [`super::params`]).
    pub fn is_bias(self) -> bool {
        matches!(self, Param::Bias | Param::Beta)
    }
}

/// What a layer's forward pass keeps for its backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Saved {
    /// Batch norm: the batch mean per channel.
    Mean,
    /// Batch norm: 1/√(var + ε) per channel.
    InvStd,
    /// Max pooling: the flat input index of each output's maximum.
    Argmax,
    /// Separable convolution: the depthwise output (the pointwise input).
    Depthwise,
}

impl Saved {
    /// A short name for buffer labels and messages.
    pub fn name(self) -> &'static str {
        match self {
            Saved::Mean => "mean",
            Saved::InvStd => "inv_std",
            Saved::Argmax => "argmax",
            Saved::Depthwise => "depthwise",
        }
    }
}
