//! Parity checks of `augment`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::cpu;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};

/// GPU-vs-CPU tolerance of a rotated batch, from an error bound rather than from a measurement.
///
/// The output is a continuous, piecewise-bilinear function of the two source coordinates (the
/// reflect map and the clamp are continuous and 1-Lipschitz, and bilinear weights go to zero at
/// every pixel edge; `cpu::augment` tests this), so there are no rounding *steps* to allow for:
/// with values in [0, 255] an error δ in each coordinate moves the output by at most 255·2δ.
/// δ ≤ (|x| + |y| + (W−1) + (H−1))·(e_trig + 16·ε_f32) ≤ 2·(W + H)·(e_trig + 16·ε_f32), where
/// e_trig = 2⁻²⁰ allows for the device's f32 sin/cos (the WGSL builtins; NVIDIA's sin.approx is
/// about 2⁻²¹ absolute on this range) and 16·ε covers the angle and the few f32 roundings of the
/// matrix, the offsets and the products. A real defect (centre, sign, reflect or neighbour off
/// by a pixel) moves values by tens.
fn rotate_atol(h: usize, w: usize) -> f64 {
    let e_trig = (-20f64).exp2();
    let eps = f32::EPSILON as f64 / 2.0;
    255.0 * 2.0 * 2.0 * (w + h) as f64 * (e_trig + 16.0 * eps)
}

/// Parity checks of every mode (none, flip, rotate, flip+rotate at factors 0.1 and 0.5) at the
/// three shape classes.
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
    let shapes = [
        (ShapeClass::Tiny, [2usize, 4, 4, 1], "N2 H4 W4 C1"),
        (ShapeClass::Odd, [3, 7, 9, 3], "N3 H7 W9 C3"),
        // Thin images turned by up to 180° send coordinates several reflect periods out.
        (ShapeClass::Odd, [4, 3, 17, 2], "N4 H3 W17 C2"),
        // A non-square gray batch (`--color-mode grayscale --image-size 12,20`): the rotation is
        // about ((W−1)/2, (H−1)/2), not a square's centre, and one channel strides by 1.
        (ShapeClass::Odd, [2, 12, 20, 1], "N2 H12 W20 C1"),
        (ShapeClass::Large, [8, 64, 64, 3], "N8 H64 W64 C3"),
    ];
    let modes: [(&'static str, AugmentConfig); 5] = [
        ("none", AugmentConfig::NONE),
        (
            "flip",
            AugmentConfig {
                rotate: false,
                ..AugmentConfig::KERAS
            },
        ),
        (
            "rotate",
            AugmentConfig {
                flip: false,
                ..AugmentConfig::KERAS
            },
        ),
        ("flip+rotate", AugmentConfig::KERAS),
        (
            "flip+rotate(0.5)",
            AugmentConfig {
                factor: 0.5,
                ..AugmentConfig::KERAS
            },
        ),
    ];
    // One compiled family for all checks, built on first use (not when merely listing checks).
    let family: Arc<OnceLock<Augment>> = Arc::new(OnceLock::new());
    let mut v = Vec::new();
    for (class, [n, h, w, c], shape) in shapes {
        for (mode, cfg) in modes {
            let family = family.clone();
            v.push(Check::new(
                "augment",
                "forward",
                mode,
                class,
                shape,
                move |ctx| {
                    let k = family.get_or_init(|| Augment::new(ctx));
                    let len = n * h * w * c;
                    let seed = 0x5eed_0000 ^ (len as u32);
                    let x = random_vec(21, len, 0.0, 255.0);
                    let (xb, yb) = (ctx.upload("x", &x), ctx.zeros("y", len));
                    // Start from another seed and rewrite it, as the trainer does per step.
                    let sb = Augment::seed_buffer(ctx, !seed);
                    let s = NhwcShape { n, h, w, c };
                    let d = k.forward(ctx, &yb, &xb, &sb, &s, &cfg);
                    Augment::write_seed(ctx, &sb, seed);
                    crate::kernels::run_all(ctx, &[&d])?;
                    let mut want = vec![0.0; len];
                    cpu::augment::augment_forward(&mut want, &to_f64(&x), &s, &cfg, seed);
                    // Copies (no rotation) are exact.
                    let atol = if cfg.rotate { rotate_atol(h, w) } else { 0.0 };
                    Ok(vec![Compared::new("y", ctx.read(&yb)?, want, atol, 0.0)])
                },
            ));
        }
    }
    v
}
