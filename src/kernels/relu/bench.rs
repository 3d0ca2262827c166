//! Benchmark cases of `relu` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// ReLU forward and backward at the model's 8×90×90×256 activation (memory-bound: GB/s).
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let len = 8 * 90 * 90 * 256;
    let k = Relu::new(ctx);
    let x = ctx.upload("x", &random_vec(1, len, -1.0, 1.0));
    let y = ctx.zeros("y", len);
    let dx = ctx.zeros("dx", len);
    let bytes = (len * 4) as u64;
    vec![
        BenchCase {
            group: "relu",
            id: "8x90x90x256/forward".into(),
            work: Work::Bytes(2 * bytes),
            dispatches: vec![k.forward(ctx, &y, &x, len)],
            buffers: vec![],
        },
        BenchCase {
            group: "relu",
            id: "8x90x90x256/backward".into(),
            work: Work::Bytes(3 * bytes),
            dispatches: vec![k.backward(ctx, &dx, &x, &y, len)],
            buffers: vec![x, y, dx],
        },
    ]
}
