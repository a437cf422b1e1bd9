//! Entry points for fuzzing the three parsers that take hostile input: the dataset
//! validator, the host envelope decoder and the approval verifier. The `fuzz/` crate
//! (cargo-fuzz) and `tests/it/hostile_input.rs` call them; each must return for any input,
//! without panicking and with memory bounded by the input.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use crate::domain::approval::{self, Context, SignedApproval};
use crate::domain::topology::Topology;
use crate::domain::validation::{Method, Rules, Stats, policy::Policy, tokens};
use crate::host::envelope::Invocation;
use crate::host::trigger::{EventGridEvent, HttpRequestData, ServiceBusMessage, TimerInfo};
use crate::services::validation::{StreamOptions, validate_reader};

fn rules(method: Method) -> Rules {
    let model = tokens::DEFAULT_MODEL.to_owned();
    Rules {
        spec: tokens::model_spec(&model)
            .unwrap_or_else(|| unreachable!("the default model is known")),
        model,
        method,
        n_epochs: None,
        policy: Policy::default(),
    }
}

/// Validates `data` as a dataset: line by line for both methods, and through the streaming
/// reader with a small line limit (so the oversized-line path is exercised too).
pub fn validator(data: &[u8]) {
    for method in [Method::Supervised, Method::Dpo] {
        let r = rules(method);
        let mut stats = Stats::default();
        for (i, line) in data.split(|b| *b == b'\n').enumerate() {
            stats.check_line(&r, i as u64 + 1, line);
        }
    }
    let opts = StreamOptions {
        threads: 2,
        batch_bytes: 64,
        max_line_bytes: 256,
    };
    let _ = validate_reader(
        "fuzz.jsonl",
        true,
        data,
        &rules(Method::Supervised),
        opts,
        &|_| {},
    );
}

/// Decodes `data` as a host invocation body for every trigger the app has.
pub fn envelope(data: &[u8]) {
    for function in ["DatasetArrived", "ApplyApproval", "KeepWarm", "Status"] {
        let Ok(inv) = Invocation::parse(function, "fuzz", data) else {
            continue;
        };
        let _ = EventGridEvent::decode_all(&inv, "event");
        let _ = ServiceBusMessage::decode(&inv, "message");
        let _ = TimerInfo::decode(&inv, "timer");
        let _ = HttpRequestData::decode(&inv, "req");
    }
}

fn topology() -> &'static Topology {
    static T: OnceLock<Topology> = OnceLock::new();
    T.get_or_init(|| Topology::local("http://127.0.0.1:1"))
}

/// Parses `data` as a signed approval and checks it against the local approvers.
pub fn approval(data: &[u8]) {
    let Ok(signed) = serde_json::from_slice::<SignedApproval>(data) else {
        return;
    };
    let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    for (env, e) in &topology().environments {
        let reached = vec![crate::domain::env::Env::Dev, *env];
        let ctx = Context {
            approvers: &e.approvers,
            reached: &reached,
            serving_here: true,
            evaluation_passed: true,
            submitted_by: "data-scientist",
            used_nonces: &[],
            now,
            max_age: chrono::Duration::hours(24),
            has_previous: true,
        };
        let _ = approval::check(&signed, &ctx);
    }
}
