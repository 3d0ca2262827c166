//! What `gpucnn train` tells its user while it works, from the first second: a status line while
//! the GPU pipelines compile and while the first step warms up, then the time per step and the
//! remaining time of the epoch and of the whole run, and one line of advice when the run would
//! take hours on a software adapter.
//!
//! The arithmetic ([`estimate`], [`slow_run_advice`], [`format_duration`]) is pure and
//! unit-tested; [`Status`] is a spinner on a terminal and plain log lines elsewhere (CI logs and
//! the tests read those).

use std::time::{Duration, Instant};

use crate::data::geometry::ImageSize;

/// A validation step (forward only) costs roughly a third of a training step (forward, backward
/// and the optimizer), which is how validation enters an estimate before an epoch was measured.
pub const VAL_STEP_COST: f64 = 1.0 / 3.0;

/// A whole run estimated above this many seconds on a software adapter earns the quick-run advice.
pub const SLOW_RUN_SECS: f64 = 3600.0;

/// Steps timed after the first one (which carries the one-time warm-up) before the first
/// estimate of the run: one, because on a software adapter a step of the example's recipe takes
/// minutes (it is already the average of hundreds of dispatches), and a newcomer should not wait
/// longer than that to learn that the run takes hours.
pub const ESTIMATE_STEPS: usize = 1;

/// The settings of a run that decide its cost, as the quick-run advice compares them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// `--image-size`.
    pub image_size: ImageSize,
    /// `--width`.
    pub width: f32,
    /// `--epochs`.
    pub epochs: usize,
}

/// The quick-run settings the advice suggests: 64-pixel images have 8 times fewer pixels than the
/// example's 180, a quarter of the width cuts the pointwise convolutions' work up to 16 times, and
/// a few epochs already show whether the network learns the data.
pub const QUICK: Settings = Settings {
    image_size: ImageSize::square(64),
    width: 0.25,
    epochs: 5,
};

/// The work left in a run, in steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    /// Training steps in an epoch.
    pub steps_per_epoch: usize,
    /// Validation steps in an epoch.
    pub val_steps: usize,
    /// Training steps of the current epoch already done.
    pub steps_done: usize,
    /// Epochs still to run after the current one.
    pub epochs_after: usize,
}

/// Seconds left: until the current epoch's line (its training steps and its validation), and
/// until the whole run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eta {
    pub epoch: f64,
    pub run: f64,
}

/// The time left from a training step's measured `secs_per_step`. A later epoch takes
/// `epoch_secs` when a whole epoch was measured (training, data and validation as they really
/// were), else its steps at `secs_per_step` plus its validation at [`VAL_STEP_COST`].
pub fn estimate(work: &Work, secs_per_step: f64, epoch_secs: Option<f64>) -> Eta {
    let val = work.val_steps as f64 * secs_per_step * VAL_STEP_COST;
    let left = work.steps_per_epoch.saturating_sub(work.steps_done) as f64;
    let epoch = left * secs_per_step + val;
    let full = epoch_secs.unwrap_or(work.steps_per_epoch as f64 * secs_per_step + val);
    Eta {
        epoch,
        run: epoch + work.epochs_after as f64 * full,
    }
}

/// The quick-run size for `size`: [`QUICK`]'s longest side, the aspect ratio kept (a
/// 120×160 run is told 48,64, not a square that would distort its images).
pub fn quick_size(size: ImageSize) -> ImageSize {
    let side = QUICK.image_size.max_side();
    let scale = |n: usize| {
        ((n * side) as f64 / size.max_side() as f64)
            .round()
            .max(1.0) as usize
    };
    ImageSize {
        height: scale(size.height),
        width: scale(size.width),
    }
}

/// The one line that says a run will be long, when it is estimated at over [`SLOW_RUN_SECS`]
/// seconds on a software adapter (`software`, named `adapter`); `None` otherwise. It names the
/// flags of a quicker run with values (those of [`QUICK`] that lower `current`); the run itself
/// goes on.
pub fn slow_run_advice(
    run_secs: f64,
    software: bool,
    adapter: &str,
    current: &Settings,
) -> Option<String> {
    if !software || !run_secs.is_finite() || run_secs <= SLOW_RUN_SECS {
        return None;
    }
    let mut flags = Vec::new();
    if current.image_size.max_side() > QUICK.image_size.max_side() {
        flags.push(format!("--image-size {}", quick_size(current.image_size)));
    }
    if current.width > QUICK.width {
        flags.push(format!("--width {}", QUICK.width));
    }
    if current.epochs > QUICK.epochs {
        flags.push(format!("--epochs {}", QUICK.epochs));
    }
    let head = format!(
        "note: this run will take about {} on the software adapter {adapter} (no GPU); it goes on.",
        format_duration(run_secs)
    );
    Some(if flags.is_empty() {
        format!(
            "{head} Its --image-size, --width and --epochs are already small: the number of \
             images is what takes the time; train on a smaller folder for a quick result, or on \
             a machine with a GPU."
        )
    } else {
        format!(
            "{head} For a quick first result, stop it (Ctrl-C) and run with {} (and another \
             --out, or --overwrite).",
            flags.join(" ")
        )
    })
}

/// A duration for people: `4.2s`, `42s`, `3m 05s`, `7h 50m`.
pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "an unknown time".into();
    }
    if secs < 9.95 {
        return format!("{:.1}s", secs.max(0.0));
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A step's time for people: `1.23s/step`, or `4.5ms/step` below a tenth of a second.
pub fn format_step(secs: f64) -> String {
    if secs >= 0.1 {
        format!("{secs:.2}s/step")
    } else {
        format!("{:.1}ms/step", secs * 1000.0)
    }
}

/// What is happening while something slow runs: a spinner with the elapsed time on a terminal
/// (so the screen moves from the first second), a plain log line elsewhere.
pub struct Status {
    spinner: Option<indicatif::ProgressBar>,
    started: Instant,
}

impl Status {
    /// Says `what` is starting (`terminal`: as a spinner, else as a line through `log`).
    pub fn begin(terminal: bool, what: &str, log: &mut dyn FnMut(&str)) -> Status {
        let spinner = if terminal {
            let s = indicatif::ProgressBar::new_spinner();
            s.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .expect("a valid template"),
            );
            s.set_message(what.to_string());
            s.enable_steady_tick(Duration::from_millis(120));
            Some(s)
        } else {
            log(what);
            None
        };
        Status {
            spinner,
            started: Instant::now(),
        }
    }

    /// Seconds since [`Self::begin`].
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Clears the spinner and logs `done`.
    pub fn finish(self, done: &str, log: &mut dyn FnMut(&str)) {
        if let Some(s) = self.spinner {
            s.finish_and_clear();
        }
        log(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: Settings = Settings {
        image_size: ImageSize::square(180),
        width: 1.0,
        epochs: 25,
    };

    #[test]
    fn estimate_counts_the_steps_left_validation_and_later_epochs() {
        let work = Work {
            steps_per_epoch: 10,
            val_steps: 3,
            steps_done: 4,
            epochs_after: 2,
        };
        let eta = estimate(&work, 2.0, None);
        // 6 steps left at 2 s, validation 3 × 2 s / 3.
        assert_eq!(eta.epoch, 12.0 + 2.0);
        // Each later epoch: 10 steps at 2 s and the same validation.
        assert_eq!(eta.run, 14.0 + 2.0 * 22.0);
        // A measured epoch replaces the model of the later ones.
        assert_eq!(estimate(&work, 2.0, Some(30.0)).run, 14.0 + 60.0);
        // At an epoch's end only the later epochs remain.
        let done = Work {
            steps_done: 10,
            val_steps: 0,
            ..work
        };
        assert_eq!(
            estimate(&done, 2.0, Some(30.0)),
            Eta {
                epoch: 0.0,
                run: 60.0
            }
        );
    }

    #[test]
    fn the_newcomers_run_on_a_software_adapter_is_estimated_in_hours() {
        // The case: 1,797 digits at the example's recipe, batch 128, 25 epochs: 12
        // training and 3 validation steps an epoch, about 65 s a step on 2 cores.
        let work = Work {
            steps_per_epoch: 12,
            val_steps: 3,
            steps_done: 1 + ESTIMATE_STEPS,
            epochs_after: 24,
        };
        let run = estimate(&work, 65.0, None).run;
        assert!((5.0 * 3600.0..7.0 * 3600.0).contains(&run), "{run}");
        let advice = slow_run_advice(run, true, "llvmpipe", &EXAMPLE).expect("a long run");
        assert!(advice.contains(&format_duration(run)), "{advice}");
        assert!(advice.contains("llvmpipe"), "{advice}");
        for flag in ["--image-size 64", "--width 0.25", "--epochs 5"] {
            assert!(advice.contains(flag), "{flag} missing: {advice}");
        }
        assert!(!advice.contains('\n'), "one line: {advice}");
    }

    #[test]
    fn advice_only_for_long_runs_on_software_adapters() {
        assert_eq!(slow_run_advice(SLOW_RUN_SECS, true, "x", &EXAMPLE), None);
        assert!(slow_run_advice(SLOW_RUN_SECS + 1.0, true, "x", &EXAMPLE).is_some());
        // A GPU: however long, a real run is not second-guessed.
        assert_eq!(slow_run_advice(100.0 * 3600.0, false, "x", &EXAMPLE), None);
        // Not a number (nothing measured yet) says nothing.
        assert_eq!(slow_run_advice(f64::NAN, true, "x", &EXAMPLE), None);
    }

    #[test]
    fn advice_names_only_the_flags_that_lower_the_cost() {
        let small = Settings {
            image_size: ImageSize::square(32),
            width: 0.25,
            epochs: 50,
        };
        let advice = slow_run_advice(2.0 * 3600.0, true, "x", &small).unwrap();
        assert!(advice.contains("--epochs 5"), "{advice}");
        assert!(!advice.contains("--image-size 64"), "{advice}");
        assert!(!advice.contains("--width 0.25"), "{advice}");
        let tiny = Settings {
            image_size: ImageSize::square(16),
            width: 0.0625,
            epochs: 2,
        };
        let advice = slow_run_advice(2.0 * 3600.0, true, "x", &tiny).unwrap();
        assert!(advice.contains("smaller folder"), "{advice}");
    }

    #[test]
    fn a_non_square_size_is_scaled_down_keeping_its_aspect_ratio() {
        let wide = Settings {
            image_size: ImageSize {
                height: 120,
                width: 160,
            },
            ..EXAMPLE
        };
        let advice = slow_run_advice(2.0 * 3600.0, true, "x", &wide).unwrap();
        assert!(advice.contains("--image-size 48,64 "), "{advice}");
        let thin = ImageSize {
            height: 3,
            width: 400,
        };
        assert_eq!(quick_size(thin).to_string(), "1,64");
        assert_eq!(quick_size(ImageSize::square(180)).to_string(), "64");
        // Under 64 on both sides: nothing to suggest.
        let small = Settings {
            image_size: ImageSize {
                height: 12,
                width: 20,
            },
            ..EXAMPLE
        };
        let advice = slow_run_advice(2.0 * 3600.0, true, "x", &small).unwrap();
        assert!(!advice.contains("--image-size"), "{advice}");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(format_duration(0.24), "0.2s");
        assert_eq!(format_duration(9.96), "10s");
        assert_eq!(format_duration(42.4), "42s");
        assert_eq!(format_duration(185.0), "3m 05s");
        assert_eq!(format_duration(7.0 * 3600.0 + 50.0 * 60.0 + 10.0), "7h 50m");
        assert_eq!(format_duration(-3.0), "0.0s");
        assert_eq!(format_duration(f64::INFINITY), "an unknown time");
        assert_eq!(format_step(1.234), "1.23s/step");
        assert_eq!(format_step(0.0045), "4.5ms/step");
    }
}
