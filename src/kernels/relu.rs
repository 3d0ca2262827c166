//! `relu`: forward and backward over flat f32 tensors (shaders/relu.wgsl).

use bytemuck::{Pod, Zeroable};

use crate::cpu;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

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
                include_str!("../../shaders/relu.wgsl"),
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

/// Parity checks of both passes at the three shape classes.
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    let shapes = [
        (ShapeClass::Tiny, 13usize, "N1 H2 W2 C3 (+1)"),
        (ShapeClass::Odd, 2 * 7 * 7 * 5, "N2 H7 W7 C5"),
        (ShapeClass::Large, 4 * 45 * 45 * 96, "N4 H45 W45 C96"),
    ];
    let mut v = Vec::new();
    for (class, len, shape) in shapes {
        v.push(Check::new(
            "relu",
            "forward",
            "",
            class,
            shape,
            move |ctx| {
                let k = Relu::new(ctx);
                let x = random_vec(11, len, -1.0, 1.0);
                let xb = ctx.upload("x", &x);
                let yb = ctx.zeros("y", len);
                crate::kernels::run_all(ctx, &[&k.forward(ctx, &yb, &xb, len)])?;
                let mut want = vec![0.0; len];
                cpu::relu::relu_forward(&mut want, &to_f64(&x));
                Ok(vec![Compared::new("y", ctx.read(&yb)?, want, 0.0, 0.0)])
            },
        ));
        v.push(Check::new(
            "relu",
            "backward",
            "",
            class,
            shape,
            move |ctx| {
                let k = Relu::new(ctx);
                let x = random_vec(12, len, -1.0, 1.0);
                let dy = random_vec(13, len, -1.0, 1.0);
                let mut y = vec![0.0; len];
                cpu::relu::relu_forward(&mut y, &to_f64(&x));
                let yf: Vec<f32> = y.iter().map(|&v| v as f32).collect();
                let (dyb, yb, dxb) = (
                    ctx.upload("dy", &dy),
                    ctx.upload("y", &yf),
                    ctx.zeros("dx", len),
                );
                crate::kernels::run_all(ctx, &[&k.backward(ctx, &dxb, &dyb, &yb, len)])?;
                let mut want = vec![0.0; len];
                cpu::relu::relu_backward(&mut want, &to_f64(&dy), &y);
                Ok(vec![Compared::new("dx", ctx.read(&dxb)?, want, 0.0, 0.0)])
            },
        ));
    }
    v
}

/// ReLU forward and backward at the model's 8×90×90×256 activation (memory-bound: GB/s).
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let len = 8 * 90 * 90 * 256;
    let k = Relu::new(ctx);
    let x = ctx.upload("x", &random_vec(1, len, -1.0, 1.0));
    let y = ctx.zeros("y", len);
    let dx = ctx.zeros("dx", len);
    let bytes = (len * 4) as u64;
    vec![
        BenchCase {
            group: "relu",
            id: "8x90x90x256/forward".into(),
            work: Work::Bytes(2 * bytes),
            dispatches: vec![k.forward(ctx, &y, &x, len)],
            buffers: vec![],
        },
        BenchCase {
            group: "relu",
            id: "8x90x90x256/backward".into(),
            work: Work::Bytes(3 * bytes),
            dispatches: vec![k.backward(ctx, &dx, &x, &y, len)],
            buffers: vec![x, y, dx],
        },
    ]
}
