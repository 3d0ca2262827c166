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
//   K (override, default 3) is the kernel size, so every tap loop has a constant trip count.
//   K = 3, the model's size, takes written-out paths (row_tile3, weight_rows3) whose windows
//   and sums are named values; other sizes take the generic loops over local arrays, which
//   lavapipe keeps in memory (1.4–2× slower there). forward/backward_input: an invocation writes TW = 16
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

// Channels per lane: this file is written once for a lane of VW consecutive channels held in a
// V. As committed, VW = 1 and V = f32. kernels::depthwise_conv2d compiles a vec4 form for
// C divisible by 4 (VW = 4, V = vec4<f32>, every array<V> an array<vec4<f32>>, by rewriting
// exactly these two lines and the array types): a lane then loads 16 bytes at a time, which a
// texture mirror serves as one texel fetch instead of four.
alias V = f32;
const VW: u32 = 1u;

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

@group(0) @binding(0) var<storage, read_write> out: array<V>;
@group(0) @binding(1) var<storage, read> src: array<V>;
@group(0) @binding(2) var<storage, read> wt: array<V>;
@group(0) @binding(3) var<storage, read> grad: array<V>;
@group(0) @binding(4) var<uniform> params: Params;

// Lanes (of VW channels) per pixel: the stride of a pixel in every array<V> (of a tap in wt).
fn cv() -> u32 {
    return params.c / VW;
}

// src[row_base + s, ch] (max(·, 0) with `relu`), zero unless `ok` and 0 ≤ s ≤ last: the address
// is clamped and the value selected, so no lane branches around the load.
fn src_at(row_base: u32, s: i32, ok: bool, last: i32, ch: u32, relu: bool) -> V {
    let v = src[(row_base + u32(clamp(s, 0, last))) * cv() + ch];
    return select(V(0.0), select(v, max(v, V(0.0)), relu), ok && s >= 0 && s <= last);
}

// row_tile for K = 3 (the model's only kernel size), written out: the 18 inputs of a source row
// and the 16 sums are named values. The generic loops over a local array ran 1.4–1.5× slower on
// lavapipe, which keeps such an array in memory and reaches it lane by lane.
fn row_tile3(img: u32, r0: i32, c0: i32, src_h: u32, src_w: u32, ch: u32, flip: bool, relu: bool) -> array<V, TW> {
    let last = i32(src_w) - 1;
    var a: array<V, TW>;
    for (var j = 0u; j < 3u; j++) {
        let sr = r0 + i32(j);
        if (sr < 0 || sr >= i32(src_h)) {
            continue;
        }
        let rb = (img + u32(sr)) * src_w;
        // Taps (j, kw), or (2 − j, 2 − kw) flipped.
        let row = select(j, 2u - j, flip) * 3u;
        let w0 = wt[(row + select(0u, 2u, flip)) * cv() + ch];
        let w1 = wt[(row + 1u) * cv() + ch];
        let w2 = wt[(row + select(2u, 0u, flip)) * cv() + ch];
        let x0 = src_at(rb, c0 + 0, true, last, ch, relu);
        let x1 = src_at(rb, c0 + 1, true, last, ch, relu);
        let x2 = src_at(rb, c0 + 2, true, last, ch, relu);
        let x3 = src_at(rb, c0 + 3, true, last, ch, relu);
        let x4 = src_at(rb, c0 + 4, true, last, ch, relu);
        let x5 = src_at(rb, c0 + 5, true, last, ch, relu);
        let x6 = src_at(rb, c0 + 6, true, last, ch, relu);
        let x7 = src_at(rb, c0 + 7, true, last, ch, relu);
        let x8 = src_at(rb, c0 + 8, true, last, ch, relu);
        let x9 = src_at(rb, c0 + 9, true, last, ch, relu);
        let x10 = src_at(rb, c0 + 10, true, last, ch, relu);
        let x11 = src_at(rb, c0 + 11, true, last, ch, relu);
        let x12 = src_at(rb, c0 + 12, true, last, ch, relu);
        let x13 = src_at(rb, c0 + 13, true, last, ch, relu);
        let x14 = src_at(rb, c0 + 14, true, last, ch, relu);
        let x15 = src_at(rb, c0 + 15, true, last, ch, relu);
        let x16 = src_at(rb, c0 + 16, true, last, ch, relu);
        let x17 = src_at(rb, c0 + 17, true, last, ch, relu);
        a[0] = fma(x0, w0, fma(x1, w1, fma(x2, w2, a[0])));
        a[1] = fma(x1, w0, fma(x2, w1, fma(x3, w2, a[1])));
        a[2] = fma(x2, w0, fma(x3, w1, fma(x4, w2, a[2])));
        a[3] = fma(x3, w0, fma(x4, w1, fma(x5, w2, a[3])));
        a[4] = fma(x4, w0, fma(x5, w1, fma(x6, w2, a[4])));
        a[5] = fma(x5, w0, fma(x6, w1, fma(x7, w2, a[5])));
        a[6] = fma(x6, w0, fma(x7, w1, fma(x8, w2, a[6])));
        a[7] = fma(x7, w0, fma(x8, w1, fma(x9, w2, a[7])));
        a[8] = fma(x8, w0, fma(x9, w1, fma(x10, w2, a[8])));
        a[9] = fma(x9, w0, fma(x10, w1, fma(x11, w2, a[9])));
        a[10] = fma(x10, w0, fma(x11, w1, fma(x12, w2, a[10])));
        a[11] = fma(x11, w0, fma(x12, w1, fma(x13, w2, a[11])));
        a[12] = fma(x12, w0, fma(x13, w1, fma(x14, w2, a[12])));
        a[13] = fma(x13, w0, fma(x14, w1, fma(x15, w2, a[13])));
        a[14] = fma(x14, w0, fma(x15, w1, fma(x16, w2, a[14])));
        a[15] = fma(x15, w0, fma(x16, w1, fma(x17, w2, a[15])));
    }
    return a;
}

// TW outputs of one row: Σ_j Σ_kw src[img + r0 + j, c0 + t + kw, ch] · w[tap(j, kw), ch], where
// src has src_h × src_w pixels per image, `img` is the image's first src row, and tap(j, kw) =
// (j, kw) or, flipped, (K−1−j, K−1−kw). Source pixels outside the image read as zero; with
// `relu`, src is read as max(src, 0).
fn row_tile(img: u32, r0: i32, c0: i32, src_h: u32, src_w: u32, ch: u32, flip: bool, relu: bool) -> array<V, TW> {
    if (K == 3u) {
        return row_tile3(img, r0, c0, src_h, src_w, ch, flip, relu);
    }
    let c = cv();
    var acc: array<V, TW>;
    for (var j = 0u; j < K; j++) {
        let sr = r0 + i32(j);
        if (sr < 0 || sr >= i32(src_h)) {
            continue;
        }
        let row_base = (img + u32(sr)) * src_w;
        var xs: array<V, TW + KMAX - 1u>;
        for (var t = 0u; t < TW + K - 1u; t++) {
            let sc = c0 + i32(t);
            if (sc >= 0 && sc < i32(src_w)) {
                let v = src[(row_base + u32(sc)) * c + ch];
                xs[t] = select(v, max(v, V(0.0)), relu);
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
    if (g >= params.groups || ch >= cv()) {
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
            out[(row * params.ow + ow0 + t) * cv() + ch] = acc[t];
        }
    }
}

// The dx pixels one lane writes: `pixels` (0: none) consecutive pixels of one row from
// element `first`, channel stride C.
struct DxTile {
    first: u32,
    pixels: u32,
    acc: array<V, TW>,
}

// Group g's lane `lid`: TW pixels of one dx row (the forward with the kernel flipped).
fn backward_input_tile(g: u32, lid: u32) -> DxTile {
    var tile: DxTile;
    let ch = (g % params.c_tiles) * WG + lid;
    if (g >= params.groups || ch >= cv()) {
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
    tile.first = (row * params.w + iw0) * cv() + ch;
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
            out[tile.first + t * cv()] = tile.acc[t];
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
            let i = tile.first + t * cv();
            out[i] = select(tile.acc[t], V(0.0), grad[i] <= V(0.0));
        }
    }
}

// x[img + ih, iw, ch] (max(x, 0) with Params.relu), zero outside the image (ih is checked by
// the caller).
fn load_x(row_base: u32, iw: i32, ch: u32) -> V {
    if (iw < 0 || iw >= i32(params.w)) {
        return V(0.0);
    }
    let v = src[(row_base + u32(iw)) * cv() + ch];
    return select(v, max(v, V(0.0)), params.relu != 0u);
}

// backward_weight's sums for K = 3 over rows [r0, r1), written out as row_tile3 is: the 3×3
// window sliding along the row and the nine sums are named values.
fn weight_rows3(r0: u32, r1: u32, ch: u32) -> array<V, 9> {
    let pl = i32(params.pad_left);
    let last = i32(params.w) - 1;
    let relu = params.relu != 0u;
    var a: array<V, 9>;
    for (var row = r0; row < r1; row++) {
        let oh = row % params.oh;
        let img = (row / params.oh) * params.h;
        let ih0 = i32(oh + 0u) - i32(params.pad_top);
        let in0 = ih0 >= 0 && ih0 < i32(params.h);
        let rb0 = (img + u32(clamp(ih0, 0, i32(params.h) - 1))) * params.w;
        let ih1 = i32(oh + 1u) - i32(params.pad_top);
        let in1 = ih1 >= 0 && ih1 < i32(params.h);
        let rb1 = (img + u32(clamp(ih1, 0, i32(params.h) - 1))) * params.w;
        let ih2 = i32(oh + 2u) - i32(params.pad_top);
        let in2 = ih2 >= 0 && ih2 < i32(params.h);
        let rb2 = (img + u32(clamp(ih2, 0, i32(params.h) - 1))) * params.w;
        // Columns 1 and 2 of the window at ow = 0 (column 0 enters with the first shift).
        var w01 = src_at(rb0, 0 - pl, in0, last, ch, relu);
        var w02 = src_at(rb0, 1 - pl, in0, last, ch, relu);
        var w11 = src_at(rb1, 0 - pl, in1, last, ch, relu);
        var w12 = src_at(rb1, 1 - pl, in1, last, ch, relu);
        var w21 = src_at(rb2, 0 - pl, in2, last, ch, relu);
        var w22 = src_at(rb2, 1 - pl, in2, last, ch, relu);
        for (var ow = 0u; ow < params.ow; ow++) {
            let d = grad[(row * params.ow + ow) * cv() + ch];
            let col = i32(ow) + 2 - pl;
            let w00 = w01;
            w01 = w02;
            w02 = src_at(rb0, col, in0, last, ch, relu);
            let w10 = w11;
            w11 = w12;
            w12 = src_at(rb1, col, in1, last, ch, relu);
            let w20 = w21;
            w21 = w22;
            w22 = src_at(rb2, col, in2, last, ch, relu);
            a[0] = fma(w00, d, a[0]); a[1] = fma(w01, d, a[1]); a[2] = fma(w02, d, a[2]);
            a[3] = fma(w10, d, a[3]); a[4] = fma(w11, d, a[4]); a[5] = fma(w12, d, a[5]);
            a[6] = fma(w20, d, a[6]); a[7] = fma(w21, d, a[7]); a[8] = fma(w22, d, a[8]);
        }
    }
    return a;
}

@compute @workgroup_size(WG)
fn depthwise_conv2d_backward_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    let ch = (g % params.c_tiles) * WG + lid;
    if (g >= params.groups || ch >= cv()) {
        return;
    }
    let split = g / params.c_tiles;
    let r0 = split * params.rows_per_split;
    let r1 = min(r0 + params.rows_per_split, params.n * params.oh);
    let dst = split * K * K * cv();
    if (K == 3u) {
        let a = weight_rows3(r0, r1, ch);
        for (var tap = 0u; tap < 9u; tap++) {
            out[dst + tap * cv() + ch] = a[tap];
        }
        return;
    }
    let pl = i32(params.pad_left);

    var acc: array<V, KMAX * KMAX>;
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
        var win: array<array<V, KMAX>, KMAX>;
        for (var kh = 0u; kh < K; kh++) {
            if (inside[kh]) {
                for (var kw = 0u; kw + 1u < K; kw++) {
                    win[kh][kw + 1u] = load_x(row_base[kh], i32(kw) - pl, ch);
                }
            }
        }
        for (var ow = 0u; ow < params.ow; ow++) {
            let d = grad[(row * params.ow + ow) * cv() + ch];
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
    for (var tap = 0u; tap < K * K; tap++) {
        out[dst + tap * cv() + ch] = acc[tap];
    }
}

@compute @workgroup_size(WG)
fn depthwise_conv2d_backward_weight_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let len = K * K * cv();
    if (i >= len) {
        return;
    }
    var sum = V(0.0);
    for (var sp = 0u; sp < params.splits; sp++) {
        sum += src[sp * len + i];
    }
    out[i] = sum;
}
