//! `gpucnn::eval`: metrics checked against values computed by hand, and the PNGs decoded.

use gpucnn::eval::metrics::{EvalReport, argmax, evaluate, roc_auc, roc_curve};
use gpucnn::plot::PlotError;
use gpucnn::plot::confusion::{confusion_png_size, render_confusion, write_confusion_png};
use gpucnn::plot::roc::{ROC_SIZE, write_roc_png};

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn close(a: f64, b: f64) {
    approx::assert_abs_diff_eq!(a, b, epsilon = 1e-12);
}

/// 10 samples of 3 classes whose confusion matrix (rows true, columns predicted) is
/// [[3,1,0],[0,2,1],[1,1,1]]. One row is a tie between classes 0 and 1 (predicts 0).
fn three_class() -> (Vec<String>, Vec<usize>, Vec<Vec<f32>>) {
    let row = |p: usize| -> Vec<f32> {
        let mut r = vec![0.1f32; 3];
        r[p] = 0.8;
        r
    };
    let labels = vec![0, 0, 0, 0, 1, 1, 1, 2, 2, 2];
    let probs = vec![
        row(0),
        row(0),
        row(0),
        row(1),
        row(1),
        row(1),
        row(2),
        vec![0.4, 0.4, 0.2], // tie: class 0
        row(1),
        row(2),
    ];
    (names(&["ant", "bee", "cow"]), labels, probs)
}

#[test]
fn three_classes_match_hand_computed_metrics() {
    let (n, labels, probs) = three_class();
    let r = evaluate(&n, &labels, &probs);
    assert_eq!(
        r.confusion_matrix,
        vec![vec![3, 1, 0], vec![0, 2, 1], vec![1, 1, 1]]
    );
    assert_eq!(r.support, vec![4, 3, 3]);
    close(r.accuracy, 0.6);
    // Predicted counts per class: 4, 4, 2.
    let p = [3.0 / 4.0, 2.0 / 4.0, 1.0 / 2.0];
    let rc = [3.0 / 4.0, 2.0 / 3.0, 1.0 / 3.0];
    let f = [3.0 / 4.0, 4.0 / 7.0, 2.0 / 5.0];
    for c in 0..3 {
        close(r.precision[c], p[c]);
        close(r.recall[c], rc[c]);
        close(r.f1[c], f[c]);
    }
    close(r.macro_precision, 7.0 / 12.0);
    close(r.macro_recall, 7.0 / 12.0);
    close(r.macro_f1, 241.0 / 420.0);
}

/// The Mann–Whitney statistic by counting every (positive, negative) pair.
fn pairwise_auc(pos: &[bool], s: &[f32]) -> f64 {
    let mut wins = 0.0;
    let mut pairs = 0.0;
    for i in 0..s.len() {
        for j in 0..s.len() {
            if pos[i] && !pos[j] {
                pairs += 1.0;
                wins += if s[i] > s[j] {
                    1.0
                } else if s[i] == s[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    wins / pairs
}

#[test]
fn multiclass_auc_is_the_one_vs_rest_macro_mean() {
    let (n, labels, probs) = three_class();
    let r = evaluate(&n, &labels, &probs);
    let mut sum = 0.0;
    for c in 0..3 {
        let pos: Vec<bool> = labels.iter().map(|&t| t == c).collect();
        let s: Vec<f32> = probs.iter().map(|p| p[c]).collect();
        let want = pairwise_auc(&pos, &s);
        close(r.auc_per_class[c].unwrap(), want);
        sum += want;
    }
    close(r.auc.unwrap(), sum / 3.0);
    // Class 0 by hand: positives score 0.8,0.8,0.8,0.1; negatives 0.1,0.1,0.1,0.4,0.1,0.1.
    // Each 0.8 beats all 6 (18); the 0.1 beats none, ties five 0.1s (2.5): 20.5 / 24.
    close(r.auc_per_class[0].unwrap(), 20.5 / 24.0);
}

#[test]
fn binary_auc_and_roc_curve_by_hand_with_a_tie() {
    let pos = [true, false, true, false, true];
    let s = [0.9f32, 0.8, 0.8, 0.3, 0.1];
    // Pairs (pos, neg): (.9,.8)=1 (.9,.3)=1 (.8,.8)=½ (.8,.3)=1 (.1,.8)=0 (.1,.3)=0 → 3.5/6.
    close(roc_auc(&pos, &s).unwrap(), 7.0 / 12.0);
    let curve = roc_curve(&pos, &s);
    let want = [
        (0.0, 0.0),
        (0.0, 1.0 / 3.0),
        (0.5, 2.0 / 3.0),
        (1.0, 2.0 / 3.0),
        (1.0, 1.0),
    ];
    assert_eq!(curve.len(), want.len(), "{curve:?}");
    for (a, b) in curve.iter().zip(&want) {
        close(a.0, b.0);
        close(a.1, b.1);
    }
    let area: f64 = curve
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum();
    close(area, 7.0 / 12.0);

    // The same data through evaluate: the report's AUC is class 1's.
    let labels: Vec<usize> = pos.iter().map(|&p| p as usize).collect();
    let probs: Vec<Vec<f32>> = s.iter().map(|&x| vec![1.0 - x, x]).collect();
    let r = evaluate(&names(&["cat", "dog"]), &labels, &probs);
    close(r.auc.unwrap(), 7.0 / 12.0);
    close(r.auc_per_class[1].unwrap(), 7.0 / 12.0);
    // Predictions (argmax; 0.5 would tie): dog, dog, dog, cat, cat.
    assert_eq!(r.confusion_matrix, vec![vec![1, 1], vec![1, 2]]);
}

#[test]
fn auc_is_undefined_without_positives_or_negatives() {
    assert_eq!(roc_auc(&[true, true], &[0.2, 0.7]), None);
    assert_eq!(roc_auc(&[false, false], &[0.2, 0.7]), None);
    let r = evaluate(
        &names(&["cat", "dog"]),
        &[0, 0, 0],
        &[vec![0.9, 0.1], vec![0.3, 0.7], vec![0.6, 0.4]],
    );
    assert_eq!(r.auc, None);
    assert_eq!(r.auc_per_class, vec![None, None]);
    assert!(r.to_json()["auc"].is_null());
    // Three classes, one absent: that class's AUC and the macro are undefined, the others not.
    let r = evaluate(
        &names(&["a", "b", "c"]),
        &[0, 1],
        &[vec![0.7, 0.2, 0.1], vec![0.2, 0.7, 0.1]],
    );
    assert_eq!(r.auc_per_class[2], None);
    close(r.auc_per_class[0].unwrap(), 1.0);
    assert_eq!(r.auc, None);
}

#[test]
fn nan_scores_rank_lowest_and_tie_with_each_other() {
    let pos = [true, false, false, true, false];
    let s = [f32::NAN, 0.2, 0.5, 0.9, f32::NAN];
    // Positive NaN: vs .2 = 0, vs .5 = 0, vs NaN = ½; positive .9 beats all three → 3.5/6.
    close(roc_auc(&pos, &s).unwrap(), 3.5 / 6.0);
    let curve = roc_curve(&pos, &s);
    let want = [
        (0.0, 0.0),
        (0.0, 0.5),
        (1.0 / 3.0, 0.5),
        (2.0 / 3.0, 0.5),
        (1.0, 1.0),
    ];
    assert_eq!(curve.len(), want.len(), "{curve:?}");
    for (a, b) in curve.iter().zip(&want) {
        close(a.0, b.0);
        close(a.1, b.1);
    }
}

#[test]
fn zero_division_conventions() {
    // Everything predicted as class 0; class 2 has no samples.
    let r = evaluate(
        &names(&["a", "b", "c"]),
        &[0, 1],
        &[vec![0.6, 0.3, 0.1], vec![0.5, 0.4, 0.1]],
    );
    close(r.precision[0], 0.5);
    close(r.recall[0], 1.0);
    close(r.f1[0], 2.0 / 3.0);
    assert_eq!((r.precision[1], r.recall[1], r.f1[1]), (0.0, 0.0, 0.0));
    assert_eq!((r.precision[2], r.recall[2], r.f1[2]), (0.0, 0.0, 0.0));
    close(r.macro_f1, 2.0 / 9.0);
}

#[test]
fn argmax_ties_go_to_the_lowest_index_and_nan_never_wins() {
    assert_eq!(argmax(&[0.3, 0.3, 0.3]), 0);
    assert_eq!(argmax(&[0.1, 0.45, 0.45]), 1);
    assert_eq!(argmax(&[f32::NAN, 0.2, 0.1]), 1);
    assert_eq!(argmax(&[0.2, f32::NAN, 0.7]), 2);
}

#[test]
fn json_has_the_documented_keys() {
    let (n, labels, probs) = three_class();
    let j = evaluate(&n, &labels, &probs).to_json();
    for key in [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "auc",
        "confusion_matrix",
        "class_names",
    ] {
        assert!(j.get(key).is_some(), "missing {key}: {j}");
    }
    assert_eq!(j["accuracy"].as_f64(), Some(0.6));
    assert_eq!(j["precision"]["per_class"][0].as_f64(), Some(0.75));
    close(j["recall"]["macro"].as_f64().unwrap(), 7.0 / 12.0);
    assert!(j["f1"]["macro"].is_number());
    assert!(j["auc"].is_number());
    assert_eq!(j["confusion_matrix"][2], serde_json::json!([1, 1, 1]));
    assert_eq!(j["class_names"], serde_json::json!(["ant", "bee", "cow"]));
    // It round-trips through text as one object.
    let text = serde_json::to_string(&j).unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap()
            .is_object()
    );
}

#[test]
fn render_shows_the_table_and_the_matrix() {
    let (n, labels, probs) = three_class();
    let r: EvalReport = evaluate(&n, &labels, &probs);
    let t = r.render();
    assert!(t.contains("accuracy  0.6000  (6/10 samples)"), "{t}");
    assert!(t.contains("macro avg"), "{t}");
    assert!(t.contains("one-vs-rest"), "{t}");
    let cow = t.lines().find(|l| l.starts_with("cow")).unwrap();
    assert!(
        cow.contains("0.5000") && cow.contains("0.3333") && cow.contains("0.4000"),
        "{cow}"
    );
    let last = t.lines().last().unwrap();
    assert!(
        last.starts_with("[2] cow") && last.ends_with("1    1    1"),
        "{last:?}"
    );
}

fn decode(path: &std::path::Path) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8()
}

fn colours(img: &image::RgbImage) -> usize {
    let mut set = std::collections::HashSet::new();
    for p in img.pixels() {
        set.insert(p.0);
    }
    set.len()
}

#[test]
fn confusion_png_has_the_stated_size_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let (n, labels, probs) = three_class();
    let r = evaluate(&n, &labels, &probs);
    let path = dir.path().join("confusion.png");
    write_confusion_png(&path, &r).unwrap();
    let img = decode(&path);
    assert_eq!(img.dimensions(), confusion_png_size(&r));
    // White, text, frame, border and one shade per distinct count (0, 1, 2, 3).
    assert!(colours(&img) >= 6, "{} colours", colours(&img));
    // The largest count's cell is the darkest shade; a zero cell the lightest.
    assert!(img.pixels().any(|p| p.0 == [66, 146, 198]));
    assert!(img.pixels().any(|p| p.0 == [247, 251, 255]));
    // A different matrix draws differently.
    let other = evaluate(&n, &labels, &vec![vec![0.8, 0.1, 0.1]; 10]);
    assert_ne!(render_confusion(&r), render_confusion(&other));
    // Many classes still fit: cells shrink.
    let many: Vec<String> = (0..40).map(|i| format!("class{i}")).collect();
    let labels: Vec<usize> = (0..40).collect();
    let probs: Vec<Vec<f32>> = (0..40)
        .map(|i| {
            (0..40)
                .map(|j| if j == (i + 1) % 40 { 1.0 } else { 0.0 })
                .collect()
        })
        .collect();
    let big = evaluate(&many, &labels, &probs);
    let (w, h) = confusion_png_size(&big);
    assert!(w < 1200 && h < 1200, "{w}×{h}");
    write_confusion_png(dir.path().join("many.png"), &big).unwrap();
}

#[test]
fn confusion_png_draws_class_names_as_written() {
    // Same counts, names differing only in case or accents: the old built-in font drew them
    // lowercased, with every accented letter as the same box, so the pictures were identical.
    let (_, labels, probs) = three_class();
    let draw = |n: [&str; 3]| render_confusion(&evaluate(&names(&n), &labels, &probs));
    let plain = draw(["Chats, tigrés", "Ünïcode", "Dogs"]);
    assert_ne!(plain, draw(["chats, tigrés", "Ünïcode", "Dogs"]));
    assert_ne!(plain, draw(["Chats, tigrés", "ünïcode", "Dogs"]));
    assert_ne!(plain, draw(["Chats, tigrés", "Ünïcode", "dogs"]));
    assert_ne!(plain, draw(["Chats, tigrès", "Ünïcode", "Dogs"]));
}

#[test]
fn roc_png_has_the_stated_size_and_draws_the_curve() {
    let dir = tempfile::tempdir().unwrap();
    let pos = [true, false, true, false, true];
    let s = [0.9f32, 0.8, 0.8, 0.3, 0.1];
    let path = dir.path().join("roc.png");
    write_roc_png(&path, &roc_curve(&pos, &s), roc_auc(&pos, &s)).unwrap();
    let img = decode(&path);
    assert_eq!(img.dimensions(), ROC_SIZE);
    let curve = img.pixels().filter(|p| p.0 == [31, 119, 180]).count();
    assert!(curve > 400, "only {curve} curve pixels");
    assert!(colours(&img) >= 4);
}

#[test]
fn writing_into_a_missing_folder_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-folder").join("roc.png");
    let err = write_roc_png(&path, &[(0.0, 0.0), (1.0, 1.0)], Some(0.5)).unwrap_err();
    assert!(matches!(err, PlotError::Write(_)));
    assert!(err.to_string().contains("no-such-folder"), "{err}");
    assert!(!path.exists());
}
