//! `gpucnn inspect`: a report on a dataset before training ([`crate::data::inspect`]), on the
//! split the trainer would draw: the dataset is opened by the trainer's own
//! [`crate::train::setup::load_data`] with the same flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::output::{out, outln};
use crate::data::decode::{ResizeOptions, decode_rgb8, resize_rgb8};
use crate::data::inspect::{
    DEFAULT_NEAR_THRESHOLD, DuplicateCounts, DuplicateGroup, InspectInput, InspectOptions,
    InspectReport, MIN_HASH_SIDE, inspect,
};
use crate::plot::grid::write_grid_png;
use crate::plot::histogram::{ClassBar, write_histogram_png};
use crate::train::fit::FitConfig;
use crate::train::setup::load_data;

/// The flags of `gpucnn inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Folder with one subfolder of images per class, as for `train`; with --labels, the folder
    /// the CSV's image paths are relative to (default: the CSV's folder).
    #[arg(long, value_name = "DIR", required_unless_present = "labels")]
    pub data: Option<PathBuf>,
    /// A multi-label CSV (`path,label1;label2` rows), as for `train --labels`.
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// Fraction of --data held out for validation, as for `train` [default: 0.2]. Not with
    /// --val-data.
    #[arg(long, value_name = "FRACTION")]
    pub validation_split: Option<f32>,
    /// A separate validation folder, as for `train`.
    #[arg(long, value_name = "DIR", conflicts_with = "labels")]
    pub val_data: Option<PathBuf>,
    /// Only these class subfolders, in this order, as for `train`.
    #[arg(long, value_name = "A,B,...", conflicts_with = "labels")]
    pub class_names: Option<String>,
    /// Seed of the split, as for `train` (the same seed gives the same split).
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Near-duplicates: two distinct files whose 64-bit perceptual (difference) hashes differ
    /// in at most D bits. 0 finds only pictures whose hashes agree exactly; a resize, a
    /// re-encode at another quality or a brightness change stays within a few bits; unrelated
    /// pictures differ in about 32 (less when both have large flat areas).
    #[arg(long, value_name = "D", default_value_t = DEFAULT_NEAR_THRESHOLD)]
    pub near_threshold: u32,
    /// Print the report as one JSON document (for scripts) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write report.json, classes.png (images per class) and, when there are
    /// duplicates, duplicates.png (the worst duplicate groups, one per row) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `gpucnn inspect`. No GPU is needed.
pub fn run(a: &InspectArgs) -> anyhow::Result<ExitCode> {
    let cfg = fit_config(a)?;
    crate::ensure_input!(
        a.near_threshold <= 64,
        "--near-threshold {} is over 64, the bits of a perceptual hash: pass 0 to 64 (default \
         {DEFAULT_NEAR_THRESHOLD})",
        a.near_threshold
    );
    if let Some(out) = a.out.as_ref().filter(|o| o.exists() && !o.is_dir()) {
        crate::bail_input!(
            "--out {} is a file; give a folder for report.json and the pictures",
            out.display()
        );
    }
    let data = load_data(&cfg, &mut |line| {
        use std::io::Write as _;
        // As crate::msgln!: a closed stderr drops the line instead of panicking.
        let _ = write!(std::io::stderr(), "{}", with_newline(line));
    })?;
    let input = InspectInput {
        class_names: &data.class_names,
        train: &data.train,
        val: &data.val,
        targets: data.table.as_ref().map(|t| t.targets.as_slice()),
    };
    let bar = progress_bar((data.train.len() + data.val.len()) as u64);
    let options = InspectOptions {
        near_threshold: a.near_threshold,
        ..InspectOptions::default()
    };
    let report = inspect(&input, &options, &|| bar.inc(1));
    bar.finish_and_clear();
    if let Some(dir) = &a.out {
        write_outputs(dir, &report)?;
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", render_text(&report, &roots(&cfg)));
    }
    Ok(ExitCode::SUCCESS)
}

fn with_newline(line: &str) -> String {
    if line.ends_with('\n') {
        line.to_string()
    } else {
        format!("{line}\n")
    }
}

/// The split `train` would draw from the same flags (only the fields `load_data` reads).
fn fit_config(a: &InspectArgs) -> anyhow::Result<FitConfig> {
    let data = match (&a.data, &a.labels) {
        (Some(d), _) => d.clone(),
        (None, Some(csv)) => csv.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        (None, None) => crate::bail_input!("--data is required (or --labels)"),
    };
    if let (Some(split), Some(val)) = (a.validation_split, &a.val_data) {
        crate::bail_input!(
            "--validation-split {split} and --val-data {}: with a separate validation folder \
             nothing of --data is held out; pass one of them",
            val.display()
        );
    }
    Ok(FitConfig {
        labels: a.labels.clone(),
        val_data: a.val_data.clone(),
        class_names: match &a.class_names {
            Some(list) => Some(crate::data::ClassSelection::parse(list)?.names().to_vec()),
            None => None,
        },
        validation_split: a
            .validation_split
            .unwrap_or(super::train::DEFAULT_VALIDATION_SPLIT),
        seed: a.seed,
        ..FitConfig::new(data)
    })
}

/// A progress bar on stderr when it is a terminal, else nothing (as the other commands).
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "Reading {pos}/{len} images [{bar:30}] {per_sec} {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The folders paths are shown relative to.
fn roots(cfg: &FitConfig) -> Vec<PathBuf> {
    let mut r = vec![cfg.data.clone()];
    r.extend(cfg.val_data.clone());
    r
}

/// `path` relative to the first of `roots` it lies in (as given otherwise).
fn shown(path: &Path, roots: &[PathBuf]) -> String {
    roots
        .iter()
        .find_map(|r| path.strip_prefix(r).ok())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Groups listed in full in the table (all are in --json and report.json).
const LISTED_GROUPS: usize = 10;
/// Unreadable files listed in the table.
const LISTED_UNREADABLE: usize = 20;

/// The human report: at most 100 columns but for long paths.
pub fn render_text(r: &InspectReport, roots: &[PathBuf]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} files: {} readable ({} training, {} validation), {} unreadable",
        r.files,
        r.readable,
        r.readable_train,
        r.readable_validation,
        r.unreadable.len()
    );
    let _ = writeln!(s);
    let width = r
        .classes
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(5, 40);
    let _ = writeln!(
        s,
        "{:<width$}  {:>8}  {:>10}  {:>8}",
        "class", "train", "validation", "total"
    );
    for c in &r.classes {
        let name: String = c.name.chars().take(width).collect();
        let _ = writeln!(
            s,
            "{name:<width$}  {:>8}  {:>10}  {:>8}",
            c.train, c.validation, c.total
        );
    }
    match r.imbalance_ratio {
        Some(x) => {
            let _ = writeln!(s, "Imbalance (largest class / smallest): {x:.2}");
        }
        None => {
            let _ = writeln!(s, "Imbalance: a class has no readable image");
        }
    }
    let _ = writeln!(s);
    let e = &r.exact_counts;
    let _ = writeln!(
        s,
        "Exact duplicates (same file bytes): {} group(s), {} extra cop(ies)",
        e.groups, e.extra_copies
    );
    if e.groups > 0 {
        kinds_text(&mut s, e);
        if e.across_split > 0 {
            let _ = writeln!(
                s,
                "  warning: validation images that are also training images inflate val_accuracy"
            );
        }
        groups_text(&mut s, &r.exact_duplicates, roots);
    }
    let _ = writeln!(s);
    let n = &r.near_counts;
    let _ = writeln!(
        s,
        "Near-duplicates (perceptual hashes within {} bits): {} group(s)",
        r.near_threshold, n.groups
    );
    if r.too_small_to_hash > 0 {
        let _ = writeln!(
            s,
            "  not searched: {} image(s) under {MIN_HASH_SIDE} px a side (too small for a \
             perceptual hash)",
            r.too_small_to_hash
        );
    }
    if n.groups > 0 {
        kinds_text(&mut s, n);
        groups_text(&mut s, &r.near_duplicates, roots);
    }
    let _ = writeln!(s);
    let z = &r.sizes;
    if r.readable > 0 {
        let _ = writeln!(
            s,
            "Sizes: width {}-{} (median {}), height {}-{} (median {}), {} distinct",
            z.width_min,
            z.width_max,
            z.width_median,
            z.height_min,
            z.height_max,
            z.height_median,
            z.distinct
        );
        let common: Vec<String> = z
            .most_common
            .iter()
            .take(5)
            .map(|t| format!("{} ({})", t.value, t.count))
            .collect();
        let _ = writeln!(s, "  most common: {}", common.join(", "));
        let aspects: Vec<String> = r
            .aspect_ratios
            .iter()
            .filter(|t| t.count > 0)
            .map(|t| format!("{} ({})", t.value, t.count))
            .collect();
        let _ = writeln!(s, "Aspect ratios (width/height): {}", aspects.join(", "));
        let tallies = |v: &[crate::data::inspect::Tally]| {
            v.iter()
                .map(|t| format!("{} ({})", t.value, t.count))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "Colour modes: {}", tallies(&r.color_modes));
        let _ = writeln!(s, "Formats: {}", tallies(&r.formats));
    }
    if !r.unreadable.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Unreadable files ({}), left out by train:",
            r.unreadable.len()
        );
        for u in r.unreadable.iter().take(LISTED_UNREADABLE) {
            let _ = writeln!(s, "  {}", u.reason);
        }
        if r.unreadable.len() > LISTED_UNREADABLE {
            let _ = writeln!(
                s,
                "  … and {} more (--json lists them all)",
                r.unreadable.len() - LISTED_UNREADABLE
            );
        }
    }
    s
}

/// Files listed per group in the text report (`--json` lists them all).
const LISTED_FILES: usize = 8;

/// The line counting duplicate groups by kind.
fn kinds_text(s: &mut String, c: &DuplicateCounts) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "  within a class: {}, across classes: {}, across train/validation: {}",
        c.within_class, c.across_classes, c.across_split
    );
}

fn groups_text(s: &mut String, groups: &[DuplicateGroup], roots: &[PathBuf]) {
    use std::fmt::Write as _;
    for (i, g) in groups.iter().take(LISTED_GROUPS).enumerate() {
        let distance = g
            .max_distance
            .map_or(String::new(), |d| format!(", distance {d}"));
        let _ = writeln!(
            s,
            "  #{} {} file(s), {}{distance}:",
            i + 1,
            g.files.len(),
            g.kind()
        );
        for f in g.files.iter().take(LISTED_FILES) {
            let _ = writeln!(
                s,
                "    {:<10}  {:<16}  {}",
                f.split.name(),
                f.class,
                shown(&f.path, roots)
            );
        }
        if g.files.len() > LISTED_FILES {
            let _ = writeln!(
                s,
                "    … and {} more file(s) in this group",
                g.files.len() - LISTED_FILES
            );
        }
    }
    if groups.len() > LISTED_GROUPS {
        let _ = writeln!(
            s,
            "  … and {} more group(s) (--json lists them all)",
            groups.len() - LISTED_GROUPS
        );
    }
}

/// Cell size of duplicates.png's images (decoded again: nine files at most).
const TILE: usize = 160;

/// report.json, classes.png and duplicates.png into `dir` (created), each written atomically.
fn write_outputs(dir: &Path, report: &InspectReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {} (--out)", dir.display()))?;
    let json = serde_json::to_vec_pretty(report)?;
    let path = dir.join("report.json");
    crate::atomic::write_atomic(&path, &json)?;
    crate::msgln!("Wrote {}", path.display());

    let bars: Vec<ClassBar> = report
        .classes
        .iter()
        .map(|c| ClassBar {
            name: c.name.clone(),
            train: c.train,
            validation: c.validation,
        })
        .collect();
    let title = match report.imbalance_ratio {
        Some(x) => format!("images per class (largest / smallest: {x:.2})"),
        None => "images per class".to_string(),
    };
    let path = dir.join("classes.png");
    write_histogram_png(&path, &bars, &title)?;
    crate::msgln!("Wrote {}", path.display());

    let worst = worst_tiles(report);
    let path = dir.join("duplicates.png");
    if worst.is_empty() {
        // A picture from an earlier inspect of other data would describe duplicates no longer
        // there.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        return Ok(());
    }
    write_grid_png(&path, &worst, TILE, TILE)?;
    crate::msgln!("Wrote {}", path.display());
    Ok(())
}

/// The three worst duplicate groups (exact before near), one per row of the 3×3 grid, up to
/// three files each, titled `#group exact|near: class, split`; empty cells are white.
fn worst_tiles(report: &InspectReport) -> Vec<(Vec<f32>, String)> {
    let groups = report
        .exact_duplicates
        .iter()
        .map(|g| ("exact", g))
        .chain(report.near_duplicates.iter().map(|g| ("near", g)))
        .take(3);
    let blank = || (vec![255.0; TILE * TILE * 3], String::new());
    let resize = ResizeOptions {
        height: TILE,
        width: TILE,
        crop_to_aspect_ratio: true,
        color_mode: crate::data::ColorMode::Rgb,
    };
    let mut tiles = Vec::new();
    for (i, (kind, g)) in groups.enumerate() {
        for k in 0..3 {
            tiles.push(match g.files.get(k) {
                Some(f) => match decode_rgb8(&f.path) {
                    Ok(img) => (
                        resize_rgb8(&img, &resize),
                        format!("#{} {kind}: {}, {}", i + 1, f.class, f.split.name()),
                    ),
                    Err(_) => blank(),
                },
                None => blank(),
            });
        }
    }
    tiles
}
