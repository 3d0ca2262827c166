//! `gpucnn summary`: the network as a Keras-like table, optionally its plot, the activation
//! memory and the training step's memory plan.
//!
//! The memory plan is shape arithmetic ([`crate::graph::memory::plan_memory`]): it takes the
//! adapter's limits and kernel variants when there is an adapter, and WebGPU's default limits
//! with the portable kernels when there is none (it says which it assumed).

use std::path::PathBuf;
use std::process::ExitCode;

use super::open_gpu;
use super::output::{out, outln};
use crate::data::{ColorMode, ImageSize};
use crate::gpu::AdapterOptions;
use crate::graph::Model;
use crate::graph::memory::plan_memory;
use crate::kernels::variants::Variants;

/// The flags of `gpucnn summary`.
#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    /// Input size: N (N×N pixels) or H,W (height,width), as `train --image-size`.
    #[arg(long, default_value = "180", value_name = "N|H,W")]
    pub image_size: ImageSize,
    /// Input colours: rgb (3 channels) or grayscale (1), as `train --color-mode`.
    #[arg(long, default_value = "rgb", value_name = "MODE")]
    pub color_mode: ColorMode,
    /// Channel-width multiplier (1.0 is the original network; 0.25 is 16× cheaper).
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Number of classes: 2 gives one sigmoid output, K > 2 a softmax over K.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..))]
    pub classes: u32,
    /// Also draw the network as a graph with each layer's output shape (like
    /// keras.utils.plot_model) to this file: .png, .svg or .dot (Graphviz).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Batch size for the activation-memory estimate.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

/// Runs `gpucnn summary`.
pub fn run(args: &SummaryArgs, opts: &AdapterOptions) -> anyhow::Result<ExitCode> {
    let SummaryArgs {
        image_size,
        color_mode,
        width,
        classes,
        ref plot,
        batch_size,
    } = *args;
    if !(width.is_finite() && width > 0.0) {
        crate::bail_input!("--width must be a positive number, got {width}");
    }
    let cfg = crate::model::XceptionConfig {
        image_size,
        channels: color_mode.channels(),
        classes: classes as usize,
        width,
        ..Default::default()
    };
    let model = crate::model::xception_mini(&cfg)?;
    out!("{}", model.summary());
    if let Some(path) = &plot {
        crate::plot::model::write_plot(path, &model)?;
        outln!("Model plot: {}", path.display());
    }
    let floats: usize = model.layers.iter().map(|l| l.output.len()).sum();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    outln!(
        "Forward activations at batch {batch_size}: {:.1} MiB (sum of all layer outputs)",
        mib((floats * batch_size as usize * 4) as u64)
    );
    memory_plan(&model, batch_size as usize, opts)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the training step's memory plan for the adapter `opts` picks, or for WebGPU's
/// default limits and the portable kernels when no adapter is found.
fn memory_plan(model: &Model, batch_size: usize, opts: &AdapterOptions) -> anyhow::Result<()> {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let (limits, variants, device, zero_copy) = match open_gpu(opts) {
        Ok(ctx) => {
            let variants = Variants::for_adapter(&ctx)?;
            let zero_copy = ctx.zero_copy_mirrors();
            (
                ctx.limits.clone(),
                variants,
                ctx.info.name.clone(),
                zero_copy,
            )
        }
        Err(e) => {
            let why = format!("{e:#}");
            let first = why.lines().next().unwrap_or_default().to_string();
            (
                wgpu::Limits::default(),
                Variants::portable(),
                format!(
                    "no adapter ({first}); assuming WebGPU's default limits and portable kernels"
                ),
                false,
            )
        }
    };
    outln!(
        "Memory plan for: {device} ({:.0} MiB per storage binding, {:.0} MiB per buffer; {variants})",
        mib(limits.max_storage_buffer_binding_size),
        mib(limits.max_buffer_size)
    );
    match plan_memory(model, batch_size, &limits, &variants) {
        Ok((micro, m)) => {
            if micro < batch_size {
                outln!(
                    "Training step at batch {batch_size}: runs as {} micro-batches of {micro} \
                     (a whole-batch tensor would exceed the {:.0} MiB binding limit)",
                    batch_size.div_ceil(micro),
                    mib(limits.max_storage_buffer_binding_size)
                );
            }
            outln!(
                "Training step at batch {batch_size}: transient tensors {:.1} MiB pooled in {} buffers, \
                 {:.1} MiB per image of a micro-batch (naive sum {:.1} MiB, {} tensors); \
                 parameters, gradients, Adam state, saved tensors and batch buffers {:.1} MiB",
                mib(m.pooled_bytes),
                m.pool_buffers,
                mib(m.pooled_bytes) / micro as f64,
                mib(m.naive_bytes),
                m.tensors,
                mib(m.fixed_bytes),
            );
            if m.mirror_bytes > 0 {
                let textures = format!(
                    "{} textures shared by every kernel, each the size of the largest operand",
                    crate::gpu::mirror::SHARED
                );
                let what = if zero_copy {
                    format!(
                        "{textures}, for the operands that cannot be read in place, those \
                         under 64 KiB; on this adapter the others are views of their buffers' \
                         own memory, never copied; GPUCNN_ZERO_COPY=0 copies every operand"
                    )
                } else {
                    format!("these variants copy operands into {textures}")
                };
                outln!(
                    "Training step at batch {batch_size}: texture mirrors {:.1} MiB more ({what})",
                    mib(m.mirror_bytes)
                );
            }
        }
        Err(e) => outln!("Training step at batch {batch_size}: {e}"),
    }
    Ok(())
}
