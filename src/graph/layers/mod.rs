//! One file per layer type. Each holds, for its [`LayerKind`], side by side: its geometry
//! (output shape and parameters), its GPU forward and backward plan, and its CPU reference
//! forward and backward. A new layer type is a new file here, a variant of [`LayerKind`]
//! wrapping its struct, and one line in [`ops`].
//!
//! The contexts ([`GpuFwd`], [`GpuBwd`], [`CpuFwd`], [`CpuBwd`]) give a layer what it may
//! touch; the walks over the model (the schedule, the CPU reference step) live in
//! `super::schedule` and `super::reference`.

use std::collections::HashMap;
use std::ops::Range;

use super::bind::Env;
use super::names::{Param, Saved};
use super::planner::{OpId, Planner, TensorId};
use super::{Layer, LayerKind, ParamLayout, ParamSpec, Shape};
use crate::graph::executor::ExecError;
use crate::kernels::variants::Variants;
use crate::kernels::{Bind, Dispatch};

pub mod add;
pub mod batch_norm;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod global_avg_pool;
pub mod max_pool;
pub mod relu;
pub mod rescaling;
pub mod separable_conv2d;

pub use add::Add;
pub use batch_norm::BatchNormalization;
pub use conv2d::Conv2D;
pub use dense::Dense;
pub use dropout::Dropout;
pub use global_avg_pool::GlobalAveragePooling2D;
pub use max_pool::MaxPooling2D;
pub use relu::Relu;
pub use rescaling::Rescaling;
pub use separable_conv2d::SeparableConv2D;

/// What every layer type provides.
pub trait LayerOps {
    /// The Keras class name, shown in summaries.
    fn type_name(&self) -> &'static str;
    /// The Keras default layer-name stem (`conv2d`, `separable_conv2d`, …).
    fn name_stem(&self) -> &'static str;
    /// How many input tensors the layer takes.
    fn arity(&self) -> usize {
        1
    }
    /// Output shape and parameters for these input shapes, or what is wrong with them.
    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String>;
    /// Plans the GPU forward ops.
    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError>;
    /// Plans the GPU backward ops (weight gradients, and the gradients of inputs that need one).
    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError>;
    /// The CPU reference forward (f64).
    fn cpu_forward(&self, cx: &mut CpuFwd);
    /// The CPU reference backward (f64): weight gradients and every input's gradient.
    fn cpu_backward(&self, cx: &mut CpuBwd);
}

/// The layer type behind a [`LayerKind`] (the registration: one line per layer type).
pub fn ops(kind: &LayerKind) -> &dyn LayerOps {
    match kind {
        LayerKind::Input => &InputLayer,
        LayerKind::Rescaling(l) => l,
        LayerKind::Conv2D(l) => l,
        LayerKind::SeparableConv2D(l) => l,
        LayerKind::BatchNormalization(l) => l,
        LayerKind::Relu(l) => l,
        LayerKind::MaxPooling2D(l) => l,
        LayerKind::GlobalAveragePooling2D(l) => l,
        LayerKind::Add(l) => l,
        LayerKind::Dropout(l) => l,
        LayerKind::Dense(l) => l,
    }
}

/// The input layer: the walks start from it; it has no ops of its own.
struct InputLayer;

impl LayerOps for InputLayer {
    fn type_name(&self) -> &'static str {
        "InputLayer"
    }
    fn name_stem(&self) -> &'static str {
        "input_layer"
    }
    fn arity(&self) -> usize {
        0
    }
    fn infer(&self, _: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        Err("an input layer is made with Model::input".into())
    }
    fn gpu_forward(&self, _: &mut GpuFwd) -> Result<(), ExecError> {
        Ok(())
    }
    fn gpu_backward(&self, _: &mut GpuBwd) -> Result<(), ExecError> {
        Ok(())
    }
    fn cpu_forward(&self, cx: &mut CpuFwd) {
        cx.y.copy_from_slice(cx.x[0]);
    }
    fn cpu_backward(&self, _: &mut CpuBwd) {}
}

/// (H, W, C) of a per-sample shape; a flat shape is 1×1×F.
pub fn hwc(s: Shape) -> (usize, usize, usize) {
    match s {
        Shape::Hwc(h, w, c) => (h, w, c),
        Shape::Flat(f) => (1, 1, f),
    }
}

/// What a layer's GPU forward plan sees.
pub struct GpuFwd<'a> {
    pub pl: &'a mut Planner,
    /// The layer's index and description.
    pub li: usize,
    pub layer: &'a Layer,
    /// Samples in the program.
    pub n: usize,
    /// Training (batch statistics, dropout) or inference.
    pub train: bool,
    pub variants: &'a Variants,
    /// The input tensors, one per input (None: the raw input buffer).
    pub x: Vec<Option<TensorId>>,
    /// The first input's per-sample shape.
    pub in_shape: Shape,
    /// The output tensor.
    pub y: TensorId,
    /// The ReLU that is this layer's only consumer is fused into it (see
    /// `fusion::fused_relus`): `y` is the ReLU's output, and the layer's own output is never
    /// stored. Only batch norm is offered this, and a convolution with a folded batch norm
    /// (`fold`) whose ReLU is fused: the convolution applies it in its epilogue.
    pub relu: bool,
    /// The first input comes through a ReLU folded into this layer's loads (see
    /// `fusion::folded_relus`): `x[0]` is the ReLU's input, and the layer reads max(x, 0).
    /// Only the separable convolution is offered this.
    pub relu_input: bool,
    /// The Add that is this layer's only consumer is folded into it (see
    /// `fusion::pooled_adds`): the layer writes y = f(x) + residual into the Add's output,
    /// `y`. Only max pooling is offered this.
    pub residual: Option<TensorId>,
    /// An inference program: the batch norm (layer index and layer) that is this layer's
    /// only consumer is folded into it (see `fusion::folded_batch_norms`): `y` is the batch
    /// norm's output (with `relu`, its ReLU's), computed with the folded kernel and bias
    /// ([`batch_norm::plan_fold`]). Only the convolutions are offered this.
    pub fold: Option<(usize, BatchNormalization)>,
}

impl GpuFwd<'_> {
    /// Floats of the output tensor.
    pub fn out_len(&self) -> usize {
        self.n * self.layer.output.len()
    }

    /// The tensors an op that writes y from the first input uses.
    pub fn y_and_x(&self) -> Vec<TensorId> {
        std::iter::once(self.y).chain(self.x[0]).collect()
    }

    /// Plans the op `y = f(x)`: `build` gets the env, y and the first input.
    pub(crate) fn unary(
        &mut self,
        what: &'static str,
        build: impl Fn(&Env, &dyn Bind, &dyn Bind) -> Dispatch + 'static,
    ) -> OpId {
        let (y, x) = (self.y, self.x[0]);
        let uses = self.y_and_x();
        let id = self.pl.op(what, uses, move |e| {
            vec![build(e, &e.tensor(y), e.input(x).as_ref())]
        });
        if x.is_none() {
            // The raw input buffer is not a pooled tensor.
            self.pl.more_bytes(id, self.n * self.in_shape.len());
        }
        id
    }
}

/// What a layer's GPU backward plan sees.
pub struct GpuBwd<'a> {
    pub pl: &'a mut Planner,
    pub li: usize,
    pub layer: &'a Layer,
    pub n: usize,
    pub variants: &'a Variants,
    pub x: Vec<Option<TensorId>>,
    pub in_shape: Shape,
    /// This layer's output, and the gradient flowing into it.
    pub y: TensorId,
    pub dy: TensorId,
    /// A ReLU is fused into this layer (see [`GpuFwd::relu`]): `y` and `dy` are the ReLU's
    /// output and its gradient.
    pub relu: bool,
    /// A ReLU is folded into this layer's loads (see [`GpuFwd::relu_input`]): `x[0]` is the
    /// ReLU's input, and the gradient of input 0 is the gradient of that input (masked by
    /// x > 0), not of the ReLU's output.
    pub relu_input: bool,
    /// The layers whose gradients the inputs' gradients are: the layer's inputs, with a
    /// folded ReLU replaced by its own input.
    pub(crate) inputs: Vec<usize>,
    /// Every layer's output gradient so far (None: none yet).
    pub(crate) grad: &'a mut [Option<TensorId>],
    pub(crate) layers: &'a [Layer],
    /// Per layer: whether its output needs a gradient, and how many layers consume it.
    pub(crate) needs_grad: &'a [bool],
    pub(crate) consumers: &'a [usize],
}

impl GpuBwd<'_> {
    /// Floats of the output (and of dy).
    pub fn out_len(&self) -> usize {
        self.n * self.layer.output.len()
    }

    /// Whether input `i` needs its gradient (something trainable upstream, not the raw input).
    pub fn wants_dx(&self, i: usize) -> bool {
        let src = self.inputs[i];
        self.needs_grad[src] && !matches!(self.layers[src].kind, LayerKind::Input)
    }

    /// The first input's tensor, or an error where the layer reads the raw input.
    pub fn x_tensor(&self, what: &str) -> Result<TensorId, ExecError> {
        self.x[0].ok_or_else(|| ExecError::Unsupported(self.layer.name.clone(), what.into()))
    }

    /// Plans an op that writes the gradient flowing into input `i`: straight into that
    /// tensor's gradient if this is its first contribution (in backward order), else into a
    /// temporary that an add-accumulate then adds in (a tensor that fans out). `build` gets
    /// the destination. Returns the id of the op that `build` makes.
    pub(crate) fn emit_dx(
        &mut self,
        i: usize,
        what: &'static str,
        uses: Vec<TensorId>,
        build: impl Fn(&Env, &dyn Bind) -> Vec<Dispatch> + 'static,
    ) -> OpId {
        let t = self.inputs[i];
        let floats = self.n * self.layers[t].output.len();
        let name = &self.layers[t].name;
        let (d, acc) = match self.grad[t] {
            None => {
                let g = self.pl.tensor(format!("{name}:grad"), floats);
                self.grad[t] = Some(g);
                (g, None)
            }
            Some(g) => (self.pl.tensor(format!("{name}:grad+"), floats), Some(g)),
        };
        let id = self.pl.op(what, [vec![d], uses].concat(), move |e| {
            build(e, &e.tensor(d))
        });
        if let Some(g) = acc {
            let add = self
                .pl
                .op("elementwise.add_accumulate", vec![g, d], move |e| {
                    vec![e.kernels.ew.add_backward_accumulate(
                        e.ctx,
                        &e.tensor(g),
                        &e.tensor(d),
                        floats,
                    )]
                });
            // g is read and written back.
            self.pl.more_bytes(add, floats);
        }
        id
    }

    /// Passes dy on to input `i` unchanged by sharing the tensor, when `i` has no other
    /// consumer and no gradient yet; false when an op must write it.
    pub fn share_dy(&mut self, i: usize) -> bool {
        let t = self.inputs[i];
        if self.consumers[t] == 1 && self.grad[t].is_none() {
            self.grad[t] = Some(self.dy);
            true
        } else {
            false
        }
    }
}

/// A layer's parameters in the flat f64 vector of the CPU reference.
pub struct CpuParams<'a> {
    pub layout: &'a ParamLayout,
    pub li: usize,
}

impl CpuParams<'_> {
    /// The range of parameter `p` in the flat vector.
    pub fn range(&self, p: Param) -> Range<usize> {
        let s = self
            .layout
            .find(self.li, p)
            .unwrap_or_else(|| panic!("layer {} has no {}", self.li, p.keras_name()));
        s.offset..s.offset + s.len
    }
}

/// What the CPU forward keeps for the backward, by layer and [`Saved`] name.
#[derive(Default)]
pub struct CpuSaved {
    f64s: HashMap<(usize, Saved), Vec<f64>>,
    u32s: HashMap<(usize, Saved), Vec<u32>>,
}

impl CpuSaved {
    pub fn put(&mut self, li: usize, what: Saved, v: Vec<f64>) {
        self.f64s.insert((li, what), v);
    }
    pub fn put_u32(&mut self, li: usize, what: Saved, v: Vec<u32>) {
        self.u32s.insert((li, what), v);
    }
    pub fn get(&self, li: usize, what: Saved) -> &[f64] {
        &self.f64s[&(li, what)]
    }
    pub fn get_u32(&self, li: usize, what: Saved) -> &[u32] {
        &self.u32s[&(li, what)]
    }
}

/// What a layer's CPU forward sees.
pub struct CpuFwd<'a> {
    pub li: usize,
    pub n: usize,
    pub train: bool,
    pub dropout_seed: u32,
    /// The inputs' values, one per input.
    pub x: Vec<&'a [f64]>,
    pub in_shape: Shape,
    pub out_shape: Shape,
    pub y: &'a mut [f64],
    /// All parameters (batch norm updates its moving statistics in place).
    pub params: &'a mut [f64],
    pub p: CpuParams<'a>,
    pub saved: &'a mut CpuSaved,
}

/// What a layer's CPU backward sees.
pub struct CpuBwd<'a> {
    pub li: usize,
    pub n: usize,
    pub dropout_seed: u32,
    pub x: Vec<&'a [f64]>,
    pub in_shape: Shape,
    pub out_shape: Shape,
    /// This layer's output and the gradient flowing into it.
    pub y: &'a [f64],
    pub dy: &'a [f64],
    pub params: &'a [f64],
    pub grads: &'a mut [f64],
    pub p: CpuParams<'a>,
    pub saved: &'a CpuSaved,
    /// The gradient of each input, to be written (zeroed, input-sized).
    pub dx: Vec<Vec<f64>>,
}

/// (H, W, C) of an image input, or what is wrong.
pub(crate) fn image(s: Shape) -> Result<(usize, usize, usize), String> {
    match s {
        Shape::Hwc(h, w, c) => Ok((h, w, c)),
        Shape::Flat(_) => Err(format!("needs an image input (H, W, C), got {s}")),
    }
}

/// Output (OH, OW) of a k×k window at stride s, or what is wrong.
pub(crate) fn spatial(
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: crate::cpu::Padding,
) -> Result<(usize, usize), String> {
    use crate::cpu::{Padding, out_size};
    if k == 0 || s == 0 {
        return Err(format!("kernel {k} and stride {s} must be ≥ 1"));
    }
    if p == Padding::Valid && (h < k || w < k) {
        return Err(format!(
            "a {k}×{k} window with valid padding does not fit the {h}×{w} input"
        ));
    }
    Ok((out_size(h, k, s, p).0, out_size(w, k, s, p).0))
}
