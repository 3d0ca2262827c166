// l2_penalty.wgsl — Keras' L2 kernel regularizer added to the reported loss, on the GPU: the
// penalty l2·Σ mask·θ² (Keras' regularizers.l2(l2) summed over every regularized kernel; the
// gradient 2·l2·θ is adam.wgsl's) added into the step's loss and its metrics accumulator, so
// the trainer reads it with the loss it already reads, without a readback inside a step.
//
// Entry points
//   l2_penalty  one workgroup: p = l2·Σ_i mask[i]·θ[i]² over len elements; loss[0] += p;
//               metrics[0] += count·p (the metrics hold a loss sum over `count` terms per
//               batch: samples for softmax_ce, samples × labels for sigmoid_bce, so that
//               metrics[0]/metrics[2] is the mean loss plus p, as Keras' loss tracker reports
//               it). A flat buffer larger than one binding is summed slice by slice, one
//               dispatch each, each adding its share. accumulates into loss and metrics
//
// Bindings (group 0)
//   slot | name    | access     | shape     | used by
//   0    | theta   | read       | [len] f32 | l2_penalty (the weights region, or a slice)
//   1    | l2_mask | read       | [len] f32 | l2_penalty (1: an L2-regularized kernel, else 0)
//   2    | metrics | read_write | [3] f32   | l2_penalty ([loss_sum, correct, seen])
//   3    | loss    | read_write | [1] f32   | l2_penalty (the batch's mean loss)
//   4    | params  | uniform    | Params    | l2_penalty
//
// Params: len (u32), l2 (f32), count (f32: loss terms the metrics count per batch), _pad.
// Workgroup: WG (override, default 256; a power of two ≤ 256, the reduction's tree).
// Grid: (1, 1, 1).
// Mirrors: cpu::adam::l2_penalty.

override WG: u32 = 256u;

const MAX_WG: u32 = 256u;

struct Params {
    len: u32,
    l2: f32,
    count: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> theta: array<f32>;
@group(0) @binding(1) var<storage, read> l2_mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> partial: array<f32, MAX_WG>;

@compute @workgroup_size(WG)
fn l2_penalty(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < params.len; i += WG) {
        let t = theta[i];
        acc += l2_mask[i] * t * t;
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let p = params.l2 * partial[0];
        loss[0] += p;
        metrics[0] += params.count * p;
    }
}
