//! Parity checks of `rescale`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use super::*;
use crate::cpu;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Parity checks of the three passes at the three shape classes. Tolerance: one f32 multiply-add,
/// atol 1e-6 (inputs up to 255 scaled by 1/255), rtol 1e-6.
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
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
