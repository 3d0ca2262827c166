//! Benchmark cases of `adam` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// One Adam step over the real model's 2,731,065 parameters (begin_step + update).
/// Memory-bound: reads θ, m, v, g and writes θ, m, v: 28 bytes per parameter.
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let len = 2_731_065;
    let k = Adam::new(ctx);
    let theta = ctx.upload("theta", &random_vec(1, len, -1.0, 1.0));
    let g = ctx.upload("grads", &random_vec(2, len, -1.0, 1.0));
    let (m, v) = (ctx.zeros("m", len), ctx.zeros("v", len));
    let state = Adam::new_state(ctx, 1e-3);
    vec![BenchCase {
        group: "adam",
        id: "2731065/update".into(),
        work: Work::Bytes(28 * len as u64),
        dispatches: vec![
            k.begin_step(ctx, &state),
            k.update(ctx, &theta, Moments { m: &m, v: &v }, &g, &state, None, len),
        ],
        buffers: vec![theta, g, m, v, state],
    }]
}
