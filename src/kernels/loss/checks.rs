//! Parity checks of `loss`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::cpu;
use crate::gpu::GpuError;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

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

/// One parity case: N samples of `width` logits (sigmoid_bce: L labels; softmax_ce: K classes).
#[derive(Clone, Copy)]
struct Case {
    n: usize,
    width: usize,
    extremes: bool,
    seed: u64,
}

impl Case {
    /// Logits and 0/1 labels for sigmoid_bce.
    fn bce_data(self) -> (Vec<f32>, Vec<f32>) {
        let len = self.n * self.width;
        let z = logits(self.seed, len, self.extremes);
        let y = random_vec(self.seed + 1, len, 0.0, 1.0)
            .iter()
            .map(|v| v.round())
            .collect();
        (z, y)
    }

    /// Logits and class indices for softmax_ce.
    fn ce_data(self) -> (Vec<f32>, Vec<u32>) {
        let (n, k) = (self.n, self.width);
        let z = logits(self.seed, n * k, self.extremes);
        let labels = random_vec(self.seed + 1, n, 0.0, k as f32)
            .iter()
            .map(|&v| (v as u32).min(k as u32 - 1))
            .collect();
        (z, labels)
    }
}

/// One pass's check on the shared kernels.
type Run = fn(&GpuContext, &Loss, Case) -> Result<Vec<Compared>, GpuError>;

/// The checks of one loss: every case, each pass in `passes` (in row order). `width` names the
/// second dimension in the row's shape ("L" labels or "K" classes).
fn loss_checks(
    shared: &Shared,
    op: &'static str,
    width: &str,
    passes: [(&'static str, Run); 3],
    cases: [(ShapeClass, usize, usize, bool); 4],
    seed0: u64,
) -> Vec<Check> {
    let mut v = Vec::new();
    for (i, (class, n, w, extremes)) in cases.into_iter().enumerate() {
        let shape = format!("N{n} {width}{w}{}", if extremes { " ±100" } else { "" });
        let case = Case {
            n,
            width: w,
            extremes,
            seed: seed0 + 10 * i as u64,
        };
        for (pass, run) in passes {
            let s = shared.clone();
            v.push(Check::new(op, pass, "", class, shape.clone(), move |ctx| {
                run(ctx, loss_kernels(&s, ctx), case)
            }));
        }
    }
    v
}

fn sigmoid_bce_checks(shared: &Shared) -> Vec<Check> {
    use ShapeClass::*;
    let cases = [
        (Tiny, 2, 1, false),
        (Odd, 13, 3, true),
        (Large, 128, 1, true),
        // Many elements per invocation in the one-workgroup reduction.
        (Large, 1000, 3, true),
    ];
    let passes: [(&'static str, Run); 3] = [
        ("forward", bce_forward),
        ("backward", bce_backward),
        ("metrics", bce_metrics),
    ];
    loss_checks(shared, "sigmoid_bce", "L", passes, cases, 300)
}

/// Forward: a mean of N·L f32 terms up to ~100 (extremes), each within a few ulp, and
/// log(1+u) within ~1e-7 absolute: atol 1e-6, rtol 1e-5.
fn bce_forward(ctx: &GpuContext, k: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, l) = (c.n, c.width);
    let (z, y) = c.bce_data();
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
}

/// Backward: σ within a few ulp, one subtraction and one division: |dz| ≤ 1/(N·L);
/// atol 1e-7/(N·L) absorbs σ(−100) ≈ 4e-44 flushed to 0.
fn bce_backward(ctx: &GpuContext, k: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, l) = (c.n, c.width);
    let atol = 1e-7 / (n * l) as f64;
    let (z, y) = c.bce_data();
    let (zb, yb) = (ctx.upload("z", &z), ctx.upload("y", &y));
    let dzb = ctx.upload("dz", &vec![f32::NAN; n * l]);
    crate::kernels::run_all(ctx, &[&k.sigmoid_bce_backward(ctx, &dzb, &zb, &yb, n, l)])?;
    let mut want = vec![0.0; n * l];
    cpu::loss::sigmoid_bce_backward(&mut want, &to_f64(&z), &to_f64(&y), n, l);
    Ok(vec![Compared::new("dz", ctx.read(&dzb)?, want, atol, 1e-5)])
}

/// Metrics: the loss sum as the forward (before the mean); counts exact.
fn bce_metrics(ctx: &GpuContext, k: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, l) = (c.n, c.width);
    let (z, y) = c.bce_data();
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
}

/// Compares the loss sum (atol 1e-5, rtol 1e-5) and the counts (exactly).
fn metrics_compared(gpu: Vec<f32>, cpu: Vec<f64>) -> Result<Vec<Compared>, GpuError> {
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
        (Tiny, 2, 3, false),
        (Odd, 13, 5, true),
        (Large, 128, 10, true),
        (Large, 700, 10, true),
    ];
    let passes: [(&'static str, Run); 3] = [
        ("forward", ce_forward),
        ("backward", ce_backward),
        ("metrics", ce_metrics),
    ];
    loss_checks(shared, "softmax_ce", "K", passes, cases, 400)
}

/// Forward: per sample (max − z_t) + log Σ exp: a few ulp of values up to ~200 (extremes),
/// averaged: atol 1e-5, rtol 1e-5.
fn ce_forward(ctx: &GpuContext, kern: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, k) = (c.n, c.width);
    let (z, t) = c.ce_data();
    let (zb, tb, lb) = (
        ctx.upload("z", &z),
        ctx.upload("labels", &t),
        ctx.upload("loss", &[f32::NAN]),
    );
    crate::kernels::run_all(ctx, &[&kern.softmax_ce_forward(ctx, &lb, &zb, &tb, n, k)])?;
    let mut want = [0.0];
    cpu::loss::softmax_ce_forward(&mut want, &to_f64(&z), &t, n, k);
    Ok(vec![Compared::new(
        "loss",
        ctx.read(&lb)?,
        want.to_vec(),
        1e-5,
        1e-5,
    )])
}

/// Backward: softmax from K exps (a few ulp each), minus one-hot, over N: atol 1e-7/N,
/// rtol 1e-5.
fn ce_backward(ctx: &GpuContext, kern: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, k) = (c.n, c.width);
    let atol = 1e-7 / n as f64;
    let (z, t) = c.ce_data();
    let (zb, tb) = (ctx.upload("z", &z), ctx.upload("labels", &t));
    let dzb = ctx.upload("dz", &vec![f32::NAN; n * k]);
    crate::kernels::run_all(ctx, &[&kern.softmax_ce_backward(ctx, &dzb, &zb, &tb, n, k)])?;
    let mut want = vec![0.0; n * k];
    cpu::loss::softmax_ce_backward(&mut want, &to_f64(&z), &t, n, k);
    Ok(vec![Compared::new("dz", ctx.read(&dzb)?, want, atol, 1e-5)])
}

/// Metrics: the loss sum as the forward (before the mean); counts exact.
fn ce_metrics(ctx: &GpuContext, kern: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, k) = (c.n, c.width);
    let (z, t) = c.ce_data();
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
}

/// Parity checks of both losses, every pass, at the three shape classes.
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
    let shared: Shared = Arc::new(OnceLock::new());
    let mut v = sigmoid_bce_checks(&shared);
    v.extend(softmax_ce_checks(&shared));
    v
}
