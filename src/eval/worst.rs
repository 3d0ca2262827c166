//! Likely label errors after training (`gpucnn evaluate --worst K`): the images whose given
//! label the model finds least likely, i.e. with the highest cross-entropy loss
//! −ln p(given class), in the spirit of confident learning (Northcutt et al.): where a
//! well-trained model is confidently wrong, the label is often what is wrong. They come as a
//! table, as JSON, and as a grid of the pictures titled with both labels (`worst.png`).

use std::path::{Path, PathBuf};

use super::metrics::argmax;
use crate::plot::grid::write_grid_png;

/// Keras clips probabilities to [ε, 1 − ε] before the log (backend epsilon 1e-7): a
/// probability that rounds to 0 gives a large finite loss, not infinity.
const EPSILON: f64 = 1e-7;

/// The side, in pixels, each picture of the grid is fitted into (keeping its aspect ratio).
const THUMB: u32 = 200;

/// One suspicious image.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspect {
    pub path: PathBuf,
    /// The label its folder gives, and the model's most likely class.
    pub given: usize,
    pub predicted: usize,
    /// The model's probability of the given and of the predicted class.
    pub p_given: f32,
    pub p_predicted: f32,
    /// −ln p(given), p clipped to [1e-7, 1 − 1e-7] as Keras' cross-entropy does.
    pub loss: f64,
}

/// The `k` images with the highest loss, highest first (ties by path); the predicted class is
/// the report's ([`argmax`]), so it agrees with the confusion matrix. `probs[i]` are image
/// `i`'s class probabilities (one per class, as evaluate pairs them).
pub fn most_suspect(
    paths: &[PathBuf],
    labels: &[usize],
    probs: &[Vec<f32>],
    k: usize,
) -> Vec<Suspect> {
    let mut all: Vec<Suspect> = paths
        .iter()
        .zip(labels)
        .zip(probs)
        .map(|((path, &given), p)| {
            let predicted = argmax(p);
            let p_given = p[given];
            Suspect {
                path: path.clone(),
                given,
                predicted,
                p_given,
                p_predicted: p[predicted],
                loss: -(p_given as f64).clamp(EPSILON, 1.0 - EPSILON).ln(),
            }
        })
        .collect();
    all.sort_by(|a, b| b.loss.total_cmp(&a.loss).then_with(|| a.path.cmp(&b.path)));
    all.truncate(k);
    all
}

/// The table evaluate prints: one row per suspect, highest loss first; paths relative to
/// `root` where they lie under it.
pub fn render(suspects: &[Suspect], classes: &[String], root: &Path) -> String {
    let mut s = format!(
        "Most likely label errors (highest loss −ln p(given) first; {} shown):\n",
        suspects.len()
    );
    s += &format!(
        "{:>8}  {:<14} {:<14} {:>9} {:>11}  path\n",
        "loss", "given", "predicted", "p(given)", "p(predicted)"
    );
    for x in suspects {
        let rel = x.path.strip_prefix(root).unwrap_or(&x.path);
        s += &format!(
            "{:>8.3}  {:<14} {:<14} {:>9.4} {:>11.4}  {}\n",
            x.loss,
            classes[x.given],
            classes[x.predicted],
            x.p_given,
            x.p_predicted,
            rel.display()
        );
    }
    s
}

/// The suspects as JSON objects (path, given, predicted, their probabilities, loss).
pub fn to_json(suspects: &[Suspect], classes: &[String]) -> serde_json::Value {
    suspects
        .iter()
        .map(|x| {
            serde_json::json!({
                "path": x.path.display().to_string(),
                "given": classes[x.given],
                "predicted": classes[x.predicted],
                "p_given": x.p_given,
                "p_predicted": x.p_predicted,
                "loss": x.loss,
            })
        })
        .collect()
}

/// Writes the first nine suspects' pictures as a 3×3 grid to `path`, each titled
/// `given → predicted p` (p of the predicted class); an unreadable picture stays blank.
pub fn write_suspects_png(
    path: &Path,
    suspects: &[Suspect],
    classes: &[String],
) -> anyhow::Result<()> {
    let images: Vec<(Vec<f32>, String)> = suspects
        .iter()
        .take(9)
        .map(|x| {
            let title = format!(
                "{} → {} {:.2}",
                classes[x.given], classes[x.predicted], x.p_predicted
            );
            (thumbnail(&x.path).unwrap_or_else(blank), title)
        })
        .collect();
    write_grid_png(path, &images, THUMB as usize, THUMB as usize)?;
    Ok(())
}

fn blank() -> Vec<f32> {
    vec![255.0; (THUMB * THUMB * 3) as usize]
}

/// The picture at `path` fitted into a white THUMB×THUMB square, aspect ratio kept.
fn thumbnail(path: &Path) -> Option<Vec<f32>> {
    let img = crate::data::decode::decode_rgb8(path).ok()?.into_image();
    let (w, h) = img.dimensions();
    let scale = THUMB as f64 / w.max(h).max(1) as f64;
    let (tw, th) = (
        ((w as f64 * scale).round() as u32).clamp(1, THUMB),
        ((h as f64 * scale).round() as u32).clamp(1, THUMB),
    );
    let small = image::imageops::resize(&img, tw, th, image::imageops::FilterType::Triangle);
    let mut canvas = image::RgbImage::from_pixel(THUMB, THUMB, image::Rgb([255, 255, 255]));
    image::imageops::overlay(
        &mut canvas,
        &small,
        ((THUMB - tw) / 2) as i64,
        ((THUMB - th) / 2) as i64,
    );
    Some(canvas.into_raw().into_iter().map(f32::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["cats".into(), "dogs".into()]
    }

    #[test]
    fn the_highest_loss_comes_first_and_loss_is_clipped_as_keras_does() {
        let paths: Vec<PathBuf> = ["a", "b", "c", "d"].iter().map(PathBuf::from).collect();
        let labels = [0, 1, 0, 1];
        let probs = vec![
            vec![0.9, 0.1],   // right, confident
            vec![0.8, 0.2],   // wrong
            vec![0.0, 1.0],   // wrong, certain: loss −ln 1e-7
            vec![0.45, 0.55], // right, unsure
        ];
        let s = most_suspect(&paths, &labels, &probs, 3);
        let order: Vec<&str> = s.iter().map(|x| x.path.to_str().unwrap()).collect();
        assert_eq!(order, ["c", "b", "d"]);
        approx::assert_relative_eq!(s[0].loss, -(1e-7f64).ln());
        assert_eq!((s[0].given, s[0].predicted), (0, 1));
        approx::assert_relative_eq!(s[1].loss, -(0.2f32 as f64).ln(), max_relative = 1e-12);
        assert_eq!(most_suspect(&paths, &labels, &probs, 10).len(), 4);
        let table = render(&s, &names(), Path::new(""));
        assert!(table.lines().nth(2).unwrap().contains("cats"), "{table}");
        let json = to_json(&s, &names());
        assert_eq!(json[1]["given"], "dogs");
        assert_eq!(json[1]["predicted"], "cats");
    }

    #[test]
    fn the_grid_is_written_even_for_an_unreadable_picture() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.png");
        image::RgbImage::from_pixel(40, 20, image::Rgb([200, 10, 10]))
            .save(&good)
            .unwrap();
        let thumb = thumbnail(&good).unwrap();
        // 40×20 fits as 200×100, centred: the top rows white, the middle red.
        assert_eq!(&thumb[..3], &[255.0, 255.0, 255.0]);
        let mid = ((100 * THUMB + 100) * 3) as usize;
        assert_eq!(&thumb[mid..mid + 3], &[200.0, 10.0, 10.0]);
        let suspects = vec![
            Suspect {
                path: good,
                given: 0,
                predicted: 1,
                p_given: 0.1,
                p_predicted: 0.9,
                loss: 2.3,
            },
            Suspect {
                path: dir.path().join("gone.png"),
                given: 1,
                predicted: 0,
                p_given: 0.2,
                p_predicted: 0.8,
                loss: 1.6,
            },
        ];
        let png = dir.path().join("worst.png");
        write_suspects_png(&png, &suspects, &names()).unwrap();
        assert!(image::open(&png).is_ok());
    }
}
