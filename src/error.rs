//! What kind of failure an error is, for the exit status of `gpucnn`.
//!
//! - **2, bad input**: something the user gave is wrong (a flag, a path, a file's content, a
//!   setting that does not fit this device). Running again unchanged fails the same way; the
//!   message says what to change. clap's own usage errors also exit 2.
//! - **1, failure at run time**: the input was fine but the run failed (GPU lost, disk full, an
//!   I/O error, a training that diverged). `predict` also exits 1 when some images were unreadable.
//!
//! Library code marks bad input with [`BadInput`] (or one of the library's own input error
//! types); everything else is a run-time failure. Which error types are bad input is decided
//! where the exit status is, in [`crate::commands::exit`]: this module is a leaf that every
//! other one may use.

use thiserror::Error;

/// Exit status of a failure at run time.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of bad input (a flag, path or file the user gave).
pub const EXIT_BAD_INPUT: u8 = 2;

/// An error caused by what the user gave; its message names the flag or file and what to do.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// `BadInput` as an `anyhow::Error`.
#[cfg(feature = "cli")]
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

/// `return Err(bad_input(format!(...)))`, as `anyhow::bail!` for bad input.
#[cfg(feature = "cli")]
#[macro_export]
macro_rules! bail_input {
    ($($arg:tt)*) => {
        return Err($crate::error::bad_input(format!($($arg)*)).into())
    };
}

/// `if !cond { bail_input!(...) }`, as `anyhow::ensure!` for bad input.
#[cfg(feature = "cli")]
#[macro_export]
macro_rules! ensure_input {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::bail_input!($($arg)*);
        }
    };
}

/// `eprintln!` that never panics: a line for the user on stderr, dropped when stderr is closed
/// (`gpucnn train … 2>&1 | head`) or fails. `eprintln!` panics there (Rust ignores SIGPIPE), so
/// the first message nobody reads would end a training before it saved anything; with this the
/// command finishes its work, as stdout's `commands::output::emit` already lets predict do.
#[macro_export]
macro_rules! msgln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}
