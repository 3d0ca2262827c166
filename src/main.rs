//! The `gpucnn` command line: thin, everything real lives in the library.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use gpucnn::gpu::{AdapterOptions, GpuContext};
use gpucnn::graph::executor::TrainStep;
use gpucnn::selftest::{self, CheckResult, ShapeClass};

/// Set once stdout's reader has gone away (`gpucnn predict … | head -1`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes a command's output to stdout. A closed reader is not the command's failure: after a
/// broken pipe the rest of the output is dropped quietly and the command finishes its work
/// (predict still writes its --csv) and exits as it would have. Rust ignores SIGPIPE, so
/// without this `println!` would panic (exit 101) at the first line nobody reads. Any other
/// write error (a full disk behind a redirect) is a failure at run time.
fn emit(text: std::fmt::Arguments) -> anyhow::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => r.context("writing to stdout"),
    }
}

/// `print!` through [`emit`].
macro_rules! out {
    ($($arg:tt)*) => {
        emit(format_args!($($arg)*))?
    };
}

/// `println!` through [`emit`].
macro_rules! outln {
    () => {
        emit(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        emit(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// The exit statuses, shown under every command's --help (see gpucnn::error).
const EXIT_STATUS: &str = "Exit status: 0 success; 1 failure at run time (GPU lost, disk full, an \
     I/O error, a training that diverged; predict: some images were unreadable; selftest: a check \
     failed); 2 bad input (a flag, path or file given, or a setting that does not fit this GPU: \
     the message says what to change).";

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
                  GPUCNN_DECODE_MEMORY_MIB (default 1024) of memory.",
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
    #[command(after_help = EXIT_STATUS)]
    Train(TrainArgs),
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
    Demo {
        /// The folder to write into.
        #[arg(long, value_name = "DIR", default_value = "runs/demo")]
        out: std::path::PathBuf,
        /// Seed of the generated images, the split, the initial weights and the shuffles.
        #[arg(long, default_value_t = 1337)]
        seed: u64,
        /// Passes over the training set [default: the adapter's plan, 16].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        epochs: Option<u32>,
    },
    /// Judge a trained model on a folder of class subfolders: accuracy, precision, recall and
    /// F1 per class and macro-averaged, ROC AUC (one-vs-rest for more than two classes) and the
    /// confusion matrix. Writes confusion.png (and roc.png for two classes) to --out.
    #[command(after_help = EXIT_STATUS)]
    Evaluate {
        /// A run folder (uses its best.safetensors) or a .safetensors file beside its model.json.
        #[arg(long, value_name = "PATH")]
        model: std::path::PathBuf,
        /// Folder with one subfolder of images per class, named as the model's classes (with
        /// --labels: the folder the CSV's paths are relative to, default the CSV's folder).
        #[arg(long, value_name = "DIR", required_unless_present = "labels")]
        data: Option<std::path::PathBuf>,
        /// Multi-label model: a CSV of `path,label1;label2` rows; reports each label.
        #[arg(long, value_name = "CSV")]
        labels: Option<std::path::PathBuf>,
        /// Print the metrics as one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Where confusion.png and roc.png go [default: the run folder of --model].
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// Images per GPU batch.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: u32,
    },
    /// Save a 3×3 grid of the first nine training images of a dataset, titled with their
    /// class; with --augment, nine augmentations of the first image made by the trainer's GPU
    /// kernel (the Keras example's "visualize your data" and "visualize the augmentations").
    #[command(after_help = EXIT_STATUS)]
    Preview {
        /// Folder with one subfolder of images per class.
        #[arg(long, value_name = "DIR")]
        data: std::path::PathBuf,
        /// The PNG to write.
        #[arg(long, value_name = "FILE", default_value = "grid.png")]
        out: std::path::PathBuf,
        /// Show augmentations (random flip + rotation) of the first image instead.
        #[arg(long)]
        augment: bool,
        /// Images are resized to this size, as in training.
        #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u32).range(1..))]
        image_size: u32,
        /// Seed of the split (which images come first) and of the augmentations.
        #[arg(long, default_value_t = 1337)]
        seed: u64,
        /// Rotation range as a fraction of a full turn, for --augment.
        #[arg(long, default_value_t = 0.1)]
        rotation: f32,
    },
    /// Run a trained model on images: one line per image, e.g. `cat.jpg: This image is 94.30%
    /// Cats and 5.70% Dogs.` for two classes, the top 3 with percentages for more. Images are
    /// preprocessed exactly as in training (same decoder and resize, the centre crop when the
    /// model was trained with --crop-to-aspect-ratio, no augmentation). Refuses a model.json
    /// that does not describe the checkpoint's model, and weights that are not finite.
    #[command(after_help = EXIT_STATUS)]
    Predict {
        /// A run folder (uses its best.safetensors) or a .safetensors file beside its model.json.
        #[arg(long, value_name = "PATH")]
        model: std::path::PathBuf,
        /// Image files and/or folders (walked recursively).
        #[arg(required = true, value_name = "IMAGE_OR_DIR")]
        inputs: Vec<std::path::PathBuf>,
        /// Also write one CSV row per image: path, then each class's probability (RFC 4180: a
        /// path holding a comma or a quote is quoted).
        #[arg(long, value_name = "FILE")]
        csv: Option<std::path::PathBuf>,
        /// Images per GPU batch.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: u32,
    },
    /// Decode every image of a dataset folder once and list the files that cannot be used
    /// (unreadable, truncated, empty, not an image, or too large to decode safely).
    #[command(after_help = EXIT_STATUS)]
    Scan {
        /// Folder with one subfolder of images per class.
        #[arg(long, value_name = "DIR")]
        data: std::path::PathBuf,
        /// Delete the bad files (the example's "remove corrupted images" step).
        #[arg(long)]
        delete: bool,
        /// Apply the Keras example's own filter instead of decoding: a file is bad when its
        /// first 10 bytes lack `JFIF` (PNGs and EXIF-only JPEGs included). With --delete this
        /// reproduces the example's file set, and so its split, exactly.
        #[arg(long)]
        keras_jfif_filter: bool,
    },
    /// Run every kernel (forward and backward, every variant) on this GPU against the CPU
    /// reference and print one row per (op, pass, shape). Exit status 0 only if all rows are ok.
    ///
    /// Run it first on a new GPU or driver: it is what proves the kernels right there.
    #[command(after_help = EXIT_STATUS)]
    Selftest {
        /// Print one JSON object on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Only ops whose name contains this (e.g. `conv2d`, `batch_norm`).
        #[arg(long, value_name = "NAME")]
        op: Option<String>,
        /// Only this shape class.
        #[arg(long, value_enum)]
        class: Option<ClassArg>,
    },
    /// Print the network of the Keras example as a Keras-like table: each layer's name, type,
    /// output shape and parameter count, then the totals.
    #[command(after_help = EXIT_STATUS)]
    Summary {
        /// Input height and width in pixels.
        #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u32).range(1..))]
        image_size: u32,
        /// Channel-width multiplier (1.0 is the original network; 0.25 is 16× cheaper).
        #[arg(long, default_value_t = 1.0)]
        width: f32,
        /// Number of classes: 2 gives one sigmoid output, K > 2 a softmax over K.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..))]
        classes: u32,
        /// Also draw the network as a graph with each layer's output shape (like
        /// keras.utils.plot_model) to this file: .png, .svg or .dot (Graphviz).
        #[arg(long, value_name = "FILE")]
        plot: Option<std::path::PathBuf>,
        /// Batch size for the activation-memory estimate.
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: u32,
    },
    /// List every adapter wgpu finds and show the one gpucnn would use, its limits, features
    /// and the kernel variants chosen for it.
    #[command(after_help = EXIT_STATUS)]
    Info,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Folder with one subfolder of images per class (.jpg .jpeg .png .bmp .gif); with
    /// --labels, the folder the CSV's image paths are relative to (default: the CSV's folder).
    #[arg(long, value_name = "DIR", required_unless_present = "labels")]
    data: Option<std::path::PathBuf>,
    /// Multi-label training: a CSV with one `path,label1;label2` row per image (an optional
    /// header such as `path,labels`; quote a path that holds a comma). Trains one sigmoid per
    /// label with binary cross-entropy.
    #[arg(long, value_name = "CSV")]
    labels: Option<std::path::PathBuf>,
    /// Output folder for checkpoints, metrics and curves [default: runs/<name of --data>].
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 25)]
    epochs: usize,
    /// Images per training step (split into micro-batches automatically if the GPU needs it).
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Images are resized (bilinear, no antialiasing) to this height and width.
    #[arg(long, default_value_t = 180)]
    image_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Fraction of the files held out for validation.
    #[arg(long, default_value_t = 0.2)]
    validation_split: f32,
    /// Seed of the split, the shuffles, the initial weights, augmentation and dropout.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Channel-width multiplier of the network (1.0 is the Keras example's).
    #[arg(long, default_value_t = 1.0)]
    width: f32,
    /// GPU augmentation of training batches: flip,rotate (the default), flip, rotate or none.
    #[arg(long, default_value = "flip,rotate", value_name = "LIST")]
    augment: String,
    /// Rotation range as a fraction of a full turn (0.1 = ±36°, as RandomRotation(0.1)).
    #[arg(long, default_value_t = 0.1)]
    rotation: f32,
    /// Centre-crop each image to a square before resizing, instead of stretching it.
    #[arg(long)]
    crop_to_aspect_ratio: bool,
    /// Continue the run in --out from its last checkpoint (same settings and data required).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Delete the files of the run already in --out (gpucnn's own: checkpoints, best, metrics,
    /// curves, model.json, run.json, evaluate's plots; nothing else) and start afresh.
    #[arg(long)]
    overwrite: bool,
}

fn parse_augment(
    list: &str,
    rotation: f32,
) -> anyhow::Result<Option<gpucnn::cpu::augment::AugmentConfig>> {
    let (mut flip, mut rotate) = (false, false);
    for part in list.split(',').map(str::trim) {
        match part {
            "flip" => flip = true,
            "rotate" => rotate = true,
            "none" => {}
            other => gpucnn::bail_input!(
                "--augment: unknown augmentation '{other}'; use flip, rotate, flip,rotate or none"
            ),
        }
    }
    if !(rotation.is_finite() && (0.0..=0.5).contains(&rotation)) {
        gpucnn::bail_input!(
            "--rotation must be between 0 and 0.5 (a fraction of a full turn), got {rotation}"
        );
    }
    Ok(
        (flip || rotate).then_some(gpucnn::cpu::augment::AugmentConfig {
            flip,
            rotate,
            factor: rotation,
        }),
    )
}

#[derive(Clone, Copy, ValueEnum)]
enum ClassArg {
    Tiny,
    Odd,
    Large,
}

impl From<ClassArg> for ShapeClass {
    fn from(c: ClassArg) -> Self {
        match c {
            ClassArg::Tiny => ShapeClass::Tiny,
            ClassArg::Odd => ShapeClass::Odd,
            ClassArg::Large => ShapeClass::Large,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(gpucnn::error::exit_code(&e))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let opts = AdapterOptions {
        backends: cli.backend,
        name_filter: cli.adapter,
    };
    match cli.command {
        Command::Train(a) => {
            let data = match (&a.data, &a.labels) {
                (Some(d), _) => d.clone(),
                (None, Some(csv)) => csv.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
                (None, None) => {
                    gpucnn::bail_input!("--data is required (or --labels for multi-label training)")
                }
            };
            let named = a
                .labels
                .as_ref()
                .map(|c| c.with_extension(""))
                .unwrap_or_else(|| data.clone());
            let cfg = gpucnn::train::fit::FitConfig {
                out: a
                    .out
                    .clone()
                    .unwrap_or_else(|| gpucnn::train::fit::default_out(&named)),
                data,
                labels: a.labels,
                epochs: a.epochs,
                batch_size: a.batch_size,
                image_size: a.image_size,
                lr: a.lr,
                validation_split: a.validation_split,
                seed: a.seed,
                width: a.width,
                augment: parse_augment(&a.augment, a.rotation)?,
                crop_to_aspect_ratio: a.crop_to_aspect_ratio,
                resume: a.resume,
                overwrite: a.overwrite,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            gpucnn::train::fit::validate(&cfg)?;
            let ctx = open_gpu(&opts)?;
            eprintln!("adapter: {}", ctx.summary());
            let summary = gpucnn::train::fit::fit(&ctx, &cfg, &mut |line| eprintln!("{line}"))?;
            if let Some(best) = summary.best_val_accuracy {
                eprintln!(
                    "Best validation accuracy: {best:.4}. Outputs in {}",
                    cfg.out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { out, seed, epochs } => {
            gpucnn::demo::prepare_out(&out)?;
            let ctx = open_gpu(&opts)?;
            eprintln!("adapter: {}", ctx.summary());
            let mut plan = gpucnn::demo::DemoPlan::for_adapter(ctx.is_software());
            if let Some(e) = epochs {
                plan.epochs = e as usize;
            }
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let r = gpucnn::demo::run(&ctx, &out, seed, &plan, progress, &mut |line| {
                eprintln!("{line}")
            })?;
            demo_report(&r)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview {
            data,
            out,
            augment,
            image_size,
            seed,
            rotation,
        } => {
            let cfg = if augment {
                parse_augment("flip,rotate", rotation)?
            } else {
                None
            };
            let ctx = if augment {
                Some(open_gpu(&opts)?)
            } else {
                None
            };
            let size = image_size as usize;
            let images = gpucnn::preview::preview_images(ctx.as_ref(), &data, size, seed, cfg)?;
            let (w, h) = gpucnn::viz::grid::write_grid_png(&out, &images, size, size)?;
            eprintln!("Wrote {} ({w}×{h})", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate {
            model,
            data,
            labels: Some(csv),
            json,
            batch_size,
            ..
        } => {
            let root =
                data.unwrap_or_else(|| csv.parent().map(|p| p.to_path_buf()).unwrap_or_default());
            let ctx = open_gpu(&opts)?;
            let reports =
                gpucnn::predict::evaluate_labels(&ctx, &model, &csv, &root, batch_size as usize)?;
            if json {
                let per: serde_json::Map<String, serde_json::Value> = reports
                    .iter()
                    .map(|(n, r)| (n.clone(), r.to_json()))
                    .collect();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "labels": per }))?
                );
            } else {
                for (name, r) in &reports {
                    outln!("label {name}:\n{}", r.render());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate {
            model,
            data,
            json,
            out,
            batch_size,
            ..
        } => {
            let data = data.expect("clap requires --data without --labels");
            let ctx = open_gpu(&opts)?;
            let (report, labels, probs) =
                gpucnn::predict::evaluate_folder(&ctx, &model, &data, batch_size as usize)?;
            let out = out.unwrap_or_else(|| {
                if model.is_dir() {
                    model.clone()
                } else {
                    model.parent().map(|p| p.to_path_buf()).unwrap_or_default()
                }
            });
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {} (--out)", out.display()))?;
            gpucnn::eval::plots::write_confusion_png(out.join("confusion.png"), &report)?;
            if report.class_names.len() == 2 {
                let positive: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
                let scores: Vec<f32> = probs.iter().map(|p| p[1]).collect();
                let curve = gpucnn::eval::metrics::roc_curve(&positive, &scores);
                gpucnn::eval::plots::write_roc_png(out.join("roc.png"), &curve, report.auc)?;
            }
            if json {
                outln!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                out!("{}", report.render());
                eprintln!("Wrote {}", out.join("confusion.png").display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict {
            model,
            inputs,
            csv,
            batch_size,
        } => {
            let images = gpucnn::predict::collect_images(&inputs)?;
            if images.is_empty() {
                gpucnn::bail_input!(
                    "no image files (.jpg .jpeg .png .bmp .gif) in the inputs given"
                );
            }
            let ctx = open_gpu(&opts)?;
            let (cfg, preds) =
                gpucnn::predict::predict(&ctx, &model, &images, batch_size as usize)?;
            // RFC 4180 via the csv crate: a path or class name holding a comma or a quote is
            // quoted, so every row has one path and one cell per class.
            let mut rows = csv::Writer::from_writer(Vec::new());
            let mut header = vec!["path".to_string()];
            header.extend(cfg.classes.iter().cloned());
            rows.write_record(&header)?;
            let mut failed = 0;
            for p in &preds {
                match &p.result {
                    Ok(probs) => {
                        outln!(
                            "{}: {}",
                            p.path.display(),
                            gpucnn::predict::describe(&cfg.classes, probs, cfg.multi_label)
                        );
                        let mut row = vec![p.path.to_string_lossy().into_owned()];
                        row.extend(probs.iter().map(|v| format!("{v:.6}")));
                        rows.write_record(&row)?;
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: skipped: {e}", p.path.display());
                    }
                }
            }
            if let Some(path) = csv {
                let bytes = rows.into_inner().context("formatting the --csv rows")?;
                gpucnn::train::atomic::write_atomic(&path, &bytes)?;
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Scan {
            data,
            delete,
            keras_jfif_filter,
        } => {
            let report = gpucnn::data::scan_folder(&data, delete, keras_jfif_filter)?;
            out!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Summary {
            image_size,
            width,
            classes,
            plot,
            batch_size,
        } => {
            if !(width.is_finite() && width > 0.0) {
                gpucnn::bail_input!("--width must be a positive number, got {width}");
            }
            let cfg = gpucnn::model::XceptionConfig {
                image_size: image_size as usize,
                classes: classes as usize,
                width,
                ..Default::default()
            };
            let model = gpucnn::model::xception_mini(&cfg)?;
            out!("{}", model.summary());
            if let Some(path) = &plot {
                gpucnn::viz::model_plot::write_plot(path, &model)?;
                outln!("Model plot: {}", path.display());
            }
            let floats: usize = model.layers.iter().map(|l| l.output.len()).sum();
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            outln!(
                "Forward activations at batch {batch_size}: {:.1} MiB (sum of all layer outputs)",
                mib((floats * batch_size as usize * 4) as u64)
            );
            // The training step's memory plan needs the device (its limits and kernel variants).
            match open_gpu(&opts) {
                Err(e) => outln!("Training-step memory plan: not available ({e:#})"),
                Ok(ctx) => match TrainStep::plan_memory(&ctx, &model, batch_size as usize) {
                    Ok((micro, m)) => {
                        if micro < batch_size as usize {
                            outln!(
                                "Training step at batch {batch_size}: runs as {} micro-batches of {micro} \
                                 (a whole-batch tensor would exceed this GPU's {:.0} MiB binding limit)",
                                (batch_size as usize).div_ceil(micro),
                                mib(ctx.limits.max_storage_buffer_binding_size)
                            );
                        }
                        outln!(
                            "Training step at batch {batch_size}: transient tensors {:.1} MiB pooled in {} buffers \
                             (naive sum {:.1} MiB, {} tensors); parameters, gradients, Adam state, saved \
                             tensors and batch buffers {:.1} MiB",
                            mib(m.pooled_bytes),
                            m.pool_buffers,
                            mib(m.naive_bytes),
                            m.tensors,
                            mib(m.fixed_bytes),
                        );
                    }
                    Err(e) => outln!("Training step at batch {batch_size}: {e}"),
                },
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Info => {
            outln!("adapters found:");
            for (i, a) in gpucnn::gpu::list_adapters(&opts).iter().enumerate() {
                outln!("  {i}: {} ({:?}, {:?})", a.name, a.backend, a.device_type);
            }
            let ctx = open_gpu(&opts)?;
            outln!("using: {}", ctx.summary());
            outln!("kernel variants: {}", gpucnn::kernels::variant_report(&ctx));
            Ok(ExitCode::SUCCESS)
        }
        Command::Selftest { json, op, class } => {
            selftest_cmd(&opts, json, op, class.map(Into::into))
        }
    }
}

/// Prints what a demo did: the predictions, the run folder and the commands to go further.
fn demo_report(r: &gpucnn::demo::DemoReport) -> anyhow::Result<()> {
    outln!("Predictions on the images kept aside:");
    for (truth, p) in &r.predictions {
        match &p.result {
            Ok(probs) => outln!(
                "{} ({truth}): {}",
                p.path.display(),
                gpucnn::predict::describe(&r.classes, probs, false)
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

fn open_gpu(opts: &AdapterOptions) -> anyhow::Result<GpuContext> {
    GpuContext::new(opts).context("opening the GPU")
}

fn selftest_cmd(
    opts: &AdapterOptions,
    json: bool,
    op: Option<String>,
    class: Option<ShapeClass>,
) -> anyhow::Result<ExitCode> {
    let ctx = open_gpu(opts)?;
    let summary = ctx.summary();
    let all = selftest::all_checks(&ctx);
    let mut ops: Vec<&str> = all.iter().map(|c| c.op).collect();
    ops.dedup();
    let ops = ops.join(", ");
    let checks: Vec<_> = all
        .into_iter()
        .filter(|c| op.as_ref().is_none_or(|o| c.op.contains(o.as_str())))
        .filter(|c| class.is_none_or(|k| c.class == k))
        .collect();
    anyhow::ensure!(
        !checks.is_empty(),
        gpucnn::error::BadInput(format!(
            "no selftest check matches --op '{}'{}; the ops are: {ops}",
            op.unwrap_or_default(),
            if class.is_some() {
                " with that --class"
            } else {
                ""
            }
        ))
    );
    if !json {
        outln!("adapter: {summary}");
        outln!("kernel variants: {}", gpucnn::kernels::variant_report(&ctx));
        outln!(
            "{:<18} {:<16} {:<10} {:<40} {:>11} {:>11} {:>7}  ok",
            "op",
            "pass",
            "variant",
            "shape",
            "max_abs_err",
            "max_rel_err",
            "secs"
        );
    }
    let mut results: Vec<CheckResult> = Vec::with_capacity(checks.len());
    for c in &checks {
        let r = selftest::run_check(&ctx, c);
        if !json {
            outln!(
                "{:<18} {:<16} {:<10} {:<40} {:>11.3e} {:>11.3e} {:>7.2}  {}",
                r.op,
                r.pass,
                r.variant,
                r.shape,
                r.max_abs_err,
                r.max_rel_err,
                r.seconds,
                if r.ok { "ok" } else { "FAIL" }
            );
            if !r.ok {
                outln!("    {}", r.detail);
            }
        }
        results.push(r);
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    if json {
        let out = serde_json::json!({
            "adapter": {
                "name": summary.name,
                "backend": summary.backend,
                "device_type": summary.device_type,
                "driver": summary.driver,
                "driver_info": summary.driver_info,
            },
            "variants": gpucnn::kernels::variant_report(&ctx),
            "results": results,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("{} passed, {} failed", results.len() - failed, failed);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
