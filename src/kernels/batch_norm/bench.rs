//! Benchmark cases of `batch_norm` for `benches/kernels.rs`, at the model's real shapes.

use super::*;
use crate::bench::{BenchCase, Work};

/// The model's widest batch norm at batch 8: 8×90×90×256, each pass and variant (memory-bound,
/// GB/s of the [M, C] tensors read and written; the [C] vectors are negligible).
pub fn cases(ctx: &GpuContext) -> Vec<BenchCase> {
    let s = BnShape::keras(8 * 90 * 90, 256);
    let (m, c) = (s.rows, s.channels);
    let tensor = (m * c * 4) as u64;
    // Contents do not change the work: zero tensors keep creation cheap (var 0 is finite).
    let x = ctx.zeros("x", m * c);
    let dy = ctx.zeros("dy", m * c);
    let out = ctx.zeros("y", m * c);
    let vecs: Vec<wgpu::Buffer> = (0..8)
        .map(|_| ctx.upload("vec", &vec![1.0f32; c]))
        .collect();
    let scratch = ctx.zeros("scratch", BatchNorm::scratch_len(&s));
    let mut cases = Vec::new();
    // Each pass plain and with the ReLU fused ("_relu"): the same bytes, fewer passes overall.
    let plain = s;
    let fused = BnShape { relu: true, ..s };
    for (variant, (s, tag)) in [Variant::Flat, Variant::FlatTexture, Variant::Tree]
        .into_iter()
        .flat_map(|v| [(v, (plain, "")), (v, (fused, "_relu"))])
    {
        let k = BatchNorm::with_variant(ctx, variant);
        let [g, b, mean, istd, mm, mv, dg, db] = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| &vecs[i]);
        let v = variant.name();
        cases.push(BenchCase {
            group: "batch_norm",
            id: format!("8x90x90x256/forward_train{tag}/{v}"),
            // partial reads x; normalize reads x and writes y.
            work: Work::Bytes(3 * tensor),
            dispatches: k.forward_train(
                ctx,
                &TrainBuffers {
                    y: &out,
                    mean,
                    inv_std: istd,
                    moving_mean: mm,
                    moving_var: mv,
                    x: &x,
                    gamma: g,
                    beta: b,
                    scratch: &scratch,
                },
                &s,
            ),
            buffers: vec![],
        });
        cases.push(BenchCase {
            group: "batch_norm",
            id: format!("8x90x90x256/forward_inference{tag}/{v}"),
            work: Work::Bytes(2 * tensor),
            dispatches: vec![k.forward_inference(
                ctx,
                &InferenceBuffers {
                    y: &out,
                    x: &x,
                    gamma: g,
                    beta: b,
                    moving_mean: mm,
                    moving_var: mv,
                },
                &s,
            )],
            buffers: vec![],
        });
        cases.push(BenchCase {
            group: "batch_norm",
            id: format!("8x90x90x256/backward{tag}/{v}"),
            // partial reads dy and x; input reads dy and x and writes dx.
            work: Work::Bytes(5 * tensor),
            dispatches: k.backward(
                ctx,
                &BackwardBuffers {
                    dx: &out,
                    dgamma: dg,
                    dbeta: db,
                    dy: &dy,
                    x: &x,
                    gamma: g,
                    beta: b,
                    mean,
                    inv_std: istd,
                    scratch: &scratch,
                },
                &s,
            ),
            buffers: vec![],
        });
    }
    if let Some(last) = cases.last_mut() {
        last.buffers = [x, dy, out, scratch].into_iter().chain(vecs).collect();
    }
    cases
}
