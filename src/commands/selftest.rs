//! `gpucnn selftest`: every kernel against the CPU reference on this GPU
//! ([`crate::selftest`]), one row per check, as a table or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use super::output::outln;
use super::{open_gpu, success_unless};
use crate::gpu::{AdapterOptions, GpuContext};
use crate::harness::{Check, CheckResult, ShapeClass, run_check};
use crate::selftest::all_checks;

/// The flags of `gpucnn selftest`.
#[derive(Debug, clap::Args)]
pub struct SelftestArgs {
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Only ops whose name contains this (e.g. `conv2d`, `batch_norm`).
    #[arg(long, value_name = "NAME")]
    pub op: Option<String>,
    /// Only this shape class (repeat the flag for several).
    #[arg(long, value_enum)]
    pub class: Vec<ClassArg>,
    /// Also write the test vectors of the kernel checks into this folder, for replay in
    /// another WebGPU engine (scripts/dawn-check.sh replays them in Dawn). The whole-step
    /// checks are not run in this mode.
    #[arg(long, value_name = "DIR")]
    pub export_vectors: Option<PathBuf>,
}

/// `--class`: the shape classes of [`ShapeClass`], as the command line spells them.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[allow(missing_docs)] // a doc comment here would become each value's help text in `--help`
pub enum ClassArg {
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

/// The checks of `all` that --op and --class select; none is bad input, naming every op.
fn select(all: Vec<Check>, op: Option<&str>, classes: &[ShapeClass]) -> anyhow::Result<Vec<Check>> {
    // Each op once, in the order the checks run (the elementwise family interleaves its ops).
    let mut ops: Vec<&str> = Vec::new();
    for c in &all {
        if !ops.contains(&c.op) {
            ops.push(c.op);
        }
    }
    let ops = ops.join(", ");
    let checks: Vec<_> = all
        .into_iter()
        .filter(|c| op.is_none_or(|o| c.op.contains(o)))
        .filter(|c| classes.is_empty() || classes.contains(&c.class))
        .collect();
    anyhow::ensure!(
        !checks.is_empty(),
        crate::error::BadInput(format!(
            "no selftest check matches --op '{}'{}; the ops are: {ops}",
            op.unwrap_or_default(),
            if !classes.is_empty() {
                " with that --class"
            } else {
                ""
            }
        ))
    );
    Ok(checks)
}

/// Runs `gpucnn selftest`: exit status 0 only if every selected check passed.
pub fn run(a: &SelftestArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &a.export_vectors
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        crate::bail_input!(
            "--export-vectors '{}': cannot create that folder ({e}); name a folder gpucnn may write",
            dir.display()
        );
    }
    let ctx = open_gpu(adapter)?;
    let classes: Vec<ShapeClass> = a.class.iter().map(|&c| c.into()).collect();
    let all = if a.export_vectors.is_some() {
        // The kernel checks only: the whole-step checks copy buffers outside any dispatch.
        crate::kernels::registry::FAMILIES
            .iter()
            .flat_map(|f| (f.checks)(&ctx))
            .collect()
    } else {
        all_checks(&ctx)
    };
    let checks = select(all, a.op.as_deref(), &classes)?;
    if !a.json {
        outln!("adapter: {}", ctx.summary());
        outln!("kernel variants: {}", crate::kernels::variant_report(&ctx));
        outln!(
            "{:<18} {:<22} {:<10} {:<40} {:>11} {:>11} {:>7}  ok",
            "op",
            "pass",
            "variant",
            "shape",
            "max_abs_err",
            "max_rel_err",
            "secs"
        );
    }
    let print_row = |r: &CheckResult| -> anyhow::Result<()> {
        if !a.json {
            outln!(
                "{:<18} {:<22} {:<10} {:<40} {:>11.3e} {:>11.3e} {:>7.2}  {}",
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
        Ok(())
    };
    let results: Vec<CheckResult> = match &a.export_vectors {
        None => checks
            .iter()
            .map(|c| {
                let r = run_check(&ctx, c);
                print_row(&r)?;
                Ok(r)
            })
            .collect::<anyhow::Result<_>>()?,
        Some(dir) => {
            let mut print_err = None;
            let on_row = |r: &CheckResult| {
                if print_err.is_none() {
                    print_err = print_row(r).err();
                }
            };
            let export = crate::vectors::export(&ctx, &checks, dir, on_row).map_err(|e| {
                anyhow::anyhow!(
                    "writing test vectors into --export-vectors '{}' failed: {e}",
                    dir.display()
                )
            })?;
            if let Some(e) = print_err {
                return Err(e);
            }
            let m = &export.manifest;
            crate::msgln!(
                "vectors: {} checks of {} shaders written to {} ({} not exported)",
                m.checks.len(),
                m.shaders.len(),
                dir.join("manifest.json").display(),
                m.skipped.len()
            );
            for s in &m.skipped {
                crate::msgln!("  not exported: {}: {}", s.title, s.why);
            }
            export.results
        }
    };
    let failed = results.iter().filter(|r| !r.ok).count();
    if a.json {
        print_json(&ctx, &results)?;
    } else {
        outln!("{} passed, {} failed", results.len() - failed, failed);
    }
    Ok(success_unless(failed))
}

/// The `--json` object: the adapter, the kernel variants and every check's result.
fn print_json(ctx: &GpuContext, results: &[CheckResult]) -> anyhow::Result<()> {
    let summary = ctx.summary();
    let out = serde_json::json!({
        "adapter": {
            "name": summary.name,
            "backend": summary.backend,
            "device_type": summary.device_type,
            "driver": summary.driver,
            "driver_info": summary.driver_info,
        },
        "variants": crate::kernels::variant_report(ctx),
        "results": results,
    });
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
