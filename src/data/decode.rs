//! Decoding an image file to RGB and resizing it as TensorFlow's `tf.image.resize` does
//! (bilinear, half-pixel centres, no antialiasing), which is what Keras'
//! `image_dataset_from_directory` feeds the model.
//!
//! - Formats: JPEG (baseline and progressive), PNG (8/16 bit, gray, gray+alpha, RGB, RGBA,
//!   palette), BMP, GIF (first frame), WebP (lossy and lossless, with the image crate's pure-Rust
//!   decoder; first frame of an animation). Decoded to 3 channels: gray is replicated, alpha
//!   dropped (as TF's `decode_image(channels=3)`), 16-bit samples rounded to 8 bits by the image
//!   crate; `--color-mode grayscale` then converts to one channel before the resize
//!   ([`super::geometry::rgb_to_gray`]).
//!   EXIF orientation is ignored, as TF ignores it.
//! - Decompression bombs: the header's dimensions are read first and an image over
//!   [`MAX_IMAGE_SIDE`] per side or over the pixel limit ([`MAX_IMAGE_PIXELS`] unless the
//!   environment variable `GPUCNN_MAX_IMAGE_PIXELS` raises or lowers it) is refused before any
//!   pixel buffer is allocated.
//! - Memory: every decode first reserves what it will allocate (the decoder's native buffer,
//!   e.g. 8 bytes a pixel for 16-bit RGBA, plus the 3-byte RGB copy) from one budget shared by
//!   all threads of the process ([`DEFAULT_DECODE_BUDGET_MIB`], or `GPUCNN_DECODE_MEMORY_MIB`),
//!   and holds it until the decoded image is dropped. N decoding threads therefore never hold N
//!   huge images at once: a large image waits until the others are done (an image larger than
//!   the whole budget decodes alone). Neither decoder can downscale while decoding (zune-jpeg,
//!   which the image crate uses, has no DCT scaling), so the budget is what bounds memory.
//! - Truncated JPEGs (no end-of-image marker after the last scan) are refused: TensorFlow fails
//!   on them, and the image crate would silently fill the missing part with grey. So is a JPEG
//!   too short for its own header: every 8×8 block of every component costs at least one bit of
//!   entropy-coded data, so a file of a few KB that claims 8192×8192 pixels cannot be complete.
//! - Output of [`load_resized`]: f32 HWC, values 0–255 (not rescaled; the model's Rescaling layer
//!   divides by 255), exactly the resize's float output.

use std::fs;
use std::io::{self, Cursor};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

pub use super::resize::{
    ResizeOptions, aspect_crop, extend_f32, quantize_u8, resize_bilinear, resize_rgb8,
};

/// Largest accepted width or height, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 16384;
/// Default largest pixel count (64 Mpixel: above any camera, far below a decompression bomb);
/// `GPUCNN_MAX_IMAGE_PIXELS` overrides it.
pub const MAX_IMAGE_PIXELS: u64 = 64 * 1024 * 1024;
/// Largest accepted file size (256 MiB): files are read whole before decoding.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Default memory budget of all decodes in flight, in MiB (`GPUCNN_DECODE_MEMORY_MIB`
/// overrides it): one image at the default pixel limit as 16-bit RGBA plus its RGB copy
/// (704 MiB) fits, or a few dozen 12-Mpixel photos at once.
pub const DEFAULT_DECODE_BUDGET_MIB: u64 = 1024;
/// Environment variable overriding the pixel limit.
pub const MAX_PIXELS_ENV: &str = "GPUCNN_MAX_IMAGE_PIXELS";
/// Environment variable overriding the decode memory budget (MiB).
pub const BUDGET_ENV: &str = "GPUCNN_DECODE_MEMORY_MIB";

/// The limits decoding runs under, read once from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeSettings {
    /// Largest accepted width × height.
    pub max_pixels: u64,
    /// Bytes that all decodes in flight may hold together.
    pub budget_bytes: u64,
}

impl DecodeSettings {
    /// The settings from `GPUCNN_MAX_IMAGE_PIXELS` and `GPUCNN_DECODE_MEMORY_MIB` (defaults
    /// where unset); the error names the variable and what it accepts.
    pub fn from_env() -> Result<Self, String> {
        let read = |name: &str, default: u64, what: &str| match std::env::var(name) {
            Err(std::env::VarError::NotPresent) => Ok(default),
            Ok(v) => match v.trim().replace('_', "").parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "{name}={v:?} is not a positive whole number ({what}); unset it for the \
                     default of {default}"
                )),
            },
            Err(e) => Err(format!("{name}: {e}")),
        };
        let max_pixels = read(
            MAX_PIXELS_ENV,
            MAX_IMAGE_PIXELS,
            "the largest width × height",
        )?;
        let budget_mib = read(BUDGET_ENV, DEFAULT_DECODE_BUDGET_MIB, "MiB for decoding")?;
        Ok(Self {
            max_pixels,
            budget_bytes: budget_mib.saturating_mul(1 << 20),
        })
    }
}

/// The process's settings (read on first use).
pub fn settings() -> Result<DecodeSettings, DecodeSettingError> {
    static SETTINGS: OnceLock<Result<DecodeSettings, String>> = OnceLock::new();
    SETTINGS
        .get_or_init(DecodeSettings::from_env)
        .clone()
        .map_err(DecodeSettingError)
}

/// An environment variable of decoding holds an unusable value (bad input: exit status 2).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DecodeSettingError(pub String);

/// A counting semaphore over bytes: what the decodes in flight may hold together.
#[derive(Debug)]
pub struct MemoryBudget {
    total: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

/// Bytes reserved from a [`MemoryBudget`], given back when dropped.
#[derive(Debug)]
pub struct BudgetPermit<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    /// A budget of `total` bytes.
    pub fn new(total: u64) -> Self {
        Self {
            total: total.max(1),
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Reserves `bytes`, waiting until they are free. A request over the whole budget is
    /// granted alone (it waits until nothing else is held), so no request waits forever.
    pub fn acquire(&self, bytes: u64) -> BudgetPermit<'_> {
        let bytes = bytes.min(self.total);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + bytes > self.total {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += bytes;
        BudgetPermit {
            budget: self,
            bytes,
        }
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The budget's size in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl BudgetPermit<'_> {
    /// Gives back all but `bytes` of the reservation (nothing if it holds no more).
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
            *used -= self.bytes - bytes;
            self.bytes = bytes;
            self.budget.freed.notify_all();
        }
    }

    /// Bytes this permit holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for BudgetPermit<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// The budget every decode of this process draws from.
pub fn decode_budget() -> &'static MemoryBudget {
    static BUDGET: OnceLock<MemoryBudget> = OnceLock::new();
    BUDGET.get_or_init(|| {
        let bytes = settings().map_or(DEFAULT_DECODE_BUDGET_MIB << 20, |s| s.budget_bytes);
        MemoryBudget::new(bytes)
    })
}

/// A decoded image, holding its share of the decode budget until dropped (read it through
/// `Deref`; [`Decoded::into_image`] gives the image up and the budget back).
#[derive(Debug)]
pub struct Decoded {
    image: RgbImage,
    _permit: BudgetPermit<'static>,
}

impl Decoded {
    /// The image, releasing its budget (the caller then owns its memory unaccounted).
    pub fn into_image(self) -> RgbImage {
        self.image
    }
}

impl Deref for Decoded {
    type Target = RgbImage;
    fn deref(&self) -> &RgbImage {
        &self.image
    }
}

/// Why a file could not be turned into an image.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is empty.
    #[error("{path} is empty (zero bytes)")]
    Empty {
        /// The file at fault.
        path: PathBuf,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is {bytes} bytes, over the limit of {MAX_FILE_BYTES}: remove it or shrink it")]
    FileTooLarge {
        /// The file at fault.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The content is not a JPEG, PNG, BMP, GIF or WebP, whatever the extension says.
    #[error("{path} is not a JPEG, PNG, BMP, GIF or WebP image (unrecognised content)")]
    NotAnImage {
        /// The file at fault.
        path: PathBuf,
    },
    /// The header claims dimensions over the limits (a decompression bomb or a huge scan).
    #[error(
        "{path} is {width}×{height} pixels, over the limit of {MAX_IMAGE_SIDE} per side and \
         {max_pixels} pixels: refused before decoding; shrink it or remove it, or raise the \
         pixel limit with {MAX_PIXELS_ENV}=<pixels>"
    )]
    TooLarge {
        /// The file at fault.
        path: PathBuf,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The pixel limit in force.
        max_pixels: u64,
    },
    /// A decoding environment variable is unusable (see [`DecodeSettings::from_env`]).
    #[error("cannot decode {path}: {message}")]
    Setting {
        /// The file that was to be decoded.
        path: PathBuf,
        /// What is wrong with the variable.
        message: String,
    },
    /// The header claims a zero width or height.
    #[error("{path} has zero width or height ({width}×{height})")]
    ZeroSized {
        /// The file at fault.
        path: PathBuf,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// A JPEG ends before its end-of-image marker.
    #[error("{path} is a truncated JPEG (no end-of-image marker after the last scan)")]
    TruncatedJpeg {
        /// The file at fault.
        path: PathBuf,
    },
    /// A JPEG holds less data than its header's blocks need (at least one bit each).
    #[error(
        "{path} is a truncated or corrupt JPEG: {bytes} bytes cannot hold the {blocks} blocks of \
         8×8 pixels its {width}×{height} header declares (each takes at least one bit)"
    )]
    JpegTooShort {
        /// The file at fault.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// 8×8 blocks over all components.
        blocks: u64,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// The decoder rejected the data (corrupt or truncated).
    #[error("{path} cannot be decoded as {format}: {message}")]
    Corrupt {
        /// The file at fault.
        path: PathBuf,
        /// The format its content claims.
        format: String,
        /// The decoder's message.
        message: String,
    },
}

impl DecodeError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Empty { path }
            | Self::FileTooLarge { path, .. }
            | Self::NotAnImage { path }
            | Self::TooLarge { path, .. }
            | Self::Setting { path, .. }
            | Self::ZeroSized { path, .. }
            | Self::TruncatedJpeg { path }
            | Self::JpegTooShort { path, .. }
            | Self::Corrupt { path, .. } => path,
        }
    }
}

/// Reads `path` and decodes it to 8-bit RGB (see module docs for formats, refusals and the
/// memory budget the result holds). Drop the result before decoding the next image on the same
/// thread: a thread that holds budget while it waits for more could wait forever once images
/// are large enough to fill the budget.
pub fn decode_rgb8(path: &Path) -> Result<Decoded, DecodeError> {
    decode_bytes_rgb8(path, &read_image_file(path)?)
}

/// The bytes of the file at `path`, refused (unread) over [`MAX_FILE_BYTES`]; the errors name
/// the file. What [`decode_rgb8`] decodes, for a caller that also wants the bytes themselves
/// (a content hash).
pub fn read_image_file(path: &Path) -> Result<Vec<u8>, DecodeError> {
    let io_error = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(io_error)?;
    let bytes = file.metadata().map_err(io_error)?.len();
    if bytes > MAX_FILE_BYTES {
        return Err(DecodeError::FileTooLarge {
            path: path.to_path_buf(),
            bytes,
        });
    }
    let mut data = Vec::with_capacity(bytes as usize);
    // take() guards against a file that grows between the size check and the read.
    io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES + 1), &mut data)
        .map_err(io_error)?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(DecodeError::FileTooLarge {
            path: path.to_path_buf(),
            bytes: data.len() as u64,
        });
    }
    Ok(data)
}

/// Decodes an in-memory file (`path` only names it in errors) to 8-bit RGB, within the
/// process's decode budget ([`decode_budget`]).
pub fn decode_bytes_rgb8(path: &Path, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let format = check_header(path, bytes)?;
    let corrupt = |e: image::ImageError| DecodeError::Corrupt {
        path: path.to_path_buf(),
        format: format!("{format:?}").to_uppercase(),
        message: e.to_string(),
    };
    if format == ImageFormat::Jpeg {
        if !jpeg_has_end_marker(bytes) {
            return Err(DecodeError::TruncatedJpeg {
                path: path.to_path_buf(),
            });
        }
        if let Some((width, height, blocks)) = jpeg_blocks(bytes)
            && (bytes.len() as u64).saturating_mul(8) < blocks
        {
            return Err(DecodeError::JpegTooShort {
                path: path.to_path_buf(),
                bytes: bytes.len() as u64,
                blocks,
                width,
                height,
            });
        }
    }
    // A decoder bug on hostile input must cost one file, not the training run.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        reader.limits(decode_limits());
        let mut decoder = reader.into_decoder()?;
        // Reserve what the decode will hold at its peak: the decoder's native buffer, plus
        // the RGB copy unless the native buffer already is 8-bit RGB (then it is reused).
        let (w, h) = decoder.dimensions();
        let native = decoder.total_bytes();
        let rgb = w as u64 * h as u64 * 3;
        let peak = if decoder.color_type() == ColorType::Rgb8 {
            native
        } else {
            native + rgb
        };
        let mut limits = decode_limits();
        limits.reserve(native)?;
        decoder.set_limits(limits)?;
        let permit = decode_budget().acquire(peak);
        // For a GIF this is the first frame, as TensorFlow's decode_image(expand_animations=
        // False).
        let image = DynamicImage::from_decoder(decoder)?.into_rgb8();
        // Only the RGB image is left: give back the rest of the reservation.
        let mut permit = permit;
        permit.shrink_to(rgb);
        Ok::<_, image::ImageError>(Decoded {
            image,
            _permit: permit,
        })
    }));
    match decoded {
        Ok(result) => result.map_err(corrupt),
        Err(_) => Err(DecodeError::Corrupt {
            path: path.to_path_buf(),
            format: format!("{format:?}").to_uppercase(),
            message: "the decoder crashed on this file".into(),
        }),
    }
}

/// Checks the file is non-empty, recognisable, and within the size limits, reading only its
/// header; returns its format. Nothing proportional to the pixel count is allocated.
pub fn check_header(path: &Path, bytes: &[u8]) -> Result<ImageFormat, DecodeError> {
    let max_pixels = settings()
        .map_err(|e| DecodeError::Setting {
            path: path.to_path_buf(),
            message: e.0,
        })?
        .max_pixels;
    if bytes.is_empty() {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    let format = match image::guess_format(bytes) {
        Ok(
            f @ (ImageFormat::Jpeg
            | ImageFormat::Png
            | ImageFormat::Bmp
            | ImageFormat::Gif
            | ImageFormat::WebP),
        ) => f,
        _ => {
            return Err(DecodeError::NotAnImage {
                path: path.to_path_buf(),
            });
        }
    };
    // The header read gets the default limits (bounded metadata buffers) but no dimension
    // limits, so that an oversized image is reported with its size below.
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(Limits::default());
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| header_error(path, format, e))?;
    if width == 0 || height == 0 {
        return Err(DecodeError::ZeroSized {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    if width > MAX_IMAGE_SIDE
        || height > MAX_IMAGE_SIDE
        || width as u64 * height as u64 > max_pixels
    {
        return Err(DecodeError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            max_pixels,
        });
    }
    Ok(format)
}

fn header_error(path: &Path, format: ImageFormat, e: image::ImageError) -> DecodeError {
    DecodeError::Corrupt {
        path: path.to_path_buf(),
        format: format!("{format:?}").to_uppercase(),
        message: format!("bad header: {e}"),
    }
}

fn decode_limits() -> Limits {
    let max_pixels = settings().map_or(MAX_IMAGE_PIXELS, |s| s.max_pixels);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    // What a decoder may allocate: the largest accepted image as 16-bit RGBA, plus slack.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    limits
}

/// A Huffman-coded JPEG's frame header (SOF0–SOF3, SOF5–SOF7): (width, height, 8×8 blocks
/// over all components), or `None` when there is none before the first scan or the file is
/// arithmetic-coded. Component c of sampling factors (h_c, v_c) covers ⌈W·h_c/h_max⌉ × ⌈H·v_c/v_max⌉
/// pixels, ⌈·/8⌉ blocks each way (ITU T.81 A.1.1).
fn jpeg_blocks(bytes: &[u8]) -> Option<(u32, u32, u64)> {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            i += 1;
            continue;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF || marker == 0x00 || (0xD0..=0xD9).contains(&marker) || marker == 0x01 {
            i += 1;
            continue;
        }
        if marker == 0xDA {
            return None;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        // Arithmetic coding (SOF9 and up) can spend less than a bit on a block: no bound.
        if (0xC9..=0xCF).contains(&marker) && marker != 0xCC {
            return None;
        }
        if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7) {
            let seg = bytes.get(i + 4..i + 2 + len)?;
            let (h, w) = (
                u16::from_be_bytes([*seg.get(1)?, *seg.get(2)?]) as u64,
                u16::from_be_bytes([*seg.get(3)?, *seg.get(4)?]) as u64,
            );
            let n = *seg.get(5)? as usize;
            let comps: Vec<(u64, u64)> = (0..n)
                .map(|c| {
                    seg.get(6 + 3 * c + 1)
                        .map(|&f| ((f >> 4) as u64, (f & 15) as u64))
                })
                .collect::<Option<_>>()?;
            let hmax = comps.iter().map(|c| c.0).max()?.max(1);
            let vmax = comps.iter().map(|c| c.1).max()?.max(1);
            let blocks = comps
                .iter()
                .map(|&(hc, vc)| {
                    let cw = (w * hc).div_ceil(hmax);
                    let ch = (h * vc).div_ceil(vmax);
                    cw.div_ceil(8) * ch.div_ceil(8)
                })
                .sum();
            return Some((w as u32, h as u32, blocks));
        }
        i += 2 + len;
    }
    None
}

/// True when an end-of-image marker (FF D9) follows the last start-of-scan (FF DA). Inside
/// entropy-coded data an FF is always followed by 00 or a restart marker, so this cannot
/// match scan data.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(p) => bytes[p + 2..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// Decodes `path` and resizes it: f32 [H, W, C] (C from `opts.color_mode`), values 0–255, as
/// Keras feeds the model (the decoded image's budget is held until the resize is done).
pub fn load_resized(path: &Path, opts: &ResizeOptions) -> Result<Vec<f32>, DecodeError> {
    Ok(resize_rgb8(&*decode_rgb8(path)?, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_end_marker_detection() {
        assert!(jpeg_has_end_marker(&[
            0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0xD9
        ]));
        assert!(!jpeg_has_end_marker(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 3]));
        // An EOI before the last scan (a thumbnail's) does not count.
        assert!(!jpeg_has_end_marker(&[0xFF, 0xD9, 0xFF, 0xDA, 1, 2]));
    }
}
