//! The data pipeline on generated image folders: discovery and split, decoding of every format,
//! the decompression-bomb guard, the scan, the loader and its caches, and the errors.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gpucnn::data::decode::{decode_rgb8, load_resized, quantize_u8};
use gpucnn::data::{
    CacheKind, CacheOptions, ClassSelection, DatasetError, DatasetOptions, DecodeError,
    DirectoryDataset, Loader, LoaderOptions, MAX_FILE_BYTES, ResizeOptions, Sample, ScanOptions,
    epoch_order, scan,
};
use image::{ImageBuffer, Luma, LumaA, Rgb, RgbImage, Rgba};

const RED: [u8; 3] = [220, 30, 30];
const BLUE: [u8; 3] = [30, 40, 210];
const WHITE: [u8; 3] = [255, 255, 255];

/// A red disc on white (class "cat") or a blue square on white (class "dog").
fn shape(w: u32, h: u32, disc: bool) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - w as f32 / 2.0, y as f32 - h as f32 / 2.0);
        let r = w.min(h) as f32 / 3.0;
        let inside = if disc {
            dx * dx + dy * dy < r * r
        } else {
            dx.abs() < r && dy.abs() < r
        };
        Rgb(if inside {
            if disc { RED } else { BLUE }
        } else {
            WHITE
        })
    })
}

fn gray(img: &RgbImage) -> ImageBuffer<Luma<u8>, Vec<u8>> {
    ImageBuffer::from_fn(img.width(), img.height(), |x, y| {
        Luma([img.get_pixel(x, y).0[0]])
    })
}

/// Writes the good images: 8 cats and 9 dogs in PNG, JPEG, BMP, GIF and PNG variants,
/// with odd sizes, an upper-case extension and a nested folder.
fn write_good_dataset(root: &Path) -> Vec<PathBuf> {
    let cat = root.join("cat");
    let dog = root.join("dog");
    fs::create_dir_all(cat.join("nested/deeper")).unwrap();
    fs::create_dir_all(&dog).unwrap();
    let mut paths = Vec::new();
    let mut save = |path: PathBuf, f: &dyn Fn(&Path)| {
        f(&path);
        paths.push(path);
    };
    let c = shape(40, 30, true);
    let d = shape(33, 47, false);
    save(cat.join("a.png"), &|p| c.save(p).unwrap());
    save(cat.join("b.jpg"), &|p| c.save(p).unwrap());
    save(cat.join("C.JPG"), &|p| {
        c.save_with_format(p, image::ImageFormat::Jpeg).unwrap()
    });
    save(cat.join("d.bmp"), &|p| c.save(p).unwrap());
    save(cat.join("e.gif"), &|p| c.save(p).unwrap());
    save(cat.join("nested/f.png"), &|p| gray(&c).save(p).unwrap());
    save(cat.join("nested/deeper/g.jpeg"), &|p| {
        fs::write(p, with_exif_orientation(&jpeg_bytes(&c), 6)).unwrap()
    });
    save(cat.join("h.png"), &|p| {
        ImageBuffer::<Rgba<u8>, _>::from_fn(40, 30, |x, y| {
            let [r, g, b] = c.get_pixel(x, y).0;
            Rgba([r, g, b, (x * 6) as u8])
        })
        .save(p)
        .unwrap()
    });
    save(dog.join("a.png"), &|p| d.save(p).unwrap());
    save(dog.join("b.jpeg"), &|p| d.save(p).unwrap());
    save(dog.join("c.bmp"), &|p| d.save(p).unwrap());
    save(dog.join("d.GIF"), &|p| {
        d.save_with_format(p, image::ImageFormat::Gif).unwrap()
    });
    save(dog.join("e.png"), &|p| {
        ImageBuffer::<LumaA<u8>, _>::from_fn(33, 47, |x, y| LumaA([d.get_pixel(x, y).0[2], 128]))
            .save(p)
            .unwrap()
    });
    save(dog.join("f.png"), &|p| {
        ImageBuffer::<Rgb<u16>, _>::from_fn(33, 47, |x, y| {
            Rgb(d.get_pixel(x, y).0.map(|v| v as u16 * 257))
        })
        .save(p)
        .unwrap()
    });
    for i in 0..3 {
        save(dog.join(format!("g{i}.png")), &|p| d.save(p).unwrap());
    }
    // Not part of the dataset: a hidden class folder, a non-image file, a file at the root.
    fs::create_dir_all(root.join(".hidden")).unwrap();
    c.save(root.join(".hidden/x.png")).unwrap();
    fs::write(dog.join("notes.txt"), "not an image").unwrap();
    c.save(root.join("stray.png")).unwrap();
    paths
}

fn jpeg_bytes(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// Inserts an EXIF APP1 segment with the given orientation right after the SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend([0, 1]); // one IFD entry
    tiff.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1]); // Orientation, SHORT, count 1
    tiff.extend(orientation.to_be_bytes());
    tiff.extend([0, 0, 0, 0, 0, 0]); // value padding, no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend(&jpeg[2..]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend(data);
    out.extend(&body);
    out.extend(crc32(&body).to_be_bytes());
    out
}

/// A valid PNG header claiming 100000×100000 RGB pixels (30 GB decoded), with a tiny IDAT.
fn png_bomb() -> Vec<u8> {
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// Writes the corrupt files (all with image extensions) and returns their paths.
fn write_corrupt(root: &Path) -> Vec<PathBuf> {
    let cat = root.join("cat");
    let dog = root.join("dog");
    let zero = cat.join("zero.png");
    fs::write(&zero, b"").unwrap();
    let truncated = dog.join("truncated.jpg");
    let full = jpeg_bytes(&shape(64, 64, false));
    fs::write(&truncated, &full[..full.len() * 2 / 3]).unwrap();
    let text = cat.join("text.jpg");
    fs::write(&text, "this is a text file, not a JPEG\n").unwrap();
    let bomb = dog.join("bomb.png");
    fs::write(&bomb, png_bomb()).unwrap();
    vec![zero, truncated, text, bomb]
}

fn opts(seed: u64) -> DatasetOptions {
    DatasetOptions {
        validation_split: 0.2,
        seed,
    }
}

fn size(h: usize, w: usize) -> ResizeOptions {
    ResizeOptions {
        height: h,
        width: w,
        crop_to_aspect_ratio: false,
        color_mode: gpucnn::data::ColorMode::Rgb,
    }
}

fn all_samples(ds: &DirectoryDataset) -> Vec<Sample> {
    ds.train.iter().chain(&ds.val).cloned().collect()
}

#[test]
fn classes_files_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_good_dataset(dir.path());
    let ds = DirectoryDataset::open(dir.path(), &opts(1337)).unwrap();
    assert_eq!(ds.class_names, ["cat", "dog"]);
    let n = written.len();
    assert_eq!(n, 17);
    assert_eq!(ds.val.len(), 3, "int(0.2 · 17)");
    assert_eq!(ds.train.len(), 14);
    let found: HashSet<PathBuf> = all_samples(&ds).into_iter().map(|s| s.path).collect();
    assert_eq!(found, written.iter().cloned().collect::<HashSet<_>>());
    for s in all_samples(&ds) {
        let class = s.path.strip_prefix(dir.path()).unwrap().components().next();
        let class = class.unwrap().as_os_str().to_str().unwrap().to_string();
        assert_eq!(ds.class_names[s.label], class, "{}", s.path.display());
    }
    let (tc, vc) = (ds.train_class_counts(), ds.val_class_counts());
    assert_eq!([tc[0] + vc[0], tc[1] + vc[1]], [8, 9]);
    let summary = ds.summary();
    assert!(summary.starts_with(
        "Found 17 files belonging to 2 classes.\nUsing 14 files for training.\n\
         Using 3 files for validation.\n"
    ));
    assert!(summary.contains("class 0 = cat") && summary.contains("class 1 = dog"));

    // Same seed, same split; another seed, another split.
    let again = DirectoryDataset::open(dir.path(), &opts(1337)).unwrap();
    assert_eq!(again.train, ds.train);
    assert_eq!(again.val, ds.val);
    let other = DirectoryDataset::open(dir.path(), &opts(7)).unwrap();
    assert_ne!(other.train, ds.train);
    assert_eq!(other.val.len(), 3);
}

#[test]
fn epoch_orders_reshuffle_deterministically() {
    let a0 = epoch_order(100, 0, 42);
    let a1 = epoch_order(100, 1, 42);
    assert_ne!(a0, a1, "each epoch reshuffles");
    assert_eq!(
        a0,
        epoch_order(100, 0, 42),
        "deterministic for (seed, epoch)"
    );
    assert_eq!(a1, epoch_order(100, 1, 42));
    assert_ne!(a0, epoch_order(100, 0, 43), "the seed matters");
    assert_ne!(a0, (0..100).collect::<Vec<_>>());
    let mut sorted = a1.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    write_good_dataset(dir.path());
    let ds = DirectoryDataset::open(dir.path(), &opts(3)).unwrap();
    assert_eq!(ds.epoch_order(2, 9), epoch_order(ds.train.len(), 2, 9));
}

#[test]
fn every_format_decodes_to_the_requested_size_and_colours() {
    let dir = tempfile::tempdir().unwrap();
    for path in write_good_dataset(dir.path()) {
        let img = decode_rgb8(&path).unwrap_or_else(|e| panic!("{e}"));
        let is_cat = path.components().any(|c| c.as_os_str() == "cat");
        let (w, h) = if is_cat { (40, 30) } else { (33, 47) };
        assert_eq!((img.width(), img.height()), (w, h), "{}", path.display());
        let out = load_resized(&path, &size(9, 11)).unwrap();
        assert_eq!(out.len(), 9 * 11 * 3);
        // The centre is the shape's colour (gray files: its first/last channel replicated).
        let centre = &out[(4 * 11 + 5) * 3..][..3];
        let name = path.file_name().unwrap().to_str().unwrap();
        let want: [f32; 3] = match (is_cat, name) {
            (true, "f.png") => [RED[0] as f32; 3],
            (false, "e.png") => [BLUE[2] as f32; 3],
            (true, _) => RED.map(|v| v as f32),
            (false, _) => BLUE.map(|v| v as f32),
        };
        let lossy = name.to_lowercase().ends_with("jpg")
            || name.ends_with("jpeg")
            || name.to_lowercase().ends_with("gif");
        let tol = if lossy { 20.0 } else { 0.5 };
        for ch in 0..3 {
            assert!(
                (centre[ch] - want[ch]).abs() <= tol,
                "{}: centre {centre:?}, want {want:?}",
                path.display()
            );
        }
        // Corners are white.
        assert!(out[..3].iter().all(|&v| v > 235.0), "{}", path.display());
    }
}

/// A hand-assembled 8×8 gray progressive JPEG (SOF2): a DC scan then a spectral-selection AC
/// scan, one-symbol Huffman tables, quantisation 1, DC coefficient 128, so every pixel is
/// 128/8 + 128 = 144.
fn progressive_jpeg() -> Vec<u8> {
    let segment = |marker: u8, body: &[u8]| {
        let mut s = vec![0xFF, marker];
        s.extend(((body.len() + 2) as u16).to_be_bytes());
        s.extend(body);
        s
    };
    let one_symbol_table = |class_id: u8, symbol: u8| {
        let mut t = vec![class_id, 1];
        t.extend([0; 15]);
        t.push(symbol);
        t
    };
    let mut out = vec![0xFF, 0xD8];
    let mut dqt = vec![0u8];
    dqt.extend([1u8; 64]);
    out.extend(segment(0xDB, &dqt));
    out.extend(segment(0xC2, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
    out.extend(segment(0xC4, &one_symbol_table(0x00, 8))); // DC: category 8 = code 0
    out.extend(segment(0xC4, &one_symbol_table(0x10, 0x00))); // AC: EOB = code 0
    out.extend(segment(0xDA, &[1, 1, 0x00, 0, 0, 0x00]));
    out.extend([0b0100_0000, 0b0111_1111]); // code 0, bits 10000000 (= 128), 1-padding
    out.extend(segment(0xDA, &[1, 1, 0x00, 1, 63, 0x00]));
    out.push(0b0111_1111); // EOB, 1-padding
    out.extend([0xFF, 0xD9]);
    out
}

#[test]
fn progressive_jpeg_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("progressive.jpg");
    fs::write(&path, progressive_jpeg()).unwrap();
    let img = decode_rgb8(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((img.width(), img.height()), (8, 8));
    for p in img.pixels() {
        assert!(p.0.iter().all(|&v| v.abs_diff(144) <= 1), "{p:?}");
    }
    let out = load_resized(&path, &size(3, 5)).unwrap();
    assert_eq!(out.len(), 3 * 5 * 3);
}

#[test]
fn extraneous_bytes_before_a_marker_still_decode() {
    // libjpeg warns "Corrupt JPEG data: N extraneous bytes before marker" and decodes; so must we
    // (about 1 in 15 files of the Kaggle cats and dogs archive do this).
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = jpeg_bytes(&shape(24, 16, true));
    let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    bytes.splice(sos..sos, [0x12, 0x34, 0x56]);
    let path = dir.path().join("extraneous.jpg");
    fs::write(&path, bytes).unwrap();
    let img = decode_rgb8(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((img.width(), img.height()), (24, 16));
    assert!(
        img.get_pixel(12, 8).0[0] > 180,
        "{:?}",
        img.get_pixel(12, 8)
    );
}

#[test]
fn crop_to_aspect_ratio_keeps_the_centre() {
    let dir = tempfile::tempdir().unwrap();
    // 60 wide, 20 high: left third red, middle third blue, right third red.
    let img = RgbImage::from_fn(60, 20, |x, _| {
        Rgb(if (20..40).contains(&x) { BLUE } else { RED })
    });
    let path = dir.path().join("wide.png");
    img.save(&path).unwrap();
    let mut o = size(5, 5);
    o.crop_to_aspect_ratio = true;
    let cropped = load_resized(&path, &o).unwrap();
    assert!(cropped.chunks(3).all(|p| p == BLUE.map(|v| v as f32)));
    let stretched = load_resized(&path, &size(5, 5)).unwrap();
    assert_eq!(&stretched[..3], &RED.map(|v| v as f32));
}

#[test]
fn decompression_bomb_is_refused_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.png");
    fs::write(&path, png_bomb()).unwrap();
    let t = Instant::now();
    let err = decode_rgb8(&path).unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("bomb.png"), "{err}");

    // A huge file is refused from its size, before it is read (sparse, so cheap to make).
    let huge = dir.path().join("huge.jpg");
    let f = fs::File::create(&huge).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    let t = Instant::now();
    let err = decode_rgb8(&huge).unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(matches!(err, DecodeError::FileTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("huge.jpg"), "{err}");
}

#[test]
fn scan_reports_every_corrupt_file_and_can_delete_them() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_dataset(dir.path());
    let corrupt = write_corrupt(dir.path());
    let ds = DirectoryDataset::open(dir.path(), &opts(5)).unwrap();
    let samples = all_samples(&ds);
    assert_eq!(samples.len(), good.len() + corrupt.len());
    let report = scan(
        &samples,
        &ScanOptions {
            threads: 3,
            delete: false,
        },
    );
    assert_eq!(report.total, samples.len());
    assert_eq!(report.good.len(), good.len());
    assert_eq!(report.bad.len(), 4, "{}", report.summary());
    let reason = |p: &PathBuf| {
        let b = report.bad.iter().find(|b| &b.path == p).expect("reported");
        assert!(b.reason.contains(p.to_str().unwrap()), "{}", b.reason);
        b.reason.clone()
    };
    assert!(reason(&corrupt[0]).contains("empty"));
    assert!(reason(&corrupt[1]).contains("truncated"));
    assert!(reason(&corrupt[2]).contains("not a JPEG"));
    assert!(reason(&corrupt[3]).contains("100000×100000"));
    assert!(report.deleted.is_empty());
    assert!(corrupt.iter().all(|p| p.exists()));
    // The good samples keep their input order.
    let order: Vec<_> = samples.iter().filter(|s| good.contains(&s.path)).collect();
    assert_eq!(report.good.iter().collect::<Vec<_>>(), order);

    let mut pruned = ds.clone();
    assert_eq!(pruned.remove_paths(&report.bad_paths()), 4);
    assert_eq!(pruned.train.len() + pruned.val.len(), good.len());

    let deleting = scan(
        &samples,
        &ScanOptions {
            threads: 2,
            delete: true,
        },
    );
    let deleted: HashSet<_> = deleting.deleted.iter().cloned().collect();
    assert_eq!(deleted, corrupt.iter().cloned().collect::<HashSet<_>>());
    assert!(corrupt.iter().all(|p| !p.exists()));
    assert!(good.iter().all(|p| p.exists()));
    assert!(deleting.summary().contains("4 deleted"));
}

fn loader_options(batch: usize, cache: CacheOptions) -> LoaderOptions {
    LoaderOptions {
        resize: size(8, 6),
        batch_size: batch,
        workers: 3,
        prefetch: 2,
        cache,
    }
}

fn memory_cache() -> CacheOptions {
    CacheOptions {
        memory_budget: 1 << 30,
        disk_dir: None,
    }
}

/// The expected pixels of one sample: the resize, rounded to bytes.
fn expected_pixels(path: &Path) -> Vec<u8> {
    let f = load_resized(path, &size(8, 6)).unwrap();
    let mut q = vec![0u8; f.len()];
    quantize_u8(&f, &mut q);
    q
}

#[test]
fn loader_batches_in_order_keeping_the_last_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    write_good_dataset(dir.path());
    let ds = DirectoryDataset::open(dir.path(), &opts(11)).unwrap();
    let loader = Loader::new(ds.train.clone(), loader_options(4, memory_cache())).unwrap();
    assert_eq!(loader.cache_kind(), CacheKind::Memory);
    let order = ds.epoch_order(0, 11);
    let mut epoch = loader.epoch(&order).unwrap();
    let batches: Vec<_> = epoch.by_ref().collect();
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        [4, 4, 4, 2]
    );
    let indices: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(indices, order);
    for b in &batches {
        assert_eq!(b.images.len(), b.len() * 8 * 6 * 3);
        for (j, &i) in b.indices.iter().enumerate() {
            assert_eq!(b.labels[j] as usize, ds.train[i].label);
            let img = &b.images[j * 144..(j + 1) * 144];
            assert_eq!(img, expected_pixels(&ds.train[i].path), "sample {i}");
        }
    }
    let stats = epoch.stats();
    assert_eq!((stats.decoded, stats.from_cache), (14, 0));
    assert!(stats.skipped.is_empty());
    drop(epoch);

    // The second epoch, in another order, comes from the cache with identical pixels.
    let order1 = ds.epoch_order(1, 11);
    let mut epoch1 = loader.epoch(&order1).unwrap();
    let batches1: Vec<_> = epoch1.by_ref().collect();
    let stats1 = epoch1.stats();
    assert_eq!((stats1.decoded, stats1.from_cache), (0, 14));
    for b in &batches1 {
        for (j, &i) in b.indices.iter().enumerate() {
            let first = batches.iter().find_map(|b0| {
                let k = b0.indices.iter().position(|&x| x == i)?;
                Some(b0.images[k * 144..(k + 1) * 144].to_vec())
            });
            assert_eq!(Some(b.images[j * 144..(j + 1) * 144].to_vec()), first);
        }
    }
}

#[test]
fn disk_cache_serves_the_second_epoch_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_good_dataset(dir.path());
    let out = tempfile::tempdir().unwrap();
    let ds = DirectoryDataset::open(dir.path(), &opts(2)).unwrap();
    let cache = CacheOptions {
        memory_budget: 100, // far less than 14 images
        disk_dir: Some(out.path().join("cache")),
    };
    let loader = Loader::new(ds.train.clone(), loader_options(5, cache)).unwrap();
    let CacheKind::Disk(file) = loader.cache_kind() else {
        panic!("expected a disk cache, got {:?}", loader.cache_kind())
    };
    assert!(file.starts_with(out.path()));
    assert_eq!(fs::metadata(&file).unwrap().len(), 14 * 144);
    let order: Vec<usize> = (0..ds.train.len()).collect();
    let mut e0 = loader.epoch(&order).unwrap();
    let first: Vec<_> = e0.by_ref().collect();
    assert_eq!(e0.stats().decoded, 14);
    let mut e1 = loader.epoch(&order).unwrap();
    let second: Vec<_> = e1.by_ref().collect();
    assert_eq!((e1.stats().decoded, e1.stats().from_cache), (0, 14));
    assert_eq!(first, second);
    assert_eq!(first.iter().map(|b| b.len()).collect::<Vec<_>>(), [5, 5, 4]);
    drop((e0, e1, loader));
    assert!(!file.exists(), "the cache file is removed with the loader");
}

#[test]
fn without_a_cache_every_epoch_decodes() {
    let dir = tempfile::tempdir().unwrap();
    write_good_dataset(dir.path());
    let ds = DirectoryDataset::open(dir.path(), &opts(2)).unwrap();
    let none = CacheOptions {
        memory_budget: 0,
        disk_dir: None,
    };
    let loader = Loader::new(ds.val.clone(), loader_options(2, none)).unwrap();
    assert_eq!(loader.cache_kind(), CacheKind::None);
    for _ in 0..2 {
        let mut e = loader.epoch(&[2, 0, 1]).unwrap();
        let b: Vec<_> = e.by_ref().collect();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].indices, [2, 0]);
        assert_eq!(b[1].indices, [1]);
        assert_eq!((e.stats().decoded, e.stats().from_cache), (3, 0));
    }
}

#[test]
fn loader_skips_corrupt_files_every_epoch_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_dataset(dir.path());
    let corrupt = write_corrupt(dir.path());
    let ds = DirectoryDataset::open(dir.path(), &opts(8)).unwrap();
    let samples = all_samples(&ds);
    let loader = Loader::new(samples.clone(), loader_options(4, memory_cache())).unwrap();
    let order: Vec<usize> = (0..samples.len()).rev().collect();
    for epoch in 0..2 {
        let mut e = loader.epoch(&order).unwrap();
        let batches: Vec<_> = e.by_ref().collect();
        assert_eq!(batches.len(), 6, "21 samples in batches of 4");
        let got: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        let want: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| !corrupt.contains(&samples[i].path))
            .collect();
        assert_eq!(got, want);
        let stats = e.stats();
        assert_eq!(stats.skipped.len(), 4, "epoch {epoch}");
        let skipped: HashSet<_> = stats.skipped.iter().map(|b| b.path.clone()).collect();
        assert_eq!(skipped, corrupt.iter().cloned().collect::<HashSet<_>>());
        let decoded = if epoch == 0 { good.len() } else { 0 };
        assert_eq!(stats.decoded, decoded);
    }
}

#[test]
fn dropping_an_epoch_early_stops_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    write_good_dataset(dir.path());
    let ds = DirectoryDataset::open(dir.path(), &opts(4)).unwrap();
    let mut o = loader_options(1, memory_cache());
    o.prefetch = 1;
    let loader = Loader::new(ds.train.clone(), o).unwrap();
    let mut e = loader.epoch(&epoch_order(14, 0, 4)).unwrap();
    // Unconsumed, the queue (1) and the three workers' batches in hand hold all that is decoded.
    std::thread::sleep(Duration::from_millis(300));
    let ahead = e.stats().decoded;
    assert!((1..=4).contains(&ahead), "{ahead} images decoded ahead");
    assert_eq!(e.next().unwrap().len(), 1);
    drop(e); // must not hang with workers blocked on a full queue
    assert!(
        loader.epoch(&[99]).is_err(),
        "an index past the samples is refused"
    );
}

#[test]
fn errors_name_the_path_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let missing = root.join("missing");
    let err = DirectoryDataset::open(&missing, &opts(1)).unwrap_err();
    assert!(matches!(err, DatasetError::Unreadable { .. }));
    assert!(err.to_string().contains(missing.to_str().unwrap()), "{err}");

    let file = root.join("file.png");
    fs::write(&file, b"x").unwrap();
    let err = DirectoryDataset::open(&file, &opts(1)).unwrap_err();
    assert!(matches!(err, DatasetError::NotADirectory { .. }), "{err}");
    assert!(err.to_string().contains("file.png"), "{err}");

    let empty_root = root.join("empty");
    fs::create_dir_all(empty_root.join(".git")).unwrap();
    let err = DirectoryDataset::open(&empty_root, &opts(1)).unwrap_err();
    assert!(matches!(err, DatasetError::NoClasses { .. }), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");

    let single = root.join("single");
    fs::create_dir_all(single.join("only")).unwrap();
    shape(4, 4, true).save(single.join("only/a.png")).unwrap();
    let err = DirectoryDataset::open(&single, &opts(1)).unwrap_err();
    assert!(err.to_string().contains("`only`"), "{err}");
    assert!(err.to_string().contains("single"), "{err}");

    fs::create_dir_all(single.join("zebra")).unwrap();
    fs::write(single.join("zebra/readme.txt"), "no images").unwrap();
    let err = DirectoryDataset::open(&single, &opts(1)).unwrap_err();
    assert!(matches!(err, DatasetError::EmptyClass { ref class, .. } if class == "zebra"));
    assert!(err.to_string().contains("zebra"), "{err}");

    fs::write(single.join("zebra/z.PNG"), b"").unwrap();
    assert!(DirectoryDataset::open(&single, &opts(1)).is_ok());
    for split in [0.0, 1.0, -0.5, f32::NAN] {
        let o = DatasetOptions {
            validation_split: split,
            seed: 1,
        };
        let err = DirectoryDataset::open(&single, &o).unwrap_err();
        assert!(matches!(err, DatasetError::InvalidSplit { .. }), "{err}");
        assert!(err.to_string().contains("--validation-split"), "{err}");
    }
}

/// `jpeg` with the frame header's height and width replaced (SOF0, as the image crate writes).
fn with_jpeg_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let mut out = jpeg.to_vec();
    out[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    out[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    out
}

#[test]
fn a_tiny_jpeg_claiming_a_huge_size_is_refused_not_decoded_to_grey() {
    // 1 KB whose header says 8192×8192: the image crate fills the missing blocks with grey
    // (a 192 MB decode). Every 8×8 block costs at least one bit of Huffman-coded data.
    let dir = tempfile::tempdir().unwrap();
    let small = jpeg_bytes(&shape(16, 16, true));
    let path = dir.path().join("claims_8192.jpg");
    fs::write(&path, with_jpeg_size(&small, 8192, 8192)).unwrap();
    let err = decode_rgb8(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::JpegTooShort {
                width: 8192,
                height: 8192,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("claims_8192.jpg"), "{err}");
    // The bound is a true minimum: a real image with as little detail as possible passes.
    let flat = RgbImage::from_pixel(1024, 768, Rgb([90, 90, 90]));
    let path = dir.path().join("flat.jpg");
    fs::write(&path, jpeg_bytes(&flat)).unwrap();
    let img = decode_rgb8(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((img.width(), img.height()), (1024, 768));
    // Progressive (one bit a block in the DC scan) passes too.
    let path = dir.path().join("progressive.jpg");
    fs::write(&path, progressive_jpeg()).unwrap();
    decode_rgb8(&path).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_decode_budget_is_shared_waits_and_never_deadlocks() {
    use gpucnn::data::decode::MemoryBudget;
    use std::sync::atomic::{AtomicU64, Ordering};
    let budget = MemoryBudget::new(100);
    // A request over the whole budget is granted alone.
    let big = budget.acquire(1000);
    assert_eq!((big.bytes(), budget.in_use()), (100, 100));
    drop(big);
    // Eight threads each wanting 40 of 100: never more than two at once.
    let live = AtomicU64::new(0);
    let peak = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let _p = budget.acquire(40);
                let now = live.fetch_add(40, Ordering::SeqCst) + 40;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                live.fetch_sub(40, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(peak.load(Ordering::SeqCst), 80);
    assert_eq!(budget.in_use(), 0);
    // Shrinking gives back the difference at once.
    let mut p = budget.acquire(90);
    p.shrink_to(30);
    assert_eq!(budget.in_use(), 30);
    let q = budget.acquire(70);
    drop((p, q));
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_decoded_image_holds_its_share_of_the_process_budget_until_dropped() {
    use gpucnn::data::decode::decode_budget;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rgba16.png");
    ImageBuffer::<Rgba<u16>, Vec<u16>>::from_pixel(300, 200, Rgba([9000, 20000, 3, 65535]))
        .save(&path)
        .unwrap();
    let img = decode_rgb8(&path).unwrap();
    // Other tests decode concurrently: the budget holds at least this image's RGB bytes.
    assert!(decode_budget().in_use() >= 300 * 200 * 3);
    assert_eq!(img.get_pixel(0, 0).0, [35, 78, 0]);
    let plain = img.into_image();
    assert_eq!(plain.dimensions(), (300, 200));
}

fn webp_bytes(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    // The image crate's WebP encoder is lossless: the decode must give the pixels back exactly.
    img.write_to(&mut out, image::ImageFormat::WebP).unwrap();
    out.into_inner()
}

#[test]
fn webp_files_are_listed_scanned_and_decoded_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (c, d) = (shape(40, 30, true), shape(33, 47, false));
    fs::create_dir_all(dir.path().join("cat")).unwrap();
    fs::create_dir_all(dir.path().join("dog")).unwrap();
    let cat = dir.path().join("cat/a.webp");
    let dog = dir.path().join("dog/b.WEBP");
    fs::write(&cat, webp_bytes(&c)).unwrap();
    fs::write(&dog, webp_bytes(&d)).unwrap();
    assert_eq!(&fs::read(&cat).unwrap()[..4], b"RIFF");
    // A cut WebP is listed (by its extension) but refused by the decoder, naming the file.
    let cut = dir.path().join("dog/cut.webp");
    let bytes = webp_bytes(&d);
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();

    let ds = DirectoryDataset::open(dir.path(), &opts(1)).unwrap();
    let mut found: Vec<PathBuf> = all_samples(&ds).into_iter().map(|s| s.path).collect();
    found.sort();
    assert_eq!(found, vec![cat.clone(), dog.clone(), cut.clone()]);
    assert_eq!(
        gpucnn::data::image_files(&dir.path().join("dog")).unwrap(),
        vec![dog.clone(), cut.clone()]
    );

    assert_eq!(decode_rgb8(&cat).unwrap().as_raw(), c.as_raw());
    assert_eq!(decode_rgb8(&dog).unwrap().as_raw(), d.as_raw());
    let resized = load_resized(&dog, &size(16, 16)).unwrap();
    assert_eq!(resized.len(), 16 * 16 * 3);
    let err = decode_rgb8(&cut).unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("cut.webp"), "{err}");

    let report = scan(&all_samples(&ds), &ScanOptions::default());
    assert_eq!(report.good.len(), 2);
    assert_eq!(report.bad.len(), 1);
    assert_eq!(report.bad[0].path, cut);
}

/// Class folders `names` under `root`, each with `n` PNGs.
fn class_folders_with(root: &Path, names: &[&str], n: usize) {
    for (k, name) in names.iter().enumerate() {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            shape(10 + i as u32, 12, k % 2 == 0)
                .save(dir.join(format!("{i}.png")))
                .unwrap();
        }
    }
}

fn selection(names: &[&str]) -> ClassSelection {
    ClassSelection::new(names.iter().map(|n| n.to_string()).collect()).unwrap()
}

#[test]
fn class_names_choose_and_order_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    class_folders_with(dir.path(), &["bird", "cat", "dog"], 5);
    let sel = selection(&["dog", "cat"]);
    let ds = DirectoryDataset::open_selected(dir.path(), &opts(3), Some(&sel)).unwrap();
    assert_eq!(ds.class_names, ["dog", "cat"]);
    assert_eq!(all_samples(&ds).len(), 10, "bird is not used");
    for s in all_samples(&ds) {
        let class = s.path.parent().unwrap().file_name().unwrap();
        assert_eq!(class.to_str().unwrap(), ds.class_names[s.label]);
    }
    // Without a selection: every folder, sorted (as before).
    let all = DirectoryDataset::open(dir.path(), &opts(3)).unwrap();
    assert_eq!(all.class_names, ["bird", "cat", "dog"]);

    let sel = selection(&["cat", "zebra"]);
    let err = DirectoryDataset::open_selected(dir.path(), &opts(3), Some(&sel)).unwrap_err();
    assert!(matches!(err, DatasetError::UnknownClass { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("--class-names") && msg.contains("`zebra`") && msg.contains("bird, cat, dog"),
        "{msg}"
    );

    for (list, why) in [
        ("cat", "at least two"),
        ("cat,cat", "`cat` is named twice"),
        ("cat,,dog", "empty class name"),
        ("", "at least two"),
    ] {
        let err = ClassSelection::parse(list).unwrap_err();
        assert!(matches!(err, DatasetError::BadClassNames { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("--class-names") && msg.contains(why),
            "{list}: {msg}"
        );
    }
    assert_eq!(
        ClassSelection::parse(" dog , cat ").unwrap().names(),
        ["dog", "cat"]
    );
}

#[test]
fn a_separate_validation_folder_validates_every_one_of_its_images() {
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = (dir.path().join("train"), dir.path().join("val"));
    class_folders_with(&train, &["cat", "dog"], 6);
    class_folders_with(&val, &["cat", "dog"], 3);
    let ds = DirectoryDataset::open_separate(&train, &val, &opts(1), None).unwrap();
    assert_eq!(ds.class_names, ["cat", "dog"]);
    assert_eq!(ds.val_root.as_deref(), Some(val.as_path()));
    assert_eq!((ds.train.len(), ds.val.len()), (12, 6));
    assert!(ds.train.iter().all(|s| s.path.starts_with(&train)));
    assert!(ds.val.iter().all(|s| s.path.starts_with(&val)));
    // Class and path order: deterministic, no split drawn (the seed does not change it).
    let again = DirectoryDataset::open_separate(&train, &val, &opts(99), None).unwrap();
    assert_eq!((again.train, again.val), (ds.train.clone(), ds.val.clone()));
    assert_eq!(ds.val_class_counts(), [3, 3]);
    let summary = ds.summary();
    assert!(
        summary.contains(&format!(
            "Found 12 files belonging to 2 classes in {}.",
            train.display()
        )) && summary.contains(&format!(
            "Found 6 files belonging to 2 classes in {} (--val-data).",
            val.display()
        )) && summary.contains("Using 12 files for training.\nUsing 6 files for validation.\n"),
        "{summary}"
    );

    // Different class folders: the error says which class is only in which folder.
    class_folders_with(&val, &["bird"], 1);
    fs::remove_dir_all(val.join("dog")).unwrap();
    let err = DirectoryDataset::open_separate(&train, &val, &opts(1), None).unwrap_err();
    assert!(matches!(err, DatasetError::ClassMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("only in {}: dog", train.display()))
            && msg.contains(&format!("only in {}: bird", val.display()))
            && msg.contains("--val-data"),
        "{msg}"
    );
    // With --class-names, the other folders of either side are ignored; a class named must be
    // in both.
    class_folders_with(&val, &["dog"], 2);
    let sel = selection(&["dog", "cat"]);
    let ds = DirectoryDataset::open_separate(&train, &val, &opts(1), Some(&sel)).unwrap();
    assert_eq!(ds.class_names, ["dog", "cat"]);
    assert_eq!(ds.val_class_counts(), [2, 3]);
    fs::remove_dir_all(val.join("cat")).unwrap();
    let err = DirectoryDataset::open_separate(&train, &val, &opts(1), Some(&sel)).unwrap_err();
    assert!(matches!(err, DatasetError::UnknownClass { .. }), "{err}");
    assert!(
        err.to_string().contains(&val.display().to_string()),
        "{err}"
    );
    // A validation path that is a file is named as such.
    let file = dir.path().join("file.png");
    fs::write(&file, b"x").unwrap();
    let err = DirectoryDataset::open_separate(&train, &file, &opts(1), None).unwrap_err();
    assert!(matches!(err, DatasetError::NotADirectory { .. }), "{err}");
}
