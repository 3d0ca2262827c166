//! `gpucnn train`: train the Keras example's network on a folder of class subfolders (or a
//! multi-label CSV) with [`crate::train::fit::fit`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::open_gpu;
use crate::cpu::augment::{AugmentConfig, Crop, FillMode};
use crate::data::dataset::ClassSelection;
use crate::data::{ColorMode, ImageSize};
use crate::dist::{self, Collective, Job};
use crate::gpu::{AdapterOptions, GpuContext};
use crate::train::callbacks::{CallbackConfig, LrSchedule, Monitor};
use crate::train::class_weight::ClassWeight;
use crate::train::fit::{FitConfig, FitSummary, default_out, fit_on, validate};
use crate::train::regularization::Regularization;
use crate::train::terminal::Terminal;

/// The flags of `gpucnn train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Folder with one subfolder of images per class (.jpg .jpeg .png .bmp .gif .webp); with
    /// --labels, the folder the CSV's image paths are relative to (default: the CSV's folder).
    #[arg(long, value_name = "DIR", required_unless_present = "labels")]
    pub data: Option<PathBuf>,
    /// Multi-label training: a CSV with one `path,label1;label2` row per image (an optional
    /// header such as `path,labels`; quote a path that holds a comma). Trains one sigmoid per
    /// label with binary cross-entropy.
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// Output folder for checkpoints, metrics and curves [default: runs/<name of --data>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 25)]
    pub epochs: usize,
    /// Images per training step (split into micro-batches automatically if the GPU needs it).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Early stopping (Keras' EarlyStopping): end the run after N epochs in a row without an
    /// improvement of --monitor (any improvement counts: min_delta 0). The epoch that stops it
    /// is saved as usual; --resume knows the count.
    #[arg(long, value_name = "N", help_heading = "Callbacks")]
    pub early_stopping_patience: Option<usize>,
    /// The validation quantity that early stopping, --lr-schedule plateau and --restore-best
    /// follow [default: val_loss, as Keras].
    #[arg(long, value_enum, value_name = "METRIC", help_heading = "Callbacks")]
    pub monitor: Option<Monitor>,
    /// best.safetensors (the model predict and evaluate load from a run folder) is the epoch
    /// with the best --monitor value, as Keras' restore_best_weights; without it, the epoch
    /// with the best val_accuracy.
    #[arg(long, help_heading = "Callbacks")]
    pub restore_best: bool,
    /// Learning rate epoch by epoch from --lr: constant; cosine (decay over the run, after
    /// --warmup-epochs of linear warm-up); step (× --lr-factor every --lr-step-epochs);
    /// plateau (Keras' ReduceLROnPlateau: × --lr-factor after --lr-patience epochs without
    /// improvement of --monitor, down to --min-lr). Each epoch's rate is in metrics.csv.
    #[arg(
        long,
        value_enum,
        default_value = "constant",
        value_name = "SCHEDULE",
        help_heading = "Callbacks"
    )]
    pub lr_schedule: ScheduleKind,
    /// cosine: epochs of linear warm-up to --lr first [default: 0].
    #[arg(long, value_name = "N", help_heading = "Callbacks")]
    pub warmup_epochs: Option<usize>,
    /// step: epochs between two reductions [default: 10].
    #[arg(long, value_name = "K", help_heading = "Callbacks")]
    pub lr_step_epochs: Option<usize>,
    /// step, plateau: the factor of each reduction, between 0 and 1 [default: 0.1].
    #[arg(long, value_name = "F", help_heading = "Callbacks")]
    pub lr_factor: Option<f32>,
    /// plateau: epochs without improvement before a reduction [default: 10].
    #[arg(long, value_name = "N", help_heading = "Callbacks")]
    pub lr_patience: Option<usize>,
    /// plateau: the lowest rate [default: 0].
    #[arg(long, value_name = "LR", help_heading = "Callbacks")]
    pub min_lr: Option<f32>,
    /// Write TensorBoard event files into --out/logs/train and --out/logs/validation (Keras'
    /// TensorBoard callback): per epoch loss, accuracy, learning rate and images/s, the first
    /// batch's images, and batch scalars every --tensorboard-update-freq steps. Watch them with
    /// `tensorboard --logdir runs/`.
    #[arg(long)]
    pub tensorboard: bool,
    /// With --tensorboard: write the running batch loss and accuracy every N steps (0: per
    /// epoch only).
    #[arg(long, value_name = "N", default_value_t = 10, requires = "tensorboard")]
    pub tensorboard_update_freq: usize,
    /// Keep only the last N save_at_*.safetensors (each about 33 MB at width 1.0); older ones
    /// are deleted as new ones are written. Default: keep all.
    #[arg(long, value_name = "N")]
    pub keep_checkpoints: Option<usize>,
    /// Start from the weights of a checkpoint (another run's best.safetensors, or any
    /// save_at_*.safetensors of the same model) with a fresh optimizer: fine-tuning.
    #[arg(long, value_name = "FILE")]
    pub init_from: Option<PathBuf>,
    /// Run each step as micro-batches of at most N images, their gradients summed before one
    /// update (batch norm then uses each micro-batch's statistics). Default: the whole batch,
    /// unless one batch would not fit the GPU's limits. Under mpirun, per rank.
    #[arg(long, value_name = "N")]
    pub micro_batch: Option<usize>,
    /// Images are resized (bilinear, no antialiasing) to this size, the model's input: N for
    /// N×N pixels, or H,W for H high and W wide (Keras' image_size=(height, width)).
    #[arg(long, default_value = "180", value_name = "N|H,W")]
    pub image_size: ImageSize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Fraction of the files of --data held out for validation [default: 0.2]. Not with
    /// --val-data.
    #[arg(long, value_name = "FRACTION")]
    pub validation_split: Option<f32>,
    /// A separate validation folder (the train/ + val/ layout), with the same class subfolders
    /// as --data: every image of --data trains and every image of DIR validates, instead of
    /// holding out --validation-split of --data. Not with --labels.
    #[arg(long, value_name = "DIR", conflicts_with = "labels")]
    pub val_data: Option<PathBuf>,
    /// Use only these class subfolders, in this order (Keras' class_names): class i of the
    /// model is the i-th name. Default: every subfolder, sorted by name. Not with --labels.
    #[arg(long, value_name = "A,B,...", conflicts_with = "labels")]
    pub class_names: Option<String>,
    /// Seed of the split, the shuffles, the initial weights, augmentation and dropout.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Channel-width multiplier of the network (1.0 is the Keras example's).
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// GPU augmentation of training batches: a comma list of flip (RandomFlip("horizontal")),
    /// rotate (RandomRotation(--rotation)), zoom (RandomZoom(--zoom)), translate
    /// (RandomTranslation(--translate, --translate)), contrast (RandomContrast(--contrast)) and
    /// brightness (RandomBrightness(--brightness)), or none. Whatever the list's order they run
    /// as crop (--random-crop), flip, rotate, zoom, translate (composed into one bilinear
    /// resampling with one --fill-mode), then contrast, brightness.
    #[arg(long, default_value = "flip,rotate", value_name = "LIST")]
    pub augment: String,
    /// Rotation range as a fraction of a full turn (0.1 = ±36°, as RandomRotation(0.1)).
    #[arg(long, default_value_t = 0.1)]
    pub rotation: f32,
    /// AdamW's decoupled weight decay (Keras' keras.optimizers.AdamW(weight_decay=W)): before
    /// each update every trainable value shrinks by value·W·lr. 0 is plain Adam (the
    /// example's); AdamW's own default is 0.004.
    #[arg(
        long,
        value_name = "W",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub weight_decay: f32,
    /// Dropout rate before the classifier (Keras' layers.Dropout(R); the example's 0.5).
    #[arg(
        long,
        value_name = "R",
        default_value_t = crate::train::regularization::DEFAULT_DROPOUT,
        allow_negative_numbers = true
    )]
    pub dropout: f32,
    /// Centre-crop each image to the aspect ratio of --image-size before resizing, instead of
    /// stretching it.
    #[arg(long)]
    pub crop_to_aspect_ratio: bool,
    /// Continue the run in --out from its last checkpoint (same settings and data required).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Delete the files of the run already in --out (gpucnn's own: checkpoints, best, metrics,
    /// curves, model.json, run.json, evaluate's plots; nothing else) and start afresh.
    #[arg(long)]
    pub overwrite: bool,
    /// Weigh each training image's loss by its class (Keras' fit(class_weight=...)), for
    /// skewed data: auto (or balanced: as sklearn's compute_class_weight("balanced"):
    /// n_images / (n_classes × n_images_of_the_class) over the training split), NAME=W,...
    /// (by class name; classes not named weigh 1), or none. The batch loss is Σ w·loss / batch
    /// size, as Keras; the `loss` column is then this weighted training loss, while accuracy and
    /// val_loss are never weighted. Not with --labels.
    #[arg(long, value_name = "auto|none|NAME=W,...", default_value = "none")]
    pub class_weight: String,
    /// Decode images to rgb (3 channels; gray files replicated, alpha dropped) or grayscale
    /// (1 channel, TensorFlow's rgb_to_grayscale weights), as Keras' color_mode; the model's
    /// input has that many channels, and predict and evaluate convert every image the same way.
    #[arg(long, default_value = "rgb", value_name = "rgb|grayscale")]
    pub color_mode: ColorMode,
    /// L2 regularization of every kernel (Keras' kernel_regularizer=regularizers.l2(L) on each
    /// Conv2D and Dense, depthwise_regularizer and pointwise_regularizer on each
    /// SeparableConv2D; not on biases nor batch-norm γ/β): L·Σw² joins the loss (the `loss`
    /// and `val_loss` columns, as Keras reports them) and 2·L·w the kernels' gradients before
    /// Adam. 0 (the example's) is none.
    #[arg(
        long,
        value_name = "L",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub l2: f32,
    /// Label smoothing of the cross-entropy, in [0, 1] (Keras' label_smoothing=S of
    /// BinaryCrossentropy: targets y·(1 − S) + S/2; of CategoricalCrossentropy on one-hot labels:
    /// (1 − S)·onehot + S/K). The training and validation losses use the smoothed targets,
    /// accuracy the given labels. 0 (the example's) is none.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub label_smoothing: f32,
    /// Zoom, translation, fill mode, random crop, contrast and brightness (the augmentations
    /// beyond flip and rotation).
    #[command(flatten)]
    pub augment_flags: AugmentArgs,
}

/// The augmentation flags beyond `--augment`/`--rotation`, shared by `train` and `preview` so
/// that a preview shows exactly what training would do.
#[derive(Debug, Clone, clap::Args)]
pub struct AugmentArgs {
    /// For `zoom` in --augment: Keras' RandomZoom(F), the height and width zoomed alike by a
    /// factor uniform in [1 − F, 1 + F] (above 1 zooms out, below 1 in), about the centre; F
    /// between 0 and 1 [default: 0.1].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub zoom: Option<f32>,
    /// For `translate` in --augment: Keras' RandomTranslation(F, F), a shift uniform in
    /// [−F, F] of the height down and of the width right; F between 0 and 1 [default: 0.1].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub translate: Option<f32>,
    /// How rotate, zoom and translate fill points outside the image (Keras' fill_mode):
    /// reflect (d c b a | a b c d | d c b a), wrap (a b c d | a b c d), nearest
    /// (a a | a b c d | d d) or constant (--fill-value).
    #[arg(long, value_name = "MODE", default_value = "reflect")]
    pub fill_mode: String,
    /// With --fill-mode constant: the value of the filled points, in pixel units 0-255 (Keras'
    /// fill_value) [default: 0].
    #[arg(long, value_name = "V", allow_negative_numbers = true)]
    pub fill_value: Option<f32>,
    /// Keras' RandomCrop(H, W): images load at --image-size and training cuts a random H×W
    /// window of each (before the other augmentations); the model's input is H×W. Validation,
    /// evaluate and predict load images at H×W directly (Keras resizes to the crop size at
    /// inference). N for N×N, or H,W.
    #[arg(long, value_name = "N|H,W")]
    pub random_crop: Option<ImageSize>,
    /// For `contrast` in --augment: Keras' RandomContrast(F): per image, each channel's values
    /// move away from (or towards) its mean by a factor uniform in [1 − F, 1 + F], clipped to
    /// 0..255; F between 0 and 1 [default: 0.2].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub contrast: Option<f32>,
    /// For `brightness` in --augment: Keras' RandomBrightness(F, value_range=(0, 255)): per
    /// image, F·255·(a uniform in [−1, 1]) added to every value, clipped to 0..255; F between
    /// −1 and 1, only |F| matters, as in Keras [default: 0.2].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub brightness: Option<f32>,
}

/// `--validation-split` when not given: the Keras example's 0.2.
pub const DEFAULT_VALIDATION_SPLIT: f32 = 0.2;

/// The training run `a` asks for: --data (or the CSV's folder), --out (or
/// `runs/<name of --data or the CSV>`), the augmentation and progress display.
pub fn fit_config(a: &TrainArgs) -> anyhow::Result<FitConfig> {
    let data = match (&a.data, &a.labels) {
        (Some(d), _) => d.clone(),
        (None, Some(csv)) => csv.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        (None, None) => {
            crate::bail_input!("--data is required (or --labels for multi-label training)")
        }
    };
    // clap cannot tell a default from a value given, so the flag is an Option: both given is
    // a contradiction worth saying, not a value to drop silently.
    if let (Some(split), Some(val)) = (a.validation_split, &a.val_data) {
        crate::bail_input!(
            "--validation-split {split} and --val-data {}: with a separate validation folder \
             nothing of --data is held out; pass one of them",
            val.display()
        );
    }
    let named = a
        .labels
        .as_ref()
        .map(|c| c.with_extension(""))
        .unwrap_or_else(|| data.clone());
    Ok(FitConfig {
        out: a.out.clone().unwrap_or_else(|| default_out(&named)),
        data,
        labels: a.labels.clone(),
        val_data: a.val_data.clone(),
        class_names: match &a.class_names {
            Some(list) => Some(ClassSelection::parse(list)?.names().to_vec()),
            None => None,
        },
        epochs: a.epochs,
        batch_size: a.batch_size,
        image_size: a.image_size,
        lr: a.lr,
        validation_split: a.validation_split.unwrap_or(DEFAULT_VALIDATION_SPLIT),
        seed: a.seed,
        width: a.width,
        augment: parse_augment(&a.augment, a.rotation, &a.augment_flags, a.image_size)?,
        crop_to_aspect_ratio: a.crop_to_aspect_ratio,
        micro_batch: a.micro_batch,
        callbacks: callback_config(a)?,
        keep_checkpoints: a.keep_checkpoints,
        tensorboard: a.tensorboard.then_some(a.tensorboard_update_freq),
        init_from: a.init_from.clone(),
        resume: a.resume,
        overwrite: a.overwrite,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        regularization: Regularization {
            weight_decay: a.weight_decay,
            dropout: a.dropout,
            l2: a.l2,
            label_smoothing: a.label_smoothing,
        },
        class_weight: ClassWeight::parse(&a.class_weight)?,
        color_mode: a.color_mode,
    })
}

/// Runs `gpucnn train`: checks the settings before opening the GPU, trains, and says where the
/// outputs are (on stderr, as the progress lines).
pub fn run(a: &TrainArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    let cfg = fit_config(a)?;
    validate(&cfg)?;
    let ctx = open_gpu(adapter)?;
    crate::msgln!("adapter: {}", ctx.summary());
    let mut print = |line: &str| crate::msgln!("{line}");
    let summary = fit_on(
        &ctx,
        &cfg,
        Job::solo(),
        &mut Terminal::new(cfg.progress, &mut print),
    )?;
    say_done(&cfg, &summary);
    Ok(ExitCode::SUCCESS)
}

fn say_done(cfg: &FitConfig, summary: &FitSummary) {
    if let Some(best) = summary.best_val_accuracy {
        crate::msgln!(
            "Best validation accuracy: {best:.4}. Outputs in {}",
            cfg.out.display()
        );
    }
}

/// Runs `gpucnn train` as one rank of a data-parallel job (`mpirun -np N gpucnn train ...`):
/// each rank opens its machine-local share of the GPUs (see
/// [`crate::gpu::GpuContext::for_local_rank`]); rank 0 prints and writes, the others stay quiet
/// but for their errors (see [`crate::dist`]).
pub fn run_on(
    a: &TrainArgs,
    adapter: &AdapterOptions,
    comm: &dyn Collective,
) -> anyhow::Result<ExitCode> {
    let job = Job {
        comm,
        exit_code: super::exit::exit_code,
    };
    let lead = job.lead();
    let cfg = job.agree(fit_config(a).map(|cfg| FitConfig {
        progress: cfg.progress && lead,
        ..cfg
    }))?;
    job.agree(validate(&cfg))?;
    let opened = GpuContext::for_local_rank(adapter, comm.local_rank());
    let (ctx, index, count) = job.agree(opened.context("opening the GPU"))?;
    let line = format!(
        "rank {} (machine-local {} of {}): adapter {} of {count} of its kind: {}",
        comm.rank(),
        comm.local_rank(),
        comm.local_size(),
        index + 1,
        ctx.summary()
    );
    let lines = dist::gather_strings(comm, &line);
    let mut log = |line: &str| {
        if lead {
            crate::msgln!("{line}")
        }
    };
    log(&format!(
        "Data-parallel training over {} MPI ranks: each step of {} images runs as shards of up \
         to {} per rank, gradients summed across ranks after each backward.",
        comm.size(),
        cfg.batch_size,
        dist::local_batch(cfg.batch_size, comm.size())
    ));
    for l in &lines {
        log(l);
    }
    let summary = fit_on(&ctx, &cfg, job, &mut Terminal::new(cfg.progress, &mut log))?;
    if lead {
        say_done(&cfg, &summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// The schedules `--lr-schedule` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleKind {
    Constant,
    Cosine,
    Step,
    Plateau,
}

/// Early stopping and the schedule from the flags; a flag that the chosen schedule does not
/// use, or a value out of range, is refused naming it.
pub fn callback_config(a: &TrainArgs) -> anyhow::Result<CallbackConfig> {
    let unused = |flag: &str, used_by: &str| -> anyhow::Result<()> {
        crate::bail_input!(
            "{flag} applies to {used_by}; it has no effect with --lr-schedule {}",
            format!("{:?}", a.lr_schedule).to_lowercase()
        )
    };
    let schedule = match a.lr_schedule {
        ScheduleKind::Cosine => LrSchedule::Cosine {
            warmup: a.warmup_epochs.unwrap_or(0),
        },
        ScheduleKind::Step => {
            let every = a.lr_step_epochs.unwrap_or(10);
            crate::ensure_input!(every >= 1, "--lr-step-epochs must be at least 1");
            LrSchedule::Step {
                every,
                factor: a.lr_factor.unwrap_or(0.1),
            }
        }
        ScheduleKind::Plateau => LrSchedule::Plateau {
            factor: a.lr_factor.unwrap_or(0.1),
            patience: a.lr_patience.unwrap_or(10),
            min_lr: a.min_lr.unwrap_or(0.0),
        },
        ScheduleKind::Constant => LrSchedule::Constant,
    };
    let kind = a.lr_schedule;
    if a.warmup_epochs.is_some() && kind != ScheduleKind::Cosine {
        unused("--warmup-epochs", "--lr-schedule cosine")?;
    }
    if a.lr_step_epochs.is_some() && kind != ScheduleKind::Step {
        unused("--lr-step-epochs", "--lr-schedule step")?;
    }
    if a.lr_factor.is_some() && !matches!(kind, ScheduleKind::Step | ScheduleKind::Plateau) {
        unused("--lr-factor", "--lr-schedule step and plateau")?;
    }
    if (a.lr_patience.is_some() || a.min_lr.is_some()) && kind != ScheduleKind::Plateau {
        unused("--lr-patience and --min-lr", "--lr-schedule plateau")?;
    }
    if let Some(f) = a.lr_factor {
        crate::ensure_input!(
            f > 0.0 && f < 1.0,
            "--lr-factor must be strictly between 0 and 1, got {f}"
        );
    }
    if let Some(m) = a.min_lr {
        crate::ensure_input!(
            m.is_finite() && m >= 0.0,
            "--min-lr must be 0 or more, got {m}"
        );
    }
    let uses_monitor =
        a.early_stopping_patience.is_some() || a.restore_best || kind == ScheduleKind::Plateau;
    if a.monitor.is_some() && !uses_monitor {
        crate::bail_input!(
            "--monitor is followed by --early-stopping-patience, --restore-best and \
             --lr-schedule plateau; give one of them, or leave --monitor out"
        );
    }
    Ok(CallbackConfig {
        monitor: a.monitor.unwrap_or(Monitor::ValLoss),
        patience: a.early_stopping_patience,
        restore_best: a.restore_best,
        schedule,
    })
}

/// The augmentation named by `--augment` (a comma list of `flip`, `rotate`, `zoom`,
/// `translate`, `contrast`, `brightness`, or `none`) with `--rotation`'s range and `g`'s zoom,
/// translation, fill, crop, contrast and brightness;
/// `None` when nothing is augmented. `image_size` is the size images load at (`--image-size`),
/// which a crop must fit. Bad input names the flag at fault.
pub fn parse_augment(
    list: &str,
    rotation: f32,
    g: &AugmentArgs,
    image_size: ImageSize,
) -> anyhow::Result<Option<AugmentConfig>> {
    let mut cfg = AugmentConfig {
        flip: false,
        rotate: false,
        factor: rotation,
        ..AugmentConfig::NONE
    };
    let (mut zoom, mut translate) = (false, false);
    let (mut contrast, mut brightness) = (false, false);
    for part in list.split(',').map(str::trim) {
        match part {
            "flip" => cfg.flip = true,
            "rotate" => cfg.rotate = true,
            "zoom" => zoom = true,
            "translate" => translate = true,
            "contrast" => contrast = true,
            "brightness" => brightness = true,
            "none" => {}
            other => crate::bail_input!(
                "--augment: unknown augmentation '{other}'; use a comma list of flip, rotate, \
                 zoom, translate, contrast and brightness, or none"
            ),
        }
    }
    if !(rotation.is_finite() && (0.0..=0.5).contains(&rotation)) {
        crate::bail_input!(
            "--rotation must be between 0 and 0.5 (a fraction of a full turn), got {rotation}"
        );
    }
    // A factor only with its augmentation listed (else it would be ignored), between `lo` and 1
    // as Keras accepts it; Keras uses only the magnitude of a single factor.
    let factor = |flag: &str,
                  name: &str,
                  on: bool,
                  v: Option<f32>,
                  default: f32,
                  lo: f32|
     -> anyhow::Result<_> {
        if let Some(f) = v {
            crate::ensure_input!(
                on,
                "{flag} {f} applies to `{name}`, which --augment ({list}) does not list; add \
                 {name} to --augment or leave {flag} out"
            );
            crate::ensure_input!(
                f.is_finite() && (lo..=1.0).contains(&f),
                "{flag} must be between {lo} and 1 (the range of Keras' single factor), got {f}"
            );
        }
        Ok(on.then(|| v.map_or(default, f32::abs)))
    };
    let geometry = DEFAULT_GEOMETRY_FACTOR;
    cfg.zoom = factor("--zoom", "zoom", zoom, g.zoom, geometry, 0.0)?;
    cfg.translate = factor(
        "--translate",
        "translate",
        translate,
        g.translate,
        geometry,
        0.0,
    )?;
    let color = DEFAULT_COLOR_FACTOR;
    // 0: off (AugmentConfig's colour factors are plain numbers).
    cfg.contrast =
        factor("--contrast", "contrast", contrast, g.contrast, color, 0.0)?.unwrap_or(0.0);
    cfg.brightness = factor(
        "--brightness",
        "brightness",
        brightness,
        g.brightness,
        color,
        -1.0,
    )?
    .unwrap_or(0.0);
    cfg.fill_mode = FillMode::parse(&g.fill_mode).ok_or_else(|| {
        crate::error::bad_input(format!(
            "--fill-mode: unknown mode '{}'; use reflect, wrap, nearest or constant",
            g.fill_mode
        ))
    })?;
    if let Some(v) = g.fill_value {
        crate::ensure_input!(
            cfg.fill_mode == FillMode::Constant,
            "--fill-value applies to --fill-mode constant (the mode is {}); add --fill-mode \
             constant or leave --fill-value out",
            g.fill_mode
        );
        crate::ensure_input!(v.is_finite(), "--fill-value must be a number, got {v}");
        cfg.fill_value = v;
    }
    if let Some(crop) = g.random_crop {
        crate::ensure_input!(
            crop.height <= image_size.height && crop.width <= image_size.width,
            "--random-crop {}x{} is larger than --image-size {}x{}: images load at --image-size \
             and training cuts the crop out of them; give a larger --image-size or a smaller \
             --random-crop",
            crop.height,
            crop.width,
            image_size.height,
            image_size.width
        );
        cfg.crop = Some(Crop {
            height: crop.height,
            width: crop.width,
            from: (image_size.height, image_size.width),
        });
    }
    let on = cfg.flip
        || cfg.resamples()
        || cfg.crop.is_some()
        || crate::cpu::augment_color::color_on(&cfg);
    Ok(on.then_some(cfg))
}

/// `--zoom` and `--translate` when their augmentation is listed without a factor.
pub const DEFAULT_GEOMETRY_FACTOR: f32 = 0.1;

/// `--contrast` and `--brightness` when their augmentation is listed without a factor.
pub const DEFAULT_COLOR_FACTOR: f32 = 0.2;

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> AugmentArgs {
        AugmentArgs {
            zoom: None,
            translate: None,
            fill_mode: "reflect".into(),
            fill_value: None,
            random_crop: None,
            contrast: None,
            brightness: None,
        }
    }

    /// The colour factors count only when named in --augment (their defaults otherwise never
    /// turn them on), a brightness is recorded by its magnitude (Keras uses only |F|), contrast
    /// or brightness alone is an augmentation, and a factor without its augmentation or out of
    /// Keras' range is refused naming the flag.
    #[test]
    fn colour_factors_count_only_when_named() {
        let size = ImageSize::square(16);
        let parse = |list: &str, contrast: Option<f32>, brightness: Option<f32>| {
            let g = AugmentArgs {
                contrast,
                brightness,
                ..flags()
            };
            parse_augment(list, 0.1, &g, size)
        };
        assert_eq!(
            parse("flip,rotate", None, None).unwrap(),
            Some(AugmentConfig::KERAS)
        );
        let c = parse("flip,rotate,brightness", None, Some(-0.4)).unwrap();
        assert_eq!(
            c,
            Some(AugmentConfig {
                brightness: 0.4,
                ..AugmentConfig::KERAS
            })
        );
        let c = parse("contrast", Some(0.3), None).unwrap().unwrap();
        assert!(!c.flip && !c.rotate && c.contrast == 0.3 && c.brightness == 0.0);
        let c = parse("brightness", None, None).unwrap().unwrap();
        assert_eq!(c.brightness, DEFAULT_COLOR_FACTOR);
        assert_eq!(parse("none", None, None).unwrap(), None);
        // Factor 0 is off: nothing to augment.
        assert_eq!(parse("contrast", Some(0.0), None).unwrap(), None);
        for (list, contrast, brightness, flag) in [
            ("contrast", Some(1.5), None, "--contrast"),
            ("brightness", None, Some(1.5), "--brightness"),
            ("brightness", None, Some(-1.5), "--brightness"),
            ("flip", Some(0.2), None, "--contrast"),
            ("flip", None, Some(0.2), "--brightness"),
        ] {
            let e = parse(list, contrast, brightness).unwrap_err();
            assert!(crate::train::api::is_bad_input(&e), "{e}");
            assert!(e.to_string().contains(flag), "{e}");
        }
    }
}
