// gemm.wgsl — the portable GEMM core behind `gemm`, `dense` and `pointwise_conv2d`, with the
// split-K reduction and helper passes those ops need.
//
// Entry points
//   gemm_naive   C = A·B (+ bias) (then ReLU when asked), one output per invocation (the
//                reference point for benches)
//   gemm_tiled   C = A·B (+ bias) (then ReLU when asked): 64×64 output tile per workgroup staged through workgroup
//                memory in K steps of 16, 4×4 outputs per invocation (register blocking); B tile
//                loads are vec4 loads where B is row-contiguous and 16-byte aligned
//   gemm_reduce  out[i] = Σ_s part[s·c_split + i], s < splits (the split-K reduction)
//   gemm_colsum  part[s·n + j] = Σ_{r in split s} a[r·a_ms + j] (column sums, e.g. db = Σ dy)
//   gemm_colsum4 gemm_colsum for four columns per lane, reading A as vec4s through a4 (a_off,
//                a_ms and n multiples of 4); kernels::gemm compiles it in its texture form
//                (gpu::mirror::texture_form, a4 mirrored) for `texture64`, where a lane's four
//                columns are one texel fetch
//   gemm_transpose  out[c_off + j·m + i] = a[a_off + i·a_ms + j] for i < m, j < n: A [m, n]
//                transposed into C [n, m] (the weights Wᵀ that texture64's input gradient reads
//                as vec4 rows)
//   gemm_zero_skipped  out[p, :] = 0 for every pixel p = (img, h, w) with h or w not a multiple
//                of g_stride (the pixels a strided 1×1 convolution never reads)
//   All entry points WRITE their outputs (none accumulates).
//
// Operand addressing (elements, every operand a flat f32 array), shared with gemm_subgroup.wgsl:
//   A(m, k) = a[a_off + G(m, a_gather == 1)·a_ms + G(k, a_gather == 2)·a_ks]
//   B(k, n) = b[b_off + k·b_ks + n·b_ns]
//   C(m, n) of split s = c[c_off + s·c_split + G(m, c_gather == 1)·c_ms + n]
//   G(p, on) = on ? pixel(p) : p, where pixel(p) maps an output pixel index p of [img, oh, ow]
//   (oh·ow = g_ohw, ow = g_ow) to its input pixel index img·g_in_hw + (oh·g_in_w + ow)·g_stride:
//   the row gather/scatter of a strided 1×1 convolution. Split s covers
//   k in [s·k_chunk, min(k, (s+1)·k_chunk)). Row-major plain GEMM: a_ms = K, a_ks = 1,
//   b_ks = N, b_ns = 1, c_ms = N; transposes swap the strides.
//
// Bindings (group 0)
//   slot | name   | access     | shape                        | used by
//   0    | c      | read_write | C / partials / out, f32      | all
//   1    | a      | read       | A operand / partials, f32    | naive, tiled, reduce, colsum
//   2    | b      | read       | B operand, f32               | naive, tiled
//   3    | bias   | read       | [n] f32 (at bias_off)        | naive, tiled: always bound (read
//        |        |            |                              | only when has_bias = 1; any
//        |        |            |                              | 4-byte buffer serves otherwise)
//   4    | params | uniform    | Params                       | all
//   5    | a4     | read       | A as vec4<f32>               | colsum4 (and gemm_subgroup.wgsl)
//   6    | b4     | read       | B operand viewed as vec4<f32>| tiled: the same buffer range as
//        |        |            |                              | slot 2, so B's range must hold
//        |        |            |                              | ≥ 16 bytes (pad a smaller B)
//
// Params: m, n, k, splits, k_chunk; a_off, a_ms, a_ks, a_gather (0 none, 1 rows, 2 k);
//   b_off, b_ks, b_ns; c_off, c_ms, c_split, c_gather (0 none, 1 rows scattered);
//   bias_off, has_bias (0/1, only with splits = 1); g_ohw, g_ow, g_in_w, g_in_hw, g_stride;
//   relu (0/1, only with splits = 1: C = max(A·B + bias, 0), the ReLU epilogue).
//   gemm_reduce: m = element count, splits, a_off (partials), c_split (split stride), c_off.
//   gemm_colsum: k = rows, n = columns, a_ms = row stride, a_off, k_chunk, splits, c_off
//   (partials of split s at c_off + s·n).
//   gemm_transpose: m, n (A's rows and columns), a_off, a_ms, c_off.
//   gemm_zero_skipped: m = pixel count N·H·W, n = channels, g_in_w = W, g_in_hw = H·W,
//   g_stride, c_off.
//
// Workgroup
//   naive: NX × NY (overrides, default 16 × 16); tiled: 16 × 16 (fixed by the tile shape);
//   reduce, colsum, colsum4, transpose, zero_skipped: WG (override, default 64).
// Grid
//   naive: (ceil(n/NX), ceil(m/NY), splits); tiled: (ceil(n/64), ceil(m/64), splits);
//   reduce: kernels::grid_1d(ceil(m/WG)); zero_skipped: grid_1d(ceil(m·ceil(n/4)/WG))
//   (linear group = wid.x + wid.y·nwg.x);
//   colsum: (ceil(n/WG), splits, 1); colsum4: (ceil(n/(4·WG)), splits, 1);
//   transpose: kernels::grid_1d(ceil(m·n/WG)), one output element per invocation.
// Mirrors: cpu::gemm::gemm_forward; through the ops: cpu::dense::dense_*,
//   cpu::pointwise_conv2d::pointwise_conv2d_*.

override WG: u32 = 64u;
override NX: u32 = 16u;
override NY: u32 = 16u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    splits: u32,
    k_chunk: u32,
    a_off: u32,
    a_ms: u32,
    a_ks: u32,
    a_gather: u32,
    b_off: u32,
    b_ks: u32,
    b_ns: u32,
    c_off: u32,
    c_ms: u32,
    c_split: u32,
    c_gather: u32,
    bias_off: u32,
    has_bias: u32,
    g_ohw: u32,
    g_ow: u32,
    g_in_w: u32,
    g_in_hw: u32,
    g_stride: u32,
    relu: u32,
}

@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

// Input pixel index of output pixel p (row gather of a strided 1×1 convolution).
fn pixel(p: u32) -> u32 {
    let img = p / params.g_ohw;
    let r = p - img * params.g_ohw;
    let oh = r / params.g_ow;
    let ow = r - oh * params.g_ow;
    return img * params.g_in_hw + (oh * params.g_in_w + ow) * params.g_stride;
}

fn gather(p: u32, on: bool) -> u32 {
    if (on) {
        return pixel(p);
    }
    return p;
}

fn a_at(m: u32, k: u32) -> f32 {
    return a[params.a_off + gather(m, params.a_gather == 1u) * params.a_ms
        + gather(k, params.a_gather == 2u) * params.a_ks];
}

fn b_at(k: u32, n: u32) -> f32 {
    return b[params.b_off + k * params.b_ks + n * params.b_ns];
}

// Stores C(m, n) of split s (plus bias, then max(·, 0), when asked); the caller bounds-checks
// m and n.
fn store(s: u32, m: u32, n: u32, v: f32) {
    var r = v;
    if (params.has_bias != 0u) {
        r += bias[params.bias_off + n];
    }
    r = select(r, max(r, 0.0), params.relu != 0u);
    c[params.c_off + s * params.c_split + gather(m, params.c_gather == 1u) * params.c_ms + n] = r;
}

fn k_range(s: u32) -> vec2<u32> {
    let lo = s * params.k_chunk;
    return vec2<u32>(lo, min(params.k, lo + params.k_chunk));
}

@compute @workgroup_size(NX, NY)
fn gemm_naive(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let n = gid.x;
    let m = gid.y;
    let s = wid.z;
    if (n >= params.n || m >= params.m || s >= params.splits) {
        return;
    }
    let kr = k_range(s);
    let a_row = params.a_off + gather(m, params.a_gather == 1u) * params.a_ms;
    let b_col = params.b_off + n * params.b_ns;
    var acc = 0.0;
    // The K-gathered case apart, so the common loop carries no per-k branch.
    if (params.a_gather == 2u) {
        for (var k = kr.x; k < kr.y; k++) {
            acc += a[a_row + pixel(k) * params.a_ks] * b[b_col + k * params.b_ks];
        }
    } else {
        for (var k = kr.x; k < kr.y; k++) {
            acc += a[a_row + k * params.a_ks] * b[b_col + k * params.b_ks];
        }
    }
    store(s, m, n, acc);
}

const TILE: u32 = 64u;
const TK: u32 = 16u;
// as_t[kk·16 + g] = A(m0 + 4g .. 4g+3, k0 + kk); bs_t[kk·16 + g] = B(k0 + kk, n0 + 4g .. 4g+3).
var<workgroup> as_t: array<vec4<f32>, 256>;
var<workgroup> bs_t: array<vec4<f32>, 256>;

fn load_a4(m: u32, k: u32, k_hi: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (k < k_hi) {
        for (var i = 0u; i < 4u; i++) {
            if (m + i < params.m) {
                v[i] = a_at(m + i, k);
            }
        }
    }
    return v;
}

fn load_b4(k: u32, n: u32, k_hi: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (k < k_hi) {
        let e = params.b_off + k * params.b_ks + n;
        // Whole row-contiguous aligned vec4: one vector load.
        if (params.b_ns == 1u && n + 3u < params.n && (e & 3u) == 0u) {
            return b4[e >> 2u];
        }
        for (var i = 0u; i < 4u; i++) {
            if (n + i < params.n) {
                v[i] = b_at(k, n + i);
            }
        }
    }
    return v;
}

@compute @workgroup_size(16, 16)
fn gemm_tiled(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    let s = min(wid.z, params.splits - 1u);
    let kr = k_range(s);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    // Staging: A with consecutive invocations along k, B along n (the contiguous dimension
    // of a row-major operand, so loads coalesce).
    let a_kk = li % TK;
    let a_g = li / TK;
    let b_g = li % 16u;
    let b_kk = li / 16u;
    for (var k0 = kr.x; k0 < kr.y; k0 += TK) {
        as_t[a_kk * 16u + a_g] = load_a4(m0 + 4u * a_g, k0 + a_kk, kr.y);
        bs_t[b_kk * 16u + b_g] = load_b4(k0 + b_kk, n0 + 4u * b_g, kr.y);
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let av = as_t[kk * 16u + lid.y];
            let bv = bs_t[kk * 16u + lid.x];
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }
    if (wid.z >= params.splits) {
        return;
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + 4u * lid.y + i;
        if (m < params.m) {
            for (var j = 0u; j < 4u; j++) {
                let n = n0 + 4u * lid.x + j;
                if (n < params.n) {
                    store(s, m, n, acc[i][j]);
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn gemm_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= params.m) {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < params.splits; s++) {
        acc += a[params.a_off + s * params.c_split + i];
    }
    c[params.c_off + i] = acc;
}

@compute @workgroup_size(WG)
fn gemm_colsum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = wid.x * WG + lid;
    let s = wid.y;
    if (j >= params.n || s >= params.splits) {
        return;
    }
    let kr = k_range(s);
    var acc = 0.0;
    for (var r = kr.x; r < kr.y; r++) {
        acc += a[params.a_off + r * params.a_ms + j];
    }
    c[params.c_off + s * params.n + j] = acc;
}

@compute @workgroup_size(WG)
fn gemm_colsum4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = (wid.x * WG + lid) * 4u;
    let s = wid.y;
    if (j >= params.n || s >= params.splits) {
        return;
    }
    let kr = k_range(s);
    var acc = vec4<f32>(0.0);
    for (var r = kr.x; r < kr.y; r++) {
        acc += a4[(params.a_off + r * params.a_ms + j) >> 2u];
    }
    let o = params.c_off + s * params.n + j;
    c[o] = acc.x;
    c[o + 1u] = acc.y;
    c[o + 2u] = acc.z;
    c[o + 3u] = acc.w;
}

@compute @workgroup_size(WG)
fn gemm_transpose(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Output element o = j·m + i (consecutive lanes write consecutive addresses).
    let o = (wid.x + wid.y * nwg.x) * WG + lid;
    if (o >= params.m * params.n) {
        return;
    }
    let j = o / params.m;
    let i = o - j * params.m;
    c[params.c_off + o] = a[params.a_off + i * params.a_ms + j];
}

@compute @workgroup_size(WG)
fn gemm_zero_skipped(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // One invocation per (pixel, group of 4 channels): the pixel test is paid once per 4 zeros.
    let groups = (params.n + 3u) / 4u;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= params.m * groups) {
        return;
    }
    let q = i / groups;
    let r = q % params.g_in_hw;
    let h = r / params.g_in_w;
    let w = r - h * params.g_in_w;
    if (h % params.g_stride == 0u && w % params.g_stride == 0u) {
        return;
    }
    let ch = (i - q * groups) * 4u;
    let base = params.c_off + q * params.n + ch;
    for (var j = 0u; j < min(4u, params.n - ch); j++) {
        c[base + j] = 0.0;
    }
}
