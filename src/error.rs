//! The one question every error answers: retry or not.
//!
//! Each module has its own `thiserror` enum and implements [`Classify`]. The handler
//! edge ([`crate::host::outcome`]) is the only place that turns a class into an HTTP
//! status: terminal failures answer 200 with the rejection recorded and emitted, so a
//! poison message does not burn ten deliveries; retryable failures answer 500 so the
//! host abandons the message (Service Bus redelivers) or the timer runs again.

use std::fmt;

/// Whether retrying the same invocation can ever succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input or a policy refusal: the same payload will fail the same way.
    Terminal,
    /// Throttling, an outage, a conflict: a later delivery may succeed.
    Retryable,
}

/// Implemented by every module error so the edge can classify it without knowing it.
pub trait Classify: std::error::Error {
    /// The retry class of this error.
    fn class(&self) -> ErrorClass;
    /// A short, stable machine name for logs and rejection records (e.g. `bad_envelope`).
    fn kind(&self) -> &'static str;
}

/// What a function returns when it fails.
#[derive(Debug)]
pub struct FunctionError {
    class: ErrorClass,
    kind: &'static str,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl FunctionError {
    /// The retry class decided where the error was raised.
    pub fn class(&self) -> ErrorClass {
        self.class
    }
    /// The stable machine name of the failure.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
    /// A terminal failure built from a plain reason (policy refusals, unknown events).
    pub fn terminal(kind: &'static str, reason: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Terminal,
            kind,
            source: reason.into().into(),
        }
    }
    /// The full cause chain, joined, for the single log line at the edge.
    pub fn chain(&self) -> String {
        let mut out = self.source.to_string();
        let mut cur = self.source.source();
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)
    }
}

impl std::error::Error for FunctionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

impl<E> From<E> for FunctionError
where
    E: Classify + Send + Sync + 'static,
{
    fn from(e: E) -> Self {
        Self {
            class: e.class(),
            kind: e.kind(),
            source: Box::new(e),
        }
    }
}
