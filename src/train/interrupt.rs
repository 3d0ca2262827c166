//! Clean interrupts of a training run: the first Ctrl-C (SIGINT) or SIGTERM only asks the
//! trainer to stop; it finishes the step in flight, saves where it is
//! (`interrupted.safetensors`, with the position in the epoch) and exits with status 130 or 143
//! (128 + the signal, as a shell reports a process killed by it). A second Ctrl-C ends the
//! process at once, as without a handler.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal received, 0 when none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// A stop requested by a signal, with what the run saved; the CLI exits with [`Self::code`].
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
    /// What the user reads: where the run stopped and how to continue.
    pub message: String,
}

impl Interrupted {
    /// The exit status: 128 + the signal (130 for SIGINT, 143 for SIGTERM).
    pub fn code(&self) -> u8 {
        (128 + self.signal).clamp(0, 255) as u8
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Interrupted {}

/// The signal's name, for messages.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

#[cfg(unix)]
extern "C" fn on_signal(signal: libc::c_int) {
    SIGNAL.store(signal, Ordering::SeqCst);
    // The next one of the same signal ends the process, as if no handler were installed.
    // (signal() is async-signal-safe.)
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

/// Catches SIGINT and SIGTERM for the rest of the process (the trainer calls it once, before
/// its first step).
pub fn install() {
    SIGNAL.store(0, Ordering::SeqCst);
    #[cfg(unix)]
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The signal that asked the run to stop, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
