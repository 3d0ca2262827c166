//! `gpucnn selftest`: every kernel against the CPU reference on this GPU
//! ([`crate::selftest`]), one row per check, as a table or JSON.

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
    /// Only this shape class.
    #[arg(long, value_enum)]
    pub class: Option<ClassArg>,
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

/// The checks that --op and --class select; none is bad input, naming every op.
fn select(
    ctx: &GpuContext,
    op: Option<&str>,
    class: Option<ShapeClass>,
) -> anyhow::Result<Vec<Check>> {
    let all = all_checks(ctx);
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
        .filter(|c| class.is_none_or(|k| c.class == k))
        .collect();
    anyhow::ensure!(
        !checks.is_empty(),
        crate::error::BadInput(format!(
            "no selftest check matches --op '{}'{}; the ops are: {ops}",
            op.unwrap_or_default(),
            if class.is_some() {
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
    let ctx = open_gpu(adapter)?;
    let checks = select(&ctx, a.op.as_deref(), a.class.map(Into::into))?;
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
    let mut results: Vec<CheckResult> = Vec::with_capacity(checks.len());
    for c in &checks {
        let r = run_check(&ctx, c);
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
        results.push(r);
    }
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
