//! Command-line commands that are more than a call into the library.

pub mod demo;
pub mod ops;
pub mod runs;
pub mod storage;
pub mod tables;
pub mod validate;
