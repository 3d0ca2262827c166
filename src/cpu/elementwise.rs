//! `elementwise` CPU reference: to be written (issue 2).
