//! Parity checks of `depthwise_conv2d`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::gpu::GpuError;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

fn describe(s: &DepthwiseShape) -> String {
    format!(
        "N{} H{} W{} C{} k{} s1 {}",
        s.n,
        s.h,
        s.w,
        s.c,
        s.k,
        match s.padding {
            Padding::Same => "same",
            Padding::Valid => "valid",
        }
    )
}

/// Tolerance for f32 sums of `terms` products of values in [−1, 1]: rounding error grows like
/// sqrt(terms); measured worst errors sit well below this, and one missing or doubled tap
/// (an error ≳ 0.1) is far above it.
fn tol(terms: usize) -> (f64, f64) {
    (1e-5 * (terms as f64).sqrt(), 1e-5)
}

/// Parity checks of every pass at the tiny, odd and large shapes, with k = 3 and k = 5 and a
/// valid-padding case, in both lane forms (C not divisible by 4, and C divisible by 4).
pub fn all(ctx: &GpuContext) -> Vec<Check> {
    let mk = |n, hw, c, k, padding| DepthwiseShape {
        n,
        h: hw,
        w: hw,
        c,
        k,
        padding,
    };
    let cases = [
        (ShapeClass::Tiny, mk(1, 4, 2, 3, Padding::Same)),
        (ShapeClass::Odd, mk(2, 7, 5, 3, Padding::Same)),
        (ShapeClass::Odd, mk(2, 11, 5, 3, Padding::Valid)),
        (ShapeClass::Odd, mk(1, 9, 67, 5, Padding::Same)),
        (ShapeClass::Large, mk(4, 45, 64, 3, Padding::Same)),
        // C divisible by 4: the four-channel lane form (kernels::depthwise_conv2d::lanes).
        (ShapeClass::Odd, mk(2, 7, 12, 3, Padding::Same)),
        (ShapeClass::Odd, mk(2, 11, 8, 3, Padding::Valid)),
        (ShapeClass::Odd, mk(1, 9, 20, 5, Padding::Same)),
    ];
    let mut v = Vec::new();
    for variant in Variant::available(ctx) {
        // Compiled once per kernel size, on first use, and shared by every check.
        let k3: Arc<OnceLock<DepthwiseConv2d>> = Arc::new(OnceLock::new());
        let k5: Arc<OnceLock<DepthwiseConv2d>> = Arc::new(OnceLock::new());
        // The ReLU-folded passes at the tiny, the first odd, the large and a four-lane shape.
        let relu_cases = [cases[0], cases[1], cases[4], cases[5]];
        let runs = (cases.iter().flat_map(|c| PASSES.map(|p| (*c, p))))
            .chain(relu_cases.iter().flat_map(|c| RELU_PASSES.map(|p| (*c, p))));
        for ((class, s), (pass, run)) in runs {
            let cell = if s.k == 3 { k3.clone() } else { k5.clone() };
            v.push(Check::new(
                "depthwise_conv2d",
                pass,
                variant.name(),
                class,
                describe(&s),
                move |ctx| {
                    let k = cell.get_or_init(|| {
                        DepthwiseConv2d::with_variant(ctx, s.k, variant)
                            .expect("an available variant")
                    });
                    run(ctx, k, &s)
                },
            ));
        }
    }
    v
}

/// One pass's check on the compiled kernels, at one shape.
type Run = fn(&GpuContext, &DepthwiseConv2d, &DepthwiseShape) -> Result<Vec<Compared>, GpuError>;

/// The passes in the order of their rows.
const PASSES: [(&str, Run); 3] = [
    ("forward", check_forward),
    ("backward_input", check_backward_input),
    ("backward_weight", check_backward_weight),
];

/// The passes with a ReLU folded in front, against the CPU ReLU composed with the CPU pass.
const RELU_PASSES: [(&str, Run); 3] = [
    ("forward_relu", check_forward_relu),
    ("backward_input_relu", check_backward_input_relu),
    ("backward_weight_relu", check_backward_weight_relu),
];

/// max(x, 0) by the CPU reference.
fn relu(x: &[f32]) -> Vec<f64> {
    let mut r = vec![0.0; x.len()];
    crate::cpu::relu::relu_forward(&mut r, &to_f64(x));
    r
}

fn check_forward_relu(
    ctx: &GpuContext,
    k: &DepthwiseConv2d,
    s: &DepthwiseShape,
) -> Result<Vec<Compared>, GpuError> {
    let x = random_vec(11, s.x_len(), -1.0, 1.0);
    let w = random_vec(12, s.w_len(), -1.0, 1.0);
    let (xb, wb) = (ctx.upload("x", &x), ctx.upload("w", &w));
    let yb = ctx.upload("y", &vec![f32::NAN; s.y_len()]);
    crate::kernels::run_all(ctx, &[&k.forward_relu(ctx, &yb, &xb, &wb, s)])?;
    let mut want = vec![0.0; s.y_len()];
    depthwise_conv2d_forward(&mut want, &relu(&x), &to_f64(&w), s);
    let (atol, rtol) = tol(s.k * s.k);
    Ok(vec![Compared::new("y", ctx.read(&yb)?, want, atol, rtol)])
}

fn check_backward_input_relu(
    ctx: &GpuContext,
    k: &DepthwiseConv2d,
    s: &DepthwiseShape,
) -> Result<Vec<Compared>, GpuError> {
    let dy = random_vec(13, s.y_len(), -1.0, 1.0);
    let w = random_vec(14, s.w_len(), -1.0, 1.0);
    let x = random_vec(15, s.x_len(), -1.0, 1.0);
    let (dyb, wb, xb) = (
        ctx.upload("dy", &dy),
        ctx.upload("w", &w),
        ctx.upload("x", &x),
    );
    let dxb = ctx.upload("dx", &vec![f32::NAN; s.x_len()]);
    crate::kernels::run_all(ctx, &[&k.backward_input_relu(ctx, &dxb, &dyb, &wb, &xb, s)])?;
    // The convolution's input gradient, then the ReLU's backward (mask r = max(x, 0) > 0).
    let mut dr = vec![0.0; s.x_len()];
    depthwise_conv2d_backward_input(&mut dr, &to_f64(&dy), &to_f64(&w), s);
    let mut want = vec![0.0; s.x_len()];
    crate::cpu::relu::relu_backward(&mut want, &dr, &relu(&x));
    let (atol, rtol) = tol(s.k * s.k);
    Ok(vec![Compared::new("dx", ctx.read(&dxb)?, want, atol, rtol)])
}

fn check_backward_weight_relu(
    ctx: &GpuContext,
    k: &DepthwiseConv2d,
    s: &DepthwiseShape,
) -> Result<Vec<Compared>, GpuError> {
    let dy = random_vec(16, s.y_len(), -1.0, 1.0);
    let x = random_vec(17, s.x_len(), -1.0, 1.0);
    let (dyb, xb) = (ctx.upload("dy", &dy), ctx.upload("x", &x));
    let dwb = ctx.upload("dw", &vec![f32::NAN; s.w_len()]);
    let scratch = ctx.upload(
        "scratch",
        &vec![f32::NAN; DepthwiseConv2d::backward_weight_scratch_len(s)],
    );
    let [d0, d1] = k.backward_weight_relu(ctx, &dwb, &scratch, &dyb, &xb, s);
    crate::kernels::run_all(ctx, &[&d0, &d1])?;
    let mut want = vec![0.0; s.w_len()];
    depthwise_conv2d_backward_weight(&mut want, &to_f64(&dy), &relu(&x), s);
    let (atol, rtol) = tol(s.n * s.oh() * s.ow());
    Ok(vec![Compared::new("dw", ctx.read(&dwb)?, want, atol, rtol)])
}

fn check_forward(
    ctx: &GpuContext,
    k: &DepthwiseConv2d,
    s: &DepthwiseShape,
) -> Result<Vec<Compared>, GpuError> {
    let x = random_vec(1, s.x_len(), -1.0, 1.0);
    let w = random_vec(2, s.w_len(), -1.0, 1.0);
    let (xb, wb) = (ctx.upload("x", &x), ctx.upload("w", &w));
    let yb = ctx.upload("y", &vec![f32::NAN; s.y_len()]);
    crate::kernels::run_all(ctx, &[&k.forward(ctx, &yb, &xb, &wb, s)])?;
    let mut want = vec![0.0; s.y_len()];
    depthwise_conv2d_forward(&mut want, &to_f64(&x), &to_f64(&w), s);
    let (atol, rtol) = tol(s.k * s.k);
    Ok(vec![Compared::new("y", ctx.read(&yb)?, want, atol, rtol)])
}

fn check_backward_input(
    ctx: &GpuContext,
    k: &DepthwiseConv2d,
    s: &DepthwiseShape,
) -> Result<Vec<Compared>, GpuError> {
    let dy = random_vec(3, s.y_len(), -1.0, 1.0);
    let w = random_vec(4, s.w_len(), -1.0, 1.0);
    let (dyb, wb) = (ctx.upload("dy", &dy), ctx.upload("w", &w));
    let dxb = ctx.upload("dx", &vec![f32::NAN; s.x_len()]);
    crate::kernels::run_all(ctx, &[&k.backward_input(ctx, &dxb, &dyb, &wb, s)])?;
    let mut want = vec![0.0; s.x_len()];
    depthwise_conv2d_backward_input(&mut want, &to_f64(&dy), &to_f64(&w), s);
    let (atol, rtol) = tol(s.k * s.k);
    Ok(vec![Compared::new("dx", ctx.read(&dxb)?, want, atol, rtol)])
}

fn check_backward_weight(
    ctx: &GpuContext,
    k: &DepthwiseConv2d,
    s: &DepthwiseShape,
) -> Result<Vec<Compared>, GpuError> {
    let dy = random_vec(5, s.y_len(), -1.0, 1.0);
    let x = random_vec(6, s.x_len(), -1.0, 1.0);
    let (dyb, xb) = (ctx.upload("dy", &dy), ctx.upload("x", &x));
    let dwb = ctx.upload("dw", &vec![f32::NAN; s.w_len()]);
    let scratch = ctx.upload(
        "scratch",
        &vec![f32::NAN; DepthwiseConv2d::backward_weight_scratch_len(s)],
    );
    let [d0, d1] = k.backward_weight(ctx, &dwb, &scratch, &dyb, &xb, s);
    crate::kernels::run_all(ctx, &[&d0, &d1])?;
    let mut want = vec![0.0; s.w_len()];
    depthwise_conv2d_backward_weight(&mut want, &to_f64(&dy), &to_f64(&x), s);
    let (atol, rtol) = tol(s.n * s.oh() * s.ow());
    Ok(vec![Compared::new("dw", ctx.read(&dwb)?, want, atol, rtol)])
}
