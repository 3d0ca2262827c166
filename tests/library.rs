//! The trainer's library API (`gpucnn::train::api`): an observer sees every step and epoch,
//! and failures come back typed.

mod common;

use gpucnn::predict::classify;
use gpucnn::train::api::{ErrorKind, FitConfig, FitObserver, Running, train};
use gpucnn::train::metrics::EpochMetrics;

#[derive(Default)]
struct Seen {
    steps: Vec<(usize, usize, usize)>,
    epochs: Vec<EpochMetrics>,
    messages: Vec<String>,
    /// Whether to ask for running snapshots, and those received.
    running: bool,
    snapshots: Vec<Running>,
    /// The order of the events, as "begin 1", "step 1", "trained 1", "epoch 1" (steps and
    /// snapshots collapsed).
    order: Vec<String>,
}

impl Seen {
    fn push(&mut self, what: String) {
        if self.order.last() != Some(&what) {
            self.order.push(what);
        }
    }
}

impl FitObserver for Seen {
    fn message(&mut self, line: &str) {
        self.messages.push(line.into());
    }
    fn epoch_begin(&mut self, epoch: usize, epochs: usize, steps: usize, done: usize) {
        self.push(format!("begin {epoch}/{epochs} {steps} from {done}"));
    }
    fn step(&mut self, epoch: usize, step: usize, steps: usize) {
        self.steps.push((epoch, step, steps));
        self.push(format!("step {epoch}"));
    }
    fn wants_running(&self) -> bool {
        self.running
    }
    fn running(&mut self, now: &Running) {
        self.snapshots.push(now.clone());
        self.push(format!("running {}", now.epoch));
    }
    fn epoch_trained(&mut self, epoch: usize) {
        self.push(format!("trained {epoch}"));
    }
    fn epoch(&mut self, row: &EpochMetrics) {
        self.epochs.push(*row);
        self.push(format!("epoch {}", row.epoch));
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
    let mut seen = Seen {
        running: true,
        ..Seen::default()
    };
    let summary = train(&ctx, &cfg, &mut seen).unwrap();
    let expected: Vec<(usize, usize, usize)> = (1..=2)
        .flat_map(|e| (1..=4).map(move |s| (e, s, 4)))
        .collect();
    assert_eq!(seen.steps, expected);
    assert_eq!(seen.epochs, summary.epochs);
    // Each epoch: begin, its steps (snapshots among them, at most twice a second), the exact
    // final snapshot, then the end of training and the epoch's row.
    let order: Vec<String> = seen
        .order
        .iter()
        .filter(|e| !e.starts_with("running") && !e.starts_with("step"))
        .cloned()
        .collect();
    assert_eq!(
        order,
        [
            "begin 1/2 4 from 0",
            "trained 1",
            "epoch 1",
            "begin 2/2 4 from 0",
            "trained 2",
            "epoch 2"
        ]
    );
    for row in &summary.epochs {
        let last = seen
            .snapshots
            .iter()
            .rfind(|r| r.epoch == row.epoch)
            .expect("a snapshot at each epoch's end");
        assert_eq!((last.step, last.steps), (4, 4));
        assert_eq!((last.loss, last.accuracy), (row.loss, row.accuracy));
        assert!(last.images_per_sec > 0.0);
    }
    let e2 = seen
        .order
        .iter()
        .position(|e| e == "begin 2/2 4 from 0")
        .unwrap();
    assert_eq!(seen.order[e2 - 1], "epoch 1");
    assert_eq!(&seen.order[e2 + 1..e2 + 2], ["step 2"]);
    assert!(seen.messages.iter().any(|m| m.starts_with("Epoch 2/2")));
    // A folder that is not there: bad input, the CLI's exit 2.
    let bad = FitConfig {
        out: dir.path().join("other"),
        ..FitConfig::new(dir.path().join("missing"))
    };
    let e = train(&ctx, &bad, &mut Seen::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("missing"), "{e}");
    // classify: the trained run's model on two of its images; an unreadable image is its own
    // Err, a model folder that is not there a typed bad input.
    let images = vec![data.join("a/0.png"), dir.path().join("gone.png")];
    let (model, preds) = classify(&ctx, &cfg.out, &images, 2).unwrap();
    assert_eq!(model.classes, ["a", "b"]);
    assert_eq!(preds.len(), 2);
    let p = preds[0].result.as_ref().unwrap();
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{p:?}");
    assert!(preds[1].result.is_err());
    let e = classify(&ctx, &dir.path().join("no-run"), &images, 2).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert!(e.to_string().contains("no-run"), "{e}");
}
