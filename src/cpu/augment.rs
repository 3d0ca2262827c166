//! Data augmentation reference: Keras' `RandomCrop`, `RandomFlip("horizontal")`,
//! `RandomRotation`, `RandomZoom` and `RandomTranslation` (bilinear, with Keras' four fill modes),
//! with per-image random numbers from a counter-based hash that shaders/augment.wgsl computes bit
//! for bit the same way.
//!
//! The order is fixed, whatever the order of `--augment`'s list: crop, flip, rotate, zoom,
//! translate (as a Keras `Sequential` of those layers in that order).
//!
//! What is matched, and where it comes from (the semantics, not the code):
//! - The rotation matrix of tf.keras 2.x `get_rotation_matrix` (and Keras 3's
//!   `RandomRotation.get_random_transformation`, same formula): the output pixel `(x, y)`
//!   samples the input at `(cos·x − sin·y + x_off, sin·x + cos·y + y_off)` with
//!   `x_off = ((W−1) − (cos·(W−1) − sin·(H−1)))/2` and
//!   `y_off = ((H−1) − (sin·(W−1) + cos·(H−1)))/2`, i.e. a rotation about `((W−1)/2, (H−1)/2)`;
//!   the angle is uniform in `[−factor·2π, +factor·2π)`.
//! - Keras' zoom matrix (`RandomZoom._get_zoom_matrix`): output `(x, y)` samples
//!   `(zx·x + (W−1)/2·(1 − zx), zy·y + (H−1)/2·(1 − zy))`, a scaling about the centre; the zoom
//!   is uniform in `[1 − F, 1 + F)` for `RandomZoom(F)` (a single float F means the range
//!   `[−F, F]`), so z > 1 samples a larger region (zooms *out*, Keras' positive values) and z < 1
//!   zooms in. With `width_factor=None` (the only form `--zoom F` gives) the width's zoom is the
//!   height's: the aspect ratio is kept.
//! - Keras' translation matrix (`RandomTranslation._get_translation_matrix`): output `(x, y)`
//!   samples `(x − dx, y − dy)` with `dx = W·u_x`, `dy = H·u_y`, u uniform in `[−F, F)` for
//!   `RandomTranslation(F, F)`: positive dx moves the picture right, positive dy down.
//! - TensorFlow's `ImageProjectiveTransformV3` kernel (tensorflow/core/kernels/image/image_ops.h):
//!   `MapCoordinate<FILL_REFLECT>` maps each input coordinate into `[0, len−1]` (see
//!   [`reflect_coord`]) and `FILL_NEAREST` clamps it, then `bilinear_interpolation` reads `floor`
//!   and `floor + 1`; a neighbour outside the image reads the fill value, which after those two
//!   maps only ever happens with weight 0, so clamping the neighbour index is the same thing.
//!   `constant` leaves the coordinate alone and every neighbour outside the image reads
//!   `fill_value` (`k k k k | a b c d | k k k k`).
//! - `wrap` (`a b c d | a b c d | a b c d`) is the periodic extension Keras documents (and its
//!   JAX/NumPy backends compute: the neighbour indices taken modulo the length, so the pixel
//!   between the last column and the first blends the two). TensorFlow's kernel differs there:
//!   it clamps within the last half pixel and divides by `len − 1` when shifting by periods,
//!   which misplaces coordinates more than one period out; gpucnn does not copy that.
//! - RandomFlip("horizontal") flips an image when its uniform draw `u < 0.5`; the flip happens
//!   before the rotation, so the rotation samples the mirrored image.
//! - RandomCrop(height, width) in training cuts a window at integer offsets uniform in
//!   `[0, H_in − height]` × `[0, W_in − width]` (Keras: `int(uniform(0, diff + 1))`). Keras 3
//!   draws one offset per call, i.e. per batch when it is called on a batch; gpucnn draws one per
//!   image (what Keras does when the layer is mapped over single images in a `tf.data`
//!   pipeline). The other transforms, and their fill, then see only the window, as in Keras.
//!
//! Where the single pass differs from Keras' chain of layers: Keras resamples (bilinear) and
//! fills after *each* layer; gpucnn composes crop, flip, rotation, zoom and translation into one
//! inverse map per image, applies the fill mode once (to the composed coordinate) and samples
//! bilinearly once. So there is no repeated bilinear blur, and a region that one layer fills and
//! a later layer moves back into view shows the fill of the composed map (e.g. reflect of the
//! rotated-and-zoomed coordinate) rather than the first layer's filled pixels. Each transform
//! alone is exactly the Keras layer's.

use std::f64::consts::TAU;

pub use crate::shapes::NhwcShape;

/// How points outside the image are filled (Keras' `fill_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FillMode {
    /// `d c b a | a b c d | d c b a`: reflection about the outer edge of the border pixel (the
    /// default of Keras' RandomRotation, RandomZoom and RandomTranslation).
    #[default]
    Reflect,
    /// `a b c d | a b c d | a b c d`: the opposite edge.
    Wrap,
    /// `a a a a | a b c d | d d d d`: the nearest border pixel.
    Nearest,
    /// `k k k k | a b c d | k k k k`: the constant `fill_value`.
    Constant,
}

impl FillMode {
    /// The mode's number in the kernel's `Params::fill_mode`.
    pub fn code(self) -> u32 {
        match self {
            FillMode::Reflect => 0,
            FillMode::Wrap => 1,
            FillMode::Nearest => 2,
            FillMode::Constant => 3,
        }
    }

    /// Keras' name of the mode (`--fill-mode`'s value).
    pub fn name(self) -> &'static str {
        match self {
            FillMode::Reflect => "reflect",
            FillMode::Wrap => "wrap",
            FillMode::Nearest => "nearest",
            FillMode::Constant => "constant",
        }
    }

    /// The mode Keras names `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        [
            FillMode::Reflect,
            FillMode::Wrap,
            FillMode::Nearest,
            FillMode::Constant,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
}

/// Which augmentations run and how far. Shared by the CPU reference and the kernel
/// (`kernels::augment`), so a test can never configure the two differently.
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
    /// Keras `RandomZoom(F)`: height and width zoomed by the same factor, uniform in
    /// `[1 − F, 1 + F)` (above 1 zooms out). None: no zoom.
    pub zoom: Option<f32>,
    /// Keras `RandomTranslation(F, F)`: shifts uniform in `[−F, F)` of the height and of the
    /// width. None: no translation.
    pub translate: Option<f32>,
    /// The fill of points outside the image for rotation, zoom and translation.
    pub fill_mode: FillMode,
    /// The value of `FillMode::Constant`'s points (Keras' `fill_value`).
    pub fill_value: f32,
    /// Keras `RandomCrop(height, width)`: the output is a random `(height, width)` window of the
    /// input, cut before the other transforms. None: the output has the input's size.
    pub crop: Option<Crop>,
    /// Keras `RandomContrast(contrast)`: per image, a factor uniform in
    /// `[1 − contrast, 1 + contrast]` about each channel's mean, clipped to 0..255; 0 is off.
    /// Applied after the geometric op by `kernels::augment_color` (see `cpu::augment_color`).
    pub contrast: f32,
    /// Keras `RandomBrightness(brightness, value_range=(0, 255))`: per image, a delta uniform
    /// in `[−brightness, brightness]·255` added, clipped to 0..255; 0 is off.
    pub brightness: f32,
}

/// Keras `RandomCrop(height, width)` in training, of images of `from` = (height, width): the
/// sizes the op goes between, so that a plan (the trainer's schedule) can size its input from
/// the configuration alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    /// The window's (and the output's) height.
    pub height: usize,
    /// The window's width.
    pub width: usize,
    /// The input images' (height, width); at least the window's.
    pub from: (usize, usize),
}

impl AugmentConfig {
    /// The Keras example: RandomFlip("horizontal") + RandomRotation(0.1).
    pub const KERAS: Self = Self {
        flip: true,
        rotate: true,
        factor: 0.1,
        zoom: None,
        translate: None,
        fill_mode: FillMode::Reflect,
        fill_value: 0.0,
        crop: None,
        contrast: 0.0,
        brightness: 0.0,
    };
    /// No augmentation: the output is a copy of the input.
    pub const NONE: Self = Self {
        flip: false,
        rotate: false,
        ..Self::KERAS
    };

    /// Whether the output is resampled (rotation, zoom or translation), rather than a copy of
    /// (a window of, a mirror of) the input.
    pub fn resamples(&self) -> bool {
        self.rotate || self.zoom.is_some() || self.translate.is_some()
    }

    /// The output's (height, width) for an input of `(h, w)`: the crop's size, or the input's.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        match self.crop {
            Some(c) => {
                assert_eq!(
                    c.from,
                    (h, w),
                    "augment: crop configured for another input size"
                );
                (c.height, c.width)
            }
            None => (h, w),
        }
    }
}

/// Random stream of the flip decision (the `stream` argument of [`augment_hash`]).
pub const STREAM_FLIP: u32 = 0;
/// Random stream of the rotation angle.
pub const STREAM_ANGLE: u32 = 1;
/// Random stream of the height's zoom (and of the width's, which follows it).
pub const STREAM_ZOOM_H: u32 = 2;
/// Reserved for a separate width zoom (Keras' `width_factor`); unused while the width follows
/// the height.
pub const STREAM_ZOOM_W: u32 = 3;
/// Random stream of the vertical translation.
pub const STREAM_SHIFT_Y: u32 = 4;
/// Random stream of the horizontal translation.
pub const STREAM_SHIFT_X: u32 = 5;
/// Random stream of the crop's row offset.
pub const STREAM_CROP_Y: u32 = 6;
/// Random stream of the crop's column offset.
pub const STREAM_CROP_X: u32 = 7;

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

/// An integer uniform in `[0, count)` (`count` ≤ 65536) from the top 16 bits of
/// [`augment_hash`]: `⌊u16·count / 2¹⁶⌋`, Keras' `int(uniform(0, count))` in integer
/// arithmetic, so that the kernel's u32 math gives the same integer.
pub fn augment_index(seed: u32, image: u32, stream: u32, count: usize) -> usize {
    assert!((1..=65536).contains(&count), "augment_index: count {count}");
    ((augment_hash(seed, image, stream) >> 16) as usize * count) >> 16
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

/// Everything random about one image: the transforms [`warp_image`] applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Mirror the (cropped) image horizontally.
    pub flip: bool,
    /// Rotation angle in radians (None: no rotation).
    pub angle: Option<f64>,
    /// (zx, zy): the zoom of the width and of the height (None: no zoom).
    pub zoom: Option<(f64, f64)>,
    /// (dx, dy) in pixels (None: no translation).
    pub shift: Option<(f64, f64)>,
    /// (row, column) of the crop window's top-left pixel in the input.
    pub offset: (usize, usize),
}

/// Image `image`'s [`Geometry`] under `cfg` for an input of `(src_h, src_w)`; each random
/// number comes from its own stream, whatever else is enabled.
pub fn image_geometry(
    cfg: &AugmentConfig,
    seed: u32,
    image: u32,
    src_h: usize,
    src_w: usize,
) -> Geometry {
    let (flip, angle) = image_transform(cfg, seed, image);
    let (h, w) = cfg.output_size(src_h, src_w);
    let sym = |f: f32, stream| f as f64 * (2.0 * augment_uniform(seed, image, stream) - 1.0);
    Geometry {
        flip,
        angle: cfg.rotate.then_some(angle),
        zoom: cfg.zoom.map(|f| {
            let z = 1.0 + sym(f, STREAM_ZOOM_H);
            (z, z)
        }),
        shift: cfg.translate.map(|f| {
            (
                sym(f, STREAM_SHIFT_X) * w as f64,
                sym(f, STREAM_SHIFT_Y) * h as f64,
            )
        }),
        offset: match cfg.crop {
            Some(_) => (
                augment_index(seed, image, STREAM_CROP_Y, src_h - h + 1),
                augment_index(seed, image, STREAM_CROP_X, src_w - w + 1),
            ),
            None => (0, 0),
        },
    }
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

/// The two bilinear taps along one axis of length `len` for the continuous source coordinate
/// `coord` under `mode`: the neighbour indices (None: outside the image, reads the fill value)
/// and their weights.
pub fn taps(coord: f64, len: usize, mode: FillMode) -> ([Option<usize>; 2], [f64; 2]) {
    let clamped = |c: f64| {
        let f = c.floor();
        let i = f as usize;
        ([Some(i), Some((i + 1).min(len - 1))], [f + 1.0 - c, c - f])
    };
    match mode {
        FillMode::Reflect => clamped(reflect_coord(coord, len)),
        FillMode::Nearest => clamped(coord.clamp(0.0, (len - 1) as f64)),
        FillMode::Wrap => {
            let f = coord.floor();
            let i = (f as i64).rem_euclid(len as i64) as usize;
            ([Some(i), Some((i + 1) % len)], [f + 1.0 - coord, coord - f])
        }
        FillMode::Constant => {
            let f = coord.floor();
            let inside = |k: f64| (k >= 0.0 && k < len as f64).then_some(k as usize);
            ([inside(f), inside(f + 1.0)], [f + 1.0 - coord, coord - f])
        }
    }
}

/// The input coordinates `(x, y)`, in the (cropped) image, that output pixel `(ox, oy)`
/// samples: translation, then zoom, then rotation inverted, each only when `g` has it (so
/// rotation alone is today's arithmetic exactly). h, w: the output (= cropped) size.
pub fn source_coord(g: &Geometry, h: usize, w: usize, ox: usize, oy: usize) -> (f64, f64) {
    let (wm, hm) = ((w - 1) as f64, (h - 1) as f64);
    let (mut fx, mut fy) = (ox as f64, oy as f64);
    if let Some((dx, dy)) = g.shift {
        fx -= dx;
        fy -= dy;
    }
    if let Some((zx, zy)) = g.zoom {
        fx = zx * fx + wm / 2.0 * (1.0 - zx);
        fy = zy * fy + hm / 2.0 * (1.0 - zy);
    }
    if let Some(angle) = g.angle {
        let (sin, cos) = angle.sin_cos();
        let x_off = (wm - (cos * wm - sin * hm)) / 2.0;
        let y_off = (hm - (sin * wm + cos * hm)) / 2.0;
        (cos * fx - sin * fy + x_off, sin * fx + cos * fy + y_off)
    } else {
        (fx, fy)
    }
}

/// One image: crop a (h, w) window at `g.offset` of the (src_h, src_w) input, flip it when
/// `g.flip`, then rotate, zoom and translate it as `g` says, in one bilinear pass with `cfg`'s
/// fill. y: [h, w, C]; x: [src_h, src_w, C].
#[allow(clippy::too_many_arguments)]
pub fn warp_image(
    y: &mut [f64],
    x: &[f64],
    (src_h, src_w): (usize, usize),
    (h, w): (usize, usize),
    c: usize,
    g: &Geometry,
    cfg: &AugmentConfig,
) {
    let (oy0, ox0) = g.offset;
    assert!(
        oy0 + h <= src_h && ox0 + w <= src_w,
        "crop window outside the input"
    );
    // Pixel (i, j) of the flipped window: column j is column w−1−j of the window.
    let at = |i: usize, j: usize, ch: usize| {
        let j = if g.flip { w - 1 - j } else { j };
        x[((oy0 + i) * src_w + ox0 + j) * c + ch]
    };
    let resamples = g.angle.is_some() || g.zoom.is_some() || g.shift.is_some();
    let fill = cfg.fill_value as f64;
    for oy in 0..h {
        for ox in 0..w {
            let out = (oy * w + ox) * c;
            if !resamples {
                for ch in 0..c {
                    y[out + ch] = at(oy, ox, ch);
                }
                continue;
            }
            let (xs, ys) = source_coord(g, h, w, ox, oy);
            let ([x0, x1], [wx0, wx1]) = taps(xs, w, cfg.fill_mode);
            let ([y0, y1], [wy0, wy1]) = taps(ys, h, cfg.fill_mode);
            let read = |i: Option<usize>, j: Option<usize>, ch| match (i, j) {
                (Some(i), Some(j)) => at(i, j, ch),
                _ => fill,
            };
            for ch in 0..c {
                let top = wx0 * read(y0, x0, ch) + wx1 * read(y0, x1, ch);
                let bottom = wx0 * read(y1, x0, ch) + wx1 * read(y1, x1, ch);
                y[out + ch] = wy0 * top + wy1 * bottom;
            }
        }
    }
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
    let g = Geometry {
        flip,
        angle: Some(angle),
        zoom: None,
        shift: None,
        offset: (0, 0),
    };
    warp_image(y, x, (h, w), (h, w), c, &g, &AugmentConfig::KERAS);
}

/// y = translate(zoom(rotate(flip(crop(x))))) per image, as `cfg` enables, with image `i`'s
/// random numbers drawn from `(seed, i)` (see [`image_geometry`]). x: [N, H, W, C] as in `s`;
/// y: [N, h, w, C] with (h, w) = `cfg.output_size(H, W)`.
pub fn augment_forward(y: &mut [f64], x: &[f64], s: &NhwcShape, cfg: &AugmentConfig, seed: u32) {
    let NhwcShape { n, h, w, c } = *s;
    let (oh, ow) = cfg.output_size(h, w);
    assert!(
        oh <= h && ow <= w,
        "crop {oh}x{ow} larger than the input {h}x{w}"
    );
    let (len, out_len) = (h * w * c, oh * ow * c);
    assert_eq!(x.len(), n * len);
    assert_eq!(y.len(), n * out_len);
    for i in 0..n {
        let g = image_geometry(cfg, seed, i as u32, h, w);
        warp_image(
            &mut y[i * out_len..(i + 1) * out_len],
            &x[i * len..(i + 1) * len],
            (h, w),
            (oh, ow),
            c,
            &g,
            cfg,
        );
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
            rotate: false,
            ..AugmentConfig::KERAS
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

    fn geometry() -> Geometry {
        Geometry {
            flip: false,
            angle: None,
            zoom: None,
            shift: None,
            offset: (0, 0),
        }
    }

    fn cfg_fill(fill_mode: FillMode, fill_value: f32) -> AugmentConfig {
        AugmentConfig {
            fill_mode,
            fill_value,
            ..AugmentConfig::NONE
        }
    }

    /// One row of `w` values 1..=w warped by `g` under `mode` (fill value 7).
    fn row(w: usize, g: &Geometry, mode: FillMode) -> Vec<f64> {
        let x: Vec<f64> = (1..=w).map(|v| v as f64).collect();
        let mut y = vec![0.0; w];
        warp_image(&mut y, &x, (1, w), (1, w), 1, g, &cfg_fill(mode, 7.0));
        y
    }

    #[test]
    fn zoom_and_translation_by_zero_are_the_identity() {
        let (n, h, w, c) = (3, 5, 7, 3);
        let x = random_f64(5, n * h * w * c, 0.0, 255.0);
        for mode in [
            FillMode::Reflect,
            FillMode::Wrap,
            FillMode::Nearest,
            FillMode::Constant,
        ] {
            let cfg = AugmentConfig {
                zoom: Some(0.0),
                translate: Some(0.0),
                ..cfg_fill(mode, 99.0)
            };
            let mut y = vec![0.0; x.len()];
            augment_forward(&mut y, &x, &NhwcShape { n, h, w, c }, &cfg, 4);
            assert_eq!(y, x, "{mode:?}");
        }
    }

    #[test]
    fn translation_by_whole_pixels_shifts_exactly_and_fills_by_mode() {
        // Values 1..5; a shift right by one pixel reads column x − 1.
        let right = Geometry {
            shift: Some((1.0, 0.0)),
            ..geometry()
        };
        assert_eq!(
            row(5, &right, FillMode::Constant),
            [7.0, 1.0, 2.0, 3.0, 4.0]
        );
        assert_eq!(row(5, &right, FillMode::Wrap), [5.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(row(5, &right, FillMode::Nearest), [1.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(row(5, &right, FillMode::Reflect), [1.0, 1.0, 2.0, 3.0, 4.0]);
        // Three pixels left: columns 3, 4, then 5, 6, 7 outside.
        let left = Geometry {
            shift: Some((-3.0, 0.0)),
            ..geometry()
        };
        assert_eq!(row(5, &left, FillMode::Constant), [4.0, 5.0, 7.0, 7.0, 7.0]);
        assert_eq!(row(5, &left, FillMode::Wrap), [4.0, 5.0, 1.0, 2.0, 3.0]);
        assert_eq!(row(5, &left, FillMode::Nearest), [4.0, 5.0, 5.0, 5.0, 5.0]);
        assert_eq!(row(5, &left, FillMode::Reflect), [4.0, 5.0, 5.0, 4.0, 3.0]);
        // Vertically: a 3×1 column shifted down by one.
        let x = [1.0, 2.0, 3.0];
        let mut y = [0.0; 3];
        let down = Geometry {
            shift: Some((0.0, 1.0)),
            ..geometry()
        };
        warp_image(
            &mut y,
            &x,
            (3, 1),
            (3, 1),
            1,
            &down,
            &cfg_fill(FillMode::Constant, 7.0),
        );
        assert_eq!(y, [7.0, 1.0, 2.0]);
    }

    #[test]
    fn fills_between_pixels() {
        // Half a pixel right: column −0.5 blends, by mode, the fill with or the copy of an edge.
        let half = Geometry {
            shift: Some((0.5, 0.0)),
            ..geometry()
        };
        assert_eq!(row(4, &half, FillMode::Constant)[0], (7.0 + 1.0) / 2.0);
        // Wrap blends the last column and the first (a periodic signal).
        assert_eq!(row(4, &half, FillMode::Wrap)[0], (4.0 + 1.0) / 2.0);
        // Nearest and TF's reflect clamp within the half pixel beyond the border centre.
        assert_eq!(row(4, &half, FillMode::Nearest)[0], 1.0);
        assert_eq!(row(4, &half, FillMode::Reflect)[0], 1.0);
        assert_eq!(row(4, &half, FillMode::Reflect)[1], 1.5);
        // Wrap several periods out: −8.5 ≡ −0.5 (mod 4).
        assert_eq!(
            taps(-8.5, 4, FillMode::Wrap),
            ([Some(3), Some(0)], [0.5, 0.5])
        );
        assert_eq!(
            taps(9.25, 4, FillMode::Wrap),
            ([Some(1), Some(2)], [0.75, 0.25])
        );
        assert_eq!(
            taps(3.5, 4, FillMode::Constant),
            ([Some(3), None], [0.5, 0.5])
        );
        assert_eq!(
            taps(-1.0, 4, FillMode::Constant),
            ([None, Some(0)], [1.0, 0.0])
        );
        // Nearest far out: column 0 with all the weight.
        assert_eq!(
            taps(-6.0, 4, FillMode::Nearest),
            ([Some(0), Some(1)], [1.0, 0.0])
        );
        assert_eq!(
            taps(9.0, 4, FillMode::Nearest),
            ([Some(3), Some(3)], [1.0, 0.0])
        );
    }

    #[test]
    fn zoom_above_one_zooms_out_about_the_centre() {
        // zx = 2 on 5 columns: output x samples 2x − 2 (about column 2): −2, 0, 2, 4, 6.
        let out = Geometry {
            zoom: Some((2.0, 2.0)),
            ..geometry()
        };
        assert_eq!(row(5, &out, FillMode::Constant), [7.0, 1.0, 3.0, 5.0, 7.0]);
        // zx = 0.5 zooms in: 0.5x + 1 → 1, 1.5, 2, 2.5, 3 (columns, 0-based).
        let zoom_in = Geometry {
            zoom: Some((0.5, 0.5)),
            ..geometry()
        };
        assert_eq!(
            row(5, &zoom_in, FillMode::Constant),
            [2.0, 2.5, 3.0, 3.5, 4.0]
        );
        // RandomZoom(F) draws z uniform in [1 − F, 1 + F), the same for both axes.
        let cfg = AugmentConfig {
            zoom: Some(0.3),
            ..AugmentConfig::NONE
        };
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for i in 0..4000 {
            let (zx, zy) = image_geometry(&cfg, 3, i, 8, 8).zoom.unwrap();
            assert_eq!(zx, zy);
            assert!((0.7..1.3).contains(&zx), "{zx}");
            (lo, hi) = (lo.min(zx), hi.max(zx));
        }
        assert!(lo < 0.71 && hi > 1.29, "[{lo}, {hi}]");
    }

    #[test]
    fn translation_is_a_fraction_of_the_size() {
        let cfg = AugmentConfig {
            translate: Some(0.25),
            ..AugmentConfig::NONE
        };
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for i in 0..4000 {
            let (dx, dy) = image_geometry(&cfg, 8, i, 12, 40).shift.unwrap();
            xs.push(dx);
            ys.push(dy);
        }
        let range = |v: &[f64]| {
            v.iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)))
        };
        // ±25% of 40 columns and of 12 rows.
        let (lo, hi) = range(&xs);
        assert!(
            (-10.0..-9.9).contains(&lo) && hi < 10.0 && hi > 9.9,
            "x [{lo}, {hi}]"
        );
        let (lo, hi) = range(&ys);
        assert!(
            (-3.0..-2.99).contains(&lo) && hi < 3.0 && hi > 2.99,
            "y [{lo}, {hi}]"
        );
    }

    #[test]
    fn crop_cuts_a_uniform_window_before_the_flip() {
        let (src_h, src_w, c) = (5, 6, 2);
        let x = random_f64(6, src_h * src_w * c, 0.0, 255.0);
        let cfg = AugmentConfig {
            flip: true,
            crop: Some(Crop {
                height: 3,
                width: 4,
                from: (src_h, src_w),
            }),
            ..AugmentConfig::NONE
        };
        let mut seen = [[0u32; 3]; 3];
        for image in 0..600u32 {
            let g = image_geometry(&cfg, 2, image, src_h, src_w);
            let (r, col) = g.offset;
            seen[r][col] += 1;
            let mut y = vec![0.0; 3 * 4 * c];
            warp_image(&mut y, &x, (src_h, src_w), (3, 4), c, &g, &cfg);
            for i in 0..3 {
                for j in 0..4 {
                    let sj = if g.flip { 3 - j } else { j };
                    for ch in 0..c {
                        assert_eq!(
                            y[(i * 4 + j) * c + ch],
                            x[((r + i) * src_w + col + sj) * c + ch]
                        );
                    }
                }
            }
        }
        // Offsets uniform over the 3×3 positions: 600/9 ≈ 67 each (σ ≈ 8).
        for row in seen {
            for k in row {
                assert!((30..110).contains(&k), "{seen:?}");
            }
        }
    }

    #[test]
    fn streams_do_not_depend_on_what_else_is_enabled() {
        let all = AugmentConfig {
            zoom: Some(0.2),
            translate: Some(0.1),
            crop: Some(Crop {
                height: 6,
                width: 6,
                from: (9, 8),
            }),
            ..AugmentConfig::KERAS
        };
        for image in 0..50 {
            let g = image_geometry(&all, 5, image, 9, 8);
            let alone = |cfg: AugmentConfig| image_geometry(&cfg, 5, image, 9, 8);
            let zoom = alone(AugmentConfig {
                zoom: all.zoom,
                ..AugmentConfig::NONE
            });
            assert_eq!(g.zoom, zoom.zoom);
            let shift = alone(AugmentConfig {
                translate: all.translate,
                crop: all.crop,
                ..AugmentConfig::NONE
            });
            assert_eq!(g.shift, shift.shift);
            assert_eq!(g.offset, shift.offset);
            let (flip, angle) = image_transform(&AugmentConfig::KERAS, 5, image);
            assert_eq!((g.flip, g.angle), (flip, Some(angle)));
        }
    }

    #[test]
    fn augment_index_is_uniform_and_in_range() {
        let mut bins = [0u32; 7];
        for image in 0..7000 {
            bins[augment_index(1, image, STREAM_CROP_X, 7)] += 1;
        }
        for b in bins {
            assert!((b as i64 - 1000).abs() < 150, "{bins:?}");
        }
        assert_eq!(augment_index(1, 2, 3, 1), 0);
    }

    #[test]
    fn fill_mode_names_round_trip() {
        for m in [
            FillMode::Reflect,
            FillMode::Wrap,
            FillMode::Nearest,
            FillMode::Constant,
        ] {
            assert_eq!(FillMode::parse(m.name()), Some(m));
        }
        assert_eq!(FillMode::parse("mirror"), None);
    }
}
