//! The bench harness: benchmark cases contributed by each kernel family (`bench::cases`,
//! listed by `kernels::registry::FAMILIES`), timed by `benches/kernels.rs`.
//!
//! A case owns its buffers and pre-built [`Dispatch`]es; the bench records them into one
//! command encoder, submits and waits, so what is timed is the GPU work (plus one submit),
//! never pipeline or bind-group creation.
//!
//! A leaf: it imports only [`crate::gpu`], never a kernel family.

use crate::gpu::GpuContext;
use crate::gpu::shader::{Dispatch, run_all};

/// What one run of a case does, for criterion's throughput: FLOPs (compute-bound kernels,
/// reported as GFLOP/s) or bytes moved (memory-bound kernels, reported as GB/s).
#[derive(Debug, Clone, Copy)]
pub enum Work {
    Flops(u64),
    Bytes(u64),
}

/// One benchmark: criterion group `group` (the op), id `id` (shape, pass and variant, e.g.
/// `8x90x90x128_k3s2/forward/tiled`).
pub struct BenchCase {
    pub group: &'static str,
    pub id: String,
    pub work: Work,
    pub dispatches: Vec<Dispatch>,
    /// Buffers the dispatches bind, kept alive for the case's lifetime.
    pub buffers: Vec<wgpu::Buffer>,
}

impl BenchCase {
    /// Records all dispatches in one pass, submits, and waits for the GPU.
    pub fn run_once(&self, ctx: &GpuContext) {
        let refs: Vec<&Dispatch> = self.dispatches.iter().collect();
        run_all(ctx, &refs).expect("bench dispatch failed");
    }
}

/// Lets a bench binary end at a closed pipe (`cargo bench … | head`) the way any Unix tool
/// does, ended by SIGPIPE, instead of panicking in criterion's printing or its own: Rust
/// starts programs with SIGPIPE ignored, so a write to a closed pipe is an error, which
/// `println!` turns into a panic. The CLI keeps SIGPIPE ignored on purpose (a training run
/// outlives the reader of its output: `commands::output`); a bench has nothing to finish.
pub fn end_quietly_on_closed_pipe() {
    #[cfg(unix)]
    {
        unsafe extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        // SIGPIPE is 13 and SIG_DFL 0 on Linux, macOS and the BSDs.
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: restores the default disposition of one signal; no handler is installed.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    /// Not a test: the child process of [`a_closed_pipe_ends_the_process_by_sigpipe`], which
    /// writes until its reader goes away (ignored, so that only that test runs it).
    #[test]
    #[ignore = "the child process of a_closed_pipe_ends_the_process_by_sigpipe"]
    fn closed_pipe_child() {
        if std::env::var_os("GPUCNN_CLOSED_PIPE_CHILD").is_none() {
            return;
        }
        super::end_quietly_on_closed_pipe();
        loop {
            println!("line");
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_process_by_sigpipe() {
        use std::io::Read;
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "bench::tests::closed_pipe_child",
                "--ignored",
                "--nocapture",
            ])
            .env("GPUCNN_CLOSED_PIPE_CHILD", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut first = [0u8; 64];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The pipe's read end is dropped: the child's next write meets a closed pipe.
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(13),
            "the child ended with {status} instead of by SIGPIPE"
        );
    }
}
