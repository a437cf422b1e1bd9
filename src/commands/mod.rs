//! Command-line commands that are more than a call into the library.

pub mod demo;
pub mod ops;
pub mod storage;
pub mod validate;
