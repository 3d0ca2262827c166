//! Parity checks of `loss`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use super::*;
use crate::cpu;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};
use std::sync::{Arc, OnceLock};

type Shared = Arc<OnceLock<Loss>>;

fn loss_kernels<'a>(shared: &'a Shared, ctx: &GpuContext) -> &'a Loss {
    shared.get_or_init(|| Loss::new(ctx))
}

/// Seeded logits in [−8, 8); with `extremes`, every 7th is one of ±100, ±30, ±1e-3, 0, so the
/// stable forms are exercised where the naive ones overflow or lose everything.
pub(super) fn logits(seed: u64, len: usize, extremes: bool) -> Vec<f32> {
    const EXTREMES: [f32; 7] = [100.0, -100.0, 30.0, -30.0, 1e-3, -1e-3, 0.0];
    let mut z = random_vec(seed, len, -8.0, 8.0);
    if extremes {
        for (i, v) in z.iter_mut().enumerate().step_by(7) {
            *v = EXTREMES[(i / 7) % EXTREMES.len()];
        }
    }
    z
}

/// Metrics start from a non-zero value and are accumulated twice: proves "accumulates".
const METRICS_START: [f32; 3] = [1.5, 2.0, 3.0];
const METRIC_REPEATS: usize = 2;

fn sigmoid_bce_checks(shared: &Shared) -> Vec<Check> {
    use ShapeClass::*;
    let cases = [
        (Tiny, 2usize, 1usize, false),
        (Odd, 13, 3, true),
        (Large, 128, 1, true),
        // Many elements per invocation in the one-workgroup reduction.
        (Large, 1000, 3, true),
    ];
    let mut v = Vec::new();
    for (i, (class, n, l, extremes)) in cases.into_iter().enumerate() {
        let shape = format!("N{n} L{l}{}", if extremes { " ±100" } else { "" });
        let seed = 300 + 10 * i as u64;
        let data = move || {
            let z = logits(seed, n * l, extremes);
            let y: Vec<f32> = random_vec(seed + 1, n * l, 0.0, 1.0)
                .iter()
                .map(|v| v.round())
                .collect();
            (z, y)
        };
        let s = shared.clone();
        // Forward: a mean of N·L f32 terms up to ~100 (extremes), each within a few ulp, and
        // log(1+u) within ~1e-7 absolute: atol 1e-6, rtol 1e-5.
        v.push(Check::new(
            "sigmoid_bce",
            "forward",
            "",
            class,
            shape.clone(),
            move |ctx| {
                let k = loss_kernels(&s, ctx);
                let (z, y) = data();
                let (zb, yb, lb) = (
                    ctx.upload("z", &z),
                    ctx.upload("y", &y),
                    ctx.upload("loss", &[f32::NAN]),
                );
                crate::kernels::run_all(ctx, &[&k.sigmoid_bce_forward(ctx, &lb, &zb, &yb, n, l)])?;
                let mut want = [0.0];
                cpu::loss::sigmoid_bce_forward(&mut want, &to_f64(&z), &to_f64(&y), n, l);
                Ok(vec![Compared::new(
                    "loss",
                    ctx.read(&lb)?,
                    want.to_vec(),
                    1e-6,
                    1e-5,
                )])
            },
        ));
        let s = shared.clone();
        // Backward: σ within a few ulp, one subtraction and one division: |dz| ≤ 1/(N·L);
        // atol 1e-7/(N·L) absorbs σ(−100) ≈ 4e-44 flushed to 0.
        let atol = 1e-7 / (n * l) as f64;
        v.push(Check::new(
            "sigmoid_bce",
            "backward",
            "",
            class,
            shape.clone(),
            move |ctx| {
                let k = loss_kernels(&s, ctx);
                let (z, y) = data();
                let (zb, yb) = (ctx.upload("z", &z), ctx.upload("y", &y));
                let dzb = ctx.upload("dz", &vec![f32::NAN; n * l]);
                crate::kernels::run_all(
                    ctx,
                    &[&k.sigmoid_bce_backward(ctx, &dzb, &zb, &yb, n, l)],
                )?;
                let mut want = vec![0.0; n * l];
                cpu::loss::sigmoid_bce_backward(&mut want, &to_f64(&z), &to_f64(&y), n, l);
                Ok(vec![Compared::new("dz", ctx.read(&dzb)?, want, atol, 1e-5)])
            },
        ));
        let s = shared.clone();
        // Metrics: the loss sum as the forward (before the mean); counts exact.
        v.push(Check::new(
            "sigmoid_bce",
            "metrics",
            "",
            class,
            shape,
            move |ctx| {
                let k = loss_kernels(&s, ctx);
                let (z, y) = data();
                let (zb, yb, mb) = (
                    ctx.upload("z", &z),
                    ctx.upload("y", &y),
                    ctx.upload("metrics", &METRICS_START),
                );
                let d = k.sigmoid_bce_metrics(ctx, &mb, &zb, &yb, n, l);
                crate::kernels::run_all(ctx, &[&d; METRIC_REPEATS])?;
                let mut want = to_f64(&METRICS_START);
                for _ in 0..METRIC_REPEATS {
                    cpu::loss::sigmoid_bce_metrics(&mut want, &to_f64(&z), &to_f64(&y), n, l);
                }
                metrics_compared(ctx.read(&mb)?, want)
            },
        ));
    }
    v
}

/// Compares the loss sum (atol 1e-5, rtol 1e-5) and the counts (exactly).
fn metrics_compared(gpu: Vec<f32>, cpu: Vec<f64>) -> Result<Vec<Compared>, crate::gpu::GpuError> {
    Ok(vec![
        Compared::new("loss_sum", gpu[..1].to_vec(), cpu[..1].to_vec(), 1e-5, 1e-5),
        Compared::new(
            "correct, seen",
            gpu[1..].to_vec(),
            cpu[1..].to_vec(),
            0.0,
            0.0,
        ),
    ])
}

fn softmax_ce_checks(shared: &Shared) -> Vec<Check> {
    use ShapeClass::*;
    let cases = [
        (Tiny, 2usize, 3usize, false),
        (Odd, 13, 5, true),
        (Large, 128, 10, true),
        (Large, 700, 10, true),
    ];
    let mut v = Vec::new();
    for (i, (class, n, k, extremes)) in cases.into_iter().enumerate() {
        let shape = format!("N{n} K{k}{}", if extremes { " ±100" } else { "" });
        let seed = 400 + 10 * i as u64;
        let data = move || {
            let z = logits(seed, n * k, extremes);
            let labels: Vec<u32> = random_vec(seed + 1, n, 0.0, k as f32)
                .iter()
                .map(|&v| (v as u32).min(k as u32 - 1))
                .collect();
            (z, labels)
        };
        let s = shared.clone();
        // Forward: per sample (max − z_t) + log Σ exp: a few ulp of values up to ~200
        // (extremes), averaged: atol 1e-5, rtol 1e-5.
        v.push(Check::new(
            "softmax_ce",
            "forward",
            "",
            class,
            shape.clone(),
            move |ctx| {
                let kern = loss_kernels(&s, ctx);
                let (z, t) = data();
                let (zb, tb, lb) = (
                    ctx.upload("z", &z),
                    ctx.upload("labels", &t),
                    ctx.upload("loss", &[f32::NAN]),
                );
                crate::kernels::run_all(
                    ctx,
                    &[&kern.softmax_ce_forward(ctx, &lb, &zb, &tb, n, k)],
                )?;
                let mut want = [0.0];
                cpu::loss::softmax_ce_forward(&mut want, &to_f64(&z), &t, n, k);
                Ok(vec![Compared::new(
                    "loss",
                    ctx.read(&lb)?,
                    want.to_vec(),
                    1e-5,
                    1e-5,
                )])
            },
        ));
        let s = shared.clone();
        // Backward: softmax from K exps (a few ulp each), minus one-hot, over N:
        // atol 1e-7/N, rtol 1e-5.
        let atol = 1e-7 / n as f64;
        v.push(Check::new(
            "softmax_ce",
            "backward",
            "",
            class,
            shape.clone(),
            move |ctx| {
                let kern = loss_kernels(&s, ctx);
                let (z, t) = data();
                let (zb, tb) = (ctx.upload("z", &z), ctx.upload("labels", &t));
                let dzb = ctx.upload("dz", &vec![f32::NAN; n * k]);
                crate::kernels::run_all(
                    ctx,
                    &[&kern.softmax_ce_backward(ctx, &dzb, &zb, &tb, n, k)],
                )?;
                let mut want = vec![0.0; n * k];
                cpu::loss::softmax_ce_backward(&mut want, &to_f64(&z), &t, n, k);
                Ok(vec![Compared::new("dz", ctx.read(&dzb)?, want, atol, 1e-5)])
            },
        ));
        let s = shared.clone();
        v.push(Check::new(
            "softmax_ce",
            "metrics",
            "",
            class,
            shape,
            move |ctx| {
                let kern = loss_kernels(&s, ctx);
                let (z, t) = data();
                let (zb, tb, mb) = (
                    ctx.upload("z", &z),
                    ctx.upload("labels", &t),
                    ctx.upload("metrics", &METRICS_START),
                );
                let d = kern.softmax_ce_metrics(ctx, &mb, &zb, &tb, n, k);
                crate::kernels::run_all(ctx, &[&d; METRIC_REPEATS])?;
                let mut want = to_f64(&METRICS_START);
                for _ in 0..METRIC_REPEATS {
                    cpu::loss::softmax_ce_metrics(&mut want, &to_f64(&z), &t, n, k);
                }
                metrics_compared(ctx.read(&mb)?, want)
            },
        ));
    }
    v
}

/// Parity checks of both losses, every pass, at the three shape classes.
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
    let shared: Shared = Arc::new(OnceLock::new());
    let mut v = sigmoid_bce_checks(&shared);
    v.extend(softmax_ce_checks(&shared));
    v
}
