// rescale.wgsl — Keras' Rescaling layer: y = x·scale + offset, over flat f32 tensors.
//
// Entry points
//   rescale_forward       y = x·scale + offset                     writes y
//   rescale_backward      dx = dy·scale                            writes dx (does not accumulate)
//   rescale_accumulate    out += x·scale                           ACCUMULATES into out (the
//                         executor's gradient accumulation over micro-batches)
//
// Bindings (group 0)
//   slot | name   | access     | shape        | used by
//   0    | out    | read_write | [len] f32    | forward (y), backward (dx), accumulate (out)
//   1    | x      | read       | [len] f32    | forward (x), backward (dy), accumulate (x)
//   2    | params | uniform    | Params       | all
//
// Params: len (u32, element count), scale (f32), offset (f32), _pad (u32)
// Workgroup: WG (override, default 64) invocations; each handles 4 consecutive elements.
// Grid: kernels::grid_1d(ceil(len / (4·WG))); linear group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::rescale::rescale_forward, cpu::rescale::rescale_backward,
//   cpu::rescale::rescale_accumulate.

override WG: u32 = 64u;

struct Params {
    len: u32,
    scale: f32,
    offset: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

fn first_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return ((wid.x + wid.y * nwg.x) * WG + lid) * 4u;
}

@compute @workgroup_size(WG)
fn rescale_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < 4u; k++) {
        let i = base + k;
        if (i < params.len) {
            out[i] = x[i] * params.scale + params.offset;
        }
    }
}

@compute @workgroup_size(WG)
fn rescale_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < 4u; k++) {
        let i = base + k;
        if (i < params.len) {
            out[i] = x[i] * params.scale;
        }
    }
}

@compute @workgroup_size(WG)
fn rescale_accumulate(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < 4u; k++) {
        let i = base + k;
        if (i < params.len) {
            out[i] += x[i] * params.scale;
        }
    }
}
