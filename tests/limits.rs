//! Settings that do not fit the device: a model too wide, a batch too large, a model.json
//! edited out of range. Each must be refused at planning time with exit status 2 and a message
//! that says what fits (or run, where it can), never panic.

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_exit, gpucnn, gpucnn_cmd, s, stderr, stdout, write_gradient_image};
use gpucnn::commands::exit::exit_code;
use gpucnn::error::EXIT_BAD_INPUT;
use gpucnn::gpu::test_context;
use gpucnn::graph::ParamLayout;
use gpucnn::graph::executor::{ExecError, TrainStep};
use gpucnn::graph::memory::check_device_fit;
use gpucnn::model::{XceptionConfig, xception_mini};
use gpucnn::train::checkpoint::{ModelConfig, save_checkpoint, write_model_json};

fn model(image_size: usize, width: f32) -> gpucnn::graph::Model {
    xception_mini(&XceptionConfig {
        image_size: gpucnn::model::ImageSize::square(image_size),
        width,
        // No dropout: every classifier weight gets a gradient (see the width-4 step).
        dropout: 0.0,
        ..Default::default()
    })
    .unwrap()
}

/// Lavapipe's limits: 128 MiB per binding, 2 GiB per buffer.
fn lavapipe_limits() -> wgpu::Limits {
    wgpu::Limits {
        max_storage_buffer_binding_size: 128 << 20,
        max_buffer_size: (2 << 30) - 1,
        ..Default::default()
    }
}

#[test]
fn a_model_too_wide_for_the_binding_limit_is_refused_with_the_width_factor_that_fits() {
    let limits = lavapipe_limits();
    // Width 4 has 43 M parameters (172 MB, more than one binding) but no single tensor over
    // 128 MiB: it fits, its flat buffers are updated in slices.
    check_device_fit(&model(16, 4.0), 8, 8, &limits).unwrap();
    // Width 8: the last pointwise kernel alone is 5824 × 8192 floats (182 MiB).
    let e = check_device_fit(&model(16, 8.0), 8, 8, &limits).unwrap_err();
    let ExecError::ParameterTooLarge {
        ref name,
        width_factor,
        ..
    } = e
    else {
        panic!("{e}")
    };
    assert_eq!(name, "separable_conv2d_6/pointwise_kernel");
    assert!((width_factor - (128.0 / 182.0f64).sqrt()).abs() < 0.01);
    // The factor really fits: width 8 × 0.83 = 6.6 passes.
    check_device_fit(&model(16, 8.0 * width_factor as f32), 8, 8, &limits).unwrap();
    let msg = e.to_string();
    assert!(msg.contains("scale --width by at most 0.84"), "{msg}");
    assert_eq!(exit_code(&anyhow::Error::from(e)), EXIT_BAD_INPUT);
}

#[test]
fn a_batch_whose_images_exceed_the_largest_buffer_names_the_largest_batch_that_fits() {
    let limits = lavapipe_limits();
    let m = model(180, 0.0625);
    // 180 × 180 × 3 f32 = 388,800 bytes an image: 5523 fit in 2 GiB − 1 bytes.
    check_device_fit(&m, 5523, 8, &limits).unwrap();
    for batch in [5524, 100_000] {
        let e = check_device_fit(&m, batch, 8, &limits).unwrap_err();
        assert!(
            matches!(
                e,
                ExecError::BatchTooLarge {
                    max_batch: 5523,
                    ..
                }
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("--batch-size {batch}"))
                && msg.contains("the largest batch that fits at this --image-size is 5523"),
            "{msg}"
        );
        assert_eq!(exit_code(&anyhow::Error::from(e)), EXIT_BAD_INPUT);
    }
    // Not split into micro-batches, the input is bound whole: the binding limit applies.
    let e = check_device_fit(&m, 346, 346, &limits).unwrap_err();
    assert!(
        matches!(e, ExecError::BatchTooLarge { max_batch: 345, .. }),
        "{e}"
    );
    // One image larger than a binding cannot run at any batch size.
    let e = check_device_fit(&model(4000, 0.0625), 1, 1, &limits).unwrap_err();
    assert!(matches!(e, ExecError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("--image-size"), "{e}");
}

#[test]
fn width_four_compiles_and_trains_where_its_parameters_exceed_one_binding() {
    // Panicked in Adam on lavapipe (172 MB of weights, 128 MiB per binding) before the flat
    // buffers were updated in slices.
    let Some(ctx) = test_context() else { return };
    let m = model(16, 4.0);
    let step = TrainStep::new(&ctx, &m, 2, 1e-3).unwrap();
    let bytes = step.layout.regions[0].1 as u64 * 4;
    if bytes <= ctx.limits.max_storage_buffer_binding_size {
        eprintln!("note: this device binds the whole weights region; slicing not exercised");
    }
    let init = step.layout.initial_values(3);
    step.load_params(&ctx, &init);
    let x: Vec<f32> = (0..2 * 16 * 16 * 3).map(|i| (i % 251) as f32).collect();
    step.write_batch(
        &ctx,
        &x,
        gpucnn::graph::executor::BatchTargets::Binary(&[0.0, 1.0]),
    );
    step.run(&ctx).unwrap();
    let after = step.read_params(&ctx).unwrap();
    // Adam moves every trainable weight by about lr in its first step, the last slice included.
    let (start, len) = step.layout.regions[0];
    let last = &step
        .layout
        .slots
        .iter()
        .rfind(|s| s.offset < start + len)
        .unwrap();
    let moved = (last.offset..last.offset + last.len)
        .filter(|&i| (after[i] - init[i]).abs() > 1e-4)
        .count();
    assert!(moved > last.len / 2, "{moved} of {} moved", last.len);
    assert!(after.iter().all(|v| v.is_finite()));
}

/// Writes a run folder (model.json and best.safetensors with initial weights) for `cfg`.
fn write_run(dir: &Path, cfg: &XceptionConfig) {
    std::fs::create_dir_all(dir).unwrap();
    let mc = ModelConfig::xception_mini(cfg, vec!["a".into(), "b".into()]);
    write_model_json(dir, &mc).unwrap();
    let layout = ParamLayout::new(&xception_mini(cfg).unwrap());
    let params = layout.initial_values(1);
    save_checkpoint(dir.join("best.safetensors"), &layout, &params, &mc, None).unwrap();
}

#[test]
fn predict_with_a_batch_larger_than_the_largest_buffer_runs_in_gpu_batches_that_fit() {
    // Panicked creating a buffer for the whole batch (`predict --batch-size 6000` on a 180-px
    // model on lavapipe); predict needs no such buffer.
    let Some(ctx) = test_context() else { return };
    let per_image = 16 * 16 * 3 * 4;
    let batch = ctx.limits.max_buffer_size / per_image + 1;
    if batch > u32::MAX as u64 {
        eprintln!("SKIPPED: this device's largest buffer holds any batch --batch-size accepts");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = XceptionConfig {
        image_size: gpucnn::model::ImageSize::square(16),
        width: 0.0625,
        ..Default::default()
    };
    write_run(&run, &cfg);
    let img = tmp.path().join("x.png");
    write_gradient_image(&img);
    let batch = batch.to_string();
    let r = gpucnn(&[
        "predict",
        "--model",
        s(&run),
        s(&img),
        "--batch-size",
        &batch,
    ]);
    let printed = stdout(&r);
    assert!(r.status.success(), "{printed}{}", stderr(&r));
    assert!(printed.contains("x.png: This image is"), "{printed}");
}

#[test]
fn train_with_a_batch_over_the_largest_buffer_exits_2_naming_the_largest_that_fits() {
    let Some(ctx) = test_context() else { return };
    let per_image = 180 * 180 * 3 * 4;
    let fits = ctx.limits.max_buffer_size / per_image;
    if fits >= 100_000 {
        eprintln!("SKIPPED: this device's largest buffer holds 100,000 images of 180×180");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for i in 0..10 {
        let class = ["a", "b"][i % 2];
        write_gradient_image(&data.join(class).join(format!("{i}.png")));
    }
    let out = tmp.path().join("run");
    let r = gpucnn(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "1",
        "--image-size",
        "180",
        "--width",
        "0.0625",
        "--batch-size",
        "100000",
    ]);
    let e = assert_exit(&r, 2);
    assert!(
        e.contains(&format!(
            "the largest batch that fits at this --image-size is {fits}"
        )),
        "{e}"
    );
}

#[test]
fn a_model_json_with_an_unbuildable_width_is_refused_with_the_range() {
    // width 40 in model.json: before, predict tried to lay out 4 G parameters.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    write_run(
        &run,
        &XceptionConfig {
            image_size: gpucnn::model::ImageSize::square(16),
            width: 0.0625,
            ..Default::default()
        },
    );
    let json = run.join("model.json");
    let text = std::fs::read_to_string(&json).unwrap();
    let edited = text.replace("\"width\": 0.0625", "\"width\": 40.0");
    assert_ne!(text, edited);
    std::fs::write(&json, edited).unwrap();
    let err = gpucnn::train::checkpoint::read_model_json(&json).unwrap_err();
    assert!(err.to_string().contains("(0, 32]"), "{err}");
    assert_eq!(exit_code(&anyhow::Error::from(err)), EXIT_BAD_INPUT);
    if test_context().is_none() {
        return;
    }
    let img = tmp.path().join("x.png");
    write_gradient_image(&img);
    let e = assert_exit(&gpucnn(&["predict", "--model", s(&run), s(&img)]), 2);
    assert!(e.contains("width 40 is outside (0, 32]"), "{e}");
}

/// Deflate bits, least significant first (RFC 1951 3.1.1).
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, len: u32) {
        self.acc |= value << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code, which deflate stores most significant bit first.
    fn code(&mut self, code: u64, len: u32) {
        let reversed = (0..len).fold(0, |r, i| r | ((code >> i) & 1) << (len - 1 - i));
        self.put(reversed, len);
    }
}

/// A zlib stream of `n` zero bytes: one fixed-Huffman block of a literal 0 and then matches of
/// 258 at distance 1 (13 bits each), so 512 MB take 3.4 MB.
fn zlib_zeros(n: u64) -> Vec<u8> {
    let mut b = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // final block
    b.put(1, 2); // fixed Huffman codes
    b.code(0x30, 8); // literal 0
    for _ in 0..(n - 1) / 258 {
        b.code(0xC5, 8); // length 258 (symbol 285)
        b.code(0, 5); // distance 1
    }
    for _ in 0..(n - 1) % 258 {
        b.code(0x30, 8);
    }
    b.code(0, 7); // end of block
    b.put(0, 7); // flush to a byte
    let mut out = b.out;
    let adler = ((n % 65521) << 16) | 1; // a = 1 + Σ0, b = Σa = n
    out.extend((adler as u32).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let table: Vec<u32> = (0..256u32)
        .map(|mut c| {
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            c
        })
        .collect();
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// A legal black 8192×8192 16-bit RGBA PNG (512 MiB decoded, 3.4 MB on disk).
fn png_rgba16_8192() -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend(data);
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend(&body);
        c.extend(crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = 8192u32.to_be_bytes().to_vec();
    ihdr.extend(8192u32.to_be_bytes());
    ihdr.extend([16, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &zlib_zeros(8192 * (1 + 8192 * 8))));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// Runs `gpucnn` with `env` and returns its output and peak resident memory in MiB (VmHWM,
/// sampled from /proc while it runs; the decodes it measures last seconds).
#[cfg(target_os = "linux")]
fn run_measuring_rss(args: &[&str], env: &[(&str, &str)]) -> (Output, u64) {
    let mut child = gpucnn_cmd()
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(&status)
            && let Some(line) = s.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), peak_kb / 1024)
}

#[cfg(target_os = "linux")]
#[test]
fn decoding_huge_images_on_several_threads_stays_within_one_budget() {
    // Two 8192×8192 RGBA16 PNGs scanned on (at least) two threads: 704 MiB each at the peak
    // of a decode (16-bit buffer + RGB copy). Before the shared budget both decoded at once
    // (1.45 GB); now the second waits for the first.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let png = png_rgba16_8192();
    assert!(png.len() < 4 << 20, "{} bytes", png.len());
    for class in ["a", "b"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        std::fs::write(data.join(class).join("huge.png"), &png).unwrap();
    }
    let args = ["scan", "--data", s(&data)];
    let (out, peak_mib) = run_measuring_rss(&args, &[]);
    let printed = stdout(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("2 good, 0 unusable"), "{printed}");
    assert!(
        (600..1000).contains(&peak_mib),
        "peak {peak_mib} MiB: one decode at a time is about 704 MiB"
    );
    // The pixel limit, lowered by the user, refuses them from the header.
    let (out, peak_mib) = run_measuring_rss(&args, &[("GPUCNN_MAX_IMAGE_PIXELS", "40000000")]);
    let printed = stdout(&out);
    assert!(printed.contains("0 good, 2 unusable"), "{printed}");
    assert!(printed.contains("GPUCNN_MAX_IMAGE_PIXELS"), "{printed}");
    assert!(peak_mib < 100, "peak {peak_mib} MiB");
    // An unusable value is named.
    let (out, _) = run_measuring_rss(&args, &[("GPUCNN_DECODE_MEMORY_MIB", "lots")]);
    let printed = stdout(&out);
    assert!(
        printed.contains("GPUCNN_DECODE_MEMORY_MIB=\"lots\" is not a positive whole number"),
        "{printed}"
    );
}
