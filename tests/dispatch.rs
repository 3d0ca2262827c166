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
