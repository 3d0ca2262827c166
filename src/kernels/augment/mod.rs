//! `augment`: Keras RandomCrop, RandomFlip("horizontal"), RandomRotation, RandomZoom and
//! RandomTranslation with Keras' fill modes, composed into one bilinear pass over an NHWC batch
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
    /// Bit 0: [`FLIP`]; bit 1: [`ROTATE`]; bit 2: [`ZOOM`]; bit 3: [`TRANSLATE`]; bit 4:
    /// [`CROP`].
    pub flags: u32,
    /// The input's height and width (the output's, `h` and `w`, unless cropping).
    pub src_h: u32,
    pub src_w: u32,
    /// RandomZoom's factor F.
    pub zoom: f32,
    /// RandomTranslation's factor F.
    pub translate: f32,
    /// `FillMode::code`.
    pub fill_mode: u32,
    pub fill_value: f32,
}

/// `Params::flags` bit enabling the random horizontal flip.
pub const FLIP: u32 = 1;
/// `Params::flags` bit enabling the random rotation.
pub const ROTATE: u32 = 2;
/// `Params::flags` bit enabling the random zoom.
pub const ZOOM: u32 = 4;
/// `Params::flags` bit enabling the random translation.
pub const TRANSLATE: u32 = 8;
/// `Params::flags` bit enabling the random crop.
pub const CROP: u32 = 16;

const WG: u32 = 64;

/// The flags word of `cfg`.
pub fn flags(cfg: &AugmentConfig) -> u32 {
    let bit = |on: bool, b: u32| if on { b } else { 0 };
    bit(cfg.flip, FLIP)
        | bit(cfg.rotate, ROTATE)
        | bit(cfg.zoom.is_some(), ZOOM)
        | bit(cfg.translate.is_some(), TRANSLATE)
        | bit(cfg.crop.is_some(), CROP)
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

    /// y = translate(zoom(rotate(flip(crop(x))))) per image, as `cfg` enables, with random
    /// numbers drawn from the u32 in `seed` and the image index (writes y). x: [N, H, W, C] f32,
    /// NHWC as in `s`; y: [N, h, w, C] with (h, w) = `cfg.output_size(H, W)`, a distinct
    /// buffer; seed: [1] u32.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        seed: &dyn Bind,
        s: &NhwcShape,
        cfg: &AugmentConfig,
    ) -> Dispatch {
        let NhwcShape {
            n,
            h: src_h,
            w: src_w,
            c,
        } = *s;
        let (h, w) = cfg.output_size(src_h, src_w);
        assert!(h > 0 && w > 0 && c > 0, "augment: empty image {h}x{w}x{c}");
        assert!(
            h <= src_h && w <= src_w,
            "augment: crop {h}x{w} larger than the input {src_h}x{src_w}"
        );
        assert!(
            src_h - h < 65536 && src_w - w < 65536,
            "augment: crop offsets are drawn from 16 bits"
        );
        assert!(
            n * src_h * src_w * c <= u32::MAX as usize,
            "augment: {n}x{src_h}x{src_w}x{c} overflows the kernel's u32 indices"
        );
        let p = Params {
            n: n as u32,
            h: h as u32,
            w: w as u32,
            c: c as u32,
            factor: cfg.factor,
            flags: flags(cfg),
            src_h: src_h as u32,
            src_w: src_w as u32,
            zoom: cfg.zoom.unwrap_or(0.0),
            translate: cfg.translate.unwrap_or(0.0),
            fill_mode: cfg.fill_mode.code(),
            fill_value: cfg.fill_value,
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
