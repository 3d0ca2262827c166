//! `gpucnn info`: the adapters wgpu finds, the one gpucnn would use and its kernel variants.

use std::process::ExitCode;

use super::open_gpu;
use super::output::outln;
use crate::gpu::{AdapterOptions, list_adapters};

/// Runs `gpucnn info`. The list is printed before the chosen adapter is opened, so it shows
/// even when opening fails.
pub fn run(adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    outln!("adapters found:");
    for (i, a) in list_adapters(adapter).iter().enumerate() {
        outln!("  {i}: {} ({:?}, {:?})", a.name, a.backend, a.device_type);
    }
    let ctx = open_gpu(adapter)?;
    outln!("using: {}", ctx.summary());
    outln!(
        "texture mirrors: {}",
        if ctx.zero_copy_mirrors() {
            "zero-copy (views of the buffers' own memory; GPUCNN_ZERO_COPY=0 copies them)"
        } else if crate::gpu::is_lavapipe(&ctx.info) {
            "copied before each dispatch that reads them (GPUCNN_ZERO_COPY=0)"
        } else {
            "copied before each dispatch that reads them"
        }
    );
    outln!("kernel variants: {}", crate::kernels::variant_report(&ctx));
    outln!("kernel tuning: {}", crate::kernels::tune::describe(&ctx));
    Ok(ExitCode::SUCCESS)
}
