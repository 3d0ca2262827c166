//! Helpers shared by the integration tests that run the `gpucnn` binary: invoking it, the tiny
//! training settings, and the generated images and class folders they train and predict on.
//!
//! Each test file that uses them says `mod common;`; a file uses only some of them, hence the
//! `dead_code` allowances.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use rand::{Rng, SeedableRng};

/// The `gpucnn` binary under test, without arguments, with kernel-variant tuning off (so runs
/// are deterministic and the user's cache is left alone; tests/cli.rs tests the tuning) and
/// the portable tiled GEMM ([`PORTABLE_GEMM`]).
///
/// Why the tiled GEMM: these tests are about the command line, the run folder, checkpoints and
/// data, on tiny models of a few steps. On a CPU adapter the default subgroup GEMM costs ~2 s
/// of LLVM compilation per (operand layout, gather) combination, ~20 s per process for ~11 of
/// them, which made the suite CPU-bound on compilation; the tiled GEMM compiles in
/// milliseconds. The end-to-end runs of tests/train_cli.rs and tests/demo.rs still use the
/// default kernels ([`gpucnn_cmd_default_kernels`]); the MPI tests pin the portable GEMM too,
/// ranks and single-process references alike (tests/mpi.rs `mpirun`). Every variant is proven
/// against the CPU reference by the kernel, executor and selftest tests.
pub fn gpucnn_cmd() -> Command {
    let mut c = gpucnn_cmd_default_kernels();
    c.env(PORTABLE_GEMM.0, PORTABLE_GEMM.1);
    c
}

/// The `GPUCNN_VARIANT` setting [`gpucnn_cmd`] runs with.
pub const PORTABLE_GEMM: (&str, &str) = ("GPUCNN_VARIANT", "gemm=tiled");

/// [`gpucnn_cmd`] with the kernels the adapter gets by default (no `GPUCNN_VARIANT`, even one
/// the environment of `cargo test` sets).
pub fn gpucnn_cmd_default_kernels() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpucnn"));
    c.env("GPUCNN_TUNE", "0").env_remove("GPUCNN_VARIANT");
    c
}

/// Runs the `gpucnn` binary with `args` and waits for its output.
pub fn gpucnn(args: &[&str]) -> Output {
    run(gpucnn_cmd().args(args))
}

/// Runs a prepared `gpucnn` command and waits for its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run gpucnn")
}

/// `gpucnn train --out OUT --epochs EPOCHS` at the tests' tiny settings: 16-pixel images,
/// width 0.0625, `batch` images a batch. The caller adds `--data` and/or `--labels` and any
/// other flag.
pub fn tiny_train(out: &Path, epochs: &str, batch: &str) -> Command {
    let mut c = gpucnn_cmd();
    c.arg("train").arg("--out").arg(out).args([
        "--epochs",
        epochs,
        "--image-size",
        "16",
        "--width",
        "0.0625",
        "--batch-size",
        batch,
    ]);
    c
}

/// Every tensor of a safetensors file, by name (the metadata may be ordered differently).
pub fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

/// A path as a command-line argument (the tests' temporary paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Bytes a process wrote, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a run wrote to stderr, as text.
pub fn stderr(o: &Output) -> String {
    text(&o.stderr)
}

/// What a run wrote to stdout, as text.
pub fn stdout(o: &Output) -> String {
    text(&o.stdout)
}

/// Asserts that a run succeeded (showing its stderr if not) and returns its stderr.
pub fn assert_success(o: &Output) -> String {
    let e = stderr(o);
    assert!(o.status.success(), "{e}");
    e
}

/// Asserts that a run exited with `code` (showing its stderr if not) and returns its stderr.
pub fn assert_exit(o: &Output, code: i32) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{e}");
    e
}

/// A filled disc or square of radius (half side) about `r` centred at (`cx`, `cy`), the
/// shapes the training tests tell apart.
pub struct Shape {
    pub disc: bool,
    pub r: f32,
    pub cx: f32,
    pub cy: f32,
}

impl Shape {
    /// A disc or square of random size (r in 4..7) and centre (7..13 each way) for a 20×20
    /// image, drawn from `rng` in that order.
    pub fn random(disc: bool, rng: &mut impl Rng) -> Shape {
        let r = rng.random_range(4.0..7.0f32);
        let (cx, cy) = (
            rng.random_range(7.0..13.0f32),
            rng.random_range(7.0..13.0f32),
        );
        Shape { disc, r, cx, cy }
    }

    /// Whether the centre of pixel (x, y) lies in the shape (a square's half side is 0.85 r).
    pub fn inside(&self, x: u32, y: u32) -> bool {
        let (dx, dy) = (x as f32 + 0.5 - self.cx, y as f32 + 0.5 - self.cy);
        if self.disc {
            dx * dx + dy * dy <= self.r * self.r
        } else {
            dx.abs() <= self.r * 0.85 && dy.abs() <= self.r * 0.85
        }
    }

    /// The shape in `fg` on `bg`, 20×20.
    pub fn draw(&self, fg: [u8; 3], bg: [u8; 3]) -> image::RgbImage {
        image::RgbImage::from_fn(20, 20, |x, y| {
            image::Rgb(if self.inside(x, y) { fg } else { bg })
        })
    }
}

/// A two-class folder of shapes from one `seed`: `per_class` images in `root/discs` (then as
/// many in `root/squares`), each `draw(rng, disc)` saved as `root/CLASS/name(class, i)`.
pub fn shapes_dataset(
    root: &Path,
    seed: u64,
    per_class: usize,
    mut draw: impl FnMut(&mut rand::rngs::StdRng, bool) -> image::RgbImage,
    name: impl Fn(&str, usize) -> String,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for (class, disc) in [("discs", true), ("squares", false)] {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            draw(&mut rng, disc).save(dir.join(name(class, i))).unwrap();
        }
    }
}

/// Light discs and squares on a dark ground, `per_class` of each from `seed`, named
/// `CLASS_NN.png`: the small two-class folder most CLI tests train on.
pub fn light_shapes(root: &Path, seed: u64, per_class: usize) {
    shapes_dataset(
        root,
        seed,
        per_class,
        |rng, disc| Shape::random(disc, rng).draw([220, 210, 90], [30, 30, 60]),
        |class, i| format!("{class}_{i:02}.png"),
    );
}

/// A 20×20 PNG of random colour blocks (different for each `seed`), its folder created.
pub fn write_image(path: &Path, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let blocks: Vec<[u8; 3]> = (0..16).map(|_| rng.random()).collect();
    let img = image::RgbImage::from_fn(20, 20, |x, y| {
        image::Rgb(blocks[(y as usize / 5) * 4 + x as usize / 5])
    });
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// A 20×20 PNG of one fixed colour gradient, its folder created.
pub fn write_gradient_image(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(20, 20, |x, y| image::Rgb([x as u8 * 12, y as u8 * 12, 90]))
        .save(path)
        .unwrap();
}

/// A black 4×4 PNG, its folder created: an image whose content no test looks at.
pub fn write_blank_image(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::new(4, 4).save(path).unwrap();
}

/// Classes `a` and `b` of `per_class` block images each: image `i` of class number `c` is
/// `data/CLASS/name(class, i)`, drawn from seed `c * stride + i`.
pub fn write_class_images(
    data: &Path,
    per_class: usize,
    stride: usize,
    name: impl Fn(&str, usize) -> String,
) {
    for (c, class) in ["a", "b"].iter().enumerate() {
        for i in 0..per_class {
            write_image(
                &data.join(class).join(name(class, i)),
                (c * stride + i) as u64,
            );
        }
    }
}

/// Classes `a` and `b` of `per_class` block images each, `0.png`, `1.png`, …, from seeds
/// `c * 10 + i` (see [`write_class_images`]).
pub fn write_ab_images(data: &Path, per_class: usize) {
    write_class_images(data, per_class, 10, |_, i| format!("{i}.png"));
}
