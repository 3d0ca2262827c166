// augment_color.wgsl — training-time photometric augmentation: Keras RandomContrast(contrast)
// then RandomBrightness(brightness), value_range (0, 255), applied in place to the batch the
// geometric augmentation (augment.wgsl) wrote, seeded per image by the same counter-based hash.
//
// Entry points
//   channel_mean   means[n·C + ch] = mean over H×W of y[n, :, :, ch] (one workgroup per
//                  (image, channel)); only dispatched when contrast is on.
//   color_apply    y = clip(clip((y − mean)·f + mean)·[contrast] + d·[brightness]) in place,
//                  with f, d drawn per image; reads means only when contrast is on.
//
// Bindings (group 0)
//   slot | name   | access     | shape                  | used by
//   0    | y      | read_write | [N, H, W, C] f32, NHWC | channel_mean (read), color_apply (in
//        |        |            |                        |   place: read then written)
//   1    | means  | read_write | [N·C] f32              | channel_mean (written), color_apply
//        |        |            |                        |   (read); the trainer's shared scratch
//   2    | seed   | read       | [1] u32                | color_apply (the geometric op's per-step
//        |        |            |                        |   seed buffer, rewritten per step)
//   3    | params | uniform    | Params                 | both
//
// Params: n, h, w, c (u32, sizes); contrast (f32, Keras factor in [0, 1], 0 = off); brightness
//   (f32, Keras factor, |brightness| ≤ 1, 0 = off); _pad0, _pad1.
// Workgroup: channel_mean: MEAN_WG = 256 invocations (a power of two, for the tree), each
//   summing the pixels p ≡ lid (mod 256) of its (image, channel), then a workgroup-memory tree
//   (1 KiB). color_apply: WG (override, default 256) invocations, one per element.
// Grid: channel_mean: kernels::grid_1d(N·C); color_apply: grid_1d(ceil(N·H·W·C / WG)); linear
//   group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::augment_color::augment_color_forward (random numbers:
//   cpu::augment::augment_uniform with cpu::augment_color::STREAM_CONTRAST = 8 and
//   STREAM_BRIGHTNESS = 9).
//
// Random numbers. u(stream) = (hash(seed, n, stream) >> 8)·2^−24, the hash of augment.wgsl (same
// constants, u32 arithmetic only, bit-identical to the CPU). Stream 8: contrast factor f =
// (1 − contrast) + 2·contrast·u, uniform in [1 − contrast, 1 + contrast). Stream 9: brightness
// delta d = (−b + 2·b·u)·255 with b = |brightness|. Streams 0..7 belong to the geometric op; none
// depends on which augmentations are on.
//
// Semantics matched (Keras 3 random_contrast.py / random_brightness.py and the base layer's
// factor parsing; from the sources, not copied):
// - One contrast factor and one brightness delta per image (shape [N, 1, 1, 1]), shared by its
//   channels. The mean is per image and channel, over H and W.
// - Contrast: (x − mean)·f + mean, clipped to value_range. A single float factor means
//   [1 − factor, 1 + factor] as Keras documents (Keras 3's code gives [1, 1 + factor] for a
//   single float, its lower bound clamped to 0 by the (0, 1) factor bounds; see
//   cpu::augment_color).
// - Brightness: delta uniform in [−|b|, |b|] times the value range's width (255), added, then
//   clipped to value_range.
// - Contrast (with its clip) comes before brightness (with its clip), as a model listing
//   RandomContrast before RandomBrightness.

override WG: u32 = 256u;
const MEAN_WG: u32 = 256u;
const LO: f32 = 0.0;
const HI: f32 = 255.0;
const STREAM_CONTRAST: u32 = 8u;
const STREAM_BRIGHTNESS: u32 = 9u;

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    contrast: f32,
    brightness: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read_write> means: array<f32>;
@group(0) @binding(2) var<storage, read> seed: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, MEAN_WG>;

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

@compute @workgroup_size(MEAN_WG)
fn channel_mean(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The group index is the same for the whole workgroup, so this return is uniform.
    let g = wid.x + wid.y * nwg.x;
    if (g >= params.n * params.c) {
        return;
    }
    let c = params.c;
    let hw = params.h * params.w;
    let image = g / c;
    let ch = g - image * c;
    let base = image * hw;
    var acc = 0.0;
    for (var p = lid; p < hw; p += MEAN_WG) {
        acc += y[(base + p) * c + ch];
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = MEAN_WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        means[g] = partial[0] / f32(hw);
    }
}

@compute @workgroup_size(WG)
fn color_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid;
    let c = params.c;
    let len = params.h * params.w * c;
    if (e >= params.n * len) {
        return;
    }
    let image = e / len;
    let ch = e % c;
    let s = seed[0];
    var v = y[e];
    if (params.contrast > 0.0) {
        let k = params.contrast;
        let f = (1.0 - k) + 2.0 * k * uniform01(s, image, STREAM_CONTRAST);
        let m = means[image * c + ch];
        v = clamp((v - m) * f + m, LO, HI);
    }
    if (params.brightness != 0.0) {
        let b = abs(params.brightness);
        let d = (-b + 2.0 * b * uniform01(s, image, STREAM_BRIGHTNESS)) * (HI - LO);
        v = clamp(v + d, LO, HI);
    }
    y[e] = v;
}
