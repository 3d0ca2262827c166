//! `sigmoid_bce` and `softmax_ce`: losses from logits, forward, backward and on-GPU metrics
//! (shaders/sigmoid_bce.wgsl, shaders/softmax_ce.wgsl).
//!
//! The training step needs only `*_backward` (the gradient of the mean loss) and, to report
//! progress without a readback per step, `*_metrics`, which accumulates
//! `[loss_sum, correct, seen]` (3 f32, [`METRICS_LEN`]) on the GPU: clear it at the start of an
//! epoch (`encoder.clear_buffer`), read it when the numbers must reach the user; the epoch's
//! loss is `loss_sum / seen` and its accuracy `correct / seen`. sigmoid_bce counts elements
//! (N·L per batch: per sample when L = 1), softmax_ce counts samples. f32 counts are exact up
//! to 2^24 (16.7M samples). `*_forward` writes the batch's mean loss into a 1-element buffer.
//!
//! Every pass takes optional class weights (Keras' `fit(class_weight=...)`): a buffer of
//! [`weights_len`] f32, sigmoid_bce's `[negative, positive]`, softmax_ce's one per class. Each
//! term's loss and gradient is multiplied by its class's weight and the mean stays over the
//! count (Σ w·l / N, Keras' "sum_over_batch_size"); accuracy counts are never weighted. `None`
//! binds a 1-element placeholder the shader does not read (`Params::weighted` 0).
//!
//! Every pass takes a label smoothing S in [0, 1] ([`LossInput::smoothing`], Keras'
//! `label_smoothing`): the loss and its gradient use sigmoid_bce's y' = y·(1 − S) + S/2 and
//! softmax_ce's y' = (1 − S)·onehot + S/K; class weights and accuracy follow the given labels.
//! S = 0 is bit-identical to the unsmoothed loss.

use bytemuck::{Pod, Zeroable};

use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;

/// Mirrors `struct Params` in shaders/sigmoid_bce.wgsl and shaders/softmax_ce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    /// Samples N.
    pub n: u32,
    /// Labels L (sigmoid_bce) or classes K (softmax_ce).
    pub classes: u32,
    /// 1: multiply each term by its class weight (binding 5); 0: unweighted.
    pub weighted: u32,
    /// Label smoothing S in [0, 1] (0: none).
    pub smoothing: f32,
}

/// Elements of a metrics buffer: `[loss_sum, correct, seen]`.
pub const METRICS_LEN: usize = 3;

/// Invocations per workgroup; a power of two ≤ 256 (the reduction tree's array).
const WG: u32 = 256;

/// f32 a class-weight buffer holds: 2 for sigmoid_bce (`[negative, positive]`, whatever L),
/// K for softmax_ce.
pub fn weights_len(softmax: bool, classes: usize) -> usize {
    if softmax { classes } else { 2 }
}

impl Params {
    fn new(n: usize, classes: usize, weights: Option<&dyn Bind>, smoothing: f32) -> Self {
        assert!(
            n > 0 && classes > 0,
            "empty loss input: N {n}, classes {classes}"
        );
        u32::try_from(n * classes).expect("loss input exceeds u32 elements");
        Self {
            n: n as u32,
            classes: classes as u32,
            weighted: u32::from(weights.is_some()),
            smoothing,
        }
    }
}

/// What every loss pass reads: the logits, the targets, their shape and the class weights.
#[derive(Clone, Copy)]
pub struct LossInput<'a> {
    /// Logits, [N, width] f32.
    pub z: &'a dyn Bind,
    /// sigmoid_bce: [N, L] f32 in {0, 1}; softmax_ce: [N] u32 class indices, each < K.
    pub targets: &'a dyn Bind,
    /// Samples N.
    pub n: usize,
    /// Labels L (sigmoid_bce) or classes K (softmax_ce): the logits' width.
    pub classes: usize,
    /// Class weights ([`weights_len`] f32), or None: unweighted.
    pub weights: Option<&'a dyn Bind>,
    /// Label smoothing S in [0, 1] (Keras' `label_smoothing`; 0: none).
    pub smoothing: f32,
}

/// Pipelines of shaders/sigmoid_bce.wgsl and shaders/softmax_ce.wgsl.
pub struct Loss {
    bce: ShaderFamily,
    ce: ShaderFamily,
    /// Bound as class_weights by the unweighted passes (never read: `weighted` is 0).
    unweighted: wgpu::Buffer,
}

impl Loss {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            bce: ShaderFamily::new(
                ctx,
                "sigmoid_bce",
                include_str!("../../../shaders/sigmoid_bce.wgsl"),
                &[
                    "sigmoid_bce_forward",
                    "sigmoid_bce_backward",
                    "sigmoid_bce_metrics",
                ],
                &[("WG", WG as f64)],
            ),
            ce: ShaderFamily::new(
                ctx,
                "softmax_ce",
                include_str!("../../../shaders/softmax_ce.wgsl"),
                &[
                    "softmax_ce_forward",
                    "softmax_ce_backward",
                    "softmax_ce_metrics",
                ],
                &[("WG", WG as f64)],
            ),
            unweighted: ctx.upload("loss: no class weights", &[1.0f32]),
        }
    }

    /// The class_weights binding of a pass: the given buffer, or the placeholder.
    fn weights<'a>(&'a self, weights: Option<&'a dyn Bind>) -> Option<&'a dyn Bind> {
        Some(weights.unwrap_or(&self.unweighted))
    }

    /// One pass of `family`'s `entry` over `input`, its output `out` bound at binding `slot`
    /// (0: the loss or dz; 3: the metrics), the class weights (or the placeholder) at 5.
    fn pass(
        &self,
        ctx: &GpuContext,
        (family, entry): (&ShaderFamily, &str),
        (slot, out): (usize, &dyn Bind),
        input: &LossInput,
        grid: [u32; 3],
    ) -> Dispatch {
        let LossInput {
            z,
            targets,
            n,
            classes,
            weights,
            smoothing,
        } = *input;
        let p = Params::new(n, classes, weights, smoothing);
        let mut slots = [
            None,
            Some(z),
            Some(targets),
            None,
            None,
            self.weights(weights),
        ];
        slots[slot] = Some(out);
        family.dispatch(ctx, entry, &slots, Some(&p), grid)
    }

    /// Mean binary cross-entropy from logits (writes loss). loss: [1] f32; z (logits),
    /// targets (0 or 1): [N, L] f32; weights: [2] f32 (target 0, target 1) or None.
    pub fn sigmoid_bce_forward(
        &self,
        ctx: &GpuContext,
        loss: &dyn Bind,
        input: &LossInput,
    ) -> Dispatch {
        let entry = (&self.bce, "sigmoid_bce_forward");
        self.pass(ctx, entry, (0, loss), input, [1, 1, 1])
    }

    /// dz = (σ(z) − y')·w[y]/(N·L) (writes dz; y' the smoothed target). dz, z, targets: [N, L] f32.
    pub fn sigmoid_bce_backward(
        &self,
        ctx: &GpuContext,
        dz: &dyn Bind,
        input: &LossInput,
    ) -> Dispatch {
        let grid = grid_1d(groups_for(input.n * input.classes, WG));
        self.pass(
            ctx,
            (&self.bce, "sigmoid_bce_backward"),
            (0, dz),
            input,
            grid,
        )
    }

    /// metrics += [Σ w[y]·BCE, #((z > 0) == (y > 0.5)), N·L] (accumulates). metrics: [3] f32;
    /// z, targets: [N, L] f32.
    pub fn sigmoid_bce_metrics(
        &self,
        ctx: &GpuContext,
        metrics: &dyn Bind,
        input: &LossInput,
    ) -> Dispatch {
        let entry = (&self.bce, "sigmoid_bce_metrics");
        self.pass(ctx, entry, (3, metrics), input, [1, 1, 1])
    }

    /// Mean sparse categorical cross-entropy from logits (writes loss). loss: [1] f32;
    /// z (logits): [N, K] f32; labels: [N] u32, each < K; weights: [K] f32 or None.
    pub fn softmax_ce_forward(
        &self,
        ctx: &GpuContext,
        loss: &dyn Bind,
        input: &LossInput,
    ) -> Dispatch {
        let entry = (&self.ce, "softmax_ce_forward");
        self.pass(ctx, entry, (0, loss), input, [1, 1, 1])
    }

    /// dz = (softmax(z) − y')·w[label]/N (writes dz; y' the smoothed one-hot row). dz, z: [N, K] f32;
    /// labels: [N] u32.
    pub fn softmax_ce_backward(
        &self,
        ctx: &GpuContext,
        dz: &dyn Bind,
        input: &LossInput,
    ) -> Dispatch {
        let grid = grid_1d(groups_for(input.n, WG));
        self.pass(ctx, (&self.ce, "softmax_ce_backward"), (0, dz), input, grid)
    }

    /// metrics += [Σ w[label]·CE, #(argmax z == label), N] (accumulates). metrics: [3] f32;
    /// z: [N, K] f32; labels: [N] u32.
    pub fn softmax_ce_metrics(
        &self,
        ctx: &GpuContext,
        metrics: &dyn Bind,
        input: &LossInput,
    ) -> Dispatch {
        let entry = (&self.ce, "softmax_ce_metrics");
        self.pass(ctx, entry, (3, metrics), input, [1, 1, 1])
    }
}
