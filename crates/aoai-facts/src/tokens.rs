//! Models, encodings and token accounting.
//!
//! Per example: 3 (reply priming) + Σ over messages of (3 + tokens of every string value in
//! the message + 1 if it has `name`). `tool_calls` and `function_call` count as the tokens of
//! their JSON text, written the way Python's `json.dumps` writes it (`", "` and `": "`
//! separators, non-ASCII as `\uXXXX`, keys in file order), so the counts agree with a
//! `json` + `tiktoken` implementation. A content-parts array counts its `text` parts.
//! Special-token lookalikes (`<|endoftext|>`) are ordinary text.

use serde::Serialize;
use serde_json::{Map, Value};

/// A BPE encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// gpt-4o, gpt-4.1 and o-series families.
    O200kBase,
    /// gpt-35-turbo and gpt-4-0613.
    Cl100kBase,
}

impl Encoding {
    /// The name tiktoken uses.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    /// Tokens in `text`, as tiktoken's `encode_ordinary`. The role names every message
    /// carries are answered from a table.
    pub fn count(self, text: &str) -> u64 {
        static ROLE_COUNTS: std::sync::LazyLock<[[u64; 5]; 2]> = std::sync::LazyLock::new(|| {
            [Encoding::O200kBase, Encoding::Cl100kBase]
                .map(|e| ROLE_NAMES.map(|r| e.count_uncached(r)))
        });
        if text.len() <= 9
            && let Some(i) = ROLE_NAMES.iter().position(|r| *r == text)
        {
            return ROLE_COUNTS[self as usize][i];
        }
        self.count_uncached(text)
    }

    fn count_uncached(self, text: &str) -> u64 {
        let t = match self {
            Encoding::O200kBase => bpe_openai::o200k_base(),
            Encoding::Cl100kBase => bpe_openai::cl100k_base(),
        };
        t.count(text) as u64
    }
}

const ROLE_NAMES: [&str; 5] = ["system", "user", "assistant", "tool", "function"];

/// A base model family: its encoding and training example context length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// Family name (the longest known prefix of the model name).
    pub family: &'static str,
    /// Encoding.
    pub encoding: Encoding,
    /// Training example context length.
    pub token_limit: u64,
}

/// Known families, longest prefixes first.
const MODELS: &[ModelSpec] = &[
    ModelSpec {
        family: "gpt-4.1-nano",
        encoding: Encoding::O200kBase,
        token_limit: 32_768,
    },
    ModelSpec {
        family: "gpt-4.1-mini",
        encoding: Encoding::O200kBase,
        token_limit: 65_536,
    },
    ModelSpec {
        family: "gpt-4.1",
        encoding: Encoding::O200kBase,
        token_limit: 65_536,
    },
    ModelSpec {
        family: "gpt-4o-mini",
        encoding: Encoding::O200kBase,
        token_limit: 65_536,
    },
    ModelSpec {
        family: "gpt-4o",
        encoding: Encoding::O200kBase,
        token_limit: 65_536,
    },
    ModelSpec {
        family: "gpt-4-0613",
        encoding: Encoding::Cl100kBase,
        token_limit: 65_536,
    },
    ModelSpec {
        family: "gpt-35-turbo",
        encoding: Encoding::Cl100kBase,
        token_limit: 16_385,
    },
    ModelSpec {
        family: "gpt-3.5-turbo",
        encoding: Encoding::Cl100kBase,
        token_limit: 16_385,
    },
    ModelSpec {
        family: "o4-mini",
        encoding: Encoding::O200kBase,
        token_limit: 65_536,
    },
    ModelSpec {
        family: "o3-mini",
        encoding: Encoding::O200kBase,
        token_limit: 65_536,
    },
    ModelSpec {
        family: "o3",
        encoding: Encoding::O200kBase,
        token_limit: 65_536,
    },
    ModelSpec {
        family: "o1",
        encoding: Encoding::O200kBase,
        token_limit: 65_536,
    },
];

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "gpt-4.1-mini";

/// Looks up a model by name or versioned name (`gpt-4o-mini-2024-07-18`).
pub fn model_spec(model: &str) -> Option<ModelSpec> {
    let m = model.trim().to_ascii_lowercase();
    MODELS
        .iter()
        .filter(|s| {
            m == s.family
                || m.starts_with(&format!("{}-", s.family))
                || m.starts_with(&format!("{}.", s.family))
        })
        .max_by_key(|s| s.family.len())
        .copied()
}

/// Names of the known families, for error messages.
pub fn known_models() -> Vec<&'static str> {
    MODELS.iter().map(|s| s.family).collect()
}

/// Writes `v` as Python's `json.dumps(v)` does (default arguments).
pub fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_py(v, &mut out);
    out
}

fn write_py(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&python_number(n)),
        Value::String(s) => write_py_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(item, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_str(k, out);
                out.push_str(": ");
                write_py(item, out);
            }
            out.push('}');
        }
    }
}

fn python_number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or_default();
        // Python's float repr: integral floats keep ".0".
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
            return format!("{f:.1}");
        }
        return format!("{f}");
    }
    n.to_string()
}

fn write_py_str(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Tokens of one message: 3 + every string value + JSON text of call objects + 1 for `name`.
pub fn message_tokens(enc: Encoding, msg: &Map<String, Value>) -> u64 {
    let mut n = 3;
    for (key, value) in msg {
        n += match value {
            Value::String(s) => enc.count(s),
            _ if key == "tool_calls" || key == "function_call" => enc.count(&python_json(value)),
            Value::Array(parts) if key == "content" => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .map(|t| enc.count(t))
                .sum(),
            _ => 0,
        };
        if key == "name" {
            n += 1;
        }
    }
    n
}

/// Tokens of a conversation: 3 + Σ message tokens.
pub fn conversation_tokens<'a>(
    enc: Encoding,
    messages: impl IntoIterator<Item = &'a Map<String, Value>>,
) -> u64 {
    3 + messages
        .into_iter()
        .map(|m| message_tokens(enc, m))
        .sum::<u64>()
}

/// Tokens of the string contents of assistant messages.
pub fn assistant_tokens<'a>(
    enc: Encoding,
    messages: impl IntoIterator<Item = &'a Map<String, Value>>,
) -> u64 {
    messages
        .into_iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(|c| enc.count(c))
        .sum()
}

/// The cookbook's default epochs for `n` training examples.
pub fn default_epochs(n: u64) -> u64 {
    const TARGET_EPOCHS: u64 = 3;
    const MIN_TARGET_EXAMPLES: u64 = 100;
    const MAX_TARGET_EXAMPLES: u64 = 25_000;
    const MIN_DEFAULT_EPOCHS: u64 = 1;
    const MAX_DEFAULT_EPOCHS: u64 = 25;
    if n == 0 {
        return TARGET_EPOCHS;
    }
    if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES {
        MAX_DEFAULT_EPOCHS.min(MIN_TARGET_EXAMPLES / n)
    } else if n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES {
        MIN_DEFAULT_EPOCHS.max(MAX_TARGET_EXAMPLES / n)
    } else {
        TARGET_EPOCHS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_names_map_to_encodings_and_limits() {
        let s = model_spec("gpt-4.1-nano-2025-04-14").expect("nano");
        assert_eq!((s.encoding, s.token_limit), (Encoding::O200kBase, 32_768));
        assert_eq!(
            model_spec("gpt-4o-mini-2024-07-18").expect("mini").family,
            "gpt-4o-mini"
        );
        assert_eq!(
            model_spec("gpt-35-turbo-0125").expect("35").token_limit,
            16_385
        );
        assert_eq!(
            model_spec("gpt-4-0613").expect("gpt-4").encoding,
            Encoding::Cl100kBase
        );
        assert!(model_spec("llama-3").is_none());
    }

    #[test]
    fn known_strings_have_tiktokens_counts() {
        // Counts from tiktoken 0.14 (o200k_base / cl100k_base).
        assert_eq!(Encoding::O200kBase.count("hello world"), 2);
        assert_eq!(Encoding::Cl100kBase.count("hello world"), 2);
        assert_eq!(Encoding::Cl100kBase.count("<|endoftext|>"), 7);
        assert_eq!(Encoding::O200kBase.count(""), 0);
    }

    #[test]
    fn python_json_matches_json_dumps() {
        let v: Value = serde_json::from_str(r#"[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\": 1}"}},{"x":"é\n","n":1.0,"i":2}]"#)
            .expect("json");
        assert_eq!(
            python_json(&v),
            r#"[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}, {"x": "\u00e9\n", "n": 1.0, "i": 2}]"#
        );
        assert_eq!(python_json(&json!("😀")), r#""\ud83d\ude00""#);
    }

    #[test]
    fn message_framing_follows_the_cookbook() {
        let enc = Encoding::Cl100kBase;
        let m: Map<String, Value> = serde_json::from_value(
            json!({"role": "user", "content": "hello world", "name": "bob"}),
        )
        .expect("map");
        // 3 + "user"(1) + "hello world"(2) + "bob"(1) + 1 for name
        assert_eq!(message_tokens(enc, &m), 3 + 1 + 2 + 1 + 1);
        assert_eq!(conversation_tokens(enc, [&m]), 3 + 8);
        let w: Map<String, Value> =
            serde_json::from_value(json!({"role": "assistant", "content": "hi", "weight": 1}))
                .expect("map");
        assert_eq!(assistant_tokens(enc, [&m, &w]), 1);
    }

    #[test]
    fn default_epochs_follow_the_cookbook() {
        assert_eq!(default_epochs(5), 20);
        assert_eq!(default_epochs(2), 25);
        assert_eq!(default_epochs(34), 3);
        assert_eq!(default_epochs(33), 3);
        assert_eq!(default_epochs(32), 3);
        assert_eq!(default_epochs(10), 10);
        assert_eq!(default_epochs(8333), 3);
        assert_eq!(default_epochs(8334), 2);
        assert_eq!(default_epochs(8400), 2);
        assert_eq!(default_epochs(30_000), 1);
    }
}
