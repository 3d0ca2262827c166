//! Parity checks of `pointwise_conv2d`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use super::*;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};
use crate::kernels::gemm::checks::{SharedGemm, shared_gemm, tolerance};

/// The CPU reference of one linear-layer family.
#[derive(Clone, Copy)]
pub(crate) enum Reference {
    Pointwise,
    Dense,
}

/// Checks of the three passes of a linear family (`op` = "pointwise_conv2d" or "dense";
/// dense shapes have H = W = stride = 1 and use cpu::dense).
pub(crate) fn linear_checks(
    ctx: &GpuContext,
    op: &'static str,
    reference: Reference,
    shapes: &[(ShapeClass, PointwiseShape)],
) -> Vec<Check> {
    // The adapter's own choice first, then every other variant a step may run here (naive is
    // for comparison only: the gemm family checks it).
    let selected = selected_variant(ctx);
    let mut variants = vec![selected];
    variants.extend(Variant::ALL.into_iter().filter(|&v| {
        v != selected
            && v != Variant::Naive
            && (!v.uses_subgroups() || crate::kernels::gemm::subgroup_usable(ctx).is_ok())
    }));
    let cell: SharedGemm = Arc::default();
    let mut v = Vec::new();
    // The ReLU epilogue of a convolution whose batch norm and ReLU are folded into it (the
    // pointwise convolution only: a dense layer has no batch norm after it here).
    let passes: &[&str] = match reference {
        Reference::Pointwise => &[
            "forward",
            "forward_relu",
            "backward_input",
            "backward_weight",
        ],
        Reference::Dense => &["forward", "backward_input", "backward_weight"],
    };
    for &variant in &variants {
        for &(class, s) in shapes {
            for &pass in passes {
                let cell = cell.clone();
                v.push(Check::new(
                    op,
                    pass,
                    variant.name(),
                    class,
                    s.label(),
                    move |ctx| {
                        let g = shared_gemm(&cell, ctx);
                        run_linear_check(ctx, g, variant, reference, pass, &s)
                    },
                ));
            }
        }
    }
    v
}

fn run_linear_check(
    ctx: &GpuContext,
    g: Arc<Gemm>,
    variant: Variant,
    reference: Reference,
    pass: &str,
    s: &PointwiseShape,
) -> Result<Vec<Compared>, crate::gpu::GpuError> {
    let (oh, ow) = s.out_hw();
    let (xl, yl) = (s.n * s.h * s.w * s.cin, s.n * oh * ow * s.cout);
    let x = random_vec(31, xl, -1.0, 1.0);
    let w = random_vec(32, s.cin * s.cout, -1.0, 1.0);
    let b = random_vec(33, s.cout, -1.0, 1.0);
    let dy = random_vec(34, yl, -1.0, 1.0);
    let (xd, wd, bd, dyd) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
    let k = PointwiseConv2d::with_gemm(g, variant).expect("checks list available variants only");
    let run = |d: &[Dispatch]| crate::kernels::run_all(ctx, &d.iter().collect::<Vec<_>>());
    let (n, ci, co) = (s.n, s.cin, s.cout);
    match pass {
        "forward" | "forward_relu" => {
            let relu = pass == "forward_relu";
            let (xb, wb, bb) = (
                ctx.upload("x", &x),
                ctx.upload("w", &w),
                ctx.upload("b", &b),
            );
            let yb = ctx.upload("y", &vec![f32::NAN; yl]);
            run(&[if relu {
                k.forward_relu(ctx, &yb, &xb, &wb, &bb, s)
            } else {
                k.forward(ctx, &yb, &xb, &wb, &bb, s)
            }])?;
            let mut want = vec![0.0; yl];
            match reference {
                Reference::Pointwise => {
                    cpu::pointwise_conv2d::pointwise_conv2d_forward(&mut want, &xd, &wd, &bd, s)
                }
                Reference::Dense => cpu::dense::dense_forward(&mut want, &xd, &wd, &bd, n, ci, co),
            }
            if relu {
                // The reference is unfused: compose cpu::relu (max(·, 0) is 1-Lipschitz, so
                // the forward's tolerance holds).
                let y = want.clone();
                cpu::relu::relu_forward(&mut want, &y);
            }
            let (atol, rtol) = tolerance(ci);
            Ok(vec![Compared::new("y", ctx.read(&yb)?, want, atol, rtol)])
        }
        "backward_input" => {
            let (dyb, wb) = (ctx.upload("dy", &dy), ctx.upload("w", &w));
            // NaN-filled: the pass must write every element of dx.
            let dxb = ctx.upload("dx", &vec![f32::NAN; xl]);
            // The dense layer passes no scratch (W read transposed as scalars); the pointwise
            // one passes the scratch for Wᵀ that its plan asks for (texture64: vec4 rows).
            let tl = match reference {
                Reference::Pointwise => k.backward_input_scratch_len(s),
                Reference::Dense => 0,
            };
            let tb = (tl > 0).then(|| ctx.upload("w transposed", &vec![f32::NAN; tl]));
            let t = tb.as_ref().map(|b| b as &dyn crate::kernels::Bind);
            run(&k.backward_input(ctx, &dxb, &dyb, &wb, t, s))?;
            let mut want = vec![0.0; xl];
            match reference {
                Reference::Pointwise => {
                    cpu::pointwise_conv2d::pointwise_conv2d_backward_input(&mut want, &dyd, &wd, s)
                }
                Reference::Dense => {
                    cpu::dense::dense_backward_input(&mut want, &dyd, &wd, n, ci, co)
                }
            }
            let (atol, rtol) = tolerance(co);
            Ok(vec![Compared::new("dx", ctx.read(&dxb)?, want, atol, rtol)])
        }
        _ => check_backward_weight(ctx, &k, reference, s, &x, &dy),
    }
}

/// backward_weight of a linear family: dW and db, split over K where the plan splits.
fn check_backward_weight(
    ctx: &GpuContext,
    k: &PointwiseConv2d,
    reference: Reference,
    s: &PointwiseShape,
    x: &[f32],
    dy: &[f32],
) -> Result<Vec<Compared>, crate::gpu::GpuError> {
    let (n, ci, co) = (s.n, s.cin, s.cout);
    let (xd, dyd) = (to_f64(x), to_f64(dy));
    let (xb, dyb) = (ctx.upload("x", x), ctx.upload("dy", dy));
    let dwb = ctx.upload("dw", &vec![f32::NAN; ci * co]);
    let dbb = ctx.upload("db", &vec![f32::NAN; co]);
    let sl = k.backward_weight_scratch_len(s);
    let scratch = (sl > 0).then(|| ctx.upload("scratch", &vec![f32::NAN; sl]));
    let grads = WeightGrads {
        dw: &dwb,
        db: &dbb,
        scratch: scratch.as_ref().map(|b| b as &dyn Bind),
    };
    let d = k.backward_weight(ctx, grads, &dyb, &xb, s);
    crate::kernels::run_all(ctx, &d.iter().collect::<Vec<_>>())?;
    let (mut dw, mut db) = (vec![0.0; ci * co], vec![0.0; co]);
    match reference {
        Reference::Pointwise => {
            cpu::pointwise_conv2d::pointwise_conv2d_backward_weight(&mut dw, &mut db, &dyd, &xd, s)
        }
        Reference::Dense => {
            cpu::dense::dense_backward_weight(&mut dw, &mut db, &dyd, &xd, n, ci, co)
        }
    }
    let (atol, rtol) = tolerance(s.pixels());
    Ok(vec![
        Compared::new("dw", ctx.read(&dwb)?, dw, atol, rtol),
        Compared::new("db", ctx.read(&dbb)?, db, atol, rtol),
    ])
}

/// Parity checks of the three passes at the three shape classes (large: stride 1 and 2, the
/// weight gradient split over K = 4·45·45 = 8100 or 4·23·23 pixels).
pub fn all(ctx: &GpuContext) -> Vec<Check> {
    let sh = |n, h, w, cin, cout, stride| PointwiseShape {
        n,
        h,
        w,
        cin,
        cout,
        stride,
    };
    linear_checks(
        ctx,
        "pointwise_conv2d",
        Reference::Pointwise,
        &[
            (ShapeClass::Tiny, sh(1, 2, 3, 3, 4, 1)),
            (ShapeClass::Tiny, sh(1, 3, 3, 2, 3, 2)),
            (ShapeClass::Odd, sh(2, 7, 7, 5, 3, 2)),
            (ShapeClass::Odd, sh(3, 5, 7, 37, 13, 1)),
            (ShapeClass::Large, sh(4, 45, 45, 64, 96, 1)),
            (ShapeClass::Large, sh(4, 45, 45, 64, 96, 2)),
        ],
    )
}
