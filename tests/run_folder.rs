//! The run folder of `gpucnn train` (`--out`) under reuse, kills, full disks, concurrent runs and
//! degenerate training, on a tiny generated dataset (48 images of 20×20, 2 epochs at the
//! smallest settings), on whatever adapter the machine has (lavapipe in CI).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    Shape, assert_exit, assert_success, run, shapes_dataset, stderr, tensors, tiny_train,
    write_blank_image,
};
use gpucnn::gpu::test_context;

/// 24 discs and 24 squares, 20×20 PNGs, in `root/discs` and `root/squares`.
fn make_dataset(root: &Path) {
    use rand::Rng;
    let draw = |rng: &mut rand::rngs::StdRng, disc| {
        let bg = rng.random_range(0..80u8);
        Shape::random(disc, rng).draw([220, 200, 180], [bg; 3])
    };
    shapes_dataset(root, 7, 24, draw, |class, i| format!("{class}_{i:02}.png"));
}

/// A temporary folder holding the dataset of [`make_dataset`] in `shapes`.
fn tmp_with_dataset() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("shapes");
    make_dataset(&data);
    (tmp, data)
}

/// `gpucnn train` at the tiny settings (batch 8, flips), plus `extra`.
fn train_cmd(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Command {
    let mut c = tiny_train(out, epochs, "8");
    c.arg("--data")
        .arg(data)
        .args(["--augment", "flip"])
        .args(extra);
    c
}

fn train(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Output {
    run(&mut train_cmd(data, out, epochs, extra))
}

/// metrics.csv without the time and throughput columns (seconds, images_per_sec), which no two
/// runs share; every other column must agree to the last digit.
fn metrics_without_times(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
        .collect()
}

fn leftovers(out: &Path) -> Vec<String> {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.starts_with("gpucnn-image-cache"))
        .collect()
}

/// SIGKILL just before each atomic rename of a 2-epoch run in turn (K = 1, 2, … until the run
/// finishes unharmed: the start's run.json, metrics.csv and model.json and every end-of-epoch
/// write), then `--resume`: metrics.csv and best.safetensors must equal the uninterrupted run's,
/// and no temporary file may remain. Then a write that fails (a real EFBIG from the file-size
/// limit, as a full disk would fail it) must stop the run with exit 1 naming the file, and
/// `--resume` must recover from it the same way.
#[cfg(unix)]
#[test]
fn any_interruption_resumes_to_the_uninterrupted_run() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    if test_context().is_none() {
        return;
    }
    let started = Instant::now();
    let (tmp, data) = tmp_with_dataset();
    let reference = tmp.path().join("reference");
    assert_success(&train(&data, &reference, "2", &[]));
    let want = metrics_without_times(&reference);
    assert_eq!(want.len(), 3, "{want:?}");
    let want_best = tensors(&reference.join("best.safetensors"));

    let check_resumed = |out: &Path, what: &str| {
        let r = train(&data, out, "2", &["--resume"]);
        assert!(r.status.success(), "{what}: resume failed:\n{}", stderr(&r));
        assert_eq!(metrics_without_times(out), want, "{what}");
        assert!(
            tensors(&out.join("best.safetensors")) == want_best,
            "{what}: best.safetensors differs from the uninterrupted run's"
        );
        assert!(leftovers(out).is_empty(), "{what}: {:?}", leftovers(out));
    };

    // The kills and resumes are independent: run them a few at a time.
    let parallel = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let mut killed_in_epochs = Vec::new();
    let mut first = 1;
    'kills: loop {
        let outputs: Vec<(usize, PathBuf, Output)> = std::thread::scope(|s| {
            let runs: Vec<_> = (first..first + parallel)
                .map(|k| {
                    let out = tmp.path().join(format!("kill{k}"));
                    let mut cmd = train_cmd(&data, &out, "2", &[]);
                    cmd.env("GPUCNN_TEST_KILL_AT_RENAME", k.to_string());
                    s.spawn(move || (k, out, cmd.output().unwrap()))
                })
                .collect();
            runs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (k, out, r) in outputs {
            if r.status.success() {
                break 'kills; // K is past the last rename.
            }
            assert_eq!(r.status.signal(), Some(9), "K={k}: {}", stderr(&r));
            // Kills before the first epoch (run.json, metrics.csv, model.json) leave nothing to
            // resume but a fresh start; the end-of-epoch ones are what this test is about.
            if stderr(&r).contains("Epoch 1/") {
                killed_in_epochs.push((k, out));
            }
        }
        first += parallel;
    }
    // Per epoch metrics.csv, curves.png, best (epoch 1 always improves) and the checkpoint;
    // epoch 2 writes best only if it improved.
    let kills = killed_in_epochs.len();
    assert!(kills >= 7, "only {kills} end-of-epoch renames");
    for chunk in killed_in_epochs.chunks(parallel) {
        std::thread::scope(|s| {
            for (k, out) in chunk {
                let check = &check_resumed;
                s.spawn(move || check(out, &format!("killed before rename {k}")));
            }
        });
    }

    // A file-size limit of 100 kB: metrics.csv, curves.png and best.safetensors fit, the
    // checkpoint (with Adam's moments, about 180 kB) does not. SIGXFSZ is ignored so that the
    // write fails with EFBIG instead of killing the process.
    let out = tmp.path().join("full");
    let mut cmd = train_cmd(&data, &out, "2", &[]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 100_000,
                rlim_max: 100_000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let e = assert_exit(&run(&mut cmd), 1);
    assert!(e.contains("save_at_1.safetensors"), "{e}");
    assert!(e.contains("--resume"), "{e}");
    assert!(!out.join("save_at_1.safetensors").exists());
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    check_resumed(&out, "after a failed write");
    eprintln!(
        "{kills} kills and a failed write resumed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// The scenario: a reused --out with other settings is refused (new run or --resume),
/// naming each differing setting; --overwrite deletes the old run so that its save_at_2 can
/// never be resumed; a checkpoint of another run put back by hand is refused too.
#[test]
fn a_run_folder_only_continues_the_run_it_records() {
    if test_context().is_none() {
        return;
    }
    let (tmp, data) = tmp_with_dataset();
    let out = tmp.path().join("run");
    assert_success(&train(&data, &out, "2", &["--lr", "0.01"]));
    let old_save_2 = std::fs::read(out.join("save_at_2.safetensors")).unwrap();

    for args in [&["--seed", "99"][..], &["--seed", "99", "--resume"]] {
        let r = train(&data, &out, "3", args);
        let e = stderr(&r);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains("--seed 1337 → 99"), "{e}");
        assert!(e.contains("--lr 0.01 → 0.001"), "{e}");
        assert!(e.contains("--overwrite"), "{e}");
        assert!(!e.contains("Epoch 1"), "{e}");
    }
    // Same settings, no --resume: refused too (it would leave save_at_2 for a later --resume).
    let e = assert_exit(&train(&data, &out, "3", &["--lr", "0.01"]), 2);
    assert!(e.contains("--resume") && e.contains("--overwrite"), "{e}");
    // Other data: one more file.
    let extra = data.join("discs/discs_00.png");
    std::fs::copy(&extra, data.join("discs/extra.png")).unwrap();
    let e = assert_exit(&train(&data, &out, "3", &["--lr", "0.01", "--resume"]), 2);
    assert!(e.contains("data files (--data) 48 files"), "{e}");
    std::fs::remove_file(data.join("discs/extra.png")).unwrap();

    // Afresh: 1 epoch with seed 99, then resumed to 2: from its own save_at_1, not the old run's.
    assert_success(&train(&data, &out, "1", &["--seed", "99", "--overwrite"]));
    assert!(!out.join("save_at_2.safetensors").exists());
    let e = assert_success(&train(&data, &out, "2", &["--seed", "99", "--resume"]));
    assert!(e.contains("save_at_1.safetensors (epoch 1)"), "{e}");
    assert_eq!(metrics_without_times(&out).len(), 3);

    // The old run's checkpoint copied back in as the latest: its own fingerprint refuses it.
    std::fs::write(out.join("save_at_3.safetensors"), old_save_2).unwrap();
    let e = assert_exit(&train(&data, &out, "4", &["--seed", "99", "--resume"]), 2);
    assert!(
        e.contains("save_at_3.safetensors was written by another run"),
        "{e}"
    );
    assert!(e.contains("--seed 1337 → 99"), "{e}");
}

/// Two gpucnn processes on one --out: the second fails at once naming the folder; the lock
/// dies with the first process (kill -9), so a third run proceeds.
#[test]
fn a_second_run_on_the_same_out_fails_at_once() {
    if test_context().is_none() {
        return;
    }
    let (tmp, data) = tmp_with_dataset();
    let out = tmp.path().join("run");
    let mut first = train_cmd(&data, &out, "2000", &[])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // run.json is written under the lock, before the first epoch.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !out.join("run.json").exists() {
        assert!(Instant::now() < deadline, "the first run never started");
        assert!(first.try_wait().unwrap().is_none(), "the first run ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let e = assert_exit(&train(&data, &out, "1", &["--resume"]), 2);
    assert!(e.contains(&out.display().to_string()), "{e}");
    assert!(e.contains("in use by another gpucnn run"), "{e}");
    assert!(!e.contains("Epoch 1"), "{e}");
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run was disturbed"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    assert_success(&train(&data, &out, "1", &["--resume"]));
}

/// Degenerate training is refused instead of looking like success: a class whose files are all
/// unreadable (exit 2, naming it), a run that cannot fit the disk (exit 1 before the first
/// epoch), and a diverging one (exit 1, nothing of the epoch saved).
#[test]
fn degenerate_runs_are_refused_or_stopped() {
    if test_context().is_none() {
        return;
    }
    let (tmp, data) = tmp_with_dataset();
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(broken.join("cats")).unwrap();
    std::fs::create_dir_all(broken.join("dogs")).unwrap();
    for i in 0..6 {
        std::fs::copy(
            data.join(format!("discs/discs_{i:02}.png")),
            broken.join(format!("cats/{i}.png")),
        )
        .unwrap();
        std::fs::write(broken.join(format!("dogs/{i}.jpg")), b"not a picture").unwrap();
    }
    let out = tmp.path().join("out");
    let e = assert_exit(&train(&broken, &out, "1", &[]), 2);
    assert!(e.contains("class 'dogs'"), "{e}");
    assert!(
        e.contains(&broken.join("dogs").display().to_string()),
        "{e}"
    );

    // A third class of one image sits in one split only: warned about.
    let three = tmp.path().join("three");
    for (class, n) in [("discs", 24), ("squares", 24)] {
        std::fs::create_dir_all(three.join(class)).unwrap();
        for i in 0..n {
            let name = format!("{class}_{i:02}.png");
            std::fs::copy(data.join(class).join(&name), three.join(class).join(&name)).unwrap();
        }
    }
    std::fs::create_dir_all(three.join("zzz")).unwrap();
    std::fs::copy(data.join("discs/discs_00.png"), three.join("zzz/one.png")).unwrap();
    let e = assert_success(&train(&three, &tmp.path().join("three_out"), "1", &[]));
    assert!(
        e.contains("warning: class 'zzz'")
            && (e.contains("has no validation image") || e.contains("has no training image")),
        "{e}"
    );

    let out = tmp.path().join("huge");
    let e = assert_exit(&train(&data, &out, "1000000000", &[]), 1);
    assert!(e.contains("not enough free disk space"), "{e}");
    assert!(e.contains("--epochs"), "{e}");
    assert!(!e.contains("Epoch 1/"), "{e}");

    let out = tmp.path().join("diverged");
    let e = assert_exit(&train(&data, &out, "2", &["--lr", "1e38"]), 1);
    assert!(e.contains("training diverged in epoch 1"), "{e}");
    assert!(e.contains("Lower --lr"), "{e}");
    for f in ["save_at_1.safetensors", "best.safetensors"] {
        assert!(!out.join(f).exists(), "{f} was saved");
    }
    assert_eq!(metrics_without_times(&out).len(), 1, "no row for epoch 1");
}

/// The error for an empty split says which way to move --validation-split.
#[test]
fn an_empty_split_says_which_way_to_move_the_validation_split() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("two");
    for class in ["a", "b"] {
        write_blank_image(&data.join(class).join("x.png"));
    }
    let out = tmp.path().join("out");
    // 2 files: a split of 0.01 holds out none (a split can never leave training empty; only
    // unreadable files can, and then the message says lower).
    let e = assert_exit(&train(&data, &out, "1", &["--validation-split", "0.01"]), 2);
    assert!(e.contains("raise --validation-split"), "{e}");
    assert!(!e.contains("lower --validation-split"), "{e}");
}

/// `gpucnn train … 2>&1 | head -2`: once the reader of stderr (progress, messages) is gone, the
/// messages are dropped and the training still runs to the end and saves; it used to panic
/// (exit 101) at the first message nobody read, before anything was saved.
#[test]
fn a_closed_stderr_does_not_stop_a_training() {
    let (tmp, data) = tmp_with_dataset();
    if test_context().is_none() {
        return;
    }
    let out = tmp.path().join("run");
    let mut child = train_cmd(&data, &out, "1", &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the only read end before the first message is written.
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(out.join("save_at_1.safetensors").is_file());
    assert_eq!(metrics_without_times(&out).len(), 2, "a header and epoch 1");
}
