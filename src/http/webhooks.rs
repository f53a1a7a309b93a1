//! `POST /webhooks/retailcrm/{project_id}`: what a RetailCRM trigger ("order changed",
//! "customer changed", action "HTTP request") calls.
//!
//! - **Authentication**: the project's secret comes as `?token=` (what a trigger URL can carry)
//!   or header `X-Webhook-Token`; its SHA-256 is compared with the stored hash in constant time.
//!   A wrong secret, a project without one and a project that does not exist all get the same
//!   401, after the same work, so nobody can probe which projects exist.
//! - **Body**: form-encoded, JSON or empty; `entity` (`order`/`customer`), `order_id` and
//!   `customer_id` name the stream; anything else, garbage included, is ignored (both streams).
//! - **Burst gathering**: a call only marks its project's streams in the [`WebhookInbox`] and is
//!   answered 202 at once. The [`dispatch`] task takes the inbox's marks and hands each project to
//!   the supervisor as one [`WebhookDue`] (which enqueues one history walk, coalesced with the
//!   queue's waiting jobs), then waits `http.webhook_debounce_ms` before taking the next marks.
//!   So the first call of a burst is walked at once, a burst of a thousand costs one walk per
//!   window, and a call inside a window always earns one more walk after it: no change is left
//!   behind. Memory is bounded by the number of projects, whatever the call rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::HttpShared;
use super::api::error_response;
use crate::control::protocol::ErrorCode;
use crate::metrics::metrics;

/// Streams a webhook asks to walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streams {
    pub orders: bool,
    pub customers: bool,
}

impl Streams {
    /// Both streams.
    pub const BOTH: Streams = Streams {
        orders: true,
        customers: true,
    };

    fn merge(&mut self, other: Streams) {
        self.orders |= other.orders;
        self.customers |= other.customers;
    }

    fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.orders {
            v.push("orders");
        }
        if self.customers {
            v.push("customers");
        }
        v
    }
}

/// One project's gathered webhook calls, for the supervisor to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDue {
    pub project_id: i64,
    pub streams: Streams,
    /// Calls gathered into this one.
    pub calls: u64,
}

/// Marks left by webhook calls until the dispatcher takes them.
#[derive(Default)]
pub struct WebhookInbox {
    marks: Mutex<HashMap<i64, (Streams, u64)>>,
    notify: Notify,
}

impl WebhookInbox {
    /// Marks `streams` of `project_id` as changed.
    pub fn mark(&self, project_id: i64, streams: Streams) {
        {
            let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
            let entry = marks.entry(project_id).or_default();
            entry.0.merge(streams);
            entry.1 += 1;
        }
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<WebhookDue> {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let mut due: Vec<WebhookDue> = marks
            .drain()
            .map(|(project_id, (streams, calls))| WebhookDue {
                project_id,
                streams,
                calls,
            })
            .collect();
        due.sort_by_key(|d| d.project_id);
        due
    }
}

/// Hands gathered calls to the supervisor (through `out`) until `stop`: at once after a quiet
/// spell, then at most once per debounce window.
pub async fn dispatch(
    shared: Arc<HttpShared>,
    out: mpsc::Sender<WebhookDue>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shared.inbox.notify.notified() => {}
            _ = stop.cancelled() => return,
        }
        let due = shared.inbox.take();
        for d in due {
            if out.send(d).await.is_err() {
                return; // the daemon is stopping
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.debounce()) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// What a call's body names.
fn streams_of(headers: &HeaderMap, body: &[u8]) -> Streams {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let mut fields: Vec<(String, String)> = Vec::new();
    let from_json = |fields: &mut Vec<(String, String)>| {
        if let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(body) {
            for (k, v) in obj {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                fields.push((k, v));
            }
            true
        } else {
            false
        }
    };
    if !(json && from_json(&mut fields)) {
        if let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
            fields = form;
        }
        // A JSON body sent without a JSON content type.
        if body.trim_ascii_start().starts_with(b"{") {
            let mut from_body = Vec::new();
            if from_json(&mut from_body) {
                fields = from_body;
            }
        }
    }
    let mut s = Streams::default();
    for (k, v) in &fields {
        match (k.as_str(), v.trim()) {
            ("entity", "order" | "orders") => s.orders = true,
            ("entity", "customer" | "customers" | "customer_corporate") => s.customers = true,
            ("order_id" | "orderId", v) if !v.is_empty() => s.orders = true,
            ("customer_id" | "customerId", v) if !v.is_empty() => s.customers = true,
            _ => {}
        }
    }
    if s == Streams::default() {
        Streams::BOTH
    } else {
        s
    }
}

/// The handler.
pub async fn webhook(
    State(shared): State<Arc<HttpShared>>,
    Path(raw_id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let project_id = raw_id.parse::<i64>().ok();
    if shared.webhook_key(0).is_err() {
        metrics().webhook(None, "not_ready");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the daemon is starting; RetailCRM's next change will call again".to_string(),
        );
    }
    let key = project_id.and_then(|id| shared.webhook_key(id).ok().flatten());
    let token = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .or_else(|| headers.get("x-webhook-token").and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    let got = Sha256::digest(token.as_bytes());
    // The same comparison whether the project exists or not.
    let expected = key.unwrap_or([0u8; 32]);
    let matches: bool = got.as_slice().ct_eq(&expected).into();
    if !(matches && key.is_some() && !token.is_empty()) {
        metrics().webhook(key.and(project_id), "unauthorized");
        return error_response(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "wrong or missing webhook token; copy the URL printed by \
             `retailcrm-sync integration set --project-id N --webhook-token generate`"
                .to_string(),
        );
    }
    let project_id = project_id.unwrap_or_default();
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            metrics().webhook(Some(project_id), "too_large");
            return error_response(
                status,
                ErrorCode::Invalid,
                format!("the request body was refused: {rejection}"),
            );
        }
    };
    let streams = streams_of(&headers, &body);
    shared.inbox.mark(project_id, streams);
    metrics().webhook(Some(project_id), "accepted");
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({
            "ok": true,
            "data": { "accepted": true, "project_id": project_id, "streams": streams.names() }
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Streams {
        streams_of(&HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn bodies_name_streams_and_garbage_means_both() {
        assert_eq!(
            form("entity=order&order_id=5"),
            Streams {
                orders: true,
                customers: false
            }
        );
        assert_eq!(
            form("customer_id=9"),
            Streams {
                orders: false,
                customers: true
            }
        );
        assert_eq!(form(""), Streams::BOTH);
        assert_eq!(form("\u{0}\u{1}%%%=&&"), Streams::BOTH);
        assert_eq!(
            form(r#"{"entity":"customer"}"#),
            Streams {
                orders: false,
                customers: true
            }
        );
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(
            streams_of(&json, br#"{"order_id": 77}"#),
            Streams {
                orders: true,
                customers: false
            }
        );
        assert_eq!(streams_of(&json, b"[1,2"), Streams::BOTH);
    }

    #[test]
    fn the_inbox_gathers_a_burst_per_project() {
        let inbox = WebhookInbox::default();
        for _ in 0..500 {
            inbox.mark(
                1,
                Streams {
                    orders: true,
                    customers: false,
                },
            );
        }
        inbox.mark(
            1,
            Streams {
                orders: false,
                customers: true,
            },
        );
        inbox.mark(2, Streams::BOTH);
        let due = inbox.take();
        assert_eq!(
            due,
            vec![
                WebhookDue {
                    project_id: 1,
                    streams: Streams::BOTH,
                    calls: 501
                },
                WebhookDue {
                    project_id: 2,
                    streams: Streams::BOTH,
                    calls: 1
                },
            ]
        );
        assert!(inbox.take().is_empty());
    }
}
