//! A deployment's rate limits and the pacing that stays within them. Azure derives a
//! Standard deployment's limits from its capacity (a unit is 1,000 tokens per minute and,
//! for chat models, 6 requests per minute) and judges requests over short periods (1 or
//! 10 seconds), so a client that sends a minute's worth at once is refused with 429 even
//! under its per-minute limit. Pacing spreads requests evenly at just under the limit.

/// Requests and tokens per minute a deployment accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests per minute.
    pub requests_per_minute: f64,
    /// Tokens per minute (prompt plus `max_tokens`, as Azure estimates at arrival).
    pub tokens_per_minute: f64,
}

/// Requests per minute per capacity unit for a model: 6 for chat models; o-series
/// reasoning models are documented at 1 unit = 1 request per minute (the quota page's
/// table; set `FTHUB_RPM_PER_UNIT` where a contract says otherwise).
pub fn requests_per_unit(model: &str) -> f64 {
    let base = model.split(".ft-").next().unwrap_or(model);
    if super::aoai::uses_max_completion_tokens(base) {
        1.0
    } else {
        6.0
    }
}

impl Limits {
    /// The limits of a deployment of `model` with `capacity` units.
    pub fn of(model: &str, capacity: u32, rpm_per_unit: Option<f64>) -> Self {
        let units = f64::from(capacity.max(1));
        Self {
            requests_per_minute: units * rpm_per_unit.unwrap_or_else(|| requests_per_unit(model)),
            tokens_per_minute: units * 1000.0,
        }
    }
}

/// One deployment's pacing state: two buckets (requests and tokens) that refill
/// continuously at just under the per-minute limits and hold no more than one request's
/// worth, so requests are evenly spaced and no window of 1, 10 or 60 seconds holds more than
/// its share of the limit; and a pause after a 429 that every caller of the deployment
/// honours.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    limits: Limits,
    requests: f64,
    tokens: f64,
    last: f64,
    paused_until: f64,
}

/// Share of the limit paced to: the burst allowance is kept out of every minute.
const MARGIN: f64 = 0.98;

impl Pacer {
    /// A pacer starting empty at time `now` (seconds on any monotonic clock).
    pub fn new(limits: Limits, now: f64) -> Self {
        Self {
            limits,
            requests: 0.0,
            tokens: 0.0,
            last: now,
            paused_until: now,
        }
    }

    fn rates(&self) -> (f64, f64) {
        (
            self.limits.requests_per_minute * MARGIN / 60.0,
            self.limits.tokens_per_minute * MARGIN / 60.0,
        )
    }

    fn refill(&mut self, now: f64, want: f64) {
        let (r, t) = self.rates();
        let dt = (now - self.last).max(0.0);
        self.last = now.max(self.last);
        self.requests = (self.requests + dt * r).min(1.0);
        self.tokens = (self.tokens + dt * t).min(want.max(1.0));
    }

    /// Takes a request of `tokens` at `now` if the limits allow it; else the seconds to wait
    /// before trying again.
    pub fn take(&mut self, tokens: u64, now: f64) -> Result<(), f64> {
        if now < self.paused_until {
            return Err(self.paused_until - now);
        }
        let want = tokens as f64;
        self.refill(now, want);
        let (r, t) = self.rates();
        let enough_tokens = self.tokens >= want;
        if self.requests >= 1.0 && enough_tokens {
            self.requests -= 1.0;
            self.tokens -= want;
            return Ok(());
        }
        let wait_r = if self.requests >= 1.0 {
            0.0
        } else {
            (1.0 - self.requests) / r
        };
        let wait_t = if enough_tokens {
            0.0
        } else {
            (want - self.tokens) / t
        };
        Err(wait_r.max(wait_t).max(0.001))
    }

    /// The service refused with 429 and asked for `seconds`: nobody calls before then.
    pub fn pause(&mut self, seconds: f64, now: f64) {
        self.paused_until = self.paused_until.max(now + seconds);
        self.requests = self.requests.min(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests a pacer lets through in `seconds`, each asking for `tokens`, polled every 1 ms.
    fn admitted(p: &mut Pacer, tokens: u64, seconds: f64) -> Vec<f64> {
        let mut t = 0.0;
        let mut out = Vec::new();
        while t < seconds {
            match p.take(tokens, t) {
                Ok(()) => out.push(t),
                Err(wait) => t += wait.max(0.001),
            }
        }
        out
    }

    #[test]
    fn a_deployment_is_paced_just_under_its_requests_per_minute_in_every_window() {
        let limits = Limits::of("gpt-4.1-mini", 10, None);
        assert_eq!(limits.requests_per_minute, 60.0);
        let mut p = Pacer::new(limits, 0.0);
        let times = admitted(&mut p, 10, 180.0);
        let per_minute = times.len() as f64 / 3.0;
        assert!((57.0..=60.0).contains(&per_minute), "{per_minute}");
        // No sliding window of 60, 10 or 1 seconds ever holds more than its share.
        for (window, share) in [(60.0, 60), (10.0, 10), (1.0, 1)] {
            for (i, start) in times.iter().enumerate() {
                let n = times[i..]
                    .iter()
                    .take_while(|t| **t < start + window)
                    .count();
                assert!(n <= share, "{n} requests in the {window} s from {start}");
            }
        }
    }

    #[test]
    fn tokens_bound_the_pace_when_answers_are_long() {
        // 1 unit: 6 requests and 1,000 tokens a minute; 500-token requests: two a minute.
        let mut p = Pacer::new(Limits::of("gpt-4o", 1, None), 0.0);
        let n = admitted(&mut p, 500, 600.0).len();
        assert!((18..=20).contains(&n), "{n} in ten minutes");
    }

    #[test]
    fn a_429_pauses_every_caller_for_the_time_asked() {
        let mut p = Pacer::new(Limits::of("gpt-4o", 100, None), 0.0);
        assert!(p.take(10, 1.0).is_ok());
        p.pause(5.0, 1.0);
        let wait = p.take(10, 2.0).expect_err("paused");
        assert!((wait - 4.0).abs() < 1e-9, "{wait}");
        assert!(p.take(10, 6.5).is_ok());
        assert_eq!(requests_per_unit("o4-mini-2025-04-16"), 1.0);
        assert_eq!(requests_per_unit("gpt-4.1-mini-2025-04-14.ft-abc"), 6.0);
    }
}
