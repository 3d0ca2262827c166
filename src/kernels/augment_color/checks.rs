//! Parity checks of `augment_color`: the GPU passes against the `cpu::` reference at every shape
//! class, for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::cpu;
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};
use crate::kernels::augment::Augment;

/// GPU-vs-CPU tolerance, from an error bound rather than from a measurement.
///
/// With values in [0, 255] (u = 2⁻²⁴, f32's unit roundoff): a thread of `channel_mean` adds
/// ⌈H·W/256⌉ values, then 8 tree levels and a division, so the mean is off by at most
/// (⌈H·W/256⌉ + 10)·u·255. `(x − m)·f + m` with f ≤ 2 moves that by at most 3× and adds a few
/// roundings of values below 510; f and the brightness delta carry a few roundings each (the
/// uniform draw itself is exact in f32). Both clips are 1-Lipschitz: no steps to allow for. A real
/// defect (a wrong mean, stream, order or clip) moves values by whole units.
fn atol(h: usize, w: usize) -> f64 {
    let u = f32::EPSILON as f64 / 2.0;
    255.0 * u * (3.0 * ((h * w).div_ceil(256) + 10) as f64 + 32.0)
}

/// A config with only the colour factors set (the geometric flags do not matter here).
fn colour(contrast: f32, brightness: f32) -> AugmentConfig {
    AugmentConfig {
        contrast,
        brightness,
        ..AugmentConfig::NONE
    }
}

/// Parity checks of contrast alone, brightness alone and both (at Keras' largest factor too),
/// at the three shape classes, C = 1 and 3.
pub fn all(_ctx: &GpuContext) -> Vec<Check> {
    let shapes = [
        (ShapeClass::Tiny, [2usize, 4, 4, 1], "N2 H4 W4 C1"),
        (ShapeClass::Odd, [3, 7, 9, 3], "N3 H7 W9 C3"),
        (ShapeClass::Odd, [5, 13, 3, 1], "N5 H13 W3 C1"),
        // Many pixels per mean thread (80 each), many apply workgroups.
        (ShapeClass::Large, [8, 128, 160, 3], "N8 H128 W160 C3"),
    ];
    let modes: [(&'static str, AugmentConfig); 4] = [
        ("contrast", colour(0.2, 0.0)),
        ("brightness", colour(0.0, 0.2)),
        ("contrast+brightness", colour(0.2, 0.2)),
        // Factors up to 2 and deltas up to ±255: most values clip, in both steps.
        ("contrast+brightness(1.0)", colour(1.0, 1.0)),
    ];
    // One compiled family for all checks, built on first use (not when merely listing checks).
    let family: Arc<OnceLock<AugmentColor>> = Arc::new(OnceLock::new());
    let mut v = Vec::new();
    for (class, [n, h, w, c], shape) in shapes {
        for (mode, cfg) in modes {
            let family = family.clone();
            v.push(Check::new(
                "augment_color",
                "forward",
                mode,
                class,
                shape,
                move |ctx| {
                    let k = family.get_or_init(|| AugmentColor::new(ctx));
                    let len = n * h * w * c;
                    let seed = 0xc010_0000 ^ (len as u32);
                    let x = random_vec(22, len, 0.0, 255.0);
                    let s = NhwcShape { n, h, w, c };
                    let yb = ctx.upload("y", &x);
                    // Stale scratch, as the trainer's shared one holds other ops' values.
                    let means = ctx.upload("means", &vec![1e9f32; AugmentColor::means_len(&s)]);
                    // The geometric op's seed buffer, rewritten as the trainer does per step.
                    let sb = Augment::seed_buffer(ctx, !seed);
                    let d = k.forward(ctx, &yb, &means, &sb, &s, &cfg);
                    Augment::write_seed(ctx, &sb, seed);
                    crate::kernels::run_all(ctx, &d.iter().collect::<Vec<_>>())?;
                    let mut want = to_f64(&x);
                    cpu::augment_color::augment_color_forward(&mut want, &s, &cfg, seed);
                    Ok(vec![Compared::new(
                        "y",
                        ctx.read(&yb)?,
                        want,
                        atol(h, w),
                        0.0,
                    )])
                },
            ));
        }
    }
    v
}
