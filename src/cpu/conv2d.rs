//! `conv2d` CPU reference: to be written (issue 2).
