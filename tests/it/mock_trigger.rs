//! The mock acts as RetailCRM's trigger ("HTTP request" action): after every change that adds a
//! history record it POSTs `entity=order&order_id=<id>` or `entity=customer&customer_id=<id>`
//! (form-encoded) to the configured URL, query string kept. Checked with a tiny receiver that
//! records what arrives; calls are asynchronous, so every wait polls with a deadline. "Exactly
//! one call" is checked with a fence: calls leave in the order of the changes, so once the call
//! of a later change has arrived, every call of the earlier ones has too.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::post;
use retailcrm_sync::mock::{MockConfig, MockCrm, MockHandle, MutationReport};
use retailcrm_sync::model::Stream;
use serde_json::{Value, json};

/// One call as the receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    query: Option<String>,
    form: Vec<(String, String)>,
}

impl Hit {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `(stream, id)` from the form, panicking on anything a trigger would not send.
    fn entity(&self) -> (Stream, i64) {
        match self.field("entity") {
            Some("order") => (
                Stream::Orders,
                self.field("order_id").unwrap().parse().unwrap(),
            ),
            Some("customer") => (
                Stream::Customers,
                self.field("customer_id").unwrap().parse().unwrap(),
            ),
            other => panic!("unexpected entity {other:?} in {self:?}"),
        }
    }
}

type Hits = Arc<Mutex<Vec<Hit>>>;

/// A receiver on 127.0.0.1:0 recording every POST to `/hook` and `/hook2`.
struct Receiver {
    base: String,
    hits: Hits,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        async fn record(
            State((hits, path)): State<(Hits, &'static str)>,
            RawQuery(query): RawQuery,
            headers: axum::http::HeaderMap,
            body: String,
        ) -> &'static str {
            let ct = headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                ct.starts_with("application/x-www-form-urlencoded"),
                "trigger bodies are form-encoded, got {ct:?}"
            );
            let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
            hits.lock().unwrap().push(Hit {
                path: path.to_string(),
                query,
                form,
            });
            "ok"
        }
        let hits: Hits = Arc::default();
        let app = Router::new()
            .route("/hook", post(record).with_state((hits.clone(), "/hook")))
            .route("/hook2", post(record).with_state((hits.clone(), "/hook2")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            base: format!("http://{addr}"),
            hits,
            _task: task,
        }
    }

    fn url(&self) -> String {
        format!("{}/hook?token=abc", self.base)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until `done(hits)` holds (up to 5 s), then returns the hits.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {hits:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes one more change (a new customer, made through the state) and waits for its call:
    /// after that, every call of earlier changes has arrived. Returns the hits before it.
    async fn fence(&self, m: &MockHandle) -> Vec<Hit> {
        let cid = m.state().add_random_customer("user");
        let hits = self
            .wait_for("the fence call", |h| {
                h.iter().any(|h| h.entity() == (Stream::Customers, cid))
            })
            .await;
        let at = hits
            .iter()
            .position(|h| h.entity() == (Stream::Customers, cid))
            .unwrap();
        assert_eq!(at, hits.len() - 1, "the fence call comes last: {hits:#?}");
        hits[..at].to_vec()
    }
}

async fn start(webhook_url: Option<String>) -> MockHandle {
    MockCrm::start(MockConfig {
        orders: 30,
        customers: 20,
        seed: 7,
        webhook_url,
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn admin_post(m: &MockHandle, path: &str) -> Value {
    let resp = client()
        .post(format!("{}{}", m.url, path))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn set_webhook(m: &MockHandle, url: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/admin/webhook", m.url))
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn api_post(m: &MockHandle, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = client()
        .post(format!("{}{}", m.url, path))
        .header("X-API-KEY", &m.api_key)
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn api_get(m: &MockHandle, path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{}", m.url, path))
        .header("X-API-KEY", &m.api_key)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// A status different from the order's current one.
fn other_status(m: &MockHandle, id: i64) -> &'static str {
    let current = m.state().orders[&id].status.clone();
    if current == "complete" {
        "cancel-other"
    } else {
        "complete"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_calls_once_with_the_token() {
    let rx = Receiver::start().await;
    let m = start(Some(rx.url())).await;
    // Generating the account is no change: nothing was called.
    assert_eq!(m.webhooks_pending(), 0);
    let id = m.state().order_ids()[3];
    let status = other_status(&m, id);
    let body = admin_post(&m, &format!("/admin/orders/{id}/status?status={status}")).await;
    assert_eq!(body["changed"], true);
    let hits = rx.fence(&m).await;
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let hit = &hits[0];
    assert_eq!(hit.path, "/hook");
    assert_eq!(hit.query.as_deref(), Some("token=abc"));
    assert_eq!(hit.field("entity"), Some("order"));
    assert_eq!(hit.field("order_id"), Some(id.to_string().as_str()));
    assert_eq!(hit.form.len(), 2, "{hit:?}");
    // A change through the handle calls too; a change that changes nothing does not.
    let id2 = m.state().order_ids()[5];
    let status2 = other_status(&m, id2);
    assert!(m.state().set_order_status(id2, status2, "user"));
    assert!(!m.state().set_order_status(id2, status2, "user"));
    let hits = rx.fence(&m).await;
    let orders: Vec<_> = hits
        .iter()
        .filter(|h| h.field("entity") == Some("order"))
        .map(Hit::entity)
        .collect();
    assert_eq!(orders, vec![(Stream::Orders, id), (Stream::Orders, id2)]);
    // Counted as sent (the fence calls included).
    let stats = m.stats();
    assert_eq!(stats.webhooks_sent as usize, rx.hits().len());
    assert_eq!(stats.webhooks_failed, 0);
    let resp: Value = client()
        .get(format!("{}/admin/stats", m.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        resp["stats"]["webhooks_sent"].as_u64(),
        Some(stats.webhooks_sent)
    );
    assert_eq!(resp["stats"]["webhooks_failed"].as_u64(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_call_for_their_entities() {
    let rx = Receiver::start().await;
    let m = start(Some(rx.url())).await;
    let (s, body) = api_post(
        &m,
        "/api/v5/orders/create",
        &[(
            "order",
            r#"{"externalId":"trigger-1","firstName":"Ivan","email":"ivan@example.ru"}"#,
        )],
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let order_id = body["id"].as_i64().unwrap();
    let cid = m.state().customer_ids()[2];
    // Two fields in one edit: one change, one call.
    let (s, body) = api_post(
        &m,
        &format!("/api/v5/customers/{cid}/edit"),
        &[
            ("by", "id"),
            (
                "customer",
                r#"{"email":"edited@example.ru","firstName":"Edited"}"#,
            ),
        ],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    // An order edit of several fields through the API: one call.
    let (s, body) = api_post(
        &m,
        "/api/v5/orders/trigger-1/edit",
        &[(
            "order",
            r#"{"status":"complete","email":"other@example.ru","lastName":"Petrov"}"#,
        )],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    // A refused write changes nothing and calls nothing.
    let (s, _) = api_post(
        &m,
        "/api/v5/orders/create",
        &[("order", r#"{"externalId":"trigger-1"}"#)],
    )
    .await;
    assert_eq!(s, 400);
    let hits = rx.fence(&m).await;
    let got: Vec<_> = hits.iter().map(Hit::entity).collect();
    assert_eq!(
        got,
        vec![
            (Stream::Orders, order_id),
            (Stream::Customers, cid),
            (Stream::Orders, order_id),
        ],
        "{hits:#?}"
    );
    assert!(hits.iter().all(|h| h.query.as_deref() == Some("token=abc")));
    // customers/create calls for the new customer.
    let (s, body) = api_post(
        &m,
        "/api/v5/customers/create",
        &[(
            "customer",
            r#"{"firstName":"New","email":"new@example.ru"}"#,
        )],
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let new_cid = body["id"].as_i64().unwrap();
    let before = hits.len() + 1; // the first fence's own call
    let hits = rx.fence(&m).await;
    let got: Vec<_> = hits[before..].iter().map(Hit::entity).collect();
    assert_eq!(got, vec![(Stream::Customers, new_cid)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_calls_for_every_changed_entity() {
    let rx = Receiver::start().await;
    let m = start(Some(rx.url())).await;
    let (o0, c0) = {
        let st = m.state();
        (st.order_history.len(), st.customer_history.len())
    };
    let report = admin_post(&m, "/admin/mutate?n=50&seed=3").await;
    let count = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {report}"))
    };
    let report = MutationReport {
        status_changes: count("status_changes"),
        customer_edits: count("customer_edits"),
        orders_created: count("orders_created"),
        customers_created: count("customers_created"),
        orders_deleted: count("orders_deleted"),
        customers_deleted: count("customers_deleted"),
    };
    let (order_records, customer_records) = {
        let st = m.state();
        (
            st.order_history[o0..]
                .iter()
                .map(|h| h.entity.id)
                .collect::<Vec<_>>(),
            st.customer_history[c0..]
                .iter()
                .map(|h| h.entity.id)
                .collect::<Vec<_>>(),
        )
    };
    let order_calls =
        (report.status_changes + report.orders_created + report.orders_deleted) as usize;
    let customer_calls = (report.customer_edits + report.customers_created) as usize;
    assert_eq!(order_calls, order_records.len());
    assert!(order_calls + customer_calls >= 40, "{report:?}");
    rx.wait_for("every call of the burst", |h| {
        h.len() >= order_calls + customer_calls
    })
    .await;
    let hits = rx.fence(&m).await;
    assert_eq!(hits.len(), order_calls + customer_calls, "{report:?}");
    // Orders: exactly one call per record, in the order of the changes.
    let got_orders: Vec<i64> = hits
        .iter()
        .map(Hit::entity)
        .filter(|(s, _)| *s == Stream::Orders)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(got_orders, order_records);
    // Customers: one call per change (an edit may write two records), every entity called.
    let got_customers: Vec<i64> = hits
        .iter()
        .map(Hit::entity)
        .filter(|(s, _)| *s == Stream::Customers)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(got_customers.len(), customer_calls);
    assert_eq!(
        got_customers.iter().copied().collect::<BTreeSet<_>>(),
        customer_records.iter().copied().collect::<BTreeSet<_>>()
    );
    assert!(hits.iter().all(|h| h.query.as_deref() == Some("token=abc")));
    assert_eq!(m.webhooks_pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_does_not_break_the_mock() {
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let m = start(Some(format!("http://{closed}/hook?token=abc"))).await;
    let id = m.state().order_ids()[0];
    let status = other_status(&m, id);
    let body = admin_post(&m, &format!("/admin/orders/{id}/status?status={status}")).await;
    assert_eq!(body["changed"], true);
    admin_post(&m, "/admin/mutate?n=20&seed=5").await;
    // The API answers as ever, and promptly.
    let started = Instant::now();
    let (s, body) = api_get(&m, "/api/v5/orders?limit=20").await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = api_get(&m, "/api/v5/orders/history?limit=100").await;
    assert_eq!(s, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.stats().webhooks_failed < 10 {
        assert!(
            Instant::now() < deadline,
            "failures are counted: {:?}",
            m.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(m.stats().webhooks_sent, 0);
    // Nothing is retried: the outbox drains.
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.webhooks_pending() > 0 {
        assert!(Instant::now() < deadline, "failed calls are dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp: Value = client()
        .get(format!("{}/admin/stats", m.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(resp["stats"]["webhooks_failed"].as_u64().unwrap() >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_the_url_at_run_time_stops_the_calls() {
    let rx = Receiver::start().await;
    // Set at run time (no URL at start: nothing accumulates).
    let m = start(None).await;
    m.mutate_random(30, 2);
    assert_eq!(m.webhooks_pending(), 0);
    let (s, body) = set_webhook(&m, json!(rx.url())).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["url"], json!(rx.url()));
    assert_eq!(m.webhook_url(), Some(rx.url()));
    let id = m.state().order_ids()[1];
    let status = other_status(&m, id);
    assert!(m.state().set_order_status(id, status, "user"));
    let hits = rx.fence(&m).await;
    assert_eq!(
        hits.iter().map(Hit::entity).collect::<Vec<_>>(),
        vec![(Stream::Orders, id)]
    );
    let seen = rx.hits().len();
    // Cleared through the admin endpoint: no calls, nothing waiting.
    let (s, body) = set_webhook(&m, Value::Null).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["url"], Value::Null);
    assert_eq!(m.webhook_url(), None);
    let quiet = m.state().order_ids()[2];
    let status = other_status(&m, quiet);
    admin_post(&m, &format!("/admin/orders/{quiet}/status?status={status}")).await;
    m.mutate_random(20, 9);
    assert_eq!(m.webhooks_pending(), 0);
    // Set again (another path) through the handle: only changes from now on are called.
    m.set_webhook_url(Some(format!("{}/hook2?token=abc", rx.base)));
    let hits = rx.fence(&m).await;
    assert_eq!(hits.len(), seen, "no call while cleared: {hits:#?}");
    let last = rx.hits().last().unwrap().clone();
    assert_eq!(last.path, "/hook2");
    // Cleared through the handle.
    m.set_webhook_url(None);
    m.mutate_random(10, 4);
    assert_eq!(m.webhooks_pending(), 0);
    let n = rx.hits().len();
    m.set_webhook_url(Some(rx.url()));
    let hits = rx.fence(&m).await;
    assert_eq!(hits.len(), n);
    // A URL that is not one is refused.
    let (s, _) = set_webhook(&m, json!("not a url")).await;
    assert_eq!(s, 400);
    let (s, _) = set_webhook(&m, json!("ftp://127.0.0.1/x")).await;
    assert_eq!(s, 400);
    assert_eq!(m.webhook_url(), Some(rx.url()));
}
