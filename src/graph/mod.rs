//! The model description: a Keras-functional-style builder with shape inference.
//!
//! A model is a list of layers in topological order (each layer can only consume tensors that
//! already exist, so build order is a valid execution order). Every layer produces one tensor,
//! whose per-sample shape ([`Shape`], batch dimension excluded, channels last) is inferred when
//! the layer is added; a mistake is an error naming the layer and the shapes involved.

use std::fmt;

use thiserror::Error;

pub mod bind;
pub mod error;
pub mod executor;
pub mod fusion;
pub mod layers;
pub mod liveness;
pub mod memory;
pub mod names;
pub mod params;
pub mod planner;
pub mod reference;
pub mod schedule;
pub use names::{Param, Saved};
pub use params::{ParamLayout, ParamSlot};

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

/// The layer kinds of the Keras example's network: each wraps its layer type's description
/// (see [`layers`], where each type's geometry, GPU plan and CPU reference live).
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    Input,
    Rescaling(layers::Rescaling),
    Conv2D(layers::Conv2D),
    SeparableConv2D(layers::SeparableConv2D),
    BatchNormalization(layers::BatchNormalization),
    Relu(layers::Relu),
    MaxPooling2D(layers::MaxPooling2D),
    GlobalAveragePooling2D(layers::GlobalAveragePooling2D),
    Add(layers::Add),
    Dropout(layers::Dropout),
    Dense(layers::Dense),
}

impl LayerKind {
    /// The Keras class name, shown in summaries.
    pub fn type_name(&self) -> &'static str {
        layers::ops(self).type_name()
    }

    /// The Keras default layer-name stem (`conv2d`, `separable_conv2d`, …).
    fn name_stem(&self) -> &'static str {
        layers::ops(self).name_stem()
    }
}

/// Index of a tensor (= the layer that produced it) in a [`Model`].
pub type TensorId = usize;

/// One parameter tensor of a layer, with its Keras name and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Which parameter of its layer ([`Param::keras_name`] is the Keras weight name).
    pub name: Param,
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

/// A kernel with Keras' glorot_uniform fans: for (kh, kw, a, b) fan_in = kh·kw·a, fan_out =
/// kh·kw·b; dense (a, b).
pub(crate) fn kernel_param(name: Param, shape: Vec<usize>) -> ParamSpec {
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

/// A per-channel vector parameter.
pub(crate) fn vector_param(name: Param, len: usize, trainable: bool, init: Init) -> ParamSpec {
    ParamSpec {
        name,
        shape: vec![len],
        trainable,
        init,
    }
}

/// Output shape and parameters of a `kind` layer called `name` on inputs of `ins`, or an error
/// naming the layer and the shapes.
fn infer(
    name: &str,
    kind: &LayerKind,
    ins: &[Shape],
) -> Result<(Shape, Vec<ParamSpec>), GraphError> {
    let ops = layers::ops(kind);
    let err = |message: String| GraphError::Shape {
        layer: name.to_string(),
        kind: kind.type_name(),
        message,
    };
    if ops.arity() == 0 || ins.len() != ops.arity() {
        return Err(err(format!(
            "takes {} input(s), got {}",
            ops.arity().max(1),
            ins.len()
        )));
    }
    ops.infer(ins).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Padding;

    #[test]
    fn add_with_mismatched_shapes_names_the_layer_and_shapes() {
        let mut m = Model::new();
        let x = m.input(8, 8, 3);
        let a = m
            .add_layer(
                LayerKind::Conv2D(layers::Conv2D {
                    filters: 4,
                    kernel: 3,
                    stride: 1,
                    padding: Padding::Same,
                }),
                &[x],
            )
            .unwrap();
        let b = m
            .add_layer(
                LayerKind::Conv2D(layers::Conv2D {
                    filters: 4,
                    kernel: 3,
                    stride: 2,
                    padding: Padding::Same,
                }),
                &[x],
            )
            .unwrap();
        let e = m
            .add_layer(LayerKind::Add(layers::Add), &[a, b])
            .unwrap_err();
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
                LayerKind::Dense(layers::Dense {
                    units: 1,
                    activation: Activation::Sigmoid,
                }),
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
                LayerKind::Conv2D(layers::Conv2D {
                    filters: 1,
                    kernel: 3,
                    stride: 1,
                    padding: Padding::Valid,
                }),
                &[x],
            )
            .unwrap_err();
        assert!(e.to_string().contains("does not fit the 2×2 input"), "{e}");
    }

    #[test]
    fn layer_names_follow_keras() {
        let mut m = Model::new();
        let x = m.input(8, 8, 3);
        let a = m.add_layer(LayerKind::Relu(layers::Relu), &[x]).unwrap();
        let b = m.add_layer(LayerKind::Relu(layers::Relu), &[a]).unwrap();
        assert_eq!(m.layers[a].name, "activation");
        assert_eq!(m.layers[b].name, "activation_1");
        assert_eq!(group_thousands(2731065), "2,731,065");
        assert_eq!(group_thousands(512), "512");
    }
}
