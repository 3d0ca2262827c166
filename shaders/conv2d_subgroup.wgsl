// conv2d_subgroup.wgsl — the subgroup variant of conv2d's three GEMM passes, for adapters where
// per-lane loads are the cost and a subgroup shuffle is cheap (lavapipe: LAVAPIPE-NOTES.md).
// Same semantics, bindings, Params and grid as conv2d.wgsl; what differs: instead of every lane
// loading all TM values of the GEMM row operand itself, lane l of each subgroup loads those of
// rows l, l + SG, … and the subgroup exchanges them with subgroupShuffle, cutting those loads
// SG-fold; and the accumulators are only ever indexed by literals (the TM rows are written out)
// because lavapipe keeps an array indexed by a loop counter in memory: that alone made the
// forward pass 7× faster. The split-K reduction (memory-bound) is conv2d.wgsl's.
//
// Entry points
//   conv2d_forward          y = im2col(x)·W + b (GEMM M = N·OH·OW, cols = Cout, K = k·k·Cin).
//                           Writes y.
//   conv2d_backward_input   dx = dy ⋆ W (GEMM M = N·H·W, cols = Cin, K = k·k·Cout), the taps
//                           of each dx pixel found as in conv2d.wgsl. Writes dx.
//   conv2d_backward_weight  split-K partials of dw (GEMM M = k·k·Cin, cols = Cout,
//                           K = N·OH·OW) and of db = column sums of dy.
//                           Writes scratch [splits, k·k·Cin·Cout + Cout]; reduced by
//                           conv2d.wgsl's conv2d_backward_weight_reduce.
//
// Bindings (group 0)
//   slot | name   | access     | shape, layout                          | used by
//   0    | out    | read_write | y [N,OH,OW,Cout] / dx [N,H,W,Cin] /     | forward / backward_input /
//        |        |            | scratch [splits, k·k·Cin·Cout + Cout]   | backward_weight
//   2    | a      | read       | x [N,H,W,Cin] / dy [N,OH,OW,Cout] / x   | forward / backward_input /
//        |        |            | (saved)                                 | backward_weight
//   3    | b      | read       | W [k,k,Cin,Cout] / W / dy [N,OH,OW,Cout]| forward / backward_input /
//        |        |            |                                         | backward_weight
//   4    | bias   | read       | b [Cout]                                | forward
//   5    | params | uniform    | Params (as conv2d.wgsl)                 | all
//
// Params: as conv2d.wgsl (n, h, w, cin, oh, ow, cout, k, stride, pad_top, pad_left, col_tiles,
//   row_tiles, splits, k_chunk, groups).
// Workgroup: WG (override, default 16) lanes, all along GEMM columns; SG (override) is the
//   adapter's subgroup size, which the host reads from the adapter (it must divide TM = 16 and
//   be the same for every subgroup: subgroup_min_size = subgroup_max_size). Each invocation owns
//   TM = 16 rows × TN = 8 columns of accumulators; its columns are tile_col0 + j·WG + lane.
// Grid: as conv2d.wgsl: kernels::grid_1d(groups), g = wid.x + wid.y·nwg.x, g ≥ groups returns
//   (uniformly for the whole workgroup, so every shuffle runs with all lanes active).
// Mirrors: cpu::conv2d::conv2d_forward, conv2d_backward_input, conv2d_backward_weight (with
//   conv2d.wgsl's reduce).
// Needs wgpu::Features::SUBGROUP (naga 30 rejects `enable subgroups;`, so there is none here).
// Browser form (WebGPU, Tint; gpucnn::vectors::browser_form writes it): `enable subgroups;` and
// the directive below before this source, on an adapter whose subgroupMinSize =
// subgroupMaxSize = SG divides 16 (WebGPU cannot request a size; elsewhere conv2d.wgsl is the
// browser's). Tint's uniformity analysis does not count subgroupAny's result as uniform, so it
// rejects the shuffles after `if (!subgroupAny(any_hit)) { continue; }` in
// conv2d_backward_input. Turning that check off is sound: subgroupAny returns the same value to
// every lane, and every lane reaches it (the only early return is uniform for the workgroup).
// browser-directive: diagnostic(off, subgroup_uniformity);

override WG: u32 = 16u;
override SG: u32 = 8u;
const TM: u32 = 16u;
const TN: u32 = 8u;

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
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// Row values a lane loads per K step: TM / SG (at most TM, for SG = 1).
const RMAX: u32 = TM;

fn tile_col(tc: u32, j: u32, lane: u32) -> u32 {
    return tc * WG * TN + j * WG + lane;
}

// Four weights (or dy values) of GEMM row `row`, columns tile_col(tc, j0 .. j0+3, lane); zero
// past Cout.
fn load4(row: u32, tc: u32, lane: u32, j0: u32) -> vec4<f32> {
    var v = vec4(0.0);
    for (var j = 0u; j < 4u; j++) {
        let c = tile_col(tc, j0 + j, lane);
        if (c < params.cout) {
            v[j] = b[row * params.cout + c];
        }
    }
    return v;
}

// acc[2i], acc[2i+1] += x·(w0, w1). Called with literal i only: an accumulator array indexed
// by anything but constants is kept in memory by lavapipe, so the TM rows are unrolled by hand.
fn rank1(acc: ptr<function, array<vec4<f32>, 32>>, i: u32, x: f32, w0: vec4<f32>, w1: vec4<f32>) {
    (*acc)[2u * i] = fma(vec4(x), w0, (*acc)[2u * i]);
    (*acc)[2u * i + 1u] = fma(vec4(x), w1, (*acc)[2u * i + 1u]);
}

// y[r, tile columns] = (lo, hi) + bias (then max(·, 0) with Params.relu), for r < m and
// columns < Cout.
fn store_y(r: u32, m: u32, tc: u32, lane: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (r >= m) {
        return;
    }
    for (var j = 0u; j < TN; j++) {
        let c = tile_col(tc, j, lane);
        if (c < params.cout) {
            let half = select(hi, lo, j < 4u);
            let y = half[j % 4u] + bias[c];
            out[r * params.cout + c] = select(y, max(y, 0.0), params.relu != 0u);
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= params.groups) {
        return;
    }
    let tc = g % params.col_tiles;
    let tr = g / params.col_tiles;
    let m = params.n * params.oh * params.ow;
    let cin = params.cin;
    let cout = params.cout;
    let s = i32(params.stride);
    let reps = TM / SG;

    // This lane loads rows tr·TM + q·SG + sl, q < reps.
    var img: array<i32, RMAX>;
    var ih0: array<i32, RMAX>;
    var iw0: array<i32, RMAX>;
    for (var q = 0u; q < reps; q++) {
        let r = tr * TM + q * SG + sl;
        let ow_ = r % params.ow;
        let t = r / params.ow;
        img[q] = select(-1, i32((t / params.oh) * params.h), r < m);
        ih0[q] = i32(t % params.oh) * s - i32(params.pad_top);
        iw0[q] = i32(ow_) * s - i32(params.pad_left);
    }
    var acc: array<vec4<f32>, 32>;
    for (var kh = 0u; kh < params.k; kh++) {
        for (var kw = 0u; kw < params.k; kw++) {
            var base: array<i32, RMAX>;
            for (var q = 0u; q < reps; q++) {
                let ih = ih0[q] + i32(kh);
                let iw = iw0[q] + i32(kw);
                let inside = img[q] >= 0 && ih >= 0 && ih < i32(params.h) && iw >= 0
                    && iw < i32(params.w);
                base[q] = select(-1, ((img[q] + ih) * i32(params.w) + iw) * i32(cin), inside);
            }
            let wrow = (kh * params.k + kw) * cin;
            for (var ci = 0u; ci < cin; ci++) {
                let w0 = load4(wrow + ci, tc, lid, 0u);
                let w1 = load4(wrow + ci, tc, lid, 4u);
                var mine: array<f32, RMAX>;
                for (var q = 0u; q < reps; q++) {
                    if (base[q] >= 0) {
                        mine[q] = a[u32(base[q]) + ci];
                    }
                }
                // Row i's value was loaded by lane i % SG into its mine[i / SG].
                rank1(&acc, 0u, subgroupShuffle(mine[0u / SG], 0u % SG), w0, w1);
                rank1(&acc, 1u, subgroupShuffle(mine[1u / SG], 1u % SG), w0, w1);
                rank1(&acc, 2u, subgroupShuffle(mine[2u / SG], 2u % SG), w0, w1);
                rank1(&acc, 3u, subgroupShuffle(mine[3u / SG], 3u % SG), w0, w1);
                rank1(&acc, 4u, subgroupShuffle(mine[4u / SG], 4u % SG), w0, w1);
                rank1(&acc, 5u, subgroupShuffle(mine[5u / SG], 5u % SG), w0, w1);
                rank1(&acc, 6u, subgroupShuffle(mine[6u / SG], 6u % SG), w0, w1);
                rank1(&acc, 7u, subgroupShuffle(mine[7u / SG], 7u % SG), w0, w1);
                rank1(&acc, 8u, subgroupShuffle(mine[8u / SG], 8u % SG), w0, w1);
                rank1(&acc, 9u, subgroupShuffle(mine[9u / SG], 9u % SG), w0, w1);
                rank1(&acc, 10u, subgroupShuffle(mine[10u / SG], 10u % SG), w0, w1);
                rank1(&acc, 11u, subgroupShuffle(mine[11u / SG], 11u % SG), w0, w1);
                rank1(&acc, 12u, subgroupShuffle(mine[12u / SG], 12u % SG), w0, w1);
                rank1(&acc, 13u, subgroupShuffle(mine[13u / SG], 13u % SG), w0, w1);
                rank1(&acc, 14u, subgroupShuffle(mine[14u / SG], 14u % SG), w0, w1);
                rank1(&acc, 15u, subgroupShuffle(mine[15u / SG], 15u % SG), w0, w1);
            }
        }
    }

    store_y(tr * TM + 0u, m, tc, lid, acc[0], acc[1]);
    store_y(tr * TM + 1u, m, tc, lid, acc[2], acc[3]);
    store_y(tr * TM + 2u, m, tc, lid, acc[4], acc[5]);
    store_y(tr * TM + 3u, m, tc, lid, acc[6], acc[7]);
    store_y(tr * TM + 4u, m, tc, lid, acc[8], acc[9]);
    store_y(tr * TM + 5u, m, tc, lid, acc[10], acc[11]);
    store_y(tr * TM + 6u, m, tc, lid, acc[12], acc[13]);
    store_y(tr * TM + 7u, m, tc, lid, acc[14], acc[15]);
    store_y(tr * TM + 8u, m, tc, lid, acc[16], acc[17]);
    store_y(tr * TM + 9u, m, tc, lid, acc[18], acc[19]);
    store_y(tr * TM + 10u, m, tc, lid, acc[20], acc[21]);
    store_y(tr * TM + 11u, m, tc, lid, acc[22], acc[23]);
    store_y(tr * TM + 12u, m, tc, lid, acc[24], acc[25]);
    store_y(tr * TM + 13u, m, tc, lid, acc[26], acc[27]);
    store_y(tr * TM + 14u, m, tc, lid, acc[28], acc[29]);
    store_y(tr * TM + 15u, m, tc, lid, acc[30], acc[31]);
}

// Four weights W[kh, kw, c, co] for the tile columns c = tile_col(tc, j0 .. j0+3, lane) (the
// GEMM columns of backward_input are Cin), with wrow = (kh·k + kw)·Cin; zero past Cin.
fn load4_t(wrow: u32, co: u32, tc: u32, lane: u32, j0: u32) -> vec4<f32> {
    var v = vec4(0.0);
    for (var j = 0u; j < 4u; j++) {
        let c = tile_col(tc, j0 + j, lane);
        if (c < params.cin) {
            v[j] = b[(wrow + c) * params.cout + co];
        }
    }
    return v;
}

@compute @workgroup_size(WG)
fn conv2d_backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= params.groups) {
        return;
    }
    let tc = g % params.col_tiles;
    let tr = g / params.col_tiles;
    let m = params.n * params.h * params.w;
    let cin = params.cin;
    let cout = params.cout;
    let s = i32(params.stride);
    let reps = TM / SG;

    // This lane loads rows (dx pixels) tr·TM + q·SG + sl: the first dy row of the image (−1
    // past the last row) and the padded coordinates th0 = ih + pad_top, tw0 = iw + pad_left.
    var img: array<i32, RMAX>;
    var th0: array<i32, RMAX>;
    var tw0: array<i32, RMAX>;
    for (var q = 0u; q < reps; q++) {
        let r = tr * TM + q * SG + sl;
        let iw = r % params.w;
        let t = r / params.w;
        img[q] = select(-1, i32((t / params.h) * params.oh), r < m);
        th0[q] = i32(t % params.h) + i32(params.pad_top);
        tw0[q] = i32(iw) + i32(params.pad_left);
    }
    var acc: array<vec4<f32>, 32>;
    for (var kh = 0u; kh < params.k; kh++) {
        for (var kw = 0u; kw < params.k; kw++) {
            // dy[n, oh, ow, 0] per loaded row, −1 where no output pixel reaches it by this tap.
            var base: array<i32, RMAX>;
            var any_hit = false;
            for (var q = 0u; q < reps; q++) {
                let th = th0[q] - i32(kh);
                let tw = tw0[q] - i32(kw);
                let oh = th / s;
                let ow = tw / s;
                let hit = img[q] >= 0 && th >= 0 && tw >= 0 && th == oh * s && tw == ow * s
                    && oh < i32(params.oh) && ow < i32(params.ow);
                base[q] = select(-1, ((img[q] + oh) * i32(params.ow) + ow) * i32(cout), hit);
                any_hit = any_hit || hit;
            }
            // With stride s most taps reach no pixel of the tile (with 1×1 stride 2, 3 in 4
            // pixels have no tap at all): skip them. Every subgroup of the workgroup holds the
            // same rows, so the whole workgroup takes the same branch.
            if (!subgroupAny(any_hit)) {
                continue;
            }
            let wrow = (kh * params.k + kw) * cin;
            for (var co = 0u; co < cout; co++) {
                let w0 = load4_t(wrow, co, tc, lid, 0u);
                let w1 = load4_t(wrow, co, tc, lid, 4u);
                var mine: array<f32, RMAX>;
                for (var q = 0u; q < reps; q++) {
                    if (base[q] >= 0) {
                        mine[q] = a[u32(base[q]) + co];
                    }
                }
                // Row i's dy value was loaded by lane i % SG into its mine[i / SG].
                rank1(&acc, 0u, subgroupShuffle(mine[0u / SG], 0u % SG), w0, w1);
                rank1(&acc, 1u, subgroupShuffle(mine[1u / SG], 1u % SG), w0, w1);
                rank1(&acc, 2u, subgroupShuffle(mine[2u / SG], 2u % SG), w0, w1);
                rank1(&acc, 3u, subgroupShuffle(mine[3u / SG], 3u % SG), w0, w1);
                rank1(&acc, 4u, subgroupShuffle(mine[4u / SG], 4u % SG), w0, w1);
                rank1(&acc, 5u, subgroupShuffle(mine[5u / SG], 5u % SG), w0, w1);
                rank1(&acc, 6u, subgroupShuffle(mine[6u / SG], 6u % SG), w0, w1);
                rank1(&acc, 7u, subgroupShuffle(mine[7u / SG], 7u % SG), w0, w1);
                rank1(&acc, 8u, subgroupShuffle(mine[8u / SG], 8u % SG), w0, w1);
                rank1(&acc, 9u, subgroupShuffle(mine[9u / SG], 9u % SG), w0, w1);
                rank1(&acc, 10u, subgroupShuffle(mine[10u / SG], 10u % SG), w0, w1);
                rank1(&acc, 11u, subgroupShuffle(mine[11u / SG], 11u % SG), w0, w1);
                rank1(&acc, 12u, subgroupShuffle(mine[12u / SG], 12u % SG), w0, w1);
                rank1(&acc, 13u, subgroupShuffle(mine[13u / SG], 13u % SG), w0, w1);
                rank1(&acc, 14u, subgroupShuffle(mine[14u / SG], 14u % SG), w0, w1);
                rank1(&acc, 15u, subgroupShuffle(mine[15u / SG], 15u % SG), w0, w1);
            }
        }
    }

    store_rows(0u, tr * TM + 0u, m, cin, tc, lid, acc[0], acc[1]);
    store_rows(0u, tr * TM + 1u, m, cin, tc, lid, acc[2], acc[3]);
    store_rows(0u, tr * TM + 2u, m, cin, tc, lid, acc[4], acc[5]);
    store_rows(0u, tr * TM + 3u, m, cin, tc, lid, acc[6], acc[7]);
    store_rows(0u, tr * TM + 4u, m, cin, tc, lid, acc[8], acc[9]);
    store_rows(0u, tr * TM + 5u, m, cin, tc, lid, acc[10], acc[11]);
    store_rows(0u, tr * TM + 6u, m, cin, tc, lid, acc[12], acc[13]);
    store_rows(0u, tr * TM + 7u, m, cin, tc, lid, acc[14], acc[15]);
    store_rows(0u, tr * TM + 8u, m, cin, tc, lid, acc[16], acc[17]);
    store_rows(0u, tr * TM + 9u, m, cin, tc, lid, acc[18], acc[19]);
    store_rows(0u, tr * TM + 10u, m, cin, tc, lid, acc[20], acc[21]);
    store_rows(0u, tr * TM + 11u, m, cin, tc, lid, acc[22], acc[23]);
    store_rows(0u, tr * TM + 12u, m, cin, tc, lid, acc[24], acc[25]);
    store_rows(0u, tr * TM + 13u, m, cin, tc, lid, acc[26], acc[27]);
    store_rows(0u, tr * TM + 14u, m, cin, tc, lid, acc[28], acc[29]);
    store_rows(0u, tr * TM + 15u, m, cin, tc, lid, acc[30], acc[31]);
}

// out[dst + r·cols + tile columns] = (lo, hi), for r < m and columns < cols.
fn store_rows(dst: u32, r: u32, m: u32, cols: u32, tc: u32, lane: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (r >= m) {
        return;
    }
    for (var j = 0u; j < TN; j++) {
        let c = tile_col(tc, j, lane);
        if (c < cols) {
            let half = select(hi, lo, j < 4u);
            out[dst + r * cols + c] = half[j % 4u];
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_backward_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= params.groups) {
        return;
    }
    let tc = g % params.col_tiles;
    let rest = g / params.col_tiles;
    let tr = rest % params.row_tiles;
    let split = rest / params.row_tiles;
    let cin = params.cin;
    let cout = params.cout;
    let m = params.k * params.k * cin;
    let kk = params.n * params.oh * params.ow;
    let s = params.stride;
    let reps = TM / SG;

    // This lane loads rows (kh, kw, ci) = tr·TM + q·SG + sl; rows past m never land inside.
    var dh: array<i32, RMAX>;
    var dw: array<i32, RMAX>;
    var ch: array<u32, RMAX>;
    for (var q = 0u; q < reps; q++) {
        let r = tr * TM + q * SG + sl;
        let tap = r / cin;
        dh[q] = select(-1000000, i32(tap / params.k) - i32(params.pad_top), r < m);
        dw[q] = i32(tap % params.k) - i32(params.pad_left);
        ch[q] = r % cin;
    }
    var acc: array<vec4<f32>, 32>;
    var bacc0 = vec4(0.0);
    var bacc1 = vec4(0.0);
    let p0 = split * params.k_chunk;
    let p1 = min(p0 + params.k_chunk, kk);
    for (var p = p0; p < p1; p++) {
        let ow_ = p % params.ow;
        let t = p / params.ow;
        let ih_base = i32((t % params.oh) * s);
        let iw_base = i32(ow_ * s);
        let img = (t / params.oh) * params.h;
        let d0 = load4(p, tc, lid, 0u);
        let d1 = load4(p, tc, lid, 4u);
        bacc0 += d0;
        bacc1 += d1;
        var mine: array<f32, RMAX>;
        for (var q = 0u; q < reps; q++) {
            let ih = ih_base + dh[q];
            let iw = iw_base + dw[q];
            if (ih >= 0 && ih < i32(params.h) && iw >= 0 && iw < i32(params.w)) {
                mine[q] = a[((img + u32(ih)) * params.w + u32(iw)) * cin + ch[q]];
            }
        }
        // Row i's x value was loaded by lane i % SG into its mine[i / SG].
        rank1(&acc, 0u, subgroupShuffle(mine[0u / SG], 0u % SG), d0, d1);
        rank1(&acc, 1u, subgroupShuffle(mine[1u / SG], 1u % SG), d0, d1);
        rank1(&acc, 2u, subgroupShuffle(mine[2u / SG], 2u % SG), d0, d1);
        rank1(&acc, 3u, subgroupShuffle(mine[3u / SG], 3u % SG), d0, d1);
        rank1(&acc, 4u, subgroupShuffle(mine[4u / SG], 4u % SG), d0, d1);
        rank1(&acc, 5u, subgroupShuffle(mine[5u / SG], 5u % SG), d0, d1);
        rank1(&acc, 6u, subgroupShuffle(mine[6u / SG], 6u % SG), d0, d1);
        rank1(&acc, 7u, subgroupShuffle(mine[7u / SG], 7u % SG), d0, d1);
        rank1(&acc, 8u, subgroupShuffle(mine[8u / SG], 8u % SG), d0, d1);
        rank1(&acc, 9u, subgroupShuffle(mine[9u / SG], 9u % SG), d0, d1);
        rank1(&acc, 10u, subgroupShuffle(mine[10u / SG], 10u % SG), d0, d1);
        rank1(&acc, 11u, subgroupShuffle(mine[11u / SG], 11u % SG), d0, d1);
        rank1(&acc, 12u, subgroupShuffle(mine[12u / SG], 12u % SG), d0, d1);
        rank1(&acc, 13u, subgroupShuffle(mine[13u / SG], 13u % SG), d0, d1);
        rank1(&acc, 14u, subgroupShuffle(mine[14u / SG], 14u % SG), d0, d1);
        rank1(&acc, 15u, subgroupShuffle(mine[15u / SG], 15u % SG), d0, d1);
    }

    let row_len = m * cout + cout;
    let dst = split * row_len;
    store_rows(dst, tr * TM + 0u, m, cout, tc, lid, acc[0], acc[1]);
    store_rows(dst, tr * TM + 1u, m, cout, tc, lid, acc[2], acc[3]);
    store_rows(dst, tr * TM + 2u, m, cout, tc, lid, acc[4], acc[5]);
    store_rows(dst, tr * TM + 3u, m, cout, tc, lid, acc[6], acc[7]);
    store_rows(dst, tr * TM + 4u, m, cout, tc, lid, acc[8], acc[9]);
    store_rows(dst, tr * TM + 5u, m, cout, tc, lid, acc[10], acc[11]);
    store_rows(dst, tr * TM + 6u, m, cout, tc, lid, acc[12], acc[13]);
    store_rows(dst, tr * TM + 7u, m, cout, tc, lid, acc[14], acc[15]);
    store_rows(dst, tr * TM + 8u, m, cout, tc, lid, acc[16], acc[17]);
    store_rows(dst, tr * TM + 9u, m, cout, tc, lid, acc[18], acc[19]);
    store_rows(dst, tr * TM + 10u, m, cout, tc, lid, acc[20], acc[21]);
    store_rows(dst, tr * TM + 11u, m, cout, tc, lid, acc[22], acc[23]);
    store_rows(dst, tr * TM + 12u, m, cout, tc, lid, acc[24], acc[25]);
    store_rows(dst, tr * TM + 13u, m, cout, tc, lid, acc[26], acc[27]);
    store_rows(dst, tr * TM + 14u, m, cout, tc, lid, acc[28], acc[29]);
    store_rows(dst, tr * TM + 15u, m, cout, tc, lid, acc[30], acc[31]);
    // Each column's dy sum is computed by every row tile alike; the first one stores it.
    if (tr == 0u) {
        store_rows(dst, m, m + 1u, cout, tc, lid, bacc0, bacc1);
    }
}
