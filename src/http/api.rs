//! `/api/v1/...`: the control socket's commands over HTTP for the loyalty platform, behind
//! `Authorization: Bearer <token>` (the token is the content of `http.api_token_file`; without
//! one the API answers 503 and says how to turn it on).
//!
//! Each route builds the socket's [`Request`] and sends it, as a [`ControlCall`], down the
//! socket's own channel to the supervisor's command handler; the answer is the socket's
//! [`Response`] envelope (`{"ok": true, "data": ...}` or `{"ok": false, "error": {"code",
//! "message"}}`) with an HTTP status that matches the error code. `openapi.json` (served at
//! `/api/v1/openapi.json`) documents every route; a test calls each one.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request as HttpRequest, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response as HttpResponse};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use super::HttpShared;
use crate::control::protocol::{ErrorCode, Request, Response};
use crate::control::server::{ControlCall, PeerInfo};

/// How long an API call waits for the supervisor.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The OpenAPI 3 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The HTTP status of a socket error code.
pub fn http_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadJson | ErrorCode::Invalid | ErrorCode::LineTooLong => StatusCode::BAD_REQUEST,
        ErrorCode::UnknownCommand | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Busy => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error in the socket's envelope.
pub fn error_response(status: StatusCode, code: ErrorCode, message: String) -> HttpResponse {
    (status, Json(Response::error(code, message))).into_response()
}

fn answer(resp: Response, ok_status: StatusCode) -> HttpResponse {
    let status = match &resp.error {
        Some(e) => http_status(e.code),
        None => ok_status,
    };
    (status, Json(resp)).into_response()
}

/// Sends one command to the supervisor and waits for its answer.
pub(super) async fn call(shared: &HttpShared, request: Request) -> Response {
    let (reply, rx) = oneshot::channel();
    let call = ControlCall {
        request,
        // The API's callers are authenticated by the bearer token, not by a uid.
        peer: PeerInfo::UNKNOWN,
        reply,
    };
    if shared.ctl.send(call).await.is_err() {
        return Response::error(ErrorCode::Unavailable, "the daemon is stopping");
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => Response::error(
            ErrorCode::Internal,
            "the daemon dropped the request; see its log",
        ),
        Err(_) => Response::error(
            ErrorCode::Unavailable,
            "the daemon did not answer within 30 s; retry, or see its log",
        ),
    }
}

/// Middleware: the bearer token.
pub async fn require_token(
    State(shared): State<Arc<HttpShared>>,
    req: HttpRequest,
    next: Next,
) -> HttpResponse {
    let Some(token) = shared.api_token() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the JSON API is off: set http.api_token_file to a file holding a token \
             (e.g. `openssl rand -hex 32`) and reload"
                .to_string(),
        );
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim();
    let ok: bool = given.as_bytes().ct_eq(token.as_bytes()).into();
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(Response::error(
                ErrorCode::Unauthorized,
                "missing or wrong bearer token; send `Authorization: Bearer <the content of http.api_token_file>`",
            )),
        )
            .into_response();
    }
    next.run(req).await
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> HttpResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /api/v1/projects`: the whole `ctl status --json`.
pub async fn projects(State(shared): State<Arc<HttpShared>>) -> HttpResponse {
    answer(
        call(&shared, Request::Status { project_id: None }).await,
        StatusCode::OK,
    )
}

/// `GET /api/v1/projects/{id}`: one project's entry of `ctl status --json`.
pub async fn project(
    State(shared): State<Arc<HttpShared>>,
    Path(project_id): Path<i64>,
) -> HttpResponse {
    let resp = call(
        &shared,
        Request::Status {
            project_id: Some(project_id),
        },
    )
    .await;
    let resp = match resp.data.as_ref() {
        Some(data) if resp.ok => match data.get("projects").and_then(|p| p.get(0)) {
            Some(p) => Response::ok(p),
            None => Response::error(
                ErrorCode::NotFound,
                format!("no active project {project_id}"),
            ),
        },
        _ => resp,
    };
    answer(resp, StatusCode::OK)
}

/// Body of `POST /api/v1/projects/{id}/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJobBody {
    kind: String,
    #[serde(default)]
    entity_id: Option<i64>,
    #[serde(default)]
    since_id: Option<i64>,
}

/// `POST /api/v1/projects/{id}/jobs`: `ctl trigger`.
pub async fn create_job(
    State(shared): State<Arc<HttpShared>>,
    Path(project_id): Path<i64>,
    body: Result<Json<NewJobBody>, JsonRejection>,
) -> HttpResponse {
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::Invalid,
                format!(
                    "{}; send JSON such as {{\"kind\": \"sync_all\"}}",
                    e.body_text()
                ),
            );
        }
    };
    answer(
        call(
            &shared,
            Request::Trigger {
                project_id,
                kind: body.kind,
                entity_id: body.entity_id,
                since_id: body.since_id,
            },
        )
        .await,
        StatusCode::ACCEPTED,
    )
}

/// Query of `GET /api/v1/projects/{id}/jobs`.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/projects/{id}/jobs`: running, waiting, delayed, recent and dead jobs.
pub async fn list_jobs(
    State(shared): State<Arc<HttpShared>>,
    Path(project_id): Path<i64>,
    Query(q): Query<JobsQuery>,
) -> HttpResponse {
    let limit = q.limit.map(|l| l.clamp(1, 1000));
    let jobs = call(&shared, Request::Jobs { project_id, limit }).await;
    if !jobs.ok {
        return answer(jobs, StatusCode::OK);
    }
    let dead = call(&shared, Request::Dead { project_id, limit }).await;
    if !dead.ok {
        return answer(dead, StatusCode::OK);
    }
    let mut data = jobs.data.unwrap_or_default();
    let dead_jobs = dead
        .data
        .and_then(|d| d.get("jobs").cloned())
        .and_then(|j| j.as_array().cloned())
        .unwrap_or_default();
    if let Some(list) = data.get_mut("jobs").and_then(|j| j.as_array_mut()) {
        list.extend(dead_jobs);
    }
    answer(Response::ok(data), StatusCode::OK)
}

/// `POST /api/v1/projects/{id}/jobs/{job_id}/retry`: `ctl retry`.
pub async fn retry_job(
    State(shared): State<Arc<HttpShared>>,
    Path((project_id, job_id)): Path<(i64, String)>,
) -> HttpResponse {
    answer(
        call(&shared, Request::Retry { project_id, job_id }).await,
        StatusCode::OK,
    )
}

/// `POST /api/v1/projects/{id}/pause`.
pub async fn pause(
    State(shared): State<Arc<HttpShared>>,
    Path(project_id): Path<i64>,
) -> HttpResponse {
    answer(
        call(&shared, Request::Pause { project_id }).await,
        StatusCode::OK,
    )
}

/// `POST /api/v1/projects/{id}/resume`.
pub async fn resume(
    State(shared): State<Arc<HttpShared>>,
    Path(project_id): Path<i64>,
) -> HttpResponse {
    answer(
        call(&shared, Request::Resume { project_id }).await,
        StatusCode::OK,
    )
}

/// Query of `GET /api/v1/projects/{id}/outbox`.
#[derive(Debug, Deserialize)]
pub struct OutboxQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/projects/{id}/outbox`: `ctl outbox` (counts; failed, conflicted, pending rows).
pub async fn outbox(
    State(shared): State<Arc<HttpShared>>,
    Path(project_id): Path<i64>,
    Query(q): Query<OutboxQuery>,
) -> HttpResponse {
    answer(
        call(
            &shared,
            Request::Outbox {
                project_id,
                limit: q.limit,
            },
        )
        .await,
        StatusCode::OK,
    )
}

/// Body of `POST /api/v1/projects/{id}/outbox/retry`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxRetryBody {
    #[serde(default)]
    ids: Option<Vec<i64>>,
}

/// `POST /api/v1/projects/{id}/outbox/retry`: `ctl outbox-retry` (body `{"ids": [..]}` or none).
pub async fn outbox_retry(
    State(shared): State<Arc<HttpShared>>,
    Path(project_id): Path<i64>,
    body: Option<Json<OutboxRetryBody>>,
) -> HttpResponse {
    let ids = body.and_then(|Json(b)| b.ids);
    answer(
        call(&shared, Request::OutboxRetry { project_id, ids }).await,
        StatusCode::OK,
    )
}

/// `POST /api/v1/reload`: `ctl reload`.
pub async fn reload(State(shared): State<Arc<HttpShared>>) -> HttpResponse {
    answer(call(&shared, Request::Reload).await, StatusCode::OK)
}

/// Answers a route that does not exist in the envelope (not axum's empty 404).
pub async fn no_route() -> HttpResponse {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such route; see GET /api/v1/openapi.json".to_string(),
    )
}
