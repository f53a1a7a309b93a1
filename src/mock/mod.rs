//! A mock RetailCRM account served over HTTP on loopback, for tests, the demo, benchmarks and
//! operators who want to try the daemon without a shop.
//!
//! It follows `retailcrm-api.md` (not our client's assumptions): see [`server`] for the
//! endpoints, [`data`] for the generated account, [`state`] for history and mutations and
//! [`faults`] for rate limiting and fault injection, [`listing`] for list filters and sort
//! orders, [`history`] for history queries and deep virtual history, [`clock`] for time. Start it in-process with
//! [`MockCrm::start`], or as `retailcrm-sync mock-crm` (driven through `/admin/...`).
//!
//! Principle: where the mock is kinder than RetailCRM, that is a bug in the mock. So, as the
//! live API does: a history `page` above [`MockConfig::history_page_cap`] (CLI
//! `--history-page-cap`, default 10, 0 = none; at run time [`MockState::history_page_cap`])
//! answers 400; lists are served in [`MockConfig::list_order`] (`--list-order
//! newest|oldest|unstable`; at run time [`MockState::list_order`]), never a promised order;
//! `externalId` is unique per store; times are the real clock in the account timezone. Deep
//! accounts: [`MockConfig::pad_order_history`] / [`MockConfig::pad_customer_history`]
//! (`--pad-order-history N`, `--pad-customer-history N`) put N virtual history records, spaced
//! by [`MockConfig::history_stride`] (`--history-stride S`), in front of the real ones without
//! storing them ([`MockState::pad_history`]).
//!
//! Trigger (webhooks): like a RetailCRM trigger with the action "HTTP request" (Administration
//! -> Communications -> Triggers), the mock can call a URL after every change that adds a
//! history record (admin mutations, churn, status changes, merges, deletions, and the API writes
//! `orders/create`, `orders/{key}/edit`, `customers/create`, `customers/{key}/edit`): one `POST`
//! per changed entity and change, form-encoded, `entity=order&order_id=<id>` or
//! `entity=customer&customer_id=<id>`, to the URL as given (with its `?token=...`). Set it with
//! [`MockConfig::webhook_url`] (CLI `--webhook-url URL`), at run time with
//! [`MockHandle::set_webhook_url`] or `POST /admin/webhook` `{"url": "..."}` (`{"url": null}`
//! clears it). Calls leave on a background task after the state lock is given up, in the order
//! of the changes, with a 2 s timeout and no retry; [`MockStats::webhooks_sent`] and
//! [`MockStats::webhooks_failed`] count them. A burst of 500 changes is 500 calls; a change
//! that writes several records about one entity (an edit of three fields) is one. Without a URL
//! nothing is recorded. See [`webhook`].

pub mod clock;
pub mod data;
pub mod faults;
pub mod history;
pub mod listing;
pub mod server;
pub mod state;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use data::{GenConfig, Kopecks, MockCustomer, MockOrder};
pub use faults::FaultConfig;
pub use history::HistQuery;
pub use listing::{ListFilter, ListOrder};
pub use server::{MockStats, StateGuard};
pub use state::{MockState, MutationReport};
pub use webhook::WebhookCall;

/// Every scope our daemon may need.
pub const ALL_SCOPES: [&str; 5] = [
    "order_read",
    "order_write",
    "customer_read",
    "customer_write",
    "reference_read",
];

/// How to build and serve a mock account.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Orders to generate.
    pub orders: u64,
    /// Customers to generate.
    pub customers: u64,
    /// Seed of the generator.
    pub seed: u64,
    /// The valid API key.
    pub api_key: String,
    /// Scopes the key has.
    pub scopes: Vec<String>,
    /// Store code.
    pub site: String,
    /// Timezone reported by `/api/v5/settings`.
    pub timezone: String,
    /// Rate limit and faults.
    pub faults: FaultConfig,
    /// History `page` above this answers 400, like RetailCRM (0: no cap; default 10).
    pub history_page_cap: u32,
    /// Order lists are served in (default newest first).
    pub list_order: ListOrder,
    /// Virtual order history records in front of the real ones (see [`MockState::pad_history`]).
    pub pad_order_history: u64,
    /// Virtual customer history records.
    pub pad_customer_history: u64,
    /// Id spacing of the virtual records (1: dense).
    pub history_stride: u64,
    /// URL RetailCRM's trigger calls after every change (`None`: no calls). See [`webhook`].
    pub webhook_url: Option<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            orders: 100,
            customers: 50,
            seed: 1,
            api_key: "mock-api-key-0123456789abcdef".to_string(),
            scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
            site: "mock-shop".to_string(),
            timezone: "Europe/Moscow".to_string(),
            faults: FaultConfig::default(),
            history_page_cap: 10,
            list_order: ListOrder::NewestFirst,
            pad_order_history: 0,
            pad_customer_history: 0,
            history_stride: 1,
            webhook_url: None,
        }
    }
}

/// Errors starting the mock.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The listen address could not be bound.
    #[error("mock RetailCRM could not listen on {addr}: {source}; pick another --listen port")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Entry point.
pub struct MockCrm;

impl MockCrm {
    /// Generates the account and serves it. The server runs on the current tokio runtime until
    /// [`MockHandle::shutdown`] (or the handle is dropped).
    pub async fn start(cfg: MockConfig) -> Result<MockHandle, MockError> {
        let mut state = data::generate(&GenConfig {
            orders: cfg.orders,
            customers: cfg.customers,
            seed: cfg.seed,
            site: cfg.site.clone(),
            timezone: clock::parse_tz(&cfg.timezone),
            anchor: None,
        });
        state.history_page_cap = cfg.history_page_cap;
        state.list_order = cfg.list_order;
        let stride = cfg.history_stride.max(1);
        state.pad_history(crate::model::Stream::Orders, cfg.pad_order_history, stride);
        state.pad_history(
            crate::model::Stream::Customers,
            cfg.pad_customer_history,
            stride,
        );
        let webhooks = state.webhook_outbox().clone();
        webhooks.set_url(cfg.webhook_url.clone());
        let shared = Arc::new(server::Shared {
            state: RwLock::new(state),
            api_key: cfg.api_key.clone(),
            scopes: RwLock::new(cfg.scopes.clone()),
            revoked: AtomicBool::new(false),
            account_exists: AtomicBool::new(true),
            timezone: cfg.timezone.clone(),
            faults: RwLock::new(FaultConfig::default()),
            limiter: RwLock::new(None),
            requests: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            injected_failures: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            by_endpoint: Mutex::new(Default::default()),
            webhooks: webhooks.clone(),
        });
        shared.set_faults(cfg.faults.clone());
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| MockError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| MockError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let app = server::router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "mock RetailCRM server stopped with an error");
            }
        });
        let sender = tokio::spawn(webhook::run_sender(webhooks));
        Ok(MockHandle {
            url: format!("http://{addr}"),
            api_key: cfg.api_key,
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
            sender,
        })
    }
}

/// A running mock.
pub struct MockHandle {
    /// Base URL (`http://127.0.0.1:PORT`), what an integration's `api_url` would hold.
    pub url: String,
    /// The valid API key.
    pub api_key: String,
    /// Bound address.
    pub addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    sender: JoinHandle<()>,
}

impl std::fmt::Debug for MockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockHandle")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl MockHandle {
    /// Write access to the account. Do not hold the guard across an `.await`: the server
    /// waits for it. The trigger calls of the changes made through it leave when it is dropped.
    pub fn state(&self) -> StateGuard<'_> {
        self.shared.write()
    }

    /// Sets (or, with `None`, clears) the URL RetailCRM's trigger calls after every change.
    /// Clearing it drops the calls not yet sent. See [`webhook`].
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.shared.webhooks.set_url(url);
    }

    /// The trigger URL, if set.
    pub fn webhook_url(&self) -> Option<String> {
        self.shared.webhooks.url()
    }

    /// Trigger calls waiting to be sent.
    pub fn webhooks_pending(&self) -> usize {
        self.shared.webhooks.pending()
    }

    /// Applies `n` random changes (see [`MockState::mutate_random`]).
    pub fn mutate_random(&self, n: u64, seed: u64) -> MutationReport {
        self.shared.write().mutate_random(n, seed)
    }

    /// Every key is rejected from now on (`Wrong "apiKey" value.`).
    pub fn revoke_key(&self) {
        self.shared.revoked.store(true, Ordering::Relaxed);
    }

    /// Undoes [`Self::revoke_key`].
    pub fn restore_key(&self) {
        self.shared.revoked.store(false, Ordering::Relaxed);
    }

    /// Replaces the key's scopes.
    pub fn set_scopes(&self, scopes: &[&str]) {
        *self
            .shared
            .scopes
            .write()
            .unwrap_or_else(|e| e.into_inner()) = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// `false` makes the mock answer like a host without this account (HTML 404/405).
    pub fn set_account_exists(&self, exists: bool) {
        self.shared.account_exists.store(exists, Ordering::Relaxed);
    }

    /// Replaces rate limit and fault settings.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.set_faults(faults);
    }

    /// Requests received on `/api/...`.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// All counters, including requests per route pattern.
    pub fn stats(&self) -> MockStats {
        self.shared.stats()
    }

    /// The live orders (the mock's truth), ascending by id.
    pub fn orders_snapshot(&self) -> Vec<MockOrder> {
        self.shared
            .read()
            .orders
            .values()
            .map(|o| (**o).clone())
            .collect()
    }

    /// The live customers, ascending by id.
    pub fn customers_snapshot(&self) -> Vec<MockCustomer> {
        self.shared
            .read()
            .customers
            .values()
            .map(|c| (**c).clone())
            .collect()
    }

    /// Stops the server (and the trigger: calls not yet sent are dropped) and waits for it.
    pub async fn shutdown(mut self) {
        self.sender.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.sender.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
