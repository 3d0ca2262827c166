//! The GPU buffers of a compiled step: the pool (transient tensors, shared by liveness), the
//! flat parameters and gradients, the buffers saved from forward to backward, and the fixed
//! ones (input, targets, loss, metrics, scratch, Adam's state).

use std::collections::HashMap;

use crate::gpu::GpuContext;
use crate::graph::Model;
use crate::graph::bind::Fixed;
use crate::graph::liveness::BufferPlan;
use crate::graph::names::Saved;
use crate::graph::params::{ParamLayout, Region};
use crate::graph::schedule::Schedule;
use crate::kernels::adam::Adam;
use crate::kernels::augment::Augment;
use crate::kernels::loss::METRICS_LEN;
use crate::kernels::rescale::u8_stride;

/// 4-byte words one sample takes as packed bytes.
pub(super) fn u8_words(sample_len: usize) -> usize {
    u8_stride(sample_len) / 4
}

/// Buffers of the whole batch when it runs as micro-batches.
pub(super) struct Accumulated {
    pub input: wgpu::Buffer,
    /// The whole batch as bytes, when uploaded so.
    pub input_u8: wgpu::Buffer,
    pub targets: wgpu::Buffer,
    /// Gradients summed over the micro-batches (what Adam reads).
    pub grads: [wgpu::Buffer; 2],
    pub loss: wgpu::Buffer,
}

/// The sizes the fixed buffers are made for.
pub(super) struct Sizes {
    pub batch: usize,
    pub micro: usize,
    /// Floats per sample of the input and of the targets.
    pub sample_len: usize,
    pub target_per_sample: usize,
    /// Floats of the shared scratch.
    pub scratch: usize,
    /// Floats of the class weights ([`crate::kernels::loss::weights_len`]).
    pub class_weights: usize,
    /// Whether an L2 regularizer needs the kernel mask.
    pub l2: bool,
}

/// Every GPU buffer of a step.
pub(super) struct StepBuffers {
    /// The pooled buffers, and which one holds each planned tensor.
    pub buffers: Vec<wgpu::Buffer>,
    pub buffer_of: Vec<usize>,
    pub params: [wgpu::Buffer; 3],
    pub grads: [wgpu::Buffer; 2],
    pub saved: HashMap<(usize, Saved), wgpu::Buffer>,
    pub fixed: Fixed,
    /// Present when a batch may be split into micro-batches.
    pub full: Option<Accumulated>,
}

impl StepBuffers {
    /// Allocates the step's buffers (all zero) for the pool `plan` of the schedule `main`.
    pub fn new(
        ctx: &GpuContext,
        model: &Model,
        layout: &ParamLayout,
        plan: BufferPlan,
        main: &Schedule,
        s: &Sizes,
        lr: f32,
    ) -> Self {
        let buffers = plan
            .buffer_bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| ctx.storage_buffer(&format!("pool {i}"), b, &[]))
            .collect();
        let region = |r: Region| layout.regions[r as usize].1;
        let params = [
            ctx.zeros("params: weights", region(Region::Weights)),
            ctx.zeros("params: biases", region(Region::Biases)),
            ctx.zeros("params: batch-norm state", region(Region::State)),
        ];
        let grads = [
            ctx.zeros("grads: weights", region(Region::Weights)),
            ctx.zeros("grads: biases", region(Region::Biases)),
        ];
        let fixed = Fixed {
            input: ctx.zeros("input micro-batch", s.micro * s.sample_len),
            input_u8: ctx.zeros("input micro-batch (u8)", s.micro * u8_words(s.sample_len)),
            targets: ctx.zeros("targets micro-batch", s.micro * s.target_per_sample),
            loss: ctx.zeros("loss", 1),
            metrics: ctx.zeros("metrics", METRICS_LEN),
            // 1.0: an unweighted loss until TrainStep::set_class_weights says otherwise.
            class_weights: ctx.upload("class weights", &vec![1.0f32; s.class_weights]),
            scratch: ctx.zeros("scratch", s.scratch),
            adam_state: Adam::new_state(ctx, lr),
            aug_seed: Augment::seed_buffer(ctx, 0),
            m: ctx.zeros("adam m", layout.trainable_len),
            v: ctx.zeros("adam v", layout.trainable_len),
            l2_mask: s.l2.then(|| ctx.upload("l2 mask", &layout.l2_mask())),
        };
        let full = (s.batch > s.micro).then(|| Accumulated {
            input: ctx.zeros("input batch", s.batch * s.sample_len),
            input_u8: ctx.zeros("input batch (u8)", s.batch * u8_words(s.sample_len)),
            targets: ctx.zeros("targets batch", s.batch * s.target_per_sample),
            grads: [
                ctx.zeros("summed grads: weights", region(Region::Weights)),
                ctx.zeros("summed grads: biases", region(Region::Biases)),
            ],
            loss: ctx.zeros("summed loss", 1),
        });
        let saved = main
            .pl
            .saved
            .iter()
            .map(|&((li, what), len)| {
                let label = format!("{} {}", model.layers[li].name, what.name());
                ((li, what), ctx.zeros(&label, len))
            })
            .collect();
        Self {
            buffers,
            buffer_of: plan.buffer_of,
            params,
            grads,
            saved,
            fixed,
            full,
        }
    }
}
