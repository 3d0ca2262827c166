//! The graph executor: a model compiled once into a training step of pre-built dispatches.
//!
//! [`TrainStep::new`] plans a step ([`super::schedule`]: every op of forward, loss and backward,
//! naming the tensors it touches, asked of each layer in [`super::layers`]), then decides the
//! micro-batch and the buffer pool ([`super::memory`]: tensors whose lifetimes do not overlap
//! share a buffer). Then buffers, pipelines and bind groups are created, once. A step is one
//! compute pass in one command encoder; nothing is read back unless asked for (loss and
//! accuracy accumulate on the GPU in a 3-float metrics buffer).
//!
//! Parameters live in three flat buffers (see [`super::params`]): weights, biases and batch-
//! norm state; gradients, Adam's m and v mirror the first two. A layer binds its slice of them
//! as a buffer range.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use super::bind::{Env, Kernels, TensorId, range};
use super::liveness::BufferPlan;
use super::memory::{
    self, MemoryReport, binding_slices, check_device_fit, check_tensors_fit, choose_micro_batch,
    pool_plan,
};
use super::params::ParamLayout;
use super::schedule::{Mode, classifier, schedule};
use super::{Activation, Model};
use crate::cpu::augment::AugmentConfig;
use crate::gpu::GpuContext;
use crate::kernels::Dispatch;
use crate::kernels::adam::Moments;
use crate::kernels::variants::Variants;

mod buffers;
mod profile;
mod replica;
mod run;
mod tuning;

pub use super::error::ExecError;
pub use super::memory::MAX_ROWS_PER_DISPATCH;
use buffers::{Sizes, StepBuffers};
pub use profile::{OpTime, Profile};
pub use replica::Exchange;

/// The targets of one batch, as the loss kernels take them.
pub enum BatchTargets<'a> {
    /// Sigmoid outputs: [N, L] in {0, 1}.
    Binary(&'a [f32]),
    /// Softmax outputs: class indices [N].
    Classes(&'a [u32]),
}

/// Options of a compiled step beyond the model and batch size.
#[derive(Debug, Clone, Copy)]
pub struct StepOptions {
    /// Adam's learning rate.
    pub lr: f32,
    /// Force the micro-batch size (`None`: the largest that fits the device).
    pub micro: Option<usize>,
    /// Augment training batches on the GPU (flip / rotation), seeded per step.
    pub augment: Option<AugmentConfig>,
    /// AdamW's decoupled weight decay (Keras' `AdamW(weight_decay=...)`; 0: plain Adam).
    pub weight_decay: f32,
    /// Keras' `kernel_regularizer=regularizers.l2(l2)` on every kernel (conv, dense,
    /// depthwise, pointwise; not biases nor batch-norm γ/β): the penalty l2·Σw² joins the loss
    /// (training and evaluation), its gradient 2·l2·w the kernels' before Adam. 0: none.
    pub l2: f32,
    /// Keras' `label_smoothing` of the cross-entropy (training and evaluation loss; 0: none).
    pub label_smoothing: f32,
}

impl Default for StepOptions {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            micro: None,
            augment: None,
            weight_decay: 0.0,
            l2: 0.0,
            label_smoothing: 0.0,
        }
    }
}

/// A compiled program for one micro-batch size and mode.
struct Program {
    /// The logits tensor and its bytes, for predictions.
    logits: (TensorId, u64),
    dispatches: Vec<Dispatch>,
    /// Indices into `dispatches` of dropout passes, with their (rate, len).
    dropout: Vec<(usize, f32, usize)>,
    /// Gradient/loss accumulation after this micro-batch: writing (first micro-batch) and adding.
    acc_first: Vec<Dispatch>,
    acc_rest: Vec<Dispatch>,
    /// Each planned op's dispatches, with what it is (for the profile).
    ops: Vec<OpSpan>,
    /// The input bytes widened into the f32 input buffer: recorded first when the batch was
    /// uploaded as bytes ([`TrainStep::write_batch_u8`]).
    widen: Dispatch,
}

/// One planned op's share of a program's dispatches.
struct OpSpan {
    layer: Option<usize>,
    what: &'static str,
    flops: u64,
    bytes: u64,
    dispatches: std::ops::Range<usize>,
}

/// A compiled model: training steps and evaluations of up to `batch` samples (see the module
/// doc). Programs for a batch size are built the first time that size runs, then reused.
pub struct TrainStep {
    pub layout: ParamLayout,
    pub batch: usize,
    /// Samples per micro-batch: `batch` unless a tensor of the whole batch would exceed the
    /// device's limits, in which case a batch runs as micro-batches whose gradients are summed
    /// (weighted by their share of the batch) before one Adam update.
    pub micro: usize,
    /// The kernel variants in use.
    pub variants: Variants,
    model: Model,
    kernels: Kernels,
    augment: Option<AugmentConfig>,
    /// Every GPU buffer of the step.
    b: StepBuffers,
    programs: RefCell<HashMap<(Mode, usize, usize), Rc<Program>>>,
    optimizer: Vec<Dispatch>,
    /// Floats per sample as the input layer takes them (evaluation and prediction batches).
    sample_len: usize,
    /// Floats per sample of a training batch: `sample_len`, or more when the augmentation
    /// crops (the batch arrives at the crop's `from` size and the kernel cuts the model's size).
    train_sample_len: usize,
    /// Floats per sample of the batch uploaded last, so that a step can check it gets the
    /// batch its mode expects.
    uploaded_len: Cell<usize>,
    target_per_sample: usize,
    activation: Activation,
    outputs: usize,
    pub memory: MemoryReport,
    seed: Cell<u32>,
    /// The last batch was uploaded as bytes: steps widen it on the GPU first.
    bytes_uploaded: Cell<bool>,
    /// Largest binding, in bytes, of an op over a whole flat buffer (see [`binding_slices`]).
    slice_limit: u64,
    /// The staging buffer of [`Self::read_exchange`], made on first use and kept.
    exchange_staging: RefCell<Option<wgpu::Buffer>>,
}

impl TrainStep {
    /// Compiles `model` for batches of up to `batch` samples with Adam's learning rate `lr`,
    /// split into micro-batches only where the device's limits require it. Parameters start at
    /// zero: load them with [`Self::load_params`].
    pub fn new(ctx: &GpuContext, model: &Model, batch: usize, lr: f32) -> Result<Self, ExecError> {
        Self::with_options(
            ctx,
            model,
            batch,
            &StepOptions {
                lr,
                ..Default::default()
            },
        )
    }

    /// As [`Self::new`], with the micro-batch size forced to `micro` (when `Some`).
    pub fn with_micro_batch(
        ctx: &GpuContext,
        model: &Model,
        batch: usize,
        micro: Option<usize>,
        lr: f32,
    ) -> Result<Self, ExecError> {
        Self::with_options(
            ctx,
            model,
            batch,
            &StepOptions {
                lr,
                micro,
                ..Default::default()
            },
        )
    }

    /// The micro-batch size [`Self::new`] would choose for `batch` on this device (plans
    /// only: compiles nothing, allocates nothing).
    pub fn plan_micro_batch(
        ctx: &GpuContext,
        model: &Model,
        batch: usize,
    ) -> Result<usize, ExecError> {
        Ok(Self::plan_memory(ctx, model, batch)?.0)
    }

    /// The micro-batch size and memory plan [`Self::new`] would use for `batch` on this
    /// device ([`memory::plan_memory`] with its limits and variants).
    pub fn plan_memory(
        ctx: &GpuContext,
        model: &Model,
        batch: usize,
    ) -> Result<(usize, MemoryReport), ExecError> {
        tuning::prepare_tuning(ctx, model, batch);
        memory::plan_memory(model, batch, &ctx.limits, &Variants::for_adapter(ctx)?)
    }

    /// Floating-point operations of one training step of `batch` samples: 2 per multiply-add of
    /// every convolution and dense pass, forward and backward, as the planned ops count them
    /// (batch norm, pooling, activations and Adam are memory-bound and not counted).
    pub fn flops_per_step(&self) -> u64 {
        self.whole_batch_plan().map_or(0, |s| s.pl.flops())
    }

    /// Bytes one training step of `batch` samples reads and writes, as the planned ops
    /// estimate them from shapes (every activation, gradient and weight tensor an op touches,
    /// once per op; see [`super::planner::PlannedOp::bytes`]), plus Adam's update.
    pub fn bytes_per_step(&self) -> u64 {
        self.whole_batch_plan()
            .map_or(0, |s| s.pl.bytes() + self.adam_bytes())
    }

    /// The training step's schedule at the whole batch, which the per-step work counts read.
    /// Planning only, no GPU.
    fn whole_batch_plan(&self) -> Option<super::schedule::Schedule> {
        schedule(
            &self.model,
            &self.variants,
            self.batch,
            Mode::Train,
            self.augment,
        )
        .ok()
    }

    /// Bytes of one Adam update: each trainable parameter, its gradient, m and v read; the
    /// parameter, m and v written.
    pub fn adam_bytes(&self) -> u64 {
        7 * 4 * self.layout.trainable_len as u64
    }

    /// Compiles `model` with [`StepOptions`].
    ///
    /// Semantics of micro-batches: the gradient is the batch mean, as without them; batch norm
    /// normalises each micro-batch with its own statistics and updates its moving statistics
    /// once per micro-batch ("ghost batch norm"); micro-batch i's dropout and augmentation
    /// seeds are `seed + i·0x9E3779B9`.
    pub fn with_options(
        ctx: &GpuContext,
        model: &Model,
        batch: usize,
        opts: &StepOptions,
    ) -> Result<Self, ExecError> {
        let limit = ctx.limits.max_storage_buffer_binding_size;
        Self::compile(ctx, model, batch, opts, limit, false)
    }

    /// A step for inference only ([`Self::predict_logits`]) with images arriving `batch` at a
    /// time: compiled at the micro-batch size the device allows for `batch`, so no buffer of
    /// the whole batch is allocated and any `batch` that one image fits works.
    pub fn for_inference(ctx: &GpuContext, model: &Model, batch: usize) -> Result<Self, ExecError> {
        let limit = ctx.limits.max_storage_buffer_binding_size;
        Self::compile(ctx, model, batch, &StepOptions::default(), limit, true)
    }

    /// [`Self::with_options`], with ops over whole flat buffers (Adam, gradient accumulation)
    /// bound in slices of at most `slice_limit` bytes (the device's binding limit; smaller in
    /// tests, to check that slicing changes nothing). `inference`: compile for batches of one
    /// micro-batch (see [`Self::for_inference`]).
    fn compile(
        ctx: &GpuContext,
        model: &Model,
        batch: usize,
        opts: &StepOptions,
        slice_limit: u64,
        inference: bool,
    ) -> Result<Self, ExecError> {
        assert!(batch > 0, "batch size must be at least 1");
        // First use of this adapter in the CLI: measure the variants (cached; see kernels::tune).
        tuning::prepare_tuning(ctx, model, batch);
        let variants = Variants::for_adapter(ctx)?;
        let (activation, outputs) = classifier(model)?;
        let limit = ctx.limits.max_storage_buffer_binding_size;
        let micro = match opts.micro {
            Some(m) => m.clamp(1, batch),
            None => choose_micro_batch(model, &variants, batch, limit)?,
        };
        let batch = if inference { micro } else { batch };
        check_device_fit(model, batch, micro, &ctx.limits)?;
        let main = schedule(model, &variants, micro, Mode::Train, opts.augment)?;
        check_tensors_fit(&main, limit)?;
        // Memory: transient tensors pooled by liveness, planned at the micro-batch size; every
        // smaller program and every evaluation program fits the same buffers (same tensor ids,
        // smaller sizes, lifetimes within the training ones).
        let plan = pool_plan(&main.pl);
        let scratch = memory::scratch_len(&main, model, &variants, opts.augment)?;
        let memory = memory::memory_report(model, &main, &plan, batch, scratch, &variants)?;
        if memory.mirror_bytes > 0 {
            // One texture per shared mirror, of the size the report counts for it, made before
            // any dispatch is built (rather than grown through smaller ones).
            let each = memory.mirror_bytes / crate::gpu::mirror::SHARED as u64;
            crate::gpu::mirror::reserve_shared(ctx, each);
        }
        let (sample_len, target_per_sample) = memory::sample_sizes(model)?;
        let train_sample_len = match opts.augment.and_then(|a| a.crop) {
            Some(c) => {
                let pixels = c.height * c.width;
                assert_eq!(
                    sample_len % pixels,
                    0,
                    "the crop's size is not the model's input size"
                );
                c.from.0 * c.from.1 * (sample_len / pixels)
            }
            None => sample_len,
        };
        let layout = ParamLayout::new(model);
        let mut kernels = Kernels::new(ctx, &variants)?;
        kernels.adam.hyper.weight_decay = opts.weight_decay as f64;
        kernels.adam.hyper.l2 = opts.l2 as f64;
        kernels.label_smoothing = opts.label_smoothing;
        let sizes = Sizes {
            batch,
            micro,
            // The input buffers hold a training batch and an evaluation one alike.
            sample_len: train_sample_len.max(sample_len),
            target_per_sample,
            scratch,
            class_weights: crate::kernels::loss::weights_len(
                activation == Activation::Softmax,
                outputs,
            ),
            l2: opts.l2 != 0.0,
        };
        let b = StepBuffers::new(ctx, model, &layout, plan, &main, &sizes, opts.lr);
        let opt_grads = b.full.as_ref().map_or(&b.grads, |a| &a.grads);
        let optimizer = optimizer(ctx, &kernels, &layout, &b, opt_grads, slice_limit);
        Ok(Self {
            layout,
            batch,
            micro,
            variants,
            model: model.clone(),
            kernels,
            augment: opts.augment,
            b,
            programs: RefCell::new(HashMap::new()),
            optimizer,
            sample_len,
            train_sample_len,
            uploaded_len: Cell::new(sample_len),
            target_per_sample,
            activation,
            outputs,
            memory,
            seed: Cell::new(0),
            bytes_uploaded: Cell::new(false),
            slice_limit,
            exchange_staging: RefCell::new(None),
        })
    }

    /// The program of `mode` for a micro-batch of `n` samples out of `total` (training
    /// programs weight their gradient by n/total), built on first use.
    fn program(&self, ctx: &GpuContext, mode: Mode, n: usize, total: usize) -> Rc<Program> {
        let key = (mode, n, if mode == Mode::Train { total } else { 0 });
        if let Some(p) = self.programs.borrow().get(&key) {
            return p.clone();
        }
        let sched = schedule(&self.model, &self.variants, n, mode, self.augment)
            .expect("a schedule that compiled at the micro-batch size compiles at a smaller one");
        let pool = BufferPlan {
            buffer_of: self.b.buffer_of.clone(),
            buffer_bytes: self.b.buffers.iter().map(|b| b.size()).collect(),
        };
        if let Err(e) = memory::check_fits_pool(&sched.pl, &pool) {
            panic!("the {mode:?} program of {n} samples does not fit the step's pool: {e}");
        }
        let tensor_bytes: Vec<u64> = sched.pl.tensors.iter().map(|t| t.bytes).collect();
        let env = Env {
            ctx,
            kernels: &self.kernels,
            layout: &self.layout,
            buffers: &self.b.buffers,
            buffer_of: &self.b.buffer_of,
            tensor_bytes: &tensor_bytes,
            params: &self.b.params,
            grads: &self.b.grads,
            saved: &self.b.saved,
            fixed: &self.b.fixed,
        };
        // Each op's dispatches, and where each op's first dispatch lands.
        let mut dispatches = Vec::new();
        let mut first = Vec::with_capacity(sched.pl.ops.len());
        for op in &sched.pl.ops {
            first.push(dispatches.len());
            dispatches.extend((op.build)(&env));
        }
        let mut dropout = Vec::new();
        for d in &sched.pl.dropout {
            let end = first.get(d.op.0 + 1).copied().unwrap_or(dispatches.len());
            dropout.extend((first[d.op.0]..end).map(|i| (i, d.rate, d.len)));
        }
        let (acc_first, acc_rest) = self.accumulation(ctx, mode, n, total);
        let ops = (sched.pl.ops.iter().enumerate())
            .map(|(i, op)| OpSpan {
                layer: op.layer,
                what: op.what,
                flops: op.flops,
                bytes: op.bytes,
                dispatches: first[i]..first.get(i + 1).copied().unwrap_or(dispatches.len()),
            })
            .collect();
        let sample_len = self.mode_sample_len(mode);
        let len = n * sample_len;
        let widen = self.kernels.rescale.forward_u8(
            ctx,
            &range(&self.b.fixed.input, 0, len),
            &self.b.fixed.input_u8,
            len,
            sample_len,
            (1.0, 0.0),
        );
        let p = Rc::new(Program {
            logits: (sched.logits, tensor_bytes[sched.logits]),
            widen,
            dispatches,
            dropout,
            acc_first,
            acc_rest,
            ops,
        });
        self.programs.borrow_mut().insert(key, p.clone());
        p
    }

    /// With micro-batches, a training program adds its gradient and loss into the batch's,
    /// weighted by n/total (each micro-batch's are means over its n samples): the first
    /// micro-batch writes, the rest add.
    fn accumulation(
        &self,
        ctx: &GpuContext,
        mode: Mode,
        n: usize,
        total: usize,
    ) -> (Vec<Dispatch>, Vec<Dispatch>) {
        let (mut acc_first, mut acc_rest) = (Vec::new(), Vec::new());
        if let (Some(a), Mode::Train) = (&self.b.full, mode) {
            let w = n as f32 / total as f32;
            let rescale = &self.kernels.rescale;
            for (dst, src, len) in [
                (&a.grads[0], &self.b.grads[0], self.layout.regions[0].1),
                (&a.grads[1], &self.b.grads[1], self.layout.regions[1].1),
                (&a.loss, &self.b.fixed.loss, 1),
            ] {
                for (at, n) in binding_slices(len, self.slice_limit) {
                    let (dst, src) = (range(dst, at, n), range(src, at, n));
                    acc_first.push(rescale.forward(ctx, &dst, &src, n, w, 0.0));
                    acc_rest.push(rescale.accumulate(ctx, &dst, &src, n, w));
                }
            }
        }
        (acc_first, acc_rest)
    }
}

/// Adam over the weights and biases regions: one step-count dispatch, then the update. A
/// region larger than one binding is updated slice by slice (the update is elementwise, so
/// slices are independent).
fn optimizer(
    ctx: &GpuContext,
    kernels: &Kernels,
    layout: &ParamLayout,
    b: &StepBuffers,
    grads: &[wgpu::Buffer; 2],
    slice_limit: u64,
) -> Vec<Dispatch> {
    let (params, fixed) = (&b.params, &b.fixed);
    let mut ops = vec![kernels.adam.begin_step(ctx, &fixed.adam_state)];
    for (r, (start, len)) in [(0usize, layout.regions[0]), (1, layout.regions[1])] {
        for (at, n) in binding_slices(len, slice_limit) {
            // Kernels live in the weights region only: the biases' update binds no mask.
            let mask = fixed.l2_mask.as_ref().filter(|_| r == 0);
            let mask = mask.map(|b| range(b, at, n));
            ops.push(kernels.adam.update(
                ctx,
                &range(&params[r], at, n),
                Moments {
                    m: &range(&fixed.m, start + at, n),
                    v: &range(&fixed.v, start + at, n),
                },
                &range(&grads[r], at, n),
                &fixed.adam_state,
                mask.as_ref().map(|m| m as &dyn crate::kernels::Bind),
                n,
            ));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_slices_cover_the_buffer_in_aligned_slices_within_the_limit() {
        let align = super::super::params::ALIGN;
        use super::super::memory::binding_slices;
        assert_eq!(binding_slices(0, 1 << 20), vec![]);
        assert_eq!(binding_slices(100, 1 << 20), vec![(0, 100)]);
        // 1000 bytes hold 250 floats: slices of 192 (three ALIGNs), the rest last.
        assert_eq!(
            binding_slices(500, 1000),
            vec![(0, 192), (192, 192), (384, 116)]
        );
        for (at, _) in binding_slices(10_000, 3000) {
            assert_eq!(at % align, 0);
        }
    }

    /// Adam and the micro-batch gradient accumulation bound slice by slice give bit for bit
    /// the parameters of the unsliced step.
    #[test]
    fn slicing_the_flat_buffers_changes_nothing() {
        let Some(ctx) = crate::gpu::test_context() else {
            return;
        };
        let model = crate::step_parity::small_model(2);
        let opts = StepOptions {
            micro: Some(2),
            ..Default::default()
        };
        let whole = ctx.limits.max_storage_buffer_binding_size;
        let run = |slice_limit: u64| {
            let step = TrainStep::compile(&ctx, &model, 5, &opts, slice_limit, false).unwrap();
            step.load_params(&ctx, &step.layout.initial_values(7));
            let x: Vec<f32> = (0..5 * 32 * 32 * 3)
                .map(|i| (i * 37 % 256) as f32)
                .collect();
            let t = [0.0, 1.0, 1.0, 0.0, 1.0];
            for _ in 0..2 {
                step.write_batch(&ctx, &x, BatchTargets::Binary(&t));
                step.run(&ctx).unwrap();
            }
            (step.optimizer.len(), step.read_params(&ctx).unwrap())
        };
        let (n_whole, p_whole) = run(whole);
        let (n_sliced, p_sliced) = run(4096);
        assert!(n_sliced > n_whole + 4, "{n_sliced} vs {n_whole} dispatches");
        assert_eq!(p_whole, p_sliced);
    }
}
