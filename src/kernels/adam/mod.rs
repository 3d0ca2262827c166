//! `adam`: Keras' Adam over one flat parameter buffer (shaders/adam.wgsl).
//!
//! The step count lives on the GPU, in a 16-byte [`AdamState`] buffer `[t, lr, lr_t, _]`:
//! every training step records [`Adam::begin_step`] (one invocation: t += 1 and lr_t for the
//! new t) and then [`Adam::update`], both built once. A step thus needs no host write, no
//! readback and no bind-group rebuild. The host writes the state only to set the learning rate
//! (a schedule may do so before any submit) or to restore t from a checkpoint
//! ([`Adam::write_state`]); it reads it back with the checkpoint.
//!
//! Keras' L2 kernel regularizer (`kernel_regularizer=regularizers.l2(l2)`, `AdamHyper::l2`) is
//! applied here too, with a mask of the regularized elements (1 for a Conv2D, Dense, depthwise
//! or pointwise kernel, 0 for biases and batch-norm γ/β): [`Adam::update`] adds its gradient
//! 2·l2·θ to the loss's (coupled: Adam's moments see it, unlike AdamW's decay), and
//! [`Adam::l2_penalty`] (shaders/l2_penalty.wgsl) adds the penalty l2·Σθ² to the step's loss and
//! metrics. Both are built once; l2 = 0 reads no mask and changes nothing, bit for bit.

use bytemuck::{Pod, Zeroable};

pub use crate::cpu::adam::AdamHyper;
use crate::gpu::GpuContext;
use crate::kernels::{Bind, Dispatch, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;

/// Mirrors `struct Params` in shaders/adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub len: u32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// AdamW's decoupled weight decay (0: plain Adam).
    pub weight_decay: f32,
    /// L2 regularization factor of the masked elements (0: none; the mask is not read).
    pub l2: f32,
    pub _pad: [u32; 2],
}

/// Mirrors `struct Params` in shaders/l2_penalty.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct PenaltyParams {
    pub len: u32,
    pub l2: f32,
    /// Loss terms the metrics count per batch (the penalty is added `count` times to the sum).
    pub count: f32,
    pub _pad: u32,
}

/// Mirrors `struct AdamState` in shaders/adam.wgsl: the optimizer's GPU-resident scalars.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq)]
pub struct AdamState {
    /// Steps taken (0 before the first; adam_begin_step increments it).
    pub t: u32,
    /// Base learning rate.
    pub lr: f32,
    /// Bias-corrected step size of step t (written by adam_begin_step).
    pub lr_t: f32,
    pub _pad: u32,
}

impl AdamState {
    /// The state before the first step, with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Self {
            t: 0,
            lr,
            lr_t: 0.0,
            _pad: 0,
        }
    }
}

const WG: u32 = 64;
const PER_INVOCATION: u32 = 4;

/// Adam's first and second moment estimates m and v (updated in place), named so the two
/// same-typed buffers cannot be swapped.
#[derive(Clone, Copy)]
pub struct Moments<'a> {
    pub m: &'a dyn Bind,
    pub v: &'a dyn Bind,
}

/// Invocations of the penalty's one workgroup (a power of two ≤ 256).
const PENALTY_WG: u32 = 256;

/// Pipelines of shaders/adam.wgsl and shaders/l2_penalty.wgsl, with the optimizer's constants.
pub struct Adam {
    family: ShaderFamily,
    penalty: ShaderFamily,
    /// Bound as l2_mask where no element is regularized (never read: `Params::l2` is 0).
    no_mask: wgpu::Buffer,
    pub hyper: AdamHyper,
}

impl Adam {
    /// Adam with Keras' constants (β1 0.9, β2 0.999, ε 1e-7), no weight decay.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_hyper(ctx, AdamHyper::default())
    }

    /// Adam with the given constants.
    pub fn with_hyper(ctx: &GpuContext, hyper: AdamHyper) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "adam",
                include_str!("../../../shaders/adam.wgsl"),
                &["adam_begin_step", "adam_update"],
                &[("WG", WG as f64)],
            ),
            penalty: ShaderFamily::new(
                ctx,
                "l2_penalty",
                include_str!("../../../shaders/l2_penalty.wgsl"),
                &["l2_penalty"],
                &[("WG", PENALTY_WG as f64)],
            ),
            no_mask: ctx.upload("adam: no l2 mask", &[0.0f32]),
            hyper,
        }
    }

    fn params(&self, len: usize) -> Params {
        Params {
            len: u32::try_from(len).expect("adam: more than u32::MAX parameters"),
            beta1: self.hyper.beta1 as f32,
            beta2: self.hyper.beta2 as f32,
            epsilon: self.hyper.epsilon as f32,
            weight_decay: self.hyper.weight_decay as f32,
            l2: 0.0,
            _pad: [0; 2],
        }
    }

    /// A new state buffer ([`AdamState`], 16 bytes) at t = 0 with learning rate `lr`.
    pub fn new_state(ctx: &GpuContext, lr: f32) -> wgpu::Buffer {
        ctx.upload("adam state", &[AdamState::new(lr)])
    }

    /// Overwrites the state (queued before the next submit): a new learning rate, or t
    /// restored from a checkpoint. Never needed inside the step loop.
    pub fn write_state(ctx: &GpuContext, state: &wgpu::Buffer, s: &AdamState) {
        ctx.queue.write_buffer(state, 0, bytemuck::bytes_of(s));
    }

    /// t += 1 and lr_t for the new t (writes state). state: [`AdamState`].
    pub fn begin_step(&self, ctx: &GpuContext, state: &dyn Bind) -> Dispatch {
        let slots = [None, None, None, None, Some(state)];
        let p = self.params(0);
        self.family
            .dispatch(ctx, "adam_begin_step", &slots, Some(&p), [1, 1, 1])
    }

    /// One Adam update with the state's lr_t (θ, m, v in place). theta, moments, grads: [len]
    /// f32 (flat parameter, moment and gradient buffers, same offsets); state: [`AdamState`];
    /// l2_mask: [len] f32 (1 where `hyper.l2` regularizes the element, 0 elsewhere), or None:
    /// no element is (no L2 term, whatever `hyper.l2`). Record [`Adam::begin_step`] before it
    /// in every step.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &self,
        ctx: &GpuContext,
        theta: &dyn Bind,
        moments: Moments,
        grads: &dyn Bind,
        state: &dyn Bind,
        l2_mask: Option<&dyn Bind>,
        len: usize,
    ) -> Dispatch {
        let Moments { m, v } = moments;
        let bytes = 4 * len as u64;
        let limit = ctx.limits.max_storage_buffer_binding_size;
        assert!(
            bytes <= limit,
            "adam: {len} parameters ({bytes} bytes) exceed this device's storage binding limit \
             of {limit} bytes; update the flat buffer in slices of at most {} parameters",
            limit / 4
        );
        let slots = [
            Some(theta),
            Some(m),
            Some(v),
            Some(grads),
            None,
            Some(state),
            None,
            Some(l2_mask.unwrap_or(&self.no_mask)),
        ];
        let p = Params {
            l2: if l2_mask.is_some() {
                self.hyper.l2 as f32
            } else {
                0.0
            },
            ..self.params(len)
        };
        let grid = grid_1d(groups_for(len, WG * PER_INVOCATION));
        self.family
            .dispatch(ctx, "adam_update", &slots, Some(&p), grid)
    }
}

impl Adam {
    /// loss[0] += l2·Σ mask·θ² and metrics[0] += count·(the same) (accumulates; one
    /// workgroup), with l2 = `hyper.l2`. theta, l2_mask: [len] f32 (the weights region or a
    /// slice of it); metrics: [3] f32 ([`crate::kernels::loss::METRICS_LEN`]); loss: [1] f32;
    /// `count`: the loss terms the metrics count for this batch.
    pub fn l2_penalty(
        &self,
        ctx: &GpuContext,
        (theta, l2_mask): (&dyn Bind, &dyn Bind),
        (metrics, loss): (&dyn Bind, &dyn Bind),
        len: usize,
        count: usize,
    ) -> Dispatch {
        let p = PenaltyParams {
            len: u32::try_from(len).expect("l2_penalty: more than u32::MAX parameters"),
            l2: self.hyper.l2 as f32,
            count: count as f32,
            _pad: 0,
        };
        let slots = [Some(theta), Some(l2_mask), Some(metrics), Some(loss)];
        self.penalty
            .dispatch(ctx, "l2_penalty", &slots, Some(&p), [1, 1, 1])
    }
}
