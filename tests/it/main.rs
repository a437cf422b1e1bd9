//! The integration tests, one binary: every suite is a module here, sharing `common` (the
//! handler, the local host, Azurite, the Python SDKs, files and request logs) and
//! `emulator_env` (an emulator with fast timings and the client on it).
//!
//! Suites that need tools `scripts/test` installs (python3, Azurite, Chromium, the pinned Python
//! SDKs, GNU time) run when `FTHUB_TEST_EXTERNAL=1`, which `scripts/test` sets; without it
//! they return early with a note, so `cargo test` alone passes on a bare machine.

mod common;
mod emulator_env;

mod aoai_contract;
mod aoai_emulator;
mod aoai_surfaces;
mod azure_fidelity;
mod azure_mode;
mod blob_conformance;
mod cli;
mod cpk;
mod crash;
mod dashboard;
mod demo;
mod dev_host;
mod exactly_once;
mod function_json;
mod guarantees;
mod handler_in_process;
mod hostile_input;
mod infra;
mod keygen;
mod managed_identity;
mod pipeline;
mod projects;
mod python_sdks;
mod serve_contract;
mod servicebus_sender;
mod validate_cli;
