// rescale.wgsl — Keras' Rescaling layer: y = x·scale + offset, over flat f32 tensors.
//
// Entry points
//   rescale_forward       y = x·scale + offset                     writes y
//   rescale_backward      dx = dy·scale                            writes dx (does not accumulate)
//   rescale_accumulate    out += x·scale                           ACCUMULATES into out (the
//                         executor's gradient accumulation over micro-batches)
//   rescale_u8_forward    y = f32(byte)·scale + offset             writes y: the input batch
//                         uploaded as bytes (4× less upload), widened on the GPU
//
// Bindings (group 0)
//   slot | name   | access     | shape        | used by
//   0    | out    | read_write | [len] f32    | forward (y), backward (dx), accumulate (out)
//   1    | x      | read       | [len] f32    | forward (x), backward (dy), accumulate (x)
//   2    | params | uniform    | Params       | all
//   3    | xb     | read       | [N, stride/4] u32 | u8_forward: N records of sample_len bytes,
//        |        |            |              |   each starting at a multiple of 4 bytes
//        |        |            |              |   (stride = sample_len rounded up to 4; the
//        |        |            |              |   padding is never read), little-endian
//
// Params: len (u32, element count), scale (f32), offset (f32), sample_len (u32: bytes per
//   record, u8_forward only; the other entry points ignore it)
// Workgroup: WG (override, default 64) invocations; each handles 4 consecutive elements.
// Grid: kernels::grid_1d(ceil(len / (4·WG))); linear group = wid.x + wid.y·nwg.x.
// Mirrors: cpu::rescale::rescale_forward, cpu::rescale::rescale_backward,
//   cpu::rescale::rescale_accumulate, cpu::rescale::rescale_u8_forward.

override WG: u32 = 64u;

struct Params {
    len: u32,
    scale: f32,
    offset: f32,
    sample_len: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read> xb: array<u32>;

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

// Byte k of record s sits at byte s·stride + k. Widening a byte to f32 is exact, so with
// scale 1 and offset 0 this gives bit for bit the f32 batch the host would have uploaded.
// An invocation's 4 values start at a multiple of 4; when records are a multiple of 4 bytes
// long (64×64×3, 180×180×3) they are the 4 bytes of one word: one load, no division per value
// (measured on lavapipe at 16×64×64×3: 3.0 ms with a division and a load per value).
@compute @workgroup_size(WG)
fn rescale_u8_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_index(wid, nwg, lid);
    if (base >= params.len) {
        return;
    }
    let sl = params.sample_len;
    let stride = (sl + 3u) & ~3u;
    var s = base / sl;
    var k = base - s * sl;
    if ((sl & 3u) == 0u && base + 3u < params.len) {
        let word = xb[(s * stride + k) >> 2u];
        for (var j = 0u; j < 4u; j++) {
            let v = (word >> (j * 8u)) & 0xffu;
            out[base + j] = f32(v) * params.scale + params.offset;
        }
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let i = base + j;
        if (i < params.len) {
            let byte = s * stride + k;
            let v = (xb[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xffu;
            out[i] = f32(v) * params.scale + params.offset;
        }
        k += 1u;
        if (k == sl) {
            k = 0u;
            s += 1u;
        }
    }
}
