//! `gpucnn demo`: generate a small dataset, train on it, predict a few images kept aside
//! ([`crate::demo`]), then say where the run is and what to run next.

use std::path::PathBuf;
use std::process::ExitCode;

use super::open_gpu;
use super::output::outln;
use crate::demo::{DemoPlan, DemoReport, prepare_out};
use crate::gpu::AdapterOptions;
use crate::predict::describe;

/// The flags of `gpucnn demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The folder to write into.
    #[arg(long, value_name = "DIR", default_value = "runs/demo")]
    pub out: PathBuf,
    /// Seed of the generated images, the split, the initial weights and the shuffles.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Passes over the training set [default: the adapter's plan, 16].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: Option<u32>,
}

/// Runs `gpucnn demo`: refuses an --out that is not a demo's before opening the GPU, then
/// generates, trains and predicts with the adapter's plan, and prints [`report`].
pub fn run(a: &DemoArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    prepare_out(&a.out)?;
    let ctx = open_gpu(adapter)?;
    crate::msgln!("adapter: {}", ctx.summary());
    let mut plan = DemoPlan::for_adapter(ctx.is_software());
    if let Some(e) = a.epochs {
        plan.epochs = e as usize;
    }
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let r = crate::demo::run(&ctx, &a.out, a.seed, &plan, progress, &mut |line| {
        crate::msgln!("{line}")
    })?;
    report(&r)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what a demo did: the predictions, the run folder and the commands to go further.
pub fn report(r: &DemoReport) -> anyhow::Result<()> {
    outln!("Predictions on the images kept aside:");
    for (truth, p) in &r.predictions {
        match &p.result {
            Ok(probs) => outln!(
                "{} ({truth}): {}",
                p.path.display(),
                describe(&r.classes, probs, false)
            ),
            Err(e) => outln!("{} ({truth}): skipped: {e}", p.path.display()),
        }
    }
    let last = r.fit.epochs.last();
    let run = r.run_dir.display();
    outln!(
        "Validation accuracy: {:.4} (last epoch), {:.4} (best)",
        last.and_then(|e| e.val_accuracy).unwrap_or(f32::NAN),
        r.fit.best_val_accuracy.unwrap_or(f32::NAN)
    );
    outln!("Run folder: {run} (curves.png, metrics.csv, best.safetensors, save_at_N.safetensors)");
    outln!("Next:");
    outln!("  gpucnn predict --model {run} IMAGE_OR_DIR...");
    outln!(
        "  gpucnn train --data YOUR_FOLDER --image-size {} --width {} --epochs {}   (quick; the \
         example's own recipe: gpucnn train --data YOUR_FOLDER)",
        r.plan.image_size,
        r.plan.width,
        r.plan.epochs
    );
    Ok(())
}
