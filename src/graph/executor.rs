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

use thiserror::Error;

use super::bind::{Env, Fixed, Kernels, TensorId, range};
use super::memory::{
    self, MemoryReport, binding_slices, check_device_fit, check_tensors_fit, choose_micro_batch,
    pool_plan,
};
use super::names::Saved;
use super::params::{ParamLayout, Region};
use super::schedule::{Mode, classifier, schedule};
use super::{Activation, Model};
use crate::cpu::augment::AugmentConfig;
use crate::gpu::{GpuContext, GpuError};
use crate::kernels::Dispatch;
use crate::kernels::adam::Adam;
use crate::kernels::augment::Augment;
use crate::kernels::elementwise;
use crate::kernels::loss::METRICS_LEN;
use crate::kernels::variants::{VariantError, Variants};

pub use super::memory::MAX_ROWS_PER_DISPATCH;

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
    #[error(transparent)]
    Variant(#[from] VariantError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

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
}

impl Default for StepOptions {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            micro: None,
            augment: None,
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
}

/// Buffers of the whole batch when it runs as micro-batches.
struct Accumulated {
    input: wgpu::Buffer,
    targets: wgpu::Buffer,
    /// Gradients summed over the micro-batches (what Adam reads).
    grads: [wgpu::Buffer; 2],
    loss: wgpu::Buffer,
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
    /// The pooled buffers, and which one holds each planned tensor.
    buffers: Vec<wgpu::Buffer>,
    buffer_of: Vec<usize>,
    params: [wgpu::Buffer; 3],
    grads: [wgpu::Buffer; 2],
    saved: HashMap<(usize, Saved), wgpu::Buffer>,
    fixed: Fixed,
    /// Present when a batch may be split into micro-batches.
    full: Option<Accumulated>,
    programs: RefCell<HashMap<(Mode, usize, usize), Rc<Program>>>,
    optimizer: Vec<Dispatch>,
    sample_len: usize,
    target_per_sample: usize,
    activation: Activation,
    outputs: usize,
    pub memory: MemoryReport,
    seed: Cell<u32>,
    /// Largest binding, in bytes, of an op over a whole flat buffer (see [`binding_slices`]).
    slice_limit: u64,
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
                augment: None,
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
        memory::plan_memory(model, batch, &ctx.limits, &Variants::for_adapter(ctx)?)
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
        let scratch = memory::scratch_len(model, &variants, micro, opts.augment)?;
        let memory = memory::memory_report(model, &main, &plan, batch, scratch)?;
        let (sample_len, target_per_sample) = memory::sample_sizes(model)?;
        let layout = ParamLayout::new(model);
        let kernels = Kernels::new(ctx, &variants);
        let buffers = plan
            .buffer_bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("pool {i}")),
                    size: b,
                    usage: crate::gpu::storage_usage(),
                    mapped_at_creation: false,
                })
            })
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
            input: ctx.zeros("input micro-batch", micro * sample_len),
            targets: ctx.zeros("targets micro-batch", micro * target_per_sample),
            loss: ctx.zeros("loss", 1),
            metrics: ctx.zeros("metrics", METRICS_LEN),
            scratch: ctx.zeros("scratch", scratch),
            adam_state: Adam::new_state(ctx, opts.lr),
            aug_seed: Augment::seed_buffer(ctx, 0),
            m: ctx.zeros("adam m", layout.trainable_len),
            v: ctx.zeros("adam v", layout.trainable_len),
        };
        let full = (batch > micro).then(|| Accumulated {
            input: ctx.zeros("input batch", batch * sample_len),
            targets: ctx.zeros("targets batch", batch * target_per_sample),
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
        let opt_grads = full.as_ref().map_or(&grads, |a| &a.grads);
        let optimizer = optimizer(
            ctx,
            &kernels,
            &layout,
            &params,
            opt_grads,
            &fixed,
            slice_limit,
        );
        Ok(Self {
            layout,
            batch,
            micro,
            variants,
            model: model.clone(),
            kernels,
            augment: opts.augment,
            buffers,
            buffer_of: plan.buffer_of,
            params,
            grads,
            saved,
            fixed,
            full,
            programs: RefCell::new(HashMap::new()),
            optimizer,
            sample_len,
            target_per_sample,
            activation,
            outputs,
            memory,
            seed: Cell::new(0),
            slice_limit,
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
        let tensor_bytes: Vec<u64> = sched.pl.tensors.iter().map(|t| t.bytes).collect();
        let env = Env {
            ctx,
            kernels: &self.kernels,
            layout: &self.layout,
            buffers: &self.buffers,
            buffer_of: &self.buffer_of,
            tensor_bytes: &tensor_bytes,
            params: &self.params,
            grads: &self.grads,
            saved: &self.saved,
            fixed: &self.fixed,
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
        let p = Rc::new(Program {
            logits: (sched.logits, tensor_bytes[sched.logits]),
            dispatches,
            dropout,
            acc_first,
            acc_rest,
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
        if let (Some(a), Mode::Train) = (&self.full, mode) {
            let w = n as f32 / total as f32;
            let rescale = &self.kernels.rescale;
            for (dst, src, len) in [
                (&a.grads[0], &self.grads[0], self.layout.regions[0].1),
                (&a.grads[1], &self.grads[1], self.layout.regions[1].1),
                (&a.loss, &self.fixed.loss, 1),
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

    /// Writes all parameters (flat, in [`ParamLayout`] order, `layout.total_len` values).
    pub fn load_params(&self, ctx: &GpuContext, values: &[f32]) {
        assert_eq!(
            values.len(),
            self.layout.total_len,
            "parameter vector length"
        );
        for r in Region::ALL {
            let (start, len) = self.layout.regions[r as usize];
            if len > 0 {
                ctx.queue.write_buffer(
                    &self.params[r as usize],
                    0,
                    bytemuck::cast_slice(&values[start..start + len]),
                );
            }
        }
    }

    /// Reads all parameters back (flat, in layout order).
    pub fn read_params(&self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        let mut out = vec![0.0; self.layout.total_len];
        for r in Region::ALL {
            let (start, len) = self.layout.regions[r as usize];
            if len > 0 {
                out[start..start + len].copy_from_slice(&ctx.read_range::<f32>(
                    &self.params[r as usize],
                    0,
                    (len * 4) as u64,
                )?);
            }
        }
        Ok(out)
    }

    /// Reads the last step's gradients back (flat, in layout order; zeros for the BN state).
    /// With micro-batches, the batch-mean gradient that Adam used.
    pub fn read_grads(&self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        let grads = self.full.as_ref().map_or(&self.grads, |a| &a.grads);
        let mut out = vec![0.0; self.layout.total_len];
        for r in [Region::Weights, Region::Biases] {
            let (start, len) = self.layout.regions[r as usize];
            if len > 0 {
                out[start..start + len].copy_from_slice(&ctx.read_range::<f32>(
                    &grads[r as usize],
                    0,
                    (len * 4) as u64,
                )?);
            }
        }
        Ok(out)
    }

    /// Adam's state: (step count t, m, v), m and v flat over the trainable prefix.
    pub fn read_optimizer(&self, ctx: &GpuContext) -> Result<(u32, Vec<f32>, Vec<f32>), GpuError> {
        let state: Vec<u32> = ctx.read(&self.fixed.adam_state)?;
        Ok((state[0], ctx.read(&self.fixed.m)?, ctx.read(&self.fixed.v)?))
    }

    /// Restores Adam's state (for `--resume`): step count `t`, learning rate, m and v.
    pub fn load_optimizer(&self, ctx: &GpuContext, t: u32, lr: f32, m: &[f32], v: &[f32]) {
        assert_eq!(m.len(), self.layout.trainable_len, "Adam m length");
        assert_eq!(v.len(), self.layout.trainable_len, "Adam v length");
        let mut s = crate::kernels::adam::AdamState::new(lr);
        s.t = t;
        Adam::write_state(ctx, &self.fixed.adam_state, &s);
        ctx.queue
            .write_buffer(&self.fixed.m, 0, bytemuck::cast_slice(m));
        ctx.queue
            .write_buffer(&self.fixed.v, 0, bytemuck::cast_slice(v));
    }

    /// Uploads a batch of up to `batch` samples: `x` [n, H, W, C] as the input layer takes it
    /// (or as the augmentation takes it), and its targets. Returns n.
    pub fn write_batch(&self, ctx: &GpuContext, x: &[f32], targets: BatchTargets) -> usize {
        let n = x.len() / self.sample_len;
        assert!(
            n > 0 && n <= self.batch && n * self.sample_len == x.len(),
            "input batch length"
        );
        let (input, target_buf) = match &self.full {
            Some(a) => (&a.input, &a.targets),
            None => (&self.fixed.input, &self.fixed.targets),
        };
        ctx.queue.write_buffer(input, 0, bytemuck::cast_slice(x));
        let bytes: &[u8] = match (targets, self.activation) {
            (BatchTargets::Binary(t), Activation::Sigmoid) => {
                assert_eq!(t.len(), n * self.target_per_sample, "targets length");
                bytemuck::cast_slice(t)
            }
            (BatchTargets::Classes(t), Activation::Softmax) => {
                assert_eq!(t.len(), n, "labels length");
                bytemuck::cast_slice(t)
            }
            _ => panic!("targets do not match the model's output activation"),
        };
        ctx.queue.write_buffer(target_buf, 0, bytes);
        n
    }

    /// Sets the dropout and augmentation seed of the next step (micro-batch i uses
    /// `seed + i·0x9E3779B9`).
    pub fn set_dropout_seed(&self, _ctx: &GpuContext, seed: u32) {
        self.seed.set(seed);
    }

    /// Submits one training step on the first `n` uploaded samples — forward, loss, backward,
    /// Adam — without waiting: one command encoder, or one per micro-batch when the batch is
    /// split (each with its own seeds).
    pub fn submit(&self, ctx: &GpuContext, n: usize) {
        self.submit_mode(ctx, Mode::Train, n);
    }

    /// Submits an evaluation of the first `n` uploaded samples: forward with the moving
    /// statistics and no dropout, loss, metrics accumulated. No update.
    pub fn submit_eval(&self, ctx: &GpuContext, n: usize) {
        self.submit_mode(ctx, Mode::Eval, n);
    }

    fn submit_mode(&self, ctx: &GpuContext, mode: Mode, n: usize) {
        assert!(
            n > 0 && n <= self.batch,
            "{n} samples with a step compiled for up to {}",
            self.batch
        );
        let count = n.div_ceil(self.micro);
        for i in 0..count {
            let size = self.micro.min(n - i * self.micro);
            let program = self.program(ctx, mode, size, n);
            let seed = self
                .seed
                .get()
                .wrapping_add((i as u32).wrapping_mul(0x9E37_79B9));
            if mode == Mode::Train {
                for &(d, rate, len) in &program.dropout {
                    program.dispatches[d]
                        .write_params(ctx, &elementwise::Params::dropout(len, seed, rate));
                }
                if self.augment.is_some() {
                    Augment::write_seed(ctx, &self.fixed.aug_seed, seed);
                }
            }
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                });
            if let Some(a) = &self.full {
                let at = (i * self.micro) as u64;
                let x_bytes = (self.sample_len * 4) as u64;
                let t_bytes = (self.target_per_sample * 4) as u64;
                enc.copy_buffer_to_buffer(
                    &a.input,
                    at * x_bytes,
                    &self.fixed.input,
                    0,
                    size as u64 * x_bytes,
                );
                enc.copy_buffer_to_buffer(
                    &a.targets,
                    at * t_bytes,
                    &self.fixed.targets,
                    0,
                    size as u64 * t_bytes,
                );
            }
            let acc = if i == 0 {
                &program.acc_first
            } else {
                &program.acc_rest
            };
            let mut refs: Vec<&Dispatch> = program.dispatches.iter().chain(acc).collect();
            if mode == Mode::Train && i + 1 == count {
                refs.extend(&self.optimizer);
            }
            crate::kernels::record_all(&mut enc, &refs);
            ctx.queue.submit([enc.finish()]);
        }
    }

    /// Runs one training step on a full uploaded batch and waits for it (no readback).
    pub fn run(&self, ctx: &GpuContext) -> Result<(), GpuError> {
        self.checked(ctx, |s| s.submit(ctx, s.batch))
    }

    /// Runs an evaluation of `n` uploaded samples and waits for it.
    pub fn run_eval(&self, ctx: &GpuContext, n: usize) -> Result<(), GpuError> {
        self.checked(ctx, |s| s.submit_eval(ctx, n))
    }

    /// Runs `f`, waits for the GPU, and turns a validation error into an `Err`.
    pub fn checked(&self, ctx: &GpuContext, f: impl FnOnce(&Self)) -> Result<(), GpuError> {
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        f(self);
        ctx.wait()?;
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation(e.to_string()));
        }
        Ok(())
    }

    /// The last step's mean loss (a readback: call it when a number must reach the user).
    pub fn read_loss(&self, ctx: &GpuContext) -> Result<f32, GpuError> {
        let loss = self.full.as_ref().map_or(&self.fixed.loss, |a| &a.loss);
        Ok(ctx.read::<f32>(loss)?[0])
    }

    /// [loss_sum, correct, seen] accumulated since the last [`Self::reset_metrics`] (training
    /// and evaluation runs alike; sigmoid outputs count labels, softmax outputs samples).
    pub fn read_metrics(&self, ctx: &GpuContext) -> Result<[f32; 3], GpuError> {
        let v = ctx.read::<f32>(&self.fixed.metrics)?;
        Ok([v[0], v[1], v[2]])
    }

    /// Clears the accumulated metrics.
    pub fn reset_metrics(&self, ctx: &GpuContext) {
        ctx.queue.write_buffer(
            &self.fixed.metrics,
            0,
            bytemuck::cast_slice(&[0.0f32; METRICS_LEN]),
        );
    }

    /// The model's outputs (logits, [n, outputs]) for the images `x` ([n, H, W, C] as the
    /// input layer takes them), in evaluation mode, any n: it runs micro-batch by micro-batch
    /// and reads each one's logits back. The uploaded batch is overwritten.
    pub fn predict_logits(&self, ctx: &GpuContext, x: &[f32]) -> Result<Vec<f32>, GpuError> {
        assert_eq!(x.len() % self.sample_len, 0, "input length");
        let mut out = Vec::with_capacity(x.len() / self.sample_len * self.outputs);
        for chunk in x.chunks(self.micro * self.sample_len) {
            let n = chunk.len() / self.sample_len;
            ctx.queue
                .write_buffer(&self.fixed.input, 0, bytemuck::cast_slice(chunk));
            // The loss needs targets; class 0 / label 0 are valid for every model.
            let zeros = vec![0u32; n * self.target_per_sample];
            ctx.queue
                .write_buffer(&self.fixed.targets, 0, bytemuck::cast_slice(&zeros));
            let program = self.program(ctx, Mode::Eval, n, 0);
            let refs: Vec<&Dispatch> = program.dispatches.iter().collect();
            crate::kernels::run_all(ctx, &refs)?;
            let (t, bytes) = program.logits;
            out.extend(ctx.read_range::<f32>(&self.buffers[self.buffer_of[t]], 0, bytes)?);
        }
        Ok(out)
    }

    /// Number of dispatches in one training step of a full batch (all micro-batches).
    pub fn dispatch_count(&self, ctx: &GpuContext) -> usize {
        let count = self.batch.div_ceil(self.micro);
        (0..count)
            .map(|i| {
                let size = self.micro.min(self.batch - i * self.micro);
                let p = self.program(ctx, Mode::Train, size, self.batch);
                p.dispatches.len() + p.acc_rest.len()
            })
            .sum::<usize>()
            + self.optimizer.len()
    }
}

/// Adam over the weights and biases regions: one step-count dispatch, then the update. A
/// region larger than one binding is updated slice by slice (the update is elementwise, so
/// slices are independent).
fn optimizer(
    ctx: &GpuContext,
    kernels: &Kernels,
    layout: &ParamLayout,
    params: &[wgpu::Buffer; 3],
    grads: &[wgpu::Buffer; 2],
    fixed: &Fixed,
    slice_limit: u64,
) -> Vec<Dispatch> {
    let mut ops = vec![kernels.adam.begin_step(ctx, &fixed.adam_state)];
    for (r, (start, len)) in [(0usize, layout.regions[0]), (1, layout.regions[1])] {
        for (at, n) in binding_slices(len, slice_limit) {
            ops.push(kernels.adam.update(
                ctx,
                &range(&params[r], at, n),
                &range(&fixed.m, start + at, n),
                &range(&fixed.v, start + at, n),
                &range(&grads[r], at, n),
                &fixed.adam_state,
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
        let model = super::super::parity::small_model(2);
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
