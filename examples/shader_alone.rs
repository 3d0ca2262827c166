//! A plain wgpu program that runs one of gpucnn's shaders from its header alone: it
//! `include_str!`s shaders/pool.wgsl, dispatches `max_pool2d_forward_inference` as the header
//! (and shaders/README.md, for TensorFlow's padding) says, and checks the result against a CPU
//! loop. Nothing of gpucnn's Rust is used.
//!
//! `cargo run --example shader_alone` (exit status 0 when every output matches).

use wgpu::util::DeviceExt;

/// `struct Params` of pool.wgsl: twelve u32 in this order (shaders/interface/pool.json has the
/// offsets).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
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

/// TensorFlow's `same` padding: (output size, padding before).
fn same(n: u32, k: u32, s: u32) -> (u32, u32) {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(n);
    (out, total / 2)
}

fn main() {
    let (n, h, w, c, k, s) = (2u32, 9u32, 7u32, 10u32, 3u32, 2u32);
    let (oh, pad_top) = same(h, k, s);
    let (ow, pad_left) = same(w, k, s);
    let x: Vec<f32> = (0..n * h * w * c)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
        .collect();

    // The device: any adapter, wgpu's default limits and no optional features.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("no GPU adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers)");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("a device with wgpu's default descriptor");
    println!("adapter: {}", adapter.get_info().name);

    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("pool.wgsl"),
        source: wgpu::ShaderSource::Wgsl(include_str!("../shaders/pool.wgsl").into()),
    });
    // layout: None is WebGPU's 'auto': the layout has exactly the bindings this entry point uses
    // (out at slot 0, x at 1, params at 4, and the vec4 views at 6 and 8, per the header).
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("max_pool2d_forward_inference"),
        layout: None,
        module: &module,
        entry_point: Some("max_pool2d_forward_inference"),
        compilation_options: Default::default(),
        cache: None,
    });
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let xb = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("x"),
        contents: bytemuck::cast_slice(&x),
        usage: storage,
    });
    let y_bytes = u64::from(n * oh * ow * c) * 4;
    let yb = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("y"),
        size: y_bytes,
        usage: storage,
        mapped_at_creation: false,
    });
    let stand_in = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("out4 stand-in"),
        size: 16,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let params = Params {
        n,
        h,
        w,
        c,
        oh,
        ow,
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        pad_top,
        pad_left,
    };
    let pb = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: bytemuck::bytes_of(&params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: yb.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: xb.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 4,
                resource: pb.as_entire_binding(),
            },
            // The vec4 views the header asks bound: x's (slot 6), and out's (slot 8), which
            // this form (VEC4 = 0) never writes, to a stand-in: it must not alias y.
            wgpu::BindGroupEntry {
                binding: 6,
                resource: xb.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 8,
                resource: stand_in.as_entire_binding(),
            },
        ],
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: y_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        // The header's grid: (ceil(ceil(C/4) / WG), OW, min(N·OH, 65535)), WG = 64 (its default).
        pass.dispatch_workgroups(c.div_ceil(4).div_ceil(64), ow, (n * oh).min(65535));
    }
    enc.copy_buffer_to_buffer(&yb, 0, &readback, 0, y_bytes);
    queue.submit([enc.finish()]);
    readback.map_async(wgpu::MapMode::Read, .., |r| r.expect("map the result"));
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("the GPU finished");
    let y: Vec<f32> =
        bytemuck::cast_slice(&readback.get_mapped_range(..).expect("mapped")).to_vec();

    // The CPU loop: max over each window's cells inside the image.
    let mut worst = 0.0f32;
    for img in 0..n {
        for r in 0..oh {
            for q in 0..ow {
                for ch in 0..c {
                    let mut best = f32::NEG_INFINITY;
                    for i in 0..k {
                        for j in 0..k {
                            let (ih, iw) = (
                                (r * s + i) as i64 - pad_top as i64,
                                (q * s + j) as i64 - pad_left as i64,
                            );
                            if (0..h as i64).contains(&ih) && (0..w as i64).contains(&iw) {
                                best = best.max(
                                    x[(((img * h) as i64 + ih) * w as i64 + iw) as usize
                                        * c as usize
                                        + ch as usize],
                                );
                            }
                        }
                    }
                    let got = y[(((img * oh + r) * ow + q) * c + ch) as usize];
                    worst = worst.max((got - best).abs());
                }
            }
        }
    }
    println!(
        "max_pool2d_forward_inference, {} outputs: largest difference from the CPU loop {worst}",
        y.len()
    );
    assert_eq!(
        worst, 0.0,
        "a max is a selection: GPU and CPU must agree exactly"
    );
    println!("ok");
}
