//! Parity checks of `pool`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::gpu::GpuError;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

/// The compiled families shared by all checks, built on first use: without and with texture
/// mirrors.
type Shared = Arc<[OnceLock<Pool>; 2]>;

fn pool<'a>(shared: &'a Shared, ctx: &GpuContext, mirrors: bool) -> &'a Pool {
    shared[mirrors as usize].get_or_init(|| Pool::with_mirrors(ctx, mirrors))
}

/// Seeded inputs; with `ties`, values on a coarse grid of 5 levels so windows tie often.
fn pool_input(seed: u64, len: usize, ties: bool) -> Vec<f32> {
    let x = random_vec(seed, len, -1.0, 1.0);
    if ties {
        x.iter().map(|v| (v * 2.0).round() / 2.0).collect()
    } else {
        x
    }
}

/// A 2×3 window at stride 3×2 over N×9×8×C, valid padding: some inputs are in no window.
fn window_2x3(n: usize, c: usize) -> Pool2d {
    Pool2d {
        kh: 2,
        kw: 3,
        sh: 3,
        sw: 2,
        ..Pool2d::square(n, 9, 8, c, 0, 0, Padding::Valid)
    }
}

fn max_pool_checks(shared: &Shared) -> Vec<Check> {
    use ShapeClass::*;
    let cases = [
        // 4→2 pads (0, 1), like the model's 90→45.
        (Tiny, Pool2d::square(1, 4, 4, 3, 3, 2, Padding::Same), false),
        // 7→4 pads (1, 1), like 45→23 and 23→12; values on a grid so ties are common.
        (Odd, Pool2d::square(2, 7, 7, 5, 3, 2, Padding::Same), true),
        // 9→9 at stride 1: up to 3×3 windows per input.
        (Odd, Pool2d::square(2, 9, 9, 5, 3, 1, Padding::Same), true),
        // Non-square: 2×3 window, stride 3×2, valid: some inputs are in no window.
        (Odd, window_2x3(2, 5), false),
        // The model's 45→23 at C=96 (pads (1, 1)).
        (
            Large,
            Pool2d::square(4, 45, 45, 96, 3, 2, Padding::Same),
            false,
        ),
        // N·OH and N·H beyond 65535 grid rows: the shader's row stride over the z dimension.
        (
            Large,
            Pool2d::square(2, 70_001, 2, 3, 3, 2, Padding::Same),
            false,
        ),
        // C divisible by 4 takes the vector form (a texel per lane): ties, odd sizes, and the
        // non-square valid window of the scalar cases above.
        (Odd, Pool2d::square(2, 7, 9, 8, 3, 2, Padding::Same), true),
        (Odd, window_2x3(3, 12), true),
        // One pixel of 3 channels: x is shorter than the one vec4 a vector view must hold.
        (Tiny, Pool2d::square(1, 1, 1, 3, 3, 2, Padding::Same), false),
    ];
    let mut v = Vec::new();
    for (i, (class, g, ties)) in cases.into_iter().enumerate() {
        // The vector form (C divisible by 4) also runs with x and the residual read through
        // texture mirrors.
        let forms: &[(bool, &'static str)] = if g.c.is_multiple_of(4) {
            &[(false, ""), (true, "texture")]
        } else {
            &[(false, "")]
        };
        for &(mirrors, variant) in forms {
            let shape = describe_max_pool(&g, ties);
            let seed = 100 + 10 * i as u64;
            let s = shared.clone();
            v.push(Check::new(
                "max_pool2d",
                "forward",
                variant,
                class,
                shape.clone(),
                move |ctx| check_max_pool_forward(ctx, pool(&s, ctx, mirrors), &g, seed, ties),
            ));
            // The residual add folded in, at the tiny, the first odd, the model's and the
            // vector shapes; the inference forms (no argmax) at the same.
            if [0, 1, 4, 6, 7].contains(&i) {
                let s = shared.clone();
                v.push(Check::new(
                    "max_pool2d",
                    "forward_add",
                    variant,
                    class,
                    shape.clone(),
                    move |ctx| {
                        check_max_pool_forward_add(ctx, pool(&s, ctx, mirrors), &g, seed, ties)
                    },
                ));
                for (pass, add) in [
                    ("forward_inference", false),
                    ("forward_add_inference", true),
                ] {
                    let s = shared.clone();
                    v.push(Check::new(
                        "max_pool2d",
                        pass,
                        variant,
                        class,
                        shape.clone(),
                        move |ctx| {
                            let p = pool(&s, ctx, mirrors);
                            check_max_pool_inference(ctx, p, &g, seed, ties, add)
                        },
                    ));
                }
            }
            let s = shared.clone();
            v.push(Check::new(
                "max_pool2d",
                "backward",
                variant,
                class,
                shape,
                move |ctx| check_max_pool_backward(ctx, pool(&s, ctx, mirrors), &g, seed, ties),
            ));
        }
    }
    v
}

fn describe_max_pool(g: &Pool2d, ties: bool) -> String {
    let (oh, pt) = g.rows();
    let (ow, pl) = g.cols();
    format!(
        "N{} H{} W{} C{} k{}x{} s{}x{} {:?}→{oh}x{ow} pad_before ({pt},{pl}){}",
        g.n,
        g.h,
        g.w,
        g.c,
        g.kh,
        g.kw,
        g.sh,
        g.sw,
        g.padding,
        if ties { " ties" } else { "" }
    )
}

/// Forward: a selection, so y and the argmax must match exactly.
fn check_max_pool_forward(
    ctx: &GpuContext,
    k: &Pool,
    g: &Pool2d,
    seed: u64,
    ties: bool,
) -> Result<Vec<Compared>, GpuError> {
    let x = pool_input(seed, g.in_len(), ties);
    let xb = ctx.upload("x", &x);
    let yb = ctx.zeros("y", g.out_len());
    let ab = ctx.upload("argmax", &vec![0x1234_5678u32; max_pool2d_argmax_len(g)]);
    crate::kernels::run_all(ctx, &[&k.max_pool2d_forward(ctx, &yb, &ab, &xb, g)])?;
    let mut y = vec![0.0; g.out_len()];
    let mut a = vec![0u32; g.out_len()];
    cpu::pool::max_pool2d_forward(&mut y, &mut a, &to_f64(&x), g);
    let gpu_a = unpack_argmax(&ctx.read::<u32>(&ab)?, g.c);
    Ok(vec![
        Compared::new("y", ctx.read(&yb)?, y, 0.0, 0.0),
        Compared::new(
            "argmax",
            gpu_a.iter().map(|&v| v as f32).collect(),
            a.iter().map(|&v| v as f64).collect(),
            0.0,
            0.0,
        ),
    ])
}

/// Forward with the residual add: the pool's selection plus one f32 addition, within half an
/// ulp of the f64 sum (rtol 6e-8; atol for sums near 0); the argmax exactly the pool's.
fn check_max_pool_forward_add(
    ctx: &GpuContext,
    k: &Pool,
    g: &Pool2d,
    seed: u64,
    ties: bool,
) -> Result<Vec<Compared>, GpuError> {
    let x = pool_input(seed, g.in_len(), ties);
    let r = random_vec(seed + 1, g.out_len(), -1.0, 1.0);
    let (xb, rb) = (ctx.upload("x", &x), ctx.upload("residual", &r));
    let yb = ctx.upload("y", &vec![f32::NAN; g.out_len()]);
    let ab = ctx.upload("argmax", &vec![0x1234_5678u32; max_pool2d_argmax_len(g)]);
    let d = k.max_pool2d_forward_add(ctx, &yb, &ab, &xb, &rb, g);
    crate::kernels::run_all(ctx, &[&d])?;
    let (mut pooled, mut a) = (vec![0.0; g.out_len()], vec![0u32; g.out_len()]);
    cpu::pool::max_pool2d_forward(&mut pooled, &mut a, &to_f64(&x), g);
    let mut y = vec![0.0; g.out_len()];
    cpu::elementwise::add_forward(&mut y, &pooled, &to_f64(&r));
    let gpu_a = unpack_argmax(&ctx.read::<u32>(&ab)?, g.c);
    Ok(vec![
        Compared::new("y", ctx.read(&yb)?, y, 1e-7, 6e-8),
        Compared::new(
            "argmax",
            gpu_a.iter().map(|&v| v as f32).collect(),
            a.iter().map(|&v| v as f64).collect(),
            0.0,
            0.0,
        ),
    ])
}

/// The inference forward, y only: exactly the pool's selection, plus (with `add`) one f32
/// addition of the residual as [`check_max_pool_forward_add`].
fn check_max_pool_inference(
    ctx: &GpuContext,
    k: &Pool,
    g: &Pool2d,
    seed: u64,
    ties: bool,
    add: bool,
) -> Result<Vec<Compared>, GpuError> {
    let x = pool_input(seed, g.in_len(), ties);
    let r = random_vec(seed + 1, g.out_len(), -1.0, 1.0);
    let (xb, rb) = (ctx.upload("x", &x), ctx.upload("residual", &r));
    let yb = ctx.upload("y", &vec![f32::NAN; g.out_len()]);
    let d = if add {
        k.max_pool2d_forward_add_inference(ctx, &yb, &xb, &rb, g)
    } else {
        k.max_pool2d_forward_inference(ctx, &yb, &xb, g)
    };
    crate::kernels::run_all(ctx, &[&d])?;
    let (mut y, mut a) = (vec![0.0; g.out_len()], vec![0u32; g.out_len()]);
    cpu::pool::max_pool2d_forward(&mut y, &mut a, &to_f64(&x), g);
    if !add {
        return Ok(vec![Compared::new("y", ctx.read(&yb)?, y, 0.0, 0.0)]);
    }
    let mut sum = vec![0.0; g.out_len()];
    cpu::elementwise::add_forward(&mut sum, &y, &to_f64(&r));
    Ok(vec![Compared::new("y", ctx.read(&yb)?, sum, 1e-7, 6e-8)])
}

/// Backward: each dx is an f32 sum of at most T = ceil(kh/sh)·ceil(kw/sw) dy values in
/// [−1, 1] (T = 4 at k3 s2), in another order than the CPU's f64 sum: atol 3e-7·T.
fn check_max_pool_backward(
    ctx: &GpuContext,
    k: &Pool,
    g: &Pool2d,
    seed: u64,
    ties: bool,
) -> Result<Vec<Compared>, GpuError> {
    let terms = g.kh.div_ceil(g.sh) * g.kw.div_ceil(g.sw);
    let x = to_f64(&pool_input(seed, g.in_len(), ties));
    let dy = random_vec(seed + 1, g.out_len(), -1.0, 1.0);
    let mut y = vec![0.0; g.out_len()];
    let mut a = vec![0u32; g.out_len()];
    cpu::pool::max_pool2d_forward(&mut y, &mut a, &x, g);
    let (dyb, ab) = (
        ctx.upload("dy", &dy),
        ctx.upload("argmax", &pack_argmax(&a, g.c)),
    );
    let dxb = ctx.upload("dx", &vec![f32::NAN; g.in_len()]);
    crate::kernels::run_all(ctx, &[&k.max_pool2d_backward(ctx, &dxb, &dyb, &ab, g)])?;
    let mut dx = vec![0.0; g.in_len()];
    cpu::pool::max_pool2d_backward(&mut dx, &to_f64(&dy), &a, g);
    Ok(vec![Compared::new(
        "dx",
        ctx.read(&dxb)?,
        dx,
        3e-7 * terms as f64,
        1e-6,
    )])
}

fn global_avg_pool_checks(shared: &Shared) -> Vec<Check> {
    use ShapeClass::*;
    let cases = [
        (Tiny, [1usize, 2, 2, 3]),
        (Odd, [2, 7, 7, 5]),
        // H·W = 2025 terms per mean, 12 channel blocks per sample.
        (Large, [4, 45, 45, 96]),
        // The model's last pool at 180×180 input, at batch 2.
        (Large, [2, 12, 12, 1024]),
        // H·W = 66,049: a long reduction, and more pixels than one grid dimension holds.
        (Large, [1, 257, 257, 3]),
    ];
    let mut v = Vec::new();
    for (i, (class, shape)) in cases.into_iter().enumerate() {
        let [n, h, w, c] = shape;
        let label = format!("N{n} H{h} W{w} C{c}");
        let seed = 200 + 10 * i as u64;
        let s = shared.clone();
        // Forward: the mean of K = H·W f32 values in [−1, 1], summed as GAP_ROWS strided partial
        // sums then a tree: error ≲ 1e-7·sqrt(K)·(typical partial sum)/K; atol 1e-6 covers
        // K up to ~1e5.
        v.push(Check::new(
            "global_avg_pool2d",
            "forward",
            "",
            class,
            label.clone(),
            move |ctx| {
                let k = pool(&s, ctx, false);
                let x = random_vec(seed, n * h * w * c, -1.0, 1.0);
                let xb = ctx.upload("x", &x);
                let yb = ctx.upload("y", &vec![f32::NAN; n * c]);
                crate::kernels::run_all(
                    ctx,
                    &[&k.global_avg_pool2d_forward(ctx, &yb, &xb, shape)],
                )?;
                let mut y = vec![0.0; n * c];
                cpu::pool::global_avg_pool2d_forward(&mut y, &to_f64(&x), n, h, w, c);
                Ok(vec![Compared::new("y", ctx.read(&yb)?, y, 1e-6, 1e-5)])
            },
        ));
        let s = shared.clone();
        // Backward: one multiply by 1/(H·W) per element: a few ulp.
        v.push(Check::new(
            "global_avg_pool2d",
            "backward",
            "",
            class,
            label,
            move |ctx| {
                let k = pool(&s, ctx, false);
                let dy = random_vec(seed + 1, n * c, -1.0, 1.0);
                let dyb = ctx.upload("dy", &dy);
                let dxb = ctx.upload("dx", &vec![f32::NAN; n * h * w * c]);
                crate::kernels::run_all(
                    ctx,
                    &[&k.global_avg_pool2d_backward(ctx, &dxb, &dyb, shape)],
                )?;
                let mut dx = vec![0.0; n * h * w * c];
                cpu::pool::global_avg_pool2d_backward(&mut dx, &to_f64(&dy), n, h, w, c);
                Ok(vec![Compared::new("dx", ctx.read(&dxb)?, dx, 1e-12, 3e-7)])
            },
        ));
    }
    v
}

/// Parity checks of both ops, both passes, at the three shape classes (and extra geometries).
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
    let shared: Shared = Arc::new([OnceLock::new(), OnceLock::new()]);
    let mut v = max_pool_checks(&shared);
    v.extend(global_avg_pool_checks(&shared));
    v
}
