//! `retailcrm-sync bench` end to end at tiny sizes: a fresh database, the real daemon binary as
//! a child, the in-process mock. Asserts the report has every section with sane, non-zero
//! figures and that the run cleaned up after itself. No absolute timing assertions: speed is
//! what the bench reports, not what a test on a shared machine can promise. The one relative
//! one: with webhooks a change arrives sooner than the schedule's median (a 2 s interval makes
//! that median at least about 0.75 s, see `bench::freshness`), which fails if webhooks do nothing.

use std::time::Duration;

use retailcrm_sync::bench::{self, BenchOptions};

fn tiny() -> BenchOptions {
    BenchOptions {
        orders: 300,
        customers: 100,
        api_orders: 60,
        api_customers: 20,
        mutations: 40,
        projects: 3,
        project_orders: 20,
        project_customers: 10,
        idle: Duration::from_secs(1),
        large_orders: 600,
        fresh_orders: 200,
        fresh_customers: 100,
        fresh_changes: 24,
        fresh_scheduled_changes: 5,
        fresh_interval_secs: 2,
        fresh_timeout: Duration::from_secs(20),
        job_timeout: Duration::from_secs(120),
        ..BenchOptions::quick(env!("CARGO_BIN_EXE_retailcrm-sync").into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_every_section_and_cleans_up() {
    let report = bench::run(&tiny()).await.expect("bench environment");
    assert!(report.errors.is_empty(), "{:#?}", report.errors);

    let full = report.full_sync.as_ref().expect("full sync section");
    assert_eq!(full.orders, 300);
    assert!(
        full.orders_stored + full.poison_records >= 290,
        "orders stored: {full:?}"
    );
    assert!(full.users_stored >= 100, "{full:?}");
    assert!(full.wall_secs > 0.0 && full.orders_per_sec > 0.0);
    assert!(
        full.http_requests >= 4,
        "one page per stream at least: {full:?}"
    );
    assert!(
        full.peak_rss_mib > 1.0 && full.peak_rss_mib < 1024.0,
        "{full:?}"
    );

    // The writer-time breakdown comes from the daemon's own `batch committed` events.
    let orders_commits = full
        .commit_times
        .get("orders")
        .expect("orders commit times");
    // Pages merge into fewer commits when the writer lags (adaptive batching), so the count of
    // commits depends on timing; every order row must still be accounted for.
    assert!(orders_commits.batches >= 1, "{full:?}");
    assert!(orders_commits.rows >= full.orders_stored, "{full:?}");
    assert!(full.commit_times.contains_key("customers"), "{full:?}");

    let limits = report.limits.as_ref().expect("limits section");
    assert_eq!(limits.baselines.rows, full.orders_stored);
    assert!(limits.baselines.upsert_rows_per_sec > 0.0);
    assert!(limits.baselines.copy_rows_per_sec > 0.0);
    assert!(limits.ratio_to_upsert > 0.0 && limits.ratio_to_copy > 0.0);

    let api = report.api_bound.as_ref().expect("API-bound section");
    assert!(api.succeeded);
    assert!(api.requests_served >= 4 && api.floor_secs > 0.0 && api.ratio_to_floor > 0.0);

    let inc = report.incremental.as_ref().expect("incremental section");
    assert_eq!(inc.changes, 40);
    assert!(inc.secs > 0.0 && inc.http_requests >= 2, "{inc:?}");

    let many = report
        .many_projects
        .as_ref()
        .expect("many-projects section");
    assert_eq!(many.projects, 3);
    assert_eq!(many.failed_jobs, 0);
    assert!(many.ready_secs > 0.0 && many.idle_rss_mib > 1.0 && many.orders_per_sec > 0.0);

    let mem = report.memory.as_ref().expect("memory section");
    assert_eq!(mem.large_orders, 600);
    assert!(mem.large_peak_rss_mib > 1.0 && mem.base_peak_rss_mib > 1.0);

    // Freshness: every change with webhooks arrived, and sooner than the schedule would bring
    // it (if webhooks did nothing, the changes would miss or wait for the schedule).
    let push = report.push.as_ref().expect("push section");
    assert!(push.rows > 0, "{push:?}");
    assert_eq!(push.sent, push.rows, "every outbox row sent: {push:?}");
    assert!(
        push.requests_served >= push.rows,
        "at least one request per row: {push:?}"
    );
    assert!(
        push.wall_secs >= push.ideal_floor_secs * 0.8,
        "faster than the mock's limit allows? {push:?}"
    );
    let fresh = report.freshness.as_ref().expect("freshness section");
    let hooks = fresh.webhooks.as_ref().expect("freshness with webhooks");
    assert_eq!(hooks.changes, 24, "{hooks:?}");
    assert_eq!(hooks.misses, 0, "{hooks:?}");
    assert_eq!(hooks.committed, 24, "{hooks:?}");
    assert_eq!(
        (hooks.status_changes, hooks.new_orders, hooks.customer_edits),
        (8, 8, 8),
        "{hooks:?}"
    );
    assert!(
        0.0 < hooks.p50_secs
            && hooks.p50_secs <= hooks.p99_secs
            && hooks.p99_secs <= hooks.max_secs,
        "{hooks:?}"
    );
    assert!(hooks.history_walks >= 1, "{hooks:?}");
    assert_eq!(hooks.walk_trigger, "webhook");
    assert!(hooks.webhook_calls_sent >= 24, "{hooks:?}");
    let sched = fresh
        .schedule
        .as_ref()
        .expect("freshness against the schedule");
    assert_eq!(sched.changes, 5, "{sched:?}");
    assert_eq!(sched.misses, 0, "{sched:?}");
    assert_eq!(sched.interval_secs, Some(2.0));
    assert!(sched.history_walks >= 1, "{sched:?}");
    assert!(
        0.0 < sched.p50_secs
            && sched.p50_secs <= sched.p99_secs
            && sched.p99_secs <= sched.max_secs,
        "{sched:?}"
    );
    assert!(
        hooks.p99_secs < sched.p50_secs,
        "webhooks p99 {:.3} s is not below the schedule's p50 {:.3} s",
        hooks.p99_secs,
        sched.p50_secs
    );

    // Every target row is present and the table names every section.
    assert_eq!(report.targets.len(), 15, "{:#?}", report.targets);
    let table = report.render();
    for heading in [
        "1. full sync",
        "2. physical limits",
        "3. API-bound",
        "4. incremental",
        "5. many projects",
        "6. memory flatness",
        "7. freshness",
        "8. two-way sync push",
    ] {
        assert!(table.contains(heading), "{heading} missing:\n{table}");
    }
    let json = serde_json::to_value(&report).expect("report as JSON");
    for key in [
        "full_sync",
        "limits",
        "api_bound",
        "incremental",
        "many_projects",
        "memory",
        "freshness",
        "push",
        "targets",
    ] {
        assert!(!json[key].is_null(), "{key} missing from the JSON report");
    }

    // The fresh database was dropped.
    let (pg, task) = bench::env::connect_raw("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("postgres");
    let left = pg
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&report.database],
        )
        .await
        .expect("query");
    assert_eq!(
        left.get::<_, i64>(0),
        0,
        "{} was not dropped",
        report.database
    );
    task.abort();
}
