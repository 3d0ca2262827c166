//! A program that owns its wgpu device runs gpucnn's kernels on it through
//! `GpuContext::from_device`: the variants follow the device's own features (here a device
//! requested without `SUBGROUP` from an adapter that may well offer it), and asking for a
//! variant the device cannot run is an error that names the missing feature.
//! Runs without the `cli` feature. In CI (CI=true) a missing adapter fails; elsewhere it skips.

use std::sync::Arc;

use gpucnn::gpu::GpuContext;
use gpucnn::harness::{ShapeClass, run_check};
use gpucnn::kernels::conv2d::{self, Conv2d};
use gpucnn::kernels::dense::Dense;
use gpucnn::kernels::gemm::{self, Gemm};
use gpucnn::kernels::variants::Variants;

/// The program's own device: wgpu's default descriptor (no optional features, WebGPU's default
/// limits), on an adapter that offers subgroups where there is one, so the device lacking them
/// is the device's choice and not the adapter's.
fn own_device() -> Option<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
    adapters.sort_by_key(|a| !a.features().contains(wgpu::Features::SUBGROUP));
    let Some(adapter) = adapters.into_iter().next() else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(!ci, "CI is set and no GPU adapter is available");
        eprintln!("SKIPPED: no GPU adapter");
        return None;
    };
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("a device with wgpu's default descriptor");
    Some((adapter, device, queue))
}

#[test]
fn a_device_without_subgroups_gets_the_portable_gemm_and_it_matches_the_cpu() {
    let Some((adapter, device, queue)) = own_device() else {
        return;
    };
    assert!(!device.features().contains(wgpu::Features::SUBGROUP));
    let ctx = GpuContext::from_device(device.clone(), queue);
    assert_eq!(ctx.features, device.features(), "features are the device's");
    assert_eq!(ctx.limits, device.limits(), "limits are the device's");
    assert_eq!(ctx.info.name, adapter.get_info().name);
    assert!(!ctx.has_subgroups());

    let chosen = Variants::for_adapter(&ctx).expect("the default variants run anywhere");
    assert!(!chosen.gemm.uses_subgroups(), "chose {chosen}");
    assert_eq!(chosen.conv2d, conv2d::Variant::Portable, "chose {chosen}");
    assert_eq!(
        Gemm::new(&ctx).available(),
        [gemm::Variant::Naive, gemm::Variant::Tiled]
    );

    // The chosen variant's parity checks (tiny and odd shapes) against the CPU reference.
    let checks: Vec<_> = (gemm::checks::all(&ctx).into_iter())
        .filter(|c| c.variant == chosen.gemm.name() && c.class != ShapeClass::Large)
        .collect();
    assert!(
        !checks.is_empty(),
        "no gemm checks for {}",
        chosen.gemm.name()
    );
    for c in &checks {
        let r = run_check(&ctx, c);
        assert!(r.ok, "{}: {}", r.title(), r.detail);
    }
}

#[test]
fn asking_a_device_without_subgroups_for_a_subgroup_variant_names_the_feature() {
    let Some((_, device, queue)) = own_device() else {
        return;
    };
    let ctx = GpuContext::from_device(device, queue);

    // A family built directly with the variant: an error, before any pipeline is made.
    let g = Arc::new(Gemm::new(&ctx));
    for v in [gemm::Variant::Subgroup, gemm::Variant::Subgroup64] {
        let e = Dense::with_gemm(g.clone(), v)
            .err()
            .expect("must be refused");
        let msg = e.to_string();
        assert!(msg.contains("wgpu::Features::SUBGROUP"), "{msg}");
        assert!(msg.contains(v.name()), "{msg}");
    }
    let e = Conv2d::with_variant(&ctx, conv2d::Variant::Subgroup)
        .err()
        .expect("must be refused");
    assert!(e.to_string().contains("wgpu::Features::SUBGROUP"), "{e}");
    assert!(Conv2d::with_variant(&ctx, conv2d::Variant::Portable).is_ok());

    // GPUCNN_VARIANT=gemm=subgroup takes this path in Variants::for_adapter (applied, then
    // checked against the device), without setting the process's environment here.
    let mut v = Variants::portable();
    v.apply("gemm=subgroup").unwrap();
    let e = v.check_available(&ctx).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("GPUCNN_VARIANT") && msg.contains("wgpu::Features::SUBGROUP"),
        "{msg}"
    );
}
