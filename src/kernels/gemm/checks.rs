//! Parity checks of `gemm`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::Arc;

use super::*;
use crate::cpu;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

/// f32 sums of K products of values in [-1, 1]: rounding grows like sqrt(K) on average.
pub(crate) fn tolerance(k: usize) -> (f64, f64) {
    (1e-5 * (k as f64).sqrt().max(1.0), 1e-4)
}

/// A lazily compiled [`Gemm`] shared by the checks of one family (compiled on the first check
/// that runs, so listing checks compiles nothing).
pub(crate) type SharedGemm = Arc<OnceLock<Arc<Gemm>>>;

pub(crate) fn shared_gemm(cell: &SharedGemm, ctx: &GpuContext) -> Arc<Gemm> {
    cell.get_or_init(|| Arc::new(Gemm::new(ctx))).clone()
}

fn variants_on(ctx: &GpuContext) -> Vec<Variant> {
    Variant::ALL
        .into_iter()
        .filter(|&v| !v.uses_subgroups() || subgroup_usable(ctx).is_ok())
        .collect()
}

/// Parity checks of every runnable variant at the three shape classes.
pub fn all(ctx: &GpuContext) -> Vec<Check> {
    let shapes = [
        (ShapeClass::Tiny, (3usize, 5usize, 4usize)),
        (ShapeClass::Odd, (37, 29, 53)),
        (ShapeClass::Large, (300, 257, 190)),
        // Multiples of 4: the vec4 paths (A_MODE 1, B_MODE 1, tiled's vec4 loads of B).
        (ShapeClass::Large, (300, 256, 192)),
    ];
    let cell: SharedGemm = Arc::default();
    let mut v = Vec::new();
    for variant in variants_on(ctx) {
        for (class, (m, n, k)) in shapes {
            let cell = cell.clone();
            v.push(Check::new(
                "gemm",
                "forward",
                variant.name(),
                class,
                format!("M{m} N{n} K{k}"),
                move |ctx| {
                    let g = shared_gemm(&cell, ctx);
                    let a = random_vec(21, m * k, -1.0, 1.0);
                    let b = random_vec(22, k * n, -1.0, 1.0);
                    let (ab, bb, cb) = (
                        ctx.upload("a", &a),
                        ctx.upload("b", &b),
                        ctx.zeros("c", m * n),
                    );
                    crate::kernels::run_all(
                        ctx,
                        &[&g.forward(ctx, variant, &cb, &ab, &bb, &GemmDims { m, n, k })],
                    )?;
                    let mut want = vec![0.0; m * n];
                    cpu::gemm::gemm_forward(&mut want, &to_f64(&a), &to_f64(&b), m, n, k);
                    let (atol, rtol) = tolerance(k);
                    Ok(vec![Compared::new("c", ctx.read(&cb)?, want, atol, rtol)])
                },
            ));
        }
        for (class, (m, n, k)) in shapes {
            let cell = cell.clone();
            v.push(Check::new(
                "gemm",
                "forward_relu",
                variant.name(),
                class,
                format!("M{m} N{n} K{k} + bias"),
                move |ctx| check_forward_relu(ctx, &shared_gemm(&cell, ctx), variant, [m, n, k]),
            ));
        }
    }
    v
}

/// The ReLU epilogue (`GemmSpec::relu`) after the bias: C = max(A·B + bias, 0). The bias in
/// ±1 against sums of ~sqrt(K)/3 makes about half of C negative, so the cut is exercised; C
/// prefilled with NaN, so every element must be written.
fn check_forward_relu(
    ctx: &GpuContext,
    g: &Gemm,
    variant: Variant,
    [m, n, k]: [usize; 3],
) -> Result<Vec<Compared>, crate::gpu::GpuError> {
    let a = random_vec(23, m * k, -1.0, 1.0);
    let b = random_vec(24, k * n, -1.0, 1.0);
    let bias = random_vec(25, n, -1.0, 1.0);
    let (ab, bb, biasb) = (
        ctx.upload("a", &a),
        ctx.upload("b", &b),
        ctx.upload("bias", &bias),
    );
    let cb = ctx.upload("c", &vec![f32::NAN; m * n]);
    let spec = GemmSpec {
        bias_off: Some(0),
        relu: true,
        ..GemmSpec::row_major(m, n, k)
    };
    let bufs = GemmBuffers {
        c: &cb,
        a: &ab,
        b: &bb,
        bias: Some(&biasb),
    };
    crate::kernels::run_all(ctx, &[&g.gemm(ctx, variant, &spec, bufs)])?;
    let mut want = vec![0.0; m * n];
    cpu::gemm::gemm_forward(&mut want, &to_f64(&a), &to_f64(&b), m, n, k);
    for (i, c) in want.iter_mut().enumerate() {
        *c = (*c + bias[i % n] as f64).max(0.0);
    }
    // max(·, 0) moves no value further from the reference than it was: the GEMM's tolerance.
    let (atol, rtol) = tolerance(k);
    Ok(vec![Compared::new("c", ctx.read(&cb)?, want, atol, rtol)])
}
