//! Dispatch reuse: a dispatch built once can get new Params (a per-step seed) and run again.

use gpucnn::gpu::test_context;
use gpucnn::kernels::{elementwise, run_all};
use gpucnn::selftest::{random_vec, to_f64};

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
            assert!((*g as f64 - w).abs() < 1e-5, "seed {seed}: {g} vs {w}");
        }
        outs.push(got);
    }
    assert_ne!(outs[0], outs[1], "a new seed must give a new mask");
}
