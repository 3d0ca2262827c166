//! `sigmoid_bce` and `softmax_ce`: losses from logits, forward, backward and on-GPU metrics
//! (shaders/sigmoid_bce.wgsl, shaders/softmax_ce.wgsl).
//!
//! The training step needs only `*_backward` (the gradient of the mean loss) and, to report
//! progress without a readback per step, `*_metrics`, which accumulates
//! `[loss_sum, correct, seen]` (3 f32, [`METRICS_LEN`]) on the GPU: clear it at the start of an
//! epoch (`encoder.clear_buffer`), read it when the numbers must reach the user; the epoch's
//! loss is `loss_sum / seen` and its accuracy `correct / seen`. sigmoid_bce counts elements
//! (N·L per batch: per sample when L = 1), softmax_ce counts samples. f32 counts are exact up
//! to 2^24 (16.7M samples). `*_forward` writes the batch's mean loss into a 1-element buffer.

use std::sync::{Arc, OnceLock};

use bytemuck::{Pod, Zeroable};

use crate::cpu;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Mirrors `struct Params` in shaders/sigmoid_bce.wgsl and shaders/softmax_ce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    /// Samples N.
    pub n: u32,
    /// Labels L (sigmoid_bce) or classes K (softmax_ce).
    pub classes: u32,
    pub _pad: [u32; 2],
}

/// Elements of a metrics buffer: `[loss_sum, correct, seen]`.
pub const METRICS_LEN: usize = 3;

/// Invocations per workgroup; a power of two ≤ 256 (the reduction tree's array).
const WG: u32 = 256;

impl Params {
    fn new(n: usize, classes: usize) -> Self {
        assert!(
            n > 0 && classes > 0,
            "empty loss input: N {n}, classes {classes}"
        );
        u32::try_from(n * classes).expect("loss input exceeds u32 elements");
        Self {
            n: n as u32,
            classes: classes as u32,
            _pad: [0; 2],
        }
    }
}

/// Pipelines of shaders/sigmoid_bce.wgsl and shaders/softmax_ce.wgsl.
pub struct Loss {
    bce: ShaderFamily,
    ce: ShaderFamily,
}

impl Loss {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            bce: ShaderFamily::new(
                ctx,
                "sigmoid_bce",
                include_str!("../../shaders/sigmoid_bce.wgsl"),
                &[
                    "sigmoid_bce_forward",
                    "sigmoid_bce_backward",
                    "sigmoid_bce_metrics",
                ],
                &[("WG", WG as f64)],
            ),
            ce: ShaderFamily::new(
                ctx,
                "softmax_ce",
                include_str!("../../shaders/softmax_ce.wgsl"),
                &[
                    "softmax_ce_forward",
                    "softmax_ce_backward",
                    "softmax_ce_metrics",
                ],
                &[("WG", WG as f64)],
            ),
        }
    }

    /// Mean binary cross-entropy from logits (writes loss). loss: [1] f32; z (logits),
    /// targets (0 or 1): [N, L] f32.
    pub fn sigmoid_bce_forward(
        &self,
        ctx: &GpuContext,
        loss: &dyn Bind,
        z: &dyn Bind,
        targets: &dyn Bind,
        n: usize,
        labels: usize,
    ) -> Dispatch {
        let p = Params::new(n, labels);
        let slots = [Some(loss), Some(z), Some(targets)];
        self.bce
            .dispatch(ctx, "sigmoid_bce_forward", &slots, Some(&p), [1, 1, 1])
    }

    /// dz = (σ(z) − y)/(N·L) (writes dz). dz, z, targets: [N, L] f32.
    pub fn sigmoid_bce_backward(
        &self,
        ctx: &GpuContext,
        dz: &dyn Bind,
        z: &dyn Bind,
        targets: &dyn Bind,
        n: usize,
        labels: usize,
    ) -> Dispatch {
        let p = Params::new(n, labels);
        let slots = [Some(dz), Some(z), Some(targets)];
        let grid = grid_1d(groups_for(n * labels, WG));
        self.bce
            .dispatch(ctx, "sigmoid_bce_backward", &slots, Some(&p), grid)
    }

    /// metrics += [Σ BCE, #((z > 0) == (y > 0.5)), N·L] (accumulates). metrics: [3] f32;
    /// z, targets: [N, L] f32.
    pub fn sigmoid_bce_metrics(
        &self,
        ctx: &GpuContext,
        metrics: &dyn Bind,
        z: &dyn Bind,
        targets: &dyn Bind,
        n: usize,
        labels: usize,
    ) -> Dispatch {
        let p = Params::new(n, labels);
        let slots = [None, Some(z), Some(targets), Some(metrics)];
        self.bce
            .dispatch(ctx, "sigmoid_bce_metrics", &slots, Some(&p), [1, 1, 1])
    }

    /// Mean sparse categorical cross-entropy from logits (writes loss). loss: [1] f32;
    /// z (logits): [N, K] f32; labels: [N] u32, each < K.
    pub fn softmax_ce_forward(
        &self,
        ctx: &GpuContext,
        loss: &dyn Bind,
        z: &dyn Bind,
        labels: &dyn Bind,
        n: usize,
        classes: usize,
    ) -> Dispatch {
        let p = Params::new(n, classes);
        let slots = [Some(loss), Some(z), Some(labels)];
        self.ce
            .dispatch(ctx, "softmax_ce_forward", &slots, Some(&p), [1, 1, 1])
    }

    /// dz = (softmax(z) − onehot(label))/N (writes dz). dz, z: [N, K] f32; labels: [N] u32.
    pub fn softmax_ce_backward(
        &self,
        ctx: &GpuContext,
        dz: &dyn Bind,
        z: &dyn Bind,
        labels: &dyn Bind,
        n: usize,
        classes: usize,
    ) -> Dispatch {
        let p = Params::new(n, classes);
        let slots = [Some(dz), Some(z), Some(labels)];
        let grid = grid_1d(groups_for(n, WG));
        self.ce
            .dispatch(ctx, "softmax_ce_backward", &slots, Some(&p), grid)
    }

    /// metrics += [Σ CE, #(argmax z == label), N] (accumulates). metrics: [3] f32;
    /// z: [N, K] f32; labels: [N] u32.
    pub fn softmax_ce_metrics(
        &self,
        ctx: &GpuContext,
        metrics: &dyn Bind,
        z: &dyn Bind,
        labels: &dyn Bind,
        n: usize,
        classes: usize,
    ) -> Dispatch {
        let p = Params::new(n, classes);
        let slots = [None, Some(z), Some(labels), Some(metrics)];
        self.ce
            .dispatch(ctx, "softmax_ce_metrics", &slots, Some(&p), [1, 1, 1])
    }
}

type Shared = Arc<OnceLock<Loss>>;

fn loss_kernels<'a>(shared: &'a Shared, ctx: &GpuContext) -> &'a Loss {
    shared.get_or_init(|| Loss::new(ctx))
}

/// Seeded logits in [−8, 8); with `extremes`, every 7th is one of ±100, ±30, ±1e-3, 0, so the
/// stable forms are exercised where the naive ones overflow or lose everything.
fn logits(seed: u64, len: usize, extremes: bool) -> Vec<f32> {
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
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    let shared: Shared = Arc::new(OnceLock::new());
    let mut v = sigmoid_bce_checks(&shared);
    v.extend(softmax_ce_checks(&shared));
    v
}

/// The model's loss at batch 128: binary (128×1) and 10-class (128×10), each pass. Tiny and
/// latency-bound; GB/s over the logits, targets and outputs.
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let k = Loss::new(ctx);
    let n = 128;
    let mut v = Vec::new();

    let z = ctx.upload("z", &logits(1, n, false));
    let y = ctx.upload("y", &vec![1.0f32; n]);
    let (loss, dz, m) = (
        ctx.zeros("loss", 1),
        ctx.zeros("dz", n),
        ctx.zeros("metrics", 3),
    );
    let io = (4 * 2 * n) as u64;
    v.push(BenchCase {
        group: "sigmoid_bce",
        id: "128x1/forward".into(),
        work: Work::Bytes(io + 4),
        dispatches: vec![k.sigmoid_bce_forward(ctx, &loss, &z, &y, n, 1)],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "sigmoid_bce",
        id: "128x1/backward".into(),
        work: Work::Bytes(io + 4 * n as u64),
        dispatches: vec![k.sigmoid_bce_backward(ctx, &dz, &z, &y, n, 1)],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "sigmoid_bce",
        id: "128x1/metrics".into(),
        work: Work::Bytes(io + 12),
        dispatches: vec![k.sigmoid_bce_metrics(ctx, &m, &z, &y, n, 1)],
        buffers: vec![z, y, loss, dz, m],
    });

    let classes = 10;
    let z = ctx.upload("z", &logits(2, n * classes, false));
    let t = ctx.upload("labels", &(0..n as u32).map(|i| i % 10).collect::<Vec<_>>());
    let (loss, dz, m) = (
        ctx.zeros("loss", 1),
        ctx.zeros("dz", n * classes),
        ctx.zeros("metrics", 3),
    );
    let io = (4 * (n * classes + n)) as u64;
    v.push(BenchCase {
        group: "softmax_ce",
        id: "128x10/forward".into(),
        work: Work::Bytes(io + 4),
        dispatches: vec![k.softmax_ce_forward(ctx, &loss, &z, &t, n, classes)],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "softmax_ce",
        id: "128x10/backward".into(),
        work: Work::Bytes(io + (4 * n * classes) as u64),
        dispatches: vec![k.softmax_ce_backward(ctx, &dz, &z, &t, n, classes)],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "softmax_ce",
        id: "128x10/metrics".into(),
        work: Work::Bytes(io + 12),
        dispatches: vec![k.softmax_ce_metrics(ctx, &m, &z, &t, n, classes)],
        buffers: vec![z, t, loss, dz, m],
    });
    v
}
