//! Benchmark cases of `augment` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// The Keras example's augmentation of one 8×180×180×3 batch (memory-bound: GB/s, counting one
/// read of x and one write of y).
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let (n, h, w, c) = (8, 180, 180, 3);
    let len = n * h * w * c;
    let k = Augment::new(ctx);
    let x = ctx.upload("x", &random_vec(1, len, 0.0, 255.0));
    let y = ctx.zeros("y", len);
    let seed = Augment::seed_buffer(ctx, 1);
    let d = k.forward(
        ctx,
        &y,
        &x,
        &seed,
        &NhwcShape { n, h, w, c },
        &AugmentConfig::KERAS,
    );
    vec![BenchCase {
        group: "augment",
        id: "8x180x180x3/forward".into(),
        work: Work::Bytes(2 * (len * 4) as u64),
        dispatches: vec![d],
        buffers: vec![x, y, seed],
    }]
}
