//! Data-parallel scaling on this machine: one training step of the same global batch at 1 and
//! 2 MPI ranks (`cargo bench --features mpi --bench data_parallel`), each rank with its own
//! core on lavapipe (`LP_NUM_THREADS=1`), and the cost of the gradient exchange alone.
//!
//! Run plainly, the bench starts itself under `mpirun -np 1` and `mpirun -np 2`, collects the
//! line rank 0 prints and reports step times, the exchange's share and the scaling efficiency
//! (speedup over one rank / ranks). `GPUCNN_DP_CASE=image,width,batch,steps` changes the case
//! (default 64,1.0,32,3: the Keras example's full width, 10.9 MB of gradient per step).

use std::process::Command;
use std::time::Instant;

use gpucnn::dist::{Collective, DataParallel, local_batch, shard};
use gpucnn::graph::executor::{BatchTargets, StepOptions, TrainStep};
use gpucnn::graph::params::Region;
use gpucnn::model::{XceptionConfig, xception_mini};

struct Case {
    image: usize,
    width: f32,
    batch: usize,
    steps: usize,
}

fn case() -> Case {
    let v = std::env::var("GPUCNN_DP_CASE").unwrap_or_else(|_| "64,1.0,32,3".into());
    let p: Vec<&str> = v.split(',').collect();
    assert_eq!(
        p.len(),
        4,
        "GPUCNN_DP_CASE=image,width,batch,steps, got {v}"
    );
    Case {
        image: p[0].parse().expect("image size"),
        width: p[1].parse().expect("width"),
        batch: p[2].parse().expect("batch"),
        steps: p[3].parse().expect("steps"),
    }
}

fn main() {
    gpucnn::bench::end_quietly_on_closed_pipe();
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
        return rank_main();
    }
    let me = std::env::current_exe().unwrap();
    let c = case();
    println!(
        "data-parallel step: image {}, width {}, global batch {}, {} timed steps; lavapipe, one \
         core per rank",
        c.image, c.width, c.batch, c.steps
    );
    let mut per_step = Vec::new();
    for np in [1, 2] {
        let o = Command::new("mpirun")
            .args(["--allow-run-as-root", "--oversubscribe", "-np"])
            .arg(np.to_string())
            .args(["-x", "LP_NUM_THREADS=1", "-x", "GPUCNN_TUNE=0"])
            .arg(&me)
            .output()
            .expect("mpirun (Open MPI) on the PATH");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        for l in out.lines().filter(|l| l.starts_with("  ")) {
            println!("{l}");
        }
        let step: f64 = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("step_ms="))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("rank 0's step_ms line");
        per_step.push(step);
    }
    let speedup = per_step[0] / per_step[1];
    println!(
        "scaling: 1 rank {:.0} ms/step, 2 ranks {:.0} ms/step: speedup {speedup:.2}, efficiency \
         {:.0}% (goal ≥ 90%)",
        per_step[0],
        per_step[1],
        100.0 * speedup / 2.0
    );
}

fn rank_main() {
    let world = gpucnn::dist::mpi::Mpi::init().expect("started by mpirun");
    let c = case();
    let (rank, size) = (world.rank(), world.size());
    let ctx = gpucnn::gpu::test_context().expect("an adapter");
    let model = xception_mini(&XceptionConfig {
        image_size: gpucnn::model::ImageSize::square(c.image),
        width: c.width,
        ..Default::default()
    })
    .unwrap();
    let per = local_batch(c.batch, size);
    let mine = shard(c.batch, per, rank);
    let step = TrainStep::with_options(&ctx, &model, per, &StepOptions::default()).unwrap();
    let init = step.layout.initial_values(1);
    step.load_params(&ctx, &init);
    let (start, len) = step.layout.regions[Region::State as usize];
    let mut dp = DataParallel::new(&world, &model, &step.layout, &init[start..start + len]);
    let sample = c.image * c.image * 3;
    let x: Vec<u8> = (0..mine.len() * sample)
        .map(|i| (i * 31 % 256) as u8)
        .collect();
    let t: Vec<f32> = (0..mine.len()).map(|i| (i % 2) as f32).collect();
    step.write_batch_u8(&ctx, &x, BatchTargets::Binary(&t));
    let run = |dp: &mut DataParallel| {
        if size == 1 {
            // One process: the trainer's own step, no exchange at all.
            step.submit(&ctx, mine.len());
        } else {
            step.submit_gradients(&ctx, mine.len());
            dp.step(&ctx, &step, mine.len()).unwrap();
        }
        ctx.wait().unwrap();
    };
    run(&mut dp); // warm-up: pipelines, first dispatches
    world.gather_u64(0); // start the clock together
    let (wait0, comm0, copy0) = (dp.wait_secs, dp.comm_secs, dp.copy_secs);
    let t0 = Instant::now();
    for _ in 0..c.steps {
        run(&mut dp);
    }
    let secs = t0.elapsed().as_secs_f64() / c.steps as f64;
    let per = |x: f64| x / c.steps as f64 * 1e3;
    let (wait, comm, copy) = (
        per(dp.wait_secs - wait0),
        per(dp.comm_secs - comm0),
        per(dp.copy_secs - copy0),
    );
    // The allreduce alone, over the whole flat gradient, timed over a few calls.
    let mut grad = vec![1.0f32; step.layout.trainable_len + 1];
    let t1 = Instant::now();
    let calls = 5;
    for _ in 0..calls {
        world.sum_f32(&mut grad);
    }
    let allreduce = t1.elapsed().as_secs_f64() / calls as f64;
    if rank == 0 {
        let mb = grad.len() as f64 * 4.0 / 1e6;
        println!(
            "  {size} rank(s): {:.0} ms/step (shard {} images); exchange: waiting for the own \
             backward {wait:.0} ms, collectives {comm:.1} ms (with waiting for the slowest rank), \
             readback + write {copy:.1} ms; allreduce of {mb:.1} MB alone {:.2} ms ({:.2} GB/s)",
            secs * 1e3,
            mine.len(),
            allreduce * 1e3,
            mb / 1e3 / allreduce
        );
        println!("step_ms={:.3}", secs * 1e3);
    }
}
