//! Parity checks of `relu`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use super::*;
use crate::cpu;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Parity checks of both passes at the three shape classes.
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
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
