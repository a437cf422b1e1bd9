//! Implementations of the [`crate::ports`] traits.

pub mod azure;
pub mod local;
