//! The `gpucnn` command line: it parses the arguments and calls the one library function of
//! the subcommand given ([`gpucnn::commands`]); everything real lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gpucnn::commands::{
    self, demo::DemoArgs, evaluate::EvaluateArgs, inspect::InspectArgs, predict::PredictArgs,
    preview::PreviewArgs, profile::ProfileArgs, scan::ScanArgs, selftest::SelftestArgs,
    summary::SummaryArgs, train::TrainArgs,
};
use gpucnn::gpu::AdapterOptions;

/// The exit statuses, shown under every command's --help (see gpucnn::error).
const EXIT_STATUS: &str = "Exit status: 0 success; 1 failure at run time (GPU lost, disk full, an \
     I/O error, a training that diverged; predict: some images were unreadable; selftest: a check \
     failed); 2 bad input (a flag, path or file given, or a setting that does not fit this GPU: \
     the message says what to change); 130 / 143 train stopped by Ctrl-C / SIGTERM after saving \
     where it was (--resume continues there).";

#[derive(Parser)]
#[command(
    name = "gpucnn",
    version,
    about = "Train image classifiers on any GPU with hand-written WGSL kernels",
    long_about = "gpucnn trains convolutional image classifiers on any GPU that wgpu can drive \
                  (Vulkan, Metal, DX12, or a software adapter such as Mesa's lavapipe), with \
                  every layer's forward and backward pass written as a WGSL compute kernel and \
                  checked against a plain CPU reference.\n\n\
                  Choose the adapter with GPUCNN_ADAPTER=<part of its name> and/or \
                  WGPU_BACKEND=vulkan|metal|dx12|gl. Images over GPUCNN_MAX_IMAGE_PIXELS \
                  (default 67108864, 64 Mpixel) are refused unread; all decoding threads share \
                  GPUCNN_DECODE_MEMORY_MIB (default 1024) of memory. Kernel variants are chosen \
                  per adapter: on first use of an adapter and driver, each correct variant of \
                  the hot kernels is timed at the model's shapes and the fastest kept, cached \
                  in the user's cache folder (or GPUCNN_CACHE_DIR); GPUCNN_TUNE=0 keeps the \
                  defaults without measuring; gpucnn info shows the choice, its timings and \
                  where it came from. GPUCNN_VARIANT overrides any subset, e.g. \
                  GPUCNN_VARIANT=gemm=tiled,conv2d=portable,batch_norm=tree. On lavapipe \
                  the kernels read large operands through texture views of the buffers' own \
                  memory; GPUCNN_ZERO_COPY=0 copies them into textures instead (gpucnn info \
                  says which).",
    after_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Use the adapter whose name contains this text (case-insensitive); see `gpucnn info`.
    /// Default: GPUCNN_ADAPTER, else the best one (discrete > integrated > software).
    #[arg(long, global = true, value_name = "NAME")]
    adapter: Option<String>,
    /// Graphics APIs to search, comma-separated: vulkan, metal, dx12, gl. Default: WGPU_BACKEND,
    /// else all.
    #[arg(long, global = true, value_name = "LIST", value_parser = parse_backends)]
    backend: Option<wgpu::Backends>,
}

fn parse_backends(s: &str) -> Result<wgpu::Backends, String> {
    let known = [
        "vulkan", "vk", "metal", "mtl", "dx12", "d3d12", "gl", "gles", "opengl",
    ];
    for part in s.split(',') {
        let p = part.trim().to_lowercase();
        if !known.contains(&p.as_str()) {
            return Err(format!(
                "unknown backend '{part}': use vulkan, metal, dx12 or gl"
            ));
        }
    }
    Ok(wgpu::Backends::from_comma_list(s))
}

#[derive(Subcommand)]
enum Command {
    /// Train the Keras example's small Xception on a folder of class subfolders of images
    /// (e.g. Animals/Cats/*.jpg, Animals/Dogs/*.jpg), with the example's pipeline: sorted class
    /// folders, 80/20 split with the seed, bilinear resize, random flip + rotation on the GPU,
    /// Adam, binary cross-entropy for two classes (softmax cross-entropy for more).
    ///
    /// Writes to --out: metrics.csv, save_at_{epoch}.safetensors every epoch (weights, batch-norm
    /// statistics, Adam state), best.safetensors (best validation accuracy), model.json,
    /// curves.png and run.json (the run's settings and a digest of its data files' names and
    /// sizes). Unreadable images are listed and skipped; a class with no readable image is
    /// refused; a loss that stops being a finite number ends the run (exit 1) before that epoch
    /// is saved.
    ///
    /// One --out holds one run. --resume continues it from its last checkpoint exactly where it
    /// stopped (a kill or a full disk at any moment loses nothing), and only with the same
    /// settings and data (--epochs may change); otherwise it is refused, naming each setting that
    /// differs. A new run (no --resume) into an --out that already holds a run's results is
    /// refused too, even with the same settings, so that no stale checkpoint of the old run can
    /// ever be resumed later: pass --resume to continue it, --overwrite to delete its files and
    /// start afresh, or pick another --out. While a run writes --out it holds a lock on
    /// --out/.gpucnn.lock: a second run on the same --out fails at once (exit 2). Free disk space
    /// for all checkpoints is checked before the first epoch (exit 1 if short).
    ///
    /// Several GPUs or machines: a build with `--features mpi` started by `mpirun -np N gpucnn
    /// train ...` trains data-parallel, --batch-size staying the global batch (each rank takes
    /// ceil(B/N) of every batch, gradients summed after each backward), exactly as one process
    /// with --micro-batch ceil(B/N); rank 0 prints and writes --out (README, "Several GPUs").
    #[command(after_help = EXIT_STATUS)]
    Train(Box<TrainArgs>),
    /// The main job in about a minute, with nothing to download: generates a small dataset of
    /// textured discs and squares (noise, random sizes, positions, colours and textures, so
    /// that only the shapes' outlines tell them apart), trains the example's network on it
    /// (the same trainer as `train`) at a size chosen for the adapter, then runs `predict` on
    /// six images it kept aside, and says where the run folder is and what to run next.
    ///
    /// On a software adapter (no GPU; e.g. lavapipe) it trains 500 images of 32×32 pixels at
    /// width 0.0625 for 16 epochs of batch 8, about a minute on two cores; on a hardware GPU
    /// 1000 images at width 0.25, batch 16, in seconds. It reaches a validation accuracy of
    /// about 0.9 (chance is 0.5).
    ///
    /// Writes only into --out: data/<class>/*.png (the generated training set), held_out/*.png
    /// (the images predicted at the end), run/ (the run folder: metrics.csv, curves.png, the
    /// checkpoints, model.json) and demo.json (which marks the folder as a demo's). A second
    /// demo into the same --out replaces the first one's images and run (train's --overwrite,
    /// which deletes only gpucnn's own files); an --out that holds other files and no demo.json
    /// is refused (exit 2).
    #[command(after_help = EXIT_STATUS)]
    Demo(DemoArgs),
    /// Judge a trained model on a folder of class subfolders: accuracy, precision, recall and
    /// F1 per class and macro-averaged, ROC AUC (one-vs-rest for more than two classes) and the
    /// confusion matrix. Writes confusion.png (and roc.png for two classes) to --out. With
    /// --worst K, also the K images most likely mislabelled (the highest loss) and worst.png.
    #[command(after_help = EXIT_STATUS)]
    Evaluate(EvaluateArgs),
    /// Save a 3×3 grid of the first nine training images of a dataset, titled with their
    /// class; with --augment, nine augmentations of the first image made by the trainer's GPU
    /// kernel (the Keras example's "visualize your data" and "visualize the augmentations").
    #[command(after_help = EXIT_STATUS)]
    Preview(PreviewArgs),
    /// Run a trained model on images: one line per image, e.g. `cat.jpg: This image is 94.30%
    /// Cats and 5.70% Dogs.` for two classes, the top 3 with percentages for more. Images are
    /// preprocessed exactly as in training (same decoder and resize, the centre crop when the
    /// model was trained with --crop-to-aspect-ratio, no augmentation). Refuses a model.json
    /// that does not describe the checkpoint's model, and weights that are not finite.
    #[command(after_help = EXIT_STATUS)]
    Predict(PredictArgs),
    /// Decode every image of a dataset folder once and list the files that cannot be used
    /// (unreadable, truncated, empty, not an image, or too large to decode safely).
    #[command(after_help = EXIT_STATUS)]
    Scan(ScanArgs),
    /// A report on a dataset before training, on the split `train` draws from the same flags
    /// (--validation-split, --seed, --val-data, --class-names, --labels): images per class in
    /// each split and the imbalance ratio; exact duplicates (same file bytes) within a class,
    /// across classes (one image, two labels) and across the train/validation split (leakage
    /// that inflates val_accuracy); near-duplicates (perceptual hashes within
    /// --near-threshold bits); image sizes, aspect ratios, colour modes and formats; and the
    /// unreadable files. Each file is read and decoded once (about the time of `scan`).
    ///
    /// A table on stdout, or with --json one JSON document; with --out DIR also report.json,
    /// classes.png and duplicates.png there. No GPU is needed.
    #[command(after_help = EXIT_STATUS)]
    Inspect(InspectArgs),
    /// Run every kernel (forward and backward, every variant) on this GPU against the CPU
    /// reference and print one row per (op, pass, shape). Exit status 0 only if all rows are ok.
    ///
    /// Run it first on a new GPU or driver: it is what proves the kernels right there.
    #[command(after_help = EXIT_STATUS)]
    Selftest(SelftestArgs),
    /// Print the network of the Keras example as a Keras-like table: each layer's name, type,
    /// output shape and parameter count, then the totals.
    ///
    /// Then the training step's memory plan at --batch-size: whether the batch runs as
    /// micro-batches, the transient tensors pooled by liveness, the fixed buffers. The plan is
    /// arithmetic, for this GPU's limits and kernel variants; with no GPU it assumes WebGPU's
    /// default limits and the portable kernels, and says so.
    #[command(after_help = EXIT_STATUS)]
    Summary(SummaryArgs),
    /// Time every op of a training step on this GPU: layer, op, kernel variant, time per step,
    /// share of the step, GFLOP/s and GB/s achieved, then the step's wall time as training runs
    /// it and the time to upload a batch (pixels as bytes) and wait for it.
    ///
    /// Ops are timed with GPU timestamps around each op's compute pass where the adapter has
    /// them, else with one waited submission per op (which adds its overhead to every op); the
    /// first line says which. `--json` prints the same for scripts.
    #[command(after_help = EXIT_STATUS)]
    Profile(ProfileArgs),
    /// List every adapter wgpu finds and show the one gpucnn would use, its limits, features
    /// and the kernel variants chosen for it.
    #[command(after_help = EXIT_STATUS)]
    Info,
}

fn main() -> ExitCode {
    // Started by mpirun (a build with the `mpi` feature): one rank of a job.
    #[cfg(feature = "mpi")]
    if let Some(world) = gpucnn::dist::mpi::Mpi::init() {
        gpucnn::kernels::tune::enable();
        return ranked(&world);
    }
    let cli = Cli::parse();
    // The binary measures kernel variants on first use of an adapter (GPUCNN_TUNE=0: never).
    gpucnn::kernels::tune::enable();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Ctrl-C or SIGTERM during training: the run saved where it stopped.
            if let Some(i) = e.downcast_ref::<gpucnn::train::interrupt::Interrupted>() {
                gpucnn::msgln!("{i}");
                return ExitCode::from(i.code());
            }
            gpucnn::msgln!("error: {e:#}");
            ExitCode::from(gpucnn::commands::exit::exit_code(&e))
        }
    }
}

/// Calls the subcommand's `run` with the adapter chosen by the global flags.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let adapter = AdapterOptions {
        backends: cli.backend,
        name_filter: cli.adapter,
    };
    match &cli.command {
        Command::Train(a) => commands::train::run(a, &adapter),
        Command::Demo(a) => commands::demo::run(a, &adapter),
        Command::Preview(a) => commands::preview::run(a, &adapter),
        Command::Evaluate(a) => commands::evaluate::run(a, &adapter),
        Command::Predict(a) => commands::predict::run(a, &adapter),
        Command::Scan(a) => commands::scan::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Summary(a) => commands::summary::run(a, &adapter),
        Command::Profile(a) => commands::profile::run(a, &adapter),
        Command::Info => commands::info::run(&adapter),
        Command::Selftest(a) => commands::selftest::run(a, &adapter),
    }
}

/// One rank of an MPI job. The ranks agree on their arguments first (a rank with bad ones makes
/// every rank exit with its status, one message printed); `train` runs data-parallel; any other
/// command runs on rank 0 alone, the other ranks wait for it.
#[cfg(feature = "mpi")]
fn ranked(comm: &dyn gpucnn::dist::Collective) -> ExitCode {
    use gpucnn::dist::ReportedElsewhere;
    let parsed = Cli::try_parse();
    // 0: parsed; else 1 + clap's exit status (0 for --help and --version, 2 for bad usage).
    let mine = parsed
        .as_ref()
        .err()
        .map_or(0, |e| 1 + e.exit_code() as u64);
    let all = comm.gather_u64(mine);
    if let Some(first) = all.iter().position(|&s| s != 0) {
        if first == comm.rank()
            && let Err(e) = &parsed
        {
            let _ = e.print();
        }
        return ExitCode::from((all[first] - 1) as u8);
    }
    let cli = parsed.expect("every rank parsed its arguments");
    let result = match &cli.command {
        Command::Train(a) => {
            let adapter = AdapterOptions {
                backends: cli.backend,
                name_filter: cli.adapter.clone(),
            };
            commands::train::run_on(a, &adapter, comm)
        }
        _ if comm.rank() == 0 => run(cli),
        _ => Ok(ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<ReportedElsewhere>() {
            Some(r) => ExitCode::from(r.code),
            None => {
                gpucnn::msgln!("error: {e:#}");
                ExitCode::from(gpucnn::commands::exit::exit_code(&e))
            }
        },
    }
}
