// batch_norm.wgsl — batch normalisation (Keras semantics), channels last: x viewed as [M, C] with
// M = N·H·W rows. Per-channel statistics are reduced in two stages: per-chunk partials into a
// caller-provided scratch buffer, then a final pass over the chunks.
//
// Entry points (pass `forward_train` = partial, finalize, normalize; pass `backward` = partial,
// finalize, input; passes `forward_inference` and `fold` = one dispatch each)
//   batch_norm_forward_train_partial    per (chunk, channel): Welford count/mean/M2 of the chunk's
//                                       rows, merged across the workgroup's row lanes with Chan's
//                                       formula. writes scratch
//   batch_norm_forward_train_finalize   per channel: Chan-merges the chunk partials; writes mean and
//                                       inv_std = 1/sqrt(var + ε) (var biased, over M); updates
//                                       moving_mean/var ← momentum·moving + (1 − momentum)·batch
//                                       (read-modify-write)
//   batch_norm_forward_train_normalize  y = γ·(x − mean)·inv_std + β. writes y
//   batch_norm_forward_inference        y = γ·(x − moving_mean)/sqrt(moving_var + ε) + β, the
//                                       moving statistics read-only (slots 15, 16). writes y
//   batch_norm_backward_partial         per (chunk, channel): Σdy and Σdy·(x − mean). writes scratch
//   batch_norm_backward_finalize        dβ = Σdy, dγ = Σdy·x̂ with x̂ = (x − mean)·inv_std.
//                                       writes dgamma, dbeta (does not accumulate), and
//                                       backward_input's per-channel factors into scratch
//                                       [5, C]: mean, γ·inv_std, dβ/M, dγ·inv_std/M, β
//   batch_norm_backward_input           dx = γ·inv_std·(dy − dβ/M − x̂·dγ/M), from x, dy and
//                                       the factors in scratch (4 storage buffers). writes dx
//   batch_norm_fold                     the inference batch norm folded into the convolution
//                                       before it: x is the kernel W viewed as [M = k·k·Cin, C],
//                                       out = W'[r, c] = W[r, c]·s[c], folded_bias = b'[c] =
//                                       (conv_bias[c] − moving_mean[c])·s[c] + β[c], with
//                                       s = γ/sqrt(moving_var + ε), the moving statistics
//                                       read-only (slots 15, 16). writes out, folded_bias
//
// With Params.relu = 1 a ReLU that follows the batch norm is fused in (the graph plans this
// where the ReLU is the batch norm's only consumer): the forward passes write max(y, 0), and
// the backward passes read dy as the ReLU's output gradient, masked where y ≤ 0. The mask is
// recomputed from x and the saved statistics (y = (x − mean)·γ·inv_std + β, the expression the
// forward evaluated, so the same sign), which costs no load the passes do not already make.
//
// Bindings (group 0)
//   slot | name        | access     | shape             | used by
//   0    | out         | read_write | [M, C] f32        | forward_train_normalize, forward_inference (y),
//        |             |            |                   | backward_input (dx), fold (W')
//   1    | x           | read       | [M, C] f32        | all but the finalize passes (fold: W)
//   2    | dy          | read       | [M, C] f32        | backward_partial, backward_input
//   3    | gamma       | read       | [C] f32           | normalize, inference, backward_partial
//        |             |            |                   | (relu mask), backward_finalize
//   4    | beta        | read       | [C] f32           | normalize, inference, backward_partial
//        |             |            |                   | (relu mask), backward_finalize
//   5    | mean        | read_write | [C] f32           | saved: written by forward_train_finalize,
//        |             |            |                   | read by normalize and the backward passes
//   6    | inv_std     | read_write | [C] f32           | as mean
//   7    | moving_mean | read_write | [C] f32           | forward_train_finalize (updated)
//   8    | moving_var  | read_write | [C] f32           | as moving_mean
//   9    | dgamma      | read_write | [C] f32           | backward_finalize (writes)
//   10   | dbeta       | read_write | [C] f32           | as dgamma
//   11   | scratch     | read_write | [max(2·chunks, 5), C] f32 | partials: forward (chunk mean;
//        |             |            |                   | chunk M2), backward (Σdy; Σdy·(x − mean));
//        |             |            |                   | then backward_input's factors [5, C]
//   12   | params      | uniform    | Params            | all
//   13   | folded_bias | read_write | [C] f32           | fold (b')
//   14   | conv_bias   | read       | [C] f32           | fold (the convolution's bias b)
//   15   | stat_mean   | read       | [C] f32           | forward_inference, fold (the moving mean)
//   16   | stat_var    | read       | [C] f32           | forward_inference, fold (the moving variance)
//
// Params: rows (M), channels (C), rows_per_chunk, chunks (= ceil(M / rows_per_chunk)),
//   momentum (f32, Keras 0.99), epsilon (f32, Keras 1e-3), relu (1: ReLU fused, see above), _pad1.
//   Chunk k holds rows [k·rows_per_chunk, min((k+1)·rows_per_chunk, M)); its count is implied.
//   Any rows_per_chunk ≥ 1 is correct as long as chunks ≤ 65,535 (the grid's y dimension);
//   gpucnn uses rows_per_chunk = max(ceil(M / 1024), 128) for the partial passes, so chunks ≤
//   1024 (the finalize passes loop over them), and max(ceil(M / 65535), 32) for the
//   elementwise passes (normalize, inference, backward_input), whose chunks nothing reads
//   back: short chunks keep the workgroups that run in turn on neighbouring rows.
// Workgroup: (CW, RL) = CW consecutive channels (consecutive addresses: coalesced) × RL row lanes
//   (overrides; CW·RL ≤ 256, RL a power of two). RL = 1 (the software-adapter variant) needs no
//   workgroup memory and no barrier; RL > 1 merges the lanes with a workgroup-memory tree.
//   The finalize passes use FW (override, default 64) invocations, one per channel.
// Grid: (ceil(C / CW), chunks, 1) for the row passes and fold; (ceil(C / FW), 1, 1) for the
//   finalize passes.
// Mirrors: cpu::batch_norm::batch_norm_forward_train, cpu::batch_norm::batch_norm_forward_inference,
//   cpu::batch_norm::batch_norm_backward, cpu::batch_norm::batch_norm_fold.

override CW: u32 = 64u;
override RL: u32 = 4u;
override FW: u32 = 64u;

const MAX_WG: u32 = 256u;

// Channels per lane: this file is written once for a lane of VW consecutive channels held in a
// V. As committed, VW = 1 and V = f32; kernels::batch_norm compiles a vec4 form for C
// divisible by 4 (gpu::shader::lane_form: VW = 4, V = vec4<f32>, every array<V> an
// array<vec4<f32>>): a lane then loads 16 bytes at a time, which a texture mirror serves as
// one texel fetch instead of four. Channel indices below (c, C) count lanes, not channels.
alias V = f32;
const VW: u32 = 1u;

struct Params {
    rows: u32,
    channels: u32,
    rows_per_chunk: u32,
    chunks: u32,
    momentum: f32,
    epsilon: f32,
    relu: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<V>;
@group(0) @binding(1) var<storage, read> x: array<V>;
@group(0) @binding(2) var<storage, read> dy: array<V>;
@group(0) @binding(3) var<storage, read> gamma: array<V>;
@group(0) @binding(4) var<storage, read> beta: array<V>;
@group(0) @binding(5) var<storage, read_write> mean: array<V>;
@group(0) @binding(6) var<storage, read_write> inv_std: array<V>;
@group(0) @binding(7) var<storage, read_write> moving_mean: array<V>;
@group(0) @binding(8) var<storage, read_write> moving_var: array<V>;
@group(0) @binding(9) var<storage, read_write> dgamma: array<V>;
@group(0) @binding(10) var<storage, read_write> dbeta: array<V>;
@group(0) @binding(11) var<storage, read_write> scratch: array<V>;
@group(0) @binding(12) var<uniform> params: Params;
@group(0) @binding(13) var<storage, read_write> folded_bias: array<V>;
@group(0) @binding(14) var<storage, read> conv_bias: array<V>;
// The moving statistics again, read-only, for inference: an inference program can keep every
// weight in read-only buffers (slots 7 and 8 are read_write because training updates them).
@group(0) @binding(15) var<storage, read> stat_mean: array<V>;
@group(0) @binding(16) var<storage, read> stat_var: array<V>;

// Lanes of VW channels per row: C in the passes below.
fn lanes_c() -> u32 {
    return params.channels / VW;
}

// Row-lane partials, merged by a tree when RL > 1: (count, mean, M2) or (Σa, Σb, unused).
var<workgroup> wg_a: array<V, MAX_WG>;
var<workgroup> wg_b: array<V, MAX_WG>;
var<workgroup> wg_n: array<f32, MAX_WG>;

// Welford/Chan state of a set of values.
struct Moments {
    n: f32,
    mean: V,
    m2: V,
}

// Chan et al.'s pairwise merge: exact in exact arithmetic, and stable (no E[x²] − E[x]²).
fn merge(a: Moments, b: Moments) -> Moments {
    let n = a.n + b.n;
    if (n == 0.0) {
        return a;
    }
    let d = b.mean - a.mean;
    let fb = b.n / n;
    return Moments(n, a.mean + d * fb, a.m2 + b.m2 + d * d * a.n * fb);
}

// The row range [first, end) of this workgroup's chunk.
fn chunk_rows(chunk: u32) -> vec2<u32> {
    let first = chunk * params.rows_per_chunk;
    return vec2<u32>(first, min(first + params.rows_per_chunk, params.rows));
}

@compute @workgroup_size(CW, RL)
fn batch_norm_forward_train_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let c = wid.x * CW + lid.x;
    let chunk = wid.y;
    let C = lanes_c();
    let live = c < C && chunk < params.chunks;
    var st = Moments(0.0, V(0.0), V(0.0));
    if (live) {
        let range = chunk_rows(chunk);
        for (var r = range.x + lid.y; r < range.y; r += RL) {
            let v = x[r * C + c];
            st.n += 1.0;
            let d = v - st.mean;
            st.mean += d / st.n;
            st.m2 += d * (v - st.mean);
        }
    }
    if (RL > 1u) {
        let slot = lid.y * CW + lid.x;
        wg_n[slot] = st.n;
        wg_a[slot] = st.mean;
        wg_b[slot] = st.m2;
        workgroupBarrier();
        for (var s = RL / 2u; s > 0u; s /= 2u) {
            if (lid.y < s) {
                let o = slot + s * CW;
                let m = merge(Moments(wg_n[slot], wg_a[slot], wg_b[slot]),
                              Moments(wg_n[o], wg_a[o], wg_b[o]));
                wg_n[slot] = m.n;
                wg_a[slot] = m.mean;
                wg_b[slot] = m.m2;
            }
            workgroupBarrier();
        }
        st = Moments(wg_n[lid.x], wg_a[lid.x], wg_b[lid.x]);
    }
    if (live && lid.y == 0u) {
        scratch[chunk * C + c] = st.mean;
        scratch[(params.chunks + chunk) * C + c] = st.m2;
    }
}

@compute @workgroup_size(FW)
fn batch_norm_forward_train_finalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wid.x * FW + lid;
    let C = lanes_c();
    if (c >= C) {
        return;
    }
    var st = Moments(0.0, V(0.0), V(0.0));
    for (var k = 0u; k < params.chunks; k++) {
        let range = chunk_rows(k);
        let part = Moments(f32(range.y - range.x), scratch[k * C + c], scratch[(params.chunks + k) * C + c]);
        st = merge(st, part);
    }
    let var_b = st.m2 / f32(params.rows);
    mean[c] = st.mean;
    inv_std[c] = 1.0 / sqrt(var_b + params.epsilon);
    let keep = params.momentum;
    moving_mean[c] = keep * moving_mean[c] + (1.0 - keep) * st.mean;
    moving_var[c] = keep * moving_var[c] + (1.0 - keep) * var_b;
}

// y = (x − centre)·scale + shift (then max(y, 0) with the fused ReLU) over this workgroup's
// chunk, for channel c.
fn normalize_chunk(c: u32, chunk: u32, lane: u32, centre: V, scale: V, shift: V) {
    let C = lanes_c();
    let range = chunk_rows(chunk);
    let relu = params.relu != 0u;
    for (var r = range.x + lane; r < range.y; r += RL) {
        let i = r * C + c;
        let y = (x[i] - centre) * scale + shift;
        out[i] = select(y, max(y, V(0.0)), relu);
    }
}

// dy[i], or 0 where the fused ReLU cut the forward's output: xc = x[i] − mean, and
// xc·scale + shift is the forward's y (the same expression as normalize_chunk's).
fn masked_dy(i: u32, xc: V, scale: V, shift: V) -> V {
    let g = dy[i];
    if (params.relu == 0u) {
        return g;
    }
    return select(g, V(0.0), xc * scale + shift <= V(0.0));
}

@compute @workgroup_size(CW, RL)
fn batch_norm_forward_train_normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let c = wid.x * CW + lid.x;
    if (c >= lanes_c() || wid.y >= params.chunks) {
        return;
    }
    normalize_chunk(c, wid.y, lid.y, mean[c], gamma[c] * inv_std[c], beta[c]);
}

// γ/sqrt(moving_var + ε): the inference batch norm's per-channel scale (inference and fold).
fn inference_scale(c: u32) -> V {
    return gamma[c] / sqrt(stat_var[c] + params.epsilon);
}

@compute @workgroup_size(CW, RL)
fn batch_norm_forward_inference(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let c = wid.x * CW + lid.x;
    if (c >= lanes_c() || wid.y >= params.chunks) {
        return;
    }
    let scale = inference_scale(c);
    normalize_chunk(c, wid.y, lid.y, stat_mean[c], scale, beta[c]);
}

// The batch norm's scale folded into each kernel row (a chunk of rows per workgroup, as the
// other row passes), and b' written once per channel by chunk 0's first row lane.
@compute @workgroup_size(CW, RL)
fn batch_norm_fold(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let c = wid.x * CW + lid.x;
    let C = lanes_c();
    if (c >= C || wid.y >= params.chunks) {
        return;
    }
    let scale = inference_scale(c);
    let range = chunk_rows(wid.y);
    for (var r = range.x + lid.y; r < range.y; r += RL) {
        let i = r * C + c;
        out[i] = x[i] * scale;
    }
    if (wid.y == 0u && lid.y == 0u) {
        folded_bias[c] = (conv_bias[c] - stat_mean[c]) * scale + beta[c];
    }
}

@compute @workgroup_size(CW, RL)
fn batch_norm_backward_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let c = wid.x * CW + lid.x;
    let chunk = wid.y;
    let C = lanes_c();
    let live = c < C && chunk < params.chunks;
    var sum_dy = V(0.0);
    var sum_dyxc = V(0.0);
    if (live) {
        let centre = mean[c];
        let scale = gamma[c] * inv_std[c];
        let shift = beta[c];
        let range = chunk_rows(chunk);
        for (var r = range.x + lid.y; r < range.y; r += RL) {
            let i = r * C + c;
            let xc = x[i] - centre;
            let g = masked_dy(i, xc, scale, shift);
            sum_dy += g;
            sum_dyxc += g * xc;
        }
    }
    if (RL > 1u) {
        let slot = lid.y * CW + lid.x;
        wg_a[slot] = sum_dy;
        wg_b[slot] = sum_dyxc;
        workgroupBarrier();
        for (var s = RL / 2u; s > 0u; s /= 2u) {
            if (lid.y < s) {
                let o = slot + s * CW;
                wg_a[slot] += wg_a[o];
                wg_b[slot] += wg_b[o];
            }
            workgroupBarrier();
        }
        sum_dy = wg_a[lid.x];
        sum_dyxc = wg_b[lid.x];
    }
    if (live && lid.y == 0u) {
        scratch[chunk * C + c] = sum_dy;
        scratch[(params.chunks + chunk) * C + c] = sum_dyxc;
    }
}

@compute @workgroup_size(FW)
fn batch_norm_backward_finalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wid.x * FW + lid;
    let C = lanes_c();
    if (c >= C) {
        return;
    }
    var sum_dy = V(0.0);
    var sum_dyxc = V(0.0);
    for (var k = 0u; k < params.chunks; k++) {
        sum_dy += scratch[k * C + c];
        sum_dyxc += scratch[(params.chunks + k) * C + c];
    }
    dbeta[c] = sum_dy;
    let dg = sum_dyxc * inv_std[c];
    dgamma[c] = dg;
    // backward_input's per-channel factors, over this channel's own (already read) partials,
    // so that pass binds 4 storage buffers instead of 9 (WebGPU's default limit is 8).
    let inv_m = 1.0 / f32(params.rows);
    let istd = inv_std[c];
    scratch[c] = mean[c];
    scratch[C + c] = gamma[c] * istd;
    scratch[2u * C + c] = sum_dy * inv_m;
    // x̂·dγ/M = (x − mean)·inv_std·dγ/M: fold inv_std into the per-channel factor.
    scratch[3u * C + c] = dg * istd * inv_m;
    scratch[4u * C + c] = beta[c];
}

@compute @workgroup_size(CW, RL)
fn batch_norm_backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let c = wid.x * CW + lid.x;
    let C = lanes_c();
    if (c >= C || wid.y >= params.chunks) {
        return;
    }
    // The factors backward_finalize left in scratch: mean, γ·inv_std, dβ/M, dγ·inv_std/M, β.
    let centre = scratch[c];
    let k = scratch[C + c];
    let mean_dy = scratch[2u * C + c];
    let slope = scratch[3u * C + c];
    let shift = scratch[4u * C + c];
    let range = chunk_rows(wid.y);
    for (var r = range.x + lid.y; r < range.y; r += RL) {
        let i = r * C + c;
        let xc = x[i] - centre;
        out[i] = k * (masked_dy(i, xc, k, shift) - mean_dy - xc * slope);
    }
}
