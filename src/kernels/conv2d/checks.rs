//! Parity checks of `conv2d`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::gpu::GpuError;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

pub(super) fn shape(
    n: usize,
    hw: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
) -> Conv2dShape {
    Conv2dShape {
        n,
        h: hw,
        w: hw,
        cin,
        cout,
        k,
        stride,
        padding: Padding::Same,
    }
}

fn describe(s: &Conv2dShape) -> String {
    format!(
        "N{} H{} W{} C{}→{} k{} s{} {}",
        s.n,
        s.h,
        s.w,
        s.cin,
        s.cout,
        s.k,
        s.stride,
        match s.padding {
            Padding::Same => "same",
            Padding::Valid => "valid",
        }
    )
}

/// Tolerance for f32 sums of `terms` products of values in [−1, 1]: rounding error grows like
/// sqrt(terms) (sums themselves are ≈ sqrt(terms)/3). Measured worst errors sit 10–50× below
/// this, and a single missing or doubled tap (an error ≳ 0.1) is far above it.
fn tol(terms: usize) -> (f64, f64) {
    (1e-5 * (terms as f64).sqrt(), 1e-5)
}

/// CPU references of one check shape, computed once and shared by every variant's check.
#[derive(Default)]
struct Reference {
    y: OnceLock<Vec<f64>>,
    dx: OnceLock<Vec<f64>>,
    dw_db: OnceLock<(Vec<f64>, Vec<f64>)>,
}

/// Seeded inputs of a check: the same for every variant, so one CPU reference serves all.
fn inputs(seed: u64, s: &Conv2dShape) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        random_vec(seed, s.x_len(), -1.0, 1.0),
        random_vec(seed + 1, s.w_len(), -1.0, 1.0),
        random_vec(seed + 2, s.cout, -1.0, 1.0),
        random_vec(seed + 3, s.y_len(), -1.0, 1.0),
    )
}

/// Parity checks of every pass and variant at the tiny, odd (stride 2, valid padding, 1×1
/// stride 2 as in the residual projections) and large shapes, and the stem's even-size stride-2
/// case (pads 0 before, 1 after). Layouts: ≤ 16 GEMM columns run the narrow tiles, more the
/// wide (portable) or subgroup tiles, and every pass meets both.
pub fn all(ctx: &GpuContext) -> Vec<Check> {
    let cases = [
        (ShapeClass::Tiny, shape(1, 4, 2, 3, 3, 1)),
        (ShapeClass::Tiny, shape(1, 10, 3, 8, 3, 2)),
        (ShapeClass::Odd, shape(2, 7, 5, 3, 3, 2)),
        (
            ShapeClass::Odd,
            Conv2dShape {
                padding: Padding::Valid,
                ..shape(2, 7, 5, 3, 3, 2)
            },
        ),
        (ShapeClass::Odd, shape(3, 9, 5, 19, 3, 2)),
        (ShapeClass::Odd, shape(2, 9, 19, 21, 3, 2)),
        (ShapeClass::Odd, shape(2, 9, 19, 21, 1, 2)),
        // 50M multiply-adds: 113 row tiles, 8 K splits in backward_weight. (N4 H45 W45 C64→96
        // is 448M, ~3 s per pass and variant on lavapipe; this keeps the list to seconds.)
        (ShapeClass::Large, shape(2, 30, 32, 96, 3, 1)),
    ];
    // Each variant's pipelines are compiled once, on first use, and shared by all its checks.
    let variants: Vec<(Variant, Arc<OnceLock<Conv2d>>)> = Variant::available(ctx)
        .into_iter()
        .map(|v| (v, Arc::new(OnceLock::new())))
        .collect();
    let mut v = Vec::new();
    for (i, (class, s)) in cases.into_iter().enumerate() {
        let seed = 10 * i as u64;
        let refs = Arc::new(Reference::default());
        for (variant, kernels) in &variants {
            let variant = *variant;
            for (pass, run) in PASSES {
                let (k, r) = (kernels.clone(), refs.clone());
                v.push(Check::new(
                    "conv2d",
                    pass,
                    variant.name(),
                    class,
                    describe(&s),
                    move |ctx| {
                        let k = k.get_or_init(|| {
                            Conv2d::with_variant(ctx, variant).expect("an available variant")
                        });
                        run(ctx, k, &s, seed, &r)
                    },
                ));
            }
        }
    }
    v
}

/// One pass's check: the kernels, the shape, the inputs' seed and the shared CPU reference.
type Run =
    fn(&GpuContext, &Conv2d, &Conv2dShape, u64, &Reference) -> Result<Vec<Compared>, GpuError>;

/// The passes in the order of their rows.
const PASSES: [(&str, Run); 4] = [
    ("forward", |ctx, k, s, seed, r| {
        check_forward(ctx, k, s, seed, r, false)
    }),
    ("forward_relu", |ctx, k, s, seed, r| {
        check_forward(ctx, k, s, seed, r, true)
    }),
    ("backward_input", check_backward_input),
    ("backward_weight", check_backward_weight),
];

/// The forward, y = conv(x, W) + b, or with `relu` its ReLU epilogue y = max(conv(x, W) + b, 0),
/// against the reference forward (composed with cpu::relu for the epilogue: about half of y is
/// negative, the bias in ±1 against sums of ~sqrt(k·k·Cin)/3).
fn check_forward(
    ctx: &GpuContext,
    k: &Conv2d,
    s: &Conv2dShape,
    seed: u64,
    r: &Reference,
    relu: bool,
) -> Result<Vec<Compared>, GpuError> {
    let (x, w, b, _) = inputs(seed, s);
    let (xb, wb, bb) = (
        ctx.upload("x", &x),
        ctx.upload("w", &w),
        ctx.upload("b", &b),
    );
    let yb = ctx.upload("y", &vec![f32::NAN; s.y_len()]);
    let d = if relu {
        k.forward_relu(ctx, &yb, &xb, &wb, &bb, s)
    } else {
        k.forward(ctx, &yb, &xb, &wb, &bb, s)
    };
    crate::kernels::run_all(ctx, &[&d])?;
    let y = r.y.get_or_init(|| {
        let mut y = vec![0.0; s.y_len()];
        conv2d_forward(&mut y, &to_f64(&x), &to_f64(&w), &to_f64(&b), s);
        y
    });
    let want = if relu {
        let mut want = vec![0.0; y.len()];
        crate::cpu::relu::relu_forward(&mut want, y);
        want
    } else {
        y.clone()
    };
    // max(·, 0) is 1-Lipschitz: the forward's tolerance holds for the epilogue too.
    let (atol, rtol) = tol(s.k * s.k * s.cin);
    Ok(vec![Compared::new("y", ctx.read(&yb)?, want, atol, rtol)])
}

fn check_backward_input(
    ctx: &GpuContext,
    k: &Conv2d,
    s: &Conv2dShape,
    seed: u64,
    r: &Reference,
) -> Result<Vec<Compared>, GpuError> {
    let (_, w, _, dy) = inputs(seed, s);
    let (dyb, wb) = (ctx.upload("dy", &dy), ctx.upload("w", &w));
    // Garbage first: the pass must write every element.
    let dxb = ctx.upload("dx", &vec![f32::NAN; s.x_len()]);
    crate::kernels::run_all(ctx, &[&k.backward_input(ctx, &dxb, &dyb, &wb, s)])?;
    let want = r.dx.get_or_init(|| {
        let mut dx = vec![0.0; s.x_len()];
        conv2d_backward_input(&mut dx, &to_f64(&dy), &to_f64(&w), s);
        dx
    });
    let (atol, rtol) = tol(s.k * s.k * s.cout);
    Ok(vec![Compared::new(
        "dx",
        ctx.read(&dxb)?,
        want.clone(),
        atol,
        rtol,
    )])
}

fn check_backward_weight(
    ctx: &GpuContext,
    k: &Conv2d,
    s: &Conv2dShape,
    seed: u64,
    r: &Reference,
) -> Result<Vec<Compared>, GpuError> {
    let (x, _, _, dy) = inputs(seed, s);
    let (dyb, xb) = (ctx.upload("dy", &dy), ctx.upload("x", &x));
    let dwb = ctx.upload("dw", &vec![f32::NAN; s.w_len()]);
    let dbb = ctx.upload("db", &vec![f32::NAN; s.cout]);
    let scratch = ctx.upload("scratch", &vec![f32::NAN; k.backward_weight_scratch_len(s)]);
    let grads = WeightGrads {
        dw: &dwb,
        db: &dbb,
        scratch: Some(&scratch),
    };
    let [d0, d1] = k.backward_weight(ctx, grads, &dyb, &xb, s);
    crate::kernels::run_all(ctx, &[&d0, &d1])?;
    let (dw, db) = r.dw_db.get_or_init(|| {
        let mut dw = vec![0.0; s.w_len()];
        let mut db = vec![0.0; s.cout];
        conv2d_backward_weight(&mut dw, &mut db, &to_f64(&dy), &to_f64(&x), s);
        (dw, db)
    });
    let (atol, rtol) = tol(s.n * s.oh() * s.ow());
    Ok(vec![
        Compared::new("dw", ctx.read(&dwb)?, dw.clone(), atol, rtol),
        Compared::new("db", ctx.read(&dbb)?, db.clone(), atol, rtol),
    ])
}
