//! `--class-weight`: Keras' `fit(class_weight=...)` for skewed data.
//!
//! Each training sample's loss is multiplied by its class's weight and the batch loss stays
//! Keras' "sum_over_batch_size", Σ w_i·l_i / N (not / Σ w_i); the gradient follows. Accuracy is
//! never weighted, and neither is the validation loss (Keras applies `class_weight` to training
//! only). So the `loss` column of metrics.csv (and metrics.jsonl, TensorBoard) is the weighted
//! training loss, as Keras reports it, while `val_loss` stays comparable with an unweighted run.
//!
//! - `none` (the default): every weight 1, bit for bit the unweighted loss.
//! - `auto`: balanced, as sklearn's `compute_class_weight("balanced")`, which is what Keras
//!   users pass: w_c = n / (K·n_c) over the training split (n its images, K the classes, n_c
//!   those of class c), so every class carries the same total weight.
//! - `NAME=W,...`: explicit weights by class name; a class not named weighs 1 (as Keras'
//!   `class_weight.get(c, 1.0)`).
//!
//! Multi-label training (`--labels`) refuses it, as Keras refuses `class_weight` for targets
//! of more than one column.

use std::fmt;

/// What `--class-weight` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ClassWeight {
    /// Every weight 1 (the unweighted loss).
    #[default]
    None,
    /// Balanced: n / (K·n_c) over the training split.
    Auto,
    /// By class name; classes not named weigh 1.
    Explicit(Vec<(String, f32)>),
}

impl ClassWeight {
    /// Parses `none`, `auto` or `NAME=W,NAME=W,...` (W a positive number); errors name the
    /// flag and are bad input (exit 2).
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        match s {
            "none" => return Ok(Self::None),
            "auto" | "balanced" => return Ok(Self::Auto),
            _ => {}
        }
        let mut pairs: Vec<(String, f32)> = Vec::new();
        for part in s.split(',') {
            let Some((name, w)) = part.split_once('=') else {
                crate::bail_input!(
                    "--class-weight {s:?}: expected auto, none or NAME=WEIGHT pairs separated \
                     by commas (e.g. cats=1,dogs=3); {part:?} has no '='"
                );
            };
            let name = name.trim();
            crate::ensure_input!(
                !name.is_empty(),
                "--class-weight {s:?}: {part:?} names no class (NAME=WEIGHT)"
            );
            let w: f32 = match w.trim().parse() {
                Ok(w) => w,
                Err(_) => crate::bail_input!(
                    "--class-weight {s:?}: the weight of '{name}' is not a number: {:?}",
                    w.trim()
                ),
            };
            crate::ensure_input!(
                w.is_finite() && w > 0.0,
                "--class-weight {s:?}: the weight of '{name}' must be a positive number, got {w}"
            );
            crate::ensure_input!(
                pairs.iter().all(|(n, _)| n != name),
                "--class-weight {s:?}: class '{name}' is given twice"
            );
            pairs.push((name.to_string(), w));
        }
        Ok(Self::Explicit(pairs))
    }

    /// How the run's fingerprint records it: `None` for no weights (so a run.json without
    /// class weights is as it was before the flag existed), else the canonical setting.
    pub fn label(&self) -> Option<String> {
        match self {
            Self::None => None,
            other => Some(other.to_string()),
        }
    }

    /// The weight of each class (in label order) for a training split with `train_counts`
    /// images per class; `None` for no weights. Errors (bad input, naming the flag): a name
    /// that is no class, a class without training images under `auto`.
    pub fn weights(
        &self,
        class_names: &[String],
        train_counts: &[usize],
    ) -> anyhow::Result<Option<Vec<f32>>> {
        assert_eq!(class_names.len(), train_counts.len());
        match self {
            Self::None => Ok(None),
            Self::Auto => {
                let n: usize = train_counts.iter().sum();
                let k = class_names.len();
                let mut w = Vec::with_capacity(k);
                for (name, &c) in class_names.iter().zip(train_counts) {
                    crate::ensure_input!(
                        c > 0,
                        "--class-weight auto: class '{name}' has no training image, so its \
                         balanced weight n/(K·n_c) is undefined; add images of it, or give the \
                         weights (--class-weight NAME=W,...)"
                    );
                    w.push((n as f64 / (k as f64 * c as f64)) as f32);
                }
                Ok(Some(w))
            }
            Self::Explicit(pairs) => {
                for (name, _) in pairs {
                    crate::ensure_input!(
                        class_names.contains(name),
                        "--class-weight: '{name}' is not a class of this run (classes: {})",
                        class_names.join(", ")
                    );
                }
                Ok(Some(
                    class_names
                        .iter()
                        .map(|c| pairs.iter().find(|(n, _)| n == c).map_or(1.0, |&(_, w)| w))
                        .collect(),
                ))
            }
        }
    }
}

impl fmt::Display for ClassWeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Auto => f.write_str("auto"),
            Self::Explicit(pairs) => {
                let parts: Vec<String> = pairs.iter().map(|(n, w)| format!("{n}={w}")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

/// The line a run prints once: `class weights: cats 0.83, dogs 1.25`.
pub fn describe(class_names: &[String], weights: &[f32]) -> String {
    let parts: Vec<String> = class_names
        .iter()
        .zip(weights)
        .map(|(n, w)| format!("{n} {w:.2}"))
        .collect();
    format!("class weights: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// sklearn's compute_class_weight("balanced", classes=[0, 1], y) for 24 vs 8:
    /// 32/(2·24) = 0.667 and 32/(2·8) = 2.
    #[test]
    fn auto_is_sklearns_balanced() {
        let w = ClassWeight::Auto
            .weights(&names(&["cats", "dogs"]), &[24, 8])
            .unwrap()
            .unwrap();
        assert_eq!(w, vec![32.0 / 48.0, 2.0]);
        // Three classes: every class's total weight is n/K.
        let counts = [10, 5, 1];
        let w = ClassWeight::Auto
            .weights(&names(&["a", "b", "c"]), &counts)
            .unwrap()
            .unwrap();
        for (c, w) in counts.iter().zip(&w) {
            assert!((*c as f32 * w - 16.0 / 3.0).abs() < 1e-5);
        }
        assert_eq!(
            describe(&names(&["cats", "dogs"]), &[0.8333, 1.25]),
            "class weights: cats 0.83, dogs 1.25"
        );
    }

    #[test]
    fn explicit_weights_by_name_default_to_one() {
        let cw = ClassWeight::parse("dogs=3, cats = 0.5").unwrap();
        assert_eq!(cw.label().as_deref(), Some("dogs=3,cats=0.5"));
        let w = cw
            .weights(&names(&["birds", "cats", "dogs"]), &[1, 1, 1])
            .unwrap();
        assert_eq!(w, Some(vec![1.0, 0.5, 3.0]));
        assert_eq!(ClassWeight::parse("none").unwrap(), ClassWeight::None);
        assert_eq!(ClassWeight::None.label(), None);
        assert_eq!(ClassWeight::parse("auto").unwrap().label().unwrap(), "auto");
    }

    #[test]
    fn bad_values_are_bad_input_naming_the_flag() {
        for bad in [
            "", "cats", "cats=", "cats=x", "cats=0", "cats=-1", "cats=inf", "=2",
        ] {
            let e = ClassWeight::parse(bad).unwrap_err();
            assert!(crate::train::api::is_bad_input(&e), "{bad}: {e}");
            assert!(e.to_string().contains("--class-weight"), "{bad}: {e}");
        }
        let e = ClassWeight::parse("cats=1,cats=2").unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = ClassWeight::parse("wolves=2")
            .unwrap()
            .weights(&names(&["cats", "dogs"]), &[3, 4])
            .unwrap_err();
        assert!(crate::train::api::is_bad_input(&e));
        assert!(e.to_string().contains("'wolves' is not a class"), "{e}");
        let e = ClassWeight::Auto
            .weights(&names(&["cats", "dogs"]), &[3, 0])
            .unwrap_err();
        assert!(crate::train::api::is_bad_input(&e));
        assert!(
            e.to_string().contains("'dogs' has no training image"),
            "{e}"
        );
    }
}
