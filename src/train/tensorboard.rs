//! TensorBoard event files (`gpucnn train --tensorboard`, Keras' `TensorBoard` callback):
//! `--out/logs/train/` and `--out/logs/validation/`, as Keras lays them out, so that
//! `tensorboard --logdir runs/` shows every run with its training and validation curves
//! overlaid.
//!
//! An event file is a sequence of records, each `len: u64 LE`, `masked_crc32c(len)`, the bytes
//! of one `tensorflow.Event` protobuf, `masked_crc32c(bytes)` (TFRecord framing). The first
//! event names the file version; each later one holds a `Summary` of scalar values
//! (`simple_value`) or a PNG image, at a step. The protobuf messages are declared here with
//! prost's derive (the fields TensorBoard reads, with their tag numbers from TensorFlow's
//! event.proto and summary.proto); the CRC is the `crc32c` crate's.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

/// `tensorflow.Event`.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
struct Value {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(oneof = "Kind", tags = "2, 4")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "4")]
    Image(Image),
}

/// `tensorflow.Summary.Image`: an encoded PNG.
#[derive(Clone, PartialEq, prost::Message)]
struct Image {
    #[prost(int32, tag = "1")]
    height: i32,
    #[prost(int32, tag = "2")]
    width: i32,
    /// 3: RGB.
    #[prost(int32, tag = "3")]
    colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    encoded_image_string: Vec<u8>,
}

/// TFRecord's masked CRC-32C.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its CRC, the data, its CRC.
fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One event file, appended event by event (each flushed, so TensorBoard shows a run live).
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// A new event file in `dir` (created), named as TensorFlow names them:
    /// `events.out.tfevents.<seconds>.<host>.<pid>.<n>.v2` (a resumed run adds a file).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let secs = now() as u64;
        let mut n = 0;
        let (file, path) = loop {
            let path = dir.join(format!(
                "events.out.tfevents.{secs}.{host}.{}.{n}.v2",
                std::process::id()
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => break (f, path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e),
            }
        };
        let mut w = Self { file, path };
        w.write(Event {
            wall_time: now(),
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        })?;
        Ok(w)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, e: Event) -> std::io::Result<()> {
        self.file.write_all(&record(&e.encode_to_vec()))?;
        self.file.flush()
    }

    fn summary(&mut self, step: i64, value: Vec<Value>) -> std::io::Result<()> {
        self.write(Event {
            wall_time: now(),
            step,
            what: Some(What::Summary(Summary { value })),
        })
    }

    /// Scalars `(tag, value)` at `step`, in one event (non-finite values are left out).
    pub fn scalars(&mut self, step: i64, values: &[(&str, f32)]) -> std::io::Result<()> {
        let value = values
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(tag, v)| Value {
                tag: tag.to_string(),
                kind: Some(Kind::SimpleValue(*v)),
            })
            .collect();
        self.summary(step, value)
    }

    /// A PNG image (`png`: encoded bytes of `width`×`height` RGB) under `tag` at `step`.
    pub fn image(
        &mut self,
        step: i64,
        tag: &str,
        png: Vec<u8>,
        width: u32,
        height: u32,
    ) -> std::io::Result<()> {
        let value = vec![Value {
            tag: tag.into(),
            kind: Some(Kind::Image(Image {
                height: height as i32,
                width: width as i32,
                colorspace: 3,
                encoded_image_string: png,
            })),
        }];
        self.summary(step, value)
    }
}

/// The run's two event files, as Keras writes them: `logs/train` (per-epoch `epoch_*` and every
/// few steps `batch_*` scalars, the first batch's images) and `logs/validation` (`epoch_*`).
pub struct TensorBoard {
    pub train: EventWriter,
    pub validation: EventWriter,
}

impl TensorBoard {
    /// New event files under `out/logs`.
    pub fn create(out: &Path) -> std::io::Result<Self> {
        let logs = out.join("logs");
        Ok(Self {
            train: EventWriter::create(&logs.join("train"))?,
            validation: EventWriter::create(&logs.join("validation"))?,
        })
    }
}

/// `rgb` (`width`×`height`, 3 bytes a pixel) as PNG bytes.
pub fn png_bytes(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, image::ImageError> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(
        rgb,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_tensorflow_for_known_bytes() {
        // CRC-32C("123456789") = 0xE3069283 (the standard check value), masked as TFRecord does.
        let crc = 0xE306_9283u32;
        assert_eq!(crc32c::crc32c(b"123456789"), crc);
        // TFRecord's mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8, worked out by hand.
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn a_record_frames_its_data_with_length_and_both_crcs() {
        let r = record(b"abc");
        assert_eq!(r.len(), 8 + 4 + 3 + 4);
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
        assert_eq!(&r[15..], &masked_crc(b"abc").to_le_bytes());
    }
}
