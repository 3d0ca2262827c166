//! What a planned op binds when it is built into dispatches: the compiled kernels, the pooled
//! tensors, the parameter, gradient and saved buffers.

use std::collections::HashMap;
use std::sync::Arc;

use super::names::{Param, Saved};
use super::params::{ParamLayout, Region};
use crate::gpu::GpuContext;
use crate::kernels::adam::Adam;
use crate::kernels::augment::Augment;
use crate::kernels::augment_color::AugmentColor;
use crate::kernels::batch_norm::BatchNorm;
use crate::kernels::conv2d::Conv2d;
use crate::kernels::dense::Dense;
use crate::kernels::depthwise_conv2d::DepthwiseConv2d;
use crate::kernels::elementwise::Elementwise;
use crate::kernels::gemm::Gemm;
use crate::kernels::loss::Loss;
use crate::kernels::pointwise_conv2d::PointwiseConv2d;
use crate::kernels::pool::Pool;
use crate::kernels::relu::Relu;
use crate::kernels::rescale::Rescale;
use crate::kernels::variants::{VariantError, Variants};
use crate::kernels::{Bind, BufferRange};

/// Index of a planned (pooled) tensor of one program.
pub type TensorId = usize;

/// One kernel object per family, shared by all layers (pipelines compiled once).
pub(crate) struct Kernels {
    pub conv: Conv2d,
    pub depthwise: DepthwiseConv2d,
    pub pointwise: PointwiseConv2d,
    pub dense: Dense,
    pub bn: BatchNorm,
    pub relu: Relu,
    pub pooling: Pool,
    pub ew: Elementwise,
    pub loss: Loss,
    pub adam: Adam,
    pub rescale: Rescale,
    pub augment: Augment,
    /// Keras' `label_smoothing` of the loss passes (0: none; see [`crate::kernels::loss`]).
    pub label_smoothing: f32,
    pub augment_color: AugmentColor,
}

impl Kernels {
    /// Compiles every family with the variants `v`; an error names what the device lacks
    /// for a variant it cannot run.
    pub fn new(ctx: &GpuContext, v: &Variants) -> Result<Self, VariantError> {
        let gemm = Arc::new(Gemm::new(ctx));
        Ok(Self {
            conv: Conv2d::with_variant(ctx, v.conv2d)?,
            depthwise: DepthwiseConv2d::with_variant(ctx, 3, v.depthwise_conv2d)?,
            pointwise: PointwiseConv2d::with_gemm(gemm.clone(), v.gemm)?,
            dense: Dense::with_gemm(gemm, v.gemm)?,
            bn: BatchNorm::with_variant(ctx, v.batch_norm),
            relu: Relu::new(ctx),
            // The pools read through texture mirrors where the depthwise convolutions do:
            // the same trait of the adapter decides both.
            pooling: Pool::with_mirrors(
                ctx,
                v.depthwise_conv2d == crate::kernels::depthwise_conv2d::Variant::Texture,
            ),
            ew: Elementwise::new(ctx),
            loss: Loss::new(ctx),
            adam: Adam::new(ctx),
            rescale: Rescale::new(ctx),
            augment: Augment::new(ctx),
            label_smoothing: 0.0,
            augment_color: AugmentColor::new(ctx),
        })
    }
}

/// Buffers that are not pooled.
pub(crate) struct Fixed {
    pub input: wgpu::Buffer,
    /// The micro-batch's input as bytes ([`crate::kernels::rescale::pack_u8`]'s layout), widened
    /// into `input` on the GPU when a batch was uploaded as bytes.
    pub input_u8: wgpu::Buffer,
    pub targets: wgpu::Buffer,
    pub loss: wgpu::Buffer,
    pub metrics: wgpu::Buffer,
    /// The training loss's class weights ([`crate::kernels::loss::weights_len`] f32, 1.0
    /// unless set: Keras' `class_weight`).
    pub class_weights: wgpu::Buffer,
    pub scratch: wgpu::Buffer,
    pub adam_state: wgpu::Buffer,
    pub aug_seed: wgpu::Buffer,
    pub m: wgpu::Buffer,
    pub v: wgpu::Buffer,
    /// With an L2 regularizer: 1.0 over each kernel's elements of the weights region, 0.0
    /// elsewhere (batch-norm γ, padding), as Adam and the penalty read it
    /// ([`crate::graph::ParamLayout::l2_mask`]); None without one.
    pub l2_mask: Option<wgpu::Buffer>,
}

/// Everything a planned op's builder can bind.
pub(crate) struct Env<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
    pub layout: &'a ParamLayout,
    /// The pooled buffers, and which one holds each tensor.
    pub buffers: &'a [wgpu::Buffer],
    pub buffer_of: &'a [usize],
    /// Each tensor's size in bytes.
    pub tensor_bytes: &'a [u64],
    pub params: &'a [wgpu::Buffer; 3],
    pub grads: &'a [wgpu::Buffer; 2],
    pub saved: &'a HashMap<(usize, Saved), wgpu::Buffer>,
    pub fixed: &'a Fixed,
}

impl Env<'_> {
    /// A pooled tensor.
    pub fn tensor(&self, id: TensorId) -> BufferRange<'_> {
        BufferRange {
            buffer: &self.buffers[self.buffer_of[id]],
            offset: 0,
            size: self.tensor_bytes[id],
        }
    }

    fn slot(&self, layer: usize, p: Param) -> (Region, u64, u64) {
        let s = self
            .layout
            .find(layer, p)
            .unwrap_or_else(|| panic!("layer {layer} has no {}", p.keras_name()));
        let start = self.layout.regions[s.region as usize].0;
        (
            s.region,
            ((s.offset - start) * 4) as u64,
            (s.len * 4) as u64,
        )
    }

    /// A parameter's range in its region's buffer.
    pub fn param(&self, layer: usize, p: Param) -> BufferRange<'_> {
        let (r, offset, size) = self.slot(layer, p);
        BufferRange {
            buffer: &self.params[r as usize],
            offset,
            size,
        }
    }

    /// A trainable parameter's gradient range.
    pub fn grad(&self, layer: usize, p: Param) -> BufferRange<'_> {
        let (r, offset, size) = self.slot(layer, p);
        BufferRange {
            buffer: &self.grads[r as usize],
            offset,
            size,
        }
    }

    /// A buffer the forward pass saved for the backward pass.
    pub fn saved(&self, layer: usize, what: Saved) -> &wgpu::Buffer {
        &self.saved[&(layer, what)]
    }

    /// The shared scratch buffer, or None when an op needs none.
    pub fn scratch(&self, len: usize) -> Option<&dyn Bind> {
        (len > 0).then_some(&self.fixed.scratch as &dyn Bind)
    }

    /// A layer's input: a pooled tensor, or the fixed input buffer for the input layer.
    pub fn input(&self, x: Option<TensorId>) -> Box<dyn Bind + '_> {
        match x {
            Some(t) => Box::new(self.tensor(t)),
            None => Box::new(BufferRange {
                buffer: &self.fixed.input,
                offset: 0,
                size: self.fixed.input.size(),
            }),
        }
    }
}

/// `len` f32 of `b` from element `at`.
pub(crate) fn range(b: &wgpu::Buffer, at: usize, len: usize) -> BufferRange<'_> {
    BufferRange {
        buffer: b,
        offset: (at * 4) as u64,
        size: (len.max(1) * 4) as u64,
    }
}
