//! fthub: the Hub/Spoke fine-tuning pipeline for Azure OpenAI, shipped as an Azure
//! Functions custom handler.
//!
//! # Layout
//!
//! - [`host`]: the inbound edge. The custom-handler wire contract: the `{Data, Metadata}`
//!   envelope with its double-encoded strings, typed trigger payloads, the
//!   `{Outputs, Logs, ReturnValue}` response, and the one place errors become retry classes.
//! - [`functions`]: one module per Azure function (`functions/NAME/function.json`);
//!   decode, call, encode. Nothing else.
//! - [`domain`]: pure, synchronous rules (no IO, no tokio).
//! - [`ports`]: the traits every effect goes through.
//! - [`adapters`]: implementations of the ports (local filesystem store, durable local bus).
//! - [`local`]: `fthub dev`, the local Functions host stand-in.
//! - [`server`]: `fthub serve`, the handler process the Functions host starts.

pub mod adapters;
pub mod app;
pub mod commands;
pub mod domain;
pub mod error;
pub mod functions;
pub mod fuzzing;
pub mod host;
pub mod local;
pub mod ports;
pub mod server;
pub mod services;
pub mod telemetry;
pub mod views;
