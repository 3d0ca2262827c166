// relu.wgsl — rectified linear unit, forward and backward, over flat f32 tensors of any layout.
//
// Entry points
//   relu_forward          y = max(x, 0)                          writes y
//   relu_backward         dx = dy · [y > 0]  (y is the saved forward output; y > 0 ⇔ x > 0)
//                         writes dx (does not accumulate)
//
// Bindings (group 0)
//   slot | name   | access     | shape        | used by
//   0    | out    | read_write | [len] f32    | forward (y), backward (dx)
//   1    | x      | read       | [len] f32    | forward (x), backward (dy)
//   2    | saved  | read       | [len] f32    | backward (y from forward)
//   3    | params | uniform    | Params       | both
//
// Params: len (u32, element count), _pad0.._pad2
// Workgroup: WG (override, default 64) invocations; each handles 4 consecutive elements
//   (LAVAPIPE-NOTES: more work per invocation halves the cost of a memory-bound pass).
// Grid: kernels::grid_1d(ceil(len / (4·WG))); linear group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::relu::relu_forward, cpu::relu::relu_backward.

override WG: u32 = 64u;

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> saved: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

fn first_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return ((wid.x + wid.y * nwg.x) * WG + lid) * 4u;
}

@compute @workgroup_size(WG)
fn relu_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < 4u; k++) {
        let i = base + k;
        if (i < params.len) {
            out[i] = max(x[i], 0.0);
        }
    }
}

@compute @workgroup_size(WG)
fn relu_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < 4u; k++) {
        let i = base + k;
        if (i < params.len) {
            out[i] = select(0.0, x[i], saved[i] > 0.0);
        }
    }
}
