//! The commands' stdout, safe against a closed pipe.
//!
//! A closed reader (`gpucnn predict … | head -1`) is not the command's failure: after a broken
//! pipe the rest of the output is dropped quietly and the command finishes its work (predict
//! still writes its --csv) and exits as it would have. Rust ignores SIGPIPE, so without this
//! `println!` would panic (exit 101) at the first line nobody reads. Any other write error (a
//! full disk behind a redirect) is a failure at run time.
//!
//! Every command prints its stdout through [`emit`], usually by the macros `out!` (`print!`)
//! and `outln!` (`println!`), which return from the calling function on a write error.
//! Messages for the user (progress, warnings, errors) go to stderr through `crate::msgln!`,
//! which likewise drops them once stderr is closed instead of panicking.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

/// Set once stdout's reader has gone away.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes a command's output to stdout and flushes it; after a broken pipe, drops it (see the
/// module's doc).
pub fn emit(text: std::fmt::Arguments) -> anyhow::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => r.context("writing to stdout"),
    }
}

/// `print!` through [`emit`]; `?`s the write error out of the calling function.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::output::emit(format_args!($($arg)*))?
    };
}

/// `println!` through [`emit`]; `?`s the write error out of the calling function.
macro_rules! outln {
    () => {
        $crate::commands::output::emit(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::commands::output::emit(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

pub(crate) use {out, outln};
