//! Pure, synchronous rules: no IO, no tokio. Everything here is unit-tested with tables.

pub mod aoai;
pub mod approval;
pub use aoai_facts::availability;
pub mod blob_name;
pub mod dataset_path;
pub mod env;
pub mod evaluation;
pub mod heldout;
pub mod inventory;
pub mod manifest;
pub mod messages;
pub mod project;
pub mod queue;
pub mod ratelimit;
pub mod run;
pub mod topology;
pub mod validation;
