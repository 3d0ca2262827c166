// softmax_ce.wgsl — sparse categorical cross-entropy from logits, with the softmax fused.
//
// Class weights (Keras' fit(class_weight=...)): with params.weighted, sample s's loss is
// multiplied by w_s = class_weights[label_s], and the reduction stays Keras'
// "sum_over_batch_size": Σ w_s·l_s / N, not / Σ w_s. Without it (weighted = 0) w_s = 1 and
// class_weights is never read; multiplying by 1.0 is exact, so the results are bit-identical to
// the unweighted loss.
//
// Label smoothing (Keras' CategoricalCrossentropy(label_smoothing=S) on one-hot labels; Keras'
// SparseCategoricalCrossentropy has no such argument): the target row is
// y' = (1 − S)·onehot(label) + S/K, so CE = (1 − S)·CE_label + (S/K)·Σ_k CE_k with
// CE_k = (m − z_k) + log Σ exp(z − m), and the gradient is softmax(z) − y'. The class weight is
// the label's, the accuracy unchanged. S = 0 takes the unsmoothed path (forward) or subtracts
// onehot·1 + 0 (backward): bit-identical to the unsmoothed loss.
//
// Entry points
//   softmax_ce_forward   loss[0] = Σ over the N samples of w_s·((m − z[label]) +
//                        log Σ_k exp(z_k − m)), / N, m the row's max (stable for any logits).
//                        One workgroup reduces all samples (N is a batch: small). writes loss
//   softmax_ce_backward  dz = (softmax(z) − y')·w_s/N, one invocation per sample.
//                        writes dz
//   softmax_ce_metrics   metrics += [Σ w_s·CE, #(argmax z == label), N], argmax = first maximum
//                        (loss = metrics[0]/metrics[2] (weighted), accuracy =
//                        metrics[1]/metrics[2] (never weighted)). accumulates into metrics
//   Labels must be < K; a sample with label ≥ K reads nothing out of bounds and contributes
//   zero loss, zero gradient and no correct count (it is still counted in N).
//
// Bindings (group 0)
//   slot | name          | access     | shape       | used by
//   0    | out           | read_write | [1] f32     | forward (loss)
//        |               |            | [N, K] f32  | backward (dz)
//   1    | z             | read       | [N, K] f32  | all (logits)
//   2    | labels        | read       | [N] u32     | all (class indices)
//   3    | metrics       | read_write | [3] f32     | metrics ([loss_sum, correct, seen])
//   4    | params        | uniform    | Params      | all
//   5    | class_weights | read       | [K] f32     | all (read only when params.weighted;
//        |               |            |             | else any ≥ 1-element buffer)
//
// Params: n (samples), classes (K), weighted (0 or 1), smoothing (S, f32 in [0, 1])
// Workgroup: WG (override, default 256; a power of two ≤ 256, the reduction's tree) invocations.
// Grid: forward and metrics (1, 1, 1); backward kernels::grid_1d(ceil(N / WG)),
//   linear group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::loss::softmax_ce_forward_smoothed, cpu::loss::softmax_ce_backward_smoothed,
//   cpu::loss::softmax_ce_metrics_smoothed (weights None, S = 0: the plain forms).

override WG: u32 = 256u;

const MAX_WG: u32 = 256u;

struct Params {
    n: u32,
    classes: u32,
    weighted: u32,
    smoothing: f32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> class_weights: array<f32>;

var<workgroup> partial: array<vec2<f32>, MAX_WG>;

struct Row {
    max: f32,
    // Σ_k exp(z_k − max)
    sum: f32,
    // first index of the max
    arg: u32,
}

fn row_stats(s: u32) -> Row {
    let k = params.classes;
    let base = s * k;
    var r = Row(z[base], 0.0, 0u);
    for (var j = 1u; j < k; j++) {
        let v = z[base + j];
        if (v > r.max) {
            r.max = v;
            r.arg = j;
        }
    }
    for (var j = 0u; j < k; j++) {
        r.sum += exp(z[base + j] - r.max);
    }
    return r;
}

// The class weight of a sample of class t < K (1 when unweighted).
fn weight(t: u32) -> f32 {
    if (params.weighted == 0u) {
        return 1.0;
    }
    return class_weights[t];
}

// (w·CE, correct) of sample s; (0, 0) for an out-of-range label.
fn sample_terms(s: u32) -> vec2<f32> {
    let t = labels[s];
    if (t >= params.classes) {
        return vec2<f32>(0.0);
    }
    let r = row_stats(s);
    // (max − z_t) first: exact for large logits, where max + log(sum) − z_t would round.
    let lse = log(r.sum);
    var ce = (r.max - z[s * params.classes + t]) + lse;
    let sm = params.smoothing;
    if (sm > 0.0) {
        var every = 0.0;
        for (var j = 0u; j < params.classes; j++) {
            every += (r.max - z[s * params.classes + j]) + lse;
        }
        ce = (1.0 - sm) * ce + (sm / f32(params.classes)) * every;
    }
    return vec2<f32>(weight(t) * ce, select(0.0, 1.0, r.arg == t));
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

fn strided_sums(lid: u32) -> vec2<f32> {
    var acc = vec2<f32>(0.0);
    for (var s = lid; s < params.n; s += WG) {
        acc += sample_terms(s);
    }
    return acc;
}

@compute @workgroup_size(WG)
fn softmax_ce_forward(@builtin(local_invocation_index) lid: u32) {
    let total = workgroup_sum(lid, strided_sums(lid));
    if (lid == 0u) {
        out[0] = total.x / f32(params.n);
    }
}

@compute @workgroup_size(WG)
fn softmax_ce_metrics(@builtin(local_invocation_index) lid: u32) {
    let total = workgroup_sum(lid, strided_sums(lid));
    if (lid == 0u) {
        metrics[0] += total.x;
        metrics[1] += total.y;
        metrics[2] += f32(params.n);
    }
}

@compute @workgroup_size(WG)
fn softmax_ce_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = (wid.x + wid.y * nwg.x) * WG + lid;
    if (s >= params.n) {
        return;
    }
    let k = params.classes;
    let t = labels[s];
    let inv_n = 1.0 / f32(params.n);
    if (t >= k) {
        for (var j = 0u; j < k; j++) {
            out[s * k + j] = 0.0;
        }
        return;
    }
    let r = row_stats(s);
    let inv_sum = 1.0 / r.sum;
    let w = weight(t);
    let sm = params.smoothing;
    let uniform_part = sm / f32(k);
    for (var j = 0u; j < k; j++) {
        let p = exp(z[s * k + j] - r.max) * inv_sum;
        let y = select(0.0, 1.0, j == t) * (1.0 - sm) + uniform_part;
        out[s * k + j] = ((p - y) * w) * inv_n;
    }
}
