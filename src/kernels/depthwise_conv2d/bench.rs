//! Benchmark cases of `depthwise_conv2d` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// The model's depthwise layer at its largest (8×90×90×256, k3, same), all passes, in every
/// variant the adapter runs. FLOPs = 2·MACs.
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    (Variant::available(ctx).into_iter())
        .flat_map(|v| variant_cases(ctx, v))
        .collect()
}

fn variant_cases(ctx: &GpuContext, variant: Variant) -> Vec<BenchCase> {
    let s = DepthwiseShape {
        n: 8,
        h: 90,
        w: 90,
        c: 256,
        k: 3,
        padding: Padding::Same,
    };
    let k = DepthwiseConv2d::with_variant(ctx, 3, variant).expect("an available variant");
    let x = ctx.upload("x", &random_vec(1, s.x_len(), -1.0, 1.0));
    let w = ctx.upload("w", &random_vec(2, s.w_len(), -1.0, 1.0));
    let dy = ctx.upload("dy", &random_vec(3, s.y_len(), -1.0, 1.0));
    let y = ctx.zeros("y", s.y_len());
    let dx = ctx.zeros("dx", s.x_len());
    let dw = ctx.zeros("dw", s.w_len());
    let scratch = ctx.zeros("scratch", DepthwiseConv2d::backward_weight_scratch_len(&s));
    let flops = 2 * s.macs() as u64;
    let id = format!("8x90x90x256_k3/{}", variant.name());
    vec![
        BenchCase {
            group: "depthwise_conv2d",
            id: format!("{id}/forward"),
            work: Work::Flops(flops),
            dispatches: vec![k.forward(ctx, &y, &x, &w, &s)],
            buffers: vec![],
        },
        BenchCase {
            group: "depthwise_conv2d",
            id: format!("{id}/backward_input"),
            work: Work::Flops(flops),
            dispatches: vec![k.backward_input(ctx, &dx, &dy, &w, &s)],
            buffers: vec![],
        },
        BenchCase {
            group: "depthwise_conv2d",
            id: format!("{id}/backward_weight"),
            work: Work::Flops(flops),
            dispatches: k.backward_weight(ctx, &dw, &scratch, &dy, &x, &s).into(),
            buffers: vec![],
        },
        // The ReLU before the convolution folded into its loads (x is the ReLU's input).
        BenchCase {
            group: "depthwise_conv2d",
            id: format!("{id}/forward_relu"),
            work: Work::Flops(flops),
            dispatches: vec![k.forward_relu(ctx, &y, &x, &w, &s)],
            buffers: vec![],
        },
        BenchCase {
            group: "depthwise_conv2d",
            id: format!("{id}/backward_input_relu"),
            work: Work::Flops(flops),
            dispatches: vec![k.backward_input_relu(ctx, &dx, &dy, &w, &x, &s)],
            buffers: vec![],
        },
        BenchCase {
            group: "depthwise_conv2d",
            id: format!("{id}/backward_weight_relu"),
            work: Work::Flops(flops),
            dispatches: k
                .backward_weight_relu(ctx, &dw, &scratch, &dy, &x, &s)
                .into(),
            buffers: vec![x, w, dy, y, dx, dw, scratch],
        },
    ]
}
