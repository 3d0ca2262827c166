//! Benchmark cases of `gemm` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// GEMM variants side by side at 1024³ and 2048³ (naive only at 1024³: it takes many seconds
/// at 2048³ on a CPU adapter).
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let g = Gemm::new(ctx);
    let mut v = Vec::new();
    for s in [1024, 2048] {
        for variant in g.available() {
            if variant == Variant::Naive && s > 1024 {
                continue;
            }
            let a = ctx.upload("a", &random_vec(1, s * s, -1.0, 1.0));
            let b = ctx.upload("b", &random_vec(2, s * s, -1.0, 1.0));
            let c = ctx.zeros("c", s * s);
            let dims = GemmDims { m: s, n: s, k: s };
            v.push(BenchCase {
                group: "gemm",
                id: format!("{s}x{s}x{s}/forward/{}", variant.name()),
                work: Work::Flops(2 * (s * s * s) as u64),
                dispatches: vec![g.forward(ctx, variant, &c, &a, &b, &dims)],
                buffers: vec![a, b, c],
            });
        }
    }
    v
}
