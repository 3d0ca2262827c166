//! Dispatch reuse: a dispatch built once can get new Params (a per-step seed) and run again.

use gpucnn::gpu::test_context;
use gpucnn::harness::{random_vec, to_f64};
use gpucnn::kernels::{elementwise, run_all};

#[test]
fn write_params_changes_the_dropout_seed_without_rebuilding() {
    let Some(ctx) = test_context() else { return };
    let len = 1000;
    let x = random_vec(3, len, 0.5, 1.5);
    let xb = ctx.upload("x", &x);
    let yb = ctx.zeros("y", len);
    let k = elementwise::Elementwise::new(&ctx);
    let d = k.dropout_forward(&ctx, &yb, &xb, len, 1, 0.5);
    let mut outs = Vec::new();
    for seed in [1u32, 2] {
        d.write_params(&ctx, &elementwise::Params::dropout(len, seed, 0.5));
        run_all(&ctx, &[&d]).unwrap();
        let got: Vec<f32> = ctx.read(&yb).unwrap();
        let mut want = vec![0.0; len];
        gpucnn::cpu::elementwise::dropout_forward(&mut want, &to_f64(&x), seed, 0.5);
        for (g, w) in got.iter().zip(&want) {
            approx::assert_abs_diff_eq!(*g as f64, *w, epsilon = 1e-5);
        }
        outs.push(got);
    }
    assert_ne!(outs[0], outs[1], "a new seed must give a new mask");
}

#[test]
fn kernels_bind_ranges_of_a_buffer() {
    use gpucnn::kernels::{BufferRange, relu::Relu};
    let Some(ctx) = test_context() else { return };
    let align = ctx.limits.min_storage_buffer_offset_alignment as usize / 4;
    let len = 100;
    let range = |buf, at: usize| BufferRange {
        buffer: buf,
        offset: (at * 4) as u64,
        size: (len * 4) as u64,
    };
    // A read-only range of a "parameter" buffer, written into a range of an "output" buffer.
    let x = random_vec(5, len, -1.0, 1.0);
    let mut params = vec![9.0f32; align + len];
    params[align..].copy_from_slice(&x);
    let params = ctx.upload("params", &params);
    let out = ctx.upload("out", &vec![-7.0f32; 2 * align + len]);
    let k = Relu::new(&ctx);
    run_all(
        &ctx,
        &[&k.forward(&ctx, &range(&out, 2 * align), &range(&params, align), len)],
    )
    .unwrap();
    let got: Vec<f32> = ctx.read(&out).unwrap();
    assert!(
        got[..2 * align].iter().all(|&v| v == -7.0),
        "outside the range is untouched"
    );
    for (g, &xi) in got[2 * align..].iter().zip(&x) {
        assert_eq!(*g, xi.max(0.0));
    }
    // One buffer both read and written in a dispatch is rejected by wgpu's usage rule (so BN
    // moving statistics live apart from the trainable parameters). Two WRITABLE ranges of one
    // buffer pass validation but lavapipe then writes wrong values (seen here with
    // add_backward writing da and db into one buffer): the executor never binds a buffer twice
    // in one dispatch, which is why weights and biases have separate flat buffers.
    let same = run_all(
        &ctx,
        &[&k.forward(&ctx, &range(&out, 0), &range(&out, 2 * align), len)],
    );
    assert!(
        same.is_err(),
        "reading and writing one buffer in a dispatch must be rejected"
    );
}

/// Batch-norm inference binds its moving statistics read-only, so an inference program can
/// keep γ, β and the statistics in one read-only weights buffer (with the statistics bound
/// read_write, as training's slots are, wgpu refuses the bind group: conflicting usages).
#[test]
fn batch_norm_inference_reads_its_weights_from_one_read_only_buffer() {
    use gpucnn::kernels::BufferRange;
    use gpucnn::kernels::batch_norm::{BatchNorm, BnShape, InferenceBuffers};
    let Some(ctx) = test_context() else { return };
    let align = ctx.limits.min_storage_buffer_offset_alignment as usize / 4;
    let (rows, c) = (37usize, 70usize);
    let stride = c.div_ceil(align) * align;
    let x = random_vec(11, rows * c, -2.0, 2.0);
    let parts = [
        random_vec(12, c, 0.5, 1.5),  // γ
        random_vec(13, c, -0.5, 0.5), // β
        random_vec(14, c, -0.3, 0.3), // moving mean
        random_vec(15, c, 0.2, 2.0),  // moving variance
    ];
    let mut packed = vec![0.0f32; 4 * stride];
    for (i, p) in parts.iter().enumerate() {
        packed[i * stride..i * stride + c].copy_from_slice(p);
    }
    let weights = ctx.upload("weights", &packed);
    let part = |i: usize| BufferRange {
        buffer: &weights,
        offset: (i * stride * 4) as u64,
        size: (c * 4) as u64,
    };
    let (xb, yb) = (ctx.upload("x", &x), ctx.zeros("y", rows * c));
    let shape = BnShape::keras(rows, c);
    let (g, b, m, v) = (part(0), part(1), part(2), part(3));
    let bufs = InferenceBuffers {
        y: &yb,
        x: &xb,
        gamma: &g,
        beta: &b,
        moving_mean: &m,
        moving_var: &v,
    };
    run_all(
        &ctx,
        &[&BatchNorm::new(&ctx).forward_inference(&ctx, &bufs, &shape)],
    )
    .unwrap();
    let mut want = vec![0.0; rows * c];
    let p: Vec<Vec<f64>> = parts.iter().map(|p| to_f64(p)).collect();
    gpucnn::cpu::batch_norm::batch_norm_forward_inference(
        &mut want,
        &to_f64(&x),
        &p[0],
        &p[1],
        &p[2],
        &p[3],
        &shape,
    );
    let got: Vec<f32> = ctx.read(&yb).unwrap();
    for (g, w) in got.iter().zip(&want) {
        approx::assert_abs_diff_eq!(*g as f64, *w, epsilon = 1e-5);
    }
}
