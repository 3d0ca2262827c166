//! `add` (the residual) and `dropout` (inverted, seeded): shaders/elementwise.wgsl.
//!
//! Writing vs accumulating gradients of the residual add: [`Elementwise::add_backward`] WRITES
//! da = dy and db = dy (both branches' gradient buffers start here); the executor uses
//! [`Elementwise::add_backward_accumulate`] (grad += dy) for a branch whose gradient buffer
//! already holds another consumer's contribution. (Where a branch's gradient buffer may simply
//! alias dy, no dispatch is needed at all.)
//!
//! Dropout's mask is recomputed from (seed, element index) by a u32 hash
//! ([`cpu::elementwise::pcg_hash`]), so backward needs no stored mask, only the forward's seed.

use std::sync::{Arc, OnceLock};

use bytemuck::{Pod, Zeroable};

use crate::cpu;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, MAX_GROUPS_PER_DIM, ShaderFamily, grid_1d, groups_for};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Mirrors `struct Params` in shaders/elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub len: u32,
    /// Dropout seed; the trainer uses a new one every step.
    pub seed: u32,
    /// Dropout rate in [0, 1).
    pub rate: f32,
    pub _pad0: u32,
}

impl Params {
    /// Params of the add entry points.
    pub fn add(len: usize) -> Self {
        Self {
            len: len as u32,
            seed: 0,
            rate: 0.0,
            _pad0: 0,
        }
    }

    /// Params of both dropout passes. The trainer rewrites this uniform with a new seed every
    /// step (the backward pass of a step must see the same seed as its forward).
    pub fn dropout(len: usize, seed: u32, rate: f32) -> Self {
        assert!(
            (0.0..1.0).contains(&rate),
            "dropout rate must be in [0, 1), got {rate}"
        );
        Self {
            len: len as u32,
            seed,
            rate,
            _pad0: 0,
        }
    }
}

const WG: u32 = 64;
const PER_INVOCATION: u32 = 4;

/// Pipelines of shaders/elementwise.wgsl.
pub struct Elementwise {
    family: ShaderFamily,
}

impl Elementwise {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "elementwise",
                include_str!("../../shaders/elementwise.wgsl"),
                &[
                    "add_forward",
                    "add_backward",
                    "add_backward_accumulate",
                    "dropout_forward",
                    "dropout_backward",
                ],
                &[("WG", WG as f64)],
            ),
        }
    }

    fn dispatch(
        &self,
        ctx: &GpuContext,
        entry: &str,
        slots: &[Option<&dyn Bind>],
        params: Params,
    ) -> Dispatch {
        let grid = grid_1d(groups_for(params.len as usize, WG * PER_INVOCATION));
        self.family.dispatch(ctx, entry, slots, Some(&params), grid)
    }

    /// y = a + b (writes y). y, a, b: [len] f32, any layout.
    pub fn add_forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        a: &dyn Bind,
        b: &dyn Bind,
        len: usize,
    ) -> Dispatch {
        let slots = [Some(y), None, Some(a), Some(b)];
        self.dispatch(ctx, "add_forward", &slots, Params::add(len))
    }

    /// Gradient fan-out of y = a + b: WRITES da = dy and db = dy. da, db, dy: [len] f32.
    pub fn add_backward(
        &self,
        ctx: &GpuContext,
        da: &dyn Bind,
        db: &dyn Bind,
        dy: &dyn Bind,
        len: usize,
    ) -> Dispatch {
        let slots = [Some(da), Some(db), Some(dy)];
        self.dispatch(ctx, "add_backward", &slots, Params::add(len))
    }

    /// One branch of the fan-out, ACCUMULATING: grad += dy. grad, dy: [len] f32.
    pub fn add_backward_accumulate(
        &self,
        ctx: &GpuContext,
        grad: &dyn Bind,
        dy: &dyn Bind,
        len: usize,
    ) -> Dispatch {
        let slots = [Some(grad), None, Some(dy)];
        self.dispatch(ctx, "add_backward_accumulate", &slots, Params::add(len))
    }

    /// Inverted dropout: y = x · keep(seed, i) / (1 − rate) (writes y). y, x: [len] f32;
    /// rate in [0, 1). Keep ⇔ the hash's uniform in [0, 1) is ≥ rate.
    pub fn dropout_forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        len: usize,
        seed: u32,
        rate: f32,
    ) -> Dispatch {
        let slots = [Some(y), None, Some(x)];
        let p = Params::dropout(len, seed, rate);
        self.dispatch(ctx, "dropout_forward", &slots, p)
    }

    /// dx = dy · keep(seed, i) / (1 − rate) (writes dx), with the forward's seed and rate.
    /// dx, dy: [len] f32.
    pub fn dropout_backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        len: usize,
        seed: u32,
        rate: f32,
    ) -> Dispatch {
        let slots = [Some(dx), None, Some(dy)];
        let p = Params::dropout(len, seed, rate);
        self.dispatch(ctx, "dropout_backward", &slots, p)
    }
}

/// The family compiled once per `checks()` list, on first use, shared by its checks.
type Shared = Arc<OnceLock<Elementwise>>;

fn kernels<'a>(shared: &'a Shared, ctx: &GpuContext) -> &'a Elementwise {
    shared.get_or_init(|| Elementwise::new(ctx))
}

const SHAPES: [(ShapeClass, usize, &str); 3] = [
    (ShapeClass::Tiny, 12, "N1 H2 W2 C3"),
    (ShapeClass::Odd, 2 * 7 * 7 * 5, "N2 H7 W7 C5"),
    (ShapeClass::Large, 4 * 45 * 45 * 96, "N4 H45 W45 C96"),
];

/// Dropout rate of the checks: the Keras example's 0.5 is the model's; 0.3 shows the threshold
/// is not hard-wired.
const CHECK_RATE: f32 = 0.3;

/// Parity checks of add (forward, backward writing and accumulating) and dropout (forward,
/// backward) at the three shape classes. Tolerances: add is one f32 rounding of a sum of two
/// f32s (exact for the copies), so atol 0, rtol 2^-24 ≈ 6e-8; dropout's mask is bit-identical
/// and the kept value is x·(1/(1 − rate)) with three f32 roundings, one of them a WGSL division
/// (2.5 ULP allowed): rtol 4e-7. A mask mismatch is an error of |x|·1.4, far outside that.
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    let shared: Shared = Arc::default();
    let mut v = Vec::new();
    for (i, (class, len, shape)) in SHAPES.into_iter().enumerate() {
        let seed = 1000 + 10 * i as u64;
        let s = shared.clone();
        v.push(Check::new("add", "forward", "", class, shape, move |ctx| {
            check_add_forward(ctx, kernels(&s, ctx), len, seed)
        }));
        let s = shared.clone();
        v.push(Check::new(
            "add",
            "backward",
            "",
            class,
            shape,
            move |ctx| {
                let k = kernels(&s, ctx);
                let dy = random_vec(seed + 2, len, -1.0, 1.0);
                let dyb = ctx.upload("dy", &dy);
                // Pre-filled outputs: backward must overwrite, not accumulate.
                let junk = random_vec(seed + 3, len, 5.0, 6.0);
                let (dab, dbb) = (ctx.upload("da", &junk), ctx.upload("db", &junk));
                crate::kernels::run_all(ctx, &[&k.add_backward(ctx, &dab, &dbb, &dyb, len)])?;
                let (mut da, mut db) = (vec![0.0; len], vec![0.0; len]);
                cpu::elementwise::add_backward(&mut da, &mut db, &to_f64(&dy));
                Ok(vec![
                    Compared::new("da", ctx.read(&dab)?, da, 0.0, 0.0),
                    Compared::new("db", ctx.read(&dbb)?, db, 0.0, 0.0),
                ])
            },
        ));
        let s = shared.clone();
        v.push(Check::new(
            "add",
            "backward",
            "accumulate",
            class,
            shape,
            move |ctx| {
                let k = kernels(&s, ctx);
                let dy = random_vec(seed + 4, len, -1.0, 1.0);
                let g0 = random_vec(seed + 5, len, -1.0, 1.0);
                let (dyb, gb) = (ctx.upload("dy", &dy), ctx.upload("grad", &g0));
                crate::kernels::run_all(ctx, &[&k.add_backward_accumulate(ctx, &gb, &dyb, len)])?;
                let mut want = to_f64(&g0);
                cpu::elementwise::add_backward_accumulate(&mut want, &to_f64(&dy));
                Ok(vec![Compared::new("grad", ctx.read(&gb)?, want, 0.0, 6e-8)])
            },
        ));
        for pass in ["forward", "backward"] {
            let s = shared.clone();
            v.push(Check::new("dropout", pass, "", class, shape, move |ctx| {
                let k = kernels(&s, ctx);
                let dseed = 0x9E37_79B9u32.wrapping_add(seed as u32);
                let x = random_vec(seed + 6, len, -1.0, 1.0);
                let (xb, yb) = (ctx.upload("x", &x), ctx.zeros("y", len));
                let d = if pass == "forward" {
                    k.dropout_forward(ctx, &yb, &xb, len, dseed, CHECK_RATE)
                } else {
                    k.dropout_backward(ctx, &yb, &xb, len, dseed, CHECK_RATE)
                };
                crate::kernels::run_all(ctx, &[&d])?;
                let mut want = vec![0.0; len];
                if pass == "forward" {
                    cpu::elementwise::dropout_forward(&mut want, &to_f64(&x), dseed, CHECK_RATE);
                } else {
                    cpu::elementwise::dropout_backward(&mut want, &to_f64(&x), dseed, CHECK_RATE);
                }
                let got = ctx.read(&yb)?;
                // The mask must match exactly: a zero on one side only is a mismatch of ~|x|,
                // far outside rtol, so the comparison below also checks the mask.
                Ok(vec![Compared::new("y", got, want, 0.0, 4e-7)])
            }));
        }
    }
    // Past 65535 workgroups grid_1d switches to a 2-D grid; every entry point shares the index
    // arithmetic, so one pass checks it (16.8M elements, ~1 s on lavapipe).
    let len = (MAX_GROUPS_PER_DIM * WG * PER_INVOCATION) as usize + 5;
    v.push(Check::new(
        "add",
        "forward",
        "",
        ShapeClass::Large,
        format!("{len} elements (2-D grid)"),
        move |ctx| check_add_forward(ctx, kernels(&shared, ctx), len, 1100),
    ));
    v
}

fn check_add_forward(
    ctx: &GpuContext,
    k: &Elementwise,
    len: usize,
    seed: u64,
) -> Result<Vec<Compared>, crate::gpu::GpuError> {
    let a = random_vec(seed, len, -1.0, 1.0);
    let b = random_vec(seed + 1, len, -1.0, 1.0);
    let (ab, bb, yb) = (
        ctx.upload("a", &a),
        ctx.upload("b", &b),
        ctx.zeros("y", len),
    );
    crate::kernels::run_all(ctx, &[&k.add_forward(ctx, &yb, &ab, &bb, len)])?;
    let mut want = vec![0.0; len];
    cpu::elementwise::add_forward(&mut want, &to_f64(&a), &to_f64(&b));
    Ok(vec![Compared::new("y", ctx.read(&yb)?, want, 0.0, 6e-8)])
}

/// add at the model's residual 8×45×45×256 (forward reads a, b and writes y; backward reads
/// dy and writes da, db) and dropout at the head's 8×1024: memory-bound, GB/s.
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let k = Elementwise::new(ctx);
    let len = 8 * 45 * 45 * 256;
    let bytes = (len * 4) as u64;
    let a = ctx.upload("a", &random_vec(1, len, -1.0, 1.0));
    let b = ctx.upload("b", &random_vec(2, len, -1.0, 1.0));
    let y = ctx.zeros("y", len);
    let d2 = ctx.zeros("db", len);
    let dlen = 8 * 1024;
    let dbytes = (dlen * 4) as u64;
    let dx = ctx.upload("x", &random_vec(3, dlen, -1.0, 1.0));
    let dy = ctx.zeros("y", dlen);
    vec![
        BenchCase {
            group: "add",
            id: "8x45x45x256/forward".into(),
            work: Work::Bytes(3 * bytes),
            dispatches: vec![k.add_forward(ctx, &y, &a, &b, len)],
            buffers: vec![],
        },
        BenchCase {
            group: "add",
            id: "8x45x45x256/backward".into(),
            work: Work::Bytes(3 * bytes),
            dispatches: vec![k.add_backward(ctx, &y, &d2, &a, len)],
            buffers: vec![],
        },
        BenchCase {
            group: "add",
            id: "8x45x45x256/backward/accumulate".into(),
            work: Work::Bytes(3 * bytes),
            dispatches: vec![k.add_backward_accumulate(ctx, &y, &a, len)],
            buffers: vec![a, b, y, d2],
        },
        BenchCase {
            group: "dropout",
            id: "8x1024/forward".into(),
            work: Work::Bytes(2 * dbytes),
            dispatches: vec![k.dropout_forward(ctx, &dy, &dx, dlen, 42, 0.5)],
            buffers: vec![],
        },
        BenchCase {
            group: "dropout",
            id: "8x1024/backward".into(),
            work: Work::Bytes(2 * dbytes),
            dispatches: vec![k.dropout_backward(ctx, &dy, &dx, dlen, 42, 0.5)],
            buffers: vec![dx, dy],
        },
    ]
}
