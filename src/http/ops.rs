//! `/healthz`, `/readyz` and `/metrics`: what systemd, a load balancer and Prometheus ask.
//!
//! - `/healthz` is 200 while the process serves HTTP at all (liveness).
//! - `/readyz` is 200 once the daemon is READY *and* Postgres and Redis answer a ping within
//!   2 s; otherwise 503 with the reason (starting and what it waits for, stopping, or which
//!   backend does not answer).
//! - `/metrics` asks the supervisor for `status` (as `ctl status` does), sets the state gauges
//!   from it and encodes every family ([`crate::metrics`]); when the supervisor cannot answer
//!   (starting) the counters are still served.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::api::call;
use super::{HttpShared, Readiness};
use crate::control::protocol::{DaemonStatus, Request};
use crate::metrics::{CONTENT_TYPE, metrics};

/// How long `/readyz` waits for each backend.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`.
pub async fn healthz() -> Response {
    Json(serde_json::json!({ "ok": true, "data": { "alive": true } })).into_response()
}

/// `GET /readyz`.
pub async fn readyz(State(shared): State<Arc<HttpShared>>) -> Response {
    let not_ready = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ok": false, "data": { "ready": false, "reason": reason } })),
        )
            .into_response()
    };
    match shared.readiness() {
        Readiness::Starting(phase) => return not_ready(format!("starting: {phase}")),
        Readiness::Stopping => return not_ready("stopping: draining running jobs".to_string()),
        Readiness::Ready => {}
    }
    let Some((store, queue)) = shared.backends() else {
        return not_ready("starting".to_string());
    };
    let (pg, redis) = tokio::join!(
        tokio::time::timeout(PING_TIMEOUT, store.ping()),
        tokio::time::timeout(PING_TIMEOUT, queue.ping()),
    );
    let mut problems = Vec::new();
    match pg {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("PostgreSQL: {e}")),
        Err(_) => problems.push("PostgreSQL: no answer within 2 s".to_string()),
    }
    match redis {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("Redis: {e}")),
        Err(_) => problems.push("Redis: no answer within 2 s".to_string()),
    }
    if !problems.is_empty() {
        return not_ready(problems.join("; "));
    }
    Json(serde_json::json!({ "ok": true, "data": { "ready": true } })).into_response()
}

/// `GET /metrics`.
pub async fn metrics_page(State(shared): State<Arc<HttpShared>>) -> Response {
    if shared.readiness() == Readiness::Ready {
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            call(&shared, Request::Status { project_id: None }),
        )
        .await;
        if let Ok(resp) = resp
            && let Some(status) = resp
                .data
                .and_then(|d| serde_json::from_value::<DaemonStatus>(d).ok())
        {
            metrics().observe_status(&status, Utc::now());
        }
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics().encode()).into_response()
}
