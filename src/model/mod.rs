//! The network of the Keras "image classification from scratch" example (a small Xception).

pub mod geometry;

use crate::cpu::Padding;
use crate::graph::{Activation, GraphError, LayerKind, Model, layers};
pub use geometry::{ColorMode, ImageSize};

/// Configuration of [`xception_mini`].
#[derive(Debug, Clone, Copy)]
pub struct XceptionConfig {
    /// Input height and width (the example uses 180×180).
    pub image_size: ImageSize,
    /// Input channels (3 for RGB, 1 for grayscale).
    pub channels: usize,
    /// Number of classes; 2 gives one sigmoid output, more give a softmax over K.
    pub classes: usize,
    /// Multiplies every channel count (1.0 is the original network).
    pub width: f32,
    /// Dropout before the classifier (0.5 in the 2022 example).
    pub dropout: f32,
    /// One independent sigmoid per class (multi-label, binary cross-entropy per label) instead
    /// of a softmax (or one sigmoid for two classes).
    pub multi_label: bool,
}

impl Default for XceptionConfig {
    fn default() -> Self {
        Self {
            image_size: ImageSize::square(180),
            channels: 3,
            classes: 2,
            width: 1.0,
            dropout: 0.5,
            multi_label: false,
        }
    }
}

/// Largest width multiplier [`xception_mini`] builds. At width w the largest weight tensor
/// (the last separable convolution's pointwise kernel, 728w × 1024w floats) takes 2.98·w² MB;
/// past 37 it exceeds 4 GiB, more than any device can bind (WebGPU sizes bindings in u32
/// bytes), so no GPU could run it. Below this, whether a width fits a given GPU is checked
/// against its limits when the step is compiled (`graph::executor::check_device_fit`).
pub const MAX_WIDTH: f32 = 32.0;

/// Why `width` cannot be built, if it cannot: a message naming the allowed range.
pub fn check_width(width: f32) -> Result<(), String> {
    if width.is_finite() && width > 0.0 && width <= MAX_WIDTH {
        Ok(())
    } else {
        Err(format!(
            "width {width} is outside (0, {MAX_WIDTH}]: the channel multiplier must be positive, \
             and past {MAX_WIDTH} one layer's weights exceed what any GPU can bind"
        ))
    }
}

/// Channel count `c` scaled by the width multiplier (at least 1).
pub fn scaled(c: usize, width: f32) -> usize {
    ((c as f32 * width).round() as usize).max(1)
}

/// Builds the example's network: Rescaling 1/255; Conv2D 128 3 s2 same + BN + ReLU; blocks
/// [ReLU, SepConv, BN, ReLU, SepConv, BN, MaxPool 3 s2 same] + 1×1 s2 residual Conv2D, added,
/// for 256, 512, 728; SepConv 1024 + BN + ReLU; global average pooling; Dropout; Dense 1 sigmoid
/// (2 classes) or Dense K softmax.
pub fn xception_mini(cfg: &XceptionConfig) -> Result<Model, GraphError> {
    check_width(cfg.width).map_err(|message| GraphError::Shape {
        layer: "xception_mini".into(),
        kind: "--width",
        message,
    })?;
    let w = |c| scaled(c, cfg.width);
    let mut m = Model::new();
    let ImageSize { height, width } = cfg.image_size;
    let x = m.input(height, width, cfg.channels);
    let scale = layers::Rescaling {
        scale: 1.0 / 255.0,
        offset: 0.0,
    };
    let x = m.add_layer(LayerKind::Rescaling(scale), &[x])?;
    let x = m.add_layer(conv(w(128), 3, 2), &[x])?;
    let x = m.add_layer(batch_norm(), &[x])?;
    let mut x = m.add_layer(relu(), &[x])?;
    let mut previous = x;
    for size in [256, 512, 728] {
        for _ in 0..2 {
            x = m.add_layer(relu(), &[x])?;
            x = m.add_layer(separable(w(size)), &[x])?;
            x = m.add_layer(batch_norm(), &[x])?;
        }
        let pool = layers::MaxPooling2D {
            pool: 3,
            stride: 2,
            padding: Padding::Same,
        };
        x = m.add_layer(LayerKind::MaxPooling2D(pool), &[x])?;
        let residual = m.add_layer(conv(w(size), 1, 2), &[previous])?;
        x = m.add_layer(LayerKind::Add(layers::Add), &[x, residual])?;
        previous = x;
    }
    x = m.add_layer(separable(w(1024)), &[x])?;
    x = m.add_layer(batch_norm(), &[x])?;
    x = m.add_layer(relu(), &[x])?;
    let gap = layers::GlobalAveragePooling2D;
    x = m.add_layer(LayerKind::GlobalAveragePooling2D(gap), &[x])?;
    let dropout = layers::Dropout { rate: cfg.dropout };
    x = m.add_layer(LayerKind::Dropout(dropout), &[x])?;
    let (units, activation) = if cfg.multi_label {
        (cfg.classes, Activation::Sigmoid)
    } else if cfg.classes <= 2 {
        (1, Activation::Sigmoid)
    } else {
        (cfg.classes, Activation::Softmax)
    };
    m.add_layer(LayerKind::Dense(layers::Dense { units, activation }), &[x])?;
    Ok(m)
}

/// Conv2D with "same" padding.
fn conv(filters: usize, kernel: usize, stride: usize) -> LayerKind {
    LayerKind::Conv2D(layers::Conv2D {
        filters,
        kernel,
        stride,
        padding: Padding::Same,
    })
}

/// SeparableConv2D 3×3 "same".
fn separable(filters: usize) -> LayerKind {
    LayerKind::SeparableConv2D(layers::SeparableConv2D {
        filters,
        kernel: 3,
        padding: Padding::Same,
    })
}

/// BatchNormalization with Keras' defaults.
fn batch_norm() -> LayerKind {
    LayerKind::BatchNormalization(layers::BatchNormalization {
        momentum: crate::shapes::MOMENTUM,
        epsilon: crate::shapes::EPSILON,
    })
}

fn relu() -> LayerKind {
    LayerKind::Relu(layers::Relu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Shape;

    #[test]
    fn parameter_counts_match_keras_model_summary() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        assert_eq!(m.param_counts(), (2_731_065, 2_722_777, 8_288));
        assert_eq!(m.output_shape().unwrap(), Shape::Flat(1));
    }

    #[test]
    fn spatial_sizes_follow_tensorflow_same_padding() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let pools: Vec<Shape> = m
            .layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::MaxPooling2D(..)))
            .map(|l| l.output)
            .collect();
        assert_eq!(
            pools,
            vec![
                Shape::Hwc(45, 45, 256),
                Shape::Hwc(23, 23, 512),
                Shape::Hwc(12, 12, 728)
            ]
        );
        assert_eq!(m.layers[2].output, Shape::Hwc(90, 90, 128));
    }

    #[test]
    fn widths_outside_the_buildable_range_are_refused_with_the_range() {
        for width in [0.0, -1.0, f32::NAN, f32::INFINITY, 32.5, 1e30] {
            let e = xception_mini(&XceptionConfig {
                width,
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
            assert!(e.contains("(0, 32]"), "{width}: {e}");
        }
        // The bound's reason: at 38 the largest kernel would need over 4 GiB.
        let floats = |w: f32| (scaled(728, w) * scaled(1024, w)) as u64;
        assert!(floats(MAX_WIDTH) * 4 < 1 << 32);
        assert!(floats(38.0) * 4 > 1 << 32);
        assert!(check_width(MAX_WIDTH).is_ok() && check_width(4.0).is_ok());
    }

    #[test]
    fn multiclass_and_width_multiplier() {
        let m = xception_mini(&XceptionConfig {
            classes: 10,
            width: 1.0 / 16.0,
            image_size: ImageSize::square(32),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(m.output_shape().unwrap(), Shape::Flat(10));
        assert_eq!(m.layers[2].output, Shape::Hwc(16, 16, 8));
        assert!(m.layers.iter().any(|l| l.output == Shape::Hwc(2, 2, 46)));
    }

    #[test]
    fn non_square_grayscale_input_keeps_height_and_width_apart() {
        let m = xception_mini(&XceptionConfig {
            image_size: ImageSize {
                height: 12,
                width: 20,
            },
            channels: 1,
            width: 1.0 / 16.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(m.layers[0].output, Shape::Hwc(12, 20, 1));
        // Stride 2, "same": ceil(12/2) × ceil(20/2); the pools go on to 3×5, 2×3, 1×2.
        assert_eq!(m.layers[2].output, Shape::Hwc(6, 10, 8));
        assert!(m.layers.iter().any(|l| l.output == Shape::Hwc(1, 2, 46)));
        // One input channel: the stem's kernel is 3×3×1×8 (+ bias) instead of 3×3×3×8.
        let rgb = xception_mini(&XceptionConfig {
            channels: 3,
            image_size: ImageSize::square(12),
            width: 1.0 / 16.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(rgb.param_counts().0 - m.param_counts().0, 2 * 9 * 8);
    }
}
