//! `augment_color`: Keras RandomContrast + RandomBrightness (value_range 0..255) in place over
//! an NHWC batch (shaders/augment_color.wgsl), run after the geometric `augment` op and seeded
//! from the same per-step seed buffer ([`crate::kernels::augment::Augment::seed_buffer`]) with
//! their own hash streams (see `cpu::augment_color`).

use bytemuck::{Pod, Zeroable};

use crate::cpu::augment::AugmentConfig;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;

pub use crate::shapes::NhwcShape;

/// Mirrors `struct Params` in shaders/augment_color.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    /// Keras contrast factor; 0 is off.
    pub contrast: f32,
    /// Keras brightness factor; 0 is off.
    pub brightness: f32,
    pub _pad: [u32; 2],
}

const WG: u32 = 256;

/// Pipelines of shaders/augment_color.wgsl.
pub struct AugmentColor {
    family: ShaderFamily,
}

impl AugmentColor {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "augment_color",
                include_str!("../../../shaders/augment_color.wgsl"),
                &["channel_mean", "color_apply"],
                &[("WG", WG as f64)],
            ),
        }
    }

    /// Floats of `means` that [`AugmentColor::forward`] needs for a batch of shape `s`: one
    /// mean per image and channel.
    pub fn means_len(s: &NhwcShape) -> usize {
        s.n * s.c
    }

    /// Contrast then brightness as `cfg` enables them, in place on y, with each image's draws
    /// from the u32 in `seed` and its index: the per-channel means pass (only with contrast)
    /// then the apply pass. y: [N, H, W, C] f32, NHWC; means: at least
    /// [`AugmentColor::means_len`] f32 of scratch (overwritten); seed: [1] u32, the geometric
    /// op's seed buffer.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        means: &dyn Bind,
        seed: &dyn Bind,
        s: &NhwcShape,
        cfg: &AugmentConfig,
    ) -> Vec<Dispatch> {
        let NhwcShape { n, h, w, c } = *s;
        assert!(
            h > 0 && w > 0 && c > 0,
            "augment_color: empty image {h}x{w}x{c}"
        );
        assert!(
            n * h * w * c <= u32::MAX as usize,
            "augment_color: {n}x{h}x{w}x{c} overflows the kernel's u32 indices"
        );
        assert!(
            means.size() >= (Self::means_len(s) * 4) as u64,
            "augment_color: the means buffer holds fewer than N·C floats"
        );
        let p = Params {
            n: n as u32,
            h: h as u32,
            w: w as u32,
            c: c as u32,
            contrast: cfg.contrast,
            brightness: cfg.brightness,
            _pad: [0; 2],
        };
        let slots: [Option<&dyn Bind>; 3] = [Some(y), Some(means), Some(seed)];
        let mut v = Vec::with_capacity(2);
        if cfg.contrast > 0.0 {
            v.push(self.family.dispatch(
                ctx,
                "channel_mean",
                &slots,
                Some(&p),
                grid_1d((n * c) as u32),
            ));
        }
        v.push(self.family.dispatch(
            ctx,
            "color_apply",
            &slots,
            Some(&p),
            grid_1d(groups_for(n * h * w * c, WG)),
        ));
        v
    }
}
