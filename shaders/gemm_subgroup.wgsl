// gemm_subgroup.wgsl — C = A·B (+ bias) for adapters with subgroups of at least 8 lanes,
// shaped for CPU adapters such as Mesa lavapipe (see LAVAPIPE-NOTES.md): each invocation keeps
// a 32-row × 2-vec4-column register tile; K advances 32 at a time, each of lanes 0..7 loading a
// different vec4 of every A row, then subgroupShuffle hands each lane's vec4 to the whole
// subgroup, so A is loaded once per subgroup instead of once per lane. The repetition over the
// 32 rows is deliberate: the accumulators must be named registers, not an indexed array.
//
// Correct for any subgroup size ≥ 8 (lanes ≥ 8 load duplicates that nobody reads; only lanes
// 0..7 are read); kernels::gemm selects it only on adapters whose subgroup_min_size ≥ 8.
// Every invocation runs the K loop (out-of-range rows and columns are clamped for loads and
// masked for stores), so the subgroup is always full at the shuffles.
//
// Entry points
//   gemm_subgroup   C = A·B (+ bias), one split-K partial per grid z; WRITES C (no accumulation)
//
// Bindings (group 0): the table of gemm.wgsl (same addressing, same Params)
//   slot | name   | access     | shape                   | used by
//   0    | c      | read_write | C / split partials, f32 | gemm_subgroup
//   1    | a      | read       | A operand, f32          | gemm_subgroup
//   2    | b      | read       | B operand, f32          | gemm_subgroup
//   3    | bias   | read       | [n] f32 (at bias_off)   | gemm_subgroup (when has_bias)
//   4    | params | uniform    | Params                  | gemm_subgroup
//   5    | a4     | read       | slot 1 as vec4<f32>     | gemm_subgroup (read when A_MODE > 0)
//   6    | b4     | read       | slot 2 as vec4<f32>     | gemm_subgroup (read when B_MODE > 0)
//
// Params: as in gemm.wgsl (m, n, k, splits, k_chunk, a_*, b_*, c_*, bias_off, has_bias, g_*);
//   k_chunk must be a multiple of 32.
//
// Overrides: WG; A_MODE, B_MODE (u32, default 0): vec4 loads, above.
// Workgroup: WG (override, default 8) invocations along vec4 columns; invocation l of group x
//   owns columns 4·(2·WG·x + l) .. +3 and 4·(2·WG·x + WG + l) .. +3, rows 32·y .. 32·y + 31.
// Grid: (ceil(n / (8·WG)), ceil(m / 32), splits).
// Mirrors: cpu::gemm::gemm_forward (and the dense / pointwise_conv2d passes built on it).

// No `enable subgroups;`: naga 30 rejects the directive and accepts subgroup builtins
// without it (the device must have wgpu::Features::SUBGROUP).

override WG: u32 = 8u;
// Pipeline constants: A_MODE 1 reads A as vec4s along k through a4; A_MODE 2 reads a
// transposed A (a_ms = 1) as vec4s along m and transposes 4×4 blocks in registers; B_MODE 1
// reads B rows as vec4s through b4; 0 reads scalars. The Rust side selects a mode only where
// it has proved every such vec4 aligned and inside its row (kernels::gemm::GemmSpec::a_mode
// and b_mode): one vec4 load costs a CPU adapter less than four scalar ones (~1.4× measured
// for B rows, ~3× for the transposed A of the weight gradient). A transposed B read as vec4s
// along k measured no faster than scalars, so it has no mode.
override A_MODE: u32 = 0u;
override B_MODE: u32 = 0u;

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
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

const ROWS: u32 = 32u;

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

// Offset of row m of A (clamped to the last row: rows past m are computed but never stored).
fn a_row(m: u32) -> u32 {
    return params.a_off + gather(min(m, params.m - 1u), params.a_gather == 1u) * params.a_ms;
}

// A(m, kv.x .. kv.w) given the row offset; zero where k is outside this split.
fn a_vec(row: u32, ko: vec4<u32>, live: vec4<bool>) -> vec4<f32> {
    var v: vec4<f32>;
    if (A_MODE == 1u) {
        v = a4[(row + ko.x) >> 2u];
    } else {
        v = vec4<f32>(a[row + ko.x], a[row + ko.y], a[row + ko.z], a[row + ko.w]);
    }
    return select(vec4<f32>(0.0), v, live);
}

// B(row, four columns) given the row offset and the (clamped) column offsets.
fn b_vec(row: u32, co: vec4<u32>) -> vec4<f32> {
    if (B_MODE == 1u) {
        return b4[(row + co.x) >> 2u];
    }
    return vec4<f32>(b[row + co.x], b[row + co.y], b[row + co.z], b[row + co.w]);
}

// A(m .. m+3, the four k at offsets ko) for A_MODE 2: column j of the result is row m + j
// (rows clamped to the last block; the caller guarantees m_count % 4 == 0).
fn a_block(m: u32, ko: vec4<u32>) -> mat4x4<f32> {
    let r = params.a_off + min(m, params.m - 4u);
    return transpose(mat4x4<f32>(
        a4[(r + ko.x) >> 2u], a4[(r + ko.y) >> 2u], a4[(r + ko.z) >> 2u], a4[(r + ko.w) >> 2u]
    ));
}

// B(k .. k+3, four columns) as the columns of a matrix (so that B · a = Σ_t a[t]·B(k+t, ·)),
// rows past K clamped (A is zero there).
fn b_mat(k: u32, co: vec4<u32>) -> mat4x4<f32> {
    let kr = min(vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.k - 1u)) * params.b_ks;
    return mat4x4<f32>(b_vec(kr.x, co), b_vec(kr.y, co), b_vec(kr.z, co), b_vec(kr.w, co));
}

// Bias of four columns (zero without bias), loaded once per invocation, not per row.
fn bias4(co: vec4<u32>) -> vec4<f32> {
    if (params.has_bias == 0u) {
        return vec4<f32>(0.0);
    }
    let o = params.bias_off + co;
    return vec4<f32>(bias[o.x], bias[o.y], bias[o.z], bias[o.w]);
}

fn store4(s: u32, m: u32, n: u32, v: vec4<f32>) {
    if (m >= params.m) {
        return;
    }
    let base = params.c_off + s * params.c_split + gather(m, params.c_gather == 1u) * params.c_ms + n;
    if (n + 3u < params.n) {
        c[base] = v.x;
        c[base + 1u] = v.y;
        c[base + 2u] = v.z;
        c[base + 3u] = v.w;
        return;
    }
    for (var i = 0u; i < 4u; i++) {
        if (n + i < params.n) {
            c[base + i] = v[i];
        }
    }
}

@compute @workgroup_size(WG)
fn gemm_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let s = wid.z;
    let m0 = wid.y * ROWS;
    let n0 = (wid.x * 2u * WG + lid) * 4u;
    let n1 = n0 + WG * 4u;
    let k_lo = s * params.k_chunk;
    let k_hi = min(params.k, k_lo + params.k_chunk);
    let last_n = vec4<u32>(params.n - 1u);
    let last_k = vec4<u32>(params.k - 1u);
    let step = vec4<u32>(0u, 1u, 2u, 3u);
    let co0 = params.b_off + min(vec4<u32>(n0) + step, last_n) * params.b_ns;
    let co1 = params.b_off + min(vec4<u32>(n1) + step, last_n) * params.b_ns;
    let a_gk = params.a_gather == 2u;
    let ro0 = a_row(m0 + 0u);
    let ro1 = a_row(m0 + 1u);
    let ro2 = a_row(m0 + 2u);
    let ro3 = a_row(m0 + 3u);
    let ro4 = a_row(m0 + 4u);
    let ro5 = a_row(m0 + 5u);
    let ro6 = a_row(m0 + 6u);
    let ro7 = a_row(m0 + 7u);
    let ro8 = a_row(m0 + 8u);
    let ro9 = a_row(m0 + 9u);
    let ro10 = a_row(m0 + 10u);
    let ro11 = a_row(m0 + 11u);
    let ro12 = a_row(m0 + 12u);
    let ro13 = a_row(m0 + 13u);
    let ro14 = a_row(m0 + 14u);
    let ro15 = a_row(m0 + 15u);
    let ro16 = a_row(m0 + 16u);
    let ro17 = a_row(m0 + 17u);
    let ro18 = a_row(m0 + 18u);
    let ro19 = a_row(m0 + 19u);
    let ro20 = a_row(m0 + 20u);
    let ro21 = a_row(m0 + 21u);
    let ro22 = a_row(m0 + 22u);
    let ro23 = a_row(m0 + 23u);
    let ro24 = a_row(m0 + 24u);
    let ro25 = a_row(m0 + 25u);
    let ro26 = a_row(m0 + 26u);
    let ro27 = a_row(m0 + 27u);
    let ro28 = a_row(m0 + 28u);
    let ro29 = a_row(m0 + 29u);
    let ro30 = a_row(m0 + 30u);
    let ro31 = a_row(m0 + 31u);
    var c0a = vec4<f32>(0.0);
    var c0b = vec4<f32>(0.0);
    var c1a = vec4<f32>(0.0);
    var c1b = vec4<f32>(0.0);
    var c2a = vec4<f32>(0.0);
    var c2b = vec4<f32>(0.0);
    var c3a = vec4<f32>(0.0);
    var c3b = vec4<f32>(0.0);
    var c4a = vec4<f32>(0.0);
    var c4b = vec4<f32>(0.0);
    var c5a = vec4<f32>(0.0);
    var c5b = vec4<f32>(0.0);
    var c6a = vec4<f32>(0.0);
    var c6b = vec4<f32>(0.0);
    var c7a = vec4<f32>(0.0);
    var c7b = vec4<f32>(0.0);
    var c8a = vec4<f32>(0.0);
    var c8b = vec4<f32>(0.0);
    var c9a = vec4<f32>(0.0);
    var c9b = vec4<f32>(0.0);
    var c10a = vec4<f32>(0.0);
    var c10b = vec4<f32>(0.0);
    var c11a = vec4<f32>(0.0);
    var c11b = vec4<f32>(0.0);
    var c12a = vec4<f32>(0.0);
    var c12b = vec4<f32>(0.0);
    var c13a = vec4<f32>(0.0);
    var c13b = vec4<f32>(0.0);
    var c14a = vec4<f32>(0.0);
    var c14b = vec4<f32>(0.0);
    var c15a = vec4<f32>(0.0);
    var c15b = vec4<f32>(0.0);
    var c16a = vec4<f32>(0.0);
    var c16b = vec4<f32>(0.0);
    var c17a = vec4<f32>(0.0);
    var c17b = vec4<f32>(0.0);
    var c18a = vec4<f32>(0.0);
    var c18b = vec4<f32>(0.0);
    var c19a = vec4<f32>(0.0);
    var c19b = vec4<f32>(0.0);
    var c20a = vec4<f32>(0.0);
    var c20b = vec4<f32>(0.0);
    var c21a = vec4<f32>(0.0);
    var c21b = vec4<f32>(0.0);
    var c22a = vec4<f32>(0.0);
    var c22b = vec4<f32>(0.0);
    var c23a = vec4<f32>(0.0);
    var c23b = vec4<f32>(0.0);
    var c24a = vec4<f32>(0.0);
    var c24b = vec4<f32>(0.0);
    var c25a = vec4<f32>(0.0);
    var c25b = vec4<f32>(0.0);
    var c26a = vec4<f32>(0.0);
    var c26b = vec4<f32>(0.0);
    var c27a = vec4<f32>(0.0);
    var c27b = vec4<f32>(0.0);
    var c28a = vec4<f32>(0.0);
    var c28b = vec4<f32>(0.0);
    var c29a = vec4<f32>(0.0);
    var c29b = vec4<f32>(0.0);
    var c30a = vec4<f32>(0.0);
    var c30b = vec4<f32>(0.0);
    var c31a = vec4<f32>(0.0);
    var c31b = vec4<f32>(0.0);
    for (var k0 = k_lo; k0 < k_hi; k0 += 32u) {
        // This lane's four k of the 32: k0 + 4·(lane mod 8) + 0..3.
        let kv = vec4<u32>(k0 + 4u * (lane % 8u)) + step;
        let live = kv < vec4<u32>(k_hi);
        let kc = min(kv, last_k);
        let ko = vec4<u32>(
            gather(kc.x, a_gk), gather(kc.y, a_gk), gather(kc.z, a_gk), gather(kc.w, a_gk)
        ) * params.a_ks;
        var a0: vec4<f32>;
        var a1: vec4<f32>;
        var a2: vec4<f32>;
        var a3: vec4<f32>;
        var a4: vec4<f32>;
        var a5: vec4<f32>;
        var a6: vec4<f32>;
        var a7: vec4<f32>;
        var a8: vec4<f32>;
        var a9: vec4<f32>;
        var a10: vec4<f32>;
        var a11: vec4<f32>;
        var a12: vec4<f32>;
        var a13: vec4<f32>;
        var a14: vec4<f32>;
        var a15: vec4<f32>;
        var a16: vec4<f32>;
        var a17: vec4<f32>;
        var a18: vec4<f32>;
        var a19: vec4<f32>;
        var a20: vec4<f32>;
        var a21: vec4<f32>;
        var a22: vec4<f32>;
        var a23: vec4<f32>;
        var a24: vec4<f32>;
        var a25: vec4<f32>;
        var a26: vec4<f32>;
        var a27: vec4<f32>;
        var a28: vec4<f32>;
        var a29: vec4<f32>;
        var a30: vec4<f32>;
        var a31: vec4<f32>;
        if (A_MODE == 2u) {
            let t0 = a_block(m0 + 0u, ko);
            a0 = select(vec4<f32>(0.0), t0[0], live);
            a1 = select(vec4<f32>(0.0), t0[1], live);
            a2 = select(vec4<f32>(0.0), t0[2], live);
            a3 = select(vec4<f32>(0.0), t0[3], live);
            let t1 = a_block(m0 + 4u, ko);
            a4 = select(vec4<f32>(0.0), t1[0], live);
            a5 = select(vec4<f32>(0.0), t1[1], live);
            a6 = select(vec4<f32>(0.0), t1[2], live);
            a7 = select(vec4<f32>(0.0), t1[3], live);
            let t2 = a_block(m0 + 8u, ko);
            a8 = select(vec4<f32>(0.0), t2[0], live);
            a9 = select(vec4<f32>(0.0), t2[1], live);
            a10 = select(vec4<f32>(0.0), t2[2], live);
            a11 = select(vec4<f32>(0.0), t2[3], live);
            let t3 = a_block(m0 + 12u, ko);
            a12 = select(vec4<f32>(0.0), t3[0], live);
            a13 = select(vec4<f32>(0.0), t3[1], live);
            a14 = select(vec4<f32>(0.0), t3[2], live);
            a15 = select(vec4<f32>(0.0), t3[3], live);
            let t4 = a_block(m0 + 16u, ko);
            a16 = select(vec4<f32>(0.0), t4[0], live);
            a17 = select(vec4<f32>(0.0), t4[1], live);
            a18 = select(vec4<f32>(0.0), t4[2], live);
            a19 = select(vec4<f32>(0.0), t4[3], live);
            let t5 = a_block(m0 + 20u, ko);
            a20 = select(vec4<f32>(0.0), t5[0], live);
            a21 = select(vec4<f32>(0.0), t5[1], live);
            a22 = select(vec4<f32>(0.0), t5[2], live);
            a23 = select(vec4<f32>(0.0), t5[3], live);
            let t6 = a_block(m0 + 24u, ko);
            a24 = select(vec4<f32>(0.0), t6[0], live);
            a25 = select(vec4<f32>(0.0), t6[1], live);
            a26 = select(vec4<f32>(0.0), t6[2], live);
            a27 = select(vec4<f32>(0.0), t6[3], live);
            let t7 = a_block(m0 + 28u, ko);
            a28 = select(vec4<f32>(0.0), t7[0], live);
            a29 = select(vec4<f32>(0.0), t7[1], live);
            a30 = select(vec4<f32>(0.0), t7[2], live);
            a31 = select(vec4<f32>(0.0), t7[3], live);
        } else {
            a0 = a_vec(ro0, ko, live);
            a1 = a_vec(ro1, ko, live);
            a2 = a_vec(ro2, ko, live);
            a3 = a_vec(ro3, ko, live);
            a4 = a_vec(ro4, ko, live);
            a5 = a_vec(ro5, ko, live);
            a6 = a_vec(ro6, ko, live);
            a7 = a_vec(ro7, ko, live);
            a8 = a_vec(ro8, ko, live);
            a9 = a_vec(ro9, ko, live);
            a10 = a_vec(ro10, ko, live);
            a11 = a_vec(ro11, ko, live);
            a12 = a_vec(ro12, ko, live);
            a13 = a_vec(ro13, ko, live);
            a14 = a_vec(ro14, ko, live);
            a15 = a_vec(ro15, ko, live);
            a16 = a_vec(ro16, ko, live);
            a17 = a_vec(ro17, ko, live);
            a18 = a_vec(ro18, ko, live);
            a19 = a_vec(ro19, ko, live);
            a20 = a_vec(ro20, ko, live);
            a21 = a_vec(ro21, ko, live);
            a22 = a_vec(ro22, ko, live);
            a23 = a_vec(ro23, ko, live);
            a24 = a_vec(ro24, ko, live);
            a25 = a_vec(ro25, ko, live);
            a26 = a_vec(ro26, ko, live);
            a27 = a_vec(ro27, ko, live);
            a28 = a_vec(ro28, ko, live);
            a29 = a_vec(ro29, ko, live);
            a30 = a_vec(ro30, ko, live);
            a31 = a_vec(ro31, ko, live);
        }
        for (var j = 0u; j < 8u; j++) {
            // Rows k0 + 4j .. 4j+3 of B.
            let b0 = b_mat(k0 + 4u * j, co0);
            let b1 = b_mat(k0 + 4u * j, co1);
            let s0 = subgroupShuffle(a0, j);
            c0a += b0 * s0;
            c0b += b1 * s0;
            let s1 = subgroupShuffle(a1, j);
            c1a += b0 * s1;
            c1b += b1 * s1;
            let s2 = subgroupShuffle(a2, j);
            c2a += b0 * s2;
            c2b += b1 * s2;
            let s3 = subgroupShuffle(a3, j);
            c3a += b0 * s3;
            c3b += b1 * s3;
            let s4 = subgroupShuffle(a4, j);
            c4a += b0 * s4;
            c4b += b1 * s4;
            let s5 = subgroupShuffle(a5, j);
            c5a += b0 * s5;
            c5b += b1 * s5;
            let s6 = subgroupShuffle(a6, j);
            c6a += b0 * s6;
            c6b += b1 * s6;
            let s7 = subgroupShuffle(a7, j);
            c7a += b0 * s7;
            c7b += b1 * s7;
            let s8 = subgroupShuffle(a8, j);
            c8a += b0 * s8;
            c8b += b1 * s8;
            let s9 = subgroupShuffle(a9, j);
            c9a += b0 * s9;
            c9b += b1 * s9;
            let s10 = subgroupShuffle(a10, j);
            c10a += b0 * s10;
            c10b += b1 * s10;
            let s11 = subgroupShuffle(a11, j);
            c11a += b0 * s11;
            c11b += b1 * s11;
            let s12 = subgroupShuffle(a12, j);
            c12a += b0 * s12;
            c12b += b1 * s12;
            let s13 = subgroupShuffle(a13, j);
            c13a += b0 * s13;
            c13b += b1 * s13;
            let s14 = subgroupShuffle(a14, j);
            c14a += b0 * s14;
            c14b += b1 * s14;
            let s15 = subgroupShuffle(a15, j);
            c15a += b0 * s15;
            c15b += b1 * s15;
            let s16 = subgroupShuffle(a16, j);
            c16a += b0 * s16;
            c16b += b1 * s16;
            let s17 = subgroupShuffle(a17, j);
            c17a += b0 * s17;
            c17b += b1 * s17;
            let s18 = subgroupShuffle(a18, j);
            c18a += b0 * s18;
            c18b += b1 * s18;
            let s19 = subgroupShuffle(a19, j);
            c19a += b0 * s19;
            c19b += b1 * s19;
            let s20 = subgroupShuffle(a20, j);
            c20a += b0 * s20;
            c20b += b1 * s20;
            let s21 = subgroupShuffle(a21, j);
            c21a += b0 * s21;
            c21b += b1 * s21;
            let s22 = subgroupShuffle(a22, j);
            c22a += b0 * s22;
            c22b += b1 * s22;
            let s23 = subgroupShuffle(a23, j);
            c23a += b0 * s23;
            c23b += b1 * s23;
            let s24 = subgroupShuffle(a24, j);
            c24a += b0 * s24;
            c24b += b1 * s24;
            let s25 = subgroupShuffle(a25, j);
            c25a += b0 * s25;
            c25b += b1 * s25;
            let s26 = subgroupShuffle(a26, j);
            c26a += b0 * s26;
            c26b += b1 * s26;
            let s27 = subgroupShuffle(a27, j);
            c27a += b0 * s27;
            c27b += b1 * s27;
            let s28 = subgroupShuffle(a28, j);
            c28a += b0 * s28;
            c28b += b1 * s28;
            let s29 = subgroupShuffle(a29, j);
            c29a += b0 * s29;
            c29b += b1 * s29;
            let s30 = subgroupShuffle(a30, j);
            c30a += b0 * s30;
            c30b += b1 * s30;
            let s31 = subgroupShuffle(a31, j);
            c31a += b0 * s31;
            c31b += b1 * s31;
        }
    }
    let bias0 = bias4(min(vec4<u32>(n0) + step, last_n));
    let bias1 = bias4(min(vec4<u32>(n1) + step, last_n));
    store4(s, m0 + 0u, n0, c0a + bias0);
    store4(s, m0 + 0u, n1, c0b + bias1);
    store4(s, m0 + 1u, n0, c1a + bias0);
    store4(s, m0 + 1u, n1, c1b + bias1);
    store4(s, m0 + 2u, n0, c2a + bias0);
    store4(s, m0 + 2u, n1, c2b + bias1);
    store4(s, m0 + 3u, n0, c3a + bias0);
    store4(s, m0 + 3u, n1, c3b + bias1);
    store4(s, m0 + 4u, n0, c4a + bias0);
    store4(s, m0 + 4u, n1, c4b + bias1);
    store4(s, m0 + 5u, n0, c5a + bias0);
    store4(s, m0 + 5u, n1, c5b + bias1);
    store4(s, m0 + 6u, n0, c6a + bias0);
    store4(s, m0 + 6u, n1, c6b + bias1);
    store4(s, m0 + 7u, n0, c7a + bias0);
    store4(s, m0 + 7u, n1, c7b + bias1);
    store4(s, m0 + 8u, n0, c8a + bias0);
    store4(s, m0 + 8u, n1, c8b + bias1);
    store4(s, m0 + 9u, n0, c9a + bias0);
    store4(s, m0 + 9u, n1, c9b + bias1);
    store4(s, m0 + 10u, n0, c10a + bias0);
    store4(s, m0 + 10u, n1, c10b + bias1);
    store4(s, m0 + 11u, n0, c11a + bias0);
    store4(s, m0 + 11u, n1, c11b + bias1);
    store4(s, m0 + 12u, n0, c12a + bias0);
    store4(s, m0 + 12u, n1, c12b + bias1);
    store4(s, m0 + 13u, n0, c13a + bias0);
    store4(s, m0 + 13u, n1, c13b + bias1);
    store4(s, m0 + 14u, n0, c14a + bias0);
    store4(s, m0 + 14u, n1, c14b + bias1);
    store4(s, m0 + 15u, n0, c15a + bias0);
    store4(s, m0 + 15u, n1, c15b + bias1);
    store4(s, m0 + 16u, n0, c16a + bias0);
    store4(s, m0 + 16u, n1, c16b + bias1);
    store4(s, m0 + 17u, n0, c17a + bias0);
    store4(s, m0 + 17u, n1, c17b + bias1);
    store4(s, m0 + 18u, n0, c18a + bias0);
    store4(s, m0 + 18u, n1, c18b + bias1);
    store4(s, m0 + 19u, n0, c19a + bias0);
    store4(s, m0 + 19u, n1, c19b + bias1);
    store4(s, m0 + 20u, n0, c20a + bias0);
    store4(s, m0 + 20u, n1, c20b + bias1);
    store4(s, m0 + 21u, n0, c21a + bias0);
    store4(s, m0 + 21u, n1, c21b + bias1);
    store4(s, m0 + 22u, n0, c22a + bias0);
    store4(s, m0 + 22u, n1, c22b + bias1);
    store4(s, m0 + 23u, n0, c23a + bias0);
    store4(s, m0 + 23u, n1, c23b + bias1);
    store4(s, m0 + 24u, n0, c24a + bias0);
    store4(s, m0 + 24u, n1, c24b + bias1);
    store4(s, m0 + 25u, n0, c25a + bias0);
    store4(s, m0 + 25u, n1, c25b + bias1);
    store4(s, m0 + 26u, n0, c26a + bias0);
    store4(s, m0 + 26u, n1, c26b + bias1);
    store4(s, m0 + 27u, n0, c27a + bias0);
    store4(s, m0 + 27u, n1, c27b + bias1);
    store4(s, m0 + 28u, n0, c28a + bias0);
    store4(s, m0 + 28u, n1, c28b + bias1);
    store4(s, m0 + 29u, n0, c29a + bias0);
    store4(s, m0 + 29u, n1, c29b + bias1);
    store4(s, m0 + 30u, n0, c30a + bias0);
    store4(s, m0 + 30u, n1, c30b + bias1);
    store4(s, m0 + 31u, n0, c31a + bias0);
    store4(s, m0 + 31u, n1, c31b + bias1);
}
