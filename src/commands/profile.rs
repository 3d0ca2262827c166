//! `gpucnn profile`: where a training step's time goes, op by op
//! ([`crate::graph::executor::TrainStep::profile`]), as a table or JSON.

use std::process::ExitCode;

use super::open_gpu;
use super::output::outln;
use crate::data::{ColorMode, ImageSize};
use crate::gpu::{AdapterOptions, GpuContext};
use crate::graph::executor::{BatchTargets, Profile, TrainStep};
use crate::harness::random_vec;
use crate::model::{XceptionConfig, xception_mini};

/// The flags of `gpucnn profile`.
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    /// Input size: N (N×N pixels) or H,W (height,width), as `train --image-size`.
    #[arg(long, default_value = "64", value_name = "N|H,W")]
    pub image_size: ImageSize,
    /// Input colours: rgb (3 channels) or grayscale (1), as `train --color-mode`.
    #[arg(long, default_value = "rgb", value_name = "MODE")]
    pub color_mode: ColorMode,
    /// Channel-width multiplier (1.0 is the original network).
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Samples per step (a batch that the device splits is profiled one micro-batch at a time).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Number of classes: 2 gives one sigmoid output, K > 2 a softmax over K.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..))]
    pub classes: u32,
    /// Steps to average (after one warm-up step).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: u32,
    /// Print the profile as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `gpucnn profile`.
pub fn run(args: &ProfileArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    if !(args.width.is_finite() && args.width > 0.0) {
        crate::bail_input!("--width must be a positive number, got {}", args.width);
    }
    let model = xception_mini(&XceptionConfig {
        image_size: args.image_size,
        channels: args.color_mode.channels(),
        width: args.width,
        classes: args.classes as usize,
        ..Default::default()
    })?;
    let ctx = open_gpu(adapter)?;
    let batch = args.batch_size as usize;
    let step = TrainStep::new(&ctx, &model, batch, 1e-3)?;
    step.load_params(&ctx, &step.layout.initial_values(1));
    let sample = model.layers[0].output.len();
    // Whole 0–255 values uploaded as bytes, as training uploads the loader's batches.
    let x: Vec<u8> = random_vec(2, batch * sample, 0.0, 256.0)
        .iter()
        .map(|&v| v as u8)
        .collect();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % args.classes).collect();
    let binary: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    let targets = || {
        if args.classes > 2 {
            BatchTargets::Classes(&labels)
        } else {
            BatchTargets::Binary(&binary)
        }
    };
    step.write_batch_u8(&ctx, &x, targets());
    // One step first: compiles every pipeline and touches every buffer.
    step.checked(&ctx, |s| s.submit(&ctx, s.micro))?;
    let profile = step.profile(&ctx, args.steps as usize)?;
    let upload = time_upload(&ctx, &step, args.steps, || {
        step.write_batch_u8(&ctx, &x, targets())
    })?;
    if args.json {
        let mut v = serde_json::to_value(&profile)?;
        v["adapter"] = ctx.info.name.clone().into();
        v["image_size"] = serde_json::to_value(args.image_size)?;
        v["color_mode"] = args.color_mode.name().into();
        v["width"] = args.width.into();
        v["upload_bytes"] = upload.bytes.into();
        v["upload_seconds"] = upload.seconds.into();
        outln!("{v}");
    } else {
        print_table(&profile, &ctx.info.name, args)?;
        outln!(
            "uploading a batch as training does ({:.2} MB: pixels as bytes and targets) and \
             waiting for it: {:.2} ms",
            upload.bytes as f64 / 1e6,
            upload.seconds * 1e3
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A batch's upload: bytes written and seconds per upload, the wait for the GPU included.
struct Upload {
    bytes: u64,
    seconds: f64,
}

/// Times `times` runs of `upload` (which writes a batch and returns its samples), each followed
/// by a wait for the queue, as a training step waits for its batch before it runs. Bytes: the
/// pixels as bytes and one 4-byte target (a 0/1 or a class index) per sample.
fn time_upload(
    ctx: &GpuContext,
    step: &TrainStep,
    times: u32,
    upload: impl Fn() -> usize,
) -> anyhow::Result<Upload> {
    let times = times.max(1);
    let mut bytes = 0;
    let started = std::time::Instant::now();
    for _ in 0..times {
        // `checked` waits for the queue (and reports a validation error, if any).
        step.checked(ctx, |_| {
            let n = upload();
            bytes = step.upload_bytes(n).1 + 4 * n as u64;
            ctx.queue.submit([]);
        })?;
    }
    Ok(Upload {
        bytes,
        seconds: started.elapsed().as_secs_f64() / times as f64,
    })
}

fn print_table(p: &Profile, adapter: &str, args: &ProfileArgs) -> anyhow::Result<()> {
    let ops_total: f64 = p.ops.iter().map(|o| o.seconds).sum();
    outln!(
        "{adapter}: xception_mini {}×{}×{} width {} batch {} ({}; mean of {} steps)",
        args.image_size.height,
        args.image_size.width,
        args.color_mode.channels(),
        args.width,
        p.batch,
        p.timer,
        p.steps
    );
    outln!(
        "{:<28} {:<38} {:<9} {:>10} {:>6} {:>9} {:>9} {:>7}",
        "layer",
        "op",
        "variant",
        "ms/step",
        "share",
        "GFLOP/s",
        "MB",
        "GB/s"
    );
    // Every op gets both rates: a convolution's GB/s says how far it is from memory-bound too.
    let rate = |work: u64, s: f64| {
        if work > 0 && s > 0.0 {
            format!("{:.1}", work as f64 / s / 1e9)
        } else {
            String::new()
        }
    };
    for o in &p.ops {
        outln!(
            "{:<28} {:<38} {:<9} {:>10.3} {:>5.1}% {:>9} {:>9.2} {:>7}",
            o.layer,
            o.op,
            o.variant,
            o.seconds * 1e3,
            100.0 * o.seconds / ops_total.max(f64::MIN_POSITIVE),
            rate(o.flops, o.seconds),
            o.bytes as f64 / 1e6,
            rate(o.bytes, o.seconds)
        );
    }
    let flops: u64 = p.ops.iter().map(|o| o.flops).sum();
    let total = ops_total.max(f64::MIN_POSITIVE);
    outln!(
        "ops, each in a pass of its own: {:.1} ms ({:.1} GFLOP/s on {:.2} GFLOP; {:.1} GB/s on \
         {:.1} MB moved); a whole step as training runs it (one submission, and the \
         wait): {:.1} ms",
        ops_total * 1e3,
        flops as f64 / total / 1e9,
        flops as f64 / 1e9,
        p.bytes_per_step as f64 / total / 1e9,
        p.bytes_per_step as f64 / 1e6,
        p.step_seconds * 1e3
    );
    if p.mirror_copied_floats + p.mirror_aliased_floats > 0 {
        outln!(
            "texture mirrors: {:.1} M floats copied per step, {:.1} M read in place (zero-copy \
             views of their buffers{})",
            p.mirror_copied_floats as f64 / 1e6,
            p.mirror_aliased_floats as f64 / 1e6,
            if p.mirror_aliased_floats > 0 {
                ""
            } else {
                ": none on this adapter, or GPUCNN_ZERO_COPY=0"
            }
        );
    }
    Ok(())
}
