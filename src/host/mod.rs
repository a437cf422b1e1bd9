//! The inbound edge: the Azure Functions custom-handler wire contract.
//!
//! The host POSTs `{Data, Metadata}` to `/{FunctionName}` and expects
//! `{Outputs, Logs, ReturnValue}` as `application/json` back. Top-level strings arrive
//! JSON-encoded twice, numbers and booleans as strings, objects nested, arrays as JSON
//! text (see docs/handler.md). Everything here decodes leniently:
//! the documented shape and the shapes older hosts and the docs' samples show.

pub mod envelope;
pub mod outcome;
pub mod trigger;

pub use envelope::{Invocation, InvokeResponse};
