//! What a command prints: text for people by default, JSON on request, colour only on a
//! terminal and never with `NO_COLOR`, and a closed pipe ends the command quietly.

use std::io::IsTerminal as _;

use fthub::commands::emit;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text for people.
    Text,
    /// JSON, the same documents the Status API serves.
    Json,
}

/// Where a command's results go.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    json: bool,
    colour: bool,
}

impl Out {
    /// JSON or text; text is coloured only when stdout is a terminal and `NO_COLOR` is unset
    /// or empty (no-color.org).
    pub fn new(json: bool) -> Self {
        Self {
            json,
            colour: !json && fthub::telemetry::colour_allowed(std::io::stdout().is_terminal()),
        }
    }

    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether text may be coloured.
    pub fn colour(&self) -> bool {
        self.colour
    }

    /// Prints text as it is.
    pub fn text(&self, text: &str) {
        emit(text);
    }

    /// Prints a JSON document, pretty.
    pub fn value(&self, v: &impl serde::Serialize) {
        emit(&(serde_json::to_string_pretty(v).unwrap_or_default() + "\n"));
    }

    /// The JSON document when JSON was asked for, else the text.
    pub fn either(&self, v: &impl serde::Serialize, text: impl FnOnce() -> String) {
        if self.json {
            self.value(v);
        } else {
            self.text(&text());
        }
    }
}
