//! Benchmark cases of `elementwise` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// add at the model's residual 8×45×45×256 (forward reads a, b and writes y; backward reads
/// dy and writes da, db) and dropout at the head's 8×1024: memory-bound, GB/s.
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let k = Elementwise::new(ctx);
    let len = 8 * 45 * 45 * 256;
    let bytes = (len * 4) as u64;
    let a = ctx.upload("a", &random_vec(1, len, -1.0, 1.0));
    let b = ctx.upload("b", &random_vec(2, len, -1.0, 1.0));
    let y = ctx.zeros("y", len);
    let d2 = ctx.zeros("db", len);
    let dlen = 8 * 1024;
    let dbytes = (dlen * 4) as u64;
    let dx = ctx.upload("x", &random_vec(3, dlen, -1.0, 1.0));
    let dy = ctx.zeros("y", dlen);
    vec![
        BenchCase {
            group: "add",
            id: "8x45x45x256/forward".into(),
            work: Work::Bytes(3 * bytes),
            dispatches: vec![k.add_forward(ctx, &y, &a, &b, len)],
            buffers: vec![],
        },
        BenchCase {
            group: "add",
            id: "8x45x45x256/backward".into(),
            work: Work::Bytes(3 * bytes),
            dispatches: vec![k.add_backward(ctx, &y, &d2, &a, len)],
            buffers: vec![],
        },
        BenchCase {
            group: "add",
            id: "8x45x45x256/backward/accumulate".into(),
            work: Work::Bytes(3 * bytes),
            dispatches: vec![k.add_backward_accumulate(ctx, &y, &a, len)],
            buffers: vec![a, b, y, d2],
        },
        BenchCase {
            group: "dropout",
            id: "8x1024/forward".into(),
            work: Work::Bytes(2 * dbytes),
            dispatches: vec![k.dropout_forward(ctx, &dy, &dx, dlen, 42, 0.5)],
            buffers: vec![],
        },
        BenchCase {
            group: "dropout",
            id: "8x1024/backward".into(),
            work: Work::Bytes(2 * dbytes),
            dispatches: vec![k.dropout_backward(ctx, &dy, &dx, dlen, 42, 0.5)],
            buffers: vec![dx, dy],
        },
    ]
}
