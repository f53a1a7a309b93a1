//! The daemon's one HTTP listener (`[http]`): RetailCRM trigger webhooks, the JSON API for the
//! platform, `/healthz`, `/readyz` and `/metrics`, on one axum router.
//!
//! - [`server`]: binding, the router, its limits (body size, request timeout), serving until stop;
//! - [`webhooks`]: `POST /webhooks/retailcrm/{project_id}`: secret check, the inbox that gathers
//!   bursts, the dispatcher that turns them into history walks;
//! - [`api`]: `/api/v1/...`, the control socket's commands over HTTP with a bearer token;
//! - [`ops`]: health, readiness and metrics;
//! - [`ui`]: the monitoring page at `/` (HTML, CSS and JS embedded in the binary) over
//!   [`api_history`]'s read routes (overview, runs, poison records) and the API's actions.
//!
//! The listener never interprets a command: API calls travel as [`ControlCall`]s on the same
//! channel as the control socket's, into the supervisor's one command handler, so both answer
//! alike. What the HTTP side needs to know of the daemon's state lives in [`HttpShared`], which
//! the lifecycle and the supervisor keep current (readiness, webhook secrets, the API token);
//! the handlers only read it, so no request waits on an actor except the API's own commands.

pub mod api;
pub mod api_history;
pub mod ops;
pub mod server;
pub mod ui;
pub mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config::HttpSettings;
use crate::control::server::ControlCall;
use crate::queue::JobQueue;
use crate::store::Store;

pub use server::{HttpError, HttpServer};
pub use webhooks::{WebhookDue, WebhookInbox};

/// Whether the daemon can do its work (what `/readyz` reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Starting: waiting for Postgres or Redis, migrating (the phase says which).
    Starting(String),
    /// Running.
    Ready,
    /// Stopping: draining running jobs.
    Stopping,
}

/// The daemon's state as the HTTP handlers see it.
pub struct HttpShared {
    ctl: mpsc::Sender<ControlCall>,
    readiness: RwLock<Readiness>,
    /// Postgres and Redis handles once connected (for `/readyz`).
    backends: OnceLock<(Store, JobQueue)>,
    /// project id -> SHA-256 of its webhook secret; `None` until the first reconcile.
    webhook_keys: RwLock<Option<HashMap<i64, [u8; 32]>>>,
    /// The JSON API's bearer token; `None`: the API is off.
    api_token: RwLock<Option<String>>,
    public_url: RwLock<String>,
    debounce_ms: AtomicU64,
    /// `http.ui_anonymous_read`: read views without the token on a loopback listener.
    ui_anonymous_read: AtomicBool,
    bound: OnceLock<SocketAddr>,
    /// Where webhook calls are gathered until the dispatcher takes them.
    pub inbox: WebhookInbox,
}

impl HttpShared {
    /// State for a daemon starting with `settings` whose commands go to `ctl`.
    pub fn new(ctl: mpsc::Sender<ControlCall>, settings: &HttpSettings) -> Arc<Self> {
        let shared = HttpShared {
            ctl,
            readiness: RwLock::new(Readiness::Starting("starting".to_string())),
            backends: OnceLock::new(),
            webhook_keys: RwLock::new(None),
            api_token: RwLock::new(None),
            public_url: RwLock::new(String::new()),
            debounce_ms: AtomicU64::new(settings.webhook_debounce_ms),
            ui_anonymous_read: AtomicBool::new(false),
            bound: OnceLock::new(),
            inbox: WebhookInbox::default(),
        };
        // Validation read the token file already; a failure here leaves the API off and says so.
        if let Err(e) = shared.apply_settings(settings) {
            tracing::warn!("{e}");
        }
        Arc::new(shared)
    }

    /// Applies the live `[http]` settings (API token, public URL, debounce); called at start
    /// and on every successful reload. The listen address, body limit and timeout need a
    /// restart.
    pub fn apply_settings(&self, settings: &HttpSettings) -> Result<(), String> {
        self.debounce_ms
            .store(settings.webhook_debounce_ms, Ordering::Relaxed);
        self.ui_anonymous_read
            .store(settings.ui_anonymous_read, Ordering::Relaxed);
        *write(&self.public_url) = settings.public_url.trim().trim_end_matches('/').to_string();
        let path = settings.api_token_file.trim();
        let token = if path.is_empty() {
            Ok(None)
        } else {
            crate::config::check::read_api_token(std::path::Path::new(path))
                .map(Some)
                .map_err(|e| format!("the JSON API is off: {e}"))
        };
        let (token, result) = match token {
            Ok(t) => (t, Ok(())),
            Err(e) => (None, Err(e)),
        };
        *write(&self.api_token) = token;
        result
    }

    /// Sets what `/readyz` reports.
    pub fn set_readiness(&self, readiness: Readiness) {
        *write(&self.readiness) = readiness;
    }

    /// What `/readyz` reports, before its Postgres and Redis checks.
    pub fn readiness(&self) -> Readiness {
        read(&self.readiness).clone()
    }

    /// Hands over the Postgres and Redis handles once connected.
    pub fn set_backends(&self, store: Store, queue: JobQueue) {
        let _ = self.backends.set((store, queue));
    }

    fn backends(&self) -> Option<&(Store, JobQueue)> {
        self.backends.get()
    }

    /// Replaces the webhook secrets (the supervisor calls it on every reconcile with the
    /// active integrations' hashes).
    pub fn set_webhook_keys(&self, keys: HashMap<i64, [u8; 32]>) {
        *write(&self.webhook_keys) = Some(keys);
    }

    /// The address the listener is bound to, when it is on.
    pub fn bound_addr(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    /// The webhook URL of a project, to paste into a RetailCRM trigger.
    pub fn webhook_url(&self, project_id: i64, token: &str) -> String {
        webhook_url(
            &read(&self.public_url),
            self.bound_addr(),
            project_id,
            token,
        )
    }

    /// Milliseconds a burst is gathered.
    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.debounce_ms.load(Ordering::Relaxed))
    }

    fn api_token(&self) -> Option<String> {
        read(&self.api_token).clone()
    }

    /// `http.ui_anonymous_read` as last applied (the loopback conditions are checked per
    /// request, in [`api_history::read_or_token`]).
    pub fn ui_anonymous_read(&self) -> bool {
        self.ui_anonymous_read.load(Ordering::Relaxed)
    }

    /// The stored hash of a project's secret: `Err(())` before the first reconcile.
    #[allow(clippy::result_unit_err)]
    pub fn webhook_key(&self, project_id: i64) -> Result<Option<[u8; 32]>, ()> {
        match &*read(&self.webhook_keys) {
            None => Err(()),
            Some(keys) => Ok(keys.get(&project_id).copied()),
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// SHA-256 of a webhook secret as stored in `retailcrm_integrations.webhook_token_sha256`
/// (lower-case hex).
pub fn webhook_token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Parses a stored hash; `None` when it is not 64 hex digits.
pub fn parse_token_hash(hex_hash: &str) -> Option<[u8; 32]> {
    if hex_hash.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex_hash.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A new random webhook secret: 32 bytes from the OS generator, hex (64 characters, safe in a
/// URL query without escaping).
pub fn generate_webhook_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The URL a RetailCRM trigger calls: `public_url` when set, else the listen address.
pub fn webhook_url(
    public_url: &str,
    listen: Option<SocketAddr>,
    project_id: i64,
    token: &str,
) -> String {
    let base = if public_url.is_empty() {
        match listen {
            Some(addr) => format!("http://{addr}"),
            None => "http://127.0.0.1:9860".to_string(),
        }
    } else {
        public_url.trim_end_matches('/').to_string()
    };
    format!("{base}/webhooks/retailcrm/{project_id}?token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_round_trips_and_rejects_garbage() {
        let token = generate_webhook_token();
        assert_eq!(token.len(), 64);
        assert_ne!(token, generate_webhook_token(), "tokens are random");
        let hash = webhook_token_hash(&token);
        let parsed = parse_token_hash(&hash).expect("64 hex digits");
        assert_eq!(
            parsed.as_slice(),
            Sha256::digest(token.as_bytes()).as_slice()
        );
        assert_eq!(parse_token_hash("abc"), None);
        assert_eq!(parse_token_hash(&"zz".repeat(32)), None);
    }

    #[test]
    fn webhook_url_prefers_the_public_url() {
        let listen: SocketAddr = "127.0.0.1:9860".parse().unwrap();
        assert_eq!(
            webhook_url("https://sync.example.com/", Some(listen), 7, "t"),
            "https://sync.example.com/webhooks/retailcrm/7?token=t"
        );
        assert_eq!(
            webhook_url("", Some(listen), 7, "t"),
            "http://127.0.0.1:9860/webhooks/retailcrm/7?token=t"
        );
    }
}
