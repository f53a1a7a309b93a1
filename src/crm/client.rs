//! The RetailCRM API v5 client (reqwest).
//!
//! One [`CrmClient`] per integration: it owns the account URL, the API key (sent only as the
//! `X-API-KEY` header), a token bucket that paces every request of the client, and the retry
//! policy for rate limiting (503/429: wait with capped exponential backoff + jitter until the
//! budget is spent). Idempotent reads are also retried a couple of times on transient failures
//! (5xx, timeouts, cut-off bodies) before the error reaches the job layer; writes never are,
//! because a create that timed out may have happened.
//!
//! Responses are decoded tolerantly (see [`super::decode`]): the envelope first, then every list
//! item on its own, so one bad record becomes a [`Decoded::Poison`](crate::crm::Decoded::Poison) and the page still succeeds.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use chrono_tz::Tz;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tracing::{debug, warn};

use super::anchor;
use super::error::{CrmError, ErrorClass};
use super::ratelimit::{TokenBucket, backoff_delay};
use super::types::{
    AccountSettings, ConnectionReport, Credentials, Customer, CustomerHistoryRecord, HistoryPage,
    Order, OrderHistoryRecord, Page, Site, Status, StatusGroup,
};
use super::wire::*;
use crate::model::Stream;
use crate::secret::ApiKey;

/// A list request by creation time: `from`/`to` are sent as given (`Y-m-d H:i:s` or `Y-m-d`,
/// account time), `ids` (at most 100) narrow it further, `page` and `limit` page it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListWindow {
    /// Lower bound of the creation time, inclusive.
    pub from: Option<String>,
    /// Upper bound of the creation time.
    pub to: Option<String>,
    /// Only these entities (empty: all).
    pub ids: Vec<i64>,
    /// Page, 1-based.
    pub page: u32,
    /// Page size: 20, 50 or 100.
    pub limit: u32,
}

impl ListWindow {
    fn query(&self, from_key: &str, to_key: &str) -> Result<Vec<(String, String)>, CrmError> {
        check_limit(self.limit)?;
        if self.ids.len() > MAX_IDS_PER_CALL {
            return Err(CrmError::InvalidRequest(format!(
                "{} ids in one call; RetailCRM returns at most {MAX_IDS_PER_CALL} per page, split the batch",
                self.ids.len()
            )));
        }
        let mut q: Vec<(String, String)> = vec![
            ("page".into(), self.page.max(1).to_string()),
            ("limit".into(), self.limit.to_string()),
        ];
        if let Some(f) = &self.from {
            q.push((from_key.into(), f.clone()));
        }
        if let Some(t) = &self.to {
            q.push((to_key.into(), t.clone()));
        }
        q.extend(
            self.ids
                .iter()
                .map(|id| ("filter[ids][]".to_string(), id.to_string())),
        );
        Ok(q)
    }
}

/// Page size of the history probes that find the newest id (the cheapest RetailCRM accepts).
const ANCHOR_PROBE_LIMIT: u32 = 20;

/// Timezone assumed when the account's settings name none.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Europe::Moscow;

/// Tuning of one client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Requests per second this client may send (RetailCRM allows 10 per IP). <= 0 disables
    /// pacing (tests only).
    pub requests_per_second: f64,
    /// Timeout of one HTTP request, connect to last byte.
    pub timeout: Duration,
    /// Total time one call may spend waiting on 503/429 before it fails with
    /// [`CrmError::RateLimited`].
    pub rate_limit_budget: Duration,
    /// Cap of one backoff wait.
    pub max_backoff: Duration,
    /// First backoff wait after a 503/429 (doubles per attempt).
    pub base_backoff: Duration,
    /// Extra attempts for idempotent reads after a transient failure (5xx, timeout, cut-off
    /// body). Writes are never retried.
    pub read_retries: u32,
    /// Project whose requests this client makes, for `crm_requests_total`; `None`: the
    /// requests are not counted (CLI commands, tests).
    pub project_id: Option<i64>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            requests_per_second: 10.0,
            timeout: Duration::from_secs(30),
            rate_limit_budget: Duration::from_secs(120),
            max_backoff: Duration::from_secs(10),
            base_backoff: Duration::from_millis(100),
            read_retries: 2,
            project_id: None,
        }
    }
}

/// A RetailCRM client. Cheap to clone; clones share the connection pool, the token bucket and
/// the request counter.
#[derive(Clone)]
pub struct CrmClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Account base URL without a trailing slash, e.g. `https://shop.retailcrm.ru`.
    base: String,
    key: ApiKey,
    key_header: HeaderValue,
    opts: ClientOptions,
    bucket: TokenBucket,
    requests: AtomicU64,
}

impl fmt::Debug for CrmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmClient")
            .field("base", &self.inner.base)
            .field("key", &self.inner.key)
            .field("opts", &self.inner.opts)
            .finish()
    }
}

/// The raw answer of one HTTP exchange.
struct RawResponse {
    status: u16,
    body: Vec<u8>,
}

/// Parameters of one request.
struct Request<'a> {
    method: Method,
    /// Path below the base URL, e.g. `/api/v5/orders`.
    path: &'a str,
    query: Vec<(String, String)>,
    form: Option<Vec<(String, String)>>,
}

impl CrmClient {
    /// A client for the account at `api_url` (e.g. `https://shop.retailcrm.ru`; a trailing
    /// `/` or `/api` is accepted). `http://` is refused except on loopback (the mock).
    pub fn new(api_url: &str, api_key: ApiKey, opts: ClientOptions) -> Result<CrmClient, CrmError> {
        let base = normalise_base_url(api_url)?;
        if api_key.is_empty() {
            return Err(CrmError::UnusableKey {
                reason: "it is empty".into(),
            });
        }
        let mut key_header =
            HeaderValue::from_str(api_key.expose()).map_err(|_| CrmError::UnusableKey {
                reason: "it contains characters that cannot be sent in an HTTP header".into(),
            })?;
        key_header.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("retailcrm-sync/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CrmError::Setup(e.to_string()))?;
        Ok(CrmClient {
            inner: Arc::new(Inner {
                http,
                base,
                key: api_key,
                key_header,
                bucket: TokenBucket::new(opts.requests_per_second),
                opts,
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// The account base URL this client talks to.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Total HTTP requests sent by this client and its clones (retries included).
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    // -----------------------------------------------------------------------------------------
    // Account and reference
    // -----------------------------------------------------------------------------------------

    /// `GET /api/api-versions`: the API versions the account accepts.
    pub async fn api_versions(&self) -> Result<Vec<String>, CrmError> {
        let path = "/api/api-versions";
        let env: VersionsEnvelope = self.get_typed(path, Vec::new()).await?;
        let _ = env.success;
        Ok(env.versions)
    }

    /// `GET /api/credentials`: the key's scopes and store access.
    pub async fn credentials(&self) -> Result<Credentials, CrmError> {
        let env: CredentialsEnvelope = self.get_typed("/api/credentials", Vec::new()).await?;
        let _ = env.success;
        Ok(env.credentials)
    }

    /// `GET /api/v5/settings`: the account timezone (Europe/Moscow if absent or unknown) and
    /// default currency.
    pub async fn settings(&self) -> Result<AccountSettings, CrmError> {
        let env: SettingsEnvelope = self.get_typed("/api/v5/settings", Vec::new()).await?;
        let _ = env.success;
        let body = env.settings;
        let timezone_raw = body
            .as_ref()
            .and_then(|s| s.timezone.as_ref())
            .and_then(|v| v.value.clone());
        let default_currency = body
            .as_ref()
            .and_then(|s| s.default_currency.as_ref())
            .and_then(|v| v.value.clone());
        let timezone = match timezone_raw.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_TIMEZONE,
            Some(name) => match Tz::from_str(name) {
                Ok(tz) => tz,
                Err(_) => {
                    warn!(timezone = name, base_url = %self.inner.base,
                        "unknown account timezone; using Europe/Moscow");
                    DEFAULT_TIMEZONE
                }
            },
        };
        Ok(AccountSettings {
            timezone,
            timezone_raw,
            default_currency,
        })
    }

    /// `GET /api/v5/reference/statuses`, keyed by status code. Entries that do not decode are
    /// skipped with a warning.
    pub async fn statuses(&self) -> Result<HashMap<String, Status>, CrmError> {
        self.dictionary("/api/v5/reference/statuses", |e| e.statuses)
            .await
    }

    /// `GET /api/v5/reference/status-groups`, keyed by group code.
    pub async fn status_groups(&self) -> Result<HashMap<String, StatusGroup>, CrmError> {
        self.dictionary("/api/v5/reference/status-groups", |e| e.status_groups)
            .await
    }

    /// `GET /api/v5/reference/sites`, keyed by store code.
    pub async fn sites(&self) -> Result<HashMap<String, Site>, CrmError> {
        self.dictionary("/api/v5/reference/sites", |e| e.sites)
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Lists
    // -----------------------------------------------------------------------------------------

    /// `GET /api/v5/orders?page=&limit=` (limit 20, 50 or 100).
    pub async fn orders_page(&self, page: u32, limit: u32) -> Result<Page<Order>, CrmError> {
        self.orders_page_from(page, limit, None).await
    }

    /// [`CrmClient::orders_page`] of the orders created on or after `created_from`
    /// (`filter[createdAtFrom]=Y-m-d`, the account's timezone); all orders when `None`.
    pub async fn orders_page_from(
        &self,
        page: u32,
        limit: u32,
        created_from: Option<NaiveDate>,
    ) -> Result<Page<Order>, CrmError> {
        check_limit(limit)?;
        let mut q = vec![
            ("page".into(), page.max(1).to_string()),
            ("limit".into(), limit.to_string()),
        ];
        if let Some(d) = created_from {
            q.push((
                "filter[createdAtFrom]".into(),
                d.format("%Y-%m-%d").to_string(),
            ));
        }
        self.list("/api/v5/orders", q, |e| e.orders).await
    }

    /// `GET /api/v5/customers?page=&limit=` (limit 20, 50 or 100).
    pub async fn customers_page(&self, page: u32, limit: u32) -> Result<Page<Customer>, CrmError> {
        check_limit(limit)?;
        let q = vec![
            ("page".into(), page.max(1).to_string()),
            ("limit".into(), limit.to_string()),
        ];
        self.list("/api/v5/customers", q, |e| e.customers).await
    }

    /// One page of the orders in a creation-time window (`filter[createdAtFrom]`,
    /// `filter[createdAtTo]`), optionally among `ids`: the snapshot's keyset read.
    pub async fn orders_window(&self, w: &ListWindow) -> Result<Page<Order>, CrmError> {
        let q = w.query("filter[createdAtFrom]", "filter[createdAtTo]")?;
        self.list("/api/v5/orders", q, |e| e.orders).await
    }

    /// One page of the customers in a creation-time window (`filter[dateFrom]`,
    /// `filter[dateTo]`), optionally among `ids`.
    pub async fn customers_window(&self, w: &ListWindow) -> Result<Page<Customer>, CrmError> {
        let q = w.query("filter[dateFrom]", "filter[dateTo]")?;
        self.list("/api/v5/customers", q, |e| e.customers).await
    }

    /// `GET /api/v5/orders?filter[ids][]=...&limit=100`: at most 100 ids; ids that no longer
    /// exist (deleted) are simply absent from the result. No request for an empty slice.
    pub async fn orders_by_ids(&self, ids: &[i64]) -> Result<Page<Order>, CrmError> {
        match ids_query(ids)? {
            None => Ok(empty_page()),
            Some(q) => self.list("/api/v5/orders", q, |e| e.orders).await,
        }
    }

    /// `GET /api/v5/customers?filter[ids][]=...&limit=100`: at most 100 ids.
    pub async fn customers_by_ids(&self, ids: &[i64]) -> Result<Page<Customer>, CrmError> {
        match ids_query(ids)? {
            None => Ok(empty_page()),
            Some(q) => self.list("/api/v5/customers", q, |e| e.customers).await,
        }
    }

    /// `GET /api/v5/customers?filter[externalIds][]=X`: the customer with this external id,
    /// if any (how a retried create finds the customer its first attempt made).
    pub async fn customer_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<Customer>, CrmError> {
        let q = vec![
            ("filter[externalIds][]".to_string(), external_id.to_string()),
            ("limit".to_string(), "20".to_string()),
            ("page".to_string(), "1".to_string()),
        ];
        let page: Page<Customer> = self.list("/api/v5/customers", q, |e| e.customers).await?;
        Ok(page
            .items
            .into_iter()
            .filter_map(|d| match d {
                crate::crm::Decoded::Ok(c) => Some(c),
                crate::crm::Decoded::Poison(_) => None,
            })
            .find(|c| c.external_id.as_deref() == Some(external_id)))
    }

    // -----------------------------------------------------------------------------------------
    // History
    // -----------------------------------------------------------------------------------------

    /// `GET /api/v5/orders/history?filter[sinceId]=&limit=`: records with id > `since_id`,
    /// ascending. Never sends `page` together with `sinceId` (RetailCRM answers 400).
    pub async fn orders_history(
        &self,
        since_id: Option<i64>,
        limit: u32,
    ) -> Result<HistoryPage<OrderHistoryRecord>, CrmError> {
        self.history("/api/v5/orders/history", since_id, limit)
            .await
    }

    /// `GET /api/v5/customers/history?filter[sinceId]=&limit=`.
    pub async fn customers_history(
        &self,
        since_id: Option<i64>,
        limit: u32,
    ) -> Result<HistoryPage<CustomerHistoryRecord>, CrmError> {
        self.history("/api/v5/customers/history", since_id, limit)
            .await
    }

    /// The newest history record id of a stream (`None` when the history is empty), found with
    /// at most [`anchor::DEFAULT_BUDGET`] requests of `limit=20` whatever the size of the
    /// history, and never a `page` (see [`anchor`]). Used as the snapshot anchor before a full
    /// load; a change made during the search is at worst seen twice, never missed.
    pub async fn latest_history_id(&self, stream: Stream) -> Result<Option<i64>, CrmError> {
        Ok(self.history_anchor(stream).await?.newest)
    }

    /// [`CrmClient::latest_history_id`] with the search's request count and exactness.
    pub async fn history_anchor(&self, stream: Stream) -> Result<anchor::Anchor, CrmError> {
        let found = match stream {
            Stream::Orders => {
                self.anchor_in::<OrderHistoryRecord>("/api/v5/orders/history")
                    .await?
            }
            Stream::Customers => {
                self.anchor_in::<CustomerHistoryRecord>("/api/v5/customers/history")
                    .await?
            }
        };
        if !found.exact {
            warn!(
                %stream,
                requests = found.requests,
                newest = ?found.newest,
                "the newest history id was not pinned down within the request budget; \
                 anchoring at the best lower bound (correct, the history walk is longer)"
            );
        }
        Ok(found)
    }

    /// How many history records are newer than `since_id`: one request of `limit=20`
    /// (`totalCount` of `filter[sinceId]`). `None` when the response carries no plausible count.
    pub async fn history_backlog(
        &self,
        stream: Stream,
        since_id: i64,
    ) -> Result<Option<u64>, CrmError> {
        let probe = match stream {
            Stream::Orders => {
                self.probe::<OrderHistoryRecord>("/api/v5/orders/history", Some(since_id))
                    .await?
            }
            Stream::Customers => {
                self.probe::<CustomerHistoryRecord>("/api/v5/customers/history", Some(since_id))
                    .await?
            }
        };
        Ok(if probe.last {
            Some(probe.ids.len() as u64)
        } else {
            probe.total
        })
    }

    async fn anchor_in<T>(&self, path: &str) -> Result<anchor::Anchor, CrmError>
    where
        T: DeserializeOwned + super::types::HasHistoryId,
    {
        anchor::newest_id(
            |since| self.probe::<T>(path, since),
            ANCHOR_PROBE_LIMIT,
            anchor::DEFAULT_BUDGET,
        )
        .await
    }

    /// One cheap history request (`limit=20`, no `page`), reduced to what a search needs.
    async fn probe<T>(&self, path: &str, since: Option<i64>) -> Result<anchor::Probe, CrmError>
    where
        T: DeserializeOwned + super::types::HasHistoryId,
    {
        let page: HistoryPage<T> = self.history(path, since, ANCHOR_PROBE_LIMIT).await?;
        let ids: Vec<i64> = page
            .items
            .iter()
            .filter_map(|d| match d {
                super::Decoded::Ok(r) => Some(r.history_id()),
                super::Decoded::Poison(p) => p.id,
            })
            .collect();
        let p = page.pagination;
        let has_pagination = p.total_page_count > 0 || p.total_count > 0;
        let shown = page.items.len() as u64;
        Ok(anchor::Probe {
            generated_at: page.generated_at.clone(),
            last: shown < u64::from(ANCHOR_PROBE_LIMIT) || (has_pagination && p.is_last()),
            total: (has_pagination && p.total_count >= shown).then_some(p.total_count),
            ids,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Writes
    // -----------------------------------------------------------------------------------------

    /// `POST /api/v5/orders/create` (form: `order` = JSON, `site`). Returns the new id.
    pub async fn create_order(
        &self,
        order: &serde_json::Value,
        site: Option<&str>,
    ) -> Result<i64, CrmError> {
        self.write(
            "/api/v5/orders/create".to_string(),
            "order",
            order,
            site,
            None,
        )
        .await
    }

    /// `POST /api/v5/orders/{id}/edit` with `by=id` (partial `order` JSON). Returns the id.
    pub async fn edit_order(
        &self,
        id: i64,
        order: &serde_json::Value,
        site: Option<&str>,
    ) -> Result<i64, CrmError> {
        self.write(
            format!("/api/v5/orders/{id}/edit"),
            "order",
            order,
            site,
            Some("id"),
        )
        .await
    }

    /// `POST /api/v5/customers/create` (form: `customer` = JSON, `site`). Returns the new id.
    pub async fn create_customer(
        &self,
        customer: &serde_json::Value,
        site: Option<&str>,
    ) -> Result<i64, CrmError> {
        self.write(
            "/api/v5/customers/create".to_string(),
            "customer",
            customer,
            site,
            None,
        )
        .await
    }

    /// `POST /api/v5/customers/{id}/edit` with `by=id`. Returns the id.
    pub async fn edit_customer(
        &self,
        id: i64,
        customer: &serde_json::Value,
        site: Option<&str>,
    ) -> Result<i64, CrmError> {
        self.write(
            format!("/api/v5/customers/{id}/edit"),
            "customer",
            customer,
            site,
            Some("id"),
        )
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Connection test
    // -----------------------------------------------------------------------------------------

    /// Checks that the URL is a RetailCRM account offering API v5 and that the key is valid and
    /// has every scope in `needed_scopes` (error names the missing ones).
    pub async fn test_connection(
        &self,
        needed_scopes: &[&str],
    ) -> Result<ConnectionReport, CrmError> {
        let versions = self.api_versions().await?;
        if !versions
            .iter()
            .any(|v| v == "5.0" || v == "5" || v.starts_with("5."))
        {
            return Err(CrmError::UnsupportedVersion {
                base_url: self.inner.base.clone(),
                versions,
            });
        }
        let creds = self.credentials().await?;
        let missing: Vec<String> = needed_scopes
            .iter()
            .filter(|s| !creds.scopes.iter().any(|have| have == *s))
            .map(|s| s.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(CrmError::MissingScopes { missing });
        }
        Ok(ConnectionReport {
            versions,
            scopes: creds.scopes,
            site_access: creds.site_access,
            sites_available: creds.sites_available,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Plumbing
    // -----------------------------------------------------------------------------------------

    /// One history request. Never sends `page`: RetailCRM refuses it with `sinceId` and for
    /// deep pages; without `since_id` it is page 1, the oldest records.
    async fn history<T: DeserializeOwned>(
        &self,
        path: &str,
        since_id: Option<i64>,
        limit: u32,
    ) -> Result<HistoryPage<T>, CrmError> {
        check_limit(limit)?;
        let mut q: Vec<(String, String)> = vec![("limit".into(), limit.to_string())];
        if let Some(id) = since_id {
            q.push(("filter[sinceId]".into(), id.to_string()));
        }
        self.read_with_retries(path, q, |status, body| decode_history(path, status, body))
            .await
    }

    async fn list<T, F>(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        pick: F,
    ) -> Result<Page<T>, CrmError>
    where
        T: DeserializeOwned,
        F: for<'a> Fn(ListEnvelope<'a>) -> Option<RawItems<'a>>,
    {
        self.read_with_retries(path, query, |status, body| {
            decode_list(path, status, body, &pick)
        })
        .await
    }

    async fn dictionary<T, F>(&self, path: &str, pick: F) -> Result<HashMap<String, T>, CrmError>
    where
        T: DeserializeOwned,
        F: for<'a> Fn(DictEnvelope<'a>) -> Option<&'a RawValue>,
    {
        self.read_with_retries(path, Vec::new(), |status, body| {
            decode_dictionary(path, status, body, &pick)
        })
        .await
    }

    async fn get_typed<T: DeserializeOwned>(
        &self,
        path: &str,
        query: Vec<(String, String)>,
    ) -> Result<T, CrmError> {
        self.read_with_retries(path, query, |status, body| {
            #[derive(Deserialize)]
            struct Flag {
                #[serde(default = "yes")]
                success: bool,
            }
            let flag: Flag = parse_envelope(path, status, body)?;
            if !flag.success {
                return Err(None);
            }
            serde_json::from_slice::<T>(body)
                .map_err(|e| Some(decode_err(path, status, &e.to_string())))
        })
        .await
    }

    /// Sends a GET and decodes it with `decode`, retrying transient failures `read_retries`
    /// times. `decode` returns `Err(None)` when the body is a `success:false` error body, which
    /// is then turned into a typed error.
    async fn read_with_retries<T, F>(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        decode: F,
    ) -> Result<T, CrmError>
    where
        F: Fn(u16, &[u8]) -> Result<T, Option<CrmError>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = self
                .send(Request {
                    method: Method::GET,
                    path,
                    query: query.clone(),
                    form: None,
                })
                .await
                .and_then(|raw| self.interpret(path, raw, &decode));
            match result {
                Err(err)
                    if err.class() == ErrorClass::Transient
                        && attempt <= self.inner.opts.read_retries =>
                {
                    let delay = backoff_delay(
                        attempt,
                        Duration::from_millis(250),
                        self.inner.opts.max_backoff,
                    );
                    debug!(endpoint = path, attempt, error = %err, delay_ms = delay.as_millis() as u64,
                        "transient RetailCRM failure; retrying the read");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Turns a raw response into `T` or a typed error.
    fn interpret<T, F>(&self, path: &str, raw: RawResponse, decode: &F) -> Result<T, CrmError>
    where
        F: Fn(u16, &[u8]) -> Result<T, Option<CrmError>>,
    {
        let status = raw.status;
        if looks_like_html(&raw.body) {
            return Err(self.html_error(path, status));
        }
        if (200..300).contains(&status) {
            return match decode(status, &raw.body) {
                Ok(v) => Ok(v),
                Err(Some(e)) => Err(e),
                Err(None) => Err(self.error_from_body(path, status, &raw.body)),
            };
        }
        Err(self.error_from_body(path, status, &raw.body))
    }

    pub(super) fn html_error(&self, path: &str, status: u16) -> CrmError {
        if status >= 500 {
            CrmError::Server {
                endpoint: path.to_string(),
                status,
                message: "an HTML error page instead of JSON".into(),
            }
        } else {
            CrmError::AccountNotFound {
                base_url: self.inner.base.clone(),
                endpoint: path.to_string(),
                status,
                detail: "an HTML page instead of the API's JSON".into(),
            }
        }
    }

    /// Builds the typed error for a non-2xx answer or a `success:false` body.
    pub(super) fn error_from_body(&self, path: &str, status: u16, body: &[u8]) -> CrmError {
        let endpoint = path.to_string();
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
        let Some(parsed) = parsed else {
            // Not JSON at all.
            return match status {
                500..=599 => CrmError::Server {
                    endpoint,
                    status,
                    message: self.scrub(&excerpt(body)),
                },
                401 | 403 => CrmError::InvalidKey {
                    endpoint,
                    status,
                    message: self.scrub(&excerpt(body)),
                },
                404 | 405 => CrmError::AccountNotFound {
                    base_url: self.inner.base.clone(),
                    endpoint,
                    status,
                    detail: self.scrub(&excerpt(body)),
                },
                _ => CrmError::Decode {
                    endpoint,
                    status,
                    reason: format!("not JSON: {}", self.scrub(&excerpt(body))),
                },
            };
        };
        let message = self.scrub(
            parsed
                .error_msg
                .as_deref()
                .unwrap_or("no errorMsg in the response"),
        );
        let errors: Vec<String> = error_lines(&parsed.errors)
            .iter()
            .map(|l| self.scrub(l))
            .collect();
        if message.contains("apiKey") {
            CrmError::InvalidKey {
                endpoint,
                status,
                message,
            }
        } else if message.starts_with("Access denied") {
            CrmError::AccessDenied { endpoint, message }
        } else if message.contains("Account does not exist") {
            CrmError::AccountNotFound {
                base_url: self.inner.base.clone(),
                endpoint,
                status,
                detail: message,
            }
        } else if status == 401 || status == 403 {
            CrmError::InvalidKey {
                endpoint,
                status,
                message,
            }
        } else if status >= 500 {
            CrmError::Server {
                endpoint,
                status,
                message,
            }
        } else {
            CrmError::Api {
                endpoint,
                status,
                message,
                errors,
            }
        }
    }

    /// Masks the API key if a server ever echoes it back in a message.
    fn scrub(&self, text: &str) -> String {
        let key = self.inner.key.expose();
        if key.len() >= 4 && text.contains(key) {
            text.replace(key, "****")
        } else {
            text.to_string()
        }
    }

    async fn write(
        &self,
        path: String,
        field: &str,
        entity: &serde_json::Value,
        site: Option<&str>,
        by: Option<&str>,
    ) -> Result<i64, CrmError> {
        let json = serde_json::to_string(entity)
            .map_err(|e| CrmError::InvalidRequest(format!("{field} is not serialisable: {e}")))?;
        let mut form = vec![(field.to_string(), json)];
        if let Some(by) = by {
            form.push(("by".into(), by.to_string()));
        }
        if let Some(site) = site {
            form.push(("site".into(), site.to_string()));
        }
        let raw = self
            .send(Request {
                method: Method::POST,
                path: &path,
                query: Vec::new(),
                form: Some(form),
            })
            .await?;
        self.interpret(&path, raw, &|status, body| {
            let env: IdEnvelope = parse_envelope(&path, status, body)?;
            if !env.success {
                return Err(None);
            }
            env.id
                .ok_or_else(|| Some(decode_err(&path, status, "no `id` in the response")))
        })
    }

    /// One logical request: paced by the token bucket, retried on 503/429 within the budget.
    async fn send(&self, req: Request<'_>) -> Result<RawResponse, CrmError> {
        let inner = &*self.inner;
        let url = format!("{}{}", inner.base, req.path);
        let mut waited = Duration::ZERO;
        let mut attempts = 0u32;
        loop {
            inner.bucket.acquire().await;
            attempts += 1;
            inner.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let mut builder = inner
                .http
                .request(req.method.clone(), &url)
                .header("X-API-KEY", inner.key_header.clone());
            if !req.query.is_empty() {
                builder = builder.query(&req.query);
            }
            if let Some(form) = &req.form {
                builder = builder.form(form);
            }
            let outcome = match builder.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(body) => Ok((status, body.to_vec())),
                        Err(e) => Err(self.transport_error(req.path, e)),
                    }
                }
                Err(e) => Err(self.transport_error(req.path, e)),
            };
            let duration_ms = started.elapsed().as_millis() as u64;
            crate::metrics::metrics().crm_request(
                inner.opts.project_id,
                &endpoint_label(req.path),
                outcome.as_ref().ok().map(|(s, _)| s.as_u16()),
            );
            let (status, body) = match outcome {
                Ok(x) => x,
                Err(err) => {
                    debug!(endpoint = req.path, method = %req.method, duration_ms, error = %err, "retailcrm request failed");
                    return Err(err);
                }
            };
            debug!(endpoint = req.path, method = %req.method, status = status.as_u16(), duration_ms,
                bytes = body.len(), "retailcrm request");
            if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
            {
                let delay =
                    backoff_delay(attempts, inner.opts.base_backoff, inner.opts.max_backoff);
                if waited + delay > inner.opts.rate_limit_budget {
                    warn!(
                        endpoint = req.path,
                        attempts,
                        waited_ms = waited.as_millis() as u64,
                        "retailcrm rate limit budget spent"
                    );
                    return Err(CrmError::RateLimited {
                        endpoint: req.path.to_string(),
                        waited,
                        attempts,
                    });
                }
                debug!(
                    endpoint = req.path,
                    attempts,
                    delay_ms = delay.as_millis() as u64,
                    "rate limited by retailcrm; backing off"
                );
                inner.bucket.penalise(delay).await;
                tokio::time::sleep(delay).await;
                waited += delay;
                continue;
            }
            return Ok(RawResponse {
                status: status.as_u16(),
                body,
            });
        }
    }

    fn transport_error(&self, path: &str, e: reqwest::Error) -> CrmError {
        if e.is_timeout() {
            CrmError::Timeout {
                endpoint: path.to_string(),
                timeout: self.inner.opts.timeout,
            }
        } else {
            let e = e.without_url();
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason.push_str(": ");
                reason.push_str(&s.to_string());
                source = s.source();
            }
            CrmError::Network {
                endpoint: path.to_string(),
                reason: self.scrub(&reason),
            }
        }
    }
}

/// Classifies a recorded error body as the client would for `status`.
pub fn parse_error_body(client: &CrmClient, path: &str, status: u16, body: &[u8]) -> CrmError {
    if looks_like_html(body) {
        client.html_error(path, status)
    } else {
        client.error_from_body(path, status, body)
    }
}

/// The `endpoint` label of a request path: ids become `{id}` so the series stay few
/// (`/api/v5/orders/123/edit` -> `/api/v5/orders/{id}/edit`).
fn endpoint_label(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .enumerate()
        .map(|(i, seg)| {
            // Segments after `/api/v5/<entity>/` that are not a known action name an entity.
            let known = matches!(
                seg,
                "" | "api"
                    | "v5"
                    | "orders"
                    | "customers"
                    | "customers-corporate"
                    | "history"
                    | "edit"
                    | "create"
                    | "reference"
                    | "sites"
                    | "statuses"
                    | "settings"
                    | "credentials"
                    | "api-versions"
                    | "upload"
                    | "combine"
                    | "fix-external-ids"
            );
            if i >= 4 && !known { "{id}" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_rules() {
        assert_eq!(
            normalise_base_url("https://a.retailcrm.ru/").unwrap(),
            "https://a.retailcrm.ru"
        );
        assert_eq!(
            normalise_base_url("https://a.retailcrm.ru/api/v5").unwrap(),
            "https://a.retailcrm.ru"
        );
        assert_eq!(
            normalise_base_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalise_base_url("http://a.retailcrm.ru").is_err());
        assert!(normalise_base_url("https://a.retailcrm.ru/?apiKey=x").is_err());
        assert!(normalise_base_url("ftp://a").is_err());
        assert!(normalise_base_url("not a url").is_err());
        let e = normalise_base_url("https://u:SECRET@a.ru/x?apiKey=SECRET").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("SECRET"), "{e}");
    }

    #[test]
    fn unusable_keys_are_refused_without_showing_them() {
        let opts = ClientOptions::default;
        let e = CrmClient::new("https://a.retailcrm.ru", ApiKey::new("  "), opts()).unwrap_err();
        assert!(matches!(e, CrmError::UnusableKey { .. }));
        let e = CrmClient::new(
            "https://a.retailcrm.ru",
            ApiKey::new("SECRET\u{1}x"),
            opts(),
        )
        .unwrap_err();
        assert!(e.is_permanent());
        assert!(!format!("{e} {e:?}").contains("SECRET"));
        let c = CrmClient::new(
            "https://a.retailcrm.ru",
            ApiKey::new("SECRETSECRET1234"),
            opts(),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[test]
    fn ids_limits() {
        assert!(ids_query(&[]).unwrap().is_none());
        let ids: Vec<i64> = (1..=101).collect();
        assert!(ids_query(&ids).is_err());
        assert_eq!(ids_query(&ids[..100]).unwrap().unwrap().len(), 102);
    }

    #[test]
    fn errors_object_or_list() {
        let v: serde_json::Value = serde_json::from_str(r#"{"customer":"Set one"}"#).unwrap();
        assert_eq!(error_lines(&v), vec!["customer: Set one".to_string()]);
        let v: serde_json::Value = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert_eq!(error_lines(&v), vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn endpoint_labels_hide_ids() {
        assert_eq!(
            endpoint_label("/api/v5/orders/123/edit"),
            "/api/v5/orders/{id}/edit"
        );
        assert_eq!(
            endpoint_label("/api/v5/customers/ext-7"),
            "/api/v5/customers/{id}"
        );
        assert_eq!(
            endpoint_label("/api/v5/orders/history"),
            "/api/v5/orders/history"
        );
        assert_eq!(
            endpoint_label("/api/v5/reference/statuses"),
            "/api/v5/reference/statuses"
        );
        assert_eq!(endpoint_label("/api/v5/orders"), "/api/v5/orders");
    }
}
