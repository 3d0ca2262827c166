// FROZEN COPY of shaders/augment.wgsl as it was before zoom, translation, crop and fill modes
// (RandomFlip + RandomRotation, reflect). Not used for training: checks.rs runs it next to
// today's kernel to pin that the default augmentation (flip, rotate 0.1, reflect) gives the same
// bits as before, so the default recipe's metrics.csv does not change. Do not edit.
//
// augment.wgsl — training-time data augmentation: Keras RandomFlip("horizontal") followed by
// RandomRotation(factor) (bilinear, fill mode "reflect"), seeded per image by a counter-based hash.
//
// Entry points
//   augment_forward       y[n] = rotate(flip(x[n])) for every image n; writes y (does not
//                         accumulate). No backward: augmentation is applied to the input batch.
//
// Bindings (group 0)
//   slot | name   | access     | shape                  | used by
//   0    | y      | read_write | [N, H, W, C] f32, NHWC | forward (output)
//   1    | x      | read       | [N, H, W, C] f32, NHWC | forward (input images, any value range)
//   2    | seed   | read       | [1] u32                | forward (per-step seed; the trainer
//        |        |            |                        |   rewrites it with queue.write_buffer,
//        |        |            |                        |   so no bind group is ever rebuilt)
//   3    | params | uniform    | Params                 | forward
//
// Params: n, h, w, c (u32, sizes); factor (f32, rotation range as a fraction of a turn: angles
//   uniform in [−factor·2π, +factor·2π)); flags (u32: bit 0 FLIP enables the random horizontal
//   flip, bit 1 ROTATE the random rotation; 0 copies x); _pad0, _pad1.
// Workgroup: WG (override, default 64) invocations, one per output pixel (n, oy, ox); each
//   computes its source coordinates and bilinear weights once and loops over the C channels.
//   (Measured on lavapipe at 8×180×180×3: one invocation per element was no faster; the four
//   neighbour loads dominate, the hash and sin/cos cost about a tenth of the pass.)
// Grid: kernels::grid_1d(ceil(N·H·W / WG)); linear group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::augment::augment_forward (random numbers: cpu::augment::augment_hash).
//
// Random numbers. u(stream) = (hash(seed, n, stream) >> 8)·2^−24 with hash = three rounds of the
// "lowbias32" integer finaliser (u32 arithmetic only, bit-identical to the CPU reference).
// Stream 0: image n is flipped when u < 0.5 (tf.image.random_flip_left_right). Stream 1: angle =
// factor·2π·(2u − 1), uniform in [−factor·2π, factor·2π) as Keras' rng.uniform(min, max).
// The streams do not depend on the flags, so --augment flip and --augment rotate draw the same
// decisions as the combined mode.
//
// Semantics matched (from the sources, not copied):
// - Rotation matrix of tf.keras get_rotation_matrix / Keras 3 RandomRotation: output (x, y)
//   samples input (cos·x − sin·y + x_off, sin·x + cos·y + y_off), x_off = ((W−1) − (cos·(W−1) −
//   sin·(H−1)))/2, y_off = ((H−1) − (sin·(W−1) + cos·(H−1)))/2: a rotation about ((W−1)/2,
//   (H−1)/2); positive angles turn the picture counter-clockwise on screen.
// - TensorFlow ImageProjectiveTransformV3 (core/kernels/image/image_ops.h): MapCoordinate
//   <FILL_REFLECT> shifts a coordinate by whole periods 2·len (trunc), reflects about −0.5 or
//   len − 0.5 (c → −c − 1, c → 2·len − c − 1), then clamps to [0, len − 1];
//   bilinear_interpolation weights (floor + 1 − c) and (c − floor). Its out-of-image neighbour
//   (floor + 1 = len) reads fill value 0 but always with weight 0, so clamping that index to
//   len − 1 gives the same number.
// - The flip precedes the rotation (RandomFlip is the first layer), so neighbour column j of the
//   flipped image is read from column W − 1 − j of x.

override WG: u32 = 64u;

const FLIP: u32 = 1u;
const ROTATE: u32 = 2u;
const TAU: f32 = 6.2831855;

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    factor: f32,
    flags: u32,
    _pad0: u32,
    _pad1: u32,
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
    let image = p / hw;
    let rem = p - image * hw;
    let oy = rem / w;
    let ox = rem - oy * w;
    let s = seed[0];
    let flip = (params.flags & FLIP) != 0u && uniform01(s, image, 0u) < 0.5;
    let img_base = image * hw;
    let out_base = p * c;

    if ((params.flags & ROTATE) == 0u) {
        // Flip or identity: an exact copy of one pixel.
        let src = (img_base + oy * w + select(ox, w - 1u - ox, flip)) * c;
        for (var ch = 0u; ch < c; ch++) {
            y[out_base + ch] = x[src + ch];
        }
        return;
    }

    let angle = params.factor * TAU * (2.0 * uniform01(s, image, 1u) - 1.0);
    let cs = cos(angle);
    let sn = sin(angle);
    let wm = f32(w - 1u);
    let hm = f32(h - 1u);
    let x_off = (wm - (cs * wm - sn * hm)) * 0.5;
    let y_off = (hm - (sn * wm + cs * hm)) * 0.5;
    let fx = f32(ox);
    let fy = f32(oy);
    let xs = reflect_coord(cs * fx - sn * fy + x_off, w);
    let ys = reflect_coord(sn * fx + cs * fy + y_off, h);

    let x0f = floor(xs);
    let y0f = floor(ys);
    let wx0 = x0f + 1.0 - xs;
    let wx1 = xs - x0f;
    let wy0 = y0f + 1.0 - ys;
    let wy1 = ys - y0f;
    let x0 = u32(x0f);
    let y0 = u32(y0f);
    let x1 = min(x0 + 1u, w - 1u);
    let y1 = min(y0 + 1u, h - 1u);
    // Columns of the flipped image map to mirrored columns of x.
    let c0 = select(x0, w - 1u - x0, flip);
    let c1 = select(x1, w - 1u - x1, flip);
    let i00 = (img_base + y0 * w + c0) * c;
    let i01 = (img_base + y0 * w + c1) * c;
    let i10 = (img_base + y1 * w + c0) * c;
    let i11 = (img_base + y1 * w + c1) * c;
    for (var ch = 0u; ch < c; ch++) {
        let top = wx0 * x[i00 + ch] + wx1 * x[i01 + ch];
        let bottom = wx0 * x[i10 + ch] + wx1 * x[i11 + ch];
        y[out_base + ch] = wy0 * top + wy1 * bottom;
    }
}
