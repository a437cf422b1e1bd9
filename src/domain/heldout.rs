//! The held-out set of an evaluation: which lines are examples, and which examples are
//! scored when the set is larger than the cap (a uniform sample with a recorded seed,
//! never the first lines of a file that may be ordered).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::aoai::ChatMessage;

/// One held-out example: the prompt and the answer the model should give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Every message before the last assistant message.
    pub prompt: Vec<ChatMessage>,
    /// The last assistant message's text.
    pub expected: String,
}

/// The example on one JSONL line, if it is one (a chat with an assistant answer).
pub fn parse_example(line: &str) -> Option<Example> {
    let v: Value = serde_json::from_str(line.trim_start_matches('\u{feff}')).ok()?;
    let msgs = v.get("messages")?.as_array()?;
    let last = msgs
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))?;
    let expected = msgs[last]
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let prompt = msgs[..last]
        .iter()
        .filter_map(|m| {
            Some(ChatMessage {
                role: m.get("role")?.as_str()?.to_owned(),
                content: m.get("content").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect();
    Some(Example { prompt, expected })
}

/// Which of `total` examples are scored: all of them up to `cap`, else `cap` drawn
/// uniformly without replacement with `seed`, in file order. The same arguments always
/// give the same sample, so a resumed evaluation scores the same examples.
pub fn sample(total: usize, cap: usize, seed: u64) -> Vec<usize> {
    if total <= cap {
        return (0..total).collect();
    }
    // A partial Fisher–Yates shuffle of the indices: `cap` swaps.
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut idx: Vec<usize> = (0..total).collect();
    for i in 0..cap {
        let j = rng.usize(i..total);
        idx.swap(i, j);
    }
    idx.truncate(cap);
    idx.sort_unstable();
    idx
}

/// The seed of a run's sample: stable per run, recorded in its report.
pub fn seed_of(run_id: &str) -> u64 {
    let d = super::run::sha256_hex(run_id.as_bytes());
    u64::from_str_radix(&d[..16], 16).unwrap_or(0)
}

/// What a run's evaluation covers, recorded before the first batch is scored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Examples in the held-out file.
    pub total: usize,
    /// Examples scored.
    pub selected: usize,
    /// The cap in force.
    pub cap: usize,
    /// Whether the set was sampled (total above the cap).
    pub sampled: bool,
    /// The sample's seed.
    pub seed: u64,
    /// Examples per stored batch.
    pub batch_size: usize,
}

impl Plan {
    /// Batches per model.
    pub fn batches(&self) -> usize {
        self.selected.div_ceil(self.batch_size.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_under_the_cap_is_scored_whole_and_a_larger_one_is_sampled_the_same_way_every_time() {
        assert_eq!(sample(5, 10, 1), vec![0, 1, 2, 3, 4]);
        let a = sample(10_000, 200, 42);
        assert_eq!(a, sample(10_000, 200, 42), "deterministic per seed");
        assert_ne!(a, sample(10_000, 200, 43));
        assert_eq!(a.len(), 200);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "distinct, in file order");
        // Uniform, not the head of the file: the sample reaches the second half.
        assert!(a.iter().filter(|&&i| i >= 5_000).count() > 60, "{a:?}");
    }

    #[test]
    fn only_chats_with_an_assistant_answer_are_examples() {
        let e = parse_example(
            r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#,
        )
        .expect("example");
        assert_eq!(e.expected, "a");
        assert_eq!(e.prompt.len(), 2);
        assert!(parse_example(r#"{"messages":[{"role":"user","content":"q"}]}"#).is_none());
        assert!(parse_example("not json").is_none());
    }
}
