//! The model description: a Keras-functional-style builder with shape inference.
//!
//! A model is a list of layers in topological order (each layer can only consume tensors that
//! already exist, so build order is a valid execution order). Every layer produces one tensor,
//! whose per-sample shape ([`Shape`], batch dimension excluded, channels last) is inferred when
//! the layer is added; a mistake is an error naming the layer and the shapes involved.

use std::fmt;

use thiserror::Error;

pub mod executor;
pub mod params;
pub mod parity;
pub mod pool;
pub mod reference;
pub use params::{ParamLayout, ParamSlot};

use crate::cpu::{Padding, out_size};

/// Per-sample tensor shape, channels last, batch excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An image-like tensor [H, W, C].
    Hwc(usize, usize, usize),
    /// A flat feature vector [F].
    Flat(usize),
}

impl Shape {
    /// Elements per sample.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Hwc(h, w, c) => h * w * c,
            Shape::Flat(f) => f,
        }
    }

    /// True for a zero-sized shape.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channel (last) dimension.
    pub fn channels(&self) -> usize {
        match *self {
            Shape::Hwc(_, _, c) => c,
            Shape::Flat(f) => f,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Hwc(h, w, c) => write!(f, "(None, {h}, {w}, {c})"),
            Shape::Flat(n) => write!(f, "(None, {n})"),
        }
    }
}

/// Output activation of a Dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    Sigmoid,
    Softmax,
}

/// The layer kinds of the Keras example's network.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    Input,
    /// y = x·scale + offset.
    Rescaling {
        scale: f32,
        offset: f32,
    },
    Conv2D {
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
    },
    /// Depthwise k×k (multiplier 1, no bias), then pointwise 1×1 with one bias.
    SeparableConv2D {
        filters: usize,
        kernel: usize,
        padding: Padding,
    },
    /// Keras defaults: momentum 0.99, epsilon 1e-3.
    BatchNormalization {
        momentum: f32,
        epsilon: f32,
    },
    Relu,
    MaxPooling2D {
        pool: usize,
        stride: usize,
        padding: Padding,
    },
    GlobalAveragePooling2D,
    Add,
    Dropout {
        rate: f32,
    },
    Dense {
        units: usize,
        activation: Activation,
    },
}

impl LayerKind {
    /// The Keras class name, shown in summaries.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerKind::Input => "InputLayer",
            LayerKind::Rescaling { .. } => "Rescaling",
            LayerKind::Conv2D { .. } => "Conv2D",
            LayerKind::SeparableConv2D { .. } => "SeparableConv2D",
            LayerKind::BatchNormalization { .. } => "BatchNormalization",
            LayerKind::Relu => "Activation",
            LayerKind::MaxPooling2D { .. } => "MaxPooling2D",
            LayerKind::GlobalAveragePooling2D => "GlobalAveragePooling2D",
            LayerKind::Add => "Add",
            LayerKind::Dropout { .. } => "Dropout",
            LayerKind::Dense { .. } => "Dense",
        }
    }

    /// The Keras default layer-name stem (`conv2d`, `separable_conv2d`, …).
    fn name_stem(&self) -> &'static str {
        match self {
            LayerKind::Input => "input_layer",
            LayerKind::Rescaling { .. } => "rescaling",
            LayerKind::Conv2D { .. } => "conv2d",
            LayerKind::SeparableConv2D { .. } => "separable_conv2d",
            LayerKind::BatchNormalization { .. } => "batch_normalization",
            LayerKind::Relu => "activation",
            LayerKind::MaxPooling2D { .. } => "max_pooling2d",
            LayerKind::GlobalAveragePooling2D => "global_average_pooling2d",
            LayerKind::Add => "add",
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::Dense { .. } => "dense",
        }
    }
}

/// Index of a tensor (= the layer that produced it) in a [`Model`].
pub type TensorId = usize;

/// One parameter tensor of a layer, with its Keras name and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Keras weight name: `kernel`, `bias`, `depthwise_kernel`, `pointwise_kernel`, `gamma`,
    /// `beta`, `moving_mean`, `moving_variance`.
    pub name: &'static str,
    /// Keras shape, e.g. conv `[kh, kw, cin, cout]`, depthwise `[kh, kw, c, 1]`.
    pub shape: Vec<usize>,
    /// False for batch-norm moving statistics.
    pub trainable: bool,
    pub init: Init,
}

impl ParamSpec {
    /// Element count.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a zero-sized parameter.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a parameter starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// glorot_uniform with Keras' fans: limit sqrt(6 / (fan_in + fan_out)).
    GlorotUniform {
        fan_in: usize,
        fan_out: usize,
    },
    Zeros,
    Ones,
}

/// One layer: its kind, Keras-style name, inputs and inferred output shape.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub kind: LayerKind,
    pub inputs: Vec<TensorId>,
    pub output: Shape,
    pub params: Vec<ParamSpec>,
}

/// A shape or wiring mistake, naming the layer at fault.
#[derive(Debug, Error, PartialEq)]
pub enum GraphError {
    #[error("layer '{layer}' ({kind}): {message}")]
    Shape {
        layer: String,
        kind: &'static str,
        message: String,
    },
    #[error("layer '{layer}': input tensor {input} does not exist (the model has {count} tensors)")]
    UnknownInput {
        layer: String,
        input: TensorId,
        count: usize,
    },
    #[error("the model has no layers")]
    Empty,
}

/// A model: layers in topological order; the last layer's output is the model's output.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub layers: Vec<Layer>,
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    fn next_name(&self, kind: &LayerKind) -> String {
        let stem = kind.name_stem();
        let n = self
            .layers
            .iter()
            .filter(|l| l.kind.name_stem() == stem)
            .count();
        if n == 0 {
            stem.to_string()
        } else {
            format!("{stem}_{n}")
        }
    }

    /// Adds a layer after inferring its output shape; returns its output tensor.
    pub fn add_layer(
        &mut self,
        kind: LayerKind,
        inputs: &[TensorId],
    ) -> Result<TensorId, GraphError> {
        let name = self.next_name(&kind);
        for &i in inputs {
            if i >= self.layers.len() {
                return Err(GraphError::UnknownInput {
                    layer: name,
                    input: i,
                    count: self.layers.len(),
                });
            }
        }
        let in_shapes: Vec<Shape> = inputs.iter().map(|&i| self.layers[i].output).collect();
        let (output, params) = infer(&name, &kind, &in_shapes)?;
        self.layers.push(Layer {
            name,
            kind,
            inputs: inputs.to_vec(),
            output,
            params,
        });
        Ok(self.layers.len() - 1)
    }

    /// `keras.Input(shape=(h, w, c))`.
    pub fn input(&mut self, h: usize, w: usize, c: usize) -> TensorId {
        let name = self.next_name(&LayerKind::Input);
        self.layers.push(Layer {
            name,
            kind: LayerKind::Input,
            inputs: vec![],
            output: Shape::Hwc(h, w, c),
            params: vec![],
        });
        self.layers.len() - 1
    }

    /// The model's output shape.
    pub fn output_shape(&self) -> Result<Shape, GraphError> {
        self.layers
            .last()
            .map(|l| l.output)
            .ok_or(GraphError::Empty)
    }

    /// (total, trainable, non-trainable) parameter counts, as Keras' model.summary() reports.
    pub fn param_counts(&self) -> (usize, usize, usize) {
        let mut t = 0;
        let mut nt = 0;
        for p in self.layers.iter().flat_map(|l| &l.params) {
            if p.trainable {
                t += p.len()
            } else {
                nt += p.len()
            }
        }
        (t + nt, t, nt)
    }

    /// A Keras-like summary table.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let rule = "─".repeat(110);
        s.push_str(&format!(
            "{:<52} {:<22} {:>10}  connected to\n{rule}\n",
            "Layer (type)", "Output Shape", "Param #"
        ));
        for l in &self.layers {
            let params: usize = l.params.iter().map(|p| p.len()).sum();
            let from: Vec<&str> = l
                .inputs
                .iter()
                .map(|&i| self.layers[i].name.as_str())
                .collect();
            s.push_str(&format!(
                "{:<52} {:<22} {:>10}  {}\n",
                format!("{} ({})", l.name, l.kind.type_name()),
                l.output.to_string(),
                group_thousands(params),
                from.join(", ")
            ));
        }
        let (total, trainable, non) = self.param_counts();
        s.push_str(&format!(
            "{rule}\nTotal params: {}\n",
            group_thousands(total)
        ));
        s.push_str(&format!(
            "Trainable params: {}\n",
            group_thousands(trainable)
        ));
        s.push_str(&format!("Non-trainable params: {}\n", group_thousands(non)));
        s
    }
}

/// Thousands separators, as Keras' summary prints counts:
///
/// ```
/// assert_eq!(gpucnn::graph::group_thousands(2731065), "2,731,065");
/// assert_eq!(gpucnn::graph::group_thousands(512), "512");
/// ```
pub fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn kernel_param(name: &'static str, shape: Vec<usize>) -> ParamSpec {
    // Keras' fans for a kernel (kh, kw, a, b): fan_in = kh·kw·a, fan_out = kh·kw·b; dense (a, b).
    let receptive: usize = shape[..shape.len() - 2].iter().product();
    let fan_in = receptive * shape[shape.len() - 2];
    let fan_out = receptive * shape[shape.len() - 1];
    ParamSpec {
        name,
        shape,
        trainable: true,
        init: Init::GlorotUniform { fan_in, fan_out },
    }
}

fn vector_param(name: &'static str, len: usize, trainable: bool, init: Init) -> ParamSpec {
    ParamSpec {
        name,
        shape: vec![len],
        trainable,
        init,
    }
}

fn infer(
    name: &str,
    kind: &LayerKind,
    ins: &[Shape],
) -> Result<(Shape, Vec<ParamSpec>), GraphError> {
    let err = |message: String| GraphError::Shape {
        layer: name.to_string(),
        kind: kind.type_name(),
        message,
    };
    let want_inputs = if matches!(kind, LayerKind::Add) { 2 } else { 1 };
    if matches!(kind, LayerKind::Input) || ins.len() != want_inputs {
        return Err(err(format!(
            "takes {want_inputs} input(s), got {}",
            ins.len()
        )));
    }
    let image = |s: Shape| match s {
        Shape::Hwc(h, w, c) => Ok((h, w, c)),
        Shape::Flat(_) => Err(err(format!("needs an image input (H, W, C), got {s}"))),
    };
    let spatial = |h: usize, w: usize, k: usize, s: usize, p: Padding| {
        if k == 0 || s == 0 {
            return Err(err(format!("kernel {k} and stride {s} must be ≥ 1")));
        }
        if p == Padding::Valid && (h < k || w < k) {
            return Err(err(format!(
                "a {k}×{k} window with valid padding does not fit the {h}×{w} input"
            )));
        }
        Ok((out_size(h, k, s, p).0, out_size(w, k, s, p).0))
    };
    let x = ins[0];
    Ok(match *kind {
        LayerKind::Input => unreachable!(),
        LayerKind::Rescaling { .. } | LayerKind::Relu | LayerKind::Dropout { .. } => {
            if let LayerKind::Dropout { rate } = *kind
                && !(0.0..1.0).contains(&rate)
            {
                return Err(err(format!("rate {rate} must be in [0, 1)")));
            }
            (x, vec![])
        }
        LayerKind::Conv2D {
            filters,
            kernel,
            stride,
            padding,
        } => {
            let (h, w, c) = image(x)?;
            let (oh, ow) = spatial(h, w, kernel, stride, padding)?;
            (
                Shape::Hwc(oh, ow, filters),
                vec![
                    kernel_param("kernel", vec![kernel, kernel, c, filters]),
                    vector_param("bias", filters, true, Init::Zeros),
                ],
            )
        }
        LayerKind::SeparableConv2D {
            filters,
            kernel,
            padding,
        } => {
            let (h, w, c) = image(x)?;
            let (oh, ow) = spatial(h, w, kernel, 1, padding)?;
            (
                Shape::Hwc(oh, ow, filters),
                vec![
                    kernel_param("depthwise_kernel", vec![kernel, kernel, c, 1]),
                    kernel_param("pointwise_kernel", vec![1, 1, c, filters]),
                    vector_param("bias", filters, true, Init::Zeros),
                ],
            )
        }
        LayerKind::BatchNormalization { .. } => {
            let c = x.channels();
            (
                x,
                vec![
                    vector_param("gamma", c, true, Init::Ones),
                    vector_param("beta", c, true, Init::Zeros),
                    vector_param("moving_mean", c, false, Init::Zeros),
                    vector_param("moving_variance", c, false, Init::Ones),
                ],
            )
        }
        LayerKind::MaxPooling2D {
            pool,
            stride,
            padding,
        } => {
            let (h, w, c) = image(x)?;
            let (oh, ow) = spatial(h, w, pool, stride, padding)?;
            (Shape::Hwc(oh, ow, c), vec![])
        }
        LayerKind::GlobalAveragePooling2D => {
            let (_, _, c) = image(x)?;
            (Shape::Flat(c), vec![])
        }
        LayerKind::Add => {
            if ins[0] != ins[1] {
                return Err(err(format!(
                    "inputs must have equal shapes, got {} and {}",
                    ins[0], ins[1]
                )));
            }
            (x, vec![])
        }
        LayerKind::Dense { units, .. } => {
            let f = match x {
                Shape::Flat(f) => f,
                Shape::Hwc(..) => {
                    return Err(err(format!(
                        "needs a flat input (F), got {x}; add GlobalAveragePooling2D first"
                    )));
                }
            };
            (
                Shape::Flat(units),
                vec![
                    kernel_param("kernel", vec![f, units]),
                    vector_param("bias", units, true, Init::Zeros),
                ],
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_with_mismatched_shapes_names_the_layer_and_shapes() {
        let mut m = Model::new();
        let x = m.input(8, 8, 3);
        let a = m
            .add_layer(
                LayerKind::Conv2D {
                    filters: 4,
                    kernel: 3,
                    stride: 1,
                    padding: Padding::Same,
                },
                &[x],
            )
            .unwrap();
        let b = m
            .add_layer(
                LayerKind::Conv2D {
                    filters: 4,
                    kernel: 3,
                    stride: 2,
                    padding: Padding::Same,
                },
                &[x],
            )
            .unwrap();
        let e = m.add_layer(LayerKind::Add, &[a, b]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "layer 'add' (Add): inputs must have equal shapes, got (None, 8, 8, 4) and (None, 4, 4, 4)"
        );
    }

    #[test]
    fn dense_on_an_image_is_an_error() {
        let mut m = Model::new();
        let x = m.input(8, 8, 3);
        let e = m
            .add_layer(
                LayerKind::Dense {
                    units: 1,
                    activation: Activation::Sigmoid,
                },
                &[x],
            )
            .unwrap_err();
        assert!(e.to_string().contains("layer 'dense' (Dense)"), "{e}");
        assert!(e.to_string().contains("GlobalAveragePooling2D"), "{e}");
    }

    #[test]
    fn valid_window_larger_than_input_is_an_error() {
        let mut m = Model::new();
        let x = m.input(2, 2, 1);
        let e = m
            .add_layer(
                LayerKind::Conv2D {
                    filters: 1,
                    kernel: 3,
                    stride: 1,
                    padding: Padding::Valid,
                },
                &[x],
            )
            .unwrap_err();
        assert!(e.to_string().contains("does not fit the 2×2 input"), "{e}");
    }

    #[test]
    fn layer_names_follow_keras() {
        let mut m = Model::new();
        let x = m.input(8, 8, 3);
        let a = m.add_layer(LayerKind::Relu, &[x]).unwrap();
        let b = m.add_layer(LayerKind::Relu, &[a]).unwrap();
        assert_eq!(m.layers[a].name, "activation");
        assert_eq!(m.layers[b].name, "activation_1");
        assert_eq!(group_thousands(2731065), "2,731,065");
        assert_eq!(group_thousands(512), "512");
    }
}
