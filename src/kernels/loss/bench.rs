//! Benchmark cases of `loss` for `benches/kernels.rs`, at the model's real shapes.

use super::checks::logits;
use super::*;
use crate::bench::{BenchCase, Work};

/// An unweighted pass's input (the benches time the model's default loss).
fn input<'a>(z: &'a wgpu::Buffer, t: &'a wgpu::Buffer, n: usize, classes: usize) -> LossInput<'a> {
    LossInput {
        z,
        targets: t,
        n,
        classes,
        weights: None,
        smoothing: 0.0,
    }
}

/// The model's loss at batch 128: binary (128×1) and 10-class (128×10), each pass. Tiny and
/// latency-bound; GB/s over the logits, targets and outputs.
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let k = Loss::new(ctx);
    let n = 128;
    let mut v = Vec::new();

    let z = ctx.upload("z", &logits(1, n, false));
    let y = ctx.upload("y", &vec![1.0f32; n]);
    let (loss, dz, m) = (
        ctx.zeros("loss", 1),
        ctx.zeros("dz", n),
        ctx.zeros("metrics", 3),
    );
    let io = (4 * 2 * n) as u64;
    v.push(BenchCase {
        group: "sigmoid_bce",
        id: "128x1/forward".into(),
        work: Work::Bytes(io + 4),
        dispatches: vec![k.sigmoid_bce_forward(ctx, &loss, &input(&z, &y, n, 1))],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "sigmoid_bce",
        id: "128x1/backward".into(),
        work: Work::Bytes(io + 4 * n as u64),
        dispatches: vec![k.sigmoid_bce_backward(ctx, &dz, &input(&z, &y, n, 1))],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "sigmoid_bce",
        id: "128x1/metrics".into(),
        work: Work::Bytes(io + 12),
        dispatches: vec![k.sigmoid_bce_metrics(ctx, &m, &input(&z, &y, n, 1))],
        buffers: vec![z, y, loss, dz, m],
    });

    let classes = 10;
    let z = ctx.upload("z", &logits(2, n * classes, false));
    let t = ctx.upload("labels", &(0..n as u32).map(|i| i % 10).collect::<Vec<_>>());
    let (loss, dz, m) = (
        ctx.zeros("loss", 1),
        ctx.zeros("dz", n * classes),
        ctx.zeros("metrics", 3),
    );
    let io = (4 * (n * classes + n)) as u64;
    v.push(BenchCase {
        group: "softmax_ce",
        id: "128x10/forward".into(),
        work: Work::Bytes(io + 4),
        dispatches: vec![k.softmax_ce_forward(ctx, &loss, &input(&z, &t, n, classes))],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "softmax_ce",
        id: "128x10/backward".into(),
        work: Work::Bytes(io + (4 * n * classes) as u64),
        dispatches: vec![k.softmax_ce_backward(ctx, &dz, &input(&z, &t, n, classes))],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "softmax_ce",
        id: "128x10/metrics".into(),
        work: Work::Bytes(io + 12),
        dispatches: vec![k.softmax_ce_metrics(ctx, &m, &input(&z, &t, n, classes))],
        buffers: vec![z, t, loss, dz, m],
    });
    v
}
