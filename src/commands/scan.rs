//! `gpucnn scan`: list (and optionally delete) the files of a dataset that cannot be used
//! ([`crate::data::scan_folder`]).

use std::path::PathBuf;
use std::process::ExitCode;

use super::output::out;

/// The flags of `gpucnn scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Folder with one subfolder of images per class.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Delete the bad files (the example's "remove corrupted images" step).
    #[arg(long)]
    pub delete: bool,
    /// Apply the Keras example's own filter instead of decoding: a file is bad when its
    /// first 10 bytes lack `JFIF` (PNGs and EXIF-only JPEGs included). With --delete this
    /// reproduces the example's file set, and so its split, exactly.
    #[arg(long)]
    pub keras_jfif_filter: bool,
}

/// Runs `gpucnn scan` and prints its report. No GPU is needed.
pub fn run(a: &ScanArgs) -> anyhow::Result<ExitCode> {
    let report = crate::data::scan_folder(&a.data, a.delete, a.keras_jfif_filter)?;
    out!("{report}");
    Ok(ExitCode::SUCCESS)
}
