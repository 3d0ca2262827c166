//! Parity checks of `augment`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::cpu;
use crate::cpu::augment::{Crop, FillMode};
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

/// The tolerance of a batch that zoom or translation (up to F = 1) also moves: the source
/// coordinates reach about four image sizes out (zoom 2 about the centre after a shift of a
/// whole image), so the same bound as [`rotate_atol`] with |x| + |y| four times larger. Every
/// fill mode keeps the output continuous in the coordinates (constant mode's outside
/// neighbours read the fill value with a weight that goes to zero at the edge; wrap's
/// neighbours are taken modulo the length, so the seam interpolates), so no steps either.
fn geometry_atol(h: usize, w: usize) -> f64 {
    4.0 * rotate_atol(h, w)
}

/// `RandomZoom`, `RandomTranslation`, `RandomCrop` and the fill modes, alone and together.
fn geometry_modes() -> Vec<(&'static str, AugmentConfig)> {
    let only = |cfg: AugmentConfig| AugmentConfig {
        flip: false,
        rotate: false,
        ..cfg
    };
    let all = AugmentConfig {
        zoom: Some(0.3),
        translate: Some(0.2),
        ..AugmentConfig::KERAS
    };
    let fill = |fill_mode, fill_value| AugmentConfig {
        fill_mode,
        fill_value,
        ..all
    };
    vec![
        (
            "zoom(0.3)",
            only(AugmentConfig {
                zoom: Some(0.3),
                ..AugmentConfig::KERAS
            }),
        ),
        (
            "translate(0.2)",
            only(AugmentConfig {
                translate: Some(0.2),
                ..AugmentConfig::KERAS
            }),
        ),
        ("all reflect", all),
        ("all wrap", fill(FillMode::Wrap, 0.0)),
        ("all nearest", fill(FillMode::Nearest, 0.0)),
        ("all constant(37.5)", fill(FillMode::Constant, 37.5)),
        // The widest ranges Keras allows send coordinates several periods out.
        (
            "zoom(1)+translate(1) wrap",
            AugmentConfig {
                zoom: Some(1.0),
                translate: Some(1.0),
                ..fill(FillMode::Wrap, 0.0)
            },
        ),
        (
            "zoom(1)+translate(1) constant",
            AugmentConfig {
                zoom: Some(1.0),
                translate: Some(1.0),
                ..fill(FillMode::Constant, -3.0)
            },
        ),
    ]
}

/// Parity checks of every mode (none, flip, rotate, flip+rotate at factors 0.1 and 0.5) at the
/// three shape classes; zoom, translation and the fill modes at odd shapes with 1 and 3
/// channels; crops; and the default mode against the frozen rotate-only kernel, bit for bit.
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
    let mut add = |class, [n, h, w, c]: [usize; 4], shape: &str, mode, cfg: AugmentConfig| {
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
                let (oh, ow) = cfg.output_size(h, w);
                let out_len = n * oh * ow * c;
                let seed = 0x5eed_0000 ^ (len as u32);
                let x = random_vec(21, len, 0.0, 255.0);
                let (xb, yb) = (ctx.upload("x", &x), ctx.zeros("y", out_len));
                // Start from another seed and rewrite it, as the trainer does per step.
                let sb = Augment::seed_buffer(ctx, !seed);
                let s = NhwcShape { n, h, w, c };
                let d = k.forward(ctx, &yb, &xb, &sb, &s, &cfg);
                Augment::write_seed(ctx, &sb, seed);
                crate::kernels::run_all(ctx, &[&d])?;
                let mut want = vec![0.0; out_len];
                cpu::augment::augment_forward(&mut want, &to_f64(&x), &s, &cfg, seed);
                // Copies (crop, flip) are exact.
                let atol = if cfg.zoom.is_some() || cfg.translate.is_some() {
                    geometry_atol(oh, ow)
                } else if cfg.rotate {
                    rotate_atol(oh, ow)
                } else {
                    0.0
                };
                Ok(vec![Compared::new("y", ctx.read(&yb)?, want, atol, 0.0)])
            },
        ));
    };
    for (class, dims, shape) in shapes {
        for (mode, cfg) in modes {
            add(class, dims, shape, mode, cfg);
        }
    }
    let odd = [
        (ShapeClass::Odd, [3usize, 7, 9, 3], "N3 H7 W9 C3"),
        (ShapeClass::Odd, [2, 12, 20, 1], "N2 H12 W20 C1"),
        (ShapeClass::Odd, [4, 3, 17, 2], "N4 H3 W17 C2"),
    ];
    for (class, dims, shape) in odd {
        for (mode, cfg) in geometry_modes() {
            add(class, dims, shape, mode, cfg);
        }
    }
    // Crops: alone (an exact window copy), with the flip, and under everything else; the
    // other transforms and their fill see only the window.
    let crop = |h, w, from, cfg| AugmentConfig {
        crop: Some(Crop {
            height: h,
            width: w,
            from,
        }),
        ..cfg
    };
    let all = AugmentConfig {
        zoom: Some(0.3),
        translate: Some(0.2),
        fill_mode: FillMode::Constant,
        fill_value: 200.0,
        ..AugmentConfig::KERAS
    };
    for (class, dims, shape, (ch, cw)) in [
        (
            ShapeClass::Odd,
            [5usize, 9, 11, 3],
            "N5 H9 W11 C3",
            (7usize, 6usize),
        ),
        (ShapeClass::Odd, [3, 13, 8, 1], "N3 H13 W8 C1", (13, 5)),
        (ShapeClass::Large, [8, 72, 72, 3], "N8 H72 W72 C3", (64, 64)),
    ] {
        add(
            class,
            dims,
            shape,
            "crop",
            crop(ch, cw, (dims[1], dims[2]), AugmentConfig::NONE),
        );
        add(
            class,
            dims,
            shape,
            "crop+flip",
            crop(
                ch,
                cw,
                (dims[1], dims[2]),
                AugmentConfig {
                    rotate: false,
                    ..AugmentConfig::KERAS
                },
            ),
        );
        add(
            class,
            dims,
            shape,
            "crop+all constant(200)",
            crop(ch, cw, (dims[1], dims[2]), all),
        );
    }
    for (class, [n, h, w, c], shape) in [
        (ShapeClass::Odd, [3usize, 7, 9, 3], "N3 H7 W9 C3"),
        (ShapeClass::Large, [8, 64, 64, 3], "N8 H64 W64 C3"),
    ] {
        for (mode, cfg) in [
            ("flip+rotate = v1 bits", AugmentConfig::KERAS),
            (
                "rotate(0.5) = v1 bits",
                AugmentConfig {
                    flip: false,
                    factor: 0.5,
                    ..AugmentConfig::KERAS
                },
            ),
        ] {
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
                    let x = ctx.upload("x", &random_vec(22, len, 0.0, 255.0));
                    let (y, y_v1) = (ctx.zeros("y", len), ctx.zeros("y v1", len));
                    let sb = Augment::seed_buffer(ctx, 0xabcd_0123 ^ len as u32);
                    let s = NhwcShape { n, h, w, c };
                    let d = k.forward(ctx, &y, &x, &sb, &s, &cfg);
                    let d_v1 = rotate_only_v1(ctx, &y_v1, &x, &sb, &s, &cfg);
                    crate::kernels::run_all(ctx, &[&d, &d_v1])?;
                    // The "reference" is the old kernel's output on the same device: equal
                    // values, not merely close.
                    let old = to_f64(&ctx.read::<f32>(&y_v1)?);
                    Ok(vec![Compared::new("y", ctx.read(&y)?, old, 0.0, 0.0)])
                },
            ));
        }
    }
    v
}

/// `struct Params` of the frozen rotate-only kernel (rotate_only_v1.wgsl).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ParamsV1 {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    factor: f32,
    flags: u32,
    _pad: [u32; 2],
}

/// The augmentation as the kernel computed it before zoom, translation, crop and fill modes
/// (flip and rotation with reflect only), for the bit-for-bit check of the default mode.
fn rotate_only_v1(
    ctx: &GpuContext,
    y: &dyn Bind,
    x: &dyn Bind,
    seed: &dyn Bind,
    s: &NhwcShape,
    cfg: &AugmentConfig,
) -> Dispatch {
    assert!(cfg.zoom.is_none() && cfg.translate.is_none() && cfg.crop.is_none());
    assert_eq!(cfg.fill_mode, FillMode::Reflect);
    let family = ShaderFamily::new(
        ctx,
        "augment_v1",
        include_str!("rotate_only_v1.wgsl"),
        &["augment_forward"],
        &[("WG", WG as f64)],
    );
    let NhwcShape { n, h, w, c } = *s;
    let p = ParamsV1 {
        n: n as u32,
        h: h as u32,
        w: w as u32,
        c: c as u32,
        factor: cfg.factor,
        flags: flags(cfg),
        _pad: [0; 2],
    };
    family.dispatch(
        ctx,
        "augment_forward",
        &[Some(y), Some(x), Some(seed)],
        Some(&p),
        grid_1d(groups_for(n * h * w, WG)),
    )
}
