//! The CLI's display of a training, as a [`FitObserver`]: every line goes to a sink (stderr for
//! `gpucnn train`), and on a terminal each epoch gets a progress bar with the running loss,
//! accuracy, throughput and ETAs. `gpucnn train`, `gpucnn demo` and the ranks of an MPI job use
//! it; a library user can too, or write their own observer from the same events.

use super::api::{FitObserver, Running};
use super::progress::{format_duration, format_step};

/// Lines to a sink, and with `bars` an epoch progress bar on stderr.
pub struct Terminal<'a> {
    sink: &'a mut dyn FnMut(&str),
    bars: bool,
    bar: Option<Bar>,
}

struct Bar {
    bar: indicatif::ProgressBar,
    /// Drawn yet: a bar appears at its epoch's first finished step, so that it never races
    /// the warm-up's spinner line.
    shown: bool,
}

impl<'a> Terminal<'a> {
    /// `bars`: draw progress bars on stderr (only where stderr is a terminal: elsewhere their
    /// redraws would fill a log).
    pub fn new(bars: bool, sink: &'a mut dyn FnMut(&str)) -> Self {
        Self {
            sink,
            bars,
            bar: None,
        }
    }
}

impl FitObserver for Terminal<'_> {
    fn message(&mut self, line: &str) {
        match &self.bar {
            // The bar is lifted while the line prints, then redrawn below it.
            Some(b) if b.shown => b.bar.suspend(|| (self.sink)(line)),
            _ => (self.sink)(line),
        }
    }

    fn epoch_begin(&mut self, epoch: usize, epochs: usize, steps: usize, done: usize) {
        if !self.bars {
            return;
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(steps as u64),
            indicatif::ProgressDrawTarget::hidden(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "Epoch {epoch}/{epochs} {{bar:30}} {{pos}}/{{len}} {{msg}}"
            ))
            .expect("a valid template"),
        );
        bar.set_position(done as u64);
        self.bar = Some(Bar { bar, shown: false });
    }

    fn step(&mut self, _epoch: usize, step: usize, _steps: usize) {
        if let Some(b) = &mut self.bar {
            if !b.shown {
                b.bar
                    .set_draw_target(indicatif::ProgressDrawTarget::stderr());
                b.shown = true;
            }
            b.bar.set_position(step as u64);
        }
    }

    fn wants_running(&self) -> bool {
        self.bars
    }

    fn running(&mut self, now: &Running) {
        if let Some(b) = &self.bar {
            b.bar.set_message(bar_message(now));
        }
    }

    fn epoch_trained(&mut self, _epoch: usize) {
        if let Some(b) = self.bar.take() {
            b.bar.finish_and_clear();
        }
    }
}

/// The text after the bar: pace and ETAs once timed, then the running metrics.
fn bar_message(r: &Running) -> String {
    let pace = match (r.step_secs, r.epoch_eta_secs, r.run_eta_secs) {
        (Some(step), Some(epoch), Some(run)) => format!(
            "{} · epoch ETA {} · run ETA {} · ",
            format_step(step),
            format_duration(epoch),
            format_duration(run)
        ),
        _ => String::new(),
    };
    format!(
        "{pace}loss {:.4} acc {:.4} {:.1} img/s",
        r.loss, r.accuracy, r.images_per_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(timed: bool) -> Running {
        Running {
            epoch: 1,
            step: 3,
            steps: 10,
            loss: 0.5,
            accuracy: 0.75,
            images_per_sec: 12.34,
            step_secs: timed.then_some(0.25),
            epoch_eta_secs: timed.then_some(90.0),
            run_eta_secs: timed.then_some(3700.0),
        }
    }

    #[test]
    fn the_bar_says_pace_and_etas_once_timed() {
        assert_eq!(
            bar_message(&running(false)),
            "loss 0.5000 acc 0.7500 12.3 img/s"
        );
        let timed = bar_message(&running(true));
        assert!(timed.starts_with("0.25s/step · epoch ETA "), "{timed}");
        assert!(
            timed.ends_with("loss 0.5000 acc 0.7500 12.3 img/s"),
            "{timed}"
        );
    }

    #[test]
    fn lines_reach_the_sink_with_or_without_a_bar() {
        let mut lines = Vec::new();
        let mut sink = |l: &str| lines.push(l.to_string());
        let mut t = Terminal::new(false, &mut sink);
        assert!(!t.wants_running());
        t.message("one");
        t.epoch_begin(1, 2, 10, 0);
        t.step(1, 1, 10);
        t.message("two");
        t.epoch_trained(1);
        drop(t);
        assert_eq!(lines, ["one", "two"]);
        let mut lines = Vec::new();
        let mut sink = |l: &str| lines.push(l.to_string());
        let mut t = Terminal::new(true, &mut sink);
        assert!(t.wants_running());
        t.epoch_begin(1, 2, 10, 4);
        assert_eq!(t.bar.as_ref().map(|b| b.bar.position()), Some(4));
        t.step(1, 5, 10);
        t.message("three");
        t.running(&running(true));
        t.epoch_trained(1);
        assert!(t.bar.is_none());
        drop(t);
        assert_eq!(lines, ["three"]);
    }
}
