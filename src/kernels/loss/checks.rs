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
    /// Non-uniform class weights (Keras' class_weight), seeded in [0.25, 4).
    weighted: bool,
    /// Label smoothing S (0: none).
    smoothing: f32,
    seed: u64,
}

/// The case's label smoothing as the CPU reference takes it (the f32 the GPU reads, widened).
fn sm(c: Case) -> f64 {
    c.smoothing as f64
}

/// Largest class weight a weighted case draws (scales the absolute tolerances).
const MAX_WEIGHT: f32 = 4.0;

impl Case {
    /// The case's class weights (`len` of them, [`weights_len`]) when weighted.
    fn weights(self, len: usize) -> Option<Vec<f32>> {
        self.weighted
            .then(|| random_vec(self.seed + 2, len, 0.25, MAX_WEIGHT))
    }

    /// The weights uploaded (or None), and as the CPU reference takes them.
    fn weight_buffers(
        self,
        ctx: &GpuContext,
        len: usize,
    ) -> (Option<wgpu::Buffer>, Option<Vec<f64>>) {
        match self.weights(len) {
            Some(w) => (Some(ctx.upload("class weights", &w)), Some(to_f64(&w))),
            None => (None, None),
        }
    }

    /// What absolute tolerances scale by: the largest weight a term can carry.
    fn weight_scale(self) -> f64 {
        if self.weighted {
            MAX_WEIGHT as f64
        } else {
            1.0
        }
    }

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

/// A pass's input: logits `z`, `targets`, N × `classes`, the class weights if any, the
/// case's label smoothing.
fn input<'a>(
    z: &'a wgpu::Buffer,
    targets: &'a wgpu::Buffer,
    c: Case,
    weights: Option<&'a wgpu::Buffer>,
) -> LossInput<'a> {
    LossInput {
        z,
        targets,
        n: c.n,
        classes: c.width,
        weights: weights.map(|w| w as _),
        smoothing: c.smoothing,
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
    cases: &[(ShapeClass, usize, usize, bool, bool, f32)],
    seed0: u64,
) -> Vec<Check> {
    let mut v = Vec::new();
    for (i, &(class, n, w, extremes, weighted, smoothing)) in cases.iter().enumerate() {
        let shape = format!(
            "N{n} {width}{w}{}{}{}",
            if extremes { " ±100" } else { "" },
            if weighted { " class-weighted" } else { "" },
            if smoothing > 0.0 {
                format!(" smoothing {smoothing}")
            } else {
                String::new()
            }
        );
        let case = Case {
            n,
            width: w,
            extremes,
            weighted,
            smoothing,
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
        (Tiny, 2, 1, false, false, 0.0),
        (Odd, 13, 3, true, false, 0.0),
        (Large, 128, 1, true, false, 0.0),
        // Many elements per invocation in the one-workgroup reduction.
        (Large, 1000, 3, true, false, 0.0),
        // Class weights: [negative, positive] (the binary classifier's L = 1, and L > 1).
        (Odd, 13, 1, true, true, 0.0),
        (Large, 1000, 3, true, true, 0.0),
        // Label smoothing (Keras' label_smoothing): y' = y·(1 − S) + S/2, with and without
        // class weights (which follow the given label).
        (Odd, 13, 1, true, false, 0.1),
        (Large, 1000, 3, true, true, 0.3),
    ];
    let passes: [(&'static str, Run); 3] = [
        ("forward", bce_forward),
        ("backward", bce_backward),
        ("metrics", bce_metrics),
    ];
    loss_checks(shared, "sigmoid_bce", "L", passes, &cases, 300)
}

/// Forward: a mean of N·L f32 terms up to ~100 (extremes), each within a few ulp, and
/// log(1+u) within ~1e-7 absolute: atol 1e-6, rtol 1e-5.
fn bce_forward(ctx: &GpuContext, k: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, l) = (c.n, c.width);
    let (z, y) = c.bce_data();
    let (wb, w) = c.weight_buffers(ctx, weights_len(false, l));
    let (zb, yb, lb) = (
        ctx.upload("z", &z),
        ctx.upload("y", &y),
        ctx.upload("loss", &[f32::NAN]),
    );
    let d = k.sigmoid_bce_forward(ctx, &lb, &input(&zb, &yb, c, wb.as_ref()));
    crate::kernels::run_all(ctx, &[&d])?;
    let mut want = [0.0];
    let (z, y) = (to_f64(&z), to_f64(&y));
    cpu::loss::sigmoid_bce_forward_smoothed(&mut want, &z, &y, n, l, w.as_deref(), sm(c));
    Ok(vec![Compared::new(
        "loss",
        ctx.read(&lb)?,
        want.to_vec(),
        1e-6 * c.weight_scale(),
        1e-5,
    )])
}

/// Backward: σ within a few ulp, one subtraction and one division: |dz| ≤ 1/(N·L);
/// atol 1e-7/(N·L) absorbs σ(−100) ≈ 4e-44 flushed to 0.
fn bce_backward(ctx: &GpuContext, k: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, l) = (c.n, c.width);
    let atol = 1e-7 * c.weight_scale() / (n * l) as f64;
    let (z, y) = c.bce_data();
    let (wb, w) = c.weight_buffers(ctx, weights_len(false, l));
    let (zb, yb) = (ctx.upload("z", &z), ctx.upload("y", &y));
    let dzb = ctx.upload("dz", &vec![f32::NAN; n * l]);
    let d = k.sigmoid_bce_backward(ctx, &dzb, &input(&zb, &yb, c, wb.as_ref()));
    crate::kernels::run_all(ctx, &[&d])?;
    let mut want = vec![0.0; n * l];
    let (z, y) = (to_f64(&z), to_f64(&y));
    cpu::loss::sigmoid_bce_backward_smoothed(&mut want, &z, &y, n, l, w.as_deref(), sm(c));
    Ok(vec![Compared::new("dz", ctx.read(&dzb)?, want, atol, 1e-5)])
}

/// Metrics: the loss sum as the forward (before the mean); counts exact.
fn bce_metrics(ctx: &GpuContext, k: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, l) = (c.n, c.width);
    let (z, y) = c.bce_data();
    let (wb, w) = c.weight_buffers(ctx, weights_len(false, l));
    let (zb, yb, mb) = (
        ctx.upload("z", &z),
        ctx.upload("y", &y),
        ctx.upload("metrics", &METRICS_START),
    );
    let d = k.sigmoid_bce_metrics(ctx, &mb, &input(&zb, &yb, c, wb.as_ref()));
    crate::kernels::run_all(ctx, &[&d; METRIC_REPEATS])?;
    let mut want = to_f64(&METRICS_START);
    let (z, y) = (to_f64(&z), to_f64(&y));
    for _ in 0..METRIC_REPEATS {
        cpu::loss::sigmoid_bce_metrics_smoothed(&mut want, &z, &y, n, l, w.as_deref(), sm(c));
    }
    metrics_compared(ctx.read(&mb)?, want, c.weight_scale())
}

/// Compares the loss sum (atol 1e-5 × the largest weight, rtol 1e-5) and the counts (exactly:
/// never weighted).
fn metrics_compared(gpu: Vec<f32>, cpu: Vec<f64>, scale: f64) -> Result<Vec<Compared>, GpuError> {
    Ok(vec![
        Compared::new(
            "loss_sum",
            gpu[..1].to_vec(),
            cpu[..1].to_vec(),
            1e-5 * scale,
            1e-5,
        ),
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
        (Tiny, 2, 3, false, false, 0.0),
        (Odd, 13, 5, true, false, 0.0),
        (Large, 128, 10, true, false, 0.0),
        (Large, 700, 10, true, false, 0.0),
        // Class weights: one per class.
        (Odd, 13, 5, true, true, 0.0),
        (Large, 700, 10, true, true, 0.0),
        // Label smoothing: y' = (1 − S)·onehot + S/K, with and without class weights.
        (Odd, 13, 5, true, false, 0.1),
        (Large, 700, 10, true, true, 0.3),
    ];
    let passes: [(&'static str, Run); 3] = [
        ("forward", ce_forward),
        ("backward", ce_backward),
        ("metrics", ce_metrics),
    ];
    loss_checks(shared, "softmax_ce", "K", passes, &cases, 400)
}

/// Forward: per sample (max − z_t) + log Σ exp: a few ulp of values up to ~200 (extremes),
/// averaged: atol 1e-5, rtol 1e-5.
fn ce_forward(ctx: &GpuContext, kern: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, k) = (c.n, c.width);
    let (z, t) = c.ce_data();
    let (wb, w) = c.weight_buffers(ctx, weights_len(true, k));
    let (zb, tb, lb) = (
        ctx.upload("z", &z),
        ctx.upload("labels", &t),
        ctx.upload("loss", &[f32::NAN]),
    );
    let d = kern.softmax_ce_forward(ctx, &lb, &input(&zb, &tb, c, wb.as_ref()));
    crate::kernels::run_all(ctx, &[&d])?;
    let mut want = [0.0];
    let z = to_f64(&z);
    cpu::loss::softmax_ce_forward_smoothed(&mut want, &z, &t, n, k, w.as_deref(), sm(c));
    Ok(vec![Compared::new(
        "loss",
        ctx.read(&lb)?,
        want.to_vec(),
        1e-5 * c.weight_scale(),
        1e-5,
    )])
}

/// Backward: softmax from K exps (a few ulp each), minus one-hot, over N: atol 1e-7/N,
/// rtol 1e-5.
fn ce_backward(ctx: &GpuContext, kern: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, k) = (c.n, c.width);
    let atol = 1e-7 * c.weight_scale() / n as f64;
    let (z, t) = c.ce_data();
    let (wb, w) = c.weight_buffers(ctx, weights_len(true, k));
    let (zb, tb) = (ctx.upload("z", &z), ctx.upload("labels", &t));
    let dzb = ctx.upload("dz", &vec![f32::NAN; n * k]);
    let d = kern.softmax_ce_backward(ctx, &dzb, &input(&zb, &tb, c, wb.as_ref()));
    crate::kernels::run_all(ctx, &[&d])?;
    let mut want = vec![0.0; n * k];
    let z = to_f64(&z);
    cpu::loss::softmax_ce_backward_smoothed(&mut want, &z, &t, n, k, w.as_deref(), sm(c));
    Ok(vec![Compared::new("dz", ctx.read(&dzb)?, want, atol, 1e-5)])
}

/// Metrics: the loss sum as the forward (before the mean); counts exact.
fn ce_metrics(ctx: &GpuContext, kern: &Loss, c: Case) -> Result<Vec<Compared>, GpuError> {
    let (n, k) = (c.n, c.width);
    let (z, t) = c.ce_data();
    let (wb, w) = c.weight_buffers(ctx, weights_len(true, k));
    let (zb, tb, mb) = (
        ctx.upload("z", &z),
        ctx.upload("labels", &t),
        ctx.upload("metrics", &METRICS_START),
    );
    let d = kern.softmax_ce_metrics(ctx, &mb, &input(&zb, &tb, c, wb.as_ref()));
    crate::kernels::run_all(ctx, &[&d; METRIC_REPEATS])?;
    let mut want = to_f64(&METRICS_START);
    let z = to_f64(&z);
    for _ in 0..METRIC_REPEATS {
        cpu::loss::softmax_ce_metrics_smoothed(&mut want, &z, &t, n, k, w.as_deref(), sm(c));
    }
    metrics_compared(ctx.read(&mb)?, want, c.weight_scale())
}

/// Parity checks of both losses, every pass, at the three shape classes.
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
    let shared: Shared = Arc::new(OnceLock::new());
    let mut v = sigmoid_bce_checks(&shared);
    v.extend(softmax_ce_checks(&shared));
    v
}
