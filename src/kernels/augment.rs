//! `augment`: Keras RandomFlip("horizontal") + RandomRotation(factor) over an NHWC batch
//! (shaders/augment.wgsl), seeded per image by a counter-based hash shared with
//! `cpu::augment`.
//!
//! The per-step seed lives in a 4-byte storage buffer (see [`Augment::seed_buffer`]): the
//! trainer rewrites it before each step with [`Augment::write_seed`], so the pre-built
//! [`Dispatch`] (and its bind group) stays valid for the whole run.

use std::sync::{Arc, OnceLock};

use bytemuck::{Pod, Zeroable};

use crate::cpu;
use crate::cpu::augment::AugmentConfig;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Mirrors `struct Params` in shaders/augment.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub factor: f32,
    /// Bit 0: [`FLIP`]; bit 1: [`ROTATE`].
    pub flags: u32,
    pub _pad: [u32; 2],
}

/// `Params::flags` bit enabling the random horizontal flip.
pub const FLIP: u32 = 1;
/// `Params::flags` bit enabling the random rotation.
pub const ROTATE: u32 = 2;

const WG: u32 = 64;

/// The flags word of `cfg`.
pub fn flags(cfg: &AugmentConfig) -> u32 {
    (if cfg.flip { FLIP } else { 0 }) | (if cfg.rotate { ROTATE } else { 0 })
}

/// Pipelines of shaders/augment.wgsl.
pub struct Augment {
    family: ShaderFamily,
}

impl Augment {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "augment",
                include_str!("../../shaders/augment.wgsl"),
                &["augment_forward"],
                &[("WG", WG as f64)],
            ),
        }
    }

    /// A 4-byte storage buffer holding the seed `seed`, to bind as `forward`'s `seed` argument
    /// and rewrite per step with [`Augment::write_seed`].
    pub fn seed_buffer(ctx: &GpuContext, seed: u32) -> wgpu::Buffer {
        ctx.upload("augment seed", &[seed])
    }

    /// Queues a write of `seed` into `buf` (made by [`Augment::seed_buffer`]); it takes effect
    /// for work submitted after this call. Any u32 works: the hash mixes every bit, so
    /// consecutive seeds (e.g. `run_seed + step`) give independent batches.
    pub fn write_seed(ctx: &GpuContext, buf: &wgpu::Buffer, seed: u32) {
        ctx.queue.write_buffer(buf, 0, bytemuck::bytes_of(&seed));
    }

    /// y = rotate(flip(x)) per image, as `cfg` enables, with random numbers drawn from the u32
    /// in `seed` and the image index (writes y). y, x: [N, H, W, C] f32, NHWC, distinct buffers;
    /// seed: [1] u32.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        seed: &dyn Bind,
        n: usize,
        h: usize,
        w: usize,
        c: usize,
        cfg: &AugmentConfig,
    ) -> Dispatch {
        assert!(h > 0 && w > 0 && c > 0, "augment: empty image {h}x{w}x{c}");
        assert!(
            n * h * w * c <= u32::MAX as usize,
            "augment: {n}x{h}x{w}x{c} overflows the kernel's u32 indices"
        );
        let p = Params {
            n: n as u32,
            h: h as u32,
            w: w as u32,
            c: c as u32,
            factor: cfg.factor,
            flags: flags(cfg),
            _pad: [0; 2],
        };
        self.family.dispatch(
            ctx,
            "augment_forward",
            &[Some(y), Some(x), Some(seed)],
            Some(&p),
            grid_1d(groups_for(n * h * w, WG)),
        )
    }
}

/// GPU-vs-CPU tolerance of a rotated batch, from an error bound rather than from a measurement.
///
/// The output is a continuous, piecewise-bilinear function of the two source coordinates (the
/// reflect map and the clamp are continuous and 1-Lipschitz, and bilinear weights go to zero at
/// every pixel edge; `cpu::augment` tests this), so there are no rounding *steps* to allow for:
/// with values in [0, 255] an error δ in each coordinate moves the output by at most 255·2δ.
/// δ ≤ (|x| + |y| + (W−1) + (H−1))·(e_trig + 16·ε_f32) ≤ 2·(W + H)·(e_trig + 16·ε_f32), where
/// e_trig = 2⁻²⁰ allows for the device's f32 sin/cos (the WGSL builtins; NVIDIA's sin.approx is
/// about 2⁻²¹ absolute on this range) and 16·ε covers the angle and the few f32 roundings of the
/// matrix, the offsets and the products. A real defect (centre, sign, reflect or neighbour off
/// by a pixel) moves values by tens.
fn rotate_atol(h: usize, w: usize) -> f64 {
    let e_trig = (-20f64).exp2();
    let eps = f32::EPSILON as f64 / 2.0;
    255.0 * 2.0 * 2.0 * (w + h) as f64 * (e_trig + 16.0 * eps)
}

/// Parity checks of every mode (none, flip, rotate, flip+rotate at factors 0.1 and 0.5) at the
/// three shape classes.
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    let shapes = [
        (ShapeClass::Tiny, [2usize, 4, 4, 1], "N2 H4 W4 C1"),
        (ShapeClass::Odd, [3, 7, 9, 3], "N3 H7 W9 C3"),
        // Thin images turned by up to 180° send coordinates several reflect periods out.
        (ShapeClass::Odd, [4, 3, 17, 2], "N4 H3 W17 C2"),
        (ShapeClass::Large, [8, 64, 64, 3], "N8 H64 W64 C3"),
    ];
    let modes: [(&'static str, AugmentConfig); 5] = [
        ("none", AugmentConfig::NONE),
        (
            "flip",
            AugmentConfig {
                rotate: false,
                ..AugmentConfig::KERAS
            },
        ),
        (
            "rotate",
            AugmentConfig {
                flip: false,
                ..AugmentConfig::KERAS
            },
        ),
        ("flip+rotate", AugmentConfig::KERAS),
        (
            "flip+rotate(0.5)",
            AugmentConfig {
                factor: 0.5,
                ..AugmentConfig::KERAS
            },
        ),
    ];
    // One compiled family for all checks, built on first use (not when merely listing checks).
    let family: Arc<OnceLock<Augment>> = Arc::new(OnceLock::new());
    let mut v = Vec::new();
    for (class, [n, h, w, c], shape) in shapes {
        for (mode, cfg) in modes {
            let family = family.clone();
            v.push(Check::new(
                "augment",
                "forward",
                mode,
                class,
                shape,
                move |ctx| {
                    let k = family.get_or_init(|| Augment::new(ctx));
                    let len = n * h * w * c;
                    let seed = 0x5eed_0000 ^ (len as u32);
                    let x = random_vec(21, len, 0.0, 255.0);
                    let (xb, yb) = (ctx.upload("x", &x), ctx.zeros("y", len));
                    // Start from another seed and rewrite it, as the trainer does per step.
                    let sb = Augment::seed_buffer(ctx, !seed);
                    let d = k.forward(ctx, &yb, &xb, &sb, n, h, w, c, &cfg);
                    Augment::write_seed(ctx, &sb, seed);
                    crate::kernels::run_all(ctx, &[&d])?;
                    let mut want = vec![0.0; len];
                    cpu::augment::augment_forward(&mut want, &to_f64(&x), n, h, w, c, &cfg, seed);
                    // Copies (no rotation) are exact.
                    let atol = if cfg.rotate { rotate_atol(h, w) } else { 0.0 };
                    Ok(vec![Compared::new("y", ctx.read(&yb)?, want, atol, 0.0)])
                },
            ));
        }
    }
    v
}

/// The Keras example's augmentation of one 8×180×180×3 batch (memory-bound: GB/s, counting one
/// read of x and one write of y).
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let (n, h, w, c) = (8, 180, 180, 3);
    let len = n * h * w * c;
    let k = Augment::new(ctx);
    let x = ctx.upload("x", &random_vec(1, len, 0.0, 255.0));
    let y = ctx.zeros("y", len);
    let seed = Augment::seed_buffer(ctx, 1);
    let d = k.forward(ctx, &y, &x, &seed, n, h, w, c, &AugmentConfig::KERAS);
    vec![BenchCase {
        group: "augment",
        id: "8x180x180x3/forward".into(),
        work: Work::Bytes(2 * (len * 4) as u64),
        dispatches: vec![d],
        buffers: vec![x, y, seed],
    }]
}
