//! Parity checks of `batch_norm`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::cpu;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Per variant, the family compiled once per `checks()` list on first use.
type Shared = Arc<[OnceLock<BatchNorm>; 3]>;

fn kernels<'a>(shared: &'a Shared, ctx: &GpuContext, variant: Variant) -> &'a BatchNorm {
    let i = match variant {
        Variant::Tree => 0,
        Variant::Flat => 1,
        Variant::FlatTexture => 2,
    };
    shared[i].get_or_init(|| BatchNorm::with_variant(ctx, variant))
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// One parity case: the layer's shape, the seed of its inputs, and the offset of x's values
/// (x = offset ± 1.5). A large offset is what breaks a naive E[x²] − E[x]² variance.
#[derive(Debug, Clone, Copy)]
struct Case {
    shape: BnShape,
    seed: u64,
    offset: f32,
}

impl Case {
    /// The shape without the fused ReLU, for the CPU reference (the unfused spec).
    fn unfused(&self) -> BnShape {
        BnShape {
            relu: false,
            ..self.shape
        }
    }

    /// The reference's y with the fused ReLU applied where the case has one.
    fn relu(&self, y: Vec<f64>) -> Vec<f64> {
        if !self.shape.relu {
            return y;
        }
        let mut r = vec![0.0; y.len()];
        cpu::relu::relu_forward(&mut r, &y);
        r
    }

    /// Absolute error of f32 values of magnitude ~offset: a few units in the last place.
    fn offset_atol(&self) -> f64 {
        4.0 * self.offset.abs().max(1.0) as f64 * f32::EPSILON as f64
    }
}

/// Seeded inputs of one layer: x, gamma, beta, moving statistics, dy.
struct Inputs {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    moving_mean: Vec<f32>,
    moving_var: Vec<f32>,
    dy: Vec<f32>,
}

impl Inputs {
    fn new(case: &Case) -> Self {
        let (seed, m, c) = (case.seed, case.shape.rows, case.shape.channels);
        let o = case.offset;
        Self {
            x: random_vec(seed, m * c, o - 1.5, o + 1.5),
            gamma: random_vec(seed + 1, c, 0.5, 1.5),
            beta: random_vec(seed + 2, c, -0.5, 0.5),
            moving_mean: random_vec(seed + 3, c, -1.0, 1.0),
            moving_var: random_vec(seed + 4, c, 0.5, 1.5),
            dy: random_vec(seed + 5, m * c, -1.0, 1.0),
        }
    }
}

fn check_forward_train(ctx: &GpuContext, k: &BatchNorm, case: Case) -> CheckOut {
    let s = case.shape;
    let (m, c) = (s.rows, s.channels);
    let inp = Inputs::new(&case);
    let xb = ctx.upload("x", &inp.x);
    let (gb, bb) = (
        ctx.upload("gamma", &inp.gamma),
        ctx.upload("beta", &inp.beta),
    );
    let mmb = ctx.upload("moving_mean", &inp.moving_mean);
    let mvb = ctx.upload("moving_var", &inp.moving_var);
    let (yb, meanb, isb) = (
        ctx.zeros("y", m * c),
        ctx.zeros("mean", c),
        ctx.zeros("inv_std", c),
    );
    let scratch = ctx.zeros("scratch", BatchNorm::scratch_len(&s));
    let bufs = TrainBuffers {
        y: &yb,
        mean: &meanb,
        inv_std: &isb,
        moving_mean: &mmb,
        moving_var: &mvb,
        x: &xb,
        gamma: &gb,
        beta: &bb,
        scratch: &scratch,
    };
    let ds = k.forward_train(ctx, &bufs, &s);
    crate::kernels::run_all(ctx, &ds.iter().collect::<Vec<_>>())?;

    let mut y = vec![0.0; m * c];
    let (mut mean, mut istd) = (vec![0.0; c], vec![0.0; c]);
    let (mut mm, mut mv) = (to_f64(&inp.moving_mean), to_f64(&inp.moving_var));
    let out = cpu::batch_norm::TrainOut {
        y: &mut y,
        mean: &mut mean,
        inv_std: &mut istd,
        moving_mean: &mut mm,
        moving_var: &mut mv,
    };
    let (x, gamma, beta) = (to_f64(&inp.x), to_f64(&inp.gamma), to_f64(&inp.beta));
    cpu::batch_norm::batch_norm_forward_train(out, &x, &gamma, &beta, &case.unfused());
    let y = case.relu(y);
    // Tolerances: the f32 Welford/Chan mean is within a few ulps of the offset (offset_atol:
    // 2e-6 at offset 4); the variance (~0.75, M2 built from x − mean, never from x²) within
    // 1e-5 relative even at offset 1000; y = γ·(x − mean)·inv_std + β inherits the mean's
    // absolute error times γ·inv_std (≤ 1.5·1.2) plus its own roundings.
    let mean_atol = case.offset_atol();
    Ok(vec![
        Compared::new("y", ctx.read(&yb)?, y, 1e-5 + 2.0 * mean_atol, 1e-5),
        Compared::new("mean", ctx.read(&meanb)?, mean, mean_atol, 1e-6),
        Compared::new("inv_std", ctx.read(&isb)?, istd, 0.0, 1e-5),
        Compared::new("moving_mean", ctx.read(&mmb)?, mm, mean_atol, 1e-6),
        Compared::new("moving_var", ctx.read(&mvb)?, mv, 0.0, 1e-5),
    ])
}

fn check_forward_inference(ctx: &GpuContext, k: &BatchNorm, case: Case) -> CheckOut {
    let s = case.shape;
    let (m, c) = (s.rows, s.channels);
    let inp = Inputs::new(&case);
    let xb = ctx.upload("x", &inp.x);
    let (gb, bb) = (
        ctx.upload("gamma", &inp.gamma),
        ctx.upload("beta", &inp.beta),
    );
    let mmb = ctx.upload("moving_mean", &inp.moving_mean);
    let mvb = ctx.upload("moving_var", &inp.moving_var);
    let yb = ctx.zeros("y", m * c);
    let bufs = InferenceBuffers {
        y: &yb,
        x: &xb,
        gamma: &gb,
        beta: &bb,
        moving_mean: &mmb,
        moving_var: &mvb,
    };
    let d = k.forward_inference(ctx, &bufs, &s);
    crate::kernels::run_all(ctx, &[&d])?;
    let mut y = vec![0.0; m * c];
    cpu::batch_norm::batch_norm_forward_inference(
        &mut y,
        &to_f64(&inp.x),
        &to_f64(&inp.gamma),
        &to_f64(&inp.beta),
        &to_f64(&inp.moving_mean),
        &to_f64(&inp.moving_var),
        &case.unfused(),
    );
    let y = case.relu(y);
    // Elementwise, a handful of f32 roundings; x − moving_mean carries x's own ulp·γ·scale.
    let atol = 2e-6 + 2.0 * case.offset_atol();
    Ok(vec![Compared::new("y", ctx.read(&yb)?, y, atol, 2e-6)])
}

/// The fold: the case's x is the kernel [K = rows, C], its dy's first C values the
/// convolution's bias; outputs prefilled with NaN (the pass must write every element).
fn check_fold(ctx: &GpuContext, k: &BatchNorm, case: Case) -> CheckOut {
    let s = case.shape;
    let (rows, c) = (s.rows, s.channels);
    let inp = Inputs::new(&case);
    let bias = &inp.dy[..c];
    let (wb, biasb) = (ctx.upload("w", &inp.x), ctx.upload("b", bias));
    let (gb, bb) = (
        ctx.upload("gamma", &inp.gamma),
        ctx.upload("beta", &inp.beta),
    );
    let mmb = ctx.upload("moving_mean", &inp.moving_mean);
    let mvb = ctx.upload("moving_var", &inp.moving_var);
    let w_out = ctx.upload("w'", &vec![f32::NAN; rows * c]);
    let b_out = ctx.upload("b'", &vec![f32::NAN; c]);
    let bufs = FoldBuffers {
        w_out: &w_out,
        b_out: &b_out,
        w: &wb,
        b: &biasb,
        gamma: &gb,
        beta: &bb,
        moving_mean: &mmb,
        moving_var: &mvb,
    };
    crate::kernels::run_all(ctx, &[&k.fold(ctx, &bufs, &s)])?;
    let (mut w, mut b) = (vec![0.0; rows * c], vec![0.0; c]);
    let (gamma, beta) = (to_f64(&inp.gamma), to_f64(&inp.beta));
    let (mm, mv) = (to_f64(&inp.moving_mean), to_f64(&inp.moving_var));
    let bn = cpu::batch_norm::Moving {
        gamma: &gamma,
        beta: &beta,
        moving_mean: &mm,
        moving_var: &mv,
    };
    let out = cpu::batch_norm::Folded {
        w: &mut w,
        b: &mut b,
    };
    cpu::batch_norm::batch_norm_fold(out, &to_f64(&inp.x), &to_f64(bias), bn, &case.unfused());
    // W' = W·s: two f32 roundings of s (the division, the square root) and one of the
    // product, relative; b' = (b − mm)·s + β: the same on a sum of terms ≤ 2·1.5 + 0.5, so an
    // absolute floor of a few ulps of 4.
    Ok(vec![
        Compared::new("w'", ctx.read(&w_out)?, w, case.offset_atol(), 2e-6),
        Compared::new(
            "b'",
            ctx.read(&b_out)?,
            b,
            4.0 * 4.0 * f32::EPSILON as f64,
            2e-6,
        ),
    ])
}

fn check_backward(ctx: &GpuContext, k: &BatchNorm, case: Case) -> CheckOut {
    let s = case.shape;
    let (m, c) = (s.rows, s.channels);
    let inp = Inputs::new(&case);
    // The saved statistics as the forward would have produced them, rounded to f32 so both
    // sides differentiate at the same point.
    let mut y = vec![0.0; m * c];
    let (mut mean, mut istd) = (vec![0.0; c], vec![0.0; c]);
    let (mut mm, mut mv) = (vec![0.0; c], vec![1.0; c]);
    let out = cpu::batch_norm::TrainOut {
        y: &mut y,
        mean: &mut mean,
        inv_std: &mut istd,
        moving_mean: &mut mm,
        moving_var: &mut mv,
    };
    let (x, gamma, beta) = (to_f64(&inp.x), to_f64(&inp.gamma), to_f64(&inp.beta));
    cpu::batch_norm::batch_norm_forward_train(out, &x, &gamma, &beta, &case.unfused());
    let (mean, istd) = (to_f32(&mean), to_f32(&istd));
    // With the fused ReLU, dy is the ReLU's output gradient: the reference passes it through
    // cpu::relu_backward first, with the forward's y as the GPU computes it in f32 from the
    // same f32 statistics (so both sides take the same side of the kink at y = 0).
    let dy = if s.relu {
        let y32: Vec<f64> = (0..m * c)
            .map(|i| {
                let ch = i % c;
                let scale = inp.gamma[ch] * istd[ch];
                ((inp.x[i] - mean[ch]) * scale + inp.beta[ch]) as f64
            })
            .collect();
        let mut masked = vec![0.0; m * c];
        cpu::relu::relu_backward(&mut masked, &to_f64(&inp.dy), &y32);
        masked
    } else {
        to_f64(&inp.dy)
    };

    let (dyb, xb, gb, bb) = (
        ctx.upload("dy", &inp.dy),
        ctx.upload("x", &inp.x),
        ctx.upload("gamma", &inp.gamma),
        ctx.upload("beta", &inp.beta),
    );
    let (meanb, isb) = (ctx.upload("mean", &mean), ctx.upload("inv_std", &istd));
    let (dxb, dgb, dbb) = (
        ctx.zeros("dx", m * c),
        ctx.zeros("dgamma", c),
        ctx.zeros("dbeta", c),
    );
    let scratch = ctx.zeros("scratch", BatchNorm::scratch_len(&s));
    let bufs = BackwardBuffers {
        dx: &dxb,
        dgamma: &dgb,
        dbeta: &dbb,
        dy: &dyb,
        x: &xb,
        gamma: &gb,
        beta: &bb,
        mean: &meanb,
        inv_std: &isb,
        scratch: &scratch,
    };
    let ds = k.backward(ctx, &bufs, &s);
    crate::kernels::run_all(ctx, &ds.iter().collect::<Vec<_>>())?;

    let (mut dx, mut dg, mut db) = (vec![0.0; m * c], vec![0.0; c], vec![0.0; c]);
    let grads = cpu::batch_norm::Grads {
        dx: &mut dx,
        dgamma: &mut dg,
        dbeta: &mut db,
    };
    cpu::batch_norm::batch_norm_backward(
        grads,
        &dy,
        &to_f64(&inp.x),
        &to_f64(&inp.gamma),
        &to_f64(&mean),
        &to_f64(&istd),
        &case.unfused(),
    );
    // dγ, dβ are f32 sums of M terms of size ~1 (chunked, so the error grows like the chunk
    // length plus the chunk count, not M): atol 1e-6·sqrt(M)·4, rtol 1e-5. dx subtracts the
    // per-channel means Σdy/M and x̂·Σdy·x̂/M, whose absolute errors carry over: atol 1e-5.
    let sum_atol = 4e-6 * (m as f64).sqrt();
    Ok(vec![
        Compared::new("dx", ctx.read(&dxb)?, dx, 1e-5, 1e-5),
        Compared::new("dgamma", ctx.read(&dgb)?, dg, sum_atol, 1e-5),
        Compared::new("dbeta", ctx.read(&dbb)?, db, sum_atol, 1e-5),
    ])
}

type CheckOut = Result<Vec<Compared>, crate::gpu::GpuError>;
type CheckFn = fn(&GpuContext, &BatchNorm, Case) -> CheckOut;

/// Every pass × variant × shape class. The two large shapes use 64 and 127 chunks (the
/// multi-chunk merge, with a ragged last chunk).
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
    let shapes = [
        (ShapeClass::Tiny, 4, 3, "N1 H2 W2 C3"),
        (ShapeClass::Odd, 2 * 7 * 7, 5, "N2 H7 W7 C5"),
        (ShapeClass::Large, 4 * 45 * 45, 96, "N4 H45 W45 C96"),
        (ShapeClass::Large, 8 * 45 * 45, 64, "N8 H45 W45 C64"),
        // C divisible by 4 at an odd size: the four-channel lane form (batch_norm::lanes).
        (ShapeClass::Odd, 2 * 7 * 7, 12, "N2 H7 W7 C12"),
    ];
    // Every shape at offset 4, and the first large one again at offset 1000, where a naive
    // E[x²] − E[x]² variance in f32 would be off by tens of percent.
    let cases = shapes
        .iter()
        .map(|&(class, rows, ch, label)| (class, rows, ch, format!("{label}, x 4±1.5"), 4.0))
        .chain(std::iter::once((
            ShapeClass::Large,
            shapes[2].1,
            shapes[2].2,
            format!("{}, x 1000±1.5", shapes[2].3),
            1000.0,
        )))
        .collect::<Vec<_>>();
    // The ReLU-fused passes at the first three shapes (tiny, odd, large): about half of y is
    // negative there (β ∈ ±0.5 on a unit-variance x̂), so the mask is exercised.
    let cases = (cases.iter().cloned().map(|c| (c, false)))
        .chain(cases.iter().take(3).cloned().map(|c| (c, true)))
        .collect::<Vec<_>>();
    let shared: Shared = Arc::default();
    let mut v = Vec::new();
    for variant in Variant::ALL {
        for (i, ((class, rows, channels, label, offset), relu)) in cases.iter().cloned().enumerate()
        {
            let case = Case {
                shape: BnShape {
                    relu,
                    ..BnShape::keras(rows, channels)
                },
                seed: 100 + 10 * i as u64,
                offset,
            };
            let passes: [(&'static str, CheckFn); 3] = if relu {
                [
                    ("forward_train_relu", check_forward_train),
                    ("forward_inference_relu", check_forward_inference),
                    ("backward_relu", check_backward),
                ]
            } else {
                [
                    ("forward_train", check_forward_train),
                    ("forward_inference", check_forward_inference),
                    ("backward", check_backward),
                ]
            };
            // The fold views a kernel [k·k·Cin, Cout] as the case's [M, C] (no ReLU of its
            // own: that goes into the convolution's epilogue).
            let fold: Option<(&'static str, CheckFn)> = (!relu).then_some(("fold", check_fold));
            for (pass, f) in passes.into_iter().chain(fold) {
                let sh = shared.clone();
                v.push(Check::new(
                    "batch_norm",
                    pass,
                    variant.name(),
                    class,
                    label.clone(),
                    move |ctx| f(ctx, kernels(&sh, ctx, variant), case),
                ));
            }
        }
    }
    v
}
