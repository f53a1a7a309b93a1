//! The daemon's HTTP face end to end: the JSON API against the control socket, every route of
//! the OpenAPI document, `/metrics` read with a Prometheus parser, `/readyz` with Postgres down.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::daemon::{DaemonOpts, Env, mock};
use common::proxy::TcpProxy;
use retailcrm_sync::control::protocol::Request;

const TOKEN: &str = "test-api-token-0123456789abcdef";

fn opts_with_token() -> DaemonOpts {
    DaemonOpts {
        api_token: Some(format!("{TOKEN}\n")),
        ..DaemonOpts::default()
    }
}

/// The API answers what the socket answers, and nothing without the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_the_socket_does_and_wants_the_token() {
    let crm = mock(40, 20, 81).await;
    let env = Env::new(opts_with_token()).await;
    env.insert_integration(1, &crm, 600).await;
    let daemon = env.start().await;
    daemon.wait_synced(1).await;
    let base = daemon.http().await;
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };

    let no_token = get("/api/v1/projects", None).await.unwrap();
    assert_eq!(no_token.status(), 401);
    let body: serde_json::Value = no_token.json().await.unwrap();
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = get("/api/v1/projects", Some("wrong-token-wrong-token"))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let api: serde_json::Value = get("/api/v1/projects", Some(TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let socket = daemon.call(&Request::Status { project_id: None }).await;
    let socket = serde_json::to_value(&socket).unwrap();
    assert_eq!(api["ok"], true);
    // Same document; only the queue counters could move between two calls, and the project
    // is idle, so nothing does.
    assert_eq!(api, socket, "GET /api/v1/projects is `ctl status --json`");

    let one: serde_json::Value = get("/api/v1/projects/1", Some(TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["data"], socket["data"]["projects"][0]);
    let missing = get("/api/v1/projects/999", Some(TOKEN)).await.unwrap();
    assert_eq!(missing.status(), 404);
    let missing: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(missing["error"]["code"], "not_found");

    // Jobs: trigger, list, pause, resume, retry of a job that is not dead.
    let created = http
        .post(format!("{base}/api/v1/projects/1/jobs"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "kind": "sync_orders" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 202);
    let created: serde_json::Value = created.json().await.unwrap();
    let job_id = created["data"]["job_id"].as_str().unwrap().to_string();
    let bad_kind = http
        .post(format!("{base}/api/v1/projects/1/jobs"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "kind": "sync_everything" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_kind.status(), 400);
    let bad_json = http
        .post(format!("{base}/api/v1/projects/1/jobs"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    let bad: serde_json::Value = bad_json.json().await.unwrap();
    assert_eq!(bad["error"]["code"], "invalid");

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs: serde_json::Value = get("/api/v1/projects/1/jobs", Some(TOKEN))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = jobs["data"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["job_id"] == job_id.as_str() && j["state"] == "completed");
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id} never completed: {jobs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (path, paused) in [("pause", true), ("resume", false)] {
        let r: serde_json::Value = http
            .post(format!("{base}/api/v1/projects/1/{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["data"]["paused"], paused, "{r}");
    }
    let retry = http
        .post(format!("{base}/api/v1/projects/1/jobs/{job_id}/retry"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 404, "a completed job is not dead");
}

/// Every route of the OpenAPI document answers with a status it documents, with and without
/// the token; and a route that is not in it answers 404 in the envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_as_documented() {
    let crm = mock(10, 5, 82).await;
    let env = Env::new(opts_with_token()).await;
    env.insert_integration(1, &crm, 600).await;
    let daemon = env.start().await;
    daemon.wait_synced(1).await;
    let base = daemon.http().await;
    let http = reqwest::Client::new();
    let doc: serde_json::Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{paths:?}");
    let mut checked = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let documented: BTreeSet<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            let public = op
                .get("security")
                .is_some_and(|s| s == &serde_json::json!([]));
            let url = format!(
                "{base}{}",
                path.replace("{project_id}", "1")
                    .replace("{job_id}", "no-such-job")
            );
            for with_token in [true, false] {
                let mut req = match method.as_str() {
                    "get" => http.get(&url),
                    "post" => http.post(&url),
                    other => panic!("undocumented method {other}"),
                };
                if with_token {
                    req = req.bearer_auth(TOKEN);
                }
                if path.ends_with("/jobs") && method == "post" {
                    req = req.json(&serde_json::json!({ "kind": "sync_customers" }));
                }
                if path.starts_with("/webhooks/") {
                    req = req.query(&[("token", "wrong")]);
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                assert!(
                    documented.contains(&status),
                    "{method} {path} (token: {with_token}) answered {status}, documented {documented:?}"
                );
                if !public && !with_token {
                    assert_eq!(status, 401, "{method} {path} needs the token");
                }
                let ctype = resp
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                let body = resp.bytes().await.unwrap();
                if ctype.starts_with("application/json") {
                    let v: serde_json::Value = serde_json::from_slice(&body)
                        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e})"));
                    assert!(
                        v.get("ok").is_some() || path.ends_with("openapi.json"),
                        "{v}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 24, "{checked}");
    let nowhere = http
        .get(format!("{base}/api/v1/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);
    let v: serde_json::Value = nowhere.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
}

/// Without `http.api_token_file` the API is off (503 saying how to turn it on); webhooks,
/// health and metrics still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_file_the_api_is_off() {
    let env = Env::new(DaemonOpts::default()).await;
    let daemon = env.start().await;
    let base = daemon.http().await;
    let r = reqwest::get(format!("{base}/api/v1/projects"))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api_token_file"),
        "{v}"
    );
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
}

type Families = BTreeMap<String, Vec<prometheus_parse::Sample>>;

async fn scrape(base: &str) -> Families {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let mut families = Families::new();
    for s in scrape.samples {
        families.entry(s.metric.clone()).or_default().push(s);
    }
    families
}

fn labels(s: &prometheus_parse::Sample) -> BTreeSet<String> {
    s.labels.keys().cloned().collect()
}

/// `/metrics` parses as Prometheus text and carries every documented family with its labels
/// after a sync and a webhook; a removed project's series disappear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_every_family_and_forget_removed_projects() {
    let crm = mock(50, 20, 83).await;
    let env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &crm, 600).await;
    let token = env.set_webhook_token(1).await;
    let daemon = env.start().await;
    daemon.wait_synced(1).await;
    let base = daemon.http().await;
    let http = reqwest::Client::new();
    let hook = http
        .post(format!("{base}/webhooks/retailcrm/1?token={token}"))
        .form(&[("entity", "order")])
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 202);
    let bad = http
        .post(format!("{base}/webhooks/retailcrm/1?token=bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    daemon
        .wait_status("webhook walk done", Duration::from_secs(20), |s| {
            s.projects.iter().any(|p| {
                p.running_job.is_none()
                    && p.queue_depth == 0
                    && p.outbox.is_some()
                    && p.last_finished
                        .as_ref()
                        .is_some_and(|f| f.kind == "sync_orders")
            })
        })
        .await;

    let families = scrape(&base).await;
    let want: &[(&str, &[&str])] = &[
        (
            "retailcrm_sync_last_success_timestamp_seconds",
            &["project_id"],
        ),
        (
            "retailcrm_sync_jobs_total",
            &["project_id", "kind", "outcome"],
        ),
        ("retailcrm_sync_job_duration_seconds", &["kind"]),
        ("retailcrm_sync_job_duration_seconds_count", &["kind"]),
        ("retailcrm_sync_queue_jobs", &["project_id", "state"]),
        (
            "retailcrm_sync_crm_requests_total",
            &["project_id", "endpoint", "status"],
        ),
        (
            "retailcrm_sync_rows_written_total",
            &["project_id", "table", "op"],
        ),
        ("retailcrm_sync_history_lag", &["project_id", "stream"]),
        ("retailcrm_sync_webhooks_total", &["project_id", "outcome"]),
        ("retailcrm_sync_freshness_seconds", &["project_id"]),
        ("retailcrm_sync_crm_rate_limited_total", &["project_id"]),
        ("retailcrm_sync_dead_records_total", &["project_id"]),
        ("retailcrm_sync_outbox_rows", &["project_id", "state"]),
    ];
    for (name, label_names) in want {
        let samples = families
            .get(*name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", families.keys()));
        let expected: BTreeSet<String> = label_names.iter().map(|s| s.to_string()).collect();
        assert!(
            samples.iter().any(|s| labels(s) == expected),
            "{name} has no series with labels {expected:?}: {samples:?}"
        );
    }
    let value = |name: &str, pairs: &[(&str, &str)]| -> f64 {
        families
            .get(name)
            .into_iter()
            .flatten()
            .filter(|s| pairs.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert!(
        value(
            "retailcrm_sync_jobs_total",
            &[("project_id", "1"), ("outcome", "succeeded")]
        ) >= 2.0
    );
    assert!(
        value(
            "retailcrm_sync_rows_written_total",
            &[("table", "orders"), ("op", "created")]
        ) >= 50.0
    );
    assert_eq!(
        value("retailcrm_sync_webhooks_total", &[("outcome", "accepted")]),
        1.0
    );
    assert_eq!(
        value(
            "retailcrm_sync_webhooks_total",
            &[("outcome", "unauthorized")]
        ),
        1.0
    );
    assert!(
        value(
            "retailcrm_sync_crm_requests_total",
            &[("endpoint", "/api/v5/orders/history"), ("status", "200")]
        ) >= 1.0
    );
    let fresh = value("retailcrm_sync_freshness_seconds", &[("project_id", "1")]);
    assert!((0.0..60.0).contains(&fresh), "freshness {fresh}");

    // The project goes away: its series go with it.
    env.sql("DELETE FROM retailcrm_integrations WHERE project_id = 1")
        .await;
    let r = daemon.call(&Request::Reload).await;
    assert!(r.ok, "{r:?}");
    let families = scrape(&base).await;
    let left: Vec<_> = families
        .values()
        .flatten()
        .filter(|s| s.labels.get("project_id") == Some("1"))
        .map(|s| s.metric.clone())
        .collect();
    assert!(
        left.is_empty(),
        "series of the removed project remain: {left:?}"
    );
}

/// `/readyz` is 200 when running, 503 naming PostgreSQL while it is unreachable, 200 again
/// when it is back; `/healthz` stays 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_postgres_is_down() {
    let mut env = Env::new(DaemonOpts::default()).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let db_url = env.db.url.clone();
    env.opts.db_url = Some(db_url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port)));
    env.write_config();
    let daemon = env.start().await;
    let base = daemon.http().await;
    let ready = || async { reqwest::get(format!("{base}/readyz")).await.unwrap() };
    assert_eq!(ready().await.status(), 200);

    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let r = ready().await;
        if r.status() == 503 {
            break r.json::<serde_json::Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "readyz stayed {}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = body["data"]["reason"].as_str().unwrap();
    assert!(reason.contains("PostgreSQL"), "{reason}");
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready().await.status() != 200 {
        assert!(Instant::now() < deadline, "readyz did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
