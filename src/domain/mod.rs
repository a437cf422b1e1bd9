//! Pure, synchronous rules: no IO, no tokio. Everything here is unit-tested with tables.

pub mod aoai;
pub mod blob_name;
pub mod dataset_path;
pub mod validation;
