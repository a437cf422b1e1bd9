//! Command-line commands that are more than a call into the library.

pub mod validate;
