//! Resizing as TensorFlow's `tf.image.resize` does (bilinear, half-pixel centres, no
//! antialiasing), Keras' centre crop for `crop_to_aspect_ratio`, and the loader's u8 cache
//! format.

use image::RgbImage;

use super::geometry::{ColorMode, rgb_to_gray};

/// Target size and channels of [`super::decode::load_resized`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResizeOptions {
    /// Output height in pixels.
    pub height: usize,
    /// Output width in pixels.
    pub width: usize,
    /// Centre-crop to the target aspect ratio before resizing (Keras' `crop_to_aspect_ratio`);
    /// otherwise the image is stretched.
    pub crop_to_aspect_ratio: bool,
    /// The channels of the output: RGB, or one gray channel converted from RGB before the
    /// resize (as Keras decodes with `channels=1` and then resizes).
    pub color_mode: ColorMode,
}

impl ResizeOptions {
    /// Values of one resized image: height × width × channels.
    pub fn record_len(&self) -> usize {
        self.height * self.width * self.color_mode.channels()
    }
}

/// Keras' centre crop for `crop_to_aspect_ratio`: the window `(top, left, height, width)` of an
/// `in_h`×`in_w` image with the aspect ratio of `out_h`×`out_w`.
pub fn aspect_crop(in_h: usize, in_w: usize, out_h: usize, out_w: usize) -> [usize; 4] {
    let crop_h = ((in_w * out_h) as f64 / out_w as f64) as usize;
    let crop_h = crop_h.min(in_h).max(1);
    let crop_w = ((in_h * out_w) as f64 / out_h as f64) as usize;
    let crop_w = crop_w.min(in_w).max(1);
    [(in_h - crop_h) / 2, (in_w - crop_w) / 2, crop_h, crop_w]
}

/// Where output index `i` samples along an axis: (lower, upper, weight of upper), TensorFlow's
/// `compute_interpolation_weights` with half-pixel centres, in f32 as TF computes it.
fn axis_weights(out_size: usize, in_size: usize) -> Vec<(usize, usize, f32)> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let v = (i as f32 + 0.5) * scale - 0.5;
            let f = v.floor();
            let lo = (f as i64).max(0) as usize;
            let hi = (v.ceil() as i64).min(in_size as i64 - 1).max(0) as usize;
            (lo, hi, v - f)
        })
        .collect()
}

/// Bilinear resize without antialiasing, TensorFlow's rule: output pixel (y, x) samples the input
/// at ((y + 0.5)·in_h/out_h − 0.5, (x + 0.5)·in_w/out_w − 0.5), clamped at the edges.
/// `src`: [src_h, src_w, c] u8; the window `[top, left, h, w]` of it is resized to
/// `out`: [out_h, out_w, c] f32 (0–255, not rounded).
pub fn resize_bilinear(
    out: &mut [f32],
    out_h: usize,
    out_w: usize,
    src: &[u8],
    src_w: usize,
    c: usize,
    window: [usize; 4],
) {
    let [top, left, h, w] = window;
    assert!(src.len() >= (top + h) * src_w * c && left + w <= src_w && h > 0 && w > 0);
    assert_eq!(
        out.len(),
        out_h * out_w * c,
        "out must be [out_h, out_w, c]"
    );
    let ys = axis_weights(out_h, h);
    let xs = axis_weights(out_w, w);
    let px = |y: usize, x: usize, ch: usize| src[((top + y) * src_w + left + x) * c + ch] as f32;
    for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, lx)) in xs.iter().enumerate() {
            for ch in 0..c {
                let (tl, tr) = (px(y0, x0, ch), px(y0, x1, ch));
                let (bl, br) = (px(y1, x0, ch), px(y1, x1, ch));
                let t = tl + (tr - tl) * lx;
                let b = bl + (br - bl) * lx;
                out[(oy * out_w + ox) * c + ch] = t + (b - t) * ly;
            }
        }
    }
}

/// Resizes a decoded RGB image to `opts` (cropping first when asked, converting to gray first
/// for [`ColorMode::Grayscale`]): f32 [H, W, C], 0–255, C = `opts.color_mode.channels()`.
pub fn resize_rgb8(image: &RgbImage, opts: &ResizeOptions) -> Vec<f32> {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let window = if opts.crop_to_aspect_ratio {
        aspect_crop(in_h, in_w, opts.height, opts.width)
    } else {
        [0, 0, in_h, in_w]
    };
    let gray;
    let (src, c) = match opts.color_mode {
        ColorMode::Rgb => (image.as_raw().as_slice(), 3),
        ColorMode::Grayscale => {
            gray = rgb_to_gray(image.as_raw());
            (gray.as_slice(), 1)
        }
    };
    let mut out = vec![0.0; opts.record_len()];
    resize_bilinear(&mut out, opts.height, opts.width, src, in_w, c, window);
    out
}

/// Rounds 0–255 floats to u8 (to nearest, clamped): the loader's cache format.
pub fn quantize_u8(values: &[f32], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(values) {
        *o = v.round().clamp(0.0, 255.0) as u8;
    }
}

/// Widens u8 pixels to f32 0–255 (appending to `out`).
pub fn extend_f32(out: &mut Vec<f32>, values: &[u8]) {
    out.extend(values.iter().map(|&v| v as f32));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize_1ch(src: &[u8], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
        let mut out = vec![0.0; oh * ow];
        resize_bilinear(&mut out, oh, ow, src, w, 1, [0, 0, h, w]);
        out
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-4, "index {i}: {x} vs {y} in {a:?}");
        }
    }

    #[test]
    fn upscale_by_one_and_a_half() {
        // Scale 4/6: samples at -1/6 (clamped to 0), 0.5, 7/6, 11/6, 2.5, 19/6 (clamped to 3).
        let out = resize_1ch(&[0, 10, 20, 30], 1, 4, 1, 6);
        close(&out, &[0.0, 5.0, 11.666_667, 18.333_334, 25.0, 30.0]);
    }

    #[test]
    fn downscale_by_five_thirds() {
        // Scale 5/3: samples at 1/3, 2, 11/3; no antialiasing, so only two neighbours count
        // (an antialiasing filter would average about 1.7 pixels: 0 → ~5.9, not 3.33).
        let out = resize_1ch(&[0, 10, 20, 30, 40], 1, 5, 1, 3);
        close(&out, &[3.333_333_5, 20.0, 36.666_668]);
    }

    #[test]
    fn two_dimensional_with_channels() {
        // 2×2 → 3×3 (scale 2/3): samples at -1/6 → 0, 0.5, 7/6 → 1 on both axes.
        let src: Vec<u8> = [0u8, 100, 40, 200]
            .iter()
            .flat_map(|&v| [v, 255 - v])
            .collect();
        let mut out = vec![0.0; 18];
        resize_bilinear(&mut out, 3, 3, &src, 2, 2, [0, 0, 2, 2]);
        let ch0: Vec<f32> = out.iter().step_by(2).copied().collect();
        let ch1: Vec<f32> = out.iter().skip(1).step_by(2).copied().collect();
        let want = [0.0, 50.0, 100.0, 20.0, 85.0, 150.0, 40.0, 120.0, 200.0];
        close(&ch0, &want);
        close(&ch1, &want.map(|v| 255.0 - v));
    }

    #[test]
    fn downscale_rows_and_columns_differently() {
        // 3×2 → 2×3: rows sample at 0.25 and 1.75 (scale 1.5), columns at -1/6, 0.5, 7/6.
        let src = [0u8, 30, 60, 90, 120, 150];
        let out = resize_1ch(&src, 3, 2, 2, 3);
        // Row 0.25: [15, 45]; row 1.75: [105, 135]; then columns 0, 0.5, 1.
        close(&out, &[15.0, 30.0, 45.0, 105.0, 120.0, 135.0]);
    }

    #[test]
    fn same_size_is_identity() {
        let src: Vec<u8> = (0..35).map(|v| (v * 7) as u8).collect();
        let out = resize_1ch(&src, 5, 7, 5, 7);
        close(&out, &src.iter().map(|&v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn aspect_crop_matches_keras() {
        // 100×200 to a square: the central 100×100.
        assert_eq!(aspect_crop(100, 200, 50, 50), [0, 50, 100, 100]);
        // 200×100 to 1:2 (h:w): width limits, crop height int(100·1/2) = 50.
        assert_eq!(aspect_crop(200, 100, 10, 20), [75, 0, 50, 100]);
        // Odd remainders floor the offset.
        assert_eq!(aspect_crop(7, 10, 1, 1), [0, 1, 7, 7]);
    }

    #[test]
    fn crop_then_resize_uses_only_the_window() {
        // 1×4 row, crop to 1:2 → the middle two pixels [10, 20], resized to 1×2 unchanged.
        let img = RgbImage::from_fn(4, 1, |x, _| image::Rgb([x as u8 * 10; 3]));
        let out = resize_rgb8(
            &img,
            &ResizeOptions {
                height: 1,
                width: 2,
                crop_to_aspect_ratio: true,
                color_mode: ColorMode::Rgb,
            },
        );
        close(&out, &[10.0, 10.0, 10.0, 20.0, 20.0, 20.0]);
    }

    #[test]
    fn grayscale_converts_each_pixel_then_resizes_one_channel() {
        // 2×4 colour image to 1×2 gray: each output averages a 2×2 block of luma values.
        let px = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [90, 90, 90]];
        let img = RgbImage::from_fn(4, 2, |x, _| image::Rgb(px[x as usize]));
        let opts = ResizeOptions {
            height: 1,
            width: 2,
            crop_to_aspect_ratio: false,
            color_mode: ColorMode::Grayscale,
        };
        assert_eq!(opts.record_len(), 2);
        let out = resize_rgb8(&img, &opts);
        // Luma 76, 150, 29, 90 (TF's weights): left pair (76 + 150) / 2, right (29 + 90) / 2.
        close(&out, &[113.0, 59.5]);
        let rgb = resize_rgb8(
            &img,
            &ResizeOptions {
                color_mode: ColorMode::Rgb,
                ..opts
            },
        );
        assert_eq!(rgb.len(), 6);
    }

    #[test]
    fn quantize_rounds_and_clamps() {
        let mut out = [0u8; 4];
        quantize_u8(&[0.49, 0.5, 254.6, 300.0], &mut out);
        assert_eq!(out, [0, 1, 255, 255]);
    }
}
