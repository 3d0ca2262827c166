//! The exit status of a failed command: which errors are bad input (exit 2) and which are
//! failures at run time (exit 1); see [`crate::error`]. The classification itself is the
//! trainer's ([`crate::train::api::is_bad_input`]), which its library API reports too.

use crate::error::{EXIT_BAD_INPUT, EXIT_FAILURE};

pub use crate::train::api::is_bad_input;

/// The exit status for an error: [`EXIT_BAD_INPUT`] or [`EXIT_FAILURE`].
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if is_bad_input(error) {
        EXIT_BAD_INPUT
    } else {
        EXIT_FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::bad_input;
    use anyhow::Context;

    #[test]
    fn bad_input_anywhere_in_the_chain_exits_2_and_anything_else_1() {
        let e = bad_input("--lr must be positive");
        assert_eq!(exit_code(&e), EXIT_BAD_INPUT);
        let wrapped = Err::<(), _>(e).context("starting the run").unwrap_err();
        assert_eq!(exit_code(&wrapped), EXIT_BAD_INPUT);
        let io = anyhow::Error::from(std::io::Error::other("device lost"));
        assert_eq!(exit_code(&io), EXIT_FAILURE);
        let full = anyhow::Error::from(crate::atomic::AtomicWriteError {
            path: "x".into(),
            step: "writing",
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        assert_eq!(exit_code(&full), EXIT_FAILURE);
    }
}
