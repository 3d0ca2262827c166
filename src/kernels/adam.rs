//! `adam`: Keras' Adam over one flat parameter buffer (shaders/adam.wgsl).
//!
//! The step count lives on the GPU, in a 16-byte [`AdamState`] buffer `[t, lr, lr_t, _]`:
//! every training step records [`Adam::begin_step`] (one invocation: t += 1 and lr_t for the
//! new t) and then [`Adam::update`], both built once. A step thus needs no host write, no
//! readback and no bind-group rebuild. The host writes the state only to set the learning rate
//! (a schedule may do so before any submit) or to restore t from a checkpoint
//! ([`Adam::write_state`]); it reads it back with the checkpoint.

use std::sync::{Arc, OnceLock};

use bytemuck::{Pod, Zeroable};

use crate::cpu;
pub use crate::cpu::adam::AdamHyper;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Mirrors `struct Params` in shaders/adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub len: u32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
}

/// Mirrors `struct AdamState` in shaders/adam.wgsl: the optimizer's GPU-resident scalars.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq)]
pub struct AdamState {
    /// Steps taken (0 before the first; adam_begin_step increments it).
    pub t: u32,
    /// Base learning rate.
    pub lr: f32,
    /// Bias-corrected step size of step t (written by adam_begin_step).
    pub lr_t: f32,
    pub _pad: u32,
}

impl AdamState {
    /// The state before the first step, with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Self {
            t: 0,
            lr,
            lr_t: 0.0,
            _pad: 0,
        }
    }
}

const WG: u32 = 64;
const PER_INVOCATION: u32 = 4;

/// Pipelines of shaders/adam.wgsl, with the optimizer's constants.
pub struct Adam {
    family: ShaderFamily,
    pub hyper: AdamHyper,
}

impl Adam {
    /// Adam with Keras' constants (β1 0.9, β2 0.999, ε 1e-7).
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_hyper(ctx, AdamHyper::default())
    }

    /// Adam with the given constants.
    pub fn with_hyper(ctx: &GpuContext, hyper: AdamHyper) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "adam",
                include_str!("../../shaders/adam.wgsl"),
                &["adam_begin_step", "adam_update"],
                &[("WG", WG as f64)],
            ),
            hyper,
        }
    }

    fn params(&self, len: usize) -> Params {
        Params {
            len: u32::try_from(len).expect("adam: more than u32::MAX parameters"),
            beta1: self.hyper.beta1 as f32,
            beta2: self.hyper.beta2 as f32,
            epsilon: self.hyper.epsilon as f32,
        }
    }

    /// A new state buffer ([`AdamState`], 16 bytes) at t = 0 with learning rate `lr`.
    pub fn new_state(ctx: &GpuContext, lr: f32) -> wgpu::Buffer {
        ctx.upload("adam state", &[AdamState::new(lr)])
    }

    /// Overwrites the state (queued before the next submit): a new learning rate, or t
    /// restored from a checkpoint. Never needed inside the step loop.
    pub fn write_state(ctx: &GpuContext, state: &wgpu::Buffer, s: &AdamState) {
        ctx.queue.write_buffer(state, 0, bytemuck::bytes_of(s));
    }

    /// t += 1 and lr_t for the new t (writes state). state: [`AdamState`].
    pub fn begin_step(&self, ctx: &GpuContext, state: &dyn Bind) -> Dispatch {
        let slots = [None, None, None, None, Some(state)];
        let p = self.params(0);
        self.family
            .dispatch(ctx, "adam_begin_step", &slots, Some(&p), [1, 1, 1])
    }

    /// One Adam update with the state's lr_t (θ, m, v in place). theta, m, v, grads: [len] f32
    /// (flat parameter, moment and gradient buffers, same offsets); state: [`AdamState`].
    /// Record [`Adam::begin_step`] before it in every step.
    #[allow(clippy::too_many_arguments)] // outputs, inputs, state, size: the project's order
    pub fn update(
        &self,
        ctx: &GpuContext,
        theta: &dyn Bind,
        m: &dyn Bind,
        v: &dyn Bind,
        grads: &dyn Bind,
        state: &dyn Bind,
        len: usize,
    ) -> Dispatch {
        let bytes = 4 * len as u64;
        let limit = ctx.limits.max_storage_buffer_binding_size;
        assert!(
            bytes <= limit,
            "adam: {len} parameters ({bytes} bytes) exceed this device's storage binding limit \
             of {limit} bytes; update the flat buffer in slices of at most {} parameters",
            limit / 4
        );
        let slots = [
            Some(theta),
            Some(m),
            Some(v),
            Some(grads),
            None,
            Some(state),
        ];
        let p = self.params(len);
        let grid = grid_1d(groups_for(len, WG * PER_INVOCATION));
        self.family
            .dispatch(ctx, "adam_update", &slots, Some(&p), grid)
    }
}

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
}

fn run_case(
    shared: &Shared,
    ctx: &GpuContext,
    c: Case,
    seed: u64,
) -> Result<Vec<Compared>, crate::gpu::GpuError> {
    let k = shared.get_or_init(|| Adam::new(ctx));
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
    let begin = k.begin_step(ctx, &sb);
    let update = k.update(ctx, &tb, &mb, &vb, &gb, &sb, c.len);
    for g in &grads {
        ctx.queue.write_buffer(&gb, 0, bytemuck::cast_slice(g));
        crate::kernels::run_all(ctx, &[&begin, &update])?;
    }

    // The reference runs with the f32-rounded constants the GPU sees.
    let h = AdamHyper {
        beta1: k.hyper.beta1 as f32 as f64,
        beta2: k.hyper.beta2 as f32 as f64,
        epsilon: k.hyper.epsilon as f32 as f64,
    };
    let (mut theta, mut m, mut v) = (to_f64(&theta), to_f64(&m), to_f64(&v));
    let mut t = c.t0;
    let mut lr_t = 0.0;
    for g in &grads {
        lr_t = cpu::adam::adam_begin_step(&mut t, lr as f64, &h);
        cpu::adam::adam_update(&mut theta, &mut m, &mut v, &to_f64(g), lr_t, &h);
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
/// model's 2,731,065 parameters, and with gradients of ε's order (where ε's place shows).
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    use ShapeClass::*;
    let shared: Shared = Arc::new(OnceLock::new());
    let cases = [
        Case {
            class: Tiny,
            len: 7,
            t0: 0,
            steps: 1,
            g_scale: 1.0,
        },
        Case {
            class: Tiny,
            len: 7,
            t0: 0,
            steps: 2,
            g_scale: 1.0,
        },
        Case {
            class: Odd,
            len: 1003,
            t0: 0,
            steps: 10,
            g_scale: 1.0,
        },
        Case {
            class: Odd,
            len: 1003,
            t0: 999,
            steps: 1,
            g_scale: 1.0,
        },
        Case {
            class: Large,
            len: 2_731_065,
            t0: 999,
            steps: 1,
            g_scale: 1.0,
        },
        Case {
            class: Odd,
            len: 1003,
            t0: 0,
            steps: 3,
            g_scale: 1e-6,
        },
    ];
    cases
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let s = shared.clone();
            let scale = if c.g_scale == 1.0 {
                String::new()
            } else {
                format!(" |g|≤{:e}", c.g_scale)
            };
            let shape = format!("len {} t {}→{}{scale}", c.len, c.t0 + 1, c.t0 + c.steps);
            Check::new("adam", "update", "", c.class, shape, move |ctx| {
                run_case(&s, ctx, c, 500 + 100 * i as u64)
            })
        })
        .collect()
}

/// One Adam step over the real model's 2,731,065 parameters (begin_step + update).
/// Memory-bound: reads θ, m, v, g and writes θ, m, v: 28 bytes per parameter.
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let len = 2_731_065;
    let k = Adam::new(ctx);
    let theta = ctx.upload("theta", &random_vec(1, len, -1.0, 1.0));
    let g = ctx.upload("grads", &random_vec(2, len, -1.0, 1.0));
    let (m, v) = (ctx.zeros("m", len), ctx.zeros("v", len));
    let state = Adam::new_state(ctx, 1e-3);
    vec![BenchCase {
        group: "adam",
        id: "2731065/update".into(),
        work: Work::Bytes(28 * len as u64),
        dispatches: vec![
            k.begin_step(ctx, &state),
            k.update(ctx, &theta, &m, &v, &g, &state, len),
        ],
        buffers: vec![theta, g, m, v, state],
    }]
}
