//! The test vectors of `gpucnn selftest --export-vectors` (src/vectors.rs), which
//! scripts/dawn/replay.mjs replays in Dawn: exported here for a few families, checked for
//! structure, and replayed from the files alone on a fresh wgpu device at WebGPU's default
//! limits, as the Node script does in Dawn. The replay must reproduce wgpu's own results bit
//! for bit (same driver, same compiler) and pass the CPU reference's tolerance.
//! In CI (CI=true) a missing adapter fails these tests; elsewhere they are skipped loudly.

use std::collections::BTreeMap;
use std::path::Path;

use gpucnn::gpu::test_context;
use gpucnn::harness::{Check, ShapeClass};
use gpucnn::kernels::registry::family;
use serde_json::Value;

/// The families replayed: relu (one dispatch), pool (several entry points, an argmax output
/// that is derived on the host), elementwise (two outputs with bit-identical values), adam
/// (a host write between two runs of the same dispatches) and gemm (subgroup variants beside
/// portable ones, where the adapter has subgroups).
const FAMILIES: &[&str] = &["relu", "pool", "elementwise", "adam", "gemm"];

fn checks(ctx: &gpucnn::gpu::GpuContext) -> Vec<Check> {
    FAMILIES
        .iter()
        .flat_map(|f| (family(f).unwrap().checks)(ctx))
        .filter(|c| c.class == ShapeClass::Tiny)
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

fn range<'a>(data: &'a [u8], r: &Value) -> &'a [u8] {
    let (at, len) = (u(&r[0]) as usize, u(&r[1]) as usize);
    assert!(at + len <= data.len(), "range {r} beyond the data file");
    &data[at..at + len]
}

/// A device at WebGPU's default limits (the browser's baseline), like the Node replay's, with
/// subgroups where the adapter has them (for the subgroup variants' vectors).
fn webgpu_default_device() -> (wgpu::Device, wgpu::Queue) {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("an adapter (test_context found one)");
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("replay"),
        required_features: adapter.features() & wgpu::Features::SUBGROUP,
        required_limits: wgpu::Limits::default(),
        ..Default::default()
    }))
    .expect("a device at the default limits")
}

fn read(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    buf: &wgpu::Buffer,
    at: u64,
    len: u64,
) -> Vec<u8> {
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: len,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(buf, at, &staging, 0, len);
    queue.submit([enc.finish()]);
    staging.map_async(wgpu::MapMode::Read, .., |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    staging
        .slice(..)
        .get_mapped_range()
        .expect("mapped")
        .to_vec()
}

/// Replays one exported check from `dir` alone; returns each output's bytes.
fn replay(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dir: &Path,
    shaders: &BTreeMap<String, wgpu::ShaderModule>,
    check: &Value,
) -> Vec<Vec<u8>> {
    let data = std::fs::read(dir.join(check["data"].as_str().unwrap())).unwrap();
    let buffers: Vec<wgpu::Buffer> = check["buffers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: u(s),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
        .collect();
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    for step in check["steps"].as_array().unwrap() {
        match step["kind"].as_str().unwrap() {
            "write" => {
                let buf = &buffers[u(&step["buffer"]) as usize];
                match step.get("data") {
                    Some(r) => queue.write_buffer(buf, 0, range(&data, r)),
                    None => {
                        let mut enc = device.create_command_encoder(&Default::default());
                        enc.clear_buffer(buf, 0, None);
                        queue.submit([enc.finish()]);
                    }
                }
            }
            "dispatch" => {
                let constants: Vec<(&str, f64)> = step["constants"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_f64().unwrap()))
                    .collect();
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: None,
                    layout: None,
                    module: &shaders[step["shader"].as_str().unwrap()],
                    entry_point: Some(step["entry"].as_str().unwrap()),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        zero_initialize_workgroup_memory: true,
                    },
                    cache: None,
                });
                let uniform = step.get("params").map(|r| {
                    let bytes = range(&data, r);
                    let b = device.create_buffer(&wgpu::BufferDescriptor {
                        label: None,
                        size: bytes.len() as u64,
                        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    queue.write_buffer(&b, 0, bytes);
                    b
                });
                let entries: Vec<wgpu::BindGroupEntry> = step["bindings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| wgpu::BindGroupEntry {
                        binding: u(&b["binding"]) as u32,
                        resource: if b["access"] == "uniform" {
                            uniform
                                .as_ref()
                                .expect("params for the uniform")
                                .as_entire_binding()
                        } else {
                            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &buffers[u(&b["buffer"]) as usize],
                                offset: u(&b["offset"]),
                                size: std::num::NonZeroU64::new(u(&b["size"])),
                            })
                        },
                    })
                    .collect();
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &entries,
                });
                let mut enc = device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &bind_group, &[]);
                    let g: Vec<u32> = step["workgroups"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| u(v) as u32)
                        .collect();
                    pass.dispatch_workgroups(g[0], g[1], g[2]);
                }
                queue.submit([enc.finish()]);
            }
            k => panic!("unknown step kind '{k}'"),
        }
    }
    if let Some(e) = pollster::block_on(scope.pop()) {
        panic!("replay of {} {}: {e}", check["op"], check["pass"]);
    }
    check["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let b = &buffers[u(&o["buffer"]) as usize];
            read(device, queue, b, u(&o["offset"]), 4 * u(&o["len"]))
        })
        .collect()
}

#[test]
fn exported_vectors_replay_from_the_files_alone_at_webgpu_default_limits() {
    let Some(ctx) = test_context() else { return };
    let dir = tempfile::tempdir().unwrap();
    // An earlier export's files into the same folder, which this one replaces.
    for stale in ["checks/9999.bin", "wgsl/removed_shader.wgsl"] {
        let p = dir.path().join(stale);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "stale").unwrap();
    }
    let checks = checks(&ctx);
    let export = gpucnn::vectors::export(&ctx, &checks, dir.path(), |_| {}).unwrap();
    for stale in ["checks/9999.bin", "wgsl/removed_shader.wgsl"] {
        assert!(
            !dir.path().join(stale).exists(),
            "{stale} outlived a new export"
        );
    }
    assert!(
        export.results.iter().all(|r| r.ok),
        "the checks pass on wgpu"
    );

    // The manifest on disk is what export returned, and names every check exactly once.
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["format"], gpucnn::vectors::FORMAT);
    let exported = m["checks"].as_array().unwrap();
    let skipped = m["skipped"].as_array().unwrap();
    assert_eq!(exported.len() + skipped.len(), checks.len());
    // Only the variants that read texture mirrors are left out, and for that reason: a trace
    // carries storage buffers only.
    for sk in skipped {
        let why = sk["why"].as_str().unwrap();
        assert!(why.contains("reads texture mirrors"), "{sk}");
    }
    let mirrored = checks
        .iter()
        .filter(|c| ["texture64", "texture", "flat_texture"].contains(&c.variant))
        .count();
    assert_eq!(skipped.len(), mirrored, "{skipped:?}");
    // A check is marked as needing subgroups exactly when it runs a subgroup variant.
    for c in exported {
        assert_eq!(
            c["subgroups"].as_bool().unwrap(),
            c["variant"].as_str().unwrap().starts_with("subgroup"),
            "{}",
            c["variant"]
        );
    }

    // Every shader is the file of shaders/, unchanged; a subgroup shader also has its browser
    // form (replayed here in its naga form: naga 30 rejects `enable subgroups;`).
    let mut modules = BTreeMap::new();
    let (device, queue) = webgpu_default_device();
    for (name, s) in m["shaders"].as_object().unwrap() {
        let src = std::fs::read_to_string(dir.path().join(s["file"].as_str().unwrap())).unwrap();
        let file = format!("{name}.wgsl");
        let original = gpucnn::SHADERS.iter().find(|(n, _)| *n == file).unwrap().1;
        assert_eq!(src, original, "{file}");
        let subgroup = name.contains("subgroup");
        assert_eq!(s["portable"], !subgroup, "{file}");
        if subgroup {
            let browser = dir.path().join(s["browser_file"].as_str().unwrap());
            let browser = std::fs::read_to_string(browser).unwrap();
            assert_eq!(browser, gpucnn::vectors::browser_form(original));
            assert!(browser.starts_with("enable subgroups;\n"));
        } else {
            assert!(s.get("browser_file").is_none());
        }
        modules.insert(
            name.clone(),
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            }),
        );
    }
    let portable: Vec<_> = modules.keys().filter(|k| !k.contains("subgroup")).collect();
    assert_eq!(
        portable,
        ["adam", "elementwise", "gemm", "l2_penalty", "pool", "relu"]
    );

    let mut omitted = Vec::new();
    for check in exported {
        let title = format!(
            "{} {} {} {}",
            check["op"], check["pass"], check["variant"], check["shape"]
        );
        let data = std::fs::read(dir.path().join(check["data"].as_str().unwrap())).unwrap();
        let got = replay(&device, &queue, dir.path(), &modules, check);
        for (o, got) in check["outputs"].as_array().unwrap().iter().zip(got) {
            // Bit for bit what wgpu computed in the check itself...
            assert_eq!(got, range(&data, &o["wgpu"]), "{title}: {}", o["name"]);
            // ...and within the check's tolerance of the CPU reference.
            let (atol, rtol) = (o["atol"].as_f64().unwrap(), o["rtol"].as_f64().unwrap());
            let want = range(&data, &o["expected"]);
            assert_eq!(want.len(), 2 * got.len());
            for (g, w) in got.chunks(4).zip(want.chunks(8)) {
                let g = f32::from_le_bytes(g.try_into().unwrap()) as f64;
                let w = f64::from_le_bytes(w.try_into().unwrap());
                assert!(
                    (g - w).abs() <= atol + rtol * w.abs(),
                    "{title}: {g} vs {w}"
                );
            }
        }
        for o in check
            .get("omitted")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            omitted.push(format!(
                "{} {}",
                check["op"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            ));
        }
    }
    // Only values derived on the host are left out: pool's unpacked argmax, adam's step count.
    omitted.sort();
    omitted.dedup();
    assert_eq!(omitted, ["adam t", "max_pool2d argmax"]);
    // A host write between two runs is a step of its own (adam writes each step's gradient).
    let kinds = |c: &Value| -> Vec<String> {
        c["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let adam = exported
        .iter()
        .filter(|c| c["op"] == "adam")
        .max_by_key(|c| kinds(c).iter().filter(|k| *k == "dispatch").count())
        .unwrap();
    let kinds = kinds(adam);
    let first_dispatch = kinds.iter().position(|k| k == "dispatch").unwrap();
    assert!(
        kinds[first_dispatch..].iter().any(|k| k == "write"),
        "adam's later gradients are written between the runs: {kinds:?}"
    );
}
