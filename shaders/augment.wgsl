// augment.wgsl — training-time data augmentation with Keras semantics, in one pass: RandomCrop,
// RandomFlip("horizontal"), RandomRotation(factor), RandomZoom(F) and RandomTranslation(F, F),
// bilinear, with Keras' fill modes (reflect, wrap, nearest, constant), seeded per image by a
// counter-based hash.
//
// Entry points
//   augment_forward       y[n] = translate(zoom(rotate(flip(crop(x[n]))))) for every image n,
//                         each as `flags` enables; writes y (does not accumulate). No backward:
//                         augmentation is applied to the input batch.
//
// Bindings (group 0)
//   slot | name   | access     | shape                          | used by
//   0    | y      | read_write | [N, H, W, C] f32, NHWC         | forward (output; H×W is the
//        |        |            |                                |   crop's size with CROP)
//   1    | x      | read       | [N, SRC_H, SRC_W, C] f32, NHWC | forward (input images, any
//        |        |            |                                |   value range)
//   2    | seed   | read       | [1] u32                        | forward (per-step seed; the
//        |        |            |                                |   trainer rewrites it with
//        |        |            |                                |   queue.write_buffer, so no
//        |        |            |                                |   bind group is ever rebuilt)
//   3    | params | uniform    | Params                         | forward
//
// Params: n, h, w, c (u32, the output's sizes); factor (f32, rotation range as a fraction of a
//   turn: angles uniform in [−factor·2π, +factor·2π)); flags (u32: bit 0 FLIP enables the random
//   horizontal flip, bit 1 ROTATE the rotation, bit 2 ZOOM the zoom, bit 3 TRANSLATE the
//   translation, bit 4 CROP the random crop; 0 copies x); src_h, src_w (u32, the input's height
//   and width: h, w unless CROP); zoom (f32, F of RandomZoom(F)); translate (f32, F of
//   RandomTranslation(F, F)); fill_mode (u32: 0 reflect, 1 wrap, 2 nearest, 3 constant);
//   fill_value (f32, constant mode's value).
// Workgroup: WG (override, default 64) invocations, one per output pixel (n, oy, ox); each
//   computes its source coordinates and bilinear weights once and loops over the C channels.
//   (Measured on lavapipe at 8×180×180×3: one invocation per element was no faster; the four
//   neighbour loads dominate, the hash and sin/cos cost about a tenth of the pass.)
// Grid: kernels::grid_1d(ceil(N·H·W / WG)); linear group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::augment::augment_forward (random numbers: cpu::augment::augment_hash,
//   augment_uniform, augment_index; the per-image map: cpu::augment::source_coord, taps).
//
// Random numbers. u(stream) = (hash(seed, n, stream) >> 8)·2^−24 with hash = three rounds of the
// "lowbias32" integer finaliser (u32 arithmetic only, bit-identical to the CPU reference).
// Stream 0: image n is flipped when u < 0.5 (tf.image.random_flip_left_right). Stream 1: angle =
// factor·2π·(2u − 1), uniform in [−factor·2π, factor·2π) as Keras' rng.uniform(min, max).
// Stream 2: zoom z = 1 + F·(2u − 1) of both axes (stream 3 is reserved for a separate width
// zoom). Streams 4, 5: shifts dy = F·(2u − 1)·H, dx = F·(2u − 1)·W. Streams 6, 7: crop row and
// column offsets ⌊(hash >> 16)·count / 2^16⌋ with count = SRC − size + 1 (integer arithmetic,
// so CPU and GPU agree exactly). Streams 8 and up belong to other passes. A stream does not
// depend on the flags, so each augmentation draws the same numbers whatever else is enabled.
//
// Semantics matched (from the sources, not copied):
// - Rotation matrix of tf.keras get_rotation_matrix / Keras 3 RandomRotation: output (x, y)
//   samples input (cos·x − sin·y + x_off, sin·x + cos·y + y_off), x_off = ((W−1) − (cos·(W−1) −
//   sin·(H−1)))/2, y_off = ((H−1) − (sin·(W−1) + cos·(H−1)))/2: a rotation about ((W−1)/2,
//   (H−1)/2); positive angles turn the picture counter-clockwise on screen.
// - Zoom matrix of Keras' RandomZoom: output (x, y) samples (z·x + (W−1)/2·(1 − z), z·y +
//   (H−1)/2·(1 − z)); z > 1 zooms out. Translation matrix of RandomTranslation: output (x, y)
//   samples (x − dx, y − dy).
// - TensorFlow ImageProjectiveTransformV3 (core/kernels/image/image_ops.h): MapCoordinate
//   <FILL_REFLECT> shifts a coordinate by whole periods 2·len (trunc), reflects about −0.5 or
//   len − 0.5 (c → −c − 1, c → 2·len − c − 1), then clamps to [0, len − 1]; FILL_NEAREST
//   clamps; bilinear_interpolation weights (floor + 1 − c) and (c − floor), a neighbour outside
//   the image reading fill_value. After reflect or nearest that neighbour (floor + 1 = len)
//   always has weight 0, so clamping its index to len − 1 gives the same number. Constant mode
//   keeps the coordinate and reads fill_value for each neighbour outside. Wrap takes the
//   neighbour indices modulo len (Keras' documented a b c d | a b c d, as its JAX/NumPy
//   backends; TF's kernel clamps near the seam instead).
// - The crop window is cut first and the flip precedes the rotation (RandomFlip is the first
//   layer after the crop), so neighbour column j of the flipped window is read from column
//   W − 1 − j of the window, at column offset + W − 1 − j of x.
//
// One pass where Keras chains layers: the composed map is filled once and sampled bilinearly
// once, so there is no repeated blur and the fill applies to the composed coordinate (see
// cpu::augment). Each transform alone is the Keras layer's. With ROTATE alone (and FLIP) the
// arithmetic is exactly the earlier rotate-only kernel's: zoom and translation enter only when
// their flags are set (checks.rs pins this bit for bit).

override WG: u32 = 64u;

const FLIP: u32 = 1u;
const ROTATE: u32 = 2u;
const ZOOM: u32 = 4u;
const TRANSLATE: u32 = 8u;
const CROP: u32 = 16u;
const RESAMPLE: u32 = 14u; // ROTATE | ZOOM | TRANSLATE

const FILL_REFLECT: u32 = 0u;
const FILL_WRAP: u32 = 1u;
const FILL_NEAREST: u32 = 2u;
const TAU: f32 = 6.2831855;

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    factor: f32,
    flags: u32,
    src_h: u32,
    src_w: u32,
    zoom: f32,
    translate: f32,
    fill_mode: u32,
    fill_value: f32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> seed: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

fn mix32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// Uniform in [0, 1) from (seed, image, stream); mirrors cpu::augment::augment_uniform.
fn uniform01(s: u32, image: u32, stream: u32) -> f32 {
    var h = mix32(s ^ 0x9e3779b9u);
    h = mix32(h ^ image);
    h = mix32(h ^ (stream + 0x85ebca6bu));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

// TensorFlow's reflect fill of a continuous coordinate into [0, len − 1].
fn reflect_coord(coord: f32, len: u32) -> f32 {
    if (len <= 1u) {
        return 0.0;
    }
    let l = f32(len);
    let period = 2.0 * l;
    var c = coord;
    if (c < 0.0) {
        c += period * trunc(-c / period);
        c = select(-c - 1.0, c + period, c < -l);
    } else if (c > l - 1.0) {
        c -= period * trunc(c / period);
        c = select(c, period - c - 1.0, c >= l);
    }
    return clamp(c, 0.0, l - 1.0);
}

// Integer uniform in [0, count) (count ≤ 65536); mirrors cpu::augment::augment_index.
fn index_draw(s: u32, image: u32, stream: u32, count: u32) -> u32 {
    var h = mix32(s ^ 0x9e3779b9u);
    h = mix32(h ^ image);
    h = mix32(h ^ (stream + 0x85ebca6bu));
    return ((h >> 16u) * count) >> 16u;
}

// The two bilinear taps along an axis of length len: neighbour indices (−1: outside, reads
// fill_value) and their weights; mirrors cpu::augment::taps.
struct Taps {
    i0: i32,
    i1: i32,
    w0: f32,
    w1: f32,
}

fn taps(coord: f32, len: u32) -> Taps {
    let mode = params.fill_mode;
    if (mode == FILL_REFLECT || mode == FILL_NEAREST) {
        var cc: f32;
        if (mode == FILL_REFLECT) {
            cc = reflect_coord(coord, len);
        } else {
            cc = clamp(coord, 0.0, f32(len - 1u));
        }
        let f = floor(cc);
        let i = u32(f);
        return Taps(i32(i), i32(min(i + 1u, len - 1u)), f + 1.0 - cc, cc - f);
    }
    let f = floor(coord);
    let fi = i32(f);
    let l = i32(len);
    if (mode == FILL_WRAP) {
        // fi mod l in [0, l), with `%` applied to non-negative operands only: GLSL (wgpu's GL
        // backend) leaves `%` of a negative operand undefined. For fi < 0, −fi − 1 ≥ 0 and
        // fi mod l = l − 1 − ((−fi − 1) % l).
        let r = select(fi, -fi - 1, fi < 0) % l;
        let i = select(r, l - 1 - r, fi < 0);
        return Taps(i, (i + 1) % l, f + 1.0 - coord, coord - f);
    }
    let i1 = fi + 1;
    return Taps(
        select(-1, fi, fi >= 0 && fi < l),
        select(-1, i1, i1 >= 0 && i1 < l),
        f + 1.0 - coord,
        coord - f,
    );
}

@compute @workgroup_size(WG)
fn augment_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = (wid.x + wid.y * nwg.x) * WG + lid;
    let hw = params.h * params.w;
    if (p >= params.n * hw) {
        return;
    }
    let w = params.w;
    let h = params.h;
    let c = params.c;
    let sw = params.src_w;
    let image = p / hw;
    let rem = p - image * hw;
    let oy = rem / w;
    let ox = rem - oy * w;
    let s = seed[0];
    let flags = params.flags;
    let flip = (flags & FLIP) != 0u && uniform01(s, image, 0u) < 0.5;
    var row0 = 0u;
    var col0 = 0u;
    if ((flags & CROP) != 0u) {
        row0 = index_draw(s, image, 6u, params.src_h - h + 1u);
        col0 = index_draw(s, image, 7u, sw - w + 1u);
    }
    // Index of the window's row 0, column col0 of image `image` in x (in pixels).
    let img_base = image * params.src_h * sw + row0 * sw + col0;
    let out_base = p * c;

    if ((flags & RESAMPLE) == 0u) {
        // Crop, flip or identity: an exact copy of one pixel.
        let src = (img_base + oy * sw + select(ox, w - 1u - ox, flip)) * c;
        for (var ch = 0u; ch < c; ch++) {
            y[out_base + ch] = x[src + ch];
        }
        return;
    }

    let wm = f32(w - 1u);
    let hm = f32(h - 1u);
    var fx = f32(ox);
    var fy = f32(oy);
    // Inverse map, last layer first: translation, zoom, rotation (cpu::augment::source_coord).
    if ((flags & TRANSLATE) != 0u) {
        fx -= params.translate * (2.0 * uniform01(s, image, 5u) - 1.0) * f32(w);
        fy -= params.translate * (2.0 * uniform01(s, image, 4u) - 1.0) * f32(h);
    }
    if ((flags & ZOOM) != 0u) {
        let z = 1.0 + params.zoom * (2.0 * uniform01(s, image, 2u) - 1.0);
        fx = z * fx + wm * 0.5 * (1.0 - z);
        fy = z * fy + hm * 0.5 * (1.0 - z);
    }
    var xc = fx;
    var yc = fy;
    if ((flags & ROTATE) != 0u) {
        let angle = params.factor * TAU * (2.0 * uniform01(s, image, 1u) - 1.0);
        let cs = cos(angle);
        let sn = sin(angle);
        let x_off = (wm - (cs * wm - sn * hm)) * 0.5;
        let y_off = (hm - (sn * wm + cs * hm)) * 0.5;
        xc = cs * fx - sn * fy + x_off;
        yc = sn * fx + cs * fy + y_off;
    }
    let tx = taps(xc, w);
    let ty = taps(yc, h);
    let ok00 = ty.i0 >= 0 && tx.i0 >= 0;
    let ok01 = ty.i0 >= 0 && tx.i1 >= 0;
    let ok10 = ty.i1 >= 0 && tx.i0 >= 0;
    let ok11 = ty.i1 >= 0 && tx.i1 >= 0;
    // Outside neighbours read index 0 (any valid one) and are replaced by fill_value.
    let y0 = u32(max(ty.i0, 0));
    let y1 = u32(max(ty.i1, 0));
    let x0 = u32(max(tx.i0, 0));
    let x1 = u32(max(tx.i1, 0));
    // Columns of the flipped window map to mirrored columns of x.
    let c0 = select(x0, w - 1u - x0, flip);
    let c1 = select(x1, w - 1u - x1, flip);
    let i00 = (img_base + y0 * sw + c0) * c;
    let i01 = (img_base + y0 * sw + c1) * c;
    let i10 = (img_base + y1 * sw + c0) * c;
    let i11 = (img_base + y1 * sw + c1) * c;
    let fill = params.fill_value;
    for (var ch = 0u; ch < c; ch++) {
        let v00 = select(fill, x[i00 + ch], ok00);
        let v01 = select(fill, x[i01 + ch], ok01);
        let v10 = select(fill, x[i10 + ch], ok10);
        let v11 = select(fill, x[i11 + ch], ok11);
        let top = tx.w0 * v00 + tx.w1 * v01;
        let bottom = tx.w0 * v10 + tx.w1 * v11;
        y[out_base + ch] = ty.w0 * top + ty.w1 * bottom;
    }
}
