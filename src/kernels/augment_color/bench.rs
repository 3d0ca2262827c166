//! Benchmark cases of `augment_color` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;
use crate::kernels::augment::Augment;

/// Contrast + brightness of one 8×180×180×3 batch (memory-bound: GB/s, counting the means pass's
/// read of y and the apply pass's read and write).
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let (n, h, w, c) = (8, 180, 180, 3);
    let len = n * h * w * c;
    let s = NhwcShape { n, h, w, c };
    let k = AugmentColor::new(ctx);
    let y = ctx.upload("y", &random_vec(1, len, 0.0, 255.0));
    let means = ctx.zeros("means", AugmentColor::means_len(&s));
    let seed = Augment::seed_buffer(ctx, 1);
    let cfg = AugmentConfig {
        contrast: 0.2,
        brightness: 0.2,
        ..AugmentConfig::NONE
    };
    let dispatches = k.forward(ctx, &y, &means, &seed, &s, &cfg);
    vec![BenchCase {
        group: "augment_color",
        id: "8x180x180x3/forward".into(),
        work: Work::Bytes(3 * (len * 4) as u64),
        dispatches,
        buffers: vec![y, means, seed],
    }]
}
