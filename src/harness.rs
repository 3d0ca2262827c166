//! The parity harness: GPU-vs-CPU checks, the machinery behind `gpucnn selftest` and
//! `tests/parity.rs`.
//!
//! Every kernel family contributes `checks::all(ctx) -> Vec<Check>`: one [`Check`] per
//! (op, pass, variant, shape). A check runs the GPU kernel on seeded random data, runs the
//! `cpu::` reference (f64) on the same data and returns the outputs side by side as
//! [`Compared`] values; [`run_check`] turns them into a [`CheckResult`] row.
//!
//! A leaf: it imports only std, serde (with the `serde` feature), rand and [`crate::gpu`], never a kernel, so every kernel
//! family (and the graph's whole-step checks) can use it without an import cycle.

use std::time::Instant;

use crate::gpu::{GpuContext, GpuError};

/// Shape classes every op is checked at (DESIGN.md convention 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum ShapeClass {
    /// A few elements: easy to debug.
    Tiny,
    /// Sizes that are no multiple of any workgroup or tile size (C=5, H=W=7, stride 2).
    Odd,
    /// Many workgroups; split-K and multi-tile paths.
    Large,
}

/// One GPU output and its CPU reference, with the tolerance `|gpu − cpu| ≤ atol + rtol·|cpu|`.
pub struct Compared {
    pub name: &'static str,
    pub gpu: Vec<f32>,
    pub cpu: Vec<f64>,
    pub atol: f64,
    pub rtol: f64,
}

impl Compared {
    pub fn new(name: &'static str, gpu: Vec<f32>, cpu: Vec<f64>, atol: f64, rtol: f64) -> Self {
        Self {
            name,
            gpu,
            cpu,
            atol,
            rtol,
        }
    }
}

type CheckFn = dyn Fn(&GpuContext) -> Result<Vec<Compared>, GpuError> + Send + Sync;

/// One parity check: an (op, pass, variant, shape) and the closure that runs it.
pub struct Check {
    pub op: &'static str,
    pub pass: &'static str,
    /// Kernel variant ("" when the op has one).
    pub variant: &'static str,
    pub class: ShapeClass,
    /// Human-readable shape, e.g. "N2 H7 W7 C5→3 k3 s2 same".
    pub shape: String,
    pub run: Box<CheckFn>,
}

impl Check {
    pub fn new(
        op: &'static str,
        pass: &'static str,
        variant: &'static str,
        class: ShapeClass,
        shape: impl Into<String>,
        run: impl Fn(&GpuContext) -> Result<Vec<Compared>, GpuError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            op,
            pass,
            variant,
            class,
            shape: shape.into(),
            run: Box::new(run),
        }
    }
}

/// One row of `gpucnn selftest`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CheckResult {
    pub op: String,
    pub pass: String,
    pub variant: String,
    pub class: ShapeClass,
    pub shape: String,
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    pub ok: bool,
    pub seconds: f64,
    /// Empty when ok; otherwise the worst elements or the error.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "String::is_empty"))]
    pub detail: String,
}

impl CheckResult {
    /// "op pass [variant] shape" for messages.
    pub fn title(&self) -> String {
        let v = if self.variant.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.variant)
        };
        format!("{} {}{} ({})", self.op, self.pass, v, self.shape)
    }
}

/// Runs one check and compares every output. Never panics on a mismatch: it reports it.
pub fn run_check(ctx: &GpuContext, check: &Check) -> CheckResult {
    let t = Instant::now();
    let outcome = (check.run)(ctx);
    judge(check, &outcome, t.elapsed().as_secs_f64())
}

/// The row of `check` given what its closure returned and how long it took (the comparison of
/// [`run_check`], for callers that run the closure themselves).
pub fn judge(
    check: &Check,
    outcome: &Result<Vec<Compared>, GpuError>,
    seconds: f64,
) -> CheckResult {
    let mut res = CheckResult {
        op: check.op.to_string(),
        pass: check.pass.to_string(),
        variant: check.variant.to_string(),
        class: check.class,
        shape: check.shape.clone(),
        max_abs_err: 0.0,
        max_rel_err: 0.0,
        ok: true,
        seconds,
        detail: String::new(),
    };
    match outcome {
        Err(e) => {
            res.ok = false;
            res.max_abs_err = f64::INFINITY;
            res.max_rel_err = f64::INFINITY;
            res.detail = format!("GPU error: {e}");
        }
        Ok(outputs) => {
            if outputs.is_empty() {
                res.ok = false;
                res.detail = "check produced no outputs".into();
            }
            for c in outputs {
                let s = compare(c);
                res.max_abs_err = res.max_abs_err.max(s.max_abs);
                res.max_rel_err = res.max_rel_err.max(s.max_rel);
                if !s.ok {
                    res.ok = false;
                    res.detail.push_str(&s.report);
                }
            }
        }
    }
    res
}

/// Error statistics of one compared output.
pub struct Stats {
    pub max_abs: f64,
    pub max_rel: f64,
    pub ok: bool,
    pub report: String,
}

/// Compares `c.gpu` with `c.cpu` element by element.
///
/// `max_rel` is taken over elements with `|cpu| > atol` only (elsewhere a relative error means
/// nothing); a length mismatch, or a NaN or infinity on either side (the reference included),
/// fails, unless both sides hold the same infinity.
pub fn compare(c: &Compared) -> Stats {
    let mut max_abs = 0.0f64;
    let mut max_rel = 0.0f64;
    let mut bad: Vec<(usize, f64, f64, f64)> = Vec::new();
    if c.gpu.len() != c.cpu.len() {
        return Stats {
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            ok: false,
            report: format!(
                "{}: length {} on the GPU, {} on the CPU; ",
                c.name,
                c.gpu.len(),
                c.cpu.len()
            ),
        };
    }
    for (i, (&g, &r)) in c.gpu.iter().zip(&c.cpu).enumerate() {
        let g = g as f64;
        let same_infinity = g.is_infinite() && g == r;
        let err = if same_infinity {
            0.0
        } else if g.is_finite() && r.is_finite() {
            (g - r).abs()
        } else {
            f64::INFINITY
        };
        max_abs = max_abs.max(err);
        if r.is_finite() && r.abs() > c.atol {
            max_rel = max_rel.max(err / r.abs());
        }
        let within =
            same_infinity || (g.is_finite() && r.is_finite() && err <= c.atol + c.rtol * r.abs());
        if !within {
            bad.push((i, g, r, err));
        }
    }
    let ok = bad.is_empty();
    let mut report = String::new();
    if !ok {
        let count = bad.len();
        bad.sort_by(|a, b| b.3.total_cmp(&a.3));
        report = format!(
            "{}: {count} of {} elements outside atol {:e} + rtol {:e}·|cpu|; worst: ",
            c.name,
            c.gpu.len(),
            c.atol,
            c.rtol
        );
        for (i, g, r, e) in bad.iter().take(5) {
            report.push_str(&format!("[{i}] gpu {g:.6e} cpu {r:.6e} (err {e:.2e}); "));
        }
    }
    Stats {
        max_abs,
        max_rel,
        ok,
        report,
    }
}

/// Seeded uniform values in [lo, hi) as f32, for test inputs.
pub fn random_vec(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// Widens GPU inputs for the f64 CPU reference.
pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(gpu: Vec<f32>, cpu: Vec<f64>) -> bool {
        compare(&Compared::new("x", gpu, cpu, 1e-6, 1e-4)).ok
    }

    #[test]
    fn a_nan_or_infinity_on_either_side_fails() {
        assert!(ok(vec![1.0, 2.0], vec![1.0, 2.0]));
        assert!(
            !ok(vec![1.0, 2.0], vec![1.0, f64::NAN]),
            "NaN in the reference"
        );
        assert!(!ok(vec![1.0, f32::NAN], vec![1.0, 2.0]), "NaN on the GPU");
        assert!(!ok(vec![f32::NAN], vec![f64::NAN]), "NaN on both sides");
        assert!(!ok(vec![1.0], vec![f64::INFINITY]), "infinite reference");
        assert!(!ok(vec![f32::INFINITY], vec![f64::NEG_INFINITY]));
        assert!(
            ok(vec![f32::INFINITY], vec![f64::INFINITY]),
            "the same infinity"
        );
        assert!(!ok(vec![1.0], vec![1.1]));
        assert!(!ok(vec![1.0], vec![1.0, 1.0]), "length mismatch");
    }
}
