//! `gpucnn evaluate --worst K` (likely label errors): a model trained on a clean folder is
//! evaluated on the same pictures with a few of them filed under the wrong class; those few
//! must come out on top, in the table, the JSON and worst.png.

mod common;

use std::path::Path;

use common::{assert_exit, assert_success, gpucnn, s, stdout, tiny_train};
use rand::{Rng, SeedableRng};

/// Bright and dark 20×20 noise pictures, `n` of each: `data/bright/b_07.png`, `data/dark/…`.
fn write_bright_dark(data: &Path, n: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for (class, level) in [("bright", 200i32), ("dark", 55)] {
        let dir = data.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(20, 20, |_, _| {
                let v = |rng: &mut rand::rngs::StdRng| (level + rng.random_range(-40..=40)) as u8;
                image::Rgb([v(&mut rng), v(&mut rng), v(&mut rng)])
            });
            img.save(dir.join(format!("{}_{i:02}.png", &class[..1])))
                .unwrap();
        }
    }
}

#[test]
fn evaluate_worst_puts_the_mislabelled_pictures_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_bright_dark(&data, 24);
    let run = dir.path().join("run");
    assert_success(&common::run(tiny_train(&run, "8", "2").args([
        "--data",
        s(&data),
        "--augment",
        "none",
        "--lr",
        "1e-2",
    ])));
    // The same pictures, three dark ones filed under bright/.
    let relabelled = dir.path().join("relabelled");
    for class in ["bright", "dark"] {
        std::fs::create_dir_all(relabelled.join(class)).unwrap();
        for e in std::fs::read_dir(data.join(class)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, relabelled.join(class).join(p.file_name().unwrap())).unwrap();
        }
    }
    let flipped = ["d_03.png", "d_11.png", "d_20.png"];
    for name in flipped {
        std::fs::rename(
            relabelled.join("dark").join(name),
            relabelled.join("bright").join(name),
        )
        .unwrap();
    }
    let plots = dir.path().join("plots");
    // The last epoch's weights: best.safetensors may be an early epoch that merely ties on
    // val_accuracy, whose probabilities are all near 0.5.
    let last = run.join("save_at_8.safetensors");
    let args = |extra: &'static [&'static str]| {
        let mut a = vec!["evaluate", "--model", s(&last), "--data", s(&relabelled)];
        a.extend_from_slice(&["--out", s(&plots), "--worst", "3"]);
        a.extend_from_slice(extra);
        a
    };
    let o = gpucnn(&args(&[]));
    assert_success(&o);
    let text = stdout(&o);
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Most likely label errors"))
        .skip(2)
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    for row in &rows {
        assert!(
            flipped
                .iter()
                .any(|f| row.ends_with(&format!("bright/{f}"))),
            "a row that is not a flipped picture: {row}\n{text}"
        );
        assert!(row.contains("bright") && row.contains("dark"), "{row}");
    }
    assert!(image::open(plots.join("worst.png")).is_ok());
    // The JSON carries the same three, highest loss first.
    let o = gpucnn(&args(&["--json"]));
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let worst = v["worst"].as_array().unwrap();
    assert_eq!(worst.len(), 3);
    let losses: Vec<f64> = worst.iter().map(|w| w["loss"].as_f64().unwrap()).collect();
    assert!(losses.windows(2).all(|w| w[0] >= w[1]), "{losses:?}");
    for w in worst {
        assert_eq!(
            (w["given"].as_str(), w["predicted"].as_str()),
            (Some("bright"), Some("dark"))
        );
        let path = w["path"].as_str().unwrap();
        assert!(flipped.iter().any(|f| path.ends_with(f)), "{path}");
    }
    // K must be at least 1; --worst is for class folders, not a labels CSV.
    let e = assert_exit(
        &gpucnn(&[
            "evaluate",
            "--model",
            s(&run),
            "--data",
            s(&data),
            "--worst",
            "0",
        ]),
        2,
    );
    assert!(e.contains("--worst"), "{e}");
}
