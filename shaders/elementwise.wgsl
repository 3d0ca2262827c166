// elementwise.wgsl — the residual add and inverted dropout, over flat f32 tensors of any layout.
//
// Entry points
//   add_forward              y = a + b                                  writes y
//   add_backward             da = dy, db = dy (the gradient fan-out)    writes da and db
//   add_backward_accumulate  grad += dy (one branch whose gradient buffer already holds other
//                            contributions; call once per such branch)  accumulates into grad
//   dropout_forward          y = x · keep(seed, i) / (1 − rate)         writes y
//   dropout_backward         dx = dy · keep(seed, i) / (1 − rate)       writes dx
//     keep(seed, i) = u ≥ rate with u = (pcg_hash(i + pcg_hash(seed)) >> 8) / 2^24 in [0, 1):
//     the mask is recomputed from (seed, index), never stored; backward needs the forward's seed.
//
// Bindings (group 0)
//   slot | name   | access     | shape      | used by
//   0    | out    | read_write | [len] f32  | add_forward (y), add_backward (da),
//        |        |            |            | add_backward_accumulate (grad, read and written),
//        |        |            |            | dropout_forward (y), dropout_backward (dx)
//   1    | out2   | read_write | [len] f32  | add_backward (db)
//   2    | a      | read       | [len] f32  | add_forward (a), add_backward and
//        |        |            |            | add_backward_accumulate (dy), dropout_forward (x),
//        |        |            |            | dropout_backward (dy)
//   3    | b      | read       | [len] f32  | add_forward (b)
//   4    | params | uniform    | Params     | all
//
// Params: len (u32, element count), seed (u32, dropout; the trainer changes it every step),
//   rate (f32, dropout rate in [0, 1)), _pad0.
// Workgroup: WG (override, default 64) invocations; each handles 4 elements spaced WG apart
//   (consecutive invocations touch consecutive addresses: coalesced).
// Grid: kernels::grid_1d(ceil(len / (4·WG))); linear group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::elementwise::{add_forward, add_backward, add_backward_accumulate,
//   dropout_forward, dropout_backward, pcg_hash, dropout_keep}.

override WG: u32 = 64u;

const PER_INVOCATION: u32 = 4u;

struct Params {
    len: u32,
    seed: u32,
    rate: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> out2: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

fn first_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * PER_INVOCATION + lid;
}

// PCG-RXS-M-XS output permutation (Jarzynski & Olano 2020); u32 arithmetic wraps in WGSL.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// x · keep / (1 − rate) for element i: the one map both dropout passes apply.
fn dropout_at(i: u32, v: f32, key: u32, scale: f32) -> f32 {
    let u = f32(pcg_hash(i + key) >> 8u) * (1.0 / 16777216.0);
    return select(0.0, v * scale, u >= params.rate);
}

@compute @workgroup_size(WG)
fn add_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < PER_INVOCATION; k++) {
        let i = base + k * WG;
        if (i < params.len) {
            out[i] = a[i] + b[i];
        }
    }
}

@compute @workgroup_size(WG)
fn add_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < PER_INVOCATION; k++) {
        let i = base + k * WG;
        if (i < params.len) {
            let g = a[i];
            out[i] = g;
            out2[i] = g;
        }
    }
}

@compute @workgroup_size(WG)
fn add_backward_accumulate(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < PER_INVOCATION; k++) {
        let i = base + k * WG;
        if (i < params.len) {
            out[i] += a[i];
        }
    }
}

@compute @workgroup_size(WG)
fn dropout_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    let key = pcg_hash(params.seed);
    let scale = 1.0 / (1.0 - params.rate);
    for (var k = 0u; k < PER_INVOCATION; k++) {
        let i = base + k * WG;
        if (i < params.len) {
            out[i] = dropout_at(i, a[i], key, scale);
        }
    }
}

@compute @workgroup_size(WG)
fn dropout_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    let key = pcg_hash(params.seed);
    let scale = 1.0 / (1.0 - params.rate);
    for (var k = 0u; k < PER_INVOCATION; k++) {
        let i = base + k * WG;
        if (i < params.len) {
            out[i] = dropout_at(i, a[i], key, scale);
        }
    }
}
