//! Evaluation metrics and the acceptance verdict. Pure functions over (expected, answer)
//! pairs and latencies.

use serde::{Deserialize, Serialize};

use super::topology::Thresholds;

/// Lower-cases, trims, collapses whitespace and drops surrounding punctuation.
pub fn normalise(s: &str) -> String {
    let words: Vec<String> = s
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    words.join(" ")
}

/// Exact match after normalisation.
pub fn exact_match(expected: &str, answer: &str) -> bool {
    normalise(expected) == normalise(answer)
}

/// Token-level F1 over normalised words (SQuAD style).
pub fn token_f1(expected: &str, answer: &str) -> f64 {
    let e: Vec<String> = normalise(expected)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let a: Vec<String> = normalise(answer)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if e.is_empty() || a.is_empty() {
        return if e.is_empty() && a.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let mut pool = e.clone();
    let mut common = 0usize;
    for w in &a {
        if let Some(i) = pool.iter().position(|x| x == w) {
            pool.swap_remove(i);
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let p = common as f64 / a.len() as f64;
    let r = common as f64 / e.len() as f64;
    2.0 * p * r / (p + r)
}

/// For structured answers: (the answer is JSON, share of the expected object's fields it matches).
pub fn json_match(expected: &str, answer: &str) -> Option<(bool, f64)> {
    let e: serde_json::Value = serde_json::from_str(expected).ok()?;
    let e = e.as_object()?;
    let a: Option<serde_json::Value> = serde_json::from_str(answer).ok();
    let valid = a.as_ref().is_some_and(serde_json::Value::is_object);
    let matched = a.as_ref().and_then(|v| v.as_object()).map_or(0, |o| {
        e.iter().filter(|(k, v)| o.get(*k) == Some(v)).count()
    });
    Some((
        valid,
        if e.is_empty() {
            1.0
        } else {
            matched as f64 / e.len() as f64
        },
    ))
}

/// The `q` quantile (nearest rank) of `values`.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// One model's results on the eval set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelScore {
    /// Who: `candidate`, `base`, `prod`.
    pub label: String,
    /// Deployment used.
    pub deployment: String,
    /// Examples answered.
    pub examples: u64,
    /// Exact-match rate (normalised).
    pub exact_match: f64,
    /// Mean token F1.
    pub token_f1: f64,
    /// Label accuracy, when the set is classification (short single-token answers).
    pub label_accuracy: Option<f64>,
    /// JSON validity rate, when answers are JSON objects.
    pub json_valid: Option<f64>,
    /// Mean JSON field match.
    pub json_field_match: Option<f64>,
    /// Latency p50.
    pub latency_p50_ms: f64,
    /// Latency p95.
    pub latency_p95_ms: f64,
    /// Mean prompt tokens.
    pub prompt_tokens: f64,
    /// Mean completion tokens.
    pub completion_tokens: f64,
    /// Primary score: label accuracy, else JSON field match, else token F1.
    pub score: f64,
    /// Cost of 1,000 such requests at the topology's prices.
    pub cost_per_1k_requests: f64,
}

impl ModelScore {
    /// Sets the cost per 1,000 requests from prices per 1,000 tokens.
    pub fn priced(mut self, per_1k_prompt: f64, per_1k_completion: f64) -> Self {
        self.cost_per_1k_requests =
            self.prompt_tokens * per_1k_prompt + self.completion_tokens * per_1k_completion;
        self
    }
}

/// One answered example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answered {
    /// Expected answer.
    pub expected: String,
    /// Model answer.
    pub answer: String,
    /// Latency.
    pub latency_ms: f64,
    /// Usage.
    pub prompt_tokens: u64,
    /// Usage.
    pub completion_tokens: u64,
}

/// Scores a model's answers.
pub fn score(label: &str, deployment: &str, answered: &[Answered]) -> ModelScore {
    let n = answered.len().max(1) as f64;
    let em = answered
        .iter()
        .filter(|a| exact_match(&a.expected, &a.answer))
        .count() as f64
        / n;
    let f1 = answered
        .iter()
        .map(|a| token_f1(&a.expected, &a.answer))
        .sum::<f64>()
        / n;
    let classification = !answered.is_empty()
        && answered
            .iter()
            .all(|a| normalise(&a.expected).split(' ').count() <= 3);
    let json: Vec<(bool, f64)> = answered
        .iter()
        .filter_map(|a| json_match(&a.expected, &a.answer))
        .collect();
    let structured = !answered.is_empty() && json.len() == answered.len();
    let latencies: Vec<f64> = answered.iter().map(|a| a.latency_ms).collect();
    let label_accuracy = classification.then_some(em);
    let json_valid = structured.then(|| json.iter().filter(|(v, _)| *v).count() as f64 / n);
    let json_field_match = structured.then(|| json.iter().map(|(_, m)| m).sum::<f64>() / n);
    ModelScore {
        label: label.into(),
        deployment: deployment.into(),
        examples: answered.len() as u64,
        exact_match: em,
        token_f1: f1,
        label_accuracy,
        json_valid,
        json_field_match,
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p95_ms: percentile(&latencies, 0.95),
        prompt_tokens: answered.iter().map(|a| a.prompt_tokens as f64).sum::<f64>() / n,
        completion_tokens: answered
            .iter()
            .map(|a| a.completion_tokens as f64)
            .sum::<f64>()
            / n,
        score: label_accuracy.or(json_field_match).unwrap_or(f1),
        cost_per_1k_requests: 0.0,
    }
}

/// The verdict: the candidate must reach `min_score`, beat the best baseline by `min_gain`,
/// and keep p95 latency under the maximum.
pub fn verdict(
    candidate: &ModelScore,
    baselines: &[ModelScore],
    t: &Thresholds,
) -> (bool, f64, Vec<String>) {
    let best = baselines.iter().map(|b| b.score).fold(0.0_f64, f64::max);
    let mut reasons = Vec::new();
    if candidate.score < t.min_score {
        reasons.push(format!(
            "score {:.3} is below the minimum {:.3}",
            candidate.score, t.min_score
        ));
    }
    if candidate.score - best < t.min_gain {
        reasons.push(format!(
            "gain over the best baseline is {:.3}; at least {:.3} is required",
            candidate.score - best,
            t.min_gain
        ));
    }
    if candidate.latency_p95_ms > t.max_p95_latency_ms {
        reasons.push(format!(
            "p95 latency {:.0} ms is above {:.0} ms",
            candidate.latency_p95_ms, t.max_p95_latency_ms
        ));
    }
    (reasons.is_empty(), best, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(expected: &str, answer: &str, ms: f64) -> Answered {
        Answered {
            expected: expected.into(),
            answer: answer.into(),
            latency_ms: ms,
            prompt_tokens: 10,
            completion_tokens: 2,
        }
    }

    #[test]
    fn metrics_follow_their_definitions() {
        assert!(exact_match("Billing.", "  billing "));
        assert!((token_f1("the cat sat", "cat sat down") - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            json_match(r#"{"a":1,"b":2}"#, r#"{"a":1,"b":3}"#),
            Some((true, 0.5))
        );
        assert_eq!(json_match(r#"{"a":1}"#, "nope"), Some((false, 0.0)));
        assert_eq!(percentile(&[5.0, 1.0, 3.0, 2.0, 4.0], 0.95), 5.0);
        assert_eq!(percentile(&[5.0, 1.0, 3.0, 2.0, 4.0], 0.5), 3.0);
    }

    #[test]
    fn a_classification_set_is_scored_by_label_accuracy_and_judged_against_baselines() {
        let cand = score(
            "candidate",
            "c",
            &[
                a("billing", "Billing", 100.0),
                a("shipping", "shipping", 120.0),
                a("returns", "billing", 90.0),
            ],
        );
        assert_eq!(cand.label_accuracy, Some(2.0 / 3.0));
        assert_eq!(cand.score, 2.0 / 3.0);
        // 10 prompt and 2 completion tokens per request.
        assert!((cand.clone().priced(0.5, 2.0).cost_per_1k_requests - 9.0).abs() < 1e-9);
        let base = score(
            "base",
            "b",
            &[
                a("billing", "I don't know", 80.0),
                a("shipping", "no idea", 80.0),
                a("returns", "returns", 80.0),
            ],
        );
        let t = Thresholds {
            min_score: 0.6,
            min_gain: 0.1,
            max_p95_latency_ms: 1000.0,
        };
        let (passed, best, reasons) = verdict(&cand, std::slice::from_ref(&base), &t);
        assert!(passed, "{reasons:?}");
        assert!((best - 1.0 / 3.0).abs() < 1e-9);
        let strict = Thresholds {
            min_score: 0.9,
            min_gain: 0.5,
            max_p95_latency_ms: 50.0,
        };
        let (passed, _, reasons) = verdict(&cand, &[base], &strict);
        assert!(!passed);
        assert_eq!(reasons.len(), 3);
    }
}
