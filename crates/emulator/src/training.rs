//! What the emulated training learns: per-step metrics computed from the real training
//! examples, and a model that answers with the answer of its nearest training example.

use std::collections::HashSet;

use serde_json::Value;

use aoai_facts::tokens::{Encoding, assistant_tokens, conversation_tokens, model_spec};

/// One training example as the emulated model remembers it.
#[derive(Debug, Clone)]
pub struct Learned {
    /// Lower-cased words of the user turns.
    pub words: HashSet<String>,
    /// The last assistant answer.
    pub answer: String,
}

/// A parsed training file.
#[derive(Debug, Clone, Default)]
pub struct TrainingData {
    /// Remembered examples.
    pub examples: Vec<Learned>,
    /// Tokens per example.
    pub tokens: Vec<u64>,
    /// Assistant tokens per example.
    pub assistant_tokens: Vec<u64>,
}

/// Lower-cased alphanumeric words.
pub fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The encoding of a base model (o200k for unknown names).
pub fn encoding_of(model: &str) -> Encoding {
    model_spec(model).map_or(Encoding::O200kBase, |s| s.encoding)
}

/// Why a file would fail Azure's JSONL validation.
pub fn jsonl_problem(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "the file is not UTF-8".to_owned())
        .err();
    if text.is_some() {
        return text;
    }
    let body = String::from_utf8_lossy(bytes);
    let body = body.trim_start_matches('\u{feff}');
    let mut n = 0;
    for (i, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        n += 1;
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(o)) if o.contains_key("messages") || o.contains_key("input") => {}
            Ok(_) => return Some(format!("line {}: not a chat or preference example", i + 1)),
            Err(e) => return Some(format!("line {}: invalid JSON ({e})", i + 1)),
        }
    }
    (n == 0).then(|| "the file has no examples".to_owned())
}

/// Why a file is not preference (DPO) data: Azure requires `input`, `preferred_output`
/// and `non_preferred_output` on every line.
pub fn dpo_problem(bytes: &[u8]) -> Option<String> {
    let body = String::from_utf8_lossy(bytes);
    for (i, line) in body.trim_start_matches('\u{feff}').lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line) else {
            return Some(format!("line {}: invalid JSON", i + 1));
        };
        for key in ["input", "preferred_output", "non_preferred_output"] {
            if !o.contains_key(key) {
                return Some(format!(
                    "line {}: a preference example needs `{key}`",
                    i + 1
                ));
            }
        }
    }
    None
}

/// Reads examples for training statistics and the nearest-answer model.
pub fn parse(bytes: &[u8], enc: Encoding) -> TrainingData {
    let mut data = TrainingData::default();
    for line in String::from_utf8_lossy(bytes)
        .trim_start_matches('\u{feff}')
        .lines()
    {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let msgs: Vec<serde_json::Map<String, Value>> = v
            .get("messages")
            .or_else(|| v.pointer("/input/messages"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|m| m.as_object().cloned()).collect())
            .unwrap_or_default();
        let mut all = msgs.clone();
        if let Some(out) = v.get("preferred_output").and_then(Value::as_array) {
            all.extend(out.iter().filter_map(|m| m.as_object().cloned()));
        }
        let user: String = msgs
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .filter_map(|m| m.get("content").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let answer = all
            .iter()
            .rev()
            .find(|m| {
                m.get("role").and_then(Value::as_str) == Some("assistant")
                    && m.get("content").is_some_and(Value::is_string)
            })
            .and_then(|m| m.get("content").and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned();
        data.tokens.push(conversation_tokens(enc, all.iter()));
        data.assistant_tokens
            .push(assistant_tokens(enc, all.iter()));
        data.examples.push(Learned {
            words: words(&user),
            answer,
        });
    }
    data
}

/// The answer of the training example nearest to `prompt`: the largest sum of inverse
/// document frequencies of shared words (rare words weigh more, so "invoice" decides and
/// "my" does not), if any example shares a word with it.
pub fn nearest_answer<'a>(examples: &'a [Learned], prompt: &str) -> Option<&'a str> {
    let q = words(prompt);
    let n = examples.len().max(1) as f64;
    let idf = |w: &String| {
        let df = examples.iter().filter(|e| e.words.contains(w)).count() as f64;
        (n / (1.0 + df)).ln().max(0.0) + 0.01
    };
    examples
        .iter()
        .map(|e| (e.words.intersection(&q).map(idf).sum::<f64>(), e))
        .filter(|(s, _)| *s > 0.0)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, e)| e.answer.as_str())
}

/// `results.csv` for a run: one row per step; loss falls with epochs from a start set by
/// the batch's assistant-token share, accuracy rises as loss falls; validation columns
/// every few steps and `full_valid_*` at epoch ends.
pub fn results_csv(data: &TrainingData, epochs: u32, batch_size: u32, seed: u64) -> (String, u64) {
    let n = data.tokens.len().max(1);
    let batch = batch_size.max(1) as usize;
    let steps_per_epoch = n.div_ceil(batch).max(1);
    let total_steps = steps_per_epoch * epochs.max(1) as usize;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = String::from(
        "step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy,full_valid_loss,full_valid_mean_token_accuracy\n",
    );
    for step in 1..=total_steps {
        let epoch = (step - 1) / steps_per_epoch;
        let i = ((step - 1) % steps_per_epoch) * batch;
        let idx: Vec<usize> = (i..(i + batch).min(n)).collect();
        let tok: u64 = idx
            .iter()
            .map(|k| data.tokens.get(*k).copied().unwrap_or(1))
            .sum::<u64>()
            .max(1);
        let asst: u64 = idx
            .iter()
            .map(|k| data.assistant_tokens.get(*k).copied().unwrap_or(0))
            .sum();
        // Start near ln(vocab-ish) scaled by how much of the batch is answer text.
        let start = 1.2 + 2.0 * (asst as f64 / tok as f64);
        let progress = step as f64 / total_steps as f64;
        let loss = (start * (-2.2 * progress).exp() + 0.05 * rng.f64()).max(0.01);
        let acc = (1.0 - loss / (start + 0.3)).clamp(0.0, 1.0);
        let valid = if step % 5 == 0 {
            format!("{:.5},{:.5}", loss * 1.08, acc * 0.97)
        } else {
            ",".to_owned()
        };
        let full = if step % steps_per_epoch == 0 {
            format!("{:.5},{:.5}", loss * 1.1, acc * 0.96)
        } else {
            ",".to_owned()
        };
        out.push_str(&format!("{step},{loss:.5},{acc:.5},{valid},{full}\n"));
        let _ = epoch;
    }
    (out, total_steps as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = concat!(
        r#"{"messages":[{"role":"user","content":"How do I reset my password?"},{"role":"assistant","content":"Use Settings, Security."}]}"#,
        "\n",
        r#"{"messages":[{"role":"user","content":"Do you ship to Canada?"},{"role":"assistant","content":"Yes, in 5 days."}]}"#,
        "\n"
    );

    #[test]
    fn the_trained_model_answers_from_its_nearest_example() {
        let d = parse(DATA.as_bytes(), Encoding::O200kBase);
        assert_eq!(
            nearest_answer(&d.examples, "how to reset password"),
            Some("Use Settings, Security.")
        );
        assert_eq!(
            nearest_answer(&d.examples, "ship Canada?"),
            Some("Yes, in 5 days.")
        );
        assert_eq!(nearest_answer(&d.examples, "zzz"), None);
    }

    #[test]
    fn results_have_one_row_per_step_and_a_falling_loss() {
        let d = parse(DATA.as_bytes(), Encoding::O200kBase);
        let (csv, steps) = results_csv(&d, 3, 1, 7);
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len() as u64, steps);
        assert_eq!(steps, 6);
        let loss = |r: &Vec<&str>| r[col("train_loss")].parse::<f64>().expect("loss");
        assert!(loss(&rows[0]) > loss(&rows[5]));
        assert!(!rows[1][col("full_valid_loss")].is_empty());
    }

    #[test]
    fn invalid_jsonl_is_explained() {
        assert!(jsonl_problem(DATA.as_bytes()).is_none());
        assert!(
            jsonl_problem(b"{\"messages\":[]}\nnope\n")
                .expect("problem")
                .contains("line 2")
        );
        assert!(jsonl_problem(b"").is_some());
    }
}
