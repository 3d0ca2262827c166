//! Data-parallel training over MPI (`--features mpi`): two ranks on this machine's adapter
//! (lavapipe in CI, one core each) against one process that runs the same shards as its
//! micro-batches. Run with `cargo test --features mpi --test mpi` (Open MPI's `mpirun` on the
//! PATH; `.ci/run` installs it).
//!
//! Each test starts `mpirun`; the step-level test starts this very test binary under it
//! (`rank_main`), so that its body runs once per rank.

#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{
    PORTABLE_GEMM, assert_exit, assert_success, gpucnn_cmd, s, shapes_dataset, stderr, tiny_train,
};
use gpucnn::dist::{Collective, DataParallel};
use gpucnn::graph::executor::{BatchTargets, StepOptions, TrainStep};
use gpucnn::graph::params::Region;

/// `mpirun -np N` as sessions and CI run it: as root, more ranks than Open MPI counts slots
/// for, one lavapipe thread per rank (each rank its own core), tuning off and the portable
/// GEMM as in every tiny CLI test (`common::gpucnn_cmd`: the single-process references run
/// with the same kernels).
fn mpirun(np: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(np.to_string())
        .args(["-x", "LP_NUM_THREADS=1", "-x", "GPUCNN_TUNE=0", "-x"])
        .arg(format!("{}={}", PORTABLE_GEMM.0, PORTABLE_GEMM.1));
    c
}

fn output(c: &mut Command) -> Output {
    c.output()
        .expect("mpirun (Open MPI's openmpi-bin) on the PATH: the mpi tests need it")
}

/// The same `gpucnn` arguments as `tiny_train` builds, under `mpirun -np np`.
fn mpi_train(np: usize, out: &Path, epochs: &str, batch: &str) -> Command {
    let tiny = tiny_train(out, epochs, batch);
    let mut c = mpirun(np);
    c.arg(tiny.get_program()).args(tiny.get_args());
    c
}

/// Discs against squares, 24 of each at 20×20 (the loader resizes them to 16).
fn make_data(root: &Path) {
    shapes_dataset(
        root,
        7,
        24,
        |rng, disc| common::Shape::random(disc, rng).draw([230, 220, 200], [20, 30, 40]),
        |class, i| format!("{class}_{i:02}.png"),
    );
}

fn metrics(out: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// Loss, accuracy, val_loss, val_accuracy of every epoch agree within float noise.
///
/// val_loss gets 10× the others' tolerance, because the two runs sum gradients in different
/// orders and the model amplifies that rounding there alone: a convolution bias followed by
/// batch norm has a true gradient of 0, so its gradient is rounding noise (~1e-8), which Adam
/// turns into steps of ~0.1·lr that differ between the runs. Training-mode batch norm cancels
/// the bias (the losses agree to 1e-7), but the moving mean follows it only with momentum 0.99,
/// so inference, and val_loss with it, differs by ~1e-4 after 3 epochs (seen 1.25e-4; CI, stop
/// 22). The step-level test below checks the exchange itself, batch-norm state included.
fn assert_same_metrics(a: &[Vec<f64>], b: &[Vec<f64>]) {
    assert_eq!(a.len(), b.len(), "{a:?}\n{b:?}");
    for (x, y) in a.iter().zip(b) {
        for col in 1..=4 {
            let rel = if col == 3 { 1e-3 } else { 1e-4 };
            let tol = rel * x[col].abs().max(1.0);
            assert!(
                (x[col] - y[col]).abs() <= tol,
                "epoch {} column {col}: {} against {}\n{a:?}\n{b:?}",
                x[0],
                x[col],
                y[col]
            );
        }
    }
}

/// Two ranks of batch 6 each train (and resume) exactly as one process with batch 12 run as
/// micro-batches of 6; rank 0 alone writes the run folder and prints.
#[test]
fn two_ranks_train_and_resume_as_one_process_in_micro_batches() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let single = common::run(
        tiny_train(&one, "3", "12")
            .args(["--data", s(&data), "--micro-batch", "6"])
            .env("LP_NUM_THREADS", "1"),
    );
    assert_success(&single);
    let o = output(mpi_train(2, &two, "2", "12").args(["--data", s(&data)]));
    let e = assert_success(&o);
    assert!(e.contains("Data-parallel training over 2 MPI ranks"), "{e}");
    assert_eq!(e.matches("Epoch 1/2").count(), 1, "one rank prints:\n{e}");
    assert!(e.contains("rank 1 (machine-local 1 of 2)"), "{e}");
    let expected = metrics(&one);
    assert_same_metrics(&metrics(&two), &expected[..2]);
    // --resume under MPI: rank 0 reads the checkpoint and sends the others its state.
    let o = output(mpi_train(2, &two, "3", "12").args(["--data", s(&data), "--resume"]));
    let e = assert_success(&o);
    assert!(e.contains("Resuming from"), "{e}");
    assert_same_metrics(&metrics(&two), &expected);
    // Rank 0's files only: the same names as the single run's.
    let names = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&one), names(&two));
}

/// Bad input on every rank: one message, exit status 2, no hang.
#[test]
fn bad_flags_or_data_end_every_rank_with_status_2_and_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no such folder");
    let o = output(mpi_train(2, &dir.path().join("out"), "1", "4").args(["--data", s(&missing)]));
    let e = assert_exit(&o, 2);
    assert_eq!(e.matches("error:").count(), 1, "{e}");
    assert!(e.contains("no such folder"), "{e}");
    // A flag clap refuses.
    let bin = gpucnn_cmd();
    let o = output(
        mpirun(2)
            .arg(bin.get_program())
            .args(["train", "--epochs", "many"]),
    );
    let e = assert_exit(&o, 2);
    assert_eq!(e.matches("invalid value 'many'").count(), 1, "{e}");
}

/// Ranks launched with different flags (an MPMD launch) are refused before any work.
#[test]
fn ranks_with_different_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let out = dir.path().join("out");
    let rank = |seed: &str| {
        let t = tiny_train(&out, "1", "4");
        let mut args: Vec<String> = vec!["-np".into(), "1".into()];
        args.push(t.get_program().to_string_lossy().into_owned());
        args.extend(t.get_args().map(|a| a.to_string_lossy().into_owned()));
        args.extend([
            "--data".into(),
            s(&data).into(),
            "--seed".into(),
            seed.into(),
        ]);
        args
    };
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-x",
        "GPUCNN_TUNE=0",
    ])
    .args(rank("1"))
    .arg(":")
    .args(rank("2"));
    let o = output(&mut c);
    let e = assert_exit(&o, 2);
    assert_eq!(e.matches("error:").count(), 1, "{e}");
    assert!(e.contains("do not share the same flags"), "{e}");
    assert!(!out.join("metrics.csv").exists());
}

/// A rank killed in the middle of a run ends the whole job (no hang), and the checkpoint
/// written before stays usable for `--resume`.
#[test]
fn a_killed_rank_ends_the_job_and_the_last_checkpoint_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let out = dir.path().join("out");
    let mut child = mpi_train(2, &out, "200", "4")
        .args(["--data", s(&data)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mpirun");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !out.join("save_at_2.safetensors").exists() {
        assert!(Instant::now() < deadline, "no checkpoint in 300 s");
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    let victim = rank_pid(1, &out).expect("rank 1's process");
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not end after a rank died"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let o = output(mpi_train(2, &out, "3", "4").args(["--data", s(&data), "--resume"]));
    let e = assert_success(&o);
    assert!(e.contains("Resuming from"), "{e}");
    assert_eq!(metrics(&out).len(), 3);
}

/// The pid of the gpucnn process that is rank `rank` of the job writing `out`.
fn rank_pid(rank: usize, out: &Path) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()? {
        let e = e.ok()?;
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let has =
            |hay: &[u8], needle: &str| hay.split(|&b| b == 0).any(|part| part == needle.as_bytes());
        if has(&cmdline, s(out)) && has(&environ, &format!("OMPI_COMM_WORLD_RANK={rank}")) {
            return Some(pid);
        }
    }
    None
}

/// One step of two ranks (4 samples each) against one process stepping the 8 samples as two
/// micro-batches of 4: the loss, every gradient, every updated parameter and the batch-norm
/// statistics, after each of two steps. Runs this test binary under `mpirun -np 2`.
#[test]
fn two_ranks_step_equals_one_process_in_micro_batches() {
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
        return rank_main();
    }
    let me = std::env::current_exe().unwrap();
    let o = output(mpirun(2).arg(me).args([
        "--exact",
        "two_ranks_step_equals_one_process_in_micro_batches",
        "--nocapture",
        "--test-threads",
        "1",
    ]));
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "{out}");
    assert!(out.contains("rank 0 compared"), "{out}");
}

fn rank_main() {
    let world = gpucnn::dist::mpi::Mpi::init().expect("started by mpirun");
    let ctx = gpucnn::gpu::test_context().expect("an adapter");
    let (rank, n) = (world.rank(), 4);
    assert_eq!(world.size(), 2);
    let model = gpucnn::step_parity::small_model(2);
    let sample = 32 * 32 * 3;
    let x: Vec<f32> = (0..2 * n * sample)
        .map(|i| ((i * 7919) % 256) as f32)
        .collect();
    let t: Vec<f32> = (0..2 * n).map(|i| (i % 3 == 0) as u32 as f32).collect();
    let opts = StepOptions::default();
    let mine = TrainStep::with_options(&ctx, &model, n, &opts).unwrap();
    let init = mine.layout.initial_values(11);
    mine.load_params(&ctx, &init);
    let (start, len) = mine.layout.regions[Region::State as usize];
    let mut dp = DataParallel::new(&world, &model, &mine.layout, &init[start..start + len]);
    let reference = (rank == 0).then(|| {
        let one = TrainStep::with_options(
            &ctx,
            &model,
            2 * n,
            &StepOptions {
                micro: Some(n),
                ..opts
            },
        )
        .unwrap();
        one.load_params(&ctx, &init);
        one
    });
    for k in 0..2u32 {
        let seed = 1234 + k;
        let shard = rank * n..(rank + 1) * n;
        mine.write_batch(
            &ctx,
            &x[shard.start * sample..shard.end * sample],
            BatchTargets::Binary(&t[shard.clone()]),
        );
        mine.set_dropout_seed(
            &ctx,
            seed.wrapping_add((rank as u32).wrapping_mul(0x9E37_79B9)),
        );
        mine.submit_gradients(&ctx, n);
        let ex = dp.step(&ctx, &mine, n).unwrap();
        assert_eq!(ex.samples, 2 * n);
        ctx.wait().unwrap();
        let (grads, params) = (
            mine.read_grads(&ctx).unwrap(),
            mine.read_params(&ctx).unwrap(),
        );
        let Some(one) = &reference else { continue };
        one.write_batch(&ctx, &x, BatchTargets::Binary(&t));
        one.set_dropout_seed(&ctx, seed);
        one.run(&ctx).unwrap();
        let loss = one.read_loss(&ctx).unwrap();
        let (g1, p1) = (
            one.read_grads(&ctx).unwrap(),
            one.read_params(&ctx).unwrap(),
        );
        assert!(
            (ex.loss - loss).abs() <= 1e-5 * loss.abs(),
            "step {k}: loss {} vs {loss}",
            ex.loss
        );
        let gmax = g1.iter().fold(0f32, |m, g| m.max(g.abs()));
        let trainable = one.layout.trainable_len;
        for i in 0..one.layout.total_len {
            let (a, b) = (grads[i], g1[i]);
            assert!(
                (a - b).abs() <= 1e-5 * gmax + 1e-4 * b.abs(),
                "step {k}: gradient {i}: {a} vs {b}"
            );
            let (a, b) = (params[i], p1[i]);
            // A gradient at float noise may point either way: Adam then moves by up to lr.
            let tol = if i >= trainable {
                1e-6 + 1e-5 * b.abs()
            } else if g1[i].abs() <= 1e-5 * gmax {
                2e-3 + 1e-6
            } else {
                1e-6 + 1e-5 * b.abs() + 1e-6
            };
            assert!((a - b).abs() <= tol, "step {k}: parameter {i}: {a} vs {b}");
        }
        println!("rank 0 compared step {k}: loss {} = {loss}", ex.loss);
    }
}

/// A network namespace with a veth pair to this one: a second "machine" on this one, reached
/// over TCP. Removed on drop.
struct SecondHost {
    ns: String,
    subnet: String,
    here: String,
    there: String,
    agent: std::path::PathBuf,
}

impl SecondHost {
    /// `None` when namespaces cannot be made here (not root, no `ip`).
    fn new(dir: &Path) -> Option<Self> {
        let id = std::process::id() % 200 + 20;
        let ns = format!("gpucnn-{}", std::process::id());
        let (a, b) = (format!("gpa{id}"), format!("gpb{id}"));
        let (here, there) = (format!("10.78.{id}.1"), format!("10.78.{id}.2"));
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ip(&["netns", "add", &ns]) {
            return None;
        }
        let host = Self {
            subnet: format!("10.78.{id}.0/24"),
            agent: dir.join("netns-agent"),
            ns,
            here,
            there,
        };
        let ns = host.ns.as_str();
        let ok = ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])
            && ip(&["link", "set", &b, "netns", ns])
            && ip(&["addr", "add", &format!("{}/24", host.here), "dev", &a])
            && ip(&["link", "set", &a, "up"])
            && ip(&[
                "netns",
                "exec",
                ns,
                "ip",
                "addr",
                "add",
                &format!("{}/24", host.there),
                "dev",
                &b,
            ])
            && ip(&["netns", "exec", ns, "ip", "link", "set", &b, "up"])
            && ip(&["netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
        assert!(ok, "setting up the namespace {ns} failed");
        // What Open MPI runs instead of ssh: the command, inside the namespace.
        std::fs::write(
            &host.agent,
            format!("#!/bin/sh\nshift\nexec ip netns exec {ns} sh -c \"$*\"\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&host.agent, std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(host)
    }
}

impl Drop for SecondHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and with it the other.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// Two "machines" (this one and a network namespace, the second rank launched through
/// mpirun's ssh agent and talking TCP, as `mpirun -H host1,host2` does): the same training as
/// one process in micro-batches.
#[test]
fn two_hosts_over_tcp_train_as_one_process_in_micro_batches() {
    let dir = tempfile::tempdir().unwrap();
    let Some(host) = SecondHost::new(dir.path()) else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "CI: cannot create a network namespace (ip netns add) as this user"
        );
        eprintln!("SKIPPED: no network namespaces here (needs root and iproute2)");
        return;
    };
    let data = dir.path().join("data");
    make_data(&data);
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let single = common::run(
        tiny_train(&one, "2", "12")
            .args(["--data", s(&data), "--micro-batch", "6"])
            .env("LP_NUM_THREADS", "1"),
    );
    assert_success(&single);
    let tiny = tiny_train(&two, "2", "12");
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", "2", "-H"])
        .arg(format!("{},{}", host.here, host.there))
        .args(["--mca", "plm_rsh_agent"])
        .arg(&host.agent)
        .args(["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include"])
        .arg(&host.subnet)
        .args(["--mca", "oob_tcp_if_include"])
        .arg(&host.subnet)
        .args(["-x", "LP_NUM_THREADS=1", "-x", "GPUCNN_TUNE=0"])
        .arg(tiny.get_program())
        .args(tiny.get_args())
        .args(["--data", s(&data)]);
    let o = output(&mut c);
    let e = assert_success(&o);
    assert!(e.contains("rank 1 (machine-local 0 of 1)"), "{e}");
    assert_same_metrics(&metrics(&two), &metrics(&one));
}
