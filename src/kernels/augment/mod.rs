//! `augment`: Keras RandomFlip("horizontal") + RandomRotation(factor) over an NHWC batch
//! (shaders/augment.wgsl), seeded per image by a counter-based hash shared with
//! `cpu::augment`.
//!
//! The per-step seed lives in a 4-byte storage buffer (see [`Augment::seed_buffer`]): the
//! trainer rewrites it before each step with [`Augment::write_seed`], so the pre-built
//! [`Dispatch`] (and its bind group) stays valid for the whole run.

use bytemuck::{Pod, Zeroable};

use crate::cpu::augment::AugmentConfig;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;

pub use crate::shapes::NhwcShape;

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
                include_str!("../../../shaders/augment.wgsl"),
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
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        seed: &dyn Bind,
        s: &NhwcShape,
        cfg: &AugmentConfig,
    ) -> Dispatch {
        let NhwcShape { n, h, w, c } = *s;
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
