//! `relu`: forward and backward over flat f32 tensors (shaders/relu.wgsl).

use bytemuck::{Pod, Zeroable};

use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;

/// Mirrors `struct Params` in shaders/relu.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub len: u32,
    pub _pad: [u32; 3],
}

const WG: u32 = 64;
const PER_INVOCATION: u32 = 4;

/// Pipelines of shaders/relu.wgsl.
pub struct Relu {
    family: ShaderFamily,
}

impl Relu {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "relu",
                include_str!("../../../shaders/relu.wgsl"),
                &["relu_forward", "relu_backward"],
                &[("WG", WG as f64)],
            ),
        }
    }

    fn grid(len: usize) -> [u32; 3] {
        grid_1d(groups_for(len, WG * PER_INVOCATION))
    }

    /// y = max(x, 0). y, x: [len] f32.
    pub fn forward(&self, ctx: &GpuContext, y: &dyn Bind, x: &dyn Bind, len: usize) -> Dispatch {
        let p = Params {
            len: len as u32,
            _pad: [0; 3],
        };
        self.family.dispatch(
            ctx,
            "relu_forward",
            &[Some(y), Some(x)],
            Some(&p),
            Self::grid(len),
        )
    }

    /// dx = dy · [y > 0] (writes dx). dx, dy, y: [len] f32; y saved by the forward pass.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        y: &dyn Bind,
        len: usize,
    ) -> Dispatch {
        let p = Params {
            len: len as u32,
            _pad: [0; 3],
        };
        self.family.dispatch(
            ctx,
            "relu_backward",
            &[Some(dx), Some(dy), Some(y)],
            Some(&p),
            Self::grid(len),
        )
    }
}
