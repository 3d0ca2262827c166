//! Parity checks of `elementwise`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::cpu;
use crate::gpu::GpuError;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};
use crate::kernels::MAX_GROUPS_PER_DIM;

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
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
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
            move |ctx| check_add_backward(ctx, kernels(&s, ctx), len, seed),
        ));
        let s = shared.clone();
        v.push(Check::new(
            "add",
            "backward",
            "accumulate",
            class,
            shape,
            move |ctx| check_add_backward_accumulate(ctx, kernels(&s, ctx), len, seed),
        ));
        for pass in ["forward", "backward"] {
            let s = shared.clone();
            v.push(Check::new("dropout", pass, "", class, shape, move |ctx| {
                check_dropout(ctx, kernels(&s, ctx), pass == "forward", len, seed)
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

fn check_add_backward(
    ctx: &GpuContext,
    k: &Elementwise,
    len: usize,
    seed: u64,
) -> Result<Vec<Compared>, GpuError> {
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
}

fn check_add_backward_accumulate(
    ctx: &GpuContext,
    k: &Elementwise,
    len: usize,
    seed: u64,
) -> Result<Vec<Compared>, GpuError> {
    let dy = random_vec(seed + 4, len, -1.0, 1.0);
    let g0 = random_vec(seed + 5, len, -1.0, 1.0);
    let (dyb, gb) = (ctx.upload("dy", &dy), ctx.upload("grad", &g0));
    crate::kernels::run_all(ctx, &[&k.add_backward_accumulate(ctx, &gb, &dyb, len)])?;
    let mut want = to_f64(&g0);
    cpu::elementwise::add_backward_accumulate(&mut want, &to_f64(&dy));
    Ok(vec![Compared::new("grad", ctx.read(&gb)?, want, 0.0, 6e-8)])
}

fn check_dropout(
    ctx: &GpuContext,
    k: &Elementwise,
    forward: bool,
    len: usize,
    seed: u64,
) -> Result<Vec<Compared>, GpuError> {
    let dseed = 0x9E37_79B9u32.wrapping_add(seed as u32);
    let x = random_vec(seed + 6, len, -1.0, 1.0);
    let (xb, yb) = (ctx.upload("x", &x), ctx.zeros("y", len));
    let d = if forward {
        k.dropout_forward(ctx, &yb, &xb, len, dseed, CHECK_RATE)
    } else {
        k.dropout_backward(ctx, &yb, &xb, len, dseed, CHECK_RATE)
    };
    crate::kernels::run_all(ctx, &[&d])?;
    let mut want = vec![0.0; len];
    if forward {
        cpu::elementwise::dropout_forward(&mut want, &to_f64(&x), dseed, CHECK_RATE);
    } else {
        cpu::elementwise::dropout_backward(&mut want, &to_f64(&x), dseed, CHECK_RATE);
    }
    let got = ctx.read(&yb)?;
    // The mask must match exactly: a zero on one side only is a mismatch of ~|x|, far outside
    // rtol, so the comparison below also checks the mask.
    Ok(vec![Compared::new("y", got, want, 0.0, 4e-7)])
}
