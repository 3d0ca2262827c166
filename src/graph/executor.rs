//! The graph executor: a model compiled once into a training step of pre-built dispatches.
//!
//! [`TrainStep::new`] walks the model once and schedules every op of a step — forward, loss,
//! backward in reverse order (gradients add up where a tensor fans out), Adam — as a list of
//! planned ops that name the tensors they touch. From that list each transient tensor's
//! lifetime is known; [`super::pool::plan_buffers`] gives tensors whose lifetimes do not
//! overlap the same buffer. Then buffers, pipelines and bind groups are created, once. A step
//! is one compute pass in one command encoder; nothing is read back unless asked for (loss
//! and accuracy accumulate on the GPU in a 3-float metrics buffer).
//!
//! Parameters live in three flat buffers (see [`super::params`]): weights, biases and batch-
//! norm state; gradients, Adam's m and v mirror the first two. A layer binds its slice of them
//! as a buffer range.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use thiserror::Error;

use super::params::{ParamLayout, Region};
use super::pool::{BufferPlan, Lifetime, plan_buffers};
use super::{Activation, LayerKind, Model, Shape};
use crate::cpu::augment::AugmentConfig;
use crate::cpu::conv2d::Conv2dShape;
use crate::cpu::depthwise_conv2d::DepthwiseShape;
use crate::cpu::pool::Pool2d;
use crate::gpu::{GpuContext, GpuError};
use crate::kernels::adam::Adam;
use crate::kernels::augment::Augment;
use crate::kernels::batch_norm::{BatchNorm, BnShape};
use crate::kernels::conv2d::Conv2d;
use crate::kernels::dense::Dense;
use crate::kernels::depthwise_conv2d::DepthwiseConv2d;
use crate::kernels::elementwise::{self, Elementwise};
use crate::kernels::gemm::Gemm;
use crate::kernels::loss::{Loss, METRICS_LEN};
use crate::kernels::pointwise_conv2d::{PointwiseConv2d, PointwiseShape};
use crate::kernels::pool::{Pool, max_pool2d_argmax_len};
use crate::kernels::relu::Relu;
use crate::kernels::rescale::Rescale;
use crate::kernels::variants::{VariantError, Variants};
use crate::kernels::{Bind, BufferRange, Dispatch};

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

/// One kernel object per family, shared by all layers (pipelines compiled once).
struct Kernels {
    conv: Conv2d,
    depthwise: DepthwiseConv2d,
    pointwise: PointwiseConv2d,
    dense: Dense,
    bn: BatchNorm,
    relu: Relu,
    pool: Pool,
    ew: Elementwise,
    loss: Loss,
    adam: Adam,
    rescale: Rescale,
    augment: Augment,
}

impl Kernels {
    fn new(ctx: &GpuContext, v: &Variants) -> Self {
        let gemm = Arc::new(Gemm::new(ctx));
        Self {
            conv: Conv2d::with_variant(ctx, v.conv2d),
            depthwise: DepthwiseConv2d::new(ctx),
            pointwise: PointwiseConv2d::with_gemm(gemm.clone(), v.gemm),
            dense: Dense::with_gemm(gemm, v.gemm),
            bn: BatchNorm::with_variant(ctx, v.batch_norm),
            relu: Relu::new(ctx),
            pool: Pool::new(ctx),
            ew: Elementwise::new(ctx),
            loss: Loss::new(ctx),
            adam: Adam::new(ctx),
            rescale: Rescale::new(ctx),
            augment: Augment::new(ctx),
        }
    }
}

type TensorId = usize;

struct Tensor {
    name: String,
    bytes: u64,
}

/// Everything a planned op's builder can bind.
struct Env<'a> {
    ctx: &'a GpuContext,
    k: &'a Kernels,
    layout: &'a ParamLayout,
    pool: &'a [wgpu::Buffer],
    tensor_buffer: &'a [usize],
    tensors: &'a [Tensor],
    params: &'a [wgpu::Buffer; 3],
    grads: &'a [wgpu::Buffer; 2],
    saved: &'a HashMap<(usize, &'static str), wgpu::Buffer>,
    fixed: &'a Fixed,
}

/// Buffers that are not pooled.
struct Fixed {
    input: wgpu::Buffer,
    targets: wgpu::Buffer,
    loss: wgpu::Buffer,
    metrics: wgpu::Buffer,
    scratch: wgpu::Buffer,
    adam_state: wgpu::Buffer,
    aug_seed: wgpu::Buffer,
    m: wgpu::Buffer,
    v: wgpu::Buffer,
}

impl Env<'_> {
    fn t(&self, id: TensorId) -> BufferRange<'_> {
        BufferRange {
            buffer: &self.pool[self.tensor_buffer[id]],
            offset: 0,
            size: self.tensors[id].bytes,
        }
    }
    fn slot(&self, layer: usize, name: &str) -> (Region, u64, u64) {
        let s = self
            .layout
            .find(layer, name)
            .unwrap_or_else(|| panic!("layer {layer} has no {name}"));
        let start = self.layout.regions[s.region as usize].0;
        (
            s.region,
            ((s.offset - start) * 4) as u64,
            (s.len * 4) as u64,
        )
    }
    /// A parameter's range in its region's buffer.
    fn p(&self, layer: usize, name: &str) -> BufferRange<'_> {
        let (r, offset, size) = self.slot(layer, name);
        BufferRange {
            buffer: &self.params[r as usize],
            offset,
            size,
        }
    }
    /// A trainable parameter's gradient range.
    fn g(&self, layer: usize, name: &str) -> BufferRange<'_> {
        let (r, offset, size) = self.slot(layer, name);
        BufferRange {
            buffer: &self.grads[r as usize],
            offset,
            size,
        }
    }
    fn saved(&self, layer: usize, what: &'static str) -> &wgpu::Buffer {
        &self.saved[&(layer, what)]
    }
    fn scratch(&self, len: usize) -> Option<&dyn Bind> {
        (len > 0).then_some(&self.fixed.scratch as &dyn Bind)
    }
}

type Build = Box<dyn Fn(&Env) -> Vec<Dispatch>>;

struct PlannedOp {
    uses: Vec<TensorId>,
    build: Build,
    /// (rate, len) of a dropout op whose seed changes per step.
    dropout: Option<(f32, usize)>,
}

/// Memory the step uses, against the naive one-buffer-per-tensor sum.
#[derive(Debug, Clone, Copy)]
pub struct MemoryReport {
    pub pooled_bytes: u64,
    pub naive_bytes: u64,
    pub pool_buffers: usize,
    pub tensors: usize,
    /// Parameters, gradients, Adam state, saved tensors, scratch, input.
    pub fixed_bytes: u64,
}

/// The targets of one batch, as the loss kernels take them.
pub enum BatchTargets<'a> {
    /// Sigmoid outputs: [N, L] in {0, 1}.
    Binary(&'a [f32]),
    /// Softmax outputs: class indices [N].
    Classes(&'a [u32]),
}

struct Planner {
    tensors: Vec<Tensor>,
    ops: Vec<PlannedOp>,
    scratch_len: usize,
}

impl Planner {
    fn tensor(&mut self, name: String, floats: usize) -> TensorId {
        self.tensors.push(Tensor {
            name,
            bytes: (floats.max(1) * 4) as u64,
        });
        self.tensors.len() - 1
    }
    fn op(&mut self, uses: Vec<TensorId>, build: impl Fn(&Env) -> Vec<Dispatch> + 'static) {
        self.ops.push(PlannedOp {
            uses,
            build: Box::new(build),
            dropout: None,
        });
    }
    fn need_scratch(&mut self, len: usize) {
        self.scratch_len = self.scratch_len.max(len);
    }
}

/// Schedules an op that writes the gradient flowing into layer `t`'s output: straight into
/// that output's gradient tensor if this is its first contribution (in backward order), else
/// into a temporary that `add_backward_accumulate` then adds in (a tensor that fans out).
/// `build` gets the destination to write.
fn emit_dx(
    pl: &mut Planner,
    grad: &mut [Option<TensorId>],
    layers: &[super::Layer],
    n: usize,
    t: usize,
    uses: Vec<TensorId>,
    build: impl Fn(&Env, &dyn Bind) -> Vec<Dispatch> + 'static,
) {
    let floats = n * layers[t].output.len();
    let (d, acc) = match grad[t] {
        None => {
            let g = pl.tensor(format!("{}:grad", layers[t].name), floats);
            grad[t] = Some(g);
            (g, None)
        }
        Some(g) => (
            pl.tensor(format!("{}:grad+", layers[t].name), floats),
            Some(g),
        ),
    };
    pl.op([vec![d], uses].concat(), move |e| build(e, &e.t(d)));
    if let Some(g) = acc {
        pl.op(vec![g, d], move |e| {
            vec![
                e.k.ew
                    .add_backward_accumulate(e.ctx, &e.t(g), &e.t(d), floats),
            ]
        });
    }
}

/// A layer's input: a pooled tensor, or the fixed input buffer for the input layer.
fn input_of<'e>(e: &'e Env<'_>, x: Option<TensorId>) -> Box<dyn Bind + 'e> {
    match x {
        Some(t) => Box::new(e.t(t)),
        None => Box::new(BufferRange {
            buffer: &e.fixed.input,
            offset: 0,
            size: e.fixed.input.size(),
        }),
    }
}

/// `len` f32 of `b` from element `at`.
fn range(b: &wgpu::Buffer, at: usize, len: usize) -> BufferRange<'_> {
    BufferRange {
        buffer: b,
        offset: (at * 4) as u64,
        size: (len.max(1) * 4) as u64,
    }
}

/// The output activation and width of the model's last (Dense) layer.
fn classifier(model: &Model) -> Result<(Activation, usize), ExecError> {
    match model.layers.last().map(|l| &l.kind) {
        Some(LayerKind::Dense {
            activation: a @ (Activation::Sigmoid | Activation::Softmax),
            units,
        }) => Ok((*a, *units)),
        _ => Err(ExecError::NoClassifier),
    }
}

fn hwc(s: Shape) -> (usize, usize, usize) {
    match s {
        Shape::Hwc(h, w, c) => (h, w, c),
        Shape::Flat(f) => (1, 1, f),
    }
}

/// What a program does: a training step (forward with batch statistics and dropout, loss,
/// backward) or an evaluation (forward with the moving statistics, no dropout, loss and
/// metrics only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Train,
    Eval,
}

/// What one micro-batch of `n` samples runs: forward, loss, backward (no optimizer).
struct Schedule {
    n: usize,
    /// The model's output tensor (logits).
    logits: TensorId,
    pl: Planner,
    saved_specs: Vec<((usize, &'static str), usize)>,
}

fn schedule(
    model: &Model,
    k: &Kernels,
    n: usize,
    activation: Activation,
    outputs: usize,
    mode: Mode,
    augment: Option<AugmentConfig>,
) -> Result<Schedule, ExecError> {
    let layers = &model.layers;
    let last = layers.len() - 1;
    let train = mode == Mode::Train;

    // Which layer outputs need a gradient: those with a trainable layer upstream.
    let mut needs_grad = vec![false; layers.len()];
    for (li, l) in layers.iter().enumerate() {
        needs_grad[li] = !l.params.is_empty() || l.inputs.iter().any(|&i| needs_grad[i]);
    }
    let mut consumers = vec![0usize; layers.len()];
    for l in layers {
        for &i in &l.inputs {
            consumers[i] += 1;
        }
    }

    let mut pl = Planner {
        tensors: Vec::new(),
        ops: Vec::new(),
        scratch_len: 0,
    };
    let mut saved_specs: Vec<((usize, &'static str), usize)> = Vec::new();
    // act[li]: the tensor holding layer li's output (None for the input layer).
    let mut act: Vec<Option<TensorId>> = vec![None; layers.len()];
    let mut mid: HashMap<usize, TensorId> = HashMap::new();

    // ---- Augmentation of the input batch (training only) ----
    // The tensor exists in every mode so that tensor ids, and so the pool plan, are the same
    // for training and evaluation programs.
    if let Some(cfg) = augment {
        let (h, w, c) = hwc(layers[0].output);
        let aug = pl.tensor("augmented input".into(), n * h * w * c);
        if train {
            act[0] = Some(aug);
            pl.op(vec![aug], move |e| {
                vec![e.k.augment.forward(
                    e.ctx,
                    &e.t(aug),
                    &e.fixed.input,
                    &e.fixed.aug_seed,
                    n,
                    h,
                    w,
                    c,
                    &cfg,
                )]
            });
        }
    }

    // ---- Forward ----
    for (li, l) in layers.iter().enumerate() {
        if let LayerKind::Input = l.kind {
            continue;
        }
        let len = n * l.output.len();
        let y = pl.tensor(format!("{}:out", l.name), len);
        act[li] = Some(y);
        let src = l.inputs[0];
        let x = act[src];
        let in_shape = layers[src].output;
        let uses_x: Vec<TensorId> = x.into_iter().collect();
        match l.kind.clone() {
            LayerKind::Input => unreachable!(),
            LayerKind::Rescaling { scale, offset } => {
                pl.op([vec![y], uses_x].concat(), move |e| {
                    vec![e.k.rescale.forward(
                        e.ctx,
                        &e.t(y),
                        input_of(e, x).as_ref(),
                        len,
                        scale,
                        offset,
                    )]
                });
            }
            LayerKind::Conv2D {
                filters,
                kernel,
                stride,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape);
                if kernel == 1 {
                    let s = PointwiseShape {
                        n,
                        h,
                        w,
                        cin: c,
                        cout: filters,
                        stride,
                    };
                    pl.op([vec![y], uses_x].concat(), move |e| {
                        vec![e.k.pointwise.forward(
                            e.ctx,
                            &e.t(y),
                            input_of(e, x).as_ref(),
                            &e.p(li, "kernel"),
                            &e.p(li, "bias"),
                            &s,
                        )]
                    });
                } else {
                    let s = Conv2dShape {
                        n,
                        h,
                        w,
                        cin: c,
                        cout: filters,
                        k: kernel,
                        stride,
                        padding,
                    };
                    pl.op([vec![y], uses_x].concat(), move |e| {
                        vec![e.k.conv.forward(
                            e.ctx,
                            &e.t(y),
                            input_of(e, x).as_ref(),
                            &e.p(li, "kernel"),
                            &e.p(li, "bias"),
                            &s,
                        )]
                    });
                }
            }
            LayerKind::SeparableConv2D {
                filters,
                kernel,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape);
                if kernel != 3 {
                    return Err(ExecError::Unsupported(
                        l.name.clone(),
                        format!("depthwise kernel {kernel} (3 is compiled)"),
                    ));
                }
                let ds = DepthwiseShape {
                    n,
                    h,
                    w,
                    c,
                    k: kernel,
                    padding,
                };
                let m = pl.tensor(format!("{}:depthwise", l.name), ds.y_len());
                mid.insert(li, m);
                pl.op([vec![m], uses_x].concat(), move |e| {
                    vec![e.k.depthwise.forward(
                        e.ctx,
                        &e.t(m),
                        input_of(e, x).as_ref(),
                        &e.p(li, "depthwise_kernel"),
                        &ds,
                    )]
                });
                let ps = PointwiseShape {
                    n,
                    h: ds.oh(),
                    w: ds.ow(),
                    cin: c,
                    cout: filters,
                    stride: 1,
                };
                pl.op(vec![y, m], move |e| {
                    vec![e.k.pointwise.forward(
                        e.ctx,
                        &e.t(y),
                        &e.t(m),
                        &e.p(li, "pointwise_kernel"),
                        &e.p(li, "bias"),
                        &ps,
                    )]
                });
            }
            LayerKind::BatchNormalization { momentum, epsilon } => {
                let c = l.output.channels();
                let shape = BnShape {
                    momentum,
                    epsilon,
                    ..BnShape::keras(len / c, c)
                };
                pl.need_scratch(BatchNorm::scratch_len(&shape));
                saved_specs.push(((li, "mean"), c));
                saved_specs.push(((li, "inv_std"), c));
                if train {
                    pl.op([vec![y], uses_x].concat(), move |e| {
                        e.k.bn.forward_train(
                            e.ctx,
                            &e.t(y),
                            e.saved(li, "mean"),
                            e.saved(li, "inv_std"),
                            &e.p(li, "moving_mean"),
                            &e.p(li, "moving_variance"),
                            input_of(e, x).as_ref(),
                            &e.p(li, "gamma"),
                            &e.p(li, "beta"),
                            &e.fixed.scratch,
                            &shape,
                        )
                    });
                } else {
                    pl.op([vec![y], uses_x].concat(), move |e| {
                        vec![e.k.bn.forward_inference(
                            e.ctx,
                            &e.t(y),
                            input_of(e, x).as_ref(),
                            &e.p(li, "gamma"),
                            &e.p(li, "beta"),
                            &e.p(li, "moving_mean"),
                            &e.p(li, "moving_variance"),
                            &shape,
                        )]
                    });
                }
            }
            LayerKind::Relu => {
                pl.op([vec![y], uses_x].concat(), move |e| {
                    vec![
                        e.k.relu
                            .forward(e.ctx, &e.t(y), input_of(e, x).as_ref(), len),
                    ]
                });
            }
            LayerKind::MaxPooling2D {
                pool,
                stride,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape);
                let g = Pool2d::square(n, h, w, c, pool, stride, padding);
                saved_specs.push(((li, "argmax"), max_pool2d_argmax_len(&g)));
                pl.op([vec![y], uses_x].concat(), move |e| {
                    vec![e.k.pool.max_pool2d_forward(
                        e.ctx,
                        &e.t(y),
                        e.saved(li, "argmax"),
                        input_of(e, x).as_ref(),
                        &g,
                    )]
                });
            }
            LayerKind::GlobalAveragePooling2D => {
                let (h, w, c) = hwc(in_shape);
                pl.op([vec![y], uses_x].concat(), move |e| {
                    vec![e.k.pool.global_avg_pool2d_forward(
                        e.ctx,
                        &e.t(y),
                        input_of(e, x).as_ref(),
                        [n, h, w, c],
                    )]
                });
            }
            LayerKind::Add => {
                let (a, b) = (act[l.inputs[0]].unwrap(), act[l.inputs[1]].unwrap());
                pl.op(vec![y, a, b], move |e| {
                    vec![e.k.ew.add_forward(e.ctx, &e.t(y), &e.t(a), &e.t(b), len)]
                });
            }
            LayerKind::Dropout { .. } if !train => {
                // Inference: dropout is the identity.
                pl.op([vec![y], uses_x].concat(), move |e| {
                    vec![e.k.rescale.forward(
                        e.ctx,
                        &e.t(y),
                        input_of(e, x).as_ref(),
                        len,
                        1.0,
                        0.0,
                    )]
                });
            }
            LayerKind::Dropout { rate } => {
                pl.op([vec![y], uses_x].concat(), move |e| {
                    vec![e.k.ew.dropout_forward(
                        e.ctx,
                        &e.t(y),
                        input_of(e, x).as_ref(),
                        len,
                        0,
                        rate,
                    )]
                });
                pl.ops.last_mut().unwrap().dropout = Some((rate, len));
            }
            LayerKind::Dense { units, .. } => {
                let f = in_shape.len();
                pl.op([vec![y], uses_x].concat(), move |e| {
                    vec![e.k.dense.forward(
                        e.ctx,
                        &e.t(y),
                        input_of(e, x).as_ref(),
                        &e.p(li, "kernel"),
                        &e.p(li, "bias"),
                        n,
                        f,
                        units,
                    )]
                });
            }
        }
    }

    // ---- Loss: forward (mean loss), metrics, gradient of the logits ----
    let logits = act[last].unwrap();
    let dlogits = pl.tensor("loss:dlogits".into(), n * outputs);
    pl.op(vec![logits, dlogits], move |e| {
        let (loss, metrics, t) = (&e.fixed.loss, &e.fixed.metrics, &e.fixed.targets);
        let z = e.t(logits);
        let dz = e.t(dlogits);
        if !train {
            return match activation {
                Activation::Softmax => vec![
                    e.k.loss.softmax_ce_forward(e.ctx, loss, &z, t, n, outputs),
                    e.k.loss
                        .softmax_ce_metrics(e.ctx, metrics, &z, t, n, outputs),
                ],
                _ => vec![
                    e.k.loss.sigmoid_bce_forward(e.ctx, loss, &z, t, n, outputs),
                    e.k.loss
                        .sigmoid_bce_metrics(e.ctx, metrics, &z, t, n, outputs),
                ],
            };
        }
        match activation {
            Activation::Softmax => vec![
                e.k.loss.softmax_ce_forward(e.ctx, loss, &z, t, n, outputs),
                e.k.loss
                    .softmax_ce_metrics(e.ctx, metrics, &z, t, n, outputs),
                e.k.loss.softmax_ce_backward(e.ctx, &dz, &z, t, n, outputs),
            ],
            _ => vec![
                e.k.loss.sigmoid_bce_forward(e.ctx, loss, &z, t, n, outputs),
                e.k.loss
                    .sigmoid_bce_metrics(e.ctx, metrics, &z, t, n, outputs),
                e.k.loss.sigmoid_bce_backward(e.ctx, &dz, &z, t, n, outputs),
            ],
        }
    });

    if !train {
        return Ok(Schedule {
            n,
            logits,
            pl,
            saved_specs,
        });
    }

    // ---- Backward, in reverse layer order ----
    let mut grad: Vec<Option<TensorId>> = vec![None; layers.len()];
    grad[last] = Some(dlogits);
    for li in (1..layers.len()).rev() {
        let l = &layers[li];
        let Some(dy) = grad[li] else { continue };
        let len = n * l.output.len();
        let src = l.inputs[0];
        let in_shape = layers[src].output;
        let x = act[src];
        let want_dx = needs_grad[src] && !matches!(layers[src].kind, LayerKind::Input);
        // Where this layer's dx goes: the input's gradient tensor if it is the first
        // contribution, else a temporary that is then added in.
        let in_len = n * in_shape.len();
        match l.kind.clone() {
            LayerKind::Input => unreachable!(),
            LayerKind::Rescaling { scale, .. } => {
                if want_dx {
                    emit_dx(&mut pl, &mut grad, layers, n, src, vec![dy], move |e, d| {
                        vec![e.k.rescale.backward(e.ctx, d, &e.t(dy), len, scale)]
                    });
                }
            }
            LayerKind::Conv2D {
                filters,
                kernel,
                stride,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape);
                let xt = x.ok_or_else(|| {
                    ExecError::Unsupported(
                        l.name.clone(),
                        "a convolution of the raw input layer".into(),
                    )
                })?;
                if kernel == 1 {
                    let s = PointwiseShape {
                        n,
                        h,
                        w,
                        cin: c,
                        cout: filters,
                        stride,
                    };
                    let sl = k.pointwise.backward_weight_scratch_len(&s);
                    pl.need_scratch(sl);
                    pl.op(vec![dy, xt], move |e| {
                        e.k.pointwise.backward_weight(
                            e.ctx,
                            &e.g(li, "kernel"),
                            &e.g(li, "bias"),
                            e.scratch(sl),
                            &e.t(dy),
                            &e.t(xt),
                            &s,
                        )
                    });
                    if want_dx {
                        emit_dx(&mut pl, &mut grad, layers, n, src, vec![dy], move |e, d| {
                            e.k.pointwise
                                .backward_input(e.ctx, d, &e.t(dy), &e.p(li, "kernel"), &s)
                        });
                    }
                } else {
                    let s = Conv2dShape {
                        n,
                        h,
                        w,
                        cin: c,
                        cout: filters,
                        k: kernel,
                        stride,
                        padding,
                    };
                    pl.need_scratch(k.conv.backward_weight_scratch_len(&s));
                    pl.op(vec![dy, xt], move |e| {
                        e.k.conv
                            .backward_weight(
                                e.ctx,
                                &e.g(li, "kernel"),
                                &e.g(li, "bias"),
                                &e.fixed.scratch,
                                &e.t(dy),
                                &e.t(xt),
                                &s,
                            )
                            .into()
                    });
                    if want_dx {
                        emit_dx(&mut pl, &mut grad, layers, n, src, vec![dy], move |e, d| {
                            vec![e.k.conv.backward_input(
                                e.ctx,
                                d,
                                &e.t(dy),
                                &e.p(li, "kernel"),
                                &s,
                            )]
                        });
                    }
                }
            }
            LayerKind::SeparableConv2D {
                filters,
                kernel,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape);
                let xt = x.ok_or_else(|| {
                    ExecError::Unsupported(
                        l.name.clone(),
                        "a convolution of the raw input layer".into(),
                    )
                })?;
                let ds = DepthwiseShape {
                    n,
                    h,
                    w,
                    c,
                    k: kernel,
                    padding,
                };
                let ps = PointwiseShape {
                    n,
                    h: ds.oh(),
                    w: ds.ow(),
                    cin: c,
                    cout: filters,
                    stride: 1,
                };
                let m = mid[&li];
                let dm = pl.tensor(format!("{}:depthwise:grad", l.name), ds.y_len());
                let sl = k.pointwise.backward_weight_scratch_len(&ps);
                pl.need_scratch(sl);
                pl.need_scratch(DepthwiseConv2d::backward_weight_scratch_len(&ds));
                pl.op(vec![dy, m], move |e| {
                    e.k.pointwise.backward_weight(
                        e.ctx,
                        &e.g(li, "pointwise_kernel"),
                        &e.g(li, "bias"),
                        e.scratch(sl),
                        &e.t(dy),
                        &e.t(m),
                        &ps,
                    )
                });
                pl.op(vec![dm, dy], move |e| {
                    e.k.pointwise.backward_input(
                        e.ctx,
                        &e.t(dm),
                        &e.t(dy),
                        &e.p(li, "pointwise_kernel"),
                        &ps,
                    )
                });
                pl.op(vec![dm, xt], move |e| {
                    e.k.depthwise
                        .backward_weight(
                            e.ctx,
                            &e.g(li, "depthwise_kernel"),
                            &e.fixed.scratch,
                            &e.t(dm),
                            &e.t(xt),
                            &ds,
                        )
                        .into()
                });
                if want_dx {
                    emit_dx(&mut pl, &mut grad, layers, n, src, vec![dm], move |e, d| {
                        vec![e.k.depthwise.backward_input(
                            e.ctx,
                            d,
                            &e.t(dm),
                            &e.p(li, "depthwise_kernel"),
                            &ds,
                        )]
                    });
                }
            }
            LayerKind::BatchNormalization { momentum, epsilon } => {
                let c = l.output.channels();
                let shape = BnShape {
                    momentum,
                    epsilon,
                    ..BnShape::keras(len / c, c)
                };
                let xt = x.ok_or_else(|| {
                    ExecError::Unsupported(
                        l.name.clone(),
                        "batch norm of the raw input layer".into(),
                    )
                })?;
                let build = move |e: &Env, d: &dyn Bind| {
                    e.k.bn.backward(
                        e.ctx,
                        d,
                        &e.g(li, "gamma"),
                        &e.g(li, "beta"),
                        &e.t(dy),
                        &e.t(xt),
                        &e.p(li, "gamma"),
                        e.saved(li, "mean"),
                        e.saved(li, "inv_std"),
                        &e.fixed.scratch,
                        &shape,
                    )
                };
                if want_dx {
                    emit_dx(&mut pl, &mut grad, layers, n, src, vec![dy, xt], build);
                } else {
                    // The backward always computes dx: give it a throwaway tensor.
                    let d = pl.tensor(format!("{}:dx-unused", l.name), in_len);
                    pl.op(vec![d, dy, xt], move |e| build(e, &e.t(d)));
                }
            }
            LayerKind::Relu => {
                if want_dx {
                    let y = act[li].unwrap();
                    emit_dx(
                        &mut pl,
                        &mut grad,
                        layers,
                        n,
                        src,
                        vec![dy, y],
                        move |e, d| vec![e.k.relu.backward(e.ctx, d, &e.t(dy), &e.t(y), len)],
                    );
                }
            }
            LayerKind::MaxPooling2D {
                pool,
                stride,
                padding,
            } => {
                if want_dx {
                    let (h, w, c) = hwc(in_shape);
                    let g = Pool2d::square(n, h, w, c, pool, stride, padding);
                    emit_dx(&mut pl, &mut grad, layers, n, src, vec![dy], move |e, d| {
                        vec![e.k.pool.max_pool2d_backward(
                            e.ctx,
                            d,
                            &e.t(dy),
                            e.saved(li, "argmax"),
                            &g,
                        )]
                    });
                }
            }
            LayerKind::GlobalAveragePooling2D => {
                if want_dx {
                    let (h, w, c) = hwc(in_shape);
                    emit_dx(&mut pl, &mut grad, layers, n, src, vec![dy], move |e, d| {
                        vec![
                            e.k.pool
                                .global_avg_pool2d_backward(e.ctx, d, &e.t(dy), [n, h, w, c]),
                        ]
                    });
                }
            }
            LayerKind::Add => {
                for &t in &l.inputs {
                    if !needs_grad[t] {
                        continue;
                    }
                    if consumers[t] == 1 && grad[t].is_none() {
                        // The gradient passes through unchanged: share the tensor.
                        grad[t] = Some(dy);
                    } else {
                        emit_dx(&mut pl, &mut grad, layers, n, t, vec![dy], move |e, d| {
                            vec![e.k.rescale.forward(e.ctx, d, &e.t(dy), len, 1.0, 0.0)]
                        });
                    }
                }
            }
            LayerKind::Dropout { rate } => {
                if want_dx {
                    emit_dx(&mut pl, &mut grad, layers, n, src, vec![dy], move |e, d| {
                        vec![e.k.ew.dropout_backward(e.ctx, d, &e.t(dy), len, 0, rate)]
                    });
                    pl.ops.last_mut().unwrap().dropout = Some((rate, len));
                }
            }
            LayerKind::Dense { units, .. } => {
                let f = in_shape.len();
                let xt = x.ok_or_else(|| {
                    ExecError::Unsupported(l.name.clone(), "a dense layer on the raw input".into())
                })?;
                let sl = k.dense.backward_weight_scratch_len(n, f, units);
                pl.need_scratch(sl);
                pl.op(vec![dy, xt], move |e| {
                    e.k.dense.backward_weight(
                        e.ctx,
                        &e.g(li, "kernel"),
                        &e.g(li, "bias"),
                        e.scratch(sl),
                        &e.t(dy),
                        &e.t(xt),
                        n,
                        f,
                        units,
                    )
                });
                if want_dx {
                    emit_dx(&mut pl, &mut grad, layers, n, src, vec![dy], move |e, d| {
                        e.k.dense.backward_input(
                            e.ctx,
                            d,
                            &e.t(dy),
                            &e.p(li, "kernel"),
                            n,
                            f,
                            units,
                        )
                    });
                }
            }
        }
    }

    Ok(Schedule {
        n,
        logits,
        pl,
        saved_specs,
    })
}

/// Most pixel rows (N·H·W) one dispatch handles: kernels tile rows into workgroups and a grid
/// has at most 65,535 workgroups a side (the GEMM takes 32 rows per workgroup row).
pub const MAX_ROWS_PER_DISPATCH: usize = 1 << 20;

/// The largest micro-batch (≤ `batch`) whose every tensor fits one storage binding of
/// `limit` bytes and whose largest activation has at most [`MAX_ROWS_PER_DISPATCH`] rows.
fn choose_micro_batch(
    model: &Model,
    k: &Kernels,
    batch: usize,
    activation: Activation,
    outputs: usize,
    limit: u64,
) -> Result<usize, ExecError> {
    let full = schedule(model, k, batch, activation, outputs, Mode::Train, None)?;
    let largest = full.pl.tensors.iter().map(|t| t.bytes).max().unwrap_or(0);
    let by_binding = if largest <= limit {
        batch
    } else {
        (batch as u64 * limit / largest) as usize
    };
    let max_hw = model
        .layers
        .iter()
        .map(|l| match l.output {
            Shape::Hwc(h, w, _) => h * w,
            Shape::Flat(_) => 1,
        })
        .max()
        .unwrap_or(1);
    Ok(by_binding
        .min(MAX_ROWS_PER_DISPATCH / max_hw)
        .clamp(1, batch))
}

/// Checks, before anything is allocated, that a step of `batch` samples run as micro-batches
/// of `micro` fits a device with `limits`: every parameter tensor within one binding (its layer
/// binds it whole), every whole-model buffer (parameters, gradients, Adam's m and v) and the
/// batch's input within the largest buffer. Shape arithmetic only, so it needs no GPU; the
/// micro-batch's activations are checked when the step is compiled.
pub fn check_device_fit(
    model: &Model,
    batch: usize,
    micro: usize,
    limits: &wgpu::Limits,
) -> Result<(), ExecError> {
    let mib = |b: u64| b as f64 / 1048576.0;
    let binding = limits.max_storage_buffer_binding_size;
    let largest = limits.max_buffer_size;
    let layout = ParamLayout::new(model);
    if let Some(s) = layout.slots.iter().max_by_key(|s| s.len) {
        let bytes = s.len as u64 * 4;
        if bytes > binding {
            return Err(ExecError::ParameterTooLarge {
                name: s.name.clone(),
                mib: mib(bytes),
                limit_mib: mib(binding),
                width_factor: (binding as f64 / bytes as f64).sqrt(),
            });
        }
    }
    // Adam's m and v span the trainable prefix; each region is one buffer of its own.
    let wholes = [
        (
            "parameters (weights)",
            layout.regions[Region::Weights as usize].1,
        ),
        (
            "parameters (biases)",
            layout.regions[Region::Biases as usize].1,
        ),
        (
            "batch-norm statistics",
            layout.regions[Region::State as usize].1,
        ),
        ("Adam moments", layout.trainable_len),
    ];
    for (what, len) in wholes {
        let bytes = len as u64 * 4;
        if bytes > largest {
            return Err(ExecError::ModelTooLarge {
                what,
                mib: mib(bytes),
                limit_mib: mib(largest),
                width_factor: (largest as f64 / bytes as f64).sqrt(),
            });
        }
    }
    // The batch is uploaded whole (one buffer of `batch` images when it runs as micro-batches,
    // the bound input of `micro` images otherwise); targets are never larger than images.
    let sample_bytes = model.layers[0].output.len() as u64 * 4;
    let bound = largest.min(binding);
    if sample_bytes > bound {
        return Err(ExecError::TooLarge {
            name: "input".into(),
            mib: mib(sample_bytes),
            limit_mib: mib(bound),
            batch: 1,
        });
    }
    let limit = if micro < batch { largest } else { bound };
    if batch as u64 * sample_bytes > limit {
        return Err(ExecError::BatchTooLarge {
            batch,
            mib: mib(batch as u64 * sample_bytes),
            limit_mib: mib(limit),
            max_batch: (limit / sample_bytes) as usize,
        });
    }
    Ok(())
}

/// Splits `[0, len)` into ranges of at most `limit` bytes that start at multiples of
/// [`super::params::ALIGN`] elements, so that an op over a whole flat buffer (Adam, gradient
/// accumulation) can bind it slice by slice on a device whose binding limit is smaller than
/// the buffer: (start, len) in f32 elements.
fn binding_slices(len: usize, limit: u64) -> Vec<(usize, usize)> {
    let align = super::params::ALIGN;
    let max = ((limit / 4) as usize / align * align).max(align);
    (0..len.div_ceil(max))
        .map(|i| (i * max, max.min(len - i * max)))
        .collect()
}

/// Gives tensors whose [first op, last op] lifetimes do not overlap the same pool buffer.
fn pool_plan(pl: &Planner) -> BufferPlan {
    let mut life: Vec<Option<(usize, usize)>> = vec![None; pl.tensors.len()];
    for (i, op) in pl.ops.iter().enumerate() {
        for &t in &op.uses {
            life[t] = Some(life[t].map_or((i, i), |(a, _)| (a, i)));
        }
    }
    let lifetimes: Vec<Lifetime> = pl
        .tensors
        .iter()
        .zip(&life)
        .map(|(t, l)| {
            let (first, last) = l.unwrap_or((0, 0));
            Lifetime {
                bytes: t.bytes,
                first,
                last,
            }
        })
        .collect();
    plan_buffers(&lifetimes)
}

/// The step's memory: pooled transient tensors against their naive sum, and the fixed buffers
/// (parameters, gradients, Adam's m and v, saved tensors, scratch, input and targets; with
/// micro-batches also the whole batch's input and targets and the summed gradients).
fn memory_report(
    layout: &ParamLayout,
    main: &Schedule,
    plan: &BufferPlan,
    batch: usize,
    count: usize,
    sample_len: usize,
    target_per_sample: usize,
) -> MemoryReport {
    let t = layout.trainable_len;
    let mut floats =
        layout.total_len + 3 * t + main.n * (sample_len + target_per_sample) + main.pl.scratch_len;
    floats += main.saved_specs.iter().map(|(_, len)| len).sum::<usize>();
    if count > 1 {
        floats += t + batch * (sample_len + target_per_sample);
    }
    MemoryReport {
        pooled_bytes: plan.pooled_bytes(),
        naive_bytes: main.pl.tensors.iter().map(|t| t.bytes).sum(),
        pool_buffers: plan.buffer_bytes.len(),
        tensors: main.pl.tensors.len(),
        fixed_bytes: (floats * 4) as u64,
    }
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
    model: Model,
    k: Kernels,
    augment: Option<AugmentConfig>,
    pool: Vec<wgpu::Buffer>,
    buffer_of: Vec<usize>,
    params: [wgpu::Buffer; 3],
    grads: [wgpu::Buffer; 2],
    saved: HashMap<(usize, &'static str), wgpu::Buffer>,
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

    /// The micro-batch size [`Self::new`] would choose for `batch` on this device (compiles
    /// the kernels, allocates no tensors).
    pub fn plan_micro_batch(
        ctx: &GpuContext,
        model: &Model,
        batch: usize,
    ) -> Result<usize, ExecError> {
        Ok(Self::plan_memory(ctx, model, batch)?.0)
    }

    /// The micro-batch size and memory plan [`Self::new`] would use for `batch` on this
    /// device, without allocating any tensor (compiles the kernels).
    pub fn plan_memory(
        ctx: &GpuContext,
        model: &Model,
        batch: usize,
    ) -> Result<(usize, MemoryReport), ExecError> {
        let layout = ParamLayout::new(model);
        let (activation, outputs) = classifier(model)?;
        let k = Kernels::new(ctx, &Variants::for_adapter(ctx)?);
        let limit = ctx.limits.max_storage_buffer_binding_size;
        let micro = choose_micro_batch(model, &k, batch, activation, outputs, limit)?;
        check_device_fit(model, batch, micro, &ctx.limits)?;
        let main = schedule(model, &k, micro, activation, outputs, Mode::Train, None)?;
        let plan = pool_plan(&main.pl);
        let sample_len = model.layers[0].output.len();
        let target_per_sample = if activation == Activation::Softmax {
            1
        } else {
            outputs
        };
        let count = batch.div_ceil(micro);
        Ok((
            micro,
            memory_report(
                &layout,
                &main,
                &plan,
                batch,
                count,
                sample_len,
                target_per_sample,
            ),
        ))
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
        let layout = ParamLayout::new(model);
        let layers = &model.layers;
        let (activation, outputs) = classifier(model)?;
        let k = Kernels::new(ctx, &Variants::for_adapter(ctx)?);
        let limit = ctx.limits.max_storage_buffer_binding_size;
        let micro = match opts.micro {
            Some(m) => m.clamp(1, batch),
            None => choose_micro_batch(model, &k, batch, activation, outputs, limit)?,
        };
        let batch = if inference { micro } else { batch };
        check_device_fit(model, batch, micro, &ctx.limits)?;
        let count = batch.div_ceil(micro);
        let main = schedule(
            model,
            &k,
            micro,
            activation,
            outputs,
            Mode::Train,
            opts.augment,
        )?;
        if let Some(t) = main.pl.tensors.iter().find(|t| t.bytes > limit) {
            return Err(ExecError::TooLarge {
                name: t.name.clone(),
                mib: t.bytes as f64 / 1048576.0,
                limit_mib: limit as f64 / 1048576.0,
                batch: micro,
            });
        }

        // Memory: transient tensors pooled by liveness, planned at the micro-batch size; every
        // smaller program and every evaluation program fits the same buffers (same tensor ids,
        // smaller sizes, lifetimes within the training ones).
        let plan = pool_plan(&main.pl);
        let pool: Vec<wgpu::Buffer> = plan
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
        let sample_len = layers[0].output.len();
        let target_per_sample = if activation == Activation::Softmax {
            1
        } else {
            outputs
        };
        // The scratch must serve every program, and a program may run any size up to `micro`
        // (the last partial batch of an epoch, validation, predict): split-K plans differ per
        // size, so take the maximum over all of them (scheduling is only shape arithmetic).
        let mut scratch_len = main.pl.scratch_len;
        for n in 1..micro {
            scratch_len = scratch_len.max(
                schedule(model, &k, n, activation, outputs, Mode::Train, opts.augment)?
                    .pl
                    .scratch_len,
            );
        }
        let fixed = Fixed {
            input: ctx.zeros("input micro-batch", micro * sample_len),
            targets: ctx.zeros("targets micro-batch", micro * target_per_sample),
            loss: ctx.zeros("loss", 1),
            metrics: ctx.zeros("metrics", METRICS_LEN),
            scratch: ctx.zeros("scratch", scratch_len),
            adam_state: Adam::new_state(ctx, opts.lr),
            aug_seed: Augment::seed_buffer(ctx, 0),
            m: ctx.zeros("adam m", layout.trainable_len),
            v: ctx.zeros("adam v", layout.trainable_len),
        };
        let full = (count > 1).then(|| Accumulated {
            input: ctx.zeros("input batch", batch * sample_len),
            targets: ctx.zeros("targets batch", batch * target_per_sample),
            grads: [
                ctx.zeros("summed grads: weights", region(Region::Weights)),
                ctx.zeros("summed grads: biases", region(Region::Biases)),
            ],
            loss: ctx.zeros("summed loss", 1),
        });
        let mut saved = HashMap::new();
        for ((li, what), len) in &main.saved_specs {
            saved.insert(
                (*li, *what),
                ctx.zeros(&format!("{} {what}", layers[*li].name), *len),
            );
        }

        // Adam over the weights and biases regions.
        // A region larger than one binding is updated slice by slice (the update is
        // elementwise, so slices are independent).
        let opt_grads = full.as_ref().map_or(&grads, |a| &a.grads);
        let mut optimizer = vec![k.adam.begin_step(ctx, &fixed.adam_state)];
        for (r, (start, len)) in [(0usize, layout.regions[0]), (1, layout.regions[1])] {
            for (at, n) in binding_slices(len, slice_limit) {
                optimizer.push(k.adam.update(
                    ctx,
                    &range(&params[r], at, n),
                    &range(&fixed.m, start + at, n),
                    &range(&fixed.v, start + at, n),
                    &range(&opt_grads[r], at, n),
                    &fixed.adam_state,
                    n,
                ));
            }
        }
        let memory = memory_report(
            &layout,
            &main,
            &plan,
            batch,
            count,
            sample_len,
            target_per_sample,
        );
        Ok(Self {
            layout,
            batch,
            micro,
            model: model.clone(),
            k,
            augment: opts.augment,
            pool,
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
        let sched = schedule(
            &self.model,
            &self.k,
            n,
            self.activation,
            self.outputs,
            mode,
            self.augment,
        )
        .expect("a schedule that compiled at the micro-batch size compiles at a smaller one");
        let env = Env {
            ctx,
            k: &self.k,
            layout: &self.layout,
            pool: &self.pool,
            tensor_buffer: &self.buffer_of,
            tensors: &sched.pl.tensors,
            params: &self.params,
            grads: &self.grads,
            saved: &self.saved,
            fixed: &self.fixed,
        };
        let mut dispatches = Vec::new();
        let mut dropout = Vec::new();
        for op in &sched.pl.ops {
            let ds = (op.build)(&env);
            if let Some((rate, len)) = op.dropout {
                for i in 0..ds.len() {
                    dropout.push((dispatches.len() + i, rate, len));
                }
            }
            dispatches.extend(ds);
        }
        // Each micro-batch's gradient and loss are means over its n samples: weight n/total.
        let (mut acc_first, mut acc_rest) = (Vec::new(), Vec::new());
        if let (Some(a), Mode::Train) = (&self.full, mode) {
            let w = n as f32 / total as f32;
            for (dst, src, len) in [
                (&a.grads[0], &self.grads[0], self.layout.regions[0].1),
                (&a.grads[1], &self.grads[1], self.layout.regions[1].1),
                (&a.loss, &self.fixed.loss, 1),
            ] {
                for (at, n) in binding_slices(len, self.slice_limit) {
                    let (dst, src) = (range(dst, at, n), range(src, at, n));
                    acc_first.push(self.k.rescale.forward(ctx, &dst, &src, n, w, 0.0));
                    acc_rest.push(self.k.rescale.accumulate(ctx, &dst, &src, n, w));
                }
            }
        }
        let p = Rc::new(Program {
            logits: (sched.logits, sched.pl.tensors[sched.logits].bytes),
            dispatches,
            dropout,
            acc_first,
            acc_rest,
        });
        self.programs.borrow_mut().insert(key, p.clone());
        p
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
            out.extend(ctx.read_range::<f32>(&self.pool[self.buffer_of[t]], 0, bytes)?);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_slices_cover_the_buffer_in_aligned_slices_within_the_limit() {
        let align = super::super::params::ALIGN;
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
