//! Services sequence effects through ports; handlers and the CLI call them.

pub mod validation;
