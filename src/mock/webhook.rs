//! The mock as RetailCRM's trigger: after every change that adds a history record it calls a
//! URL, as a RetailCRM trigger (Administration -> Communications -> Triggers, action "HTTP
//! request") configured with the parameters `entity` and `order_id` / `customer_id` does.
//!
//! One `POST` per changed entity and change, form-encoded: `entity=order&order_id=<id>` or
//! `entity=customer&customer_id=<id>`, to the URL as given (it usually carries `?token=...`).
//! A change that writes several records about one entity (a customer edit of three fields, an
//! order edit through the API) is one call; a burst of 500 changes is 500 calls.
//!
//! The state appends a [`WebhookCall`] to the [`WebhookOutbox`] where it appends the history
//! record (only while a URL is set: without one nothing accumulates). The calls of a change
//! become sendable when the state's write lock is given up ([`super::server::StateGuard`]); a
//! single background task ([`run_sender`]) sends them in order with one `reqwest::Client`, a
//! 2 s timeout and no retry: a failed call is logged, counted in `webhooks_failed` and dropped,
//! as RetailCRM triggers do not retry either. The sender never takes the state lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::Stream;

/// Timeout of one trigger call.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// Calls kept waiting at most; beyond this a call is dropped (and counted as failed), so a
/// receiver that hangs cannot make the mock grow without bound.
pub const MAX_PENDING: usize = 100_000;

/// One trigger call: the entity that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WebhookCall {
    /// Orders or customers.
    pub stream: Stream,
    /// The entity's id.
    pub id: i64,
}

impl WebhookCall {
    /// The form parameters RetailCRM's trigger would send.
    pub fn form(&self) -> [(&'static str, String); 2] {
        match self.stream {
            Stream::Orders => [
                ("entity", "order".into()),
                ("order_id", self.id.to_string()),
            ],
            Stream::Customers => [
                ("entity", "customer".into()),
                ("customer_id", self.id.to_string()),
            ],
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    url: Option<String>,
    /// Calls of changes still under the state lock.
    staged: Vec<WebhookCall>,
    /// Calls the sender may send.
    ready: VecDeque<WebhookCall>,
    /// The last call staged and the change it belongs to (one call per entity and change).
    last: Option<(WebhookCall, u64)>,
}

/// The calls waiting to be sent, the URL they go to and what became of them. Shared by the
/// state (which stages calls), the server (which releases them) and the sender.
#[derive(Default)]
pub struct WebhookOutbox {
    inner: Mutex<Inner>,
    enabled: AtomicBool,
    wake: Notify,
    sent: AtomicU64,
    failed: AtomicU64,
}

/// Without the URL: it carries the receiver's token.
impl std::fmt::Debug for WebhookOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOutbox")
            .field("enabled", &self.enabled())
            .field("pending", &self.pending())
            .field("sent", &self.sent())
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

impl WebhookOutbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets or clears the URL. Clearing it drops every call not yet sent.
    pub fn set_url(&self, url: Option<String>) {
        let mut inner = self.lock();
        if url.is_none() {
            inner.staged.clear();
            inner.ready.clear();
            inner.last = None;
        }
        self.enabled.store(url.is_some(), Ordering::Relaxed);
        inner.url = url;
    }

    /// The URL calls go to.
    pub fn url(&self) -> Option<String> {
        self.lock().url.clone()
    }

    /// Whether a URL is set (cheap: no lock).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Stages a call for `call` as part of change `change` (the caller holds the state lock).
    /// A second call about the same entity in the same change is not staged.
    pub fn stage(&self, call: WebhookCall, change: u64) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.lock();
        if inner.url.is_none() || inner.last == Some((call, change)) {
            return;
        }
        inner.last = Some((call, change));
        if inner.staged.len() + inner.ready.len() >= MAX_PENDING {
            drop(inner);
            self.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                entity_id = call.id,
                "mock RetailCRM trigger: {MAX_PENDING} calls already waiting, call dropped"
            );
            return;
        }
        inner.staged.push(call);
    }

    /// Makes the staged calls sendable: called just before the state lock is given up, so no
    /// call leaves before its change is visible. True when calls wait for the sender.
    pub fn release(&self) -> bool {
        if !self.enabled() {
            return false;
        }
        let mut inner = self.lock();
        if !inner.staged.is_empty() {
            let staged = std::mem::take(&mut inner.staged);
            inner.ready.extend(staged);
        }
        !inner.ready.is_empty()
    }

    /// Wakes the sender (after the state lock is given up).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Calls waiting (staged or sendable).
    pub fn pending(&self) -> usize {
        let inner = self.lock();
        inner.staged.len() + inner.ready.len()
    }

    /// Calls answered with a 2xx status.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Calls that failed (no connection, timeout, non-2xx answer, or dropped because too many
    /// were waiting).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The sendable calls, taken out of the outbox.
    fn take_ready(&self) -> VecDeque<WebhookCall> {
        std::mem::take(&mut self.lock().ready)
    }
}

/// The sender: waits to be woken, then sends every sendable call in order, one at a time.
/// Runs until aborted.
pub async fn run_sender(outbox: Arc<WebhookOutbox>) {
    let client = match reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .connect_timeout(WEBHOOK_TIMEOUT)
        .user_agent("retailcrm-mock-trigger")
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "mock RetailCRM trigger: no HTTP client; calls are not sent");
            return;
        }
    };
    loop {
        outbox.wake.notified().await;
        loop {
            let calls = outbox.take_ready();
            if calls.is_empty() {
                break;
            }
            for call in calls {
                // The URL of the moment: a call taken before the URL was cleared is not sent.
                let Some(url) = outbox.url() else { break };
                send(&client, &outbox, &url, call).await;
            }
        }
    }
}

async fn send(client: &reqwest::Client, outbox: &WebhookOutbox, url: &str, call: WebhookCall) {
    let result = client.post(url).form(&call.form()).send().await;
    let failure = match result {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) => Some(format!("answered HTTP {}", resp.status().as_u16())),
        Err(e) => Some(e.without_url().to_string()),
    };
    match failure {
        None => {
            outbox.sent.fetch_add(1, Ordering::Relaxed);
        }
        Some(why) => {
            outbox.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                stream = call.stream.as_str(),
                entity_id = call.id,
                error = %why,
                "mock RetailCRM trigger call failed (not retried)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: i64) -> WebhookCall {
        WebhookCall {
            stream: Stream::Orders,
            id,
        }
    }

    #[test]
    fn nothing_accumulates_without_a_url() {
        let o = WebhookOutbox::default();
        o.stage(order(1), 1);
        assert!(!o.release());
        assert_eq!(o.pending(), 0);
    }

    #[test]
    fn one_call_per_entity_and_change() {
        let o = WebhookOutbox::default();
        o.set_url(Some("http://127.0.0.1:1/hook".into()));
        o.stage(order(1), 1);
        o.stage(order(1), 1);
        o.stage(order(1), 2);
        o.stage(order(2), 2);
        assert_eq!(o.pending(), 3);
        assert!(o.release());
        let ready = o.take_ready();
        assert_eq!(Vec::from(ready), vec![order(1), order(1), order(2)]);
        o.stage(order(3), 3);
        o.set_url(None);
        assert_eq!(o.pending(), 0);
    }

    #[test]
    fn form_of_a_call() {
        assert_eq!(
            order(7).form(),
            [
                ("entity", "order".to_string()),
                ("order_id", "7".to_string())
            ]
        );
        let c = WebhookCall {
            stream: Stream::Customers,
            id: 9,
        };
        assert_eq!(
            c.form(),
            [
                ("entity", "customer".to_string()),
                ("customer_id", "9".to_string())
            ]
        );
    }
}
