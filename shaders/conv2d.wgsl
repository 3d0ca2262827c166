// conv2d.wgsl — k×k convolution with stride, TensorFlow same/valid padding and bias, NHWC f32,
// weights in Keras order [k, k, Cin, Cout]. Every pass is an implicit GEMM: the im2col matrix is
// never built; each invocation gathers its rows on the fly and padding is the bounds check.
//
// Entry points
//   conv2d_forward                 y = im2col(x)·W + b (then max(y, 0) with Params.relu).
//                                  GEMM M = N·OH·OW, cols = Cout, K = k·k·Cin. Writes y.
//   conv2d_backward_input          dx = dy ⋆ W. GEMM M = N·H·W (dx pixels), cols = Cin,
//                                  K = k·k·Cout: dx pixel (ih, iw) gathers the taps (kh, kw) with
//                                  th = ih + pad_top − kh ≥ 0, th % s = 0, oh = th / s < OH (same
//                                  for w), i.e. exactly the (oh, ow, kh, kw) that read it. Writes dx.
//   conv2d_backward_weight         split-K GEMM M = k·k·Cin, cols = Cout, K = N·OH·OW: split `s`
//                                  sums K range [s·k_chunk, (s+1)·k_chunk) into scratch row s;
//                                  also the partial column sums of dy (bias gradient).
//                                  Writes scratch [splits, k·k·Cin·Cout + Cout].
//   conv2d_backward_weight_reduce  dw, db = Σ over splits of the scratch rows. Writes dw and db.
//
// Bindings (group 0)
//   slot | name   | access     | shape, layout                     | used by
//   0    | out    | read_write | y [N,OH,OW,Cout] / dx [N,H,W,Cin] /  forward / backward_input /
//        |        |            | scratch [splits, k·k·Cin·Cout+Cout]/ backward_weight /
//        |        |            | dw [k,k,Cin,Cout]                  | reduce
//   1    | out_b  | read_write | db [Cout]                          | reduce
//   2    | a      | read       | x [N,H,W,Cin] / dy [N,OH,OW,Cout] / | forward / backward_input /
//        |        |            | x (saved) / scratch                | backward_weight / reduce
//   3    | b      | read       | W [k,k,Cin,Cout] / W / dy          | forward / backward_input /
//        |        |            |                                    | backward_weight
//   4    | bias   | read       | b [Cout]                           | forward
//   5    | params | uniform    | Params                             | all
//
// Params: n, h, w, cin (input sizes); oh, ow, cout, k; stride, pad_top, pad_left (TensorFlow's
//   padding before; the padding after is implied); col_tiles, row_tiles (GEMM tiles of the pass);
//   splits, k_chunk (backward_weight split-K); groups (workgroups in use = col_tiles·row_tiles
//   [·splits]; reduce: ceil(len/WG)); relu (forward: 1 writes max(y, 0), the ReLU epilogue of
//   a convolution whose batch norm and ReLU are folded into it); _pad0.._pad2.
// Workgroup: WG (override, default 32) invocations = (WG/LC) lanes along GEMM rows × LC lanes along
//   GEMM columns (LC override, default 32). Each invocation owns TM = 16 rows × TN = 4 columns
//   of accumulators (register blocking); its rows are tile_row0 + i·(WG/LC) + lane_row and its
//   columns tile_col0 + j·LC + lane_col, so neighbouring lanes touch neighbouring columns
//   (coalesced along C). With LC = WG ("wide", for ≥ 17 columns) every row index, and so every
//   load of the row operand, is uniform across the workgroup: on a GPU one cached load serves
//   all lanes (lavapipe 22.3 still loads per lane: conv2d_subgroup.wgsl is its variant). With
//   LC = 1 ("narrow", for few columns) the column operand (weights) is uniform instead.
//   LC must divide WG. A tile covers (WG/LC)·TM GEMM rows × LC·TN columns: wide (WG 32, LC 32)
//   16 × 128, narrow (WG 64, LC 1) 1024 × 4; col_tiles = ceil(cols / (LC·TN)), row_tiles =
//   ceil(rows / ((WG/LC)·TM)), with (rows, cols) = (N·OH·OW, Cout) forward, (N·H·W, Cin)
//   backward_input, (k·k·Cin, Cout) backward_weight. backward_weight splits K = N·OH·OW: any
//   k_chunk ≥ 1 with splits = ceil(K / k_chunk); scratch holds splits·(k·k·Cin·Cout + Cout).
// Grid: kernels::grid_1d(groups) (shaders/README.md); linear group g = wid.x + wid.y·nwg.x,
//   g ≥ groups returns; forward/backward_input: col tile = g % col_tiles, row tile =
//   g / col_tiles; backward_weight: additionally split = (g / col_tiles) / row_tiles.
// Mirrors: cpu::conv2d::conv2d_forward, conv2d_backward_input, conv2d_backward_weight (the last
//   two entry points together).

override WG: u32 = 32u;
override LC: u32 = 32u;
const TM: u32 = 16u;
const TN: u32 = 4u;

struct Params {
    n: u32,
    h: u32,
    w: u32,
    cin: u32,
    oh: u32,
    ow: u32,
    cout: u32,
    k: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    col_tiles: u32,
    row_tiles: u32,
    splits: u32,
    k_chunk: u32,
    groups: u32,
    relu: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> out_b: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// Lanes along rows; when LC = WG this folds to the constant 1 (and lane_row to 0), which is what
// lets the compiler see the row loads as uniform.
fn row_lanes() -> u32 {
    return max(WG / LC, 1u);
}

fn lane_row(lid: u32) -> u32 {
    if (LC >= WG) {
        return 0u;
    }
    return lid / LC;
}

fn lane_col(lid: u32) -> u32 {
    if (LC >= WG) {
        return lid;
    }
    return lid % LC;
}

fn tile_row(tr: u32, i: u32, lr: u32) -> u32 {
    return tr * row_lanes() * TM + i * row_lanes() + lr;
}

fn tile_col(tc: u32, j: u32, lc: u32) -> u32 {
    return tc * LC * TN + j * LC + lc;
}

@compute @workgroup_size(WG)
fn conv2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= params.groups) {
        return;
    }
    let tc = g % params.col_tiles;
    let tr = g / params.col_tiles;
    let lr = lane_row(lid);
    let lc = lane_col(lid);
    let m = params.n * params.oh * params.ow;
    let cin = params.cin;
    let cout = params.cout;
    let s = i32(params.stride);

    // Per row: first input row of the image (−1 past the last row) and the top-left tap.
    var img: array<i32, TM>;
    var ih0: array<i32, TM>;
    var iw0: array<i32, TM>;
    for (var i = 0u; i < TM; i++) {
        let r = tile_row(tr, i, lr);
        let ow_ = r % params.ow;
        let t = r / params.ow;
        img[i] = select(-1, i32((t / params.oh) * params.h), r < m);
        ih0[i] = i32(t % params.oh) * s - i32(params.pad_top);
        iw0[i] = i32(ow_) * s - i32(params.pad_left);
    }
    var col_ok: array<bool, TN>;
    for (var j = 0u; j < TN; j++) {
        col_ok[j] = tile_col(tc, j, lc) < cout;
    }

    var acc: array<array<f32, TN>, TM>;
    for (var kh = 0u; kh < params.k; kh++) {
        for (var kw = 0u; kw < params.k; kw++) {
            // Offset of x[n, ih, iw, 0] per row, −1 where the tap falls in the padding.
            var base: array<i32, TM>;
            for (var i = 0u; i < TM; i++) {
                let ih = ih0[i] + i32(kh);
                let iw = iw0[i] + i32(kw);
                let inside = img[i] >= 0 && ih >= 0 && ih < i32(params.h) && iw >= 0
                    && iw < i32(params.w);
                base[i] = select(-1, ((img[i] + ih) * i32(params.w) + iw) * i32(cin), inside);
            }
            let wrow = (kh * params.k + kw) * cin;
            for (var ci = 0u; ci < cin; ci++) {
                var wv: array<f32, TN>;
                for (var j = 0u; j < TN; j++) {
                    if (col_ok[j]) {
                        wv[j] = b[(wrow + ci) * cout + tile_col(tc, j, lc)];
                    }
                }
                for (var i = 0u; i < TM; i++) {
                    if (base[i] >= 0) {
                        let xv = a[u32(base[i]) + ci];
                        for (var j = 0u; j < TN; j++) {
                            acc[i][j] = fma(xv, wv[j], acc[i][j]);
                        }
                    }
                }
            }
        }
    }

    for (var i = 0u; i < TM; i++) {
        let r = tile_row(tr, i, lr);
        if (r < m) {
            for (var j = 0u; j < TN; j++) {
                if (col_ok[j]) {
                    let c = tile_col(tc, j, lc);
                    let y = acc[i][j] + bias[c];
                    out[r * cout + c] = select(y, max(y, 0.0), params.relu != 0u);
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= params.groups) {
        return;
    }
    let tc = g % params.col_tiles;
    let tr = g / params.col_tiles;
    let lr = lane_row(lid);
    let lc = lane_col(lid);
    let m = params.n * params.h * params.w;
    let cin = params.cin;
    let cout = params.cout;
    let s = i32(params.stride);

    // Per row (a dx pixel): first dy row of its image (−1 past the last row) and the padded
    // coordinates th0 = ih + pad_top, tw0 = iw + pad_left; tap (kh, kw) reads dy[oh, ow] with
    // oh·s = th0 − kh and ow·s = tw0 − kw.
    var img: array<i32, TM>;
    var th0: array<i32, TM>;
    var tw0: array<i32, TM>;
    for (var i = 0u; i < TM; i++) {
        let r = tile_row(tr, i, lr);
        let iw = r % params.w;
        let t = r / params.w;
        img[i] = select(-1, i32((t / params.h) * params.oh), r < m);
        th0[i] = i32(t % params.h) + i32(params.pad_top);
        tw0[i] = i32(iw) + i32(params.pad_left);
    }
    var col_ok: array<bool, TN>;
    for (var j = 0u; j < TN; j++) {
        col_ok[j] = tile_col(tc, j, lc) < cin;
    }

    var acc: array<array<f32, TN>, TM>;
    for (var kh = 0u; kh < params.k; kh++) {
        for (var kw = 0u; kw < params.k; kw++) {
            // Offset of dy[n, oh, ow, 0] per row, −1 where no output pixel reaches it by this tap.
            var base: array<i32, TM>;
            var any_hit = false;
            for (var i = 0u; i < TM; i++) {
                let th = th0[i] - i32(kh);
                let tw = tw0[i] - i32(kw);
                let oh = th / s;
                let ow = tw / s;
                let hit = img[i] >= 0 && th >= 0 && tw >= 0 && th == oh * s && tw == ow * s
                    && oh < i32(params.oh) && ow < i32(params.ow);
                base[i] = select(-1, ((img[i] + oh) * i32(params.ow) + ow) * i32(cout), hit);
                any_hit = any_hit || hit;
            }
            // With stride s most taps reach none of this invocation's rows: skip them.
            if (!any_hit) {
                continue;
            }
            let wrow = (kh * params.k + kw) * cin;
            for (var co = 0u; co < cout; co++) {
                var wv: array<f32, TN>;
                for (var j = 0u; j < TN; j++) {
                    if (col_ok[j]) {
                        wv[j] = b[(wrow + tile_col(tc, j, lc)) * cout + co];
                    }
                }
                for (var i = 0u; i < TM; i++) {
                    if (base[i] >= 0) {
                        let d = a[u32(base[i]) + co];
                        for (var j = 0u; j < TN; j++) {
                            acc[i][j] = fma(d, wv[j], acc[i][j]);
                        }
                    }
                }
            }
        }
    }

    for (var i = 0u; i < TM; i++) {
        let r = tile_row(tr, i, lr);
        if (r < m) {
            for (var j = 0u; j < TN; j++) {
                if (col_ok[j]) {
                    out[r * cin + tile_col(tc, j, lc)] = acc[i][j];
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_backward_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= params.groups) {
        return;
    }
    let tc = g % params.col_tiles;
    let rest = g / params.col_tiles;
    let tr = rest % params.row_tiles;
    let split = rest / params.row_tiles;
    let lr = lane_row(lid);
    let lc = lane_col(lid);
    let cin = params.cin;
    let cout = params.cout;
    let m = params.k * params.k * cin;
    let kk = params.n * params.oh * params.ow;
    let s = params.stride;

    // Per row (kh, kw, ci): the tap offset relative to (oh·s, ow·s) and the channel; rows past
    // m get an offset that is never inside.
    var dh: array<i32, TM>;
    var dw: array<i32, TM>;
    var ch: array<u32, TM>;
    for (var i = 0u; i < TM; i++) {
        let r = tile_row(tr, i, lr);
        let tap = r / cin;
        dh[i] = select(-1000000, i32(tap / params.k) - i32(params.pad_top), r < m);
        dw[i] = i32(tap % params.k) - i32(params.pad_left);
        ch[i] = r % cin;
    }
    var col_ok: array<bool, TN>;
    for (var j = 0u; j < TN; j++) {
        col_ok[j] = tile_col(tc, j, lc) < cout;
    }

    var acc: array<array<f32, TN>, TM>;
    var bacc: array<f32, TN>;
    let p0 = split * params.k_chunk;
    let p1 = min(p0 + params.k_chunk, kk);
    for (var p = p0; p < p1; p++) {
        let ow_ = p % params.ow;
        let t = p / params.ow;
        let ih_base = i32((t % params.oh) * s);
        let iw_base = i32(ow_ * s);
        let img = (t / params.oh) * params.h;
        var dyv: array<f32, TN>;
        for (var j = 0u; j < TN; j++) {
            if (col_ok[j]) {
                dyv[j] = b[p * cout + tile_col(tc, j, lc)];
            }
            bacc[j] += dyv[j];
        }
        for (var i = 0u; i < TM; i++) {
            let ih = ih_base + dh[i];
            let iw = iw_base + dw[i];
            if (ih >= 0 && ih < i32(params.h) && iw >= 0 && iw < i32(params.w)) {
                let xv = a[((img + u32(ih)) * params.w + u32(iw)) * cin + ch[i]];
                for (var j = 0u; j < TN; j++) {
                    acc[i][j] = fma(xv, dyv[j], acc[i][j]);
                }
            }
        }
    }

    let row_len = m * cout + cout;
    let dst = split * row_len;
    for (var i = 0u; i < TM; i++) {
        let r = tile_row(tr, i, lr);
        if (r < m) {
            for (var j = 0u; j < TN; j++) {
                if (col_ok[j]) {
                    out[dst + r * cout + tile_col(tc, j, lc)] = acc[i][j];
                }
            }
        }
    }
    // Each column's dy sum is computed by every row tile alike; the first one stores it.
    if (tr == 0u && lr == 0u) {
        for (var j = 0u; j < TN; j++) {
            if (col_ok[j]) {
                out[dst + m * cout + tile_col(tc, j, lc)] = bacc[j];
            }
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_backward_weight_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let wlen = params.k * params.k * params.cin * params.cout;
    let row_len = wlen + params.cout;
    if (i >= row_len) {
        return;
    }
    var sum = 0.0;
    for (var sp = 0u; sp < params.splits; sp++) {
        sum += a[sp * row_len + i];
    }
    if (i < wlen) {
        out[i] = sum;
    } else {
        out_b[i - wlen] = sum;
    }
}
