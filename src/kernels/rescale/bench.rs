//! Benchmark cases of `rescale` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// Rescaling of the model's input batch 8×180×180×3 (memory-bound: GB/s).
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let len = 8 * 180 * 180 * 3;
    let k = Rescale::new(ctx);
    let x = ctx.upload("x", &random_vec(1, len, 0.0, 255.0));
    let y = ctx.zeros("y", len);
    let sample = 180 * 180 * 3;
    let bytes: Vec<u8> = (0..len).map(|i| (i * 131 % 256) as u8).collect();
    let xb = ctx.upload("xb", &pack_u8(&bytes, sample));
    let yb = ctx.zeros("y", len);
    vec![
        BenchCase {
            group: "rescale",
            id: "8x180x180x3/forward".into(),
            work: Work::Bytes(2 * (len * 4) as u64),
            dispatches: vec![k.forward(ctx, &y, &x, len, 1.0 / 255.0, 0.0)],
            buffers: vec![x, y],
        },
        // The input batch uploaded as bytes, widened to f32 (1 byte read, 4 written per value).
        BenchCase {
            group: "rescale",
            id: "8x180x180x3/u8_forward".into(),
            work: Work::Bytes((len * 5) as u64),
            dispatches: vec![k.forward_u8(ctx, &yb, &xb, len, sample, (1.0, 0.0))],
            buffers: vec![xb, yb],
        },
    ]
}
