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
    let mut v = u8_checks();
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

/// Parity of `rescale_u8_forward`, the input batch widened from bytes: records whose length is
/// not a multiple of 4 (padded to 4 in the upload) and ones that are, every byte value 0..=255.
/// With scale 1 and offset 0 it must give exactly the f32 batch (atol 0, rtol 0: widening a
/// byte is exact); with 1/255 and an offset, one f32 multiply-add (atol 1e-6, rtol 1e-6).
fn u8_checks() -> Vec<Check> {
    let shapes = [
        (ShapeClass::Tiny, 1usize, 2 * 2 * 3, "N1 H2 W2 C3"),
        (
            ShapeClass::Odd,
            3,
            7 * 7 * 3,
            "N3 H7 W7 C3 (147-byte records)",
        ),
        (ShapeClass::Large, 8, 90 * 90 * 3, "N8 H90 W90 C3"),
    ];
    let mut v = Vec::new();
    for (class, n, sample_len, shape) in shapes {
        for (scale, offset, tol) in [(1.0f32, 0.0f32, 0.0), (1.0 / 255.0, -0.5, 1e-6)] {
            let exact = if tol == 0.0 { "exact" } else { "scaled" };
            v.push(Check::new(
                "rescale",
                "u8_forward",
                exact,
                class,
                shape,
                move |ctx| {
                    let k = Rescale::new(ctx);
                    let len = n * sample_len;
                    let x: Vec<u8> = (0..len).map(|i| (i * 97 % 256) as u8).collect();
                    let packed = pack_u8(&x, sample_len);
                    let stride = u8_stride(sample_len);
                    let (xb, yb) = (ctx.upload("xb", &packed), ctx.zeros("y", len));
                    let d = k.forward_u8(ctx, &yb, &xb, len, sample_len, (scale, offset));
                    crate::kernels::run_all(ctx, &[&d])?;
                    let mut want = vec![0.0; len];
                    cpu::rescale::rescale_u8_forward(
                        &mut want,
                        &packed,
                        sample_len,
                        stride,
                        scale as f64,
                        offset as f64,
                    );
                    Ok(vec![Compared::new("y", ctx.read(&yb)?, want, tol, tol)])
                },
            ));
        }
    }
    v
}
