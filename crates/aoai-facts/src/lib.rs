//! What Azure OpenAI publishes and both sides of fthub's tests must agree on, kept apart so
//! the emulator (an independent model of Azure) and the pipeline read the same facts:
//! token counting per model family ([`tokens`]), where fine-tuned deployments are
//! offered ([`availability`]), and a few small rules ([`rules`]).

pub mod availability;
pub mod rules;
pub mod tokens;
