//! What the adapter allows, measured: how far the shipped GEMM is from the arithmetic that its
//! own register tile can reach once its loads are taken away, and how fast a kernel can load at
//! all. These bound every speed target on a software adapter, so they are measured here, on the
//! machine at hand, rather than assumed.
//!
//! `cargo bench --bench ceiling` (with `GPUCNN_SGEMM_PEAK_GFLOPS=<the machine's sgemm GFLOP/s>`,
//! e.g. from `../shared/peers/sgemm.py`, each GEMM line also gives its share of that peak).
//!
//! GEMM rows, all at one pointwise-convolution shape of the model (M = 16·32·32 pixels, K = N =
//! 256 channels: `separable_conv2d_1` at 64×64, batch 16):
//! - `shipped`: `kernels::gemm` as the trainer runs it, each variant this adapter has but the
//!   naive one (`gpucnn info` says which one training uses here);
//! - `tile`: a stripped copy of the subgroup variant's tiling (32 rows × 2 vec4 columns per
//!   invocation, A handed round by subgroup shuffles, B loaded per lane), without the shipped
//!   kernel's clamps, gathers, split-K and epilogue;
//! - `tile, B loaded once`: the same, with B's loads hoisted out of the K loop (wrong result,
//!   same arithmetic and A traffic);
//! - `tile, no loads`: A and B both hoisted: only the multiply-adds and shuffles are left, the
//!   ceiling of this tiling on this adapter;
//! - `subgroup64, B through a texture` and `…, A and B through textures`: the shipped
//!   `subgroup64` WGSL itself (vec4 loads of A and B, vec4 stores of C, no gathers), with its `b4` (and `a4`)
//!   storage reads replaced by `textureLoad`s of read-only rgba32float storage textures (as the
//!   shipped `texture64` binds its mirrors) holding the same floats
//!   (copied in before the timing, which does not count the copy), checked equal to the shipped
//!   kernel's C. On Mesa 22.3 a storage-buffer load is a loop over the 8 lanes with a branch
//!   per lane and component; a texel fetch is one vectorised gather.
//!
//! Load rows: floats loaded per second by a kernel that only loads and sums, through a storage
//! buffer as vec4, as four scalars, through an rgba32float texture sampled and as a read-only
//! storage texture (Mesa 22.3 compiles the sampled `textureLoad` into a call that looks up the
//! mip level per lane, the storage one into an inline gather), and through a 64 KiB
//! uniform buffer (its index wraps inside the window: a uniform binding holds at most 64 KiB).
//! Store rows: floats written per second by a kernel that only computes values from its index
//! and stores them into a storage buffer, as vec4s and as scalars. On Mesa 22.3 a storage
//! store is a loop over the 8 lanes with a branch per lane and a bounds check per component,
//! about 50 instructions per lane for a vec4 (a texel fetch is ~40 for all 8 lanes): against
//! the load rows, these say what each float a pass writes costs, the price a fusion saves.
//! Mirror rows: what putting a storage buffer's floats into such a texture costs, by a kernel
//! (which fits inside a compute pass) or by the encoder's copy (which does not).
//!
//! Each GEMM and load row is the median of 5 timings of 3 dispatches in one submission (the
//! texture GEMM rows and the shipped kernel alternate, 5 timings each); each mirror row, the
//! median of 5 timings of one copy or dispatch.

use std::time::Instant;

use wgpu::util::DeviceExt;

use gpucnn::gpu::shader::Dispatch;
use gpucnn::gpu::{GpuContext, test_context};
use gpucnn::kernels::gemm::{Gemm, GemmDims, Params as GemmParams, Variant};

const M: usize = 16 * 32 * 32;
const K: usize = 256;
const N: usize = 256;
/// Rows of C per invocation (and per subgroup) in the stripped tile.
const ROWS: usize = 32;

fn main() {
    gpucnn::bench::end_quietly_on_closed_pipe();
    let Some(ctx) = test_context() else { return };
    eprintln!("adapter: {}", ctx.summary());
    let peak: Option<f64> = std::env::var("GPUCNN_SGEMM_PEAK_GFLOPS")
        .ok()
        .and_then(|v| v.parse().ok());
    let share = |gflops: f64| match peak {
        Some(p) => format!(", {:.1}% of sgemm", 100.0 * gflops / p),
        None => String::new(),
    };
    let a: Vec<f32> = (0..M * K)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
        .collect();
    let b: Vec<f32> = (0..K * N)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let abuf = ctx.upload("a", &a);
    let bbuf = ctx.upload("b", &b);
    let cbuf = ctx.zeros("c", M * N);
    let flops = 2.0 * (M * N * K) as f64;

    let gemm = Gemm::new(&ctx);
    let dims = GemmDims { m: M, n: N, k: K };
    for variant in gemm.available() {
        if variant == Variant::Naive {
            continue; // seconds per run on a CPU adapter; it bounds nothing
        }
        let shipped = gemm.forward(&ctx, variant, &cbuf, &abuf, &bbuf, &dims);
        let secs = median(|| {
            ctx.run(|enc| {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for _ in 0..3 {
                    shipped.record(&mut pass);
                }
            })
            .expect("submit");
            ctx.wait().expect("wait");
        }) / 3.0;
        let g = flops / secs / 1e9;
        println!(
            "gemm {M}x{N}x{K} shipped {}: {:.2} ms, {g:.1} GFLOP/s{}",
            variant.name(),
            secs * 1e3,
            share(g)
        );
    }

    if ctx.has_subgroups() {
        for (label, hoist) in [
            ("tile", Hoist::Nothing),
            ("tile, B loaded once", Hoist::B),
            ("tile, no loads", Hoist::AAndB),
        ] {
            let secs = time_tile(&ctx, hoist, &abuf, &bbuf, &cbuf);
            let g = flops / secs / 1e9;
            println!(
                "gemm {M}x{N}x{K} {label}: {:.2} ms, {g:.1} GFLOP/s{}",
                secs * 1e3,
                share(g)
            );
        }
        let shipped64 = gemm
            .available()
            .contains(&Variant::Subgroup64)
            .then(|| gemm.forward(&ctx, Variant::Subgroup64, &cbuf, &abuf, &bbuf, &dims));
        if let Some(shipped) = shipped64 {
            ctx.run(|enc| shipped.record(&mut enc.begin_compute_pass(&Default::default())))
                .expect("submit");
            let want: Vec<f32> = ctx.read(&cbuf).expect("read C");
            for (label, operands) in [
                ("subgroup64, B through a texture", TexOperands::B),
                ("subgroup64, A and B through textures", TexOperands::AAndB),
            ] {
                let (base, secs) =
                    time_textured(&ctx, operands, &shipped, (&a, &abuf), (&b, &bbuf), &want);
                let g = flops / secs / 1e9;
                println!(
                    "gemm {M}x{N}x{K} {label}: {:.2} ms, {g:.1} GFLOP/s{}; {:.2}× the shipped \
                     subgroup64 timed in turn with it ({:.2} ms)",
                    secs * 1e3,
                    share(g),
                    base / secs,
                    base * 1e3
                );
            }
        }
    } else {
        println!("gemm tile rows: skipped, the adapter has no subgroups");
    }

    for (label, source) in LOADS {
        let g = time_loads(&ctx, source);
        println!("loads, {label}: {g:.2} G floats/s");
    }
    for (label, store) in STORES {
        let g = time_stores(&ctx, store);
        println!("stores, {label}: {g:.2} G floats/s");
    }
    for (label, by_kernel) in [
        ("a kernel's textureStore", true),
        ("copy_buffer_to_texture", false),
    ] {
        let g = time_mirror(&ctx, by_kernel);
        println!("storage buffer to rgba32float texture, {label}: {g:.2} G floats/s");
    }
}

/// Floats per second (G) moved from a storage buffer into an rgba32float texture of the load
/// rows' size, by a compute kernel (one texel per invocation: a storage read, a textureStore)
/// or by the encoder's copy; checked by copying the texture back.
fn time_mirror(ctx: &GpuContext, by_kernel: bool) -> f64 {
    let data: Vec<f32> = (0..LOAD_W * LOAD_H * 4).map(|i| (i % 23) as f32).collect();
    let src = ctx.upload("mirror src", &data);
    let size = wgpu::Extent3d {
        width: LOAD_W as u32,
        height: LOAD_H as u32,
        depth_or_array_layers: 1,
    };
    let texture = rgba_texture(
        ctx,
        "mirror",
        size.width,
        size.height,
        wgpu::TextureUsages::STORAGE_BINDING
            | wgpu::TextureUsages::COPY_DST
            | wgpu::TextureUsages::COPY_SRC,
    );
    let view = texture.create_view(&Default::default());
    let layout = wgpu::TexelCopyBufferLayout {
        offset: 0,
        bytes_per_row: Some((LOAD_W * 16) as u32),
        rows_per_image: Some(LOAD_H as u32),
    };
    let pipe = pipeline(
        ctx,
        format!(
            "@group(0) @binding(0) var<storage, read> s: array<vec4<f32>>;\n\
             @group(0) @binding(1) var t: texture_storage_2d<rgba32float, write>;\n\
             @compute @workgroup_size(64)\n\
             fn main(@builtin(global_invocation_id) g: vec3<u32>) {{\n\
             \x20   textureStore(t, vec2<u32>(g.x % {LOAD_W}u, g.x / {LOAD_W}u), s[g.x]);\n\
             }}\n"
        ),
    );
    let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("mirror"),
        layout: &pipe.get_bind_group_layout(0),
        entries: &[
            entry(0, src.as_entire_binding()),
            entry(1, wgpu::BindingResource::TextureView(&view)),
        ],
    });
    let secs = median(|| {
        ctx.run(|enc| {
            if by_kernel {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipe);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups((LOAD_W * LOAD_H / 64) as u32, 1, 1);
            } else {
                enc.copy_buffer_to_texture(
                    wgpu::TexelCopyBufferInfo {
                        buffer: &src,
                        layout,
                    },
                    texture.as_image_copy(),
                    size,
                );
            }
        })
        .expect("submit");
    });
    let back = ctx.zeros("mirror back", data.len());
    ctx.run(|enc| {
        enc.copy_texture_to_buffer(
            texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &back,
                layout,
            },
            size,
        )
    })
    .expect("submit");
    let got: Vec<f32> = ctx.read(&back).expect("read mirror");
    assert!(got == data, "the texture does not hold the buffer's floats");
    data.len() as f64 / secs / 1e9
}

#[derive(Clone, Copy, PartialEq)]
enum TexOperands {
    B,
    AAndB,
}

/// Texels per row of the operand textures (a flat vec4 index i is texel (i % TEX_W, i / TEX_W)).
const TEX_W: u32 = 256;

/// `text` with `from` replaced by `to`; panics if `from` is absent (the shipped shader changed
/// and this bench no longer measures what it says).
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "gemm_subgroup64.wgsl no longer has `{from}`"
    );
    text.replace(from, to)
}

/// The shipped subgroup64 GEMM, its vec4 reads of B (and A) taken from textures instead
/// (read-only storage textures, as the shipped texture64 and the mirrors bind them).
fn textured_wgsl(operands: TexOperands) -> String {
    let mut s = swap(
        include_str!("../shaders/gemm_subgroup64.wgsl"),
        "@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;",
        &format!(
            "@group(0) @binding(6) var b4t: texture_storage_2d<rgba32float, read>;\n\
             fn b4l(i: u32) -> vec4<f32> {{ return textureLoad(b4t, vec2<u32>(i % {TEX_W}u, i / {TEX_W}u)); }}"
        ),
    );
    s = swap(
        &s,
        "return b4[(row + co.x) >> 2u];",
        "return b4l((row + co.x) >> 2u);",
    );
    if operands == TexOperands::AAndB {
        // a4 stays declared (at a free slot) for the A_MODE 2 path, which this bench never takes.
        s = swap(
            &s,
            "@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;",
            &format!(
                "@group(0) @binding(5) var a4t: texture_storage_2d<rgba32float, read>;\n\
                 @group(0) @binding(8) var<storage, read> a4: array<vec4<f32>>;\n\
                 fn a4l(i: u32) -> vec4<f32> {{ return textureLoad(a4t, vec2<u32>(i % {TEX_W}u, i / {TEX_W}u)); }}"
            ),
        );
        s = swap(
            &s,
            "v = a4[(row + ko.x) >> 2u];",
            "v = a4l((row + ko.x) >> 2u);",
        );
    }
    s
}

/// An empty rgba32float texture of `width` × `height` texels.
fn rgba_texture(
    ctx: &GpuContext,
    label: &str,
    width: u32,
    height: u32,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage,
        view_formats: &[],
    })
}

/// An rgba32float texture holding `data` (a multiple of 4·width floats) in rows of `width`
/// texels.
fn texture_of(ctx: &GpuContext, data: &[f32], width: u32) -> wgpu::TextureView {
    let height = (data.len() / 4) as u32 / width;
    let usage = wgpu::TextureUsages::TEXTURE_BINDING
        | wgpu::TextureUsages::STORAGE_BINDING
        | wgpu::TextureUsages::COPY_DST;
    let texture = rgba_texture(ctx, "operand", width, height, usage);
    ctx.queue.write_texture(
        texture.as_image_copy(),
        bytemuck::cast_slice(data),
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(width * 16),
            rows_per_image: None,
        },
        texture.size(),
    );
    texture.create_view(&Default::default())
}

/// Seconds per GEMM of `shipped` and of [`textured_wgsl`] at M×N×K (A_MODE = B_MODE = 1, no
/// gathers, one split: the shipped kernel's configuration for these row-major operands), timed
/// in turn (a shared machine's speed drifts over a minute: only a ratio measured side by side
/// means anything); the textured C must equal `want`, the shipped kernel's.
fn time_textured(
    ctx: &GpuContext,
    operands: TexOperands,
    shipped: &Dispatch,
    (a, abuf): (&[f32], &wgpu::Buffer),
    (b, bbuf): (&[f32], &wgpu::Buffer),
    want: &[f32],
) -> (f64, f64) {
    let pipe = pipeline_of(
        ctx,
        textured_wgsl(operands),
        "gemm_subgroup",
        &[
            ("A_MODE", 1.0),
            ("B_MODE", 1.0),
            ("GATHER", 0.0),
            ("C_MODE", 1.0),
        ],
    );
    let (m, n, k) = (M as u32, N as u32, K as u32);
    // Row-major A (M×K), B (K×N), C (M×N), one split, no bias, no gather.
    let params = GemmParams {
        m,
        n,
        k,
        splits: 1,
        k_chunk: k,
        a_ms: k,
        a_ks: 1,
        b_ks: n,
        b_ns: 1,
        c_ms: n,
        c_split: m * n,
        g_ohw: 1,
        g_ow: 1,
        g_in_w: 1,
        g_in_hw: 1,
        g_stride: 1,
        ..Default::default()
    };
    let params = ctx.uniform("p", &params);
    let bias = ctx.zeros("bias", N);
    let c = ctx.zeros("c", M * N);
    // C_MODE 1, as the shipped kernel at this shape: C through its vec4 view (slot 7), a
    // stand-in at the scalar one.
    let c_scalar = ctx.zeros("c stand-in", 4);
    let atex = (operands == TexOperands::AAndB).then(|| texture_of(ctx, a, TEX_W));
    let btex = texture_of(ctx, b, TEX_W);
    let mut entries = vec![
        entry(0, c_scalar.as_entire_binding()),
        entry(7, c.as_entire_binding()),
        entry(1, abuf.as_entire_binding()),
        entry(2, bbuf.as_entire_binding()),
        entry(3, bias.as_entire_binding()),
        entry(4, params.as_entire_binding()),
        entry(6, wgpu::BindingResource::TextureView(&btex)),
    ];
    match &atex {
        Some(atex) => {
            entries.push(entry(5, wgpu::BindingResource::TextureView(atex)));
            entries.push(entry(8, abuf.as_entire_binding()));
        }
        None => entries.push(entry(5, abuf.as_entire_binding())),
    }
    let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("ceiling textured"),
        layout: &pipe.get_bind_group_layout(0),
        entries: &entries,
    });
    let textured = || {
        ctx.run(|enc| {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipe);
            pass.set_bind_group(0, &bg, &[]);
            for _ in 0..3 {
                pass.dispatch_workgroups(n.div_ceil(64), m.div_ceil(64), 1);
            }
        })
        .expect("submit");
    };
    let base = || {
        ctx.run(|enc| {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..3 {
                shipped.record(&mut pass);
            }
        })
        .expect("submit");
    };
    textured();
    let (mut tb, mut tt) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let s = Instant::now();
        base();
        tb.push(s.elapsed().as_secs_f64() / 3.0);
        let s = Instant::now();
        textured();
        tt.push(s.elapsed().as_secs_f64() / 3.0);
    }
    tb.sort_by(f64::total_cmp);
    tt.sort_by(f64::total_cmp);
    let got: Vec<f32> = ctx.read(&c).expect("read C");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-5,
        "textured GEMM differs from the shipped one by {worst}"
    );
    (tb[2], tt[2])
}

/// Median wall time of `f` over 5 runs, after one untimed run (pipeline compilation).
fn median(mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}

#[derive(Clone, Copy, PartialEq)]
enum Hoist {
    Nothing,
    B,
    AAndB,
}

/// The stripped subgroup tile (see the file's doc), unrolled over its 32 rows.
fn tile_wgsl(hoist: Hoist) -> String {
    let mut s = String::from(
        "struct P { m: u32, n: u32, k: u32, pad: u32 }\n\
         @group(0) @binding(0) var<storage, read_write> c: array<vec4<f32>>;\n\
         @group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;\n\
         @group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;\n\
         @group(0) @binding(3) var<uniform> p: P;\n\
         fn bv(k: u32, c4: u32) -> vec4<f32> { return b4[k * (p.n / 4u) + c4]; }\n\
         fn bm(k: u32, c4: u32) -> mat4x4<f32> {\n\
         \x20   return mat4x4<f32>(bv(k, c4), bv(k + 1u, c4), bv(k + 2u, c4), bv(k + 3u, c4));\n\
         }\n\
         fn av(m: u32, k4: u32) -> vec4<f32> { return a4[m * (p.k / 4u) + k4]; }\n\
         @compute @workgroup_size(8)\n\
         fn main(@builtin(workgroup_id) wid: vec3<u32>,\n\
         \x20   @builtin(subgroup_invocation_id) lane: u32) {\n",
    );
    s += &format!("    let m0 = wid.y * {ROWS}u;\n");
    s += "    let n0 = wid.x * 16u + lane % 8u;\n    let n1 = n0 + 8u;\n";
    for r in 0..ROWS {
        s += &format!("    var c{r}a = vec4<f32>(0.0);\n    var c{r}b = vec4<f32>(0.0);\n");
    }
    if hoist != Hoist::Nothing {
        s += "    let b0 = bm(0u, n0);\n    let b1 = bm(0u, n1);\n";
    }
    if hoist == Hoist::AAndB {
        for r in 0..ROWS {
            s += &format!("    let a{r} = av(m0 + {r}u, lane % 8u);\n");
        }
    }
    s += "    for (var k0 = 0u; k0 < p.k; k0 += 32u) {\n";
    if hoist != Hoist::AAndB {
        for r in 0..ROWS {
            s += &format!("        let a{r} = av(m0 + {r}u, k0 / 4u + lane % 8u);\n");
        }
    }
    s += "        for (var j = 0u; j < 8u; j++) {\n";
    if hoist == Hoist::Nothing {
        s += "            let b0 = bm(k0 + 4u * j, n0);\n            let b1 = bm(k0 + 4u * j, n1);\n";
    }
    for r in 0..ROWS {
        s += &format!(
            "            let s{r} = subgroupShuffle(a{r}, j);\n            c{r}a += b0 * s{r};\n            c{r}b += b1 * s{r};\n"
        );
    }
    s += "        }\n    }\n";
    for r in 0..ROWS {
        s += &format!(
            "    c[(m0 + {r}u) * (p.n / 4u) + n0] = c{r}a;\n    c[(m0 + {r}u) * (p.n / 4u) + n1] = c{r}b;\n"
        );
    }
    s += "}\n";
    s
}

fn pipeline(ctx: &GpuContext, source: String) -> wgpu::ComputePipeline {
    pipeline_of(ctx, source, "main", &[])
}

/// The pipeline of `entry` in `source` with the override `constants`.
fn pipeline_of(
    ctx: &GpuContext,
    source: String,
    entry: &str,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("ceiling"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    ctx.device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("ceiling"),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        })
}

fn time_tile(
    ctx: &GpuContext,
    hoist: Hoist,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> f64 {
    let pipe = pipeline(ctx, tile_wgsl(hoist));
    let params = ctx.uniform("p", &[M as u32, N as u32, K as u32, 0u32]);
    let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("ceiling"),
        layout: &pipe.get_bind_group_layout(0),
        entries: &[
            entry(0, c.as_entire_binding()),
            entry(1, a.as_entire_binding()),
            entry(2, b.as_entire_binding()),
            entry(3, params.as_entire_binding()),
        ],
    });
    let secs = median(|| {
        ctx.run(|enc| {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipe);
            pass.set_bind_group(0, &bg, &[]);
            for _ in 0..3 {
                pass.dispatch_workgroups((N / 64) as u32, (M / ROWS) as u32, 1);
            }
        })
        .expect("submit");
        ctx.wait().expect("wait");
    }) / 3.0;
    if hoist == Hoist::Nothing {
        check_tile(ctx, c);
    }
    secs
}

/// The stripped tile must compute the product, or its time means nothing: rows 0..8 against
/// a CPU product of the same inputs.
fn check_tile(ctx: &GpuContext, c: &wgpu::Buffer) {
    let a: Vec<f32> = (0..8 * K)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
        .collect();
    let b: Vec<f32> = (0..K * N)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let got: Vec<f32> = ctx.read_range(c, 0, (8 * N * 4) as u64).expect("read C");
    for i in 0..8 {
        for j in 0..N {
            let want: f32 = (0..K).map(|k| a[i * K + k] * b[k * N + j]).sum();
            let g = got[i * N + j];
            assert!(
                (g - want).abs() <= 1e-3 * (1.0 + want.abs()),
                "stripped tile wrong at C[{i},{j}]: {g} vs {want}"
            );
        }
    }
}

fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
}

/// Texels of the load test's source (rgba, so 4 floats each): 1024 × 2048.
const LOAD_W: usize = 1024;
const LOAD_H: usize = 2048;

/// (label, how `ld(x, y)` reads texel (x, y) of the source as a vec4).
const LOADS: [(&str, &str); 5] = [
    (
        "storage buffer, vec4",
        "@group(0) @binding(1) var<storage, read> s: array<vec4<f32>>;\n\
         fn ld(x: u32, y: u32) -> vec4<f32> { return s[y * 1024u + x]; }",
    ),
    (
        "storage buffer, 4 scalars",
        "@group(0) @binding(1) var<storage, read> s: array<f32>;\n\
         fn ld(x: u32, y: u32) -> vec4<f32> {\n\
         \x20   let i = (y * 1024u + x) * 4u;\n\
         \x20   return vec4<f32>(s[i], s[i + 1u], s[i + 2u], s[i + 3u]);\n\
         }",
    ),
    (
        "rgba32float texture",
        "@group(0) @binding(1) var s: texture_2d<f32>;\n\
         fn ld(x: u32, y: u32) -> vec4<f32> { return textureLoad(s, vec2<u32>(x, y), 0); }",
    ),
    (
        "rgba32float read-only storage texture",
        "@group(0) @binding(1) var s: texture_storage_2d<rgba32float, read>;\n\
         fn ld(x: u32, y: u32) -> vec4<f32> { return textureLoad(s, vec2<u32>(x, y)); }",
    ),
    (
        "uniform buffer, 64 KiB window",
        "@group(0) @binding(1) var<uniform> s: array<vec4<f32>, 4096>;\n\
         fn ld(x: u32, y: u32) -> vec4<f32> { return s[(y * 1024u + x) % UNIFORM_TEXELS]; }",
    ),
];

/// Texels (vec4s) of the uniform-buffer load row's window: 64 KiB, the most one uniform
/// binding may hold here (and WebGPU's default limit).
const UNIFORM_TEXELS: usize = 4096;

/// Floats loaded per second (G) by a kernel whose every invocation loads four texels of one
/// row (seven apart, as the taps of a convolution) and writes their sum.
fn time_loads(ctx: &GpuContext, decl: &str) -> f64 {
    let data: Vec<f32> = (0..LOAD_W * LOAD_H * 4).map(|i| (i % 17) as f32).collect();
    let out = ctx.zeros("sums", LOAD_W * LOAD_H);
    let uniform = decl.contains("var<uniform>");
    let source = format!(
        "const UNIFORM_TEXELS: u32 = {UNIFORM_TEXELS}u;\n\
         @group(0) @binding(0) var<storage, read_write> o: array<f32>;\n{decl}\n\
         @compute @workgroup_size(64)\n\
         fn main(@builtin(global_invocation_id) g: vec3<u32>) {{\n\
         \x20   let x = g.x % 1024u;\n\
         \x20   let y = g.x / 1024u;\n\
         \x20   var t = vec4<f32>(0.0);\n\
         \x20   for (var i = 0u; i < 4u; i++) {{ t += ld((x + i * 7u) % 1024u, y); }}\n\
         \x20   o[g.x] = t.x + t.y + t.z + t.w;\n\
         }}\n"
    );
    let pipe = pipeline(ctx, source);
    let storage;
    let view;
    let resource = if decl.contains("texture_") {
        view = texture_of(ctx, &data, LOAD_W as u32);
        wgpu::BindingResource::TextureView(&view)
    } else if uniform {
        storage = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("loads"),
                contents: bytemuck::cast_slice(&data[..UNIFORM_TEXELS * 4]),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        storage.as_entire_binding()
    } else {
        storage = ctx.upload("loads", &data);
        storage.as_entire_binding()
    };
    let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("loads"),
        layout: &pipe.get_bind_group_layout(0),
        entries: &[entry(0, out.as_entire_binding()), entry(1, resource)],
    });
    let secs = median(|| {
        ctx.run(|enc| {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipe);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups((LOAD_W * LOAD_H / 64) as u32, 1, 1);
        })
        .expect("submit");
        ctx.wait().expect("wait");
    });
    // Every sum is Σ over 4 texels of their 4 floats; check one against the data.
    let i = 12345usize;
    let (x, y) = (i % LOAD_W, i / LOAD_W);
    let want: f32 = (0..4)
        .map(|t| {
            let texel = y * LOAD_W + (x + t * 7) % LOAD_W;
            let o = if uniform {
                texel % UNIFORM_TEXELS
            } else {
                texel
            } * 4;
            data[o..o + 4].iter().sum::<f32>()
        })
        .sum();
    let got: Vec<f32> = ctx.read_range(&out, (i * 4) as u64, 4).expect("read sums");
    assert_eq!(got[0], want, "load kernel wrong");
    (LOAD_W * LOAD_H * 16) as f64 / secs / 1e9
}

/// (label, how `st(j, v)` writes the vec4 `v` as texel `j` of the output).
const STORES: [(&str, &str); 2] = [
    (
        "storage buffer, vec4",
        "@group(0) @binding(0) var<storage, read_write> o: array<vec4<f32>>;\n\
         fn st(j: u32, v: vec4<f32>) { o[j] = v; }",
    ),
    (
        "storage buffer, 4 scalars",
        "@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n\
         fn st(j: u32, v: vec4<f32>) {\n\
         \x20   o[4u * j] = v.x;\n\
         \x20   o[4u * j + 1u] = v.y;\n\
         \x20   o[4u * j + 2u] = v.z;\n\
         \x20   o[4u * j + 3u] = v.w;\n\
         }",
    ),
];

/// Floats stored per second (G) by a kernel whose every invocation writes four texels a
/// quarter of the output apart (neighbouring lanes, neighbouring texels) from its index alone,
/// into an output of the load rows' size; every texel is checked.
fn time_stores(ctx: &GpuContext, decl: &str) -> f64 {
    let texels = LOAD_W * LOAD_H;
    let out = ctx.zeros("stores", texels * 4);
    let source = format!(
        "{decl}\n\
         @compute @workgroup_size(64)\n\
         fn main(@builtin(global_invocation_id) g: vec3<u32>) {{\n\
         \x20   for (var i = 0u; i < 4u; i++) {{\n\
         \x20       let j = g.x + i * {quarter}u;\n\
         \x20       let f = f32(j % 65536u);\n\
         \x20       st(j, vec4<f32>(f, f + 1.0, f + 2.0, f + 3.0));\n\
         \x20   }}\n\
         }}\n",
        quarter = texels / 4
    );
    let pipe = pipeline(ctx, source);
    let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("stores"),
        layout: &pipe.get_bind_group_layout(0),
        entries: &[entry(0, out.as_entire_binding())],
    });
    let secs = median(|| {
        ctx.run(|enc| {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipe);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups((texels / 4 / 64) as u32, 1, 1);
        })
        .expect("submit");
        ctx.wait().expect("wait");
    });
    let got: Vec<f32> = ctx.read(&out).expect("read stores");
    for (j, t) in got.chunks(4).enumerate() {
        let f = (j % 65536) as f32;
        assert_eq!(
            t,
            [f, f + 1.0, f + 2.0, f + 3.0],
            "store kernel wrong at texel {j}"
        );
    }
    (texels * 4) as f64 / secs / 1e9
}
