// sigmoid_bce.wgsl — binary (or multi-label) cross-entropy from logits, with the sigmoid fused.
//
// Class weights (Keras' fit(class_weight=...)): with params.weighted, element i's loss is
// multiplied by w_i = class_weights[y_i > 0.5] (index 0: the negative class, 1: the positive),
// and the reduction stays Keras' "sum_over_batch_size": Σ w_i·l_i / (N·L), not / Σ w_i. Without
// it (weighted = 0) w_i = 1 and class_weights is never read; multiplying by 1.0 is exact, so
// the results are bit-identical to the unweighted loss.
//
// Label smoothing (Keras' BinaryCrossentropy(label_smoothing=S)): the loss and its gradient use
// y' = y·(1 − S) + S/2 in place of y; the class weight and the accuracy still use y. S = 0 gives
// y' = y·1 + 0 = y exactly, so the results are bit-identical to the unsmoothed loss.
//
// Entry points
//   sigmoid_bce_forward   loss[0] = Σ over the N·L elements of w_i·(max(z, 0) − z·y' +
//                         log1p(exp(−|z|))), / (N·L)   (stable for any z, e.g. ±100).
//                         One workgroup reduces everything (N·L is batch × labels: small).
//                         writes loss
//   sigmoid_bce_backward  dz = (σ(z) − y')·w_i/(N·L), σ evaluated without overflow. writes dz
//   sigmoid_bce_metrics   metrics += [Σ w_i·BCE, #((z > 0) == (y > 0.5)), N·L] (one workgroup;
//                         the trainer clears metrics per epoch and reads it back when it wants:
//                         loss = metrics[0]/metrics[2] (weighted), accuracy = metrics[1]/metrics[2]
//                         (never weighted)). accumulates into metrics
//
// Bindings (group 0)
//   slot | name          | access     | shape       | used by
//   0    | out           | read_write | [1] f32     | forward (loss)
//        |               |            | [N, L] f32  | backward (dz)
//   1    | z             | read       | [N, L] f32  | all (logits)
//   2    | targets       | read       | [N, L] f32  | all (0 or 1)
//   3    | metrics       | read_write | [3] f32     | metrics ([loss_sum, correct, seen])
//   4    | params        | uniform    | Params      | all
//   5    | class_weights | read       | [2] f32     | all (read only when params.weighted;
//        |               |            |             | else any ≥ 1-element buffer)
//
// Params: n (samples), labels (L, 1 for a binary classifier), weighted (0 or 1), smoothing (S,
//   f32 in [0, 1])
// Workgroup: WG (override, default 256; a power of two ≤ 256, the reduction's tree) invocations.
// Grid: forward and metrics (1, 1, 1); backward kernels::grid_1d(ceil(N·L / WG)),
//   linear group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::loss::sigmoid_bce_forward_smoothed, cpu::loss::sigmoid_bce_backward_smoothed,
//   cpu::loss::sigmoid_bce_metrics_smoothed (weights None, S = 0: the plain forms).

override WG: u32 = 256u;

const MAX_WG: u32 = 256u;

struct Params {
    n: u32,
    labels: u32,
    weighted: u32,
    smoothing: f32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> class_weights: array<f32>;

var<workgroup> partial: array<vec2<f32>, MAX_WG>;

// log(1 + exp(−a)) for a ≥ 0. WGSL has no log1p: below 1e-3 the series u − u²/2 + u³/3 keeps
// full relative precision where log(1 + u) would round u away.
fn log1p_exp_neg(a: f32) -> f32 {
    let u = exp(-a);
    if (u < 1e-3) {
        return u * (1.0 - u * (0.5 - u / 3.0));
    }
    return log(1.0 + u);
}

// The smoothed target y' = y·(1 − S) + S/2.
fn smoothed(yi: f32) -> f32 {
    return yi * (1.0 - params.smoothing) + 0.5 * params.smoothing;
}

fn bce(zi: f32, yi: f32) -> f32 {
    return max(zi, 0.0) - zi * yi + log1p_exp_neg(abs(zi));
}

// The class weight of an element with target yi (1 when unweighted).
fn weight(yi: f32) -> f32 {
    if (params.weighted == 0u) {
        return 1.0;
    }
    return class_weights[select(0u, 1u, yi > 0.5)];
}

// σ(z) from e = exp(−|z|) ∈ (0, 1]: never overflows.
fn sigmoid(zi: f32) -> f32 {
    let e = exp(-abs(zi));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, zi >= 0.0);
}

// Sums v over the workgroup (WG a power of two); the result is valid in invocation 0.
// Must be called from uniform control flow.
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    return partial[0];
}

// (Σ w·BCE, #correct) over the elements lid, lid + WG, … of this batch.
fn strided_sums(lid: u32) -> vec2<f32> {
    let len = params.n * params.labels;
    var acc = vec2<f32>(0.0);
    for (var i = lid; i < len; i += WG) {
        let zi = z[i];
        let yi = targets[i];
        acc += vec2<f32>(weight(yi) * bce(zi, smoothed(yi)), select(0.0, 1.0, (zi > 0.0) == (yi > 0.5)));
    }
    return acc;
}

@compute @workgroup_size(WG)
fn sigmoid_bce_forward(@builtin(local_invocation_index) lid: u32) {
    let total = workgroup_sum(lid, strided_sums(lid));
    if (lid == 0u) {
        out[0] = total.x / f32(params.n * params.labels);
    }
}

@compute @workgroup_size(WG)
fn sigmoid_bce_metrics(@builtin(local_invocation_index) lid: u32) {
    let total = workgroup_sum(lid, strided_sums(lid));
    if (lid == 0u) {
        metrics[0] += total.x;
        metrics[1] += total.y;
        metrics[2] += f32(params.n * params.labels);
    }
}

@compute @workgroup_size(WG)
fn sigmoid_bce_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let len = params.n * params.labels;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i < len) {
        let yi = targets[i];
        out[i] = ((sigmoid(z[i]) - smoothed(yi)) * weight(yi)) / f32(len);
    }
}
