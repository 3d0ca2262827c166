//! The hot kernels of a model, for the kernel-variant tuner ([`crate::kernels::tune`], which
//! knows shapes, not models).

use crate::gpu::GpuContext;
use crate::graph::layers::hwc;
use crate::graph::{LayerKind, Model};
use crate::kernels::tune::{self, HotLayer, ModelShapes};

/// Each GEMM (1×1 and pointwise convolutions), k×k convolution and batch norm of `model`, for
/// one image.
pub fn hot_layers(model: &Model) -> Vec<HotLayer> {
    let mut out = Vec::new();
    for l in &model.layers {
        let Some(&input) = l.inputs.first() else {
            continue;
        };
        let in_shape = model.layers[input].output;
        let gemm = || {
            let ((oh, ow, n), (_, _, k)) = (hwc(l.output), hwc(in_shape));
            HotLayer::Gemm {
                pixels: oh * ow,
                k,
                n,
            }
        };
        match &l.kind {
            LayerKind::SeparableConv2D(_) => out.push(gemm()),
            // Kernel 1 runs on the GEMM (see `Conv2D::pointwise`).
            LayerKind::Conv2D(c) if c.kernel == 1 => out.push(gemm()),
            LayerKind::Conv2D(c) => out.push(HotLayer::Conv(c.shape(1, in_shape))),
            LayerKind::BatchNormalization(_) => {
                let (h, w, c) = hwc(l.output);
                out.push(HotLayer::Bn {
                    pixels: h * w,
                    channels: c,
                });
            }
            _ => {}
        }
    }
    out
}

/// [`tune::prepare`] at `model`'s shapes for batches of up to `batch`: on the CLI's first
/// compile on an adapter, the variants are measured and cached; otherwise nothing.
pub fn prepare_tuning(ctx: &GpuContext, model: &Model, batch: usize) {
    if tune::active() {
        tune::prepare(ctx, &ModelShapes::pick(&hot_layers(model), batch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{XceptionConfig, xception_mini};

    #[test]
    fn the_example_network_lists_its_stem_pointwise_gemms_and_batch_norms() {
        let m = xception_mini(&XceptionConfig {
            image_size: crate::model::ImageSize::square(64),
            width: 0.25,
            classes: 2,
            ..Default::default()
        })
        .unwrap();
        let hot = hot_layers(&m);
        let convs: Vec<_> = (hot.iter())
            .filter_map(|h| match h {
                HotLayer::Conv(s) => Some((s.h, s.k, s.stride)),
                _ => None,
            })
            .collect();
        assert_eq!(convs, [(64, 3, 2)], "only the stem is a k×k convolution");
        let gemms = hot
            .iter()
            .filter(|h| matches!(h, HotLayer::Gemm { .. }))
            .count();
        let bns = hot
            .iter()
            .filter(|h| matches!(h, HotLayer::Bn { .. }))
            .count();
        // The Keras example: 7 separable convolutions and 3 residual 1×1 projections; a batch
        // norm after the stem, after each separable convolution of the 3 blocks, and the last.
        assert_eq!((gemms, bns), (10, 8));
        // The picked shapes: the stem, the widest pointwise GEMM (32×32 pixels after the stem)
        // and the deepest, the largest batch norm.
        let s = ModelShapes::pick(&hot, 16);
        assert_eq!(s.gemm.len(), 2);
        assert_eq!(s.gemm[0].m % (32 * 32), 0, "{s:?}");
        assert_eq!((s.conv[0].h, s.conv[0].k), (64, 3));
        assert_eq!(s.bn.len(), 1);
    }
}
