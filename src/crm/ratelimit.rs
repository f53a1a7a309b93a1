//! Client-side pacing for RetailCRM: a token bucket per client (= per integration) and the
//! capped exponential backoff with jitter used after a 503/429.
//!
//! The bucket has a burst of one token, like the official Go client: requests are spaced at
//! least `1 / requests_per_second` apart, so a client set to 10 rps never sends 11 requests in
//! any one-second window, whatever the concurrency of its callers. It is a GCRA-style "next free
//! slot" behind a mutex; waiting happens outside the lock.

use std::time::Duration;

use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces requests at a fixed minimum interval.
#[derive(Debug)]
pub struct TokenBucket {
    interval: Duration,
    next_free: Mutex<Option<Instant>>,
}

impl TokenBucket {
    /// A bucket for `requests_per_second` (values <= 0 or non-finite disable pacing).
    pub fn new(requests_per_second: f64) -> Self {
        let interval = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            Duration::from_secs_f64(1.0 / requests_per_second)
        } else {
            Duration::ZERO
        };
        TokenBucket {
            interval,
            next_free: Mutex::new(None),
        }
    }

    /// The minimum spacing between two requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this caller's slot. Returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        if self.interval.is_zero() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let slot = {
            let mut next = self.next_free.lock().await;
            let slot = match *next {
                Some(t) if t > now => t,
                _ => now,
            };
            *next = Some(slot + self.interval);
            slot
        };
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
        slot.saturating_duration_since(now)
    }

    /// Pushes the next free slot at least `pause` into the future: after a 503 every caller of
    /// this client slows down, not only the one that was refused.
    pub async fn penalise(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut next = self.next_free.lock().await;
        if next.is_none_or(|t| t < until) {
            *next = Some(until);
        }
    }
}

/// Delay before retry number `attempt` (1-based) after a 503/429: `base * 2^(attempt-1)`,
/// capped at `max`, with "equal jitter" (uniform in `[d/2, d]`) so many clients do not retry
/// in lock-step.
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let raw = base.saturating_mul(1u32 << exp);
    let capped = raw.min(max);
    let half = capped / 2;
    let jitter_ms = half.as_millis().min(u64::MAX as u128) as u64;
    let extra = if jitter_ms == 0 {
        0
    } else {
        rand::rng().random_range(0..=jitter_ms)
    };
    half + Duration::from_millis(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 1..40 {
            let d = backoff_delay(attempt, base, max);
            let nominal = base.saturating_mul(1 << (attempt - 1).min(20)).min(max);
            assert!(d >= nominal / 2 && d <= nominal, "{attempt}: {d:?}");
        }
    }

    #[tokio::test]
    async fn bucket_spaces_requests() {
        let bucket = std::sync::Arc::new(TokenBucket::new(100.0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..21 {
            let b = bucket.clone();
            tasks.push(tokio::spawn(async move { b.acquire().await }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 21 requests at 100 rps need at least 200 ms (the first one is free).
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert!(start.elapsed() < Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn penalty_delays_everyone() {
        let bucket = TokenBucket::new(1000.0);
        bucket.penalise(Duration::from_millis(150)).await;
        let start = Instant::now();
        bucket.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(140));
    }
}
