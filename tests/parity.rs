//! GPU-vs-CPU parity of every op and pass, at every shape class and kernel variant: one test
//! per family of `kernels::registry::FAMILIES`, so `cargo test --test parity gemm` runs one
//! family and libtest runs the families in parallel.
//! In CI (CI=true) a missing adapter fails these tests; elsewhere they are skipped loudly.

use gpucnn::gpu::test_context;
use gpucnn::harness::run_check;
use gpucnn::kernels::registry::{FAMILIES, family};

/// Runs every check of the registered family `name`.
fn parity(name: &str) {
    let family = family(name).unwrap_or_else(|| panic!("no kernel family '{name}' registered"));
    let Some(ctx) = test_context() else { return };
    let checks = (family.checks)(&ctx);
    assert!(!checks.is_empty(), "family '{name}' has no parity checks");
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

/// One `#[test]` per family (libtest needs them named at compile time);
/// `every_registered_family_has_a_test` keeps this list equal to the registry.
macro_rules! family_tests {
    ($($name:ident),* $(,)?) => {
        const TESTED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                parity(stringify!($name));
            }
        )*
    };
}

family_tests!(
    conv2d,
    depthwise_conv2d,
    pointwise_conv2d,
    dense,
    gemm,
    batch_norm,
    relu,
    rescale,
    pool,
    elementwise,
    loss,
    adam,
    augment,
    augment_color,
);

#[test]
fn every_registered_family_has_a_test() {
    let registered: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(
        TESTED, registered,
        "family_tests! must list kernels::registry::FAMILIES"
    );
}
