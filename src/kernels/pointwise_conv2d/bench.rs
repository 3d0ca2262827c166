//! Benchmark cases of `pointwise_conv2d` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// The model's 8×90×90 128→256 convolution at stride 1, and its strided residual (stride 2),
/// all three passes with the adapter's variant (GFLOP/s; 2·pixels·CIN·COUT per pass).
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let k = PointwiseConv2d::new(ctx);
    let vn = k.variant().name();
    let mut v = Vec::new();
    for stride in [1, 2] {
        let s = PointwiseShape {
            n: 8,
            h: 90,
            w: 90,
            cin: 128,
            cout: 256,
            stride,
        };
        let (oh, ow) = s.out_hw();
        let (xl, yl) = (s.n * s.h * s.w * s.cin, s.n * oh * ow * s.cout);
        let flops = Work::Flops(2 * (s.pixels() * s.cin * s.cout) as u64);
        let id = |pass: &str| format!("8x90x90x128to256_s{stride}/{pass}/{vn}");
        let x = ctx.upload("x", &random_vec(1, xl, -1.0, 1.0));
        let w = ctx.upload("w", &random_vec(2, s.cin * s.cout, -0.1, 0.1));
        let b = ctx.upload("b", &random_vec(3, s.cout, -0.1, 0.1));
        let y = ctx.zeros("y", yl);
        let dx = ctx.zeros("dx", xl);
        let dw = ctx.zeros("dw", s.cin * s.cout);
        let db = ctx.zeros("db", s.cout);
        let scratch = ctx.zeros("scratch", k.backward_weight_scratch_len(&s));
        // Wᵀ for backward_input (at least one float: a zero-sized binding is invalid).
        let wt = ctx.zeros("w transposed", k.backward_input_scratch_len(&s).max(1));
        v.push(BenchCase {
            group: "pointwise_conv2d",
            id: id("forward"),
            work: flops,
            dispatches: vec![k.forward(ctx, &y, &x, &w, &b, &s)],
            buffers: vec![],
        });
        v.push(BenchCase {
            group: "pointwise_conv2d",
            id: id("backward_input"),
            work: flops,
            dispatches: k.backward_input(ctx, &dx, &y, &w, Some(&wt), &s),
            buffers: vec![],
        });
        v.push(BenchCase {
            group: "pointwise_conv2d",
            id: id("backward_weight"),
            work: flops,
            dispatches: k.backward_weight(
                ctx,
                WeightGrads {
                    dw: &dw,
                    db: &db,
                    scratch: Some(&scratch),
                },
                &y,
                &x,
                &s,
            ),
            buffers: vec![x, w, b, y, dx, dw, db, scratch, wt],
        });
    }
    v
}
