//! RetailCRM trigger webhooks end to end: the real daemon, Postgres and Redis, and the mock
//! RetailCRM acting as RetailCRM's trigger (it calls the daemon's webhook after every change).

use crate::common;

use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonOpts, Env, mock};
use retailcrm_sync::mock::MockHandle;

/// Runs of the project by trigger.
async fn runs(env: &Env, project_id: i64, trigger: &str) -> i64 {
    env.count(&format!(
        "SELECT count(*) AS n FROM sync_runs WHERE project_id = {project_id} AND trigger = '{trigger}'"
    ))
    .await
}

/// A daemon running project 1 on `crm`, synced once, with a webhook secret, and the mock's
/// trigger pointed at the daemon.
async fn webhooked(crm: &MockHandle, opts: DaemonOpts) -> (Env, Daemon, String) {
    let env = Env::new(opts).await;
    // A long interval: only webhooks can bring changes in during the test.
    env.insert_integration(1, crm, 600).await;
    let token = env.set_webhook_token(1).await;
    let daemon = env.start().await;
    daemon.wait_synced(1).await;
    let base = daemon.http().await;
    let url = format!("{base}/webhooks/retailcrm/1?token={token}");
    crm.set_webhook_url(Some(url.clone()));
    (env, daemon, url)
}

/// Polls until Postgres holds the mock's orders and customers, the mock has sent every trigger call and the
/// daemon is idle with an empty queue; panics with the log after `limit`.
async fn wait_converged(env: &Env, daemon: &Daemon, crm: &MockHandle, limit: Duration) {
    let started = Instant::now();
    loop {
        let idle = daemon
            .project(1)
            .await
            .is_some_and(|p| p.running_job.is_none() && p.queue_depth == 0 && p.delayed == 0);
        let mismatch = match env.orders_mismatch(1, crm).await {
            Ok(()) => customers_mismatch(env, crm).await,
            e => e,
        };
        if idle && crm.webhooks_pending() == 0 && mismatch.is_ok() {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "Postgres did not catch up with the mock through webhooks within {limit:?} \
             (idle: {idle}, calls pending: {}, {mismatch:?}); log:\n{}",
            crm.webhooks_pending(),
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every customer of the mock that has a user carries the mock's current names, and at least
/// 90 % of them have one (a customer whose e-mail or phone matched another's user is linked to
/// that user; which one depends on history, so this does not ask for all).
async fn customers_mismatch(env: &Env, crm: &MockHandle) -> Result<(), String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        first_name: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        last_name: Option<String>,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = env.db.conn().await;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT retailcrm_customer_id AS id, first_name, last_name FROM users \
         WHERE project_id = 1 AND retailcrm_customer_id IS NOT NULL AND deleted_at IS NULL",
    )
    .load(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let users: std::collections::HashMap<i64, Row> = rows.into_iter().map(|r| (r.id, r)).collect();
    let customers = crm.customers_snapshot();
    let mut linked = 0;
    for c in &customers {
        if let Some(u) = users.get(&c.id) {
            linked += 1;
            if u.first_name != c.first_name || u.last_name != c.last_name {
                return Err(format!(
                    "customer {}: user has {:?} {:?}, RetailCRM {:?} {:?}",
                    c.id, u.first_name, u.last_name, c.first_name, c.last_name
                ));
            }
        }
    }
    if linked * 10 < customers.len() * 9 {
        return Err(format!(
            "only {linked} of {} customers have users",
            customers.len()
        ));
    }
    Ok(())
}

/// A status change in RetailCRM reaches Postgres through the webhook alone: no `ctl trigger`,
/// no schedule (the interval is 10 hours).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_reaches_postgres_through_the_webhook() {
    let crm = mock(60, 30, 71).await;
    let (env, daemon, _) = webhooked(&crm, DaemonOpts::default()).await;
    let before = runs(&env, 1, "webhook").await;
    assert_eq!(before, 0, "no webhook run before any change");

    let id = crm.orders_snapshot()[0].id;
    let current = crm.orders_snapshot()[0].status.clone();
    let next = if current == "complete" {
        "new"
    } else {
        "complete"
    };
    let changed_at = Instant::now();
    assert!(crm.state().set_order_status(id, next, "user"));

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = env.orders(1).await;
        if got.get(&id).and_then(|o| o.1.as_deref()) == Some(next) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} is still {:?} in Postgres; log:\n{}",
            got.get(&id),
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = changed_at.elapsed();
    assert!(
        runs(&env, 1, "webhook").await >= 1,
        "a webhook-triggered run did it"
    );
    assert_eq!(runs(&env, 1, "manual").await, 0);
    let stats = crm.stats();
    assert!(stats.webhooks_sent >= 1, "{stats:?}");
    assert_eq!(stats.webhooks_failed, 0, "{stats:?}");
    // Not a timing assertion: printed for the record (the bench measures freshness).
    eprintln!("status change reached Postgres in {took:?}");
    drop(daemon);
}

/// A burst of 500 changes (500 trigger calls) costs a few history walks and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_webhooks_costs_a_few_walks_and_loses_nothing() {
    let crm = mock(300, 100, 72).await;
    let (env, daemon, url) = webhooked(&crm, DaemonOpts::default()).await;
    let walks_before = runs(&env, 1, "webhook").await;

    // 400 calls from the mock's changes (each change calls the webhook) ...
    // (counted as calls made: the mock merges the records of one entity's change into one call,
    // so changes are made in rounds until 400 calls have actually gone out)
    let made = |crm: &MockHandle| {
        let st = crm.stats();
        st.webhooks_sent + st.webhooks_failed
    };
    let mut seed = 9;
    let deadline = Instant::now() + Duration::from_secs(60);
    while made(&crm) < 400 {
        assert!(
            Instant::now() < deadline,
            "the mock stopped calling: {:?}",
            crm.stats()
        );
        if crm.webhooks_pending() == 0 {
            let report = crm.mutate_random(50, seed);
            assert!(
                report.status_changes + report.orders_created > 0,
                "{report:?}"
            );
            seed += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // ... and 100 more calls straight at the endpoint, concurrently, as a busy shop's triggers
    // would make them.
    let http = reqwest::Client::new();
    let calls = (0..100).map(|i| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(&url)
                .form(&[("entity", "order"), ("order_id", &i.to_string())])
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(202))),
        "every call is accepted at once: {statuses:?}"
    );
    wait_converged(&env, &daemon, &crm, Duration::from_secs(60)).await;

    let walks = runs(&env, 1, "webhook").await - walks_before;
    let stats = crm.stats();
    let sent = stats.webhooks_sent;
    // Under a loaded machine a call may time out on the mock's side (2 s, as a trigger
    // would): the changes must still all arrive, through the walks other calls started.
    assert!(sent + stats.webhooks_failed >= 400, "{stats:?}");
    assert!(sent >= 200, "most calls got through: {stats:?}");
    assert!(walks >= 1, "webhooks brought the changes in");
    assert!(
        walks <= 12,
        "{sent} + 100 calls cost {walks} history walks; bursts must be gathered"
    );
    eprintln!("{} calls -> {walks} walks", sent + 100);
}

/// Wrong token, unknown project, no token, a 10 MB body and a garbage body: each gets the
/// right status, and the daemon keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhook_calls_are_refused_and_the_daemon_keeps_answering() {
    let crm = mock(20, 10, 73).await;
    let (env, daemon, url) = webhooked(&crm, DaemonOpts::default()).await;
    crm.set_webhook_url(None);
    let base = daemon.http().await;
    let http = reqwest::Client::new();
    let post = |u: String| http.post(u);

    let wrong = post(format!("{base}/webhooks/retailcrm/1?token=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong_body = wrong.text().await.unwrap();
    let unknown = post(format!("{base}/webhooks/retailcrm/999?token=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        401,
        "an unknown project looks like a wrong token"
    );
    assert_eq!(
        unknown.text().await.unwrap(),
        wrong_body,
        "same answer: no probing"
    );
    let not_a_number = post(format!("{base}/webhooks/retailcrm/abc?token=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_number.status(), 401);
    let none = post(format!("{base}/webhooks/retailcrm/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let token = url.split("token=").nth(1).unwrap().to_string();
    let header = post(format!("{base}/webhooks/retailcrm/1"))
        .header("X-Webhook-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), 202, "the secret may come as a header");

    let big = vec![b'a'; 10 * 1024 * 1024];
    match post(url.clone()).body(big).send().await {
        Ok(r) => assert_eq!(r.status(), 413, "a 10 MB body is refused"),
        // The daemon may close the connection while the client still writes the body.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    let garbage = post(url.clone())
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, b'{', 0, 1, 2])
        .send()
        .await
        .unwrap();
    assert_eq!(
        garbage.status(),
        202,
        "a garbage body is ignored, not an error"
    );
    let json: serde_json::Value = garbage.json().await.unwrap();
    assert_eq!(
        json["data"]["streams"],
        serde_json::json!(["orders", "customers"])
    );

    let get = http.get(url.clone()).send().await.unwrap();
    assert_eq!(get.status(), 405, "only POST");
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        daemon.status().await.projects.len() == 1,
        "the socket still answers"
    );
    assert!(!env.logs().contains(&token), "the secret is never logged");
}

/// Back-to-back changes with no debounce: every one reaches Postgres in well under the idle
/// poll (10 s). A webhook job enqueued while the project's job taker was between looks used to
/// wait for the next idle poll (found by the freshness bench: 5 of 200 changes took 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_webhook_changes_never_wait_for_the_idle_poll() {
    let crm = mock(40, 20, 74).await;
    let (env, _daemon, _) = webhooked(
        &crm,
        DaemonOpts {
            webhook_debounce_ms: 0,
            ..DaemonOpts::default()
        },
    )
    .await;
    let ids: Vec<i64> = crm.orders_snapshot().iter().map(|o| o.id).collect();
    let mut worst = Duration::ZERO;
    for i in 0..100usize {
        let id = ids[i % ids.len()];
        let next = if i % 2 == 0 { "complete" } else { "new" };
        let changed = Instant::now();
        crm.state().set_order_status(id, next, "user");
        let deadline = changed + Duration::from_secs(20);
        loop {
            let got = env.orders(1).await;
            if got.get(&id).and_then(|o| o.1.as_deref()) == Some(next) {
                break;
            }
            assert!(Instant::now() < deadline, "change {i} never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worst = worst.max(changed.elapsed());
    }
    assert!(
        worst < Duration::from_secs(5),
        "a change waited {worst:?}: a wake-up was lost"
    );
}
