//! `rescale`: Keras' Rescaling layer, forward and backward (shaders/rescale.wgsl).

use bytemuck::{Pod, Zeroable};

use crate::gpu::GpuContext;
use crate::kernels::{Bind, Dispatch, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;

/// Mirrors `struct Params` in shaders/rescale.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub len: u32,
    pub scale: f32,
    pub offset: f32,
    pub _pad: u32,
}

const WG: u32 = 64;
const PER_INVOCATION: u32 = 4;

/// Pipelines of shaders/rescale.wgsl.
pub struct Rescale {
    family: ShaderFamily,
}

impl Rescale {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "rescale",
                include_str!("../../../shaders/rescale.wgsl"),
                &["rescale_forward", "rescale_backward", "rescale_accumulate"],
                &[("WG", WG as f64)],
            ),
        }
    }

    fn grid(len: usize) -> [u32; 3] {
        grid_1d(groups_for(len, WG * PER_INVOCATION))
    }

    /// y = x·scale + offset (writes y). y, x: [len] f32.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        len: usize,
        scale: f32,
        offset: f32,
    ) -> Dispatch {
        let p = Params {
            len: len as u32,
            scale,
            offset,
            _pad: 0,
        };
        self.family.dispatch(
            ctx,
            "rescale_forward",
            &[Some(y), Some(x)],
            Some(&p),
            Self::grid(len),
        )
    }

    /// dx = dy·scale (writes dx). dx, dy: [len] f32.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        len: usize,
        scale: f32,
    ) -> Dispatch {
        let p = Params {
            len: len as u32,
            scale,
            offset: 0.0,
            _pad: 0,
        };
        self.family.dispatch(
            ctx,
            "rescale_backward",
            &[Some(dx), Some(dy)],
            Some(&p),
            Self::grid(len),
        )
    }
}

impl Rescale {
    /// out += x·scale (ACCUMULATES). out, x: [len] f32.
    pub fn accumulate(
        &self,
        ctx: &GpuContext,
        out: &dyn Bind,
        x: &dyn Bind,
        len: usize,
        scale: f32,
    ) -> Dispatch {
        let p = Params {
            len: len as u32,
            scale,
            offset: 0.0,
            _pad: 0,
        };
        self.family.dispatch(
            ctx,
            "rescale_accumulate",
            &[Some(out), Some(x)],
            Some(&p),
            Self::grid(len),
        )
    }
}
