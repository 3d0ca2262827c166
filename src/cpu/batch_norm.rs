//! `batch_norm` CPU reference: to be written (issue 2).
