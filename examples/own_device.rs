//! An app that owns its wgpu device and runs gpucnn's kernels on its own buffers, inside its own
//! compute pass: conv2d (3×3, stride 2, same) → batch norm with the ReLU fused (inference, the
//! moving statistics) → max pool 3×3 stride 2 (inference: no argmax), checked against gpucnn's
//! CPU reference. It builds with `default-features = false` (the kernels alone).
//!
//! `cargo run --example own_device` (exit status 0 when the GPU result matches the reference).

use gpucnn::cpu::{self, Padding, conv2d::Conv2dShape, pool::Pool2d};
use gpucnn::gpu::GpuContext;
use gpucnn::kernels::batch_norm::{BatchNorm, BnShape, InferenceBuffers};
use gpucnn::kernels::conv2d::Conv2d;
use gpucnn::kernels::pool::Pool;
use wgpu::util::DeviceExt;

/// A deterministic pseudo-random vector in [lo, hi) (the app's own data).
fn data(seed: u32, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            lo + (hi - lo) * (state as f32 / u32::MAX as f32)
        })
        .collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn main() {
    // The app's device: its own choice of adapter and descriptor (here wgpu's defaults).
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("no GPU adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers)");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("a device with wgpu's default descriptor");

    // gpucnn on that device: features and limits are read from it, variants follow them.
    let ctx = GpuContext::from_device(device.clone(), queue.clone());
    println!(
        "adapter: {} (subgroups: {})",
        ctx.info.name,
        ctx.has_subgroups()
    );
    let conv = Conv2d::new(&ctx);
    let bn = BatchNorm::new(&ctx);
    let pool = Pool::new(&ctx);

    let cs = Conv2dShape {
        n: 2,
        h: 15,
        w: 13,
        cin: 3,
        cout: 24,
        k: 3,
        stride: 2,
        padding: Padding::Same,
    };
    let (oh, ow) = (cs.oh(), cs.ow());
    let bs = BnShape {
        relu: true,
        ..BnShape::keras(cs.n * oh * ow, cs.cout)
    };
    let ps = Pool2d::square(cs.n, oh, ow, cs.cout, 3, 2, Padding::Same);

    // The app's own buffers (any buffer with STORAGE usage serves).
    let x = data(1, cs.n * cs.h * cs.w * cs.cin, 0.0, 1.0);
    let w = data(2, cs.k * cs.k * cs.cin * cs.cout, -0.5, 0.5);
    let b = data(3, cs.cout, -0.1, 0.1);
    let gamma = data(4, cs.cout, 0.5, 1.5);
    let beta = data(5, cs.cout, -0.2, 0.2);
    let mean = data(6, cs.cout, -0.3, 0.3);
    let var = data(7, cs.cout, 0.2, 1.0);
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let buffer = |label: &str, v: &[f32]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(v),
            usage,
        })
    };
    let empty = |label: &str, len: usize| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len * 4) as u64,
            usage,
            mapped_at_creation: false,
        })
    };
    let (xb, wb, bb) = (buffer("x", &x), buffer("w", &w), buffer("b", &b));
    let (gb, betab) = (buffer("gamma", &gamma), buffer("beta", &beta));
    let (mb, vb) = (buffer("moving_mean", &mean), buffer("moving_var", &var));
    let conv_out = empty("conv_out", bs.rows * bs.channels);
    let bn_out = empty("bn_out", bs.rows * bs.channels);
    let pooled = empty("pooled", ps.out_len());

    // Dispatches are built once (pipelines and bind groups) and recorded as often as needed.
    let steps = [
        conv.forward(&ctx, &conv_out, &xb, &wb, &bb, &cs),
        bn.forward_inference(
            &ctx,
            &InferenceBuffers {
                y: &bn_out,
                x: &conv_out,
                gamma: &gb,
                beta: &betab,
                moving_mean: &mb,
                moving_var: &vb,
            },
            &bs,
        ),
        pool.max_pool2d_forward_inference(&ctx, &pooled, &bn_out, &ps),
    ];
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: (ps.out_len() * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("the app's pass"),
            timestamp_writes: None,
        });
        for s in &steps {
            s.record(&mut pass);
        }
    }
    enc.copy_buffer_to_buffer(&pooled, 0, &readback, 0, readback.size());
    queue.submit([enc.finish()]);
    readback.map_async(wgpu::MapMode::Read, .., |r| r.expect("map the result"));
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("the GPU finished");
    let got: Vec<f32> =
        bytemuck::cast_slice(&readback.get_mapped_range(..).expect("mapped")).to_vec();

    // The same three layers through the CPU reference (f64, unfused: batch norm, then ReLU).
    let mut y = vec![0.0; bs.rows * bs.channels];
    cpu::conv2d::conv2d_forward(&mut y, &f64s(&x), &f64s(&w), &f64s(&b), &cs);
    let mut z = vec![0.0; y.len()];
    let unfused = BnShape { relu: false, ..bs };
    cpu::batch_norm::batch_norm_forward_inference(
        &mut z,
        &y,
        &f64s(&gamma),
        &f64s(&beta),
        &f64s(&mean),
        &f64s(&var),
        &unfused,
    );
    let mut r = vec![0.0; z.len()];
    cpu::relu::relu_forward(&mut r, &z);
    let (mut want, mut argmax) = (vec![0.0; ps.out_len()], vec![0u32; ps.out_len()]);
    cpu::pool::max_pool2d_forward(&mut want, &mut argmax, &r, &ps);

    let worst = (got.iter().zip(&want))
        .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max);
    println!(
        "conv2d → batch norm + ReLU → max pool on the app's device: {} outputs, largest error {worst:.2e} (relative to 1 + |value|)",
        got.len()
    );
    assert!(
        worst < 1e-5,
        "the GPU result differs from the CPU reference"
    );
    println!("ok");
}
