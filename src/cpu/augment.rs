//! Data augmentation reference: Keras' `RandomFlip("horizontal")` followed by
//! `RandomRotation(factor)` (bilinear, fill mode "reflect"), with per-image random numbers from a
//! counter-based hash that shaders/augment.wgsl computes bit for bit the same way.
//!
//! What is matched, and where it comes from (the semantics, not the code):
//! - The rotation matrix of tf.keras 2.x `get_rotation_matrix` (and Keras 3's
//!   `RandomRotation.get_random_transformation`, same formula): the output pixel `(x, y)`
//!   samples the input at `(cos·x − sin·y + x_off, sin·x + cos·y + y_off)` with
//!   `x_off = ((W−1) − (cos·(W−1) − sin·(H−1)))/2` and
//!   `y_off = ((H−1) − (sin·(W−1) + cos·(H−1)))/2`, i.e. a rotation about `((W−1)/2, (H−1)/2)`;
//!   the angle is uniform in `[−factor·2π, +factor·2π)`.
//! - TensorFlow's `ImageProjectiveTransformV3` kernel (tensorflow/core/kernels/image/image_ops.h):
//!   `MapCoordinate<FILL_REFLECT>` maps each input coordinate into `[0, len−1]` (see
//!   [`reflect_coord`]), then `bilinear_interpolation` reads `floor` and `floor + 1`; a neighbour
//!   outside the image reads the fill value 0, which only ever happens with weight 0 (the mapped
//!   coordinate is clamped to `len − 1`), so clamping the neighbour index is the same thing.
//! - RandomFlip("horizontal") flips an image when its uniform draw `u < 0.5`; the flip happens
//!   before the rotation, so the rotation samples the mirrored image.

use std::f64::consts::TAU;

pub use crate::shapes::NhwcShape;

/// Which augmentations run and how far rotations go. Shared by the CPU reference and the
/// kernel (`kernels::augment`), so a test can never configure the two differently.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentConfig {
    /// Random horizontal flip with probability 0.5 (Keras `RandomFlip("horizontal")`).
    pub flip: bool,
    /// Random rotation by an angle uniform in `[−factor·2π, +factor·2π)`
    /// (Keras `RandomRotation(factor)`).
    pub rotate: bool,
    /// The rotation range as a fraction of a full turn (0.1 → ±36°). An f32 because the kernel
    /// uses exactly this value.
    pub factor: f32,
    /// Keras `RandomContrast(contrast)`: per image, a factor uniform in
    /// `[1 − contrast, 1 + contrast]` about each channel's mean, clipped to 0..255; 0 is off.
    /// Applied after the geometric op by `kernels::augment_color` (see `cpu::augment_color`).
    pub contrast: f32,
    /// Keras `RandomBrightness(brightness, value_range=(0, 255))`: per image, a delta uniform
    /// in `[−brightness, brightness]·255` added, clipped to 0..255; 0 is off.
    pub brightness: f32,
}

impl AugmentConfig {
    /// The Keras example: RandomFlip("horizontal") + RandomRotation(0.1).
    pub const KERAS: Self = Self {
        flip: true,
        rotate: true,
        factor: 0.1,
        contrast: 0.0,
        brightness: 0.0,
    };
    /// No augmentation: the output is a copy of the input.
    pub const NONE: Self = Self {
        flip: false,
        rotate: false,
        factor: 0.1,
        contrast: 0.0,
        brightness: 0.0,
    };
}

/// Random stream of the flip decision (the `stream` argument of [`augment_hash`]).
pub const STREAM_FLIP: u32 = 0;
/// Random stream of the rotation angle.
pub const STREAM_ANGLE: u32 = 1;

/// Chris Wellons' "lowbias32" integer finaliser: a bijection on u32 with strong avalanche.
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The counter-based hash behind every random number of the op: a pure function of
/// (seed, image index, stream), in u32 arithmetic only, computed identically by the WGSL kernel.
pub fn augment_hash(seed: u32, image: u32, stream: u32) -> u32 {
    let h = mix32(seed ^ 0x9e37_79b9);
    let h = mix32(h ^ image);
    mix32(h ^ stream.wrapping_add(0x85eb_ca6b))
}

/// Uniform in [0, 1) from the top 24 bits of [`augment_hash`] (exact in f32 and f64).
pub fn augment_uniform(seed: u32, image: u32, stream: u32) -> f64 {
    (augment_hash(seed, image, stream) >> 8) as f64 / (1u32 << 24) as f64
}

/// Whether image `image` is flipped, and its rotation angle in radians (0 when rotation is off).
pub fn image_transform(cfg: &AugmentConfig, seed: u32, image: u32) -> (bool, f64) {
    let flip = cfg.flip && augment_uniform(seed, image, STREAM_FLIP) < 0.5;
    let angle = if cfg.rotate {
        let u = augment_uniform(seed, image, STREAM_ANGLE);
        cfg.factor as f64 * TAU * (2.0 * u - 1.0)
    } else {
        0.0
    };
    (flip, angle)
}

/// TensorFlow's reflect fill (`d c b a | a b c d | d c b a`, reflection about the outer edge of
/// the border pixel) of a continuous coordinate into `[0, len − 1]`: integer coordinates map
/// −1 → 0, −2 → 1, len → len−1, len+1 → len−2. A coordinate less than one pixel beyond a
/// border pixel centre (e.g. −0.3, or len − 0.4) still lies outside `[0, len − 1]` after the
/// reflection and is clamped to the border pixel, as TF does.
pub fn reflect_coord(coord: f64, len: usize) -> f64 {
    if len <= 1 {
        return 0.0;
    }
    let l = len as f64;
    let period = 2.0 * l;
    let mut c = coord;
    if c < 0.0 {
        // Shift by whole periods into (−2·len, 0], then reflect about −0.5.
        c += period * (-c / period).trunc();
        c = if c < -l { c + period } else { -c - 1.0 };
    } else if c > l - 1.0 {
        // Shift by whole periods into [0, 2·len), then reflect about len − 0.5.
        c -= period * (c / period).trunc();
        if c >= l {
            c = period - c - 1.0;
        }
    }
    c.clamp(0.0, l - 1.0)
}

/// Bilinear sample at continuous `(xs, ys)`, already mapped into an h×w image whose pixel
/// (row i, column j) is `at(i, j)`.
fn bilinear(at: impl Fn(usize, usize) -> f64, h: usize, w: usize, xs: f64, ys: f64) -> f64 {
    let x0 = xs.floor();
    let y0 = ys.floor();
    let (wx0, wx1) = (x0 + 1.0 - xs, xs - x0);
    let (wy0, wy1) = (y0 + 1.0 - ys, ys - y0);
    let (x0, y0) = (x0 as usize, y0 as usize);
    let x1 = (x0 + 1).min(w - 1);
    let y1 = (y0 + 1).min(h - 1);
    let top = wx0 * at(y0, x0) + wx1 * at(y0, x1);
    let bottom = wx0 * at(y1, x0) + wx1 * at(y1, x1);
    wy0 * top + wy1 * bottom
}

/// One image: flip (when `flip`), then rotate by `angle` radians about the centre (Keras'
/// matrix, positive = counter-clockwise on screen), bilinear, reflect fill.
/// y, x: [H, W, C].
pub fn transform_image(
    y: &mut [f64],
    x: &[f64],
    h: usize,
    w: usize,
    c: usize,
    flip: bool,
    angle: f64,
) {
    let (sin, cos) = angle.sin_cos();
    let (wm, hm) = ((w - 1) as f64, (h - 1) as f64);
    let x_off = (wm - (cos * wm - sin * hm)) / 2.0;
    let y_off = (hm - (sin * wm + cos * hm)) / 2.0;
    for oy in 0..h {
        for ox in 0..w {
            let (fx, fy) = (ox as f64, oy as f64);
            let xs = reflect_coord(cos * fx - sin * fy + x_off, w);
            let ys = reflect_coord(sin * fx + cos * fy + y_off, h);
            for ch in 0..c {
                // The rotation samples the flipped image: its column j is column W−1−j of x.
                let at = |i: usize, j: usize| {
                    let j = if flip { w - 1 - j } else { j };
                    x[(i * w + j) * c + ch]
                };
                y[(oy * w + ox) * c + ch] = bilinear(at, h, w, xs, ys);
            }
        }
    }
}

/// y = rotate(flip(x)) per image, with image `i`'s flip decision and angle drawn from
/// `(seed, i)` (see [`image_transform`]). y, x: [N, H, W, C] as in `s`.
pub fn augment_forward(y: &mut [f64], x: &[f64], s: &NhwcShape, cfg: &AugmentConfig, seed: u32) {
    let NhwcShape { n, h, w, c } = *s;
    let len = h * w * c;
    assert_eq!(x.len(), n * len);
    assert_eq!(y.len(), n * len);
    for i in 0..n {
        let (flip, angle) = image_transform(cfg, seed, i as u32);
        let range = i * len..(i + 1) * len;
        transform_image(&mut y[range.clone()], &x[range], h, w, c, flip, angle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::random_f64;
    use std::f64::consts::PI;

    fn mirrored(x: &[f64], h: usize, w: usize, c: usize, rows: bool, cols: bool) -> Vec<f64> {
        let mut out = vec![0.0; x.len()];
        for i in 0..h {
            for j in 0..w {
                let si = if rows { h - 1 - i } else { i };
                let sj = if cols { w - 1 - j } else { j };
                for ch in 0..c {
                    out[(i * w + j) * c + ch] = x[(si * w + sj) * c + ch];
                }
            }
        }
        out
    }

    #[test]
    fn reflect_matches_hand_computed_coordinates() {
        // len 4: d c b a | a b c d | d c b a.
        let cases = [
            (-1.0, 0.0),
            (-2.0, 1.0),
            (-3.0, 2.0),
            (-4.0, 3.0),
            (-5.0, 3.0),
            (-6.0, 2.0),
            (-8.0, 0.0),
            (-9.0, 0.0),
            (4.0, 3.0),
            (5.0, 2.0),
            (7.0, 0.0),
            (8.0, 0.0),
            (9.0, 1.0),
            (0.0, 0.0),
            (3.0, 3.0),
            (1.25, 1.25),
            (-1.5, 0.5),
            (4.5, 2.5),
            // Between the border pixel centre and its outer edge: clamped to the border.
            (-0.3, 0.0),
            (3.6, 3.0),
        ];
        for (c, want) in cases {
            assert_eq!(reflect_coord(c, 4), want, "coordinate {c}");
        }
        assert_eq!(reflect_coord(-7.5, 1), 0.0);
        assert_eq!(reflect_coord(9.0, 2), 1.0); // 9 → 1 (period 4: 9 − 8 = 1)
    }

    #[test]
    fn reflect_is_continuous() {
        // Why the GPU/CPU tolerance needs no allowance for "rounding steps": the mapping (and
        // hence the bilinear sample) is continuous, 1-Lipschitz, across every pixel and reflect
        // boundary.
        for len in [2usize, 3, 7] {
            let mut prev = reflect_coord(-3.0 * len as f64, len);
            let step = 1e-3;
            let mut c = -3.0 * len as f64;
            while c < 4.0 * len as f64 {
                c += step;
                let r = reflect_coord(c, len);
                assert!(
                    (r - prev).abs() <= step + 1e-9,
                    "len {len} at {c}: {prev} → {r}"
                );
                prev = r;
            }
        }
    }

    #[test]
    fn hand_computed_rotation_by_90_degrees() {
        // 3×3, one channel: a 90° rotation about the centre pixel (1, 1). Output (x, y) samples
        // input (x', y') = (−y + 2, x): output row 0 is input column 2 read downwards.
        let x: Vec<f64> = (1..=9).map(f64::from).collect(); // rows [1 2 3] [4 5 6] [7 8 9]
        let mut y = vec![0.0; 9];
        transform_image(&mut y, &x, 3, 3, 1, false, PI / 2.0);
        let want = [3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0];
        for (g, w) in y.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{y:?}");
        }
    }

    #[test]
    fn hand_computed_bilinear_with_reflect() {
        // 2×2 image rotated by 45° about (0.5, 0.5): x_off = 0.5, y_off = 0.5 − √2/2. Output
        // (0, 0) samples (0.5, −0.207); reflect maps y to −0.793, clamped to 0: the mean of the
        // top row. Output (1, 1) samples (0.5, 1.207), y clamped to 1: the bottom row's mean.
        let x = vec![0.0, 10.0, 100.0, 1000.0];
        let mut y = vec![0.0; 4];
        transform_image(&mut y, &x, 2, 2, 1, false, PI / 4.0);
        assert!((y[0] - 5.0).abs() < 1e-9, "{y:?}");
        assert!((y[3] - 550.0).abs() < 1e-9, "{y:?}");
        // Output (1, 0) samples (0.5 + √2/2, 0.5) → x clamped to 1: mean of the right column.
        assert!((y[1] - 505.0).abs() < 1e-9, "{y:?}");
    }

    #[test]
    fn flip_only_is_an_exact_mirror() {
        let (n, h, w, c) = (16, 3, 5, 2);
        let x = random_f64(1, n * h * w * c, 0.0, 255.0);
        let mut y = vec![0.0; x.len()];
        let cfg = AugmentConfig {
            flip: true,
            rotate: false,
            ..AugmentConfig::NONE
        };
        augment_forward(&mut y, &x, &NhwcShape { n, h, w, c }, &cfg, 7);
        let len = h * w * c;
        let mut flipped = 0;
        for i in 0..n {
            let xi = &x[i * len..(i + 1) * len];
            let (flip, _) = image_transform(&cfg, 7, i as u32);
            flipped += flip as usize;
            let want = if flip {
                mirrored(xi, h, w, c, false, true)
            } else {
                xi.to_vec()
            };
            assert_eq!(&y[i * len..(i + 1) * len], &want[..], "image {i}");
        }
        assert!(
            flipped > 0 && flipped < n,
            "16 images should include both cases"
        );
    }

    #[test]
    fn rotation_by_zero_and_none_are_the_identity() {
        let (h, w, c) = (5, 7, 3);
        let x = random_f64(2, h * w * c, 0.0, 255.0);
        let mut y = vec![0.0; x.len()];
        transform_image(&mut y, &x, h, w, c, false, 0.0);
        assert_eq!(y, x);
        let mut y = vec![0.0; 4 * x.len()];
        let x4 = [x.clone(), x.clone(), x.clone(), x].concat();
        augment_forward(
            &mut y,
            &x4,
            &NhwcShape { n: 4, h, w, c },
            &AugmentConfig::NONE,
            3,
        );
        assert_eq!(y, x4);
    }

    #[test]
    fn rotation_by_180_degrees_flips_both_axes() {
        for (h, w) in [(4usize, 4usize), (5, 7), (6, 3)] {
            let c = 2;
            let x = random_f64(3, h * w * c, 0.0, 255.0);
            let mut y = vec![0.0; x.len()];
            transform_image(&mut y, &x, h, w, c, false, PI);
            let want = mirrored(&x, h, w, c, true, true);
            for (g, e) in y.iter().zip(&want) {
                assert!((g - e).abs() < 1e-9, "{h}x{w}: {g} vs {e}");
            }
            // And with the flip first, 180° leaves only the vertical mirror.
            transform_image(&mut y, &x, h, w, c, true, -PI);
            let want = mirrored(&x, h, w, c, true, false);
            for (g, e) in y.iter().zip(&want) {
                assert!((g - e).abs() < 1e-9, "{h}x{w} flipped: {g} vs {e}");
            }
        }
    }

    #[test]
    fn positive_angles_rotate_counter_clockwise_on_screen() {
        // A bright pixel right of centre (row 2, col 4 of a 5×5) moves to above the centre
        // (row 0, col 2) under +90°, as Keras documents for positive factors.
        let mut x = vec![0.0; 25];
        x[2 * 5 + 4] = 255.0;
        let mut y = vec![0.0; 25];
        transform_image(&mut y, &x, 5, 5, 1, false, PI / 2.0);
        assert!((y[2] - 255.0).abs() < 1e-9, "{y:?}");
        assert!((y.iter().sum::<f64>() - 255.0).abs() < 1e-9);
    }

    #[test]
    fn same_seed_same_batch_different_seed_different() {
        let (n, h, w, c) = (4, 6, 5, 3);
        let x = random_f64(4, n * h * w * c, 0.0, 255.0);
        let run = |seed| {
            let mut y = vec![0.0; x.len()];
            augment_forward(
                &mut y,
                &x,
                &NhwcShape { n, h, w, c },
                &AugmentConfig::KERAS,
                seed,
            );
            y
        };
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
        // The hash is a pure function of its counters, and each counter matters.
        assert_eq!(augment_hash(5, 6, 1), augment_hash(5, 6, 1));
        let base = augment_hash(5, 6, 1);
        assert_ne!(base, augment_hash(4, 6, 1));
        assert_ne!(base, augment_hash(5, 7, 1));
        assert_ne!(base, augment_hash(5, 6, 0));
    }

    #[test]
    fn flip_fraction_and_angles_are_uniform() {
        let cfg = AugmentConfig::KERAS;
        let limit = 0.1 * TAU;
        let images = 20_000u32;
        let mut flips = 0u32;
        let mut bins = [0u32; 10];
        let (mut lo, mut hi, mut sum) = (f64::MAX, f64::MIN, 0.0);
        // Several seeds, as the trainer uses one per step.
        for seed in 0..4u32 {
            for i in 0..images / 4 {
                let (flip, angle) = image_transform(&cfg, seed, i);
                flips += flip as u32;
                assert!(angle >= -limit && angle < limit, "{angle}");
                lo = lo.min(angle);
                hi = hi.max(angle);
                sum += angle;
                bins[((angle + limit) / (2.0 * limit) * 10.0) as usize] += 1;
            }
        }
        // Binomial(20000, 0.5): σ ≈ 71, so ±400 is over 5σ.
        assert!((flips as i64 - 10_000).abs() < 400, "flips {flips}");
        // Each of 10 bins expects 2000 (σ ≈ 42).
        for b in bins {
            assert!((b as i64 - 2000).abs() < 250, "bins {bins:?}");
        }
        assert!(
            lo < -0.99 * limit && hi > 0.99 * limit,
            "range [{lo}, {hi}]"
        );
        assert!((sum / images as f64).abs() < 0.02 * limit);
        // Flip and angle of one image are independent streams: flipped images still see both
        // signs of angle in equal measure.
        let mut pos_flipped = 0u32;
        let mut flipped = 0u32;
        for i in 0..images {
            let (flip, angle) = image_transform(&cfg, 9, i);
            if flip {
                flipped += 1;
                pos_flipped += (angle > 0.0) as u32;
            }
        }
        assert!((pos_flipped as f64 / flipped as f64 - 0.5).abs() < 0.03);
    }
}
