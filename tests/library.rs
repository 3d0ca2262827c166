//! The trainer's library API (`gpucnn::train::api`): an observer sees every step and epoch,
//! and failures come back typed.

mod common;

use gpucnn::train::api::{FitConfig, FitObserver, TrainErrorKind, train};
use gpucnn::train::metrics::EpochMetrics;

#[derive(Default)]
struct Seen {
    steps: Vec<(usize, usize, usize)>,
    epochs: Vec<EpochMetrics>,
    messages: Vec<String>,
}

impl FitObserver for Seen {
    fn message(&mut self, line: &str) {
        self.messages.push(line.into());
    }
    fn step(&mut self, epoch: usize, step: usize, steps: usize) {
        self.steps.push((epoch, step, steps));
    }
    fn epoch(&mut self, row: &EpochMetrics) {
        self.epochs.push(*row);
    }
}

#[test]
fn an_observer_sees_every_step_and_epoch_and_errors_are_typed() {
    let Some(ctx) = gpucnn::gpu::test_context() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::write_ab_images(&data, 10); // 16 training images, 4 validation
    let cfg = FitConfig {
        out: dir.path().join("run"),
        epochs: 2,
        batch_size: 4,
        image_size: gpucnn::model::ImageSize::square(16),
        width: 0.0625,
        ..FitConfig::new(&data)
    };
    let mut seen = Seen::default();
    let summary = train(&ctx, &cfg, &mut seen).unwrap();
    let expected: Vec<(usize, usize, usize)> = (1..=2)
        .flat_map(|e| (1..=4).map(move |s| (e, s, 4)))
        .collect();
    assert_eq!(seen.steps, expected);
    assert_eq!(seen.epochs, summary.epochs);
    assert!(seen.messages.iter().any(|m| m.starts_with("Epoch 2/2")));
    // A folder that is not there: bad input, the CLI's exit 2.
    let bad = FitConfig {
        out: dir.path().join("other"),
        ..FitConfig::new(dir.path().join("missing"))
    };
    let e = train(&ctx, &bad, &mut Seen::default()).unwrap_err();
    assert_eq!(e.kind(), TrainErrorKind::BadInput);
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("missing"), "{e}");
}
