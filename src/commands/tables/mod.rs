//! Text for the terminal from the Status API's JSON views (the same JSON `--json` prints),
//! so the CLI reads the same whether it reached the app or storage. Columns size to their
//! content; stages and health words are coloured only when the caller says the output is a
//! terminal that wants colour.

use serde_json::Value;

pub(crate) fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// ANSI colour for a stage, status or health word: green for where a run should be, red for
/// a stop, yellow for what needs a look; none for the rest.
fn colour_of(word: &str) -> Option<&'static str> {
    match word {
        "prod" | "test" | "dev" | "evaluated" | "healthy" | "verified" | "restored"
        | "accepted" | "passed" | "serving" | "ok" => Some("32"),
        "rejected" | "training_failed" | "evaluation_failed" | "failed" | "degraded"
        | "missing" | "refused" | "approval_refused" => Some("31"),
        "stalled" | "unmanaged" | "drift" | "stale" | "cancelled" | "queued" | "waiting" => {
            Some("33")
        }
        _ => None,
    }
}

/// A word, coloured when `colour` is on and the word has a colour.
pub fn paint(word: &str, colour: bool) -> String {
    match colour_of(word) {
        Some(c) if colour => format!("\x1b[{c}m{word}\x1b[0m"),
        _ => word.to_owned(),
    }
}

/// A table whose columns are as wide as their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Adds a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// Whether only the header is there.
    pub fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }

    /// The text; the cells of the `coloured` columns are painted when `colour` is on.
    pub fn render(&self, coloured: &[usize], colour: bool) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|x| x.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, r) in self.rows.iter().enumerate() {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                let last = c + 1 == r.len();
                let pad = widths[c].saturating_sub(cell.chars().count());
                if i > 0 && coloured.contains(&c) {
                    line.push_str(&paint(cell, colour));
                } else {
                    line.push_str(cell);
                }
                if !last {
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

mod estate;
mod runs;

pub use estate::{capacity, endpoints, environments, project, projects};
pub use runs::{audit, run_detail, runs};

#[cfg(test)]
mod tests;
