//! Parity checks of `adam`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::cpu;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

type Shared = Arc<OnceLock<Adam>>;

/// One parity case: `steps` steps from t = `t0` (with random m, v when t0 > 0, zeros otherwise).
#[derive(Clone, Copy)]
struct Case {
    class: ShapeClass,
    len: usize,
    t0: u32,
    steps: u32,
    /// Gradients are uniform in ±this. At 1 every update is ≈ lr·sign(g) whatever ε is; at
    /// 1e-6, √v is of ε's order (1e-7), so only ε in Keras' place (added to √v, outside the
    /// bias correction) passes.
    g_scale: f32,
    /// AdamW's decay (0: plain Adam, the shared pipeline).
    weight_decay: f32,
    /// L2 regularization (Keras' kernel_regularizer=l2) of every other 3 elements (a mask of
    /// 1s and 0s, as kernels and biases/γ interleave in the weights region); 0: no mask bound.
    l2: f32,
}

/// The case's L2 mask: 1 where i % 3 != 1 (two elements in three regularized).
fn l2_mask(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| if i % 3 == 1 { 0.0 } else { 1.0 })
        .collect()
}

fn run_case(
    shared: &Shared,
    ctx: &GpuContext,
    c: Case,
    seed: u64,
) -> Result<Vec<Compared>, crate::gpu::GpuError> {
    let decaying;
    let k = if c.weight_decay == 0.0 && c.l2 == 0.0 {
        shared.get_or_init(|| Adam::new(ctx))
    } else {
        let hyper = AdamHyper {
            weight_decay: c.weight_decay as f64,
            l2: c.l2 as f64,
            ..AdamHyper::default()
        };
        decaying = Adam::with_hyper(ctx, hyper);
        &decaying
    };
    let lr = 1e-3f32;
    let theta = random_vec(seed, c.len, -1.0, 1.0);
    let (m, v) = if c.t0 == 0 {
        (vec![0.0; c.len], vec![0.0; c.len])
    } else {
        (
            random_vec(seed + 1, c.len, -0.1, 0.1),
            random_vec(seed + 2, c.len, 0.0, 1e-2),
        )
    };
    let grads: Vec<Vec<f32>> = (0..c.steps)
        .map(|s| random_vec(seed + 10 + s as u64, c.len, -c.g_scale, c.g_scale))
        .collect();
    let (tb, mb, vb) = (
        ctx.upload("theta", &theta),
        ctx.upload("m", &m),
        ctx.upload("v", &v),
    );
    let gb = ctx.zeros("grads", c.len);
    let sb = ctx.upload(
        "state",
        &[AdamState {
            t: c.t0,
            ..AdamState::new(lr)
        }],
    );
    // Built once, recorded every step, as the trainer does; only the gradients change.
    let mask = l2_mask(c.len);
    let maskb = (c.l2 != 0.0).then(|| ctx.upload("l2 mask", &mask));
    let begin = k.begin_step(ctx, &sb);
    let moments = Moments { m: &mb, v: &vb };
    let mask_bind = maskb.as_ref().map(|b| b as &dyn Bind);
    let update = k.update(ctx, &tb, moments, &gb, &sb, mask_bind, c.len);
    for g in &grads {
        ctx.queue.write_buffer(&gb, 0, bytemuck::cast_slice(g));
        crate::kernels::run_all(ctx, &[&begin, &update])?;
    }

    // The reference runs with the f32-rounded constants the GPU sees.
    let h = AdamHyper {
        beta1: k.hyper.beta1 as f32 as f64,
        beta2: k.hyper.beta2 as f32 as f64,
        epsilon: k.hyper.epsilon as f32 as f64,
        weight_decay: k.hyper.weight_decay as f32 as f64,
        l2: k.hyper.l2 as f32 as f64,
    };
    let (mut theta, mut m, mut v) = (to_f64(&theta), to_f64(&m), to_f64(&v));
    let mask = to_f64(&mask);
    let mut t = c.t0;
    let mut lr_t = 0.0;
    for g in &grads {
        lr_t = cpu::adam::adam_begin_step(&mut t, lr as f64, &h);
        let g = cpu::adam::adam_l2_grad(&to_f64(g), &theta, &mask, &h);
        cpu::adam::adam_decay(&mut theta, lr as f64, &h);
        cpu::adam::adam_update(&mut theta, &mut m, &mut v, &g, lr_t, &h);
    }
    let state: Vec<AdamState> = ctx.read(&sb)?;
    let steps = c.steps as f64;
    let gs = c.g_scale as f64;
    Ok(vec![
        // f32 rounding of θ (|θ| ≤ 1) per step plus a relative 1e-5 on a step of ~lr.
        Compared::new("theta", ctx.read(&tb)?, theta, 1.5e-7 * steps, 1e-6),
        // Two products and a sum of values ≤ 1 per step, errors damped by β: a few ulp.
        // (atol scaled with the gradients, |m| ≤ |g| and v ≤ g²).
        Compared::new("m", ctx.read(&mb)?, m, 1e-7 * gs, 1e-5),
        Compared::new("v", ctx.read(&vb)?, v, 1e-10 * gs * gs, 1e-5),
        // lr_t from the log1p/expm1 series in f32: a few ulp.
        Compared::new("lr_t", vec![state[0].lr_t], vec![lr_t], 0.0, 1e-6),
        Compared::new("t", vec![state[0].t as f32], vec![t as f64], 0.0, 0.0),
    ])
}

/// Parity checks at t = 1, 2, 10 and 1000, at lengths 7, 1003 (no multiple of 256) and the
/// model's 2,731,065 parameters, with gradients of ε's order (where ε's place shows), and with
/// AdamW's weight decay.
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
    use ShapeClass::*;
    let shared: Shared = Arc::new(OnceLock::new());
    let cases = [
        Case {
            class: Tiny,
            len: 7,
            t0: 0,
            steps: 1,
            g_scale: 1.0,
            weight_decay: 0.0,
            l2: 0.0,
        },
        Case {
            class: Tiny,
            len: 7,
            t0: 0,
            steps: 2,
            g_scale: 1.0,
            weight_decay: 0.0,
            l2: 0.0,
        },
        Case {
            class: Odd,
            len: 1003,
            t0: 0,
            steps: 10,
            g_scale: 1.0,
            weight_decay: 0.0,
            l2: 0.0,
        },
        Case {
            class: Odd,
            len: 1003,
            t0: 999,
            steps: 1,
            g_scale: 1.0,
            weight_decay: 0.0,
            l2: 0.0,
        },
        Case {
            class: Large,
            len: 2_731_065,
            t0: 999,
            steps: 1,
            g_scale: 1.0,
            weight_decay: 0.0,
            l2: 0.0,
        },
        Case {
            class: Odd,
            len: 1003,
            t0: 0,
            steps: 3,
            g_scale: 1e-6,
            weight_decay: 0.0,
            l2: 0.0,
        },
        // AdamW: θ shrinks by θ·wd·lr (1e-4 here) before each update, with lr, not lr_t.
        Case {
            class: Odd,
            len: 1003,
            t0: 0,
            steps: 3,
            g_scale: 1.0,
            weight_decay: 0.1,
            l2: 0.0,
        },
        // L2 (coupled): g += 2·l2·θ on the masked elements before the moments, with AdamW's
        // decay too (both read θ before the step).
        Case {
            class: Odd,
            len: 1003,
            t0: 0,
            steps: 3,
            g_scale: 1e-3,
            weight_decay: 0.0,
            l2: 0.01,
        },
        Case {
            class: Odd,
            len: 1003,
            t0: 999,
            steps: 2,
            g_scale: 1.0,
            weight_decay: 0.1,
            l2: 0.5,
        },
    ];
    let mut checks: Vec<Check> = cases
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let s = shared.clone();
            let scale = if c.g_scale == 1.0 {
                String::new()
            } else {
                format!(" |g|≤{:e}", c.g_scale)
            };
            let decay = if c.weight_decay == 0.0 {
                String::new()
            } else {
                format!(" wd {}", c.weight_decay)
            };
            let l2 = if c.l2 == 0.0 {
                String::new()
            } else {
                format!(" l2 {}", c.l2)
            };
            let shape = format!(
                "len {} t {}→{}{scale}{decay}{l2}",
                c.len,
                c.t0 + 1,
                c.t0 + c.steps
            );
            Check::new("adam", "update", "", c.class, shape, move |ctx| {
                run_case(&s, ctx, c, 500 + 100 * i as u64)
            })
        })
        .collect();
    for (class, len) in [(Tiny, 7), (Odd, 1003), (Large, 2_731_065)] {
        let shape = format!("len {len} l2 0.01");
        checks.push(Check::new(
            "adam",
            "l2_penalty",
            "",
            class,
            shape,
            move |ctx| penalty_case(ctx, len, 900 + len as u64),
        ));
    }
    checks
}

/// The L2 penalty added to a loss and a metrics accumulator that already hold values (it
/// accumulates), against l2·Σ mask·θ² in f64: a sum of `len` f32 squares, ~10^4 per invocation
/// at the largest length: rtol 1e-4.
fn penalty_case(
    ctx: &GpuContext,
    len: usize,
    seed: u64,
) -> Result<Vec<Compared>, crate::gpu::GpuError> {
    let l2 = 0.01f32;
    let count = 24;
    let k = Adam::with_hyper(
        ctx,
        AdamHyper {
            l2: l2 as f64,
            ..AdamHyper::default()
        },
    );
    let theta = random_vec(seed, len, -1.0, 1.0);
    let mask = l2_mask(len);
    let (tb, maskb) = (ctx.upload("theta", &theta), ctx.upload("l2 mask", &mask));
    let metrics_start = [2.5f32, 7.0, 24.0];
    let (mb, lb) = (
        ctx.upload("metrics", &metrics_start),
        ctx.upload("loss", &[0.75f32]),
    );
    let d = k.l2_penalty(ctx, (&tb, &maskb), (&mb, &lb), len, count);
    crate::kernels::run_all(ctx, &[&d])?;
    let p = cpu::adam::l2_penalty(&to_f64(&theta), &to_f64(&mask), l2 as f64);
    let want_metrics = vec![2.5 + count as f64 * p, 7.0, 24.0];
    Ok(vec![
        Compared::new("loss", ctx.read(&lb)?, vec![0.75 + p], 1e-6, 1e-4),
        Compared::new("metrics", ctx.read(&mb)?, want_metrics, 1e-5, 1e-4),
    ])
}
