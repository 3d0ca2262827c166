//! Decoding to the model's colour mode: the gray conversion of `--color-mode grayscale`. The
//! geometry types live in [`crate::model::geometry`] (the model builder takes them) and are
//! re-exported here, where the data pipeline's users look.

pub use crate::model::geometry::{ColorMode, ImageSize};

/// The weights of TensorFlow's `tf.image.rgb_to_grayscale` (ITU-R BT.601 luma: 0.2989 R +
/// 0.5870 G + 0.1140 B), which is what Keras users get from
/// `image_dataset_from_directory(color_mode="grayscale")` on JPEGs (libjpeg's conversion uses
/// the same BT.601 weights). Not the image crate's `to_luma8`, which uses BT.709's
/// (0.2126, 0.7152, 0.0722) and would give a green-heavy image TF never shows the model.
pub const GRAY_WEIGHTS: [f32; 3] = [0.2989, 0.5870, 0.1140];

/// One gray byte per RGB pixel of `rgb` (interleaved R, G, B), with [`GRAY_WEIGHTS`], rounded
/// to nearest. A gray image stored as RGB (R = G = B) comes back unchanged: the weights sum to
/// 0.9999, so v·0.9999 rounds to v for every byte v.
pub fn rgb_to_gray(rgb: &[u8]) -> Vec<u8> {
    let [r, g, b] = GRAY_WEIGHTS;
    rgb.chunks_exact(3)
        .map(|p| {
            let y = r * p[0] as f32 + g * p[1] as f32 + b * p[2] as f32;
            y.round().clamp(0.0, 255.0) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_conversion_uses_tensorflow_weights_and_keeps_gray_pixels() {
        // Pure red, green, blue: TF's rgb_to_grayscale gives 76.2, 149.7, 29.1.
        assert_eq!(
            rgb_to_gray(&[255, 0, 0, 0, 255, 0, 0, 0, 255]),
            [76, 150, 29]
        );
        // The image crate's BT.709 weights would give 54, 182, 18.
        let gray: Vec<u8> = (0..=255).flat_map(|v| [v, v, v]).collect();
        assert_eq!(rgb_to_gray(&gray), (0..=255).collect::<Vec<u8>>());
        assert_eq!(
            ColorMode::Grayscale.to_rgb(&[1.0, 2.0]),
            [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
    }
}
