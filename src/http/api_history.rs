//! The read routes of `/api/v1` that the monitoring page ([`super::ui`]) needs beyond the
//! control socket's commands, and the rule that lets its read views in without the token.
//!
//! - `GET /api/v1/overview?q=&state=&offset=&limit=`: one compact row per project (state,
//!   health, freshness judged against the project's own sync interval, the current error,
//!   progress, queue counts), sorted worst first, filtered and paged on the server, so a daemon
//!   with 1,000 projects sends the page a hundred rows (about 25 KB) per refresh instead of the
//!   whole status (about 350 KB). The status behind it is taken at most once a second for any
//!   number of open pages (one in flight, the others wait for its answer).
//! - `GET /api/v1/projects/{id}/runs?limit=50`: the newest `sync_runs` rows.
//! - `GET /api/v1/projects/{id}/dead_records?limit=50`: the newest poison records with their
//!   raw JSON, and how many there are.
//!
//! [`read_or_token`] guards every `/api/v1` route: it lets a GET of [`ANONYMOUS_READS`] through
//! without the token only when `http.ui_anonymous_read` is on, the listener is bound to a
//! loopback address, and the request is addressed to a loopback name (`Host`, and `Origin`
//! when sent) without proxy headers, which shuts out DNS rebinding and a reverse proxy that
//! forwards `/` by mistake. Everything else, every action included, goes through
//! [`api::require_token`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{HttpShared, api};
use crate::control::protocol::{DaemonStatus, ErrorCode, LastError, ProjectState, Response};
use crate::store::{Store, StoreError};

/// `/api/v1` routes (as routed, below the prefix) that a GET may read without the token when
/// [`anonymous_allowed`] says so: the monitoring page's read views.
pub const ANONYMOUS_READS: &[&str] = &[
    "/overview",
    "/projects",
    "/projects/{project_id}",
    "/projects/{project_id}/jobs",
    "/projects/{project_id}/runs",
    "/projects/{project_id}/dead_records",
];

/// How long one status snapshot serves the overview.
const SNAPSHOT_TTL: Duration = Duration::from_secs(1);
/// Interval assumed for a project whose integration row could not be read.
const DEFAULT_INTERVAL_MIN: i32 = 60;

/// Marks a request let in without the token.
#[derive(Debug, Clone, Copy)]
pub struct Anonymous;

#[derive(Clone)]
struct HistoryState {
    shared: Arc<HttpShared>,
    snapshot: Arc<tokio::sync::Mutex<Option<Snapshot>>>,
}

struct Snapshot {
    taken: Instant,
    status: Arc<DaemonStatus>,
    intervals: Arc<HashMap<i64, i32>>,
}

/// The routes of this module, to merge below `/api/v1` before its auth layer.
pub fn routes(shared: Arc<HttpShared>) -> Router<Arc<HttpShared>> {
    let state = HistoryState {
        shared,
        snapshot: Arc::default(),
    };
    Router::new()
        .route("/overview", get(overview))
        .route("/projects/{project_id}/runs", get(runs))
        .route("/projects/{project_id}/dead_records", get(dead_records))
        .with_state(state)
}

/// Middleware of `/api/v1`: anonymous reads of the page's views when allowed, else the token.
pub async fn read_or_token(
    State(shared): State<Arc<HttpShared>>,
    mut req: Request,
    next: Next,
) -> HttpResponse {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let listed = req.extensions().get::<MatchedPath>().is_some_and(|m| {
        let path = m.as_str();
        ANONYMOUS_READS.contains(&path.strip_prefix("/api/v1").unwrap_or(path))
    });
    // A request that brings a token is judged by it (a wrong one is refused, so the page
    // learns at once that its stored token is wrong).
    let tokenless = !req.headers().contains_key(header::AUTHORIZATION);
    if read && listed && tokenless && anonymous_allowed(&shared, req.headers()) {
        req.extensions_mut().insert(Anonymous);
        return next.run(req).await;
    }
    api::require_token(State(shared), req, next).await
}

/// Whether a tokenless read is allowed: `http.ui_anonymous_read`, a loopback listener and a
/// request addressed to a loopback name, not forwarded by a proxy.
pub fn anonymous_allowed(shared: &HttpShared, headers: &HeaderMap) -> bool {
    shared.ui_anonymous_read()
        && shared.bound_addr().is_some_and(|a| a.ip().is_loopback())
        && local_request(headers)
}

/// True when the request names a loopback host (`Host`, and `Origin` when present) and
/// carries no proxy header.
pub fn local_request(headers: &HeaderMap) -> bool {
    const PROXY_HEADERS: &[&str] = &[
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-real-ip",
    ];
    if PROXY_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return false;
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(host) = text(header::HOST) else {
        return false;
    };
    if !loopback_host(host) {
        return false;
    }
    match text(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| loopback_host(rest.split('/').next().unwrap_or(""))),
    }
}

/// `localhost`, `*.localhost`, `127.x.x.x` or `[::1]`, with or without a port.
pub fn loopback_host(host_port: &str) -> bool {
    let h = host_port.trim();
    let host = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inner, _)) => inner,
            None => return false,
        }
    } else {
        match h.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            Some(_) => return false,
            None => h,
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How a project is doing, worst first (the overview's sort order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// The project's actor could not start or keeps failing.
    Failed,
    /// Jobs in the dead-letter list, waiting for a retry by hand.
    Dead,
    /// The newest error is permanent (bad key, missing scope) and came after the last success.
    Error,
    /// Never synced, or the last success is older than three sync intervals.
    Stale,
    /// The newest error is transient and came after the last success; a retry is due.
    Retrying,
    /// The last success is older than one and a half sync intervals.
    Late,
    /// Paused by an operator.
    Paused,
    /// Running a job.
    Running,
    /// Being started.
    Starting,
    /// Nothing to look at.
    Ok,
}

impl Health {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Failed => "failed",
            Health::Dead => "dead",
            Health::Error => "error",
            Health::Stale => "stale",
            Health::Retrying => "retrying",
            Health::Late => "late",
            Health::Paused => "paused",
            Health::Running => "running",
            Health::Starting => "starting",
            Health::Ok => "ok",
        }
    }

    /// Whether the overview's "problems" filter shows it.
    pub fn is_problem(self) -> bool {
        self <= Health::Late
    }

    const ALL: [Health; 10] = [
        Health::Failed,
        Health::Dead,
        Health::Error,
        Health::Stale,
        Health::Retrying,
        Health::Late,
        Health::Paused,
        Health::Running,
        Health::Starting,
        Health::Ok,
    ];
}

/// Freshness of a project's data against its sync interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// Within 1.5 intervals.
    Ok,
    /// Within 3 intervals.
    Late,
    /// Older.
    Stale,
    /// Never synced.
    Never,
}

/// The running job of an overview row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobLine {
    /// Job kind.
    pub kind: String,
    /// When this attempt started.
    pub started_at: DateTime<Utc>,
    /// Records done.
    pub done: u64,
    /// Records expected, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Phase name.
    pub phase: String,
    /// Stream being synced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// One project of the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverviewRow {
    /// Project id.
    pub id: i64,
    /// Project name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The actor's state.
    pub state: ProjectState,
    /// The judgement the overview sorts by.
    pub health: Health,
    /// Freshness class.
    pub fresh: Freshness,
    /// Every change before this moment is in Postgres (else the last success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh_as_of: Option<DateTime<Utc>>,
    /// Seconds since `fresh_as_of`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_secs: Option<i64>,
    /// When a job last succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last error, only when it came after the last success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<LastError>,
    /// The running job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobLine>,
    /// Jobs waiting.
    pub queue: u64,
    /// Jobs waiting for a retry time.
    pub delayed: u64,
    /// Dead jobs.
    pub dead: u64,
    /// History records beyond the cursors, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// The project's `sync_interval_minutes`.
    pub interval_min: i32,
}

/// The overview rows of `status`, unsorted; `intervals` maps project id to its
/// `sync_interval_minutes` (`DEFAULT_INTERVAL_MIN` when missing).
pub fn overview_rows(
    status: &DaemonStatus,
    intervals: &HashMap<i64, i32>,
    now: DateTime<Utc>,
) -> Vec<OverviewRow> {
    status
        .projects
        .iter()
        .map(|p| {
            let interval_min = intervals
                .get(&p.project_id)
                .copied()
                .unwrap_or(DEFAULT_INTERVAL_MIN)
                .max(1);
            let fresh_as_of = p.fresh_as_of.or(p.last_success_at);
            let age_secs = fresh_as_of.map(|t| (now - t).num_seconds().max(0));
            let interval_secs = i64::from(interval_min) * 60;
            let fresh = match age_secs {
                None => Freshness::Never,
                Some(a) if a * 2 <= interval_secs * 3 => Freshness::Ok,
                Some(a) if a <= interval_secs * 3 => Freshness::Late,
                Some(_) => Freshness::Stale,
            };
            let error = p
                .last_error
                .clone()
                .filter(|e| p.last_success_at.is_none_or(|s| e.at > s));
            let running = p.state == ProjectState::Running;
            let health = if p.state == ProjectState::Failed {
                Health::Failed
            } else if p.dead_jobs > 0 {
                Health::Dead
            } else if error.as_ref().is_some_and(|e| e.permanent) {
                Health::Error
            } else if !running && matches!(fresh, Freshness::Stale | Freshness::Never) {
                Health::Stale
            } else if error.is_some() {
                Health::Retrying
            } else if !running && fresh == Freshness::Late {
                Health::Late
            } else {
                match p.state {
                    ProjectState::Paused => Health::Paused,
                    ProjectState::Running => Health::Running,
                    ProjectState::Starting => Health::Starting,
                    _ => Health::Ok,
                }
            };
            OverviewRow {
                id: p.project_id,
                name: p.name.clone(),
                state: p.state,
                health,
                fresh,
                fresh_as_of,
                age_secs,
                last_success_at: p.last_success_at,
                error,
                job: p.running_job.as_ref().map(|j| JobLine {
                    kind: j.kind.clone(),
                    started_at: j.started_at,
                    done: j.progress.done,
                    total: j.progress.total,
                    phase: j.progress.phase.clone(),
                    stream: j.progress.stream.clone(),
                }),
                queue: p.queue_depth,
                delayed: p.delayed,
                dead: p.dead_jobs,
                lag: p.cursor_lag,
                interval_min,
            }
        })
        .collect()
}

/// Sorts worst first: by health, then the oldest data, then the id.
pub fn sort_worst_first(rows: &mut [OverviewRow]) {
    rows.sort_by_key(|r| (r.health, Reverse(r.age_secs.unwrap_or(i64::MAX)), r.id));
}

/// Whether `row` passes the text filter `q` (lower-cased) and the `state` filter.
pub fn row_matches(row: &OverviewRow, q: &str, state: &str) -> bool {
    let state_ok = match state {
        "" | "all" => true,
        "problems" => row.health.is_problem(),
        s => row.health.as_str() == s || row.state.as_str() == s,
    };
    if !state_ok {
        return false;
    }
    if q.is_empty() {
        return true;
    }
    let hay = format!(
        "{} {} {} {}",
        row.id,
        row.name.as_deref().unwrap_or(""),
        row.state.as_str(),
        row.health.as_str()
    )
    .to_lowercase();
    hay.contains(q)
}

/// Query of `GET /api/v1/overview`.
#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    /// Text filter: a substring of the id, name, state or health (any case).
    #[serde(default)]
    q: String,
    /// `all` (default), `problems`, or a health or state name.
    #[serde(default)]
    state: String,
    /// Rows to skip.
    #[serde(default)]
    offset: usize,
    /// Rows to return (1..=500, default 100).
    limit: Option<usize>,
}

/// Query with a `limit` (runs, dead records).
#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<i64>,
}

fn bad_query(e: &QueryRejection) -> HttpResponse {
    api::error_response(StatusCode::BAD_REQUEST, ErrorCode::Invalid, e.body_text())
}

fn store_error(e: &StoreError) -> HttpResponse {
    let (status, code) = if e.is_unavailable() {
        (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
    };
    api::error_response(status, code, e.to_string())
}

fn store_of(shared: &HttpShared) -> Option<Store> {
    shared.backends().map(|(s, _)| s.clone())
}

fn not_connected() -> HttpResponse {
    api::error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "the daemon is starting: Postgres is not connected yet; retry in a moment".to_string(),
    )
}

impl HistoryState {
    /// The status and intervals, at most [`SNAPSHOT_TTL`] old.
    async fn snapshot(&self) -> Result<(Arc<DaemonStatus>, Arc<HashMap<i64, i32>>), Response> {
        let mut slot = self.snapshot.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| s.taken.elapsed() < SNAPSHOT_TTL) {
            return Ok((s.status.clone(), s.intervals.clone()));
        }
        let resp = api::call(
            &self.shared,
            crate::control::protocol::Request::Status { project_id: None },
        )
        .await;
        if !resp.ok {
            return Err(resp);
        }
        let status: DaemonStatus = resp
            .data
            .and_then(|d| serde_json::from_value(d).ok())
            .ok_or_else(|| Response::error(ErrorCode::Internal, "status has an unknown shape"))?;
        let mut intervals = HashMap::new();
        if let Some((store, _)) = self.shared.backends() {
            match store.active_sync_intervals().await {
                Ok(list) => intervals.extend(list),
                Err(e) => tracing::debug!(error = %e, "overview: sync intervals unavailable"),
            }
        }
        let snap = Snapshot {
            taken: Instant::now(),
            status: Arc::new(status),
            intervals: Arc::new(intervals),
        };
        let out = (snap.status.clone(), snap.intervals.clone());
        *slot = Some(snap);
        Ok(out)
    }
}

/// `GET /api/v1/overview`.
async fn overview(
    State(st): State<HistoryState>,
    anonymous: Option<Extension<Anonymous>>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> HttpResponse {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(&e),
    };
    let (status, intervals) = match st.snapshot().await {
        Ok(s) => s,
        Err(resp) => {
            let code = resp.error.as_ref().map_or(ErrorCode::Internal, |e| e.code);
            return (api::http_status(code), Json(resp)).into_response();
        }
    };
    let now = Utc::now();
    let mut rows = overview_rows(&status, &intervals, now);
    sort_worst_first(&mut rows);
    let mut counts: BTreeMap<&str, usize> = Health::ALL.iter().map(|h| (h.as_str(), 0)).collect();
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = 0;
    for r in &rows {
        *counts.entry(r.health.as_str()).or_default() += 1;
        *states.entry(r.state.as_str()).or_default() += 1;
        problems += usize::from(r.health.is_problem());
    }
    let total = rows.len();
    let needle = q.q.trim().to_lowercase();
    let state = q.state.trim().to_lowercase();
    let matched: Vec<OverviewRow> = rows
        .into_iter()
        .filter(|r| row_matches(r, &needle, &state))
        .collect();
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let page: Vec<&OverviewRow> = matched.iter().skip(q.offset).take(limit).collect();
    let data = json!({
        "now": now,
        "access": if anonymous.is_some() { "anonymous" } else { "token" },
        "daemon": {
            "version": status.version,
            "started_at": status.started_at,
            "warnings": status.warnings,
            "config_error": status.config_error,
            "restart_required": status.restart_required,
        },
        "total": total,
        "problems": problems,
        "counts": counts,
        "states": states,
        "matched": matched.len(),
        "offset": q.offset,
        "limit": limit,
        "projects": page,
    });
    (StatusCode::OK, Json(Response::ok(data))).into_response()
}

/// `GET /api/v1/projects/{id}/runs`.
async fn runs(
    State(st): State<HistoryState>,
    Path(project_id): Path<i64>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> HttpResponse {
    let limit = match query {
        Ok(Query(q)) => q.limit.unwrap_or(50).clamp(1, 500),
        Err(e) => return bad_query(&e),
    };
    let Some(store) = store_of(&st.shared) else {
        return not_connected();
    };
    match store.recent_runs(project_id, limit).await {
        Ok(runs) => Json(Response::ok(json!({
            "project_id": project_id,
            "runs": runs,
        })))
        .into_response(),
        Err(e) => store_error(&e),
    }
}

/// `GET /api/v1/projects/{id}/dead_records`.
async fn dead_records(
    State(st): State<HistoryState>,
    Path(project_id): Path<i64>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> HttpResponse {
    let limit = match query {
        Ok(Query(q)) => q.limit.unwrap_or(50).clamp(1, 500),
        Err(e) => return bad_query(&e),
    };
    let Some(store) = store_of(&st.shared) else {
        return not_connected();
    };
    let (records, total) = tokio::join!(
        store.dead_records(project_id, limit),
        store.dead_record_count(project_id)
    );
    match (records, total) {
        (Ok(records), Ok(total)) => Json(Response::ok(json!({
            "project_id": project_id,
            "total": total,
            "records": records,
        })))
        .into_response(),
        (Err(e), _) | (_, Err(e)) => store_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{Progress, ProjectStatus, RunningJob};
    use axum::http::HeaderValue;

    /// A project as the wire has it, every optional field at its default (built from JSON so
    /// fields added to the status later need no change here).
    fn project(id: i64) -> ProjectStatus {
        serde_json::from_value(json!({
            "project_id": id,
            "name": format!("shop {id}"),
            "state": "idle",
        }))
        .expect("a minimal project status")
    }

    fn status(projects: Vec<ProjectStatus>) -> DaemonStatus {
        DaemonStatus {
            version: "0".into(),
            pid: 1,
            started_at: Utc::now(),
            config_path: "x".into(),
            config_error: None,
            restart_required: vec![],
            warnings: vec![],
            http_listen: None,
            projects,
        }
    }

    #[test]
    fn loopback_hosts_only() {
        for ok in [
            "localhost",
            "localhost:9860",
            "LOCALHOST.:80",
            "ui.localhost:1",
            "127.0.0.1:9860",
            "127.1.2.3",
            "[::1]:9860",
            "[::1]",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9860",
            "localhost.evil.example",
            "10.0.0.1:9860",
            "[::2]:1",
            "[::1",
            "localhost:port",
            "",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn proxied_or_foreign_requests_are_not_local() {
        let mut h = HeaderMap::new();
        assert!(!local_request(&h), "no Host");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9860"));
        assert!(local_request(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://localhost:9860"),
        );
        assert!(local_request(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!local_request(&h), "foreign origin");
        h.remove(header::ORIGIN);
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert!(!local_request(&h), "through a proxy");
        h.remove("x-forwarded-for");
        h.insert(
            header::HOST,
            HeaderValue::from_static("rebound.example:9860"),
        );
        assert!(!local_request(&h), "DNS rebinding");
    }

    #[test]
    fn worst_first_and_freshness_by_interval() {
        let now = Utc::now();
        let ago = |m: i64| Some(now - chrono::Duration::minutes(m));
        let mut ok = project(1);
        ok.last_success_at = ago(5);
        let mut late = project(2);
        late.last_success_at = ago(100);
        let mut stale = project(3);
        stale.last_success_at = ago(200);
        let never = project(4);
        let mut dead = project(5);
        dead.last_success_at = ago(1);
        dead.dead_jobs = 2;
        let mut failed = project(6);
        failed.state = ProjectState::Failed;
        let mut permanent = project(7);
        permanent.last_success_at = ago(30);
        permanent.last_error = Some(LastError {
            at: now,
            message: "key refused".into(),
            permanent: true,
        });
        let mut healed = project(8);
        healed.last_success_at = ago(1);
        healed.last_error = Some(LastError {
            at: now - chrono::Duration::minutes(10),
            message: "timeout".into(),
            permanent: false,
        });
        let mut running = project(9);
        running.state = ProjectState::Running;
        running.running_job = Some(RunningJob {
            job_id: "j".into(),
            kind: "sync_all".into(),
            started_at: now,
            progress: Progress {
                stream: Some("orders".into()),
                done: 10,
                total: Some(100),
                phase: "fetching".into(),
            },
        });
        let mut paused = project(10);
        paused.state = ProjectState::Paused;
        paused.last_success_at = ago(1);
        let s = status(vec![
            ok, late, stale, never, dead, failed, permanent, healed, running, paused,
        ]);
        let intervals = HashMap::from([(1, 60), (2, 60), (3, 60)]);
        let mut rows = overview_rows(&s, &intervals, now);
        let by_id = |rows: &[OverviewRow], id: i64| rows.iter().find(|r| r.id == id).cloned();
        assert_eq!(by_id(&rows, 1).unwrap().fresh, Freshness::Ok);
        assert_eq!(by_id(&rows, 2).unwrap().fresh, Freshness::Late);
        assert_eq!(by_id(&rows, 3).unwrap().fresh, Freshness::Stale);
        assert_eq!(by_id(&rows, 4).unwrap().fresh, Freshness::Never);
        assert!(
            by_id(&rows, 8).unwrap().error.is_none(),
            "an error before the last success is history"
        );
        assert_eq!(by_id(&rows, 9).unwrap().job.unwrap().done, 10);
        sort_worst_first(&mut rows);
        let order: Vec<(i64, Health)> = rows.iter().map(|r| (r.id, r.health)).collect();
        assert_eq!(
            order,
            vec![
                (6, Health::Failed),
                (5, Health::Dead),
                (7, Health::Error),
                (4, Health::Stale),
                (3, Health::Stale),
                (2, Health::Late),
                (10, Health::Paused),
                (9, Health::Running),
                (1, Health::Ok),
                (8, Health::Ok),
            ]
        );
        let problems: Vec<i64> = rows
            .iter()
            .filter(|r| row_matches(r, "", "problems"))
            .map(|r| r.id)
            .collect();
        assert_eq!(problems, vec![6, 5, 7, 4, 3, 2]);
        assert!(row_matches(&rows[0], "shop 6", ""));
        assert!(!row_matches(&rows[0], "shop 7", ""));
        assert!(row_matches(&rows[0], "failed", "failed"));
    }

    #[test]
    fn rows_are_compact() {
        let s = status((1..=1000).map(project).collect());
        let rows = overview_rows(&s, &HashMap::new(), Utc::now());
        let page = serde_json::to_vec(&rows[..100]).unwrap();
        assert!(
            page.len() < 20_000,
            "{} bytes for 100 idle rows",
            page.len()
        );
    }
}
