//! The input geometry of the model: its size ([`ImageSize`], Keras' `image_size=(height, width)`)
//! and its colour mode ([`ColorMode`], Keras' `color_mode`), one type each for every place that
//! takes them (flags, the loader, the model, model.json, the run fingerprint). Here rather than
//! in `data` because the model builder, which the kernels-only build keeps, takes the size.

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "serde")]
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Input height and width in pixels. Written as the flag takes it: `180` for 180×180 (Keras'
/// `image_size=180`, square), `120,160` for 120 high and 160 wide (Keras'
/// `image_size=(120, 160)`). In JSON (model.json, run.json) a square size is the number, as
/// files written before non-square sizes existed hold it, and any other is `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageSize {
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
}

impl ImageSize {
    /// `n`×`n`.
    pub const fn square(n: usize) -> Self {
        Self {
            height: n,
            width: n,
        }
    }

    /// Pixels of one channel: height × width.
    pub const fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// True when a side is 0 (no image has that size).
    pub const fn is_empty(&self) -> bool {
        self.height == 0 || self.width == 0
    }

    /// The larger side (what "smaller than" means for the quick-start hints).
    pub fn max_side(&self) -> usize {
        self.height.max(self.width)
    }
}

impl fmt::Display for ImageSize {
    /// The flag's own syntax, so that a message can be pasted back: `180` or `120,160`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.height == self.width {
            write!(f, "{}", self.height)
        } else {
            write!(f, "{},{}", self.height, self.width)
        }
    }
}

impl FromStr for ImageSize {
    type Err = String;

    /// `N` (N×N) or `H,W` (height, width), positive integers.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "--image-size takes N (an N×N image) or H,W (height,width), positive whole \
                 numbers such as 180 or 120,160; \"{s}\" {why}"
            )
        };
        let sides: Vec<&str> = s.split(',').map(str::trim).collect();
        if sides.len() > 2 {
            return Err(bad(&format!("has {} values", sides.len())));
        }
        let mut n = [0usize; 2];
        for (i, side) in sides.iter().enumerate() {
            n[i] = side
                .parse::<usize>()
                .map_err(|_| bad(&format!("has \"{side}\", not a whole number")))?;
            if n[i] == 0 {
                return Err(bad("has a side of 0"));
            }
        }
        Ok(match sides.len() {
            1 => Self::square(n[0]),
            _ => Self {
                height: n[0],
                width: n[1],
            },
        })
    }
}

#[cfg(feature = "serde")]
impl Serialize for ImageSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.height == self.width {
            s.serialize_u64(self.height as u64)
        } else {
            [self.height, self.width].serialize(s)
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> Deserialize<'de> for ImageSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A number (square: every file written before `[height, width]` existed) or a pair.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Json {
            Square(usize),
            Sides([usize; 2]),
        }
        match Json::deserialize(d) {
            Ok(Json::Square(n)) => Ok(Self::square(n)),
            Ok(Json::Sides([height, width])) => Ok(Self { height, width }),
            Err(_) => Err(serde::de::Error::custom(
                "image_size must be a whole number (N×N) or [height, width]",
            )),
        }
    }
}

/// The channels images are decoded to and the model takes (Keras' `color_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum ColorMode {
    /// Red, green, blue: gray files are replicated, alpha dropped.
    #[default]
    Rgb,
    /// One luma channel: colour files are converted (`data::geometry::rgb_to_gray`, with
    /// TensorFlow's `rgb_to_grayscale` weights).
    Grayscale,
}

impl ColorMode {
    /// 3 or 1.
    pub const fn channels(self) -> usize {
        match self {
            Self::Rgb => 3,
            Self::Grayscale => 1,
        }
    }

    /// The flag's value: `rgb` or `grayscale`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rgb => "rgb",
            Self::Grayscale => "grayscale",
        }
    }

    /// Pixels of this mode as RGB for drawing (a gray value repeated three times).
    pub fn to_rgb(self, pixels: &[f32]) -> Vec<f32> {
        match self {
            Self::Rgb => pixels.to_vec(),
            Self::Grayscale => pixels.iter().flat_map(|&v| [v; 3]).collect(),
        }
    }
}

impl fmt::Display for ColorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ColorMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rgb" => Ok(Self::Rgb),
            "grayscale" | "greyscale" => Ok(Self::Grayscale),
            "rgba" => Err(
                "--color-mode rgba is not supported: the alpha channel carries no \
                 image content for a classifier; use rgb (alpha dropped) or grayscale"
                    .into(),
            ),
            other => Err(format!(
                "--color-mode takes rgb or grayscale (Keras' color_mode), not \"{other}\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_size_parses_n_and_h_w_and_prints_back() {
        assert_eq!("180".parse::<ImageSize>(), Ok(ImageSize::square(180)));
        let hw: ImageSize = "12,20".parse().unwrap();
        assert_eq!((hw.height, hw.width), (12, 20));
        assert_eq!(" 7 , 9 ".parse::<ImageSize>().unwrap().to_string(), "7,9");
        assert_eq!(ImageSize::square(180).to_string(), "180");
        assert_eq!(hw.to_string(), "12,20");
        // "16,16" is 16: one size, one spelling.
        assert_eq!("16,16".parse::<ImageSize>().unwrap().to_string(), "16");
        assert_eq!((hw.pixels(), hw.max_side()), (240, 20));
    }

    #[test]
    fn bad_image_sizes_name_the_flag_and_the_fault() {
        for (bad, why) in [
            ("0", "side of 0"),
            ("12,0", "side of 0"),
            ("a,b", "\"a\", not a whole number"),
            ("1,2,3", "3 values"),
            ("", "not a whole number"),
            ("-4", "not a whole number"),
            ("12x20", "not a whole number"),
        ] {
            let e = bad.parse::<ImageSize>().unwrap_err();
            assert!(e.contains("--image-size") && e.contains(why), "{bad}: {e}");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn image_size_json_is_a_number_when_square_and_old_numbers_read_as_square() {
        assert_eq!(serde_json::to_string(&ImageSize::square(16)).unwrap(), "16");
        let hw = ImageSize {
            height: 12,
            width: 20,
        };
        assert_eq!(serde_json::to_string(&hw).unwrap(), "[12,20]");
        assert_eq!(
            serde_json::from_str::<ImageSize>("16").unwrap(),
            ImageSize::square(16)
        );
        assert_eq!(serde_json::from_str::<ImageSize>("[12,20]").unwrap(), hw);
        let e = serde_json::from_str::<ImageSize>("[1,2,3]").unwrap_err();
        assert!(e.to_string().contains("[height, width]"), "{e}");
    }

    #[test]
    fn color_modes_parse_and_rgba_is_refused_with_the_flag() {
        assert_eq!("rgb".parse::<ColorMode>(), Ok(ColorMode::Rgb));
        assert_eq!("grayscale".parse::<ColorMode>(), Ok(ColorMode::Grayscale));
        assert_eq!(
            (ColorMode::Rgb.channels(), ColorMode::Grayscale.channels()),
            (3, 1)
        );
        for bad in ["rgba", "cmyk", ""] {
            let e = bad.parse::<ColorMode>().unwrap_err();
            assert!(e.contains("--color-mode"), "{bad}: {e}");
        }
        #[cfg(feature = "serde")]
        assert_eq!(
            serde_json::to_string(&ColorMode::Grayscale).unwrap(),
            "\"grayscale\""
        );
    }
}
