//! GPU-vs-CPU parity of every op and pass, at every shape class and kernel variant.
//! In CI (CI=true) a missing adapter fails these tests; elsewhere they are skipped loudly.

use gpucnn::gpu::test_context;
use gpucnn::selftest::{all_checks, run_check};

fn parity(op: &str) {
    let Some(ctx) = test_context() else { return };
    let checks: Vec<_> = all_checks(&ctx)
        .into_iter()
        .filter(|c| c.op == op)
        .collect();
    assert!(
        !checks.is_empty(),
        "no parity checks registered for op '{op}'"
    );
    let mut failures = Vec::new();
    for c in &checks {
        let r = run_check(&ctx, c);
        eprintln!(
            "{:<60} max_abs {:.3e} max_rel {:.3e} {:.2}s {}",
            r.title(),
            r.max_abs_err,
            r.max_rel_err,
            r.seconds,
            if r.ok { "ok" } else { "FAIL" }
        );
        if !r.ok {
            failures.push(format!("{}: {}", r.title(), r.detail));
        }
    }
    assert!(
        failures.is_empty(),
        "parity failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn conv2d() {
    parity("conv2d");
}
#[test]
fn depthwise_conv2d() {
    parity("depthwise_conv2d");
}
#[test]
fn pointwise_conv2d() {
    parity("pointwise_conv2d");
}
#[test]
fn dense() {
    parity("dense");
}
#[test]
fn gemm() {
    parity("gemm");
}
#[test]
fn batch_norm() {
    parity("batch_norm");
}
#[test]
fn relu() {
    parity("relu");
}
#[test]
fn max_pool2d() {
    parity("max_pool2d");
}
#[test]
fn global_avg_pool2d() {
    parity("global_avg_pool2d");
}
#[test]
fn add() {
    parity("add");
}
#[test]
fn dropout() {
    parity("dropout");
}
#[test]
fn sigmoid_bce() {
    parity("sigmoid_bce");
}
#[test]
fn softmax_ce() {
    parity("softmax_ce");
}
#[test]
fn adam() {
    parity("adam");
}
#[test]
fn augment() {
    parity("augment");
}
#[test]
fn rescale() {
    parity("rescale");
}
