//! Everything `fit` does before the first step: the dataset and its split, the run's
//! fingerprint, unreadable files left out, the model, the compiled step, and where the run
//! starts (afresh, or from the last checkpoint of the same run).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::callbacks::CallbackState;
use super::checkpoint::{
    ModelConfig, Position, TrainState, checkpoint_size_bound, interrupted_path, latest_checkpoint,
    load_checkpoint,
};
use super::class_weight::{self, ClassWeight};
use super::fit::FitConfig;
use super::metrics::MetricsCsv;
use super::progress::Status;
use super::run_folder::{self, Plan, RunFingerprint};
use crate::cpu::augment::{AugmentConfig, FillMode};
use crate::data::dataset::{
    ClassSelection, DatasetOptions, DirectoryDataset, Sample, class_counts,
};
use crate::data::labels::LabelTable;
use crate::data::scan::{BadFile, ScanOptions, scan};
use crate::dist::Collective;
use crate::gpu::GpuContext;
use crate::graph::Model;
use crate::graph::executor::{StepOptions, TrainStep};
use crate::model::{XceptionConfig, xception_mini};

/// Most bytes of decoded images the loader keeps in memory (beyond, it caches on disk in --out).
pub const MEMORY_CACHE_BUDGET: u64 = 2 << 30;

/// The run's images: class (or label) names, the two splits, and for multi-label runs the
/// labels CSV whose rows the samples index.
pub struct Data {
    pub class_names: Vec<String>,
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
    pub table: Option<LabelTable>,
}

/// Single-label: class folders (those of `--class-names`, in its order), split or with a
/// separate validation folder (`--val-data`). Multi-label: a labels CSV whose rows index
/// `table.targets`.
pub fn load_data(cfg: &FitConfig, log: &mut dyn FnMut(&str)) -> anyhow::Result<Data> {
    let split = DatasetOptions {
        validation_split: cfg.validation_split,
        seed: cfg.seed,
    };
    if let Some(csv) = &cfg.labels {
        // The CSV names the labels and holds the images of both splits.
        crate::ensure_input!(
            cfg.val_data.is_none(),
            "--val-data cannot be used with --labels {} (multi-label training splits the CSV's \
             rows with --validation-split); drop --val-data",
            csv.display()
        );
        crate::ensure_input!(
            cfg.class_names.is_none(),
            "--class-names cannot be used with --labels {} (the labels are those of the CSV); \
             drop --class-names",
            csv.display()
        );
        // Keras refuses class_weight for multi-column targets too.
        crate::ensure_input!(
            cfg.class_weight == ClassWeight::None,
            "--class-weight cannot be used with --labels {} (multi-label training: a sample \
             has no single class to weigh); drop --class-weight",
            csv.display()
        );
    }
    let classes = match &cfg.class_names {
        Some(names) => Some(ClassSelection::new(names.clone())?),
        None => None,
    };
    let data = match &cfg.labels {
        Some(csv) => {
            let t = LabelTable::from_csv(csv, &cfg.data, &split)?;
            log(&format!(
                "Found {} images with {} labels ({}). Using {} for training, {} for validation.",
                t.train.len() + t.val.len(),
                t.label_names.len(),
                t.label_names.join(", "),
                t.train.len(),
                t.val.len()
            ));
            Data {
                class_names: t.label_names.clone(),
                train: t.train.clone(),
                val: t.val.clone(),
                table: Some(t),
            }
        }
        None => {
            let ds = match &cfg.val_data {
                Some(val) => {
                    DirectoryDataset::open_separate(&cfg.data, val, &split, classes.as_ref())?
                }
                None => DirectoryDataset::open_selected(&cfg.data, &split, classes.as_ref())?,
            };
            log(&ds.summary());
            Data {
                class_names: ds.class_names,
                train: ds.train,
                val: ds.val,
                table: None,
            }
        }
    };
    crate::data::inspect::warn_split_leaks(&data.train, &data.val, log);
    Ok(data)
}

/// `--augment`/`--rotation` (and the other augmentation flags) as the fingerprint records them. The
/// flip/rotate part is spelled as it always was (`flip,rotate 0.1`), and the newer settings are
/// appended only when they differ from the defaults, so run.json files written before them
/// still match.
pub(crate) fn augment_label(a: &Option<AugmentConfig>) -> String {
    match a {
        None => "none".into(),
        Some(a) => {
            let mut parts = Vec::new();
            if let Some(c) = a.crop {
                parts.push(format!("crop {}x{}", c.height, c.width));
            }
            if a.flip {
                parts.push("flip".to_string());
            }
            if a.rotate {
                parts.push(format!("rotate {}", a.factor));
            }
            if let Some(f) = a.zoom {
                parts.push(format!("zoom {f}"));
            }
            if let Some(f) = a.translate {
                parts.push(format!("translate {f}"));
            }
            if a.fill_mode != FillMode::Reflect && a.resamples() {
                parts.push(match a.fill_mode {
                    FillMode::Constant => format!("fill constant {}", a.fill_value),
                    m => format!("fill {}", m.name()),
                });
            }
            // Only when on, so the fingerprint of every run without them is unchanged.
            if a.contrast > 0.0 {
                parts.push(format!("contrast {}", a.contrast));
            }
            if a.brightness != 0.0 {
                parts.push(format!("brightness {}", a.brightness));
            }
            parts.join(",")
        }
    }
}

/// What makes this run this run (see [`RunFingerprint`]): the settings, the labels CSV and
/// the data files (of `--data`, and of `--val-data` apart).
pub fn fingerprint(cfg: &FitConfig, data: &Data) -> anyhow::Result<RunFingerprint> {
    let paths = |s: &[Sample]| s.iter().map(|s| s.path.clone()).collect::<Vec<_>>();
    let (data_files, val_data) = match &cfg.val_data {
        Some(val) => (
            paths(&data.train),
            Some(run_folder::data_digest(
                val,
                paths(&data.val).iter().map(|p| p.as_path()),
            )?),
        ),
        None => ([paths(&data.train), paths(&data.val)].concat(), None),
    };
    Ok(RunFingerprint {
        seed: cfg.seed,
        validation_split: cfg.validation_split,
        lr: cfg.lr,
        batch_size: cfg.batch_size,
        image_size: cfg.image_size,
        width: cfg.width,
        augment: augment_label(&cfg.augment),
        crop_to_aspect_ratio: cfg.crop_to_aspect_ratio,
        classes: data.class_names.clone(),
        multi_label: data.table.is_some(),
        labels_csv: match &cfg.labels {
            Some(csv) => Some(run_folder::file_digest(csv)?),
            None => None,
        },
        data: run_folder::data_digest(&cfg.data, data_files.iter().map(|p| p.as_path()))?,
        val_data,
        regularization: cfg.regularization,
        class_weight: cfg.class_weight.label(),
        color_mode: cfg.color_mode,
    })
}

/// `--class-weight`'s weight per class (label order) from the training split's class counts
/// (after unreadable files are left out), said once; `None` without class weights.
pub fn class_weights(
    cfg: &FitConfig,
    data: &Data,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<Option<Vec<f32>>> {
    let counts = class_counts(&data.train, data.class_names.len(), targets(data));
    let w = cfg.class_weight.weights(&data.class_names, &counts)?;
    if let Some(w) = &w {
        log(&class_weight::describe(&data.class_names, w));
    }
    Ok(w)
}

/// Decodes every file once and leaves the corrupt ones out (listed), then checks that every
/// class and both splits still have images. Returns how many files were left out.
///
/// With several ranks, each decodes its share of the files and they exchange what failed.
pub fn skip_unreadable(
    cfg: &FitConfig,
    data: &mut Data,
    log: &mut dyn FnMut(&str),
    comm: &dyn Collective,
) -> anyhow::Result<usize> {
    let all: Vec<Sample> = data.train.iter().chain(&data.val).cloned().collect();
    let (rank, size) = (comm.rank(), comm.size());
    let mine: Vec<Sample> = all.into_iter().skip(rank).step_by(size).collect();
    let mut bad = scan(&mine, &ScanOptions::default()).bad;
    if size > 1 {
        bad = share_bad_files(comm, &bad);
    }
    if !bad.is_empty() {
        log(&format!("Skipping {} unreadable file(s):", bad.len()));
        for b in &bad {
            log(&format!("  {}: {}", b.path.display(), b.reason));
        }
        let bad: HashSet<PathBuf> = bad.iter().map(|b| b.path.clone()).collect();
        data.train.retain(|s| !bad.contains(&s.path));
        data.val.retain(|s| !bad.contains(&s.path));
    }
    check_classes(cfg, data, log)?;
    if data.train.is_empty() || data.val.is_empty() {
        let fix = match (&cfg.val_data, data.train.is_empty()) {
            (Some(_), true) => format!("add images to {} (--data)", cfg.data.display()),
            (Some(val), false) => format!("add images to {} (--val-data)", val.display()),
            (None, true) => "add images or lower --validation-split".into(),
            (None, false) => "add images or raise --validation-split".into(),
        };
        crate::bail_input!(
            "{}: after skipping unreadable files, {} training and {} validation images remain; \
             {fix}",
            cfg.data.display(),
            data.train.len(),
            data.val.len()
        );
    }
    Ok(bad.len())
}

#[cfg(unix)]
fn path_from_bytes(b: &[u8]) -> PathBuf {
    PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b))
}

#[cfg(not(unix))]
fn path_from_bytes(b: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(b).into_owned())
}

/// Every rank's unreadable files, on every rank, in path order.
fn share_bad_files(comm: &dyn Collective, mine: &[BadFile]) -> Vec<BadFile> {
    // NUL-separated pairs: the path, the reason (neither holds a NUL).
    let mut bytes = Vec::new();
    for b in mine {
        bytes.extend_from_slice(b.path.as_os_str().as_encoded_bytes());
        bytes.push(0);
        bytes.extend_from_slice(b.reason.as_bytes());
        bytes.push(0);
    }
    let mut all = Vec::new();
    for root in 0..comm.size() {
        let mut buf = if root == comm.rank() {
            bytes.clone()
        } else {
            Vec::new()
        };
        comm.broadcast(root, &mut buf);
        let mut parts = buf.split(|&c| c == 0);
        while let (Some(p), Some(r)) = (parts.next(), parts.next()) {
            if p.is_empty() {
                break;
            }
            all.push(BadFile {
                path: path_from_bytes(p),
                reason: String::from_utf8_lossy(r).into_owned(),
            });
        }
    }
    all.sort_by(|a, b| a.path.cmp(&b.path));
    all
}

/// Multi-label runs: the multi-hot target row of each sample's label.
fn targets(data: &Data) -> Option<&[Vec<f32>]> {
    data.table.as_ref().map(|t| t.targets.as_slice())
}

/// Refuses a class without a single readable image (it would train "perfectly" on the others)
/// and warns about a class missing from one split.
fn check_classes(cfg: &FitConfig, data: &Data, log: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    let (names, table) = (&data.class_names, data.table.as_ref());
    let (t, v) = (
        class_counts(&data.train, names.len(), targets(data)),
        class_counts(&data.val, names.len(), targets(data)),
    );
    let place = |name: &str| match (&cfg.labels, table) {
        (Some(csv), Some(_)) => format!("label '{name}' of {} (--labels)", csv.display()),
        _ => format!("class '{name}' ({})", cfg.data.join(name).display()),
    };
    for (i, name) in names.iter().enumerate() {
        if t[i] + v[i] == 0 {
            crate::bail_input!(
                "{} has no readable image: every one of its files was skipped as unreadable \
                 (listed above). Replace them with images gpucnn can decode, or remove the class",
                place(name)
            );
        }
        // With --val-data no split is drawn: the fix is images in the folder that lacks them.
        let (after, fix_train, fix_val) = match &cfg.val_data {
            Some(val) => (
                "after skipping unreadable files",
                format!("add images to {}", cfg.data.join(name).display()),
                format!("add images to {} (--val-data)", val.join(name).display()),
            ),
            None => (
                "after the split and skipping unreadable files",
                "add images or change --validation-split".to_string(),
                "add images or raise --validation-split".to_string(),
            ),
        };
        if t[i] == 0 {
            log(&format!(
                "warning: {} has no training image {after}: the model cannot learn it; \
                 {fix_train}",
                place(name)
            ));
        }
        if v[i] == 0 {
            log(&format!(
                "warning: {} has no validation image {after}: val_accuracy says nothing about \
                 it; {fix_val}",
                place(name)
            ));
        }
    }
    Ok(())
}

/// The Keras example's network for this data, and its description for model.json.
pub fn build_model(cfg: &FitConfig, data: &Data) -> anyhow::Result<(Model, ModelConfig)> {
    let xcfg = XceptionConfig {
        image_size: cfg.model_size(),
        channels: cfg.color_mode.channels(),
        classes: data.class_names.len(),
        width: cfg.width,
        dropout: cfg.regularization.dropout,
        multi_label: data.table.is_some(),
    };
    let model = xception_mini(&xcfg)?;
    let model_cfg = ModelConfig {
        crop_to_aspect_ratio: cfg.crop_to_aspect_ratio,
        color_mode: cfg.color_mode,
        weight_decay: cfg.regularization.weight_decay,
        l2: cfg.regularization.l2,
        label_smoothing: cfg.regularization.label_smoothing,
        ..ModelConfig::xception_mini(&xcfg, data.class_names.clone())
    };
    Ok((model, model_cfg))
}

/// Compiles the training step, saying so first (seconds to minutes on a software adapter), and
/// says when the batch runs as micro-batches.
///
/// `batch` is the batch one process steps: `--batch-size`, or a data-parallel rank's shard.
pub fn compile_step(
    ctx: &GpuContext,
    cfg: &FitConfig,
    model: &Model,
    batch: usize,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<TrainStep> {
    let compiling = Status::begin(cfg.progress, "Compiling GPU pipelines…", log);
    let opts = StepOptions {
        lr: cfg.lr,
        micro: cfg.micro_batch,
        augment: cfg.augment,
        weight_decay: cfg.regularization.weight_decay,
        l2: cfg.regularization.l2,
        label_smoothing: cfg.regularization.label_smoothing,
    };
    let step = TrainStep::with_options(ctx, model, batch, &opts)?;
    let secs = compiling.elapsed();
    compiling.finish(&format!("GPU pipelines compiled in {secs:.1}s."), log);
    if step.micro < batch {
        log(&format!(
            "Batch {} runs as micro-batches of {} with gradient accumulation: one batch would need \
             more than the GPU's {} MiB per binding (batch norm uses each micro-batch's statistics).",
            batch,
            step.micro,
            ctx.limits.max_storage_buffer_binding_size >> 20
        ));
    }
    Ok(step)
}

/// The checkpoint a resumed run continues from.
pub struct Resume {
    pub epoch: usize,
    pub path: PathBuf,
    pub params: Vec<f32>,
    pub state: TrainState,
}

/// The last checkpoint of this very run when resuming (checked against the model and the
/// run's fingerprint), else None.
pub fn resume_point(
    cfg: &FitConfig,
    plan: Plan,
    step: &TrainStep,
    model_cfg: &ModelConfig,
    fingerprint: &RunFingerprint,
) -> anyhow::Result<Option<Resume>> {
    let mut latest = if plan == Plan::Resume {
        latest_checkpoint(&cfg.out)?
    } else {
        None
    };
    // A run interrupted inside an epoch after its last checkpoint continues from where it
    // stopped (`interrupted.safetensors`, which a finished epoch deletes).
    let interrupted = interrupted_path(&cfg.out);
    if plan == Plan::Resume && interrupted.is_file() {
        let ck = load_checkpoint(&interrupted, &step.layout)?;
        if let Some(s) = ck.state
            && s.position.is_some()
            && latest.as_ref().is_none_or(|(e, _)| s.epoch >= *e)
        {
            latest = Some((s.epoch, interrupted));
        }
    }
    let Some((epoch, path)) = latest else {
        return Ok(None);
    };
    let ck = load_checkpoint(&path, &step.layout)?;
    if let Some(saved) = &ck.model {
        saved.ensure_matches(&path, model_cfg)?;
    }
    let state = ck
        .state
        .with_context(|| format!("{} holds no optimizer state to resume from", path.display()))?;
    // run.json agreed; the checkpoint itself must be this run's too.
    match &state.run {
        Some(old) => {
            let diffs = old.differences(fingerprint);
            crate::ensure_input!(
                diffs.is_empty(),
                "{} was written by another run than the one requested: {}. Pass \
                 --overwrite to delete that run's files and start afresh, or pick another \
                 --out",
                path.display(),
                diffs.join("; ")
            );
        }
        None => crate::bail_input!(
            "{} records no run fingerprint (written by an older gpucnn), so it cannot be \
             checked against these settings: pass --overwrite to start afresh, or pick \
             another --out",
            path.display()
        ),
    }
    Ok(Some(Resume {
        epoch,
        path,
        params: ck.params,
        state,
    }))
}

/// Where a run starts.
pub struct Start {
    pub first_epoch: usize,
    /// The best validation accuracy so far.
    pub best: Option<f32>,
    pub csv: MetricsCsv,
    pub callbacks: CallbackState,
    /// An interrupted run's place inside its epoch.
    pub position: Option<Position>,
}

/// Where the run starts: the first epoch to train, the best validation accuracy so far, the
/// metrics file and the callbacks' state, with the parameters (and Adam's state) loaded into
/// `step`: resumed, from `--init-from`'s weights, or the seeded initial values.
pub fn start(
    ctx: &GpuContext,
    cfg: &FitConfig,
    step: &TrainStep,
    model_cfg: &ModelConfig,
    resume: Option<Resume>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<Start> {
    let Some(r) = resume else {
        if cfg.resume {
            log(&format!(
                "No checkpoint in {}: starting from scratch.",
                cfg.out.display()
            ));
        }
        let params = match &cfg.init_from {
            Some(path) => {
                let params = init_from(path, step, model_cfg)?;
                log(&format!(
                    "Starting from the weights of {} (--init-from), with a fresh optimizer.",
                    path.display()
                ));
                params
            }
            None => step.layout.initial_values(cfg.seed),
        };
        step.load_params(ctx, &params);
        return Ok(Start {
            first_epoch: 1,
            best: None,
            csv: MetricsCsv::create(cfg.out.join("metrics.csv"))?,
            callbacks: CallbackState::new(cfg.lr),
            position: None,
        });
    };
    let epoch = r.epoch;
    step.load_params(ctx, &r.params);
    step.load_optimizer(ctx, r.state.adam_t, cfg.lr, &r.state.m, &r.state.v);
    let callbacks = r
        .state
        .callbacks
        .unwrap_or_else(|| CallbackState::new(cfg.lr));
    let csv = MetricsCsv::resume(cfg.out.join("metrics.csv"), epoch)?;
    match &r.state.position {
        Some(p) => log(&format!(
            "Resuming from {} (inside epoch {}, after its step {}).",
            r.path.display(),
            p.epoch,
            p.step
        )),
        None => log(&format!(
            "Resuming from {} (epoch {epoch}).",
            r.path.display()
        )),
    }
    if epoch >= cfg.epochs {
        log(&format!(
            "{} already holds {epoch} epochs, --epochs is {}: nothing to train. Raise \
             --epochs to train further.",
            cfg.out.display(),
            cfg.epochs
        ));
    }
    if epoch < cfg.epochs && cfg.callbacks.stopped(&callbacks) {
        log(&format!(
            "Early stopping ended this run after epoch {epoch} ({} had not improved for {} \
             epoch(s)): nothing to train. Raise --early-stopping-patience, or leave it out, to \
             train further.",
            cfg.callbacks.monitor.name(),
            callbacks.early_wait
        ));
    }
    Ok(Start {
        first_epoch: epoch + 1,
        best: r.state.best_val_accuracy,
        csv,
        callbacks,
        position: r.state.position,
    })
}

/// The parameters of `--init-from`'s checkpoint, checked against this run's model.
fn init_from(path: &Path, step: &TrainStep, model_cfg: &ModelConfig) -> anyhow::Result<Vec<f32>> {
    if !path.is_file() {
        crate::bail_input!(
            "--init-from {}: no such file; give a .safetensors checkpoint written by gpucnn \
             (a run's best.safetensors or save_at_N.safetensors)",
            path.display()
        );
    }
    let ck = load_checkpoint(path, &step.layout)
        .with_context(|| format!("--init-from {}", path.display()))?;
    if let Some(saved) = &ck.model {
        saved
            .ensure_matches(path, model_cfg)
            .with_context(|| format!("--init-from {}", path.display()))?;
    }
    Ok(ck.params)
}

/// Data-parallel runs: rank 0's start (its first epoch, best validation accuracy so far,
/// parameters and Adam state, fresh or resumed) on every rank. One process: returns its own.
pub fn share_start(
    ctx: &GpuContext,
    comm: &dyn Collective,
    step: &TrainStep,
    lr: f32,
    first_epoch: usize,
    best: Option<f32>,
    callbacks: &mut CallbackState,
) -> anyhow::Result<(usize, Option<f32>)> {
    if comm.size() == 1 {
        return Ok((first_epoch, best));
    }
    let mut state = serde_json::to_vec(callbacks).expect("a callback state always serializes");
    comm.broadcast(0, &mut state);
    *callbacks = serde_json::from_slice(&state).context("rank 0's callback state")?;
    let mut bytes = Vec::new();
    if comm.rank() == 0 {
        let params = step.read_params(ctx)?;
        let (t, m, v) = step.read_optimizer(ctx)?;
        bytes.extend_from_slice(&(first_epoch as u64).to_le_bytes());
        bytes.extend_from_slice(&best.unwrap_or(f32::NAN).to_le_bytes());
        bytes.extend_from_slice(&t.to_le_bytes());
        for x in [&params, &m, &v] {
            bytes.extend_from_slice(bytemuck::cast_slice(x));
        }
    }
    comm.broadcast(0, &mut bytes);
    let (head, rest) = bytes.split_at(16);
    let first_epoch = u64::from_le_bytes(head[..8].try_into().expect("8 bytes")) as usize;
    let best = f32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    let t = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
    if comm.rank() != 0 {
        let floats: Vec<f32> = rest
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let (total, trainable) = (step.layout.total_len, step.layout.trainable_len);
        anyhow::ensure!(
            floats.len() == total + 2 * trainable,
            "rank 0 sent {} values for a model of {total} parameters",
            floats.len()
        );
        let (params, mv) = floats.split_at(total);
        let (m, v) = mv.split_at(trainable);
        step.load_params(ctx, params);
        step.load_optimizer(ctx, t, lr, m, v);
    }
    Ok((first_epoch, (!best.is_nan()).then_some(best)))
}

/// Refuses a run whose outputs cannot fit the free space of `--out`'s file system: a checkpoint
/// per remaining epoch, best.safetensors (twice, old and new, during its replacement), the small
/// files, and the loader's disk cache when the images do not fit its memory budget.
pub fn check_free_space(
    cfg: &FitConfig,
    step: &TrainStep,
    data: &Data,
    first_epoch: usize,
) -> anyhow::Result<()> {
    let epochs = (cfg.epochs + 1).saturating_sub(first_epoch) as u64;
    if epochs == 0 {
        return Ok(());
    }
    let checkpoint = checkpoint_size_bound(&step.layout, true);
    let record = (cfg.image_size.pixels() * cfg.color_mode.channels()) as u64;
    let cache: u64 = [data.train.len(), data.val.len()]
        .iter()
        .map(|&n| record * n as u64)
        .filter(|&b| b > MEMORY_CACHE_BUDGET)
        .sum();
    let small = 4 << 20; // metrics.csv, curves.png, model.json, run.json and their temporaries
    let needed = epochs
        .saturating_mul(checkpoint)
        .saturating_add(2 * checkpoint_size_bound(&step.layout, false))
        .saturating_add(small)
        .saturating_add(cache);
    let free = match run_folder::free_space(&cfg.out) {
        Ok(Some(f)) => f,
        // Unknown (another platform, or statvfs failed): write failures still stop the run
        // cleanly, naming the file.
        _ => return Ok(()),
    };
    if needed > free {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let cache_note = if cache > 0 {
            format!(
                ", and {:.1} MiB of decoded images cached on disk",
                mib(cache)
            )
        } else {
            String::new()
        };
        anyhow::bail!(
            "not enough free disk space for this run in {} (--out): it will write about {:.1} MiB \
             ({epochs} checkpoint(s) of up to {:.2} MiB, one per epoch, and best.safetensors{cache_note}) \
             and {:.1} MiB are free. Free disk space, pick an --out on a larger disk, or lower \
             --epochs",
            cfg.out.display(),
            mib(needed),
            mib(checkpoint),
            mib(free)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augment_label_keeps_the_old_spelling_and_appends_the_new_settings() {
        // Labels of run.json files written before zoom, translation, fill and crop existed.
        assert_eq!(
            augment_label(&Some(AugmentConfig::KERAS)),
            "flip,rotate 0.1"
        );
        assert_eq!(augment_label(&None), "none");
        let flip = AugmentConfig {
            rotate: false,
            ..AugmentConfig::KERAS
        };
        assert_eq!(augment_label(&Some(flip)), "flip");
        // A fill mode is recorded only where something is resampled.
        let flip_wrap = AugmentConfig {
            fill_mode: FillMode::Wrap,
            ..flip
        };
        assert_eq!(augment_label(&Some(flip_wrap)), "flip");
        let all = AugmentConfig {
            zoom: Some(0.2),
            translate: Some(0.1),
            fill_mode: FillMode::Constant,
            fill_value: 12.5,
            crop: Some(crate::cpu::augment::Crop {
                height: 12,
                width: 10,
                from: (16, 16),
            }),
            ..AugmentConfig::KERAS
        };
        assert_eq!(
            augment_label(&Some(all)),
            "crop 12x10,flip,rotate 0.1,zoom 0.2,translate 0.1,fill constant 12.5"
        );
        let nearest = AugmentConfig {
            fill_mode: FillMode::Nearest,
            ..AugmentConfig::KERAS
        };
        assert_eq!(
            augment_label(&Some(nearest)),
            "flip,rotate 0.1,fill nearest"
        );
    }
}
