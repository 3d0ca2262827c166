//! Benchmark cases of `pool` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};
use crate::harness::random_vec;

/// The model's first max pool (8×90×90×256 → 45×45, k3 s2 same), from storage buffers and
/// (`…/texture`, where the adapter allows mirrors) through texture mirrors, and its last global
/// average pool (8×12×12×1024), forward and backward. Memory-bound: GB/s over the bytes each
/// pass must touch at least once.
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let k = Pool::new(ctx);
    let mut v = Vec::new();
    let mut forms = vec![(Pool::new(ctx), "")];
    if crate::gpu::mirror::MirrorScratch::supported(ctx).is_ok() {
        forms.push((Pool::with_mirrors(ctx, true), "/texture"));
    }

    let g = Pool2d::square(8, 90, 90, 256, 3, 2, Padding::Same);
    let (xl, yl) = (g.in_len(), g.out_len());
    let x = ctx.upload("x", &random_vec(1, xl, -1.0, 1.0));
    let (y, dx) = (ctx.zeros("y", yl), ctx.zeros("dx", xl));
    let dy = ctx.upload("dy", &random_vec(2, yl, -1.0, 1.0));
    // The backward's cost does not depend on the argmax values (a select, no branch).
    let argmax = ctx.zeros("argmax", max_pool2d_argmax_len(&g));
    // x and y as f32, the argmax as one byte per element.
    let bytes = (4 * (xl + yl) + yl) as u64;
    for (p, form) in &forms {
        v.push(BenchCase {
            group: "max_pool2d",
            id: format!("8x90x90x256_k3s2/forward{form}"),
            work: Work::Bytes(bytes),
            dispatches: vec![p.max_pool2d_forward(ctx, &y, &argmax, &x, &g)],
            buffers: vec![],
        });
        v.push(BenchCase {
            group: "max_pool2d",
            id: format!("8x90x90x256_k3s2/backward{form}"),
            work: Work::Bytes(bytes),
            dispatches: vec![p.max_pool2d_backward(ctx, &dx, &dy, &argmax, &g)],
            buffers: vec![],
        });
    }
    v.last_mut().expect("a case").buffers = vec![x, y, dx, dy, argmax];

    let shape = [8, 12, 12, 1024];
    let (xl, yl) = (shape.iter().product::<usize>(), 8 * 1024);
    let x = ctx.upload("x", &random_vec(3, xl, -1.0, 1.0));
    let (y, dx) = (ctx.zeros("y", yl), ctx.zeros("dx", xl));
    let bytes = 4 * (xl + yl) as u64;
    v.push(BenchCase {
        group: "global_avg_pool2d",
        id: "8x12x12x1024/forward".into(),
        work: Work::Bytes(bytes),
        dispatches: vec![k.global_avg_pool2d_forward(ctx, &y, &x, shape)],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "global_avg_pool2d",
        id: "8x12x12x1024/backward".into(),
        work: Work::Bytes(bytes),
        dispatches: vec![k.global_avg_pool2d_backward(ctx, &dx, &y, shape)],
        buffers: vec![x, y, dx],
    });
    v
}
