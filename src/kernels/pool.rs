//! `max_pool2d` and `global_avg_pool2d`: forward and backward, NHWC f32 (shaders/pool.wgsl).
//!
//! Saved tensor: `max_pool2d_forward` writes, beside y, an `argmax` buffer holding for each
//! output element the **window-local** index `i·kw + j` of its window's winner (the first
//! maximum in row-major window order; padded cells never win), one byte per channel, packed 4
//! channels to a u32: [N, OH, OW, ceil(C/4)] u32 ([`max_pool2d_argmax_len`]), byte k of word g
//! = channel 4g + k, 0xFF for "no cell" and for channels past C ([`pack_argmax`] and
//! [`unpack_argmax`] convert from and to `cpu::pool`'s one-u32-per-element form). Packing cuts
//! the saved tensor and the backward's argmax loads 4×. `max_pool2d_backward` gathers: each dx
//! element sums the dy of the windows that chose it, so the pass writes every dx element
//! exactly once, with no atomics and no race.

use std::sync::{Arc, OnceLock};

use bytemuck::{Pod, Zeroable};

use crate::cpu;
use crate::cpu::Padding;
use crate::cpu::pool::Pool2d;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, MAX_GROUPS_PER_DIM, ShaderFamily, grid_1d, groups_for};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Mirrors `struct Params` in shaders/pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub pad_top: u32,
    pub pad_left: u32,
}

const WG: u32 = 64;
/// Rows of invocations reducing H·W in the global average pool (≤ GAP_MAX_ROWS = 32).
const GAP_ROWS: u32 = 8;
const _: () = assert!(GAP_ROWS >= 1 && GAP_ROWS <= 32);
/// Channels per global-average-pool workgroup (GAP_LANES in the shader).
const GAP_LANES: usize = 8;
/// Channels per max-pool invocation.
const CHANNELS_PER_INVOCATION: usize = 4;

/// u32 words of the packed argmax of a max pool: N·OH·OW·ceil(C/4).
pub fn max_pool2d_argmax_len(g: &Pool2d) -> usize {
    g.out_len() / g.c.max(1) * g.c.div_ceil(4)
}

/// Packs a per-element argmax ([N, OH, OW, C] u32, `cpu::pool` form) into the GPU's 4 bytes per
/// u32 ([N, OH, OW, ceil(C/4)]). Indices must be < 255 or [`cpu::pool::NO_ARGMAX`].
pub fn pack_argmax(a: &[u32], c: usize) -> Vec<u32> {
    let byte = |v: u32| {
        if v == cpu::pool::NO_ARGMAX {
            0xff
        } else {
            v.min(0xfe)
        }
    };
    a.chunks(c)
        .flat_map(|pixel| {
            pixel.chunks(4).map(|g| {
                (0..4).fold(0, |w, k| {
                    w | (byte(g.get(k).copied().unwrap_or(u32::MAX)) << (8 * k))
                })
            })
        })
        .collect()
}

/// Unpacks the GPU's packed argmax into one u32 per element ([N, OH, OW, C], `cpu::pool` form).
pub fn unpack_argmax(packed: &[u32], c: usize) -> Vec<u32> {
    let groups = c.div_ceil(4);
    packed
        .chunks(groups)
        .flat_map(|words| {
            (0..c).map(move |ch| match (words[ch / 4] >> (8 * (ch % 4))) & 0xff {
                0xff => cpu::pool::NO_ARGMAX,
                v => v,
            })
        })
        .collect()
}

impl Params {
    fn max_pool(g: &Pool2d) -> Self {
        let (oh, pad_top) = g.rows();
        let (ow, pad_left) = g.cols();
        assert!(
            g.kh > 0 && g.kw > 0 && g.sh > 0 && g.sw > 0,
            "empty window or stride"
        );
        assert!(g.kh * g.kw <= 255, "max_pool2d: a window of over 255 cells");
        let u = |v: usize| u32::try_from(v).expect("pool size exceeds u32");
        u(g.in_len().max(g.out_len()));
        Self {
            n: u(g.n),
            h: u(g.h),
            w: u(g.w),
            c: u(g.c),
            oh: u(oh),
            ow: u(ow),
            kh: u(g.kh),
            kw: u(g.kw),
            sh: u(g.sh),
            sw: u(g.sw),
            pad_top: u(pad_top),
            pad_left: u(pad_left),
        }
    }

    fn global(shape: [usize; 4]) -> Self {
        let [n, h, w, c] = shape;
        let p = Pool2d::square(n, h, w, c, 1, 1, Padding::Valid);
        Self {
            oh: 1,
            ow: 1,
            ..Self::max_pool(&p)
        }
    }
}

/// Pipelines of shaders/pool.wgsl.
pub struct Pool {
    family: ShaderFamily,
}

impl Pool {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "pool",
                include_str!("../../shaders/pool.wgsl"),
                &[
                    "max_pool2d_forward",
                    "max_pool2d_backward",
                    "global_avg_pool2d_forward",
                    "global_avg_pool2d_backward",
                ],
                &[("WG", WG as f64), ("GAP_ROWS", GAP_ROWS as f64)],
            ),
        }
    }

    /// Grid of the channel-lane kernels: x over channel groups of 4, y over columns, z over
    /// rows (the shaders stride over rows beyond 65535).
    fn channel_grid(c: usize, cols: u32, rows: usize) -> [u32; 3] {
        assert!(
            cols <= MAX_GROUPS_PER_DIM,
            "max_pool2d: width {cols} exceeds 65535"
        );
        let x = groups_for(c.div_ceil(CHANNELS_PER_INVOCATION), WG);
        let z = rows.clamp(1, MAX_GROUPS_PER_DIM as usize) as u32;
        [x, cols.max(1), z]
    }

    /// Max pool forward (writes y and argmax). y: [N, OH, OW, C] f32; argmax: [N, OH, OW,
    /// ceil(C/4)] u32 (packed window-local index of each winner, saved for the backward pass,
    /// see the module doc); x: [N, H, W, C] f32.
    pub fn max_pool2d_forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        argmax: &dyn Bind,
        x: &dyn Bind,
        g: &Pool2d,
    ) -> Dispatch {
        let p = Params::max_pool(g);
        let grid = Self::channel_grid(g.c, p.ow, g.n * p.oh as usize);
        self.family.dispatch(
            ctx,
            "max_pool2d_forward",
            &[Some(y), Some(x), Some(argmax)],
            Some(&p),
            grid,
        )
    }

    /// Max pool backward (writes all of dx). dx: [N, H, W, C] f32; dy: [N, OH, OW, C] f32;
    /// argmax: [N, OH, OW, ceil(C/4)] u32 from [`Pool::max_pool2d_forward`] (same geometry).
    pub fn max_pool2d_backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        argmax: &dyn Bind,
        g: &Pool2d,
    ) -> Dispatch {
        let p = Params::max_pool(g);
        let grid = Self::channel_grid(g.c, p.w, g.n * g.h);
        self.family.dispatch(
            ctx,
            "max_pool2d_backward",
            &[Some(dx), Some(dy), None, Some(argmax)],
            Some(&p),
            grid,
        )
    }

    /// Global average pool forward (writes y). y: [N, C]; x: [N, H, W, C]; shape = [N, H, W, C].
    pub fn global_avg_pool2d_forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        shape: [usize; 4],
    ) -> Dispatch {
        let [n, h, w, c] = shape;
        assert!(h * w > 0, "global average pool of an empty image");
        let p = Params::global(shape);
        self.family.dispatch(
            ctx,
            "global_avg_pool2d_forward",
            &[Some(y), Some(x)],
            Some(&p),
            grid_1d((n * c.div_ceil(GAP_LANES)) as u32),
        )
    }

    /// Global average pool backward: dx = dy/(H·W) broadcast (writes all of dx).
    /// dx: [N, H, W, C]; dy: [N, C]; shape = [N, H, W, C].
    pub fn global_avg_pool2d_backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        shape: [usize; 4],
    ) -> Dispatch {
        let [n, h, w, c] = shape;
        let p = Params::global(shape);
        let grid = Self::channel_grid(c, 1, n * h * w);
        self.family.dispatch(
            ctx,
            "global_avg_pool2d_backward",
            &[Some(dx), Some(dy)],
            Some(&p),
            grid,
        )
    }
}

/// One compiled family shared by all checks, built on first use.
type Shared = Arc<OnceLock<Pool>>;

fn pool<'a>(shared: &'a Shared, ctx: &GpuContext) -> &'a Pool {
    shared.get_or_init(|| Pool::new(ctx))
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
        (
            Odd,
            Pool2d {
                kh: 2,
                kw: 3,
                sh: 3,
                sw: 2,
                ..Pool2d::square(2, 9, 8, 5, 0, 0, Padding::Valid)
            },
            false,
        ),
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
    ];
    let mut v = Vec::new();
    for (i, (class, g, ties)) in cases.into_iter().enumerate() {
        let (oh, pt) = g.rows();
        let (ow, pl) = g.cols();
        let shape = format!(
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
        );
        let seed = 100 + 10 * i as u64;
        let s = shared.clone();
        // Forward: a selection, so y and the argmax must match exactly.
        v.push(Check::new(
            "max_pool2d",
            "forward",
            "",
            class,
            shape.clone(),
            move |ctx| {
                let k = pool(&s, ctx);
                let x = pool_input(seed, g.in_len(), ties);
                let xb = ctx.upload("x", &x);
                let yb = ctx.zeros("y", g.out_len());
                let ab = ctx.upload("argmax", &vec![0x1234_5678u32; max_pool2d_argmax_len(&g)]);
                crate::kernels::run_all(ctx, &[&k.max_pool2d_forward(ctx, &yb, &ab, &xb, &g)])?;
                let mut y = vec![0.0; g.out_len()];
                let mut a = vec![0u32; g.out_len()];
                cpu::pool::max_pool2d_forward(&mut y, &mut a, &to_f64(&x), &g);
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
            },
        ));
        let s = shared.clone();
        // Backward: each dx is an f32 sum of at most T = ceil(kh/sh)·ceil(kw/sw) dy values in
        // [−1, 1] (T = 4 at k3 s2), in another order than the CPU's f64 sum: atol 3e-7·T.
        let terms = g.kh.div_ceil(g.sh) * g.kw.div_ceil(g.sw);
        v.push(Check::new(
            "max_pool2d",
            "backward",
            "",
            class,
            shape,
            move |ctx| {
                let k = pool(&s, ctx);
                let x = to_f64(&pool_input(seed, g.in_len(), ties));
                let dy = random_vec(seed + 1, g.out_len(), -1.0, 1.0);
                let mut y = vec![0.0; g.out_len()];
                let mut a = vec![0u32; g.out_len()];
                cpu::pool::max_pool2d_forward(&mut y, &mut a, &x, &g);
                let (dyb, ab) = (
                    ctx.upload("dy", &dy),
                    ctx.upload("argmax", &pack_argmax(&a, g.c)),
                );
                let dxb = ctx.upload("dx", &vec![f32::NAN; g.in_len()]);
                crate::kernels::run_all(ctx, &[&k.max_pool2d_backward(ctx, &dxb, &dyb, &ab, &g)])?;
                let mut dx = vec![0.0; g.in_len()];
                cpu::pool::max_pool2d_backward(&mut dx, &to_f64(&dy), &a, &g);
                Ok(vec![Compared::new(
                    "dx",
                    ctx.read(&dxb)?,
                    dx,
                    3e-7 * terms as f64,
                    1e-6,
                )])
            },
        ));
    }
    v
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
                let k = pool(&s, ctx);
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
                let k = pool(&s, ctx);
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
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    let shared: Shared = Arc::new(OnceLock::new());
    let mut v = max_pool_checks(&shared);
    v.extend(global_avg_pool_checks(&shared));
    v
}

/// The model's first max pool (8×90×90×256 → 45×45, k3 s2 same) and its last global average
/// pool (8×12×12×1024), forward and backward. Memory-bound: GB/s over the bytes each pass must
/// touch at least once.
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let k = Pool::new(ctx);
    let mut v = Vec::new();

    let g = Pool2d::square(8, 90, 90, 256, 3, 2, Padding::Same);
    let (xl, yl) = (g.in_len(), g.out_len());
    let x = ctx.upload("x", &random_vec(1, xl, -1.0, 1.0));
    let (y, dx) = (ctx.zeros("y", yl), ctx.zeros("dx", xl));
    let dy = ctx.upload("dy", &random_vec(2, yl, -1.0, 1.0));
    // The backward's cost does not depend on the argmax values (a select, no branch).
    let argmax = ctx.zeros("argmax", max_pool2d_argmax_len(&g));
    // x and y as f32, the argmax as one byte per element.
    let bytes = (4 * (xl + yl) + yl) as u64;
    v.push(BenchCase {
        group: "max_pool2d",
        id: "8x90x90x256_k3s2/forward".into(),
        work: Work::Bytes(bytes),
        dispatches: vec![k.max_pool2d_forward(ctx, &y, &argmax, &x, &g)],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "max_pool2d",
        id: "8x90x90x256_k3s2/backward".into(),
        work: Work::Bytes(bytes),
        dispatches: vec![k.max_pool2d_backward(ctx, &dx, &dy, &argmax, &g)],
        buffers: vec![x, y, dx, dy, argmax],
    });

    let shape = [8, 12, 12, 1024];
    let (xl, yl) = (shape.iter().product::<usize>(), 8 * 1024);
    let x = ctx.upload("x", &random_vec(3, xl, -1.0, 1.0));
    let (y, dx) = (ctx.zeros("y", yl), ctx.zeros("dx", xl));
    let bytes = 4 * (xl + yl) as u64;
    v.push(BenchCase {
        group: "global_avg_pool2d",
        id: "8x12x12x1024/forward".into(),
        work: Work::Bytes(bytes),
        dispatches: vec![k.global_avg_pool2d_forward(ctx, &y, &x, shape)],
        buffers: vec![],
    });
    v.push(BenchCase {
        group: "global_avg_pool2d",
        id: "8x12x12x1024/backward".into(),
        work: Work::Bytes(bytes),
        dispatches: vec![k.global_avg_pool2d_backward(ctx, &dx, &y, shape)],
        buffers: vec![x, y, dx],
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_packing_round_trips() {
        // C = 5: two words per pixel, the second holding one channel and three 0xFF bytes.
        let a = vec![0, 8, 3, cpu::pool::NO_ARGMAX, 7, 1, 2, 4, 5, 6];
        let packed = pack_argmax(&a, 5);
        assert_eq!(
            packed,
            vec![0xff03_0800, 0xffff_ff07, 0x0504_0201, 0xffff_ff06]
        );
        assert_eq!(unpack_argmax(&packed, 5), a);
    }
}
