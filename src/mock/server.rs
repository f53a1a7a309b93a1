//! The mock's HTTP surface (axum): the RetailCRM v5 endpoints of `retailcrm-api.md`, the
//! `/admin/...` endpoints used to drive a spawned mock, and the middleware that authenticates,
//! counts, rate-limits and injects faults.
//!
//! Behaviour follows the document, not our client: `limit` must be 20/50/100 (else 400), history
//! `filter[sinceId]` is exclusive and cannot be combined with `page` (400), a history `page`
//! above [`MockState::history_page_cap`] answers 400 `Use the shift of the filter[sinceId]
//! instead of page parameter` (as the live API), history takes `filter[startDate]`/`endDate`,
//! lists take the filters of [`super::listing`], single reads are `GET /orders/{key}` and
//! `GET /customers/{key}` (`by` = `externalId` by default, or `id`; 404 `Not found`), writes
//! are form-encoded with the entity as a JSON field, `by` defaults to `externalId`, create
//! answers 201, the key is the `X-API-KEY` header or an `apiKey` query or form parameter, a
//! wrong key answers 403 `Wrong "apiKey" value.`, an unknown account answers an HTML page.
//!
//! Admin: `GET /admin/stats` (counters, including `webhooks_sent`/`webhooks_failed` of the
//! trigger), `POST /admin/mutate?n=&seed=`, `/admin/faults?...`, `/admin/account?exists=`,
//! `/admin/revoke-key`, `/admin/restore-key`, `/admin/orders/{id}/status?status=`,
//! `/admin/orders/{id}/delete`, `/admin/customers/{id}/merge?into=`, and the trigger:
//! `POST /admin/webhook` with JSON `{"url": "http://...?token=..."}` sets the URL RetailCRM's
//! trigger calls after every change (`{"url": null}` clears it; see [`super::webhook`]),
//! `GET /admin/webhook` shows it with its counters.
//!
//! Every write to the state goes through [`Shared::write`], whose guard releases the trigger
//! calls of the change when the lock is given up and wakes the sender: no call is sent while
//! the state lock is held, and none delays an answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::clock::real_now;
use super::data::{DEFAULT_STATUS_GROUPS, fmt_time};
use super::faults::{FaultConfig, HTML_503, HTML_NO_ACCOUNT, ServerLimiter, roll};
use super::history::HistQuery;
use super::listing::{FilterError, ListFilter, parse_bound};
use super::state::{MockState, WriteError};
use super::webhook::WebhookOutbox;

/// Everything the handlers share.
#[derive(Debug)]
pub struct Shared {
    /// The account.
    pub state: RwLock<MockState>,
    /// The valid API key.
    pub api_key: String,
    /// Scopes the key has.
    pub scopes: RwLock<Vec<String>>,
    /// Set by `revoke_key`: every key is wrong.
    pub revoked: AtomicBool,
    /// Cleared to simulate a wrong account URL.
    pub account_exists: AtomicBool,
    /// Account timezone reported by `/settings`.
    pub timezone: String,
    /// Faults.
    pub faults: RwLock<FaultConfig>,
    /// Server-side rate limiter (rebuilt when the limit changes).
    pub limiter: RwLock<Option<Arc<ServerLimiter>>>,
    /// Requests to `/api/...` (including refused ones).
    pub requests: AtomicU64,
    /// 503 answers.
    pub rate_limited: AtomicU64,
    /// Injected 500 answers.
    pub injected_failures: AtomicU64,
    /// Truncated answers.
    pub truncated: AtomicU64,
    /// Requests per route pattern (e.g. `/api/v5/orders`).
    pub by_endpoint: Mutex<HashMap<String, u64>>,
    /// The trigger's outbox (the same as the state's, reachable without the state lock).
    pub webhooks: Arc<WebhookOutbox>,
}

/// Write access to the state. When it is dropped, the trigger calls of the changes made
/// through it become sendable (just before the lock is given up) and the sender is woken
/// (just after).
pub struct StateGuard<'a> {
    guard: Option<std::sync::RwLockWriteGuard<'a, MockState>>,
    webhooks: &'a WebhookOutbox,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = MockState;

    #[allow(clippy::expect_used)] // `guard` is only `None` inside `drop`, after the last use
    fn deref(&self) -> &MockState {
        self.guard.as_deref().expect("state guard used after drop")
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    #[allow(clippy::expect_used)] // `guard` is only `None` inside `drop`, after the last use
    fn deref_mut(&mut self) -> &mut MockState {
        self.guard
            .as_deref_mut()
            .expect("state guard used after drop")
    }
}

impl std::fmt::Debug for StateGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateGuard").finish_non_exhaustive()
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let waiting = self.webhooks.release();
        drop(self.guard.take());
        if waiting {
            self.webhooks.wake();
        }
    }
}

impl Shared {
    /// Read access to the state (a poisoned lock is still usable: state stays consistent
    /// because every mutation is a single method call).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, MockState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access to the state; the trigger calls of the changes leave when it is dropped.
    pub fn write(&self) -> StateGuard<'_> {
        StateGuard {
            guard: Some(self.state.write().unwrap_or_else(|e| e.into_inner())),
            webhooks: &self.webhooks,
        }
    }

    /// Replaces the fault settings.
    pub fn set_faults(&self, faults: FaultConfig) {
        let limiter = faults
            .rate_limit
            .filter(|r| *r > 0.0)
            .map(|r| Arc::new(ServerLimiter::new(r)));
        *self.limiter.write().unwrap_or_else(|e| e.into_inner()) = limiter;
        *self.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Counters.
    pub fn stats(&self) -> MockStats {
        let by_endpoint = self
            .by_endpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        MockStats {
            requests: self.requests.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            injected_failures: self.injected_failures.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            webhooks_sent: self.webhooks.sent(),
            webhooks_failed: self.webhooks.failed(),
            by_endpoint,
        }
    }
}

/// Request counters of the mock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MockStats {
    /// Requests to `/api/...`.
    pub requests: u64,
    /// Answered 503.
    pub rate_limited: u64,
    /// Answered with an injected 500.
    pub injected_failures: u64,
    /// Answers cut in half.
    pub truncated: u64,
    /// Trigger calls answered 2xx (see [`super::webhook`]).
    pub webhooks_sent: u64,
    /// Trigger calls that failed (no connection, timeout, non-2xx; not retried).
    pub webhooks_failed: u64,
    /// Requests per route pattern.
    pub by_endpoint: BTreeMap<String, u64>,
}

type AppState = Arc<Shared>;

fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        bytes,
    )
        .into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    json_response(status, &json!({"success": false, "errorMsg": msg}))
}

fn error_with(status: StatusCode, msg: &str, errors: Value) -> Response {
    json_response(
        status,
        &json!({"success": false, "errorMsg": msg, "errors": errors}),
    )
}

fn html(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html"))],
        body,
    )
        .into_response()
}

/// Builds the router.
pub fn router(shared: AppState) -> Router {
    let api = Router::new()
        .route("/api/api-versions", get(api_versions))
        .route("/api/credentials", get(credentials))
        .route("/api/v5/settings", get(settings))
        .route("/api/v5/reference/statuses", get(statuses))
        .route("/api/v5/reference/status-groups", get(status_groups))
        .route("/api/v5/reference/sites", get(sites))
        .route("/api/v5/orders", get(orders_list))
        .route("/api/v5/customers", get(customers_list))
        .route("/api/v5/orders/history", get(orders_history))
        .route("/api/v5/customers/history", get(customers_history))
        .route("/api/v5/orders/{key}", get(order_get))
        .route("/api/v5/customers/{key}", get(customer_get))
        .route("/api/v5/orders/create", post(orders_create))
        .route("/api/v5/orders/{key}/edit", post(orders_edit))
        .route("/api/v5/customers/create", post(customers_create))
        .route("/api/v5/customers/{key}/edit", post(customers_edit))
        .fallback(api_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            api_middleware,
        ));
    let admin = Router::new()
        .route("/admin/stats", get(admin_stats))
        .route("/admin/mutate", post(admin_mutate))
        .route("/admin/revoke-key", post(admin_revoke))
        .route("/admin/faults", post(admin_faults))
        .route("/admin/account", post(admin_account))
        .route("/admin/restore-key", post(admin_restore))
        .route("/admin/orders/{id}/status", post(admin_order_status))
        .route("/admin/orders/{id}/delete", post(admin_order_delete))
        .route("/admin/customers/{id}/merge", post(admin_customer_merge))
        .route(
            "/admin/webhook",
            get(admin_webhook_get).post(admin_webhook_set),
        );
    Router::new().merge(admin).merge(api).with_state(shared)
}

async fn api_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "API method not found")
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// Scope needed for a route, by method and path.
fn needed_scope(method: &Method, path: &str) -> Option<&'static str> {
    let write = *method == Method::POST;
    if path.starts_with("/api/v5/orders") {
        Some(if write { "order_write" } else { "order_read" })
    } else if path.starts_with("/api/v5/customers") {
        Some(if write {
            "customer_write"
        } else {
            "customer_read"
        })
    } else if path.starts_with("/api/v5/reference") {
        Some("reference_read")
    } else {
        None
    }
}

/// Counting, rate limit, faults, account existence and authentication for `/api/...`.
async fn api_middleware(
    State(shared): State<AppState>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let route = matched
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "(unknown)".into());
    *shared
        .by_endpoint
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(route)
        .or_insert(0) += 1;

    let limiter = shared
        .limiter
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(limiter) = limiter
        && !limiter.try_take()
    {
        shared.rate_limited.fetch_add(1, Ordering::Relaxed);
        return html(StatusCode::SERVICE_UNAVAILABLE, HTML_503);
    }
    let faults = shared
        .faults
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if faults.slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.slow_ms)).await;
    }
    if roll(faults.fail_rate) {
        shared.injected_failures.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    if !shared.account_exists.load(Ordering::Relaxed) {
        return if req.method() == Method::GET {
            html(StatusCode::NOT_FOUND, HTML_NO_ACCOUNT)
        } else {
            html(StatusCode::METHOD_NOT_ALLOWED, HTML_NO_ACCOUNT)
        };
    }
    // Authentication: header X-API-KEY, or the documented `apiKey` query or form parameter.
    let (req, key) = request_key(req).await;
    match key {
        None => return error(StatusCode::FORBIDDEN, "\"apiKey\" is missing."),
        Some(k) if k != shared.api_key || shared.revoked.load(Ordering::Relaxed) => {
            return error(StatusCode::FORBIDDEN, "Wrong \"apiKey\" value.");
        }
        Some(_) => {}
    }
    if let Some(scope) = needed_scope(req.method(), req.uri().path()) {
        let has = shared
            .scopes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|s| s == scope);
        if !has {
            return error(StatusCode::FORBIDDEN, "Access denied.");
        }
    }
    let path = req.uri().path();
    if faults.churn_per_list > 0
        && req.method() == Method::GET
        && (path == "/api/v5/orders" || path == "/api/v5/customers")
    {
        let seed = shared.requests.load(Ordering::Relaxed);
        shared.write().churn(faults.churn_per_list, seed);
    }
    let resp = next.run(req).await;
    if resp.status().is_success() && roll(faults.truncate_rate) {
        shared.truncated.fetch_add(1, Ordering::Relaxed);
        let (mut parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
            .await
            .unwrap_or_default();
        let cut = bytes.slice(0..bytes.len() / 2);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(cut));
    }
    resp
}

/// Largest form body read to look for an `apiKey` field.
const MAX_FORM_BYTES: usize = 16 * 1024 * 1024;

/// The API key of a request: the `X-API-KEY` header, the `apiKey` query parameter, or the
/// `apiKey` field of a form-encoded body (the body is read and put back).
async fn request_key(req: Request) -> (Request, Option<String>) {
    let header_key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let query_key = || {
        req.uri().query().and_then(|q| {
            serde_urlencoded::from_str::<Pairs>(q)
                .ok()
                .and_then(|pairs| param(&pairs, "apiKey").map(str::to_string))
        })
    };
    if let Some(k) = header_key.or_else(query_key) {
        return (req, Some(k));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (req, None);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .unwrap_or_default();
    let key = serde_urlencoded::from_bytes::<Pairs>(&bytes)
        .ok()
        .and_then(|pairs| param(&pairs, "apiKey").map(str::to_string));
    (Request::from_parts(parts, Body::from(bytes)), key)
}

// ---------------------------------------------------------------------------------------------
// Query helpers
// ---------------------------------------------------------------------------------------------

type Pairs = Vec<(String, String)>;

fn param<'a>(q: &'a Pairs, name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn input_error(field: &str, msg: &str) -> Response {
    error_with(
        StatusCode::BAD_REQUEST,
        "Errors in the input parameters",
        json!({ field: msg }),
    )
}

/// `limit` (20/50/100, default 20) and `page` (>= 1, default 1).
#[allow(clippy::result_large_err)]
fn paging(q: &Pairs) -> Result<(u32, u32), Response> {
    let limit = match param(q, "limit") {
        None => 20,
        Some(s) => match s.parse::<u32>() {
            Ok(l) if [20, 50, 100].contains(&l) => l,
            _ => {
                return Err(input_error(
                    "limit",
                    "The value you selected is not a valid choice.",
                ));
            }
        },
    };
    let page = match param(q, "page") {
        None => 1,
        Some(s) => match s.parse::<u32>() {
            Ok(p) if p >= 1 => p,
            _ => {
                return Err(input_error(
                    "page",
                    "This value should be greater than or equal to 1.",
                ));
            }
        },
    };
    Ok((page, limit))
}

/// The `pagination` object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaginationBody {
    limit: u32,
    total_count: usize,
    current_page: u32,
    total_page_count: usize,
}

fn pagination(limit: u32, total: usize, page: u32) -> PaginationBody {
    PaginationBody {
        limit,
        total_count: total,
        current_page: page,
        total_page_count: total.div_ceil(limit as usize),
    }
}

/// A list or history answer, serialised straight from pre-rendered items.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    generated_at: Option<String>,
    pagination: PaginationBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    orders: Option<Vec<Box<RawValue>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customers: Option<Vec<Box<RawValue>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<Box<RawValue>>>,
}

fn list_response(status: StatusCode, body: &ListBody) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        bytes,
    )
        .into_response()
}

fn list_body(pagination: PaginationBody) -> ListBody {
    ListBody {
        success: true,
        generated_at: None,
        pagination,
        orders: None,
        customers: None,
        history: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Account and reference
// ---------------------------------------------------------------------------------------------

async fn api_versions() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"success": true, "versions": ["3.0", "4.0", "5.0"]}),
    )
}

async fn credentials(State(shared): State<AppState>) -> Response {
    let scopes = shared
        .scopes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    json_response(
        StatusCode::OK,
        &json!({"success": true, "scopes": scopes, "credentials": [], "siteAccess": "access_full", "sitesAvailable": [shared.read().site.clone()]}),
    )
}

async fn settings(State(shared): State<AppState>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"success": true, "settings": {
            "default_currency": {"value": "RUB", "updated_at": "2025-01-01 00:00:00"},
            "system_language": {"value": "RU", "updated_at": "2025-01-01 00:00:00"},
            "timezone": {"value": shared.timezone, "updated_at": "2025-01-01 00:00:00"},
        }}),
    )
}

async fn statuses() -> Response {
    let mut map = serde_json::Map::new();
    let mut ordering = 10;
    for (group, _, _, sts) in DEFAULT_STATUS_GROUPS {
        for (code, name) in *sts {
            map.insert(
                code.to_string(),
                json!({"name": name, "code": code, "active": true, "ordering": ordering, "group": group}),
            );
            ordering += 10;
        }
    }
    json_response(StatusCode::OK, &json!({"success": true, "statuses": map}))
}

async fn status_groups() -> Response {
    let mut map = serde_json::Map::new();
    for (i, (group, name, process, sts)) in DEFAULT_STATUS_GROUPS.iter().enumerate() {
        let codes: Vec<&str> = sts.iter().map(|(c, _)| *c).collect();
        map.insert(
            group.to_string(),
            json!({"name": name, "code": group, "active": true, "ordering": (i + 1) * 10, "process": process, "statuses": codes}),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({"success": true, "statusGroups": map}),
    )
}

async fn sites(State(shared): State<AppState>) -> Response {
    let site = shared.read().site.clone();
    json_response(
        StatusCode::OK,
        &json!({"success": true, "sites": { site.clone(): {
            "id": 1, "name": "Mock shop", "code": site, "url": "https://shop.example.ru",
            "defaultForCrm": true, "countryIso": "RU", "currency": "RUB", "ordering": 50, "isDemo": false,
        }}}),
    )
}

// ---------------------------------------------------------------------------------------------
// Lists and history
// ---------------------------------------------------------------------------------------------

fn filter_error(e: FilterError) -> Response {
    input_error(&e.field, &e.message)
}

/// `page`, `limit` and the filters of a list request.
#[allow(clippy::result_large_err)]
fn list_params(q: &Pairs, orders: bool) -> Result<(u32, u32, ListFilter), Response> {
    let (page, limit) = paging(q)?;
    let filter = ListFilter::parse(q, orders).map_err(filter_error)?;
    Ok((page, limit, filter))
}

async fn orders_list(State(shared): State<AppState>, Query(q): Query<Pairs>) -> Response {
    let (page, limit, filter) = match list_params(&q, true) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (items, total) = shared.read().orders_list(&filter, page, limit);
    let mut body = list_body(pagination(limit, total, page));
    body.orders = Some(items);
    list_response(StatusCode::OK, &body)
}

async fn customers_list(State(shared): State<AppState>, Query(q): Query<Pairs>) -> Response {
    let (page, limit, filter) = match list_params(&q, false) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (items, total) = shared.read().customers_list(&filter, page, limit);
    let mut body = list_body(pagination(limit, total, page));
    body.customers = Some(items);
    list_response(StatusCode::OK, &body)
}

/// `by` of a single read or edit: `externalId` (default) or `id`.
#[allow(clippy::result_large_err)]
fn by_param(q: &Pairs) -> Result<String, Response> {
    let by = param(q, "by").unwrap_or("externalId");
    if by != "id" && by != "externalId" {
        return Err(input_error(
            "by",
            "The value you selected is not a valid choice.",
        ));
    }
    Ok(by.to_string())
}

/// `{"success":true,"<name>":{...}}` for the entity `get` finds by `key` and `by`, else 404.
fn single_entity(
    q: &Pairs,
    name: &str,
    get: impl FnOnce(&str) -> Option<Box<serde_json::value::RawValue>>,
) -> Response {
    let by = match by_param(q) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match get(&by) {
        Some(entity) => json_response(StatusCode::OK, &json!({"success": true, name: entity})),
        None => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

async fn order_get(
    State(shared): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<Pairs>,
) -> Response {
    single_entity(&q, "order", |by| shared.read().order_by(&key, by))
}

async fn customer_get(
    State(shared): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<Pairs>,
) -> Response {
    single_entity(&q, "customer", |by| shared.read().customer_by(&key, by))
}

/// The history request: `filter[sinceId]`, `filter[startDate]`, `filter[endDate]`, `page`
/// (not with `sinceId`, not above `cap`), `limit`.
#[allow(clippy::result_large_err)]
fn history_params(q: &Pairs, cap: u32) -> Result<HistQuery, Response> {
    let since = match param(q, "filter[sinceId]") {
        None => None,
        Some(s) => match s.trim().parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => return Err(input_error("filter[sinceId]", "This value is not valid.")),
        },
    };
    if since.is_some() && param(q, "page").is_some() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "The \"page\" parameter cannot be used together with \"filter[sinceId]\". Use only \"filter[sinceId]\" to iterate over the history.",
        ));
    }
    let (page, limit) = paging(q)?;
    if cap > 0 && page > cap {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Use the shift of the filter[sinceId] instead of page parameter",
        ));
    }
    let date = |name: &str, end: bool| {
        param(q, name)
            .map(|v| parse_bound(name, v, end))
            .transpose()
            .map_err(filter_error)
    };
    Ok(HistQuery {
        since_id: since,
        start: date("filter[startDate]", false)?,
        end: date("filter[endDate]", true)?,
        page,
        limit,
    })
}

fn generated_at(st: &MockState) -> String {
    fmt_time(real_now(st.clock.tz))
}

async fn orders_history(State(shared): State<AppState>, Query(q): Query<Pairs>) -> Response {
    let st = shared.read();
    let hq = match history_params(&q, st.history_page_cap) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (items, total) = st.order_history_page(&hq);
    let mut body = list_body(pagination(hq.limit, total as usize, hq.page));
    body.generated_at = Some(generated_at(&st));
    drop(st);
    body.history = Some(items);
    list_response(StatusCode::OK, &body)
}

async fn customers_history(State(shared): State<AppState>, Query(q): Query<Pairs>) -> Response {
    let st = shared.read();
    let hq = match history_params(&q, st.history_page_cap) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (items, total) = st.customer_history_page(&hq);
    let mut body = list_body(pagination(hq.limit, total as usize, hq.page));
    body.generated_at = Some(generated_at(&st));
    drop(st);
    body.history = Some(items);
    list_response(StatusCode::OK, &body)
}

// ---------------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------------

#[allow(clippy::result_large_err)]
fn entity_field(form: &Pairs, name: &str) -> Result<Value, Response> {
    let raw = param(form, name).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("Parameter '{name}' is missing"),
        )
    })?;
    serde_json::from_str::<Value>(raw).map_err(|_| {
        error_with(
            StatusCode::BAD_REQUEST,
            "Errors in the entity format",
            json!({ name: "Invalid JSON" }),
        )
    })
}

fn write_error(e: WriteError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    if e.errors.is_empty() {
        error(status, &e.message)
    } else {
        error_with(status, &e.message, json!(e.errors))
    }
}

async fn orders_create(State(shared): State<AppState>, Form(form): Form<Pairs>) -> Response {
    let order = match entity_field(&form, "order") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut st = shared.write();
    let result = st.api_create_order(&order);
    order_written(&st, StatusCode::CREATED, result)
}

/// The answer to an order write: the id and the order as stored, or the write's error.
fn order_written(st: &MockState, status: StatusCode, result: Result<i64, WriteError>) -> Response {
    match result {
        Ok(id) => {
            let rendered = st.orders.get(&id).map(|o| st.render_order(o));
            json_response(
                status,
                &json!({"success": true, "id": id, "order": rendered}),
            )
        }
        Err(e) => write_error(e),
    }
}

async fn orders_edit(
    State(shared): State<AppState>,
    Path(key): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let (order, by) = match edit_fields(&form, "order") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut st = shared.write();
    let result = st.api_edit_order(&key, &by, &order);
    order_written(&st, StatusCode::OK, result)
}

/// The entity JSON and the `by` parameter (`externalId` by default, as RetailCRM) of an edit.
#[allow(clippy::result_large_err)] // the error is the finished HTTP answer, built once
fn edit_fields(form: &Pairs, entity: &str) -> Result<(Value, String), Response> {
    let value = entity_field(form, entity)?;
    Ok((value, by_param(form)?))
}

async fn customers_create(State(shared): State<AppState>, Form(form): Form<Pairs>) -> Response {
    let customer = match entity_field(&form, "customer") {
        Ok(v) => v,
        Err(r) => return r,
    };
    match shared.write().api_create_customer(&customer) {
        Ok(id) => json_response(StatusCode::CREATED, &json!({"success": true, "id": id})),
        Err(e) => write_error(e),
    }
}

async fn customers_edit(
    State(shared): State<AppState>,
    Path(key): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let (customer, by) = match edit_fields(&form, "customer") {
        Ok(v) => v,
        Err(r) => return r,
    };
    match shared.write().api_edit_customer(&key, &by, &customer) {
        Ok(id) => json_response(StatusCode::OK, &json!({"success": true, "id": id})),
        Err(e) => write_error(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Admin
// ---------------------------------------------------------------------------------------------

async fn admin_stats(State(shared): State<AppState>) -> Response {
    let stats = shared.stats();
    let (latest_order_history, latest_customer_history) = shared.read().latest_history_ids();
    let counts = shared.read().counts();
    json_response(
        StatusCode::OK,
        &json!({"stats": stats, "counts": counts, "latestOrderHistoryId": latest_order_history, "latestCustomerHistoryId": latest_customer_history}),
    )
}

async fn admin_mutate(State(shared): State<AppState>, Query(q): Query<Pairs>) -> Response {
    let n = param(&q, "n")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(10);
    let seed = param(&q, "seed")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1);
    let report = shared.write().mutate_random(n, seed);
    json_response(StatusCode::OK, &json!(report))
}

/// `POST /admin/faults?rate_limit=&fail_rate=&truncate_rate=&slow_ms=&churn_per_list=`: replaces the fault
/// settings (absent parameters mean "off").
async fn admin_faults(State(shared): State<AppState>, Query(q): Query<Pairs>) -> Response {
    let num = |name: &str| param(&q, name).and_then(|s| s.parse::<f64>().ok());
    let faults = FaultConfig {
        rate_limit: num("rate_limit").filter(|r| *r > 0.0),
        fail_rate: num("fail_rate").unwrap_or(0.0).clamp(0.0, 1.0),
        truncate_rate: num("truncate_rate").unwrap_or(0.0).clamp(0.0, 1.0),
        slow_ms: param(&q, "slow_ms")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        churn_per_list: param(&q, "churn_per_list")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    };
    shared.set_faults(faults.clone());
    json_response(
        StatusCode::OK,
        &json!({"rateLimit": faults.rate_limit, "failRate": faults.fail_rate,
                "truncateRate": faults.truncate_rate, "slowMs": faults.slow_ms}),
    )
}

/// `POST /admin/account?exists=false`: answer like a host without this account.
async fn admin_account(State(shared): State<AppState>, Query(q): Query<Pairs>) -> Response {
    let exists = param(&q, "exists") != Some("false");
    shared.account_exists.store(exists, Ordering::Relaxed);
    json_response(StatusCode::OK, &json!({"exists": exists}))
}

async fn admin_revoke(State(shared): State<AppState>) -> Response {
    shared.revoked.store(true, Ordering::Relaxed);
    json_response(StatusCode::OK, &json!({"revoked": true}))
}

async fn admin_restore(State(shared): State<AppState>) -> Response {
    shared.revoked.store(false, Ordering::Relaxed);
    json_response(StatusCode::OK, &json!({"revoked": false}))
}

async fn admin_order_status(
    State(shared): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<Pairs>,
) -> Response {
    let Some(status) = param(&q, "status") else {
        return error(StatusCode::BAD_REQUEST, "status is required");
    };
    let changed = shared.write().set_order_status(id, status, "user");
    json_response(StatusCode::OK, &json!({"changed": changed}))
}

async fn admin_order_delete(State(shared): State<AppState>, Path(id): Path<i64>) -> Response {
    let deleted = shared.write().delete_order(id, "user");
    json_response(StatusCode::OK, &json!({"deleted": deleted}))
}

/// `POST /admin/customers/{id}/merge?into=N`: merges customer `id` into `N` (`source: combine`).
async fn admin_customer_merge(
    State(shared): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<Pairs>,
) -> Response {
    let Some(into) = param(&q, "into").and_then(|s| s.parse::<i64>().ok()) else {
        return error(StatusCode::BAD_REQUEST, "into is required");
    };
    let merged = shared.write().merge_customer(id, into, "combine");
    json_response(StatusCode::OK, &json!({"merged": merged}))
}

/// The body of `POST /admin/webhook`: `{"url": "..."}` sets, `{"url": null}` (or `""`) clears.
#[derive(Debug, Deserialize)]
struct WebhookBody {
    #[serde(default)]
    url: Option<String>,
}

fn webhook_answer(shared: &Shared) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"url": shared.webhooks.url(), "sent": shared.webhooks.sent(),
                "failed": shared.webhooks.failed(), "pending": shared.webhooks.pending()}),
    )
}

/// Checks a trigger URL: absolute `http` or `https`.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
        Ok(u) => Err(format!(
            "the trigger URL must be http or https, not {}",
            u.scheme()
        )),
        Err(e) => Err(format!("the trigger URL is not a URL: {e}")),
    }
}

/// `GET /admin/webhook`: the trigger URL and its counters.
async fn admin_webhook_get(State(shared): State<AppState>) -> Response {
    webhook_answer(&shared)
}

/// `POST /admin/webhook` `{"url": "http://...?token=..."}` or `{"url": null}`.
async fn admin_webhook_set(
    State(shared): State<AppState>,
    Json(body): Json<WebhookBody>,
) -> Response {
    let url = body.url.filter(|u| !u.trim().is_empty());
    if let Some(u) = &url
        && let Err(msg) = check_webhook_url(u)
    {
        return error(StatusCode::BAD_REQUEST, &msg);
    }
    shared.webhooks.set_url(url);
    webhook_answer(&shared)
}
