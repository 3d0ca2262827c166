//! Photometric augmentation reference: Keras' `RandomContrast(factor)` then
//! `RandomBrightness(factor)`, both with `value_range=(0, 255)`, applied in place to a batch the
//! geometric augmentation ([`crate::cpu::augment`]) has already written. shaders/augment_color.wgsl
//! computes the same numbers, with the same per-image random draws bit for bit.
//!
//! What is matched, and where it comes from (Keras 3,
//! `keras/src/layers/preprocessing/image_preprocessing/random_{contrast,brightness}.py` and their
//! base layer's `_set_factor`; the semantics, not the code):
//! - Both layers draw their random value per image (a `[N, 1, 1, 1]` tensor): one contrast factor
//!   and one brightness delta per image, shared by all its channels.
//! - `RandomContrast`: for each image and channel, the mean over H×W (`mean` over the height axis,
//!   then the width axis); each value becomes `(x − mean)·f + mean`, then the result is clipped to
//!   `value_range`. `f` is uniform in `[1 − lower, 1 + upper]`; a single float factor means
//!   `lower = upper = factor` as the layer's documentation says (and tf.keras 2 did), so
//!   `f ∈ [1 − factor, 1 + factor]`, factor in `[0, 1]`. (Keras 3's code, through
//!   `_set_factor` with bounds (0, 1), actually sets `lower = max(−factor, 0) = 0` for a single
//!   float, i.e. `f ∈ [1, 1 + factor]`, contradicting its own docstring; we follow the
//!   documented, symmetric range, which also lowers contrast.)
//! - `RandomBrightness`: a single float factor `b` (Keras accepts `[−1, 1]`, and takes `|b|`)
//!   gives a delta uniform in `[−|b|, |b|]`, scaled by the value range's width (255), added to
//!   every value of the image, then clipped to `value_range`.
//! - Order: contrast first (clip), then brightness (clip): a Keras model listing `RandomContrast`
//!   before `RandomBrightness`. The contrast mean is taken over the geometric op's output.
//!
//! Random numbers: [`crate::cpu::augment::augment_uniform`] with streams [`STREAM_CONTRAST`] and
//! [`STREAM_BRIGHTNESS`], so the draws do not depend on which other augmentations are on.

use crate::cpu::augment::{AugmentConfig, augment_uniform};
use crate::shapes::NhwcShape;

/// Random stream of the contrast factor (after the geometric op's streams).
pub const STREAM_CONTRAST: u32 = 8;
/// Random stream of the brightness delta.
pub const STREAM_BRIGHTNESS: u32 = 9;
/// Keras' default `value_range` of both layers: the input batch is 0..255, before `Rescaling`.
pub const VALUE_RANGE: (f64, f64) = (0.0, 255.0);

/// Whether `cfg` asks for a photometric pass (contrast or brightness); without one the trainer
/// plans no colour op at all.
pub fn color_on(cfg: &AugmentConfig) -> bool {
    cfg.contrast > 0.0 || cfg.brightness != 0.0
}

/// Image `image`'s contrast factor (None when contrast is off) and brightness delta in value
/// units (None when brightness is off), drawn from `(seed, image)`.
pub fn color_transform(cfg: &AugmentConfig, seed: u32, image: u32) -> (Option<f64>, Option<f64>) {
    let factor = (cfg.contrast > 0.0).then(|| {
        let k = cfg.contrast as f64;
        let u = augment_uniform(seed, image, STREAM_CONTRAST);
        (1.0 - k) + 2.0 * k * u
    });
    let delta = (cfg.brightness != 0.0).then(|| {
        let b = cfg.brightness.abs() as f64;
        let u = augment_uniform(seed, image, STREAM_BRIGHTNESS);
        (-b + 2.0 * b * u) * (VALUE_RANGE.1 - VALUE_RANGE.0)
    });
    (factor, delta)
}

/// The per-channel means over H×W of one image. x: [H, W, C]; returns [C].
pub fn channel_means(x: &[f64], c: usize) -> Vec<f64> {
    let pixels = x.len() / c;
    let mut m = vec![0.0; c];
    for px in x.chunks_exact(c) {
        for (mc, v) in m.iter_mut().zip(px) {
            *mc += v;
        }
    }
    m.iter().map(|s| s / pixels as f64).collect()
}

/// One image in place: contrast by `factor` about each channel's mean (then clip), then
/// `delta` added (then clip), each step only when given. y: [H, W, C].
pub fn adjust_image(y: &mut [f64], c: usize, factor: Option<f64>, delta: Option<f64>) {
    let (lo, hi) = VALUE_RANGE;
    let means = factor.map(|_| channel_means(y, c));
    for px in y.chunks_exact_mut(c) {
        for (ch, v) in px.iter_mut().enumerate() {
            if let (Some(f), Some(m)) = (factor, &means) {
                *v = ((*v - m[ch]) * f + m[ch]).clamp(lo, hi);
            }
            if let Some(d) = delta {
                *v = (*v + d).clamp(lo, hi);
            }
        }
    }
}

/// Contrast then brightness, per image with image `i`'s draws from `(seed, i)` (see
/// [`color_transform`]), in place. y: [N, H, W, C] as in `s`.
pub fn augment_color_forward(y: &mut [f64], s: &NhwcShape, cfg: &AugmentConfig, seed: u32) {
    let NhwcShape { n, h, w, c } = *s;
    let len = h * w * c;
    assert_eq!(y.len(), n * len);
    for (i, img) in y.chunks_exact_mut(len).enumerate() {
        let (factor, delta) = color_transform(cfg, seed, i as u32);
        adjust_image(img, c, factor, delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::random_f64;

    fn cfg(contrast: f32, brightness: f32) -> AugmentConfig {
        AugmentConfig {
            contrast,
            brightness,
            ..AugmentConfig::NONE
        }
    }

    #[test]
    fn factor_one_and_delta_zero_are_identities() {
        let (h, w, c) = (5, 3, 3);
        let x = random_f64(1, h * w * c, 0.0, 255.0);
        let mut y = x.clone();
        adjust_image(&mut y, c, Some(1.0), Some(0.0));
        for (a, b) in y.iter().zip(&x) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // Neither on: the batch is untouched (and the trainer plans no op).
        let mut y = x.clone();
        augment_color_forward(&mut y, &NhwcShape { n: 1, h, w, c }, &cfg(0.0, 0.0), 3);
        assert_eq!(y, x);
        assert!(!color_on(&AugmentConfig::KERAS));
        assert!(color_on(&cfg(0.2, 0.0)) && color_on(&cfg(0.0, 0.2)));
    }

    #[test]
    fn hand_computed_two_by_two_image() {
        // Two channels. Channel 0: 10, 20, 30, 40 (mean 25); channel 1: 0, 0, 200, 255
        // (mean 113.75).
        let x = vec![10.0, 0.0, 20.0, 0.0, 30.0, 200.0, 40.0, 255.0];
        let mut y = x.clone();
        // f = 2: channel 0 → −5, 15, 35, 55 → clip → 0, 15, 35, 55; channel 1 →
        // −113.75, −113.75, 286.25, 396.25 → 0, 0, 255, 255.
        adjust_image(&mut y, 2, Some(2.0), None);
        assert_eq!(y, vec![0.0, 0.0, 15.0, 0.0, 35.0, 255.0, 55.0, 255.0]);
        // f = 0.5: channel 0 → 17.5, 22.5, 27.5, 32.5; channel 1 → 56.875, 56.875, 156.875,
        // 184.375. Then +100: channel 1's last value clips to 255.
        let mut y = x.clone();
        adjust_image(&mut y, 2, Some(0.5), Some(100.0));
        let want = [117.5, 156.875, 122.5, 156.875, 127.5, 255.0, 132.5, 255.0];
        for (g, w) in y.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{y:?}");
        }
        // The brightness step adds to the contrast step's clipped values: channel 1's 286.25
        // was clipped to 255 first, so −10 gives 245 (unclipped, 276.25 would clip to 255).
        let mut y = x.clone();
        adjust_image(&mut y, 2, Some(2.0), Some(-10.0));
        assert_eq!(y, vec![0.0, 0.0, 5.0, 0.0, 25.0, 245.0, 45.0, 245.0]);
    }

    #[test]
    fn brightness_clips_to_the_value_range() {
        let x = vec![0.0, 100.0, 250.0, 255.0];
        let mut y = x.clone();
        adjust_image(&mut y, 1, None, Some(10.0));
        assert_eq!(y, vec![10.0, 110.0, 255.0, 255.0]);
        let mut y = x.clone();
        adjust_image(&mut y, 1, None, Some(-120.0));
        assert_eq!(y, vec![0.0, 0.0, 130.0, 135.0]);
    }

    #[test]
    fn the_means_are_per_image_and_per_channel() {
        // Image 1's channel 0 is constant: any contrast factor leaves it as is, whatever the
        // other image and channel hold.
        let (n, h, w, c) = (2, 3, 4, 2);
        let mut x = random_f64(2, n * h * w * c, 0.0, 255.0);
        for p in 0..h * w {
            x[h * w * c + p * c] = 77.0;
        }
        let mut y = x.clone();
        augment_color_forward(&mut y, &NhwcShape { n, h, w, c }, &cfg(0.9, 0.0), 5);
        for p in 0..h * w {
            assert!((y[h * w * c + p * c] - 77.0).abs() < 1e-9);
        }
        assert_ne!(y[..h * w * c], x[..h * w * c]);
    }

    #[test]
    fn draws_are_per_image_uniform_in_keras_ranges() {
        let c = cfg(0.3, 0.2);
        let images = 20_000u32;
        let (mut fmin, mut fmax, mut fsum) = (f64::MAX, f64::MIN, 0.0);
        let (mut dmin, mut dmax, mut dsum) = (f64::MAX, f64::MIN, 0.0);
        for i in 0..images {
            let (f, d) = color_transform(&c, 17, i);
            let (f, d) = (f.unwrap(), d.unwrap());
            assert!((0.7..1.3).contains(&f), "{f}");
            assert!((-51.0..51.0).contains(&d), "{d}");
            (fmin, fmax, fsum) = (fmin.min(f), fmax.max(f), fsum + f);
            (dmin, dmax, dsum) = (dmin.min(d), dmax.max(d), dsum + d);
        }
        assert!(fmin < 0.71 && fmax > 1.29, "[{fmin}, {fmax}]");
        assert!(dmin < -50.0 && dmax > 50.0, "[{dmin}, {dmax}]");
        assert!((fsum / images as f64 - 1.0).abs() < 0.01);
        assert!((dsum / images as f64).abs() < 1.0);
        // Different images draw differently; the two draws of one image are independent streams.
        assert_ne!(color_transform(&c, 17, 0), color_transform(&c, 17, 1));
        let f_only = color_transform(&cfg(0.3, 0.0), 17, 4);
        assert_eq!(f_only.0, color_transform(&c, 17, 4).0);
        assert_eq!(f_only.1, None);
    }
}
