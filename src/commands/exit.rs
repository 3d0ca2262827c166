//! The exit status of a failed command: which errors are bad input (exit 2) and which are
//! failures at run time (exit 1); see [`crate::error`]. It lives with the commands because it
//! knows the error types of every layer below them.

use crate::error::{BadInput, EXIT_BAD_INPUT, EXIT_FAILURE};

/// Whether any error in the chain is bad input: [`BadInput`], or a library error that is about
/// the user's data, flags or files rather than the machine.
pub fn is_bad_input(error: &anyhow::Error) -> bool {
    use crate::data::dataset::DatasetError;
    use crate::data::labels::LabelsError;
    use crate::graph::GraphError;
    use crate::graph::executor::ExecError;
    use crate::train::checkpoint::CheckpointError;
    use crate::train::metrics::MetricsError;
    error.chain().any(|e| {
        if e.is::<BadInput>() || e.is::<GraphError>() || e.is::<LabelsError>() {
            return true;
        }
        // GPUCNN_VARIANT names a variant that does not exist or cannot run here.
        if e.is::<crate::kernels::variants::VariantError>() {
            return true;
        }
        if let Some(d) = e.downcast_ref::<DatasetError>() {
            return !matches!(d, DatasetError::Unreadable { source, .. }
                if source.kind() != std::io::ErrorKind::NotFound);
        }
        if let Some(x) = e.downcast_ref::<ExecError>() {
            return !matches!(x, ExecError::NoClassifier | ExecError::Gpu(_));
        }
        if let Some(c) = e.downcast_ref::<CheckpointError>() {
            return match c {
                CheckpointError::Write(_) | CheckpointError::Serialize { .. } => false,
                CheckpointError::Read { source, .. } => {
                    source.kind() == std::io::ErrorKind::NotFound
                }
                _ => true,
            };
        }
        if let Some(v) = e.downcast_ref::<crate::plot::PlotError>() {
            return matches!(v, crate::plot::PlotError::UnsupportedExtension { .. });
        }
        if let Some(m) = e.downcast_ref::<MetricsError>() {
            return !matches!(
                m,
                MetricsError::Write(_) | MetricsError::Read { .. } | MetricsError::Append { .. }
            );
        }
        false
    })
}

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
