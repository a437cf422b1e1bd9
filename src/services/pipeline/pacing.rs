//! Paces calls to each deployment within its rate limits (see [`crate::domain::ratelimit`]),
//! shared by every evaluation in this process, so five evaluations scoring against the same
//! base-model deployment take turns instead of tripping its limit and backing off blindly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::ratelimit::{Limits, Pacer};
use crate::ports::AoaiError;

/// One pacer per deployment (`account/deployment`).
#[derive(Debug)]
pub struct Pacers {
    by_deployment: Mutex<HashMap<String, Pacer>>,
    start: tokio::time::Instant,
}

impl Default for Pacers {
    fn default() -> Self {
        Self {
            by_deployment: Mutex::new(HashMap::new()),
            start: tokio::time::Instant::now(),
        }
    }
}

/// Whether the service refused for its rate limit (after the client's own retries).
pub(super) fn throttled(e: &AoaiError) -> Option<Duration> {
    match e {
        AoaiError::Http { status: 429, .. } => {
            Some(e.retry_after().unwrap_or(Duration::from_secs(1)))
        }
        AoaiError::Exhausted { last, .. } => throttled(last),
        _ => None,
    }
}

impl Pacers {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Waits until a request of `tokens` may go to `key` within `limits`.
    pub async fn acquire(&self, key: &str, limits: Limits, tokens: u64) {
        loop {
            let wait = {
                let now = self.now();
                let mut map = self
                    .by_deployment
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let p = map
                    .entry(key.to_owned())
                    .or_insert_with(|| Pacer::new(limits, now));
                match p.take(tokens, now) {
                    Ok(()) => return,
                    Err(w) => w,
                }
            };
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// The service answered 429 asking for `wait`: every caller of `key` waits that long.
    pub fn throttled(&self, key: &str, wait: Duration) {
        let now = self.now();
        let mut map = self
            .by_deployment
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = map.get_mut(key) {
            p.pause(wait.as_secs_f64(), now);
        }
    }
}
