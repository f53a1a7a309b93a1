//! Rate limiting and fault injection of the mock, applied to `/api/...` only (never to
//! `/admin/...`).
//!
//! - Rate limit: a token bucket of `rate_limit` tokens per second with a burst of one second's
//!   worth; above it the mock answers `503 Service Temporarily Unavailable` with an nginx-style
//!   HTML page, like the real API.
//! - `fail_rate`: that share of requests answers HTTP 500 with a JSON error body.
//! - `truncate_rate`: that share of successful answers is cut in half (a cut-off transfer).
//! - `slow_ms`: every request waits that long before it is served.
//! - `churn_per_list`: before each `/orders` or `/customers` list request is served, the
//!   account changes that many times (orders and customers created and deleted, statuses
//!   changed): a shop taking orders while a first sync pages through it, deterministically.

use std::sync::Mutex;
use std::time::Instant;

use rand::Rng;

/// Fault settings (all off by default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Requests per second before 503 (None: unlimited).
    pub rate_limit: Option<f64>,
    /// Share (0..=1) of requests answered with HTTP 500.
    pub fail_rate: f64,
    /// Share (0..=1) of successful bodies cut in half.
    pub truncate_rate: f64,
    /// Delay before each answer, in milliseconds.
    pub slow_ms: u64,
    /// Changes applied before each list request (see the module doc).
    pub churn_per_list: u64,
}

/// The server-side token bucket.
#[derive(Debug)]
pub struct ServerLimiter {
    rate: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl ServerLimiter {
    /// A bucket for `rate` requests per second (burst = one second's worth, at least 1).
    pub fn new(rate: f64) -> Self {
        let capacity = rate.max(1.0);
        ServerLimiter {
            rate,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// Takes a token; false means "answer 503".
    pub fn try_take(&self) -> bool {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, last) = *guard;
        let refilled =
            (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.capacity);
        if refilled >= 1.0 {
            *guard = (refilled - 1.0, now);
            true
        } else {
            *guard = (refilled, now);
            false
        }
    }
}

/// True with probability `p`.
pub fn roll(p: f64) -> bool {
    p > 0.0 && rand::rng().random_bool(p.clamp(0.0, 1.0))
}

/// The body nginx sends with a 503.
pub const HTML_503: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// The page a RetailCRM host sends for an account that does not exist.
pub const HTML_NO_ACCOUNT: &str = "<!DOCTYPE html>\n<html><head><title>Account does not exist</title></head><body><h1>Account does not exist</h1></body></html>\n";
