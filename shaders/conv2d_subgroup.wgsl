// conv2d_subgroup.wgsl — the subgroup variant of conv2d's forward and backward_weight passes,
// for adapters where per-lane loads are the cost and a subgroup shuffle is cheap (lavapipe:
// LAVAPIPE-NOTES.md). Same semantics, bindings, Params and grid as conv2d.wgsl; only the
// loading of the GEMM row operand differs: instead of every lane loading all TM row values
// itself, lane l of each subgroup loads the values of rows l, l + SG, … and the subgroup
// exchanges them with subgroupShuffle, cutting those loads SG-fold. backward_input and the
// split-K reduction have no subgroup form (the reduction is memory-bound; the stem's
// backward_input is never needed in training): use conv2d.wgsl's.
//
// Entry points
//   conv2d_forward          y = im2col(x)·W + b (GEMM M = N·OH·OW, cols = Cout, K = k·k·Cin).
//                           Writes y.
//   conv2d_backward_weight  split-K partials of dw (GEMM M = k·k·Cin, cols = Cout,
//                           K = N·OH·OW) and of db = column sums of dy.
//                           Writes scratch [splits, k·k·Cin·Cout + Cout]; reduced by
//                           conv2d.wgsl's conv2d_backward_weight_reduce.
//
// Bindings (group 0)
//   slot | name   | access     | shape, layout                          | used by
//   0    | out    | read_write | y [N,OH,OW,Cout] / scratch [splits, L]  | forward / backward_weight
//   2    | a      | read       | x [N,H,W,Cin]                           | both (x saved, backward)
//   3    | b      | read       | W [k,k,Cin,Cout] / dy [N,OH,OW,Cout]    | forward / backward_weight
//   4    | bias   | read       | b [Cout]                                | forward
//   5    | params | uniform    | Params (as conv2d.wgsl)                 | both
//
// Params: as conv2d.wgsl (n, h, w, cin, oh, ow, cout, k, stride, pad_top, pad_left, col_tiles,
//   row_tiles, splits, k_chunk, groups).
// Workgroup: WG (override, default 16) lanes, all along GEMM columns; SG (override) is the
//   adapter's subgroup size, which the host reads from the adapter (it must divide TM = 16 and
//   be the same for every subgroup: subgroup_min_size = subgroup_max_size). Each invocation owns
//   TM = 16 rows × TN = 8 columns of accumulators; its columns are tile_col0 + j·WG + lane.
// Grid: as conv2d.wgsl: kernels::grid_1d(groups), g = wid.x + wid.y·nwg.x, g ≥ groups returns
//   (uniformly for the whole workgroup, so every shuffle runs with all lanes active).
// Mirrors: cpu::conv2d::conv2d_forward, cpu::conv2d::conv2d_backward_weight (with the reduce).
// Needs wgpu::Features::SUBGROUP (naga 30 rejects `enable subgroups;`, so there is none here).

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
    var col_ok: array<bool, TN>;
    for (var j = 0u; j < TN; j++) {
        col_ok[j] = tile_col(tc, j, lid) < cout;
    }

    var acc: array<array<f32, TN>, TM>;
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
                var wv: array<f32, TN>;
                for (var j = 0u; j < TN; j++) {
                    if (col_ok[j]) {
                        wv[j] = b[(wrow + ci) * cout + tile_col(tc, j, lid)];
                    }
                }
                for (var q = 0u; q < reps; q++) {
                    var mine = 0.0;
                    if (base[q] >= 0) {
                        mine = a[u32(base[q]) + ci];
                    }
                    for (var l = 0u; l < SG; l++) {
                        let xv = subgroupShuffle(mine, l);
                        for (var j = 0u; j < TN; j++) {
                            acc[q * SG + l][j] = fma(xv, wv[j], acc[q * SG + l][j]);
                        }
                    }
                }
            }
        }
    }

    for (var i = 0u; i < TM; i++) {
        let r = tr * TM + i;
        if (r < m) {
            for (var j = 0u; j < TN; j++) {
                if (col_ok[j]) {
                    let c = tile_col(tc, j, lid);
                    out[r * cout + c] = acc[i][j] + bias[c];
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
    var col_ok: array<bool, TN>;
    for (var j = 0u; j < TN; j++) {
        col_ok[j] = tile_col(tc, j, lid) < cout;
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
                dyv[j] = b[p * cout + tile_col(tc, j, lid)];
            }
            bacc[j] += dyv[j];
        }
        for (var q = 0u; q < reps; q++) {
            let ih = ih_base + dh[q];
            let iw = iw_base + dw[q];
            var mine = 0.0;
            if (ih >= 0 && ih < i32(params.h) && iw >= 0 && iw < i32(params.w)) {
                mine = a[((img + u32(ih)) * params.w + u32(iw)) * cin + ch[q]];
            }
            for (var l = 0u; l < SG; l++) {
                let xv = subgroupShuffle(mine, l);
                for (var j = 0u; j < TN; j++) {
                    acc[q * SG + l][j] = fma(xv, dyv[j], acc[q * SG + l][j]);
                }
            }
        }
    }

    let row_len = m * cout + cout;
    let dst = split * row_len;
    for (var i = 0u; i < TM; i++) {
        let r = tr * TM + i;
        if (r < m) {
            for (var j = 0u; j < TN; j++) {
                if (col_ok[j]) {
                    out[dst + r * cout + tile_col(tc, j, lid)] = acc[i][j];
                }
            }
        }
    }
    if (tr == 0u) {
        for (var j = 0u; j < TN; j++) {
            if (col_ok[j]) {
                out[dst + m * cout + tile_col(tc, j, lid)] = bacc[j];
            }
        }
    }
}
