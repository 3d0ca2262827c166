// depthwise_conv2d.wgsl — K×K depthwise convolution, stride 1, depth multiplier 1, no bias,
// same/valid padding, NHWC f32, weights in Keras order [K, K, C, 1].
//
// Entry points
//   depthwise_conv2d_forward         y[n,oh,ow,c] = Σ_{kh,kw} x[n, oh+kh−pt, ow+kw−pl, c]·w[kh,kw,c].
//                                    Writes y.
//   depthwise_conv2d_backward_input  dx[n,ih,iw,c] = Σ_{kh,kw} dy[n, ih+pt−kh, iw+pl−kw, c]·w[kh,kw,c]
//                                    (the forward with the kernel flipped). Writes dx.
//   depthwise_conv2d_backward_weight stage 1 of dw: split s sums x·dy over output rows
//                                    [s·rows_per_split, (s+1)·rows_per_split) of the N·OH rows.
//                                    Writes scratch [splits, K·K·C].
//   depthwise_conv2d_backward_weight_reduce  stage 2: dw = Σ over splits. Writes dw.
//   depthwise_conv2d_backward_input_relu     backward_input of the layer's input r = max(x, 0):
//                                    dx as above, then 0 where x ≤ 0 (the ReLU's backward).
//                                    Writes dx.
//
// A ReLU before the convolution is folded in (the graph plans this where the ReLU feeds only
// the convolution): with Params.relu = 1, forward and backward_weight read max(x, 0) where they
// load x, and backward_input_relu masks dx by x > 0 where it writes; the ReLU's output is
// never stored.
//
// Bindings (group 0)
//   slot | name   | access     | shape, layout                               | used by
//   0    | out    | read_write | y [N,OH,OW,C] / dx [N,H,W,C] /               | forward / backward_input /
//        |        |            | scratch [splits,K,K,C] / dw [K,K,C,1]        | backward_weight / reduce
//   1    | src    | read       | x [N,H,W,C] / dy [N,OH,OW,C] / x (saved) /   | forward / backward_input /
//        |        |            | scratch                                      | backward_weight / reduce
//   2    | wt     | read       | w [K,K,C,1]                                  | forward, backward_input
//   3    | grad   | read       | dy [N,OH,OW,C] / x [N,H,W,C] (the ReLU's     | backward_weight /
//        |        |            | input, for its mask)                         | backward_input_relu
//   4    | params | uniform    | Params                                       | all
//
// Params: n, h, w, c (input sizes); oh, ow (output sizes); pad_top, pad_left (padding before);
//   c_tiles = ceil(C/WG); w_tiles = ceil(width/TW) of the written tensor; splits,
//   rows_per_split (backward_weight); groups (workgroups in use; reduce: ceil(K·K·C/WG));
//   relu (1: x is read as max(x, 0) by forward and backward_weight).
// Workgroup: WG (override, default 64) lanes along C (coalesced loads, one channel per lane);
//   K (override, default 3) is the kernel size, so every tap loop has a constant trip count and
//   the windows below stay in registers. forward/backward_input: an invocation writes TW = 16
//   consecutive pixels of one row and reuses each loaded input across the K taps that need it
//   (K·(TW+K−1) loads for K·K·TW multiply-adds). backward_weight: an invocation walks its rows
//   with a K×K sliding window, 1 + K loads per K·K multiply-adds, K·K accumulators.
// Grid: kernels::grid_1d(groups); linear group g = wid.x + wid.y·nwg.x, g ≥ groups returns;
//   forward/backward_input: c tile = g % c_tiles, w tile = (g / c_tiles) % w_tiles,
//   row (n·height + r) = (g / c_tiles) / w_tiles; backward_weight: c tile = g % c_tiles,
//   split = g / c_tiles; reduce: element = g·WG + lane.
// Mirrors: cpu::depthwise_conv2d::depthwise_conv2d_forward, depthwise_conv2d_backward_input,
//   depthwise_conv2d_backward_weight (the last two entry points together).

override WG: u32 = 64u;
override K: u32 = 3u;
const TW: u32 = 16u;
// Largest supported K; sizes the register windows (unused entries are optimised away).
const KMAX: u32 = 7u;

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    oh: u32,
    ow: u32,
    pad_top: u32,
    pad_left: u32,
    c_tiles: u32,
    w_tiles: u32,
    splits: u32,
    rows_per_split: u32,
    groups: u32,
    relu: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// TW outputs of one row: Σ_j Σ_kw src[img + r0 + j, c0 + t + kw, ch] · w[tap(j, kw), ch], where
// src has src_h × src_w pixels per image, `img` is the image's first src row, and tap(j, kw) =
// (j, kw) or, flipped, (K−1−j, K−1−kw). Source pixels outside the image read as zero; with
// `relu`, src is read as max(src, 0).
fn row_tile(img: u32, r0: i32, c0: i32, src_h: u32, src_w: u32, ch: u32, flip: bool, relu: bool) -> array<f32, TW> {
    let c = params.c;
    var acc: array<f32, TW>;
    for (var j = 0u; j < K; j++) {
        let sr = r0 + i32(j);
        if (sr < 0 || sr >= i32(src_h)) {
            continue;
        }
        let row_base = (img + u32(sr)) * src_w;
        var xs: array<f32, TW + KMAX - 1u>;
        for (var t = 0u; t < TW + K - 1u; t++) {
            let sc = c0 + i32(t);
            if (sc >= 0 && sc < i32(src_w)) {
                let v = src[(row_base + u32(sc)) * c + ch];
                xs[t] = select(v, max(v, 0.0), relu);
            }
        }
        for (var kw = 0u; kw < K; kw++) {
            let tap = select(j * K + kw, (K - 1u - j) * K + (K - 1u - kw), flip);
            let wv = wt[tap * c + ch];
            for (var t = 0u; t < TW; t++) {
                acc[t] = fma(xs[t + kw], wv, acc[t]);
            }
        }
    }
    return acc;
}

@compute @workgroup_size(WG)
fn depthwise_conv2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    let ch = (g % params.c_tiles) * WG + lid;
    if (g >= params.groups || ch >= params.c) {
        return;
    }
    let rest = g / params.c_tiles;
    let ow0 = (rest % params.w_tiles) * TW;
    let row = rest / params.w_tiles;
    let oh = row % params.oh;
    let img = (row / params.oh) * params.h;
    let acc = row_tile(
        img,
        i32(oh) - i32(params.pad_top),
        i32(ow0) - i32(params.pad_left),
        params.h,
        params.w,
        ch,
        false,
        params.relu != 0u,
    );
    for (var t = 0u; t < TW; t++) {
        if (ow0 + t < params.ow) {
            out[(row * params.ow + ow0 + t) * params.c + ch] = acc[t];
        }
    }
}

// The dx pixels one lane writes: `pixels` (0: none) consecutive pixels of one row from
// element `first`, channel stride C.
struct DxTile {
    first: u32,
    pixels: u32,
    acc: array<f32, TW>,
}

// Group g's lane `lid`: TW pixels of one dx row (the forward with the kernel flipped).
fn backward_input_tile(g: u32, lid: u32) -> DxTile {
    var tile: DxTile;
    let ch = (g % params.c_tiles) * WG + lid;
    if (g >= params.groups || ch >= params.c) {
        return tile;
    }
    let rest = g / params.c_tiles;
    let iw0 = (rest % params.w_tiles) * TW;
    let row = rest / params.w_tiles;
    let ih = row % params.h;
    let img = (row / params.h) * params.oh;
    // dy row ih + pt − kh with kh = K−1−j, column iw + pl − kw with kw = K−1−t'.
    tile.acc = row_tile(
        img,
        i32(ih) + i32(params.pad_top) - i32(K - 1u),
        i32(iw0) + i32(params.pad_left) - i32(K - 1u),
        params.oh,
        params.ow,
        ch,
        true,
        false,
    );
    tile.first = (row * params.w + iw0) * params.c + ch;
    tile.pixels = min(TW, params.w - min(iw0, params.w));
    return tile;
}

@compute @workgroup_size(WG)
fn depthwise_conv2d_backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = backward_input_tile(wid.x + wid.y * nwg.x, lid);
    // A constant trip count keeps acc in registers (a variable one indexes it in memory).
    for (var t = 0u; t < TW; t++) {
        if (t < tile.pixels) {
            out[tile.first + t * params.c] = tile.acc[t];
        }
    }
}

@compute @workgroup_size(WG)
fn depthwise_conv2d_backward_input_relu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = backward_input_tile(wid.x + wid.y * nwg.x, lid);
    for (var t = 0u; t < TW; t++) {
        if (t < tile.pixels) {
            let i = tile.first + t * params.c;
            out[i] = select(tile.acc[t], 0.0, grad[i] <= 0.0);
        }
    }
}

// x[img + ih, iw, ch] (max(x, 0) with Params.relu), zero outside the image (ih is checked by
// the caller).
fn load_x(row_base: u32, iw: i32, ch: u32) -> f32 {
    if (iw < 0 || iw >= i32(params.w)) {
        return 0.0;
    }
    let v = src[(row_base + u32(iw)) * params.c + ch];
    return select(v, max(v, 0.0), params.relu != 0u);
}

@compute @workgroup_size(WG)
fn depthwise_conv2d_backward_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    let ch = (g % params.c_tiles) * WG + lid;
    if (g >= params.groups || ch >= params.c) {
        return;
    }
    let split = g / params.c_tiles;
    let r0 = split * params.rows_per_split;
    let r1 = min(r0 + params.rows_per_split, params.n * params.oh);
    let pl = i32(params.pad_left);

    var acc: array<f32, KMAX * KMAX>;
    for (var row = r0; row < r1; row++) {
        let oh = row % params.oh;
        let img = (row / params.oh) * params.h;
        // Per kernel row: whether it lands inside the image, and its first x offset.
        var inside: array<bool, KMAX>;
        var row_base: array<u32, KMAX>;
        for (var kh = 0u; kh < K; kh++) {
            let ih = i32(oh + kh) - i32(params.pad_top);
            inside[kh] = ih >= 0 && ih < i32(params.h);
            row_base[kh] = (img + u32(max(ih, 0))) * params.w;
        }
        // win[kh][kw] = x[ih(kh), ow + kw − pl]; preload the columns of ow = 0 except the last.
        var win: array<array<f32, KMAX>, KMAX>;
        for (var kh = 0u; kh < K; kh++) {
            if (inside[kh]) {
                for (var kw = 0u; kw + 1u < K; kw++) {
                    win[kh][kw + 1u] = load_x(row_base[kh], i32(kw) - pl, ch);
                }
            }
        }
        for (var ow = 0u; ow < params.ow; ow++) {
            let d = grad[(row * params.ow + ow) * params.c + ch];
            for (var kh = 0u; kh < K; kh++) {
                for (var kw = 0u; kw + 1u < K; kw++) {
                    win[kh][kw] = win[kh][kw + 1u];
                }
                if (inside[kh]) {
                    win[kh][K - 1u] = load_x(row_base[kh], i32(ow + K - 1u) - pl, ch);
                }
                for (var kw = 0u; kw < K; kw++) {
                    acc[kh * K + kw] = fma(win[kh][kw], d, acc[kh * K + kw]);
                }
            }
        }
    }
    let dst = split * K * K * params.c;
    for (var tap = 0u; tap < K * K; tap++) {
        out[dst + tap * params.c + ch] = acc[tap];
    }
}

@compute @workgroup_size(WG)
fn depthwise_conv2d_backward_weight_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let len = K * K * params.c;
    if (i >= len) {
        return;
    }
    var sum = 0.0;
    for (var sp = 0u; sp < params.splits; sp++) {
        sum += src[sp * len + i];
    }
    out[i] = sum;
}
