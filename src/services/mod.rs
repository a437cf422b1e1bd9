//! Services sequence effects through ports; handlers and the CLI call them.

pub mod deadletters;
pub mod docs;
pub mod inventory;
pub mod pipeline;
pub mod runs;
pub mod status;
pub mod validation;
