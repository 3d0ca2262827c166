// pool.wgsl — max pooling (window KH×KW, stride SH×SW, explicit pads) and global average
// pooling, forward and backward, NHWC f32.
//
// Entry points
//   max_pool2d_forward          y = max over each window (padded cells never win: they are
//                               skipped, i.e. −∞); argmax = window-local index i·KW + j of the
//                               first maximum in row-major window order (ties: first wins),
//                               one byte per channel, 4 channels per u32 (byte k = channel
//                               4·g + k of channel group g); 0xFF marks a window with no input
//                               cell (y = 0 there) and channels past C. Needs KH·KW ≤ 255.
//                               writes y and argmax
//   max_pool2d_forward_add      the same, then y += residual (the residual Add that follows
//                               the pool in each block, folded in: the graph plans this where
//                               the pool's only consumer is that Add). writes y and argmax
//   max_pool2d_forward_inference      y only: no argmax (inference has no backward pass).
//                               writes y
//   max_pool2d_forward_add_inference  y = max + residual only. writes y
//   max_pool2d_backward         dx = Σ dy over the windows whose argmax is that cell, as a gather:
//                               each dx element visits the ≤ ceil(KH/SH)·ceil(KW/SW) windows that
//                               contain it (2×2 at k3 s2), so no two invocations write one
//                               element and no atomics are needed. writes dx (all of it)
//   global_avg_pool2d_forward   y[n, c] = mean over H·W of x[n, :, :, c]; a workgroup reduces
//                               8 channels of one sample with GAP_ROWS rows of invocations
//                               striding over H·W, then a tree in workgroup memory. writes y
//   global_avg_pool2d_backward  dx[n, h, w, c] = dy[n, c] / (H·W). writes dx (all of it)
//
// Bindings (group 0)
//   slot | name       | access     | shape                   | used by
//   0    | out        | read_write | [N,OH,OW,C] f32         | max fwd, fwd add, fwd inference (y)
//        |            |            | [N,H,W,C] f32           | max bwd (dx), gap bwd (dx)
//        |            |            | [N,C] f32               | gap fwd (y)
//   1    | x          | read       | [N,H,W,C] f32           | max fwd (all four; x), gap fwd (x)
//        |            |            | [N,OH,OW,C] f32         | max bwd (dy)
//        |            |            | [N,C] f32               | gap bwd (dy)
//   2    | argmax_out | read_write | [N,OH,OW,ceil(C/4)] u32 | max fwd, fwd add (argmax, 4 bytes
//        |            |            |                         | packed; not the inference ones)
//   3    | argmax     | read       | [N,OH,OW,ceil(C/4)] u32 | max bwd (saved by max fwd)
//   4    | params     | uniform    | Params                  | all
//   5    | residual   | read       | [N,OH,OW,C] f32         | max fwd add (+ inference; added to y)
//   6    | x4         | read       | slot 1 as vec4<f32>     | max fwd (all four), max bwd (VEC4 = 1)
//   7    | residual4v | read       | slot 5 as vec4<f32>     | max fwd add (+ inference) (VEC4 = 1)
//   8    | out4       | read_write | slot 0 as vec4<f32>     | max fwd (all four), max bwd (VEC4 = 1)
//
// Params: n, h, w, c (input sizes); oh, ow (output sizes); kh, kw (window); sh, sw (stride);
//   pad_top, pad_left (TensorFlow's pad_before; pads after are implied by oh, ow).
//   The global average pool reads n, h, w, c only.
// Overrides: VEC4 (u32, default 0): 1 when C is divisible by 4 (the caller checks), so that
//   each max-pool lane's 4 channels are one aligned vec4: it loads x and the residual and stores
//   y or dx through the vec4 views (slots 6–8) instead of 4 scalar loads and stores. Every
//   entry that names a view needs it bound whatever VEC4 is: x4 and residual4v to the buffers
//   of slots 1 and 5 (or any 16 bytes where VEC4 = 0); out's buffer at the slot the form
//   writes (0, or 8 with VEC4 = 1) and a stand-in of at least 16 bytes at the other, since a
//   writable binding must not alias another. kernels::pool compiles the VEC4 form with x4 and
//   residual4v read from texture mirrors (gpu::mirror), where a lane's 4 channels are one
//   texel fetch. The global average pool ignores VEC4.
// Workgroup: WG (override, default 64) invocations for the max pool and the gap backward;
//   each max-pool invocation owns 4 consecutive channels (indices past C are clamped for loads
//   and not stored) and loops over rows and, within each, columns; a workgroup's lanes differ only in
//   channel, so all window arithmetic is uniform (no per-lane integer division, which a CPU
//   adapter scalarises). Each gap-backward invocation owns 4 consecutive channels of a pixel.
//   With C < 4·WG part of each workgroup idles (the model pools at C ≥ 256).
//   gap forward: 8 × GAP_ROWS (override, default 8, at most 32) invocations.
// Grid: max fwd (all four) (ceil(ceil(C/4) / WG), Y, min(N·OH, 65535)), rows n·OH + r from wid.z in
//         steps of nwg.z, columns from wid.y in steps of nwg.y (kernels::pool uses Y = 1);
//       max bwd (ceil(ceil(C/4) / WG), Y, min(N·H, 65535)), rows n·H + h and columns likewise;
//       gap fwd kernels::grid_1d(N·ceil(C/8)), linear group = wid.x + wid.y·nwg.x;
//       gap bwd (ceil(ceil(C/4) / WG), 1, min(N·H·W, 65535)), pixels from wid.z in steps of nwg.z.
// Mirrors: cpu::pool::max_pool2d_forward (then cpu::elementwise::add_forward for the add),
//   cpu::pool::max_pool2d_backward,
//   cpu::pool::global_avg_pool2d_forward, cpu::pool::global_avg_pool2d_backward.

override WG: u32 = 64u;
override GAP_ROWS: u32 = 8u;
override VEC4: u32 = 0u;

const GAP_LANES: u32 = 8u;
const GAP_MAX_ROWS: u32 = 32u;
const NO_ARGMAX: u32 = 0xffu;

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    pad_top: u32,
    pad_left: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> argmax_out: array<u32>;
@group(0) @binding(3) var<storage, read> argmax: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> residual4v: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> out4: array<vec4<f32>>;

var<workgroup> gap_partial: array<f32, GAP_LANES * GAP_MAX_ROWS>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// The 4 channel indices c0..c0+3, clamped to C−1 so that loads stay in the pixel.
fn channels(c0: u32) -> vec4<u32> {
    return min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.c - 1u));
}

fn load4(base: u32, ch: vec4<u32>) -> vec4<f32> {
    if (VEC4 == 1u) {
        return x4[(base + ch.x) / 4u];
    }
    return vec4<f32>(x[base + ch.x], x[base + ch.y], x[base + ch.z], x[base + ch.w]);
}

// out[o + k] = v[k] for the channels c0 + k below C (with VEC4, all four as one vec4 store).
fn store4(o: u32, c0: u32, v: vec4<f32>) {
    if (VEC4 == 1u) {
        out4[o / 4u] = v;
        return;
    }
    for (var k = 0u; k < 4u; k++) {
        if (c0 + k < params.c) {
            out[o + k] = v[k];
        }
    }
}

// One output pixel's max over its window for 4 channels, and each channel's argmax.
struct WindowMax {
    best: vec4<f32>,
    arg: vec4<u32>,
}

// a / b (b > 0) for the indices these passes divide (all below 2^24), through f32: lavapipe
// turns a u32 division of a vector into one scalar division per lane (~25 cycles each), a
// float one into a single vector division. f32(a)/f32(b) cannot round up across an integer
// while a < 2^24, so truncating it is exact; the select corrects the one step it could be
// off by were that ever not so.
fn udiv(a: u32, b: u32) -> u32 {
    let q = u32(f32(a) / f32(b));
    return select(q, q - 1u, q * b > a);
}

// The window of output row `row` (n·OH + r), column q, channels ch.
fn window_max(row: u32, q: u32, ch: vec4<u32>) -> WindowMax {
    let p = params;
    let n = udiv(row, p.oh);
    let top = i32((row - n * p.oh) * p.sh) - i32(p.pad_top);
    let left = i32(q * p.sw) - i32(p.pad_left);
    var best = vec4<f32>(0.0);
    var arg = vec4<u32>(NO_ARGMAX);
    var seen = false;
    for (var i = 0u; i < p.kh; i++) {
        let ih = top + i32(i);
        if (ih < 0 || ih >= i32(p.h)) {
            continue;
        }
        for (var j = 0u; j < p.kw; j++) {
            let iw = left + i32(j);
            if (iw < 0 || iw >= i32(p.w)) {
                continue;
            }
            let v = load4(((n * p.h + u32(ih)) * p.w + u32(iw)) * p.c, ch);
            // Strict '>' keeps the first maximum; the first valid cell always takes.
            let take = (v > best) | vec4<bool>(!seen);
            best = select(best, v, take);
            arg = select(arg, vec4<u32>(i * p.kw + j), take);
            seen = true;
        }
    }
    return WindowMax(best, arg);
}

// Stores output row `row`, column q's argmax bytes for channels c0..c0+3.
fn store_argmax(row: u32, q: u32, c0: u32, arg: vec4<u32>) {
    let p = params;
    let groups = (p.c + 3u) / 4u;
    // Channels past C (clamped duplicates) get the "no argmax" byte: a deterministic buffer.
    let a = select(vec4<u32>(NO_ARGMAX), arg, vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.c));
    argmax_out[(row * p.ow + q) * groups + c0 / 4u] = a.x | (a.y << 8u) | (a.z << 16u) | (a.w << 24u);
}

// Writes output row `row`, column q's channels c0..c0+3 (those below C) from v.
fn store_y(row: u32, q: u32, c0: u32, v: vec4<f32>) {
    store4((row * params.ow + q) * params.c + c0, c0, v);
}

// The residual at output row `row`, column q, channels ch (clamped to C − 1, as x's loads).
fn residual4(row: u32, q: u32, ch: vec4<u32>) -> vec4<f32> {
    let o = (row * params.ow + q) * params.c;
    if (VEC4 == 1u) {
        return residual4v[(o + ch.x) / 4u];
    }
    return vec4<f32>(residual[o + ch.x], residual[o + ch.y], residual[o + ch.z], residual[o + ch.w]);
}

// The max-pool forward entry points share this layout: lane → 4 channels from c0, output
// rows n·OH + r from wid.z striding by the grid's z size (capped at 65535), output columns q
// from wid.y striding by its y size (kernels::pool walks many columns per invocation: a
// workgroup per column cost lavapipe more to start than its windows). c0 ≥ C: nothing to do.
@compute @workgroup_size(WG)
fn max_pool2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c0 = (wid.x * WG + lid) * 4u;
    if (c0 >= params.c) {
        return;
    }
    let ch = channels(c0);
    for (var row = wid.z; row < params.n * params.oh; row += nwg.z) {
    for (var q = wid.y; q < params.ow; q += nwg.y) {
        let m = window_max(row, q, ch);
        store_y(row, q, c0, m.best);
        store_argmax(row, q, c0, m.arg);
    }
    }
}

@compute @workgroup_size(WG)
fn max_pool2d_forward_add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c0 = (wid.x * WG + lid) * 4u;
    if (c0 >= params.c) {
        return;
    }
    let ch = channels(c0);
    for (var row = wid.z; row < params.n * params.oh; row += nwg.z) {
    for (var q = wid.y; q < params.ow; q += nwg.y) {
        let m = window_max(row, q, ch);
        store_y(row, q, c0, m.best + residual4(row, q, ch));
        store_argmax(row, q, c0, m.arg);
    }
    }
}

@compute @workgroup_size(WG)
fn max_pool2d_forward_inference(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c0 = (wid.x * WG + lid) * 4u;
    if (c0 >= params.c) {
        return;
    }
    let ch = channels(c0);
    for (var row = wid.z; row < params.n * params.oh; row += nwg.z) {
    for (var q = wid.y; q < params.ow; q += nwg.y) {
        store_y(row, q, c0, window_max(row, q, ch).best);
    }
    }
}

@compute @workgroup_size(WG)
fn max_pool2d_forward_add_inference(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c0 = (wid.x * WG + lid) * 4u;
    if (c0 >= params.c) {
        return;
    }
    let ch = channels(c0);
    for (var row = wid.z; row < params.n * params.oh; row += nwg.z) {
    for (var q = wid.y; q < params.ow; q += nwg.y) {
        let m = window_max(row, q, ch);
        store_y(row, q, c0, m.best + residual4(row, q, ch));
    }
    }
}

@compute @workgroup_size(WG)
fn max_pool2d_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = params;
    let groups = (p.c + 3u) / 4u;
    let c0 = (wid.x * WG + lid) * 4u;
    if (c0 >= p.c) {
        return;
    }
    let ch = channels(c0);
    // Input rows n·H + ih, striding by the grid's z size (capped at 65535); input columns,
    // striding by its y size.
    for (var row = wid.z; row < p.n * p.h; row += nwg.z) {
    for (var col = wid.y; col < p.w; col += nwg.y) {
        let xw = i32(col + p.pad_left);
        // Windows q with q·SW ≤ xw ≤ q·SW + KW − 1, clipped to [0, OW).
        let q_lo = i32(udiv(u32(max(xw - i32(p.kw) + i32(p.sw), 0)), p.sw));
        let q_hi = min(i32(udiv(u32(xw), p.sw)), i32(p.ow) - 1);
        let n = udiv(row, p.h);
        let yh = i32(row - n * p.h + p.pad_top);
        let r_lo = i32(udiv(u32(max(yh - i32(p.kh) + i32(p.sh), 0)), p.sh));
        let r_hi = min(i32(udiv(u32(yh), p.sh)), i32(p.oh) - 1);
        var acc = vec4<f32>(0.0);
        for (var r = r_lo; r <= r_hi; r++) {
            for (var q = q_lo; q <= q_hi; q++) {
                let local = u32(yh - r * i32(p.sh)) * p.kw + u32(xw - q * i32(p.sw));
                let pix = (n * p.oh + u32(r)) * p.ow + u32(q);
                let a = (vec4<u32>(argmax[pix * groups + c0 / 4u]) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
                acc += select(vec4<f32>(0.0), load4(pix * p.c, ch), a == vec4<u32>(local));
            }
        }
        store4((row * p.w + col) * p.c + c0, c0, acc);
    }
    }
}

@compute @workgroup_size(GAP_LANES, GAP_ROWS)
fn global_avg_pool2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let p = params;
    let blocks = (p.c + GAP_LANES - 1u) / GAP_LANES;
    let g = wid.x + wid.y * nwg.x;
    let n = g / blocks;
    let ch = (g % blocks) * GAP_LANES + lid.x;
    let hw = p.h * p.w;
    let valid = n < p.n && ch < p.c;
    var s = 0.0;
    if (valid) {
        for (var i = lid.y; i < hw; i += GAP_ROWS) {
            s += x[(n * hw + i) * p.c + ch];
        }
    }
    gap_partial[lid.y * GAP_LANES + lid.x] = s;
    workgroupBarrier();
    // GAP_ROWS need not be a power of two: fold the upper half onto the lower, rounding up.
    var rows = GAP_ROWS;
    while (rows > 1u) {
        let half = (rows + 1u) / 2u;
        if (lid.y + half < rows) {
            gap_partial[lid.y * GAP_LANES + lid.x] += gap_partial[(lid.y + half) * GAP_LANES + lid.x];
        }
        workgroupBarrier();
        rows = half;
    }
    if (lid.y == 0u && valid) {
        out[n * p.c + ch] = gap_partial[lid.x] / f32(hw);
    }
}

@compute @workgroup_size(WG)
fn global_avg_pool2d_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = params;
    let c0 = (wid.x * WG + lid) * 4u;
    if (c0 >= p.c) {
        return;
    }
    let hw = p.h * p.w;
    let ch = channels(c0);
    let inv = 1.0 / f32(hw);
    // Pixels n·H·W + i, striding by the grid's z size (capped at 65535).
    for (var pix = wid.z; pix < p.n * hw; pix += nwg.z) {
        let g = load4((pix / hw) * p.c, ch) * inv;
        for (var k = 0u; k < 4u; k++) {
            if (c0 + k < p.c) {
                out[pix * p.c + c0 + k] = g[k];
            }
        }
    }
}
