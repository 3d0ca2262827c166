//! Benchmark cases of `conv2d` for `benches/kernels.rs`, at the model's real shapes.

use super::checks::shape;
use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// The stem (8×180×180×3 → 128, k3 s2 same; its backward_input is never needed in training,
/// the input image takes no gradient) and the first residual projection (8×90×90×128 → 256,
/// k1 s2), all three passes, every variant this adapter runs. FLOPs = 2·MACs.
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let kernels: Vec<Conv2d> = Variant::available(ctx)
        .into_iter()
        .map(|v| Conv2d::with_variant(ctx, v).expect("an available variant"))
        .collect();
    let mut v = shape_cases(
        ctx,
        &kernels,
        &shape(8, 180, 3, 128, 3, 2),
        "8x180x180x3_128_k3s2",
    );
    v.extend(shape_cases(
        ctx,
        &kernels,
        &shape(8, 90, 128, 256, 1, 2),
        "8x90x90x128_256_k1s2",
    ));
    v
}

fn shape_cases(ctx: &GpuContext, kernels: &[Conv2d], s: &Conv2dShape, id: &str) -> Vec<BenchCase> {
    let flops = Work::Flops(2 * s.macs() as u64);
    let x = ctx.upload("x", &random_vec(1, s.x_len(), -1.0, 1.0));
    let w = ctx.upload("w", &random_vec(2, s.w_len(), -1.0, 1.0));
    let b = ctx.upload("b", &random_vec(3, s.cout, -1.0, 1.0));
    let dy = ctx.upload("dy", &random_vec(4, s.y_len(), -1.0, 1.0));
    let y = ctx.zeros("y", s.y_len());
    let dx = ctx.zeros("dx", s.x_len());
    let dw = ctx.zeros("dw", s.w_len());
    let db = ctx.zeros("db", s.cout);
    let mut v = Vec::new();
    for k in kernels {
        let scratch = ctx.zeros("scratch", k.backward_weight_scratch_len(s));
        let name = k.variant().name();
        v.push(BenchCase {
            group: "conv2d",
            id: format!("{id}/forward/{name}"),
            work: flops,
            dispatches: vec![k.forward(ctx, &y, &x, &w, &b, s)],
            buffers: vec![y.clone(), x.clone(), w.clone(), b.clone()],
        });
        v.push(BenchCase {
            group: "conv2d",
            id: format!("{id}/backward_input/{name}"),
            work: flops,
            dispatches: vec![k.backward_input(ctx, &dx, &dy, &w, s)],
            buffers: vec![dx.clone(), dy.clone(), w.clone()],
        });
        v.push(BenchCase {
            group: "conv2d",
            id: format!("{id}/backward_weight/{name}"),
            work: flops,
            dispatches: k
                .backward_weight(
                    ctx,
                    WeightGrads {
                        dw: &dw,
                        db: &db,
                        scratch: Some(&scratch),
                    },
                    &dy,
                    &x,
                    s,
                )
                .into(),
            buffers: vec![dw.clone(), db.clone(), scratch, dy.clone(), x.clone()],
        });
    }
    v
}
