// adam.wgsl — Adam in Keras' form over ONE flat parameter buffer (all of a model's tensors),
// with the step count t and the bias-corrected step size kept on the GPU.
//
// Entry points
//   adam_begin_step  one invocation: state.t += 1, then
//                    state.lr_t = state.lr·sqrt(1 − β2^t)/(1 − β1^t) for the new t, in f32 with
//                    1 − β^t = −expm1(t·log1p(β − 1)) (no cancellation at small t).
//                    Record it before adam_update in every step: the step then needs no host
//                    write, no readback and no bind-group rebuild. writes state
//   adam_update      per element: g += 2·l2·mask·θ (Keras' kernel_regularizer=l2(l2): the
//                    penalty's gradient, coupled, added to the loss's; only when l2 ≠ 0, so
//                    l2 = 0 reads no mask and leaves g bit-for-bit unchanged); θ −= θ·wd·lr
//                    (AdamW's decoupled weight decay, Keras' _apply_weight_decay, with the base
//                    learning rate lr; wd = 0 leaves θ bit-for-bit unchanged);
//                    m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
//                    θ −= lr_t·m/(sqrt(v) + ε), lr and lr_t read from state. updates θ, m, v
//                    in place
//
// Bindings (group 0)
//   slot | name     | access     | shape            | used by
//   0    | theta    | read_write | [len] f32        | update (parameters, in place)
//   1    | m        | read_write | [len] f32        | update (first moment, in place)
//   2    | v        | read_write | [len] f32        | update (second moment, in place)
//   3    | grad     | read       | [len] f32        | update (gradient of the loss)
//   4    | state_rw | read_write | AdamState (16 B) | begin_step
//   5    | state    | read       | AdamState (16 B) | update
//   6    | params   | uniform    | Params           | both
//   7    | l2_mask  | read       | [len] f32        | update (1: an L2-regularized kernel, 0:
//        |          |            |                  | not; read only when params.l2 ≠ 0)
//
// AdamState (storage): t (u32, steps taken; 0 before the first), lr (f32, base learning rate:
//   the host writes it when it changes), lr_t (f32, written by adam_begin_step), _pad (u32).
// Params: len (u32, elements), beta1, beta2, epsilon, weight_decay (f32; 0 for plain Adam),
//   l2 (f32; 0: no L2 penalty), _pad1, _pad2.
// Workgroup: adam_begin_step 1 invocation; adam_update WG (override, default 64) invocations,
//   each updating 4 consecutive elements.
// Grid: adam_begin_step (1, 1, 1); adam_update kernels::grid_1d(ceil(len / (4·WG))),
//   linear group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::adam::adam_begin_step, cpu::adam::adam_l2_grad, cpu::adam::adam_decay,
//   cpu::adam::adam_update.

override WG: u32 = 64u;

struct Params {
    len: u32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    weight_decay: f32,
    l2: f32,
    _pad1: u32,
    _pad2: u32,
}

struct AdamState {
    t: u32,
    lr: f32,
    lr_t: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> theta: array<f32>;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> state_rw: AdamState;
@group(0) @binding(5) var<storage, read> state: AdamState;
@group(0) @binding(6) var<uniform> params: Params;
@group(0) @binding(7) var<storage, read> l2_mask: array<f32>;

// log(1 + x) for x in (−1, ∞). For |x| ≤ 0.5 the series 2·atanh(s), s = x/(2 + x), |s| ≤ 1/3,
// to s^15 (relative error < 2e-8): full relative precision near 0, where log(1 + x) keeps only
// an absolute one (and a GPU's log may be accurate only to 2^-21 absolute near 1).
fn log1p(x: f32) -> f32 {
    if (abs(x) > 0.5) {
        return log(1.0 + x);
    }
    let s = x / (2.0 + x);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0
        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0)))))));
    return 2.0 * s * series;
}

// exp(y) − 1. For |y| < 0.5 the Taylor series to y^9 in Horner form (relative error < 1e-9),
// where exp(y) − 1 would cancel.
fn expm1(y: f32) -> f32 {
    if (abs(y) >= 0.5) {
        return exp(y) - 1.0;
    }
    return y * (1.0 + y / 2.0 * (1.0 + y / 3.0 * (1.0 + y / 4.0 * (1.0 + y / 5.0 * (1.0 + y / 6.0
        * (1.0 + y / 7.0 * (1.0 + y / 8.0 * (1.0 + y / 9.0))))))));
}

// 1 − β^t for 0 < β < 1.
fn one_minus_pow(beta: f32, t: f32) -> f32 {
    return -expm1(t * log1p(beta - 1.0));
}

@compute @workgroup_size(1)
fn adam_begin_step() {
    let t = state_rw.t + 1u;
    state_rw.t = t;
    let tf = f32(t);
    let c1 = one_minus_pow(params.beta1, tf);
    let c2 = one_minus_pow(params.beta2, tf);
    state_rw.lr_t = state_rw.lr * sqrt(c2) / c1;
}

@compute @workgroup_size(WG)
fn adam_update(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = params;
    let lr_t = state.lr_t;
    let decay = p.weight_decay * state.lr;
    let base = ((wid.x + wid.y * nwg.x) * WG + lid) * 4u;
    for (var k = 0u; k < 4u; k++) {
        let i = base + k;
        if (i < p.len) {
            let th = theta[i];
            var g = grad[i];
            if (p.l2 != 0.0) {
                g += 2.0 * p.l2 * l2_mask[i] * th;
            }
            let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
            let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
            m[i] = mi;
            v[i] = vi;
            theta[i] = (th - th * decay) - lr_t * mi / (sqrt(vi) + p.epsilon);
        }
    }
}
