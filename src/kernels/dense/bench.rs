//! Benchmark cases of `dense` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// The model's classifier head: 8 × 1024 → 1 (tiny; GFLOP/s for completeness).
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let (batch, inp, out) = (8, 1024, 1);
    let s = DenseShape { n: batch, inp, out };
    let k = Dense::new(ctx);
    let vn = k.variant().name();
    let x = ctx.upload("x", &random_vec(1, batch * inp, -1.0, 1.0));
    let w = ctx.upload("w", &random_vec(2, inp * out, -0.1, 0.1));
    let b = ctx.zeros("b", out);
    let y = ctx.zeros("y", batch * out);
    let dx = ctx.zeros("dx", batch * inp);
    let dw = ctx.zeros("dw", inp * out);
    let db = ctx.zeros("db", out);
    let scratch = ctx.zeros("scratch", k.backward_weight_scratch_len(&s));
    let flops = Work::Flops(2 * (batch * inp * out) as u64);
    let id = |pass: &str| format!("8x1024to1/{pass}/{vn}");
    vec![
        BenchCase {
            group: "dense",
            id: id("forward"),
            work: flops,
            dispatches: vec![k.forward(ctx, &y, &x, &w, &b, &s)],
            buffers: vec![],
        },
        BenchCase {
            group: "dense",
            id: id("backward_input"),
            work: flops,
            dispatches: k.backward_input(ctx, &dx, &y, &w, &s),
            buffers: vec![],
        },
        BenchCase {
            group: "dense",
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
            buffers: vec![x, w, b, y, dx, dw, db, scratch],
        },
    ]
}
