//! `rescale`: Keras' Rescaling layer, forward and backward (shaders/rescale.wgsl).

use bytemuck::{Pod, Zeroable};

use crate::cpu;
use crate::gpu::GpuContext;
use crate::kernels::{Bind, Dispatch, ShaderFamily, grid_1d, groups_for};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

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
                include_str!("../../shaders/rescale.wgsl"),
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

/// Parity checks of the three passes at the three shape classes. Tolerance: one f32 multiply-add,
/// atol 1e-6 (inputs up to 255 scaled by 1/255), rtol 1e-6.
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    let shapes = [
        (ShapeClass::Tiny, 13usize, "N1 H2 W2 C3 (+1)"),
        (ShapeClass::Odd, 2 * 7 * 7 * 5, "N2 H7 W7 C5"),
        (ShapeClass::Large, 4 * 45 * 45 * 96, "N4 H45 W45 C96"),
    ];
    let (scale, offset) = (1.0f32 / 255.0, -0.5f32);
    let mut v = Vec::new();
    for (class, len, shape) in shapes {
        v.push(Check::new(
            "rescale",
            "forward",
            "",
            class,
            shape,
            move |ctx| {
                let k = Rescale::new(ctx);
                let x = random_vec(21, len, 0.0, 255.0);
                let (xb, yb) = (ctx.upload("x", &x), ctx.zeros("y", len));
                crate::kernels::run_all(ctx, &[&k.forward(ctx, &yb, &xb, len, scale, offset)])?;
                let mut want = vec![0.0; len];
                cpu::rescale::rescale_forward(&mut want, &to_f64(&x), scale as f64, offset as f64);
                Ok(vec![Compared::new("y", ctx.read(&yb)?, want, 1e-6, 1e-6)])
            },
        ));
        v.push(Check::new(
            "rescale",
            "backward",
            "",
            class,
            shape,
            move |ctx| {
                let k = Rescale::new(ctx);
                let dy = random_vec(22, len, -1.0, 1.0);
                let (dyb, dxb) = (ctx.upload("dy", &dy), ctx.zeros("dx", len));
                crate::kernels::run_all(ctx, &[&k.backward(ctx, &dxb, &dyb, len, scale)])?;
                let mut want = vec![0.0; len];
                cpu::rescale::rescale_backward(&mut want, &to_f64(&dy), scale as f64);
                Ok(vec![Compared::new("dx", ctx.read(&dxb)?, want, 1e-6, 1e-6)])
            },
        ));
        v.push(Check::new(
            "rescale",
            "accumulate",
            "",
            class,
            shape,
            move |ctx| {
                let k = Rescale::new(ctx);
                let (x, acc) = (
                    random_vec(23, len, -1.0, 1.0),
                    random_vec(24, len, -1.0, 1.0),
                );
                let (xb, ob) = (ctx.upload("x", &x), ctx.upload("out", &acc));
                crate::kernels::run_all(ctx, &[&k.accumulate(ctx, &ob, &xb, len, 0.375)])?;
                let mut want = to_f64(&acc);
                cpu::rescale::rescale_accumulate(&mut want, &to_f64(&x), 0.375);
                Ok(vec![Compared::new("out", ctx.read(&ob)?, want, 1e-6, 1e-6)])
            },
        ));
    }
    v
}

/// Rescaling of the model's input batch 8×180×180×3 (memory-bound: GB/s).
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let len = 8 * 180 * 180 * 3;
    let k = Rescale::new(ctx);
    let x = ctx.upload("x", &random_vec(1, len, 0.0, 255.0));
    let y = ctx.zeros("y", len);
    vec![BenchCase {
        group: "rescale",
        id: "8x180x180x3/forward".into(),
        work: Work::Bytes(2 * (len * 4) as u64),
        dispatches: vec![k.forward(ctx, &y, &x, len, 1.0 / 255.0, 0.0)],
        buffers: vec![x, y],
    }]
}
