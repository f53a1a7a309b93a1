//! The first sync of a shop that keeps taking (and deleting) orders while it runs, whatever
//! the order RetailCRM serves its lists in: no order may be lost, every deletion must land.
//!
//! The mock changes the account before every list request (`churn_per_list`: orders and
//! customers created and deleted, statuses changed), so something happens between every two
//! windows or pages the snapshot reads. After the first run (snapshot + history walk, under
//! churn) the churn stops and one incremental run follows: history names everything that
//! changed, so an order still missing then was skipped by the snapshot itself.

use std::collections::BTreeSet;
use std::time::Duration;

use retailcrm_sync::mock::{FaultConfig, ListOrder};
use retailcrm_sync::model::Stream;
use retailcrm_sync::store::Cursor;
use retailcrm_sync::sync::{JobSpec, Progress};

use crate::sync_support::{PROJECT, Spec, World, assert_level_with_mock, route_diff};

/// Live orders in the mock vs orders stored and not deleted; and the deleted ones.
async fn compare(w: &World) -> (BTreeSet<i64>, BTreeSet<i64>, BTreeSet<i64>) {
    let live: BTreeSet<i64> = w.mock.orders_snapshot().iter().map(|o| o.id).collect();
    let rows = w.orders().await;
    let stored: BTreeSet<i64> = rows.iter().filter(|r| !r.deleted).map(|r| r.rid).collect();
    let marked: BTreeSet<i64> = rows.iter().filter(|r| r.deleted).map(|r| r.rid).collect();
    (live, stored, marked)
}

async fn one_run(order: ListOrder, seed: u64) -> (usize, u64) {
    let w = World::new(Spec {
        orders: 300,
        customers: 40,
        seed,
        page_size: 20,
        ..Spec::default()
    })
    .await;
    w.mock.state().list_order = order;
    w.mock.set_faults(FaultConfig {
        churn_per_list: 3,
        ..FaultConfig::default()
    });
    let first = tokio::time::timeout(
        Duration::from_secs(120),
        w.run(JobSpec::Orders { since_id: None }),
    )
    .await
    .expect("the first sync ends")
    .unwrap_or_else(|e| panic!("{order:?} seed {seed}: first sync failed: {e}"));
    w.mock.set_faults(FaultConfig::default());
    w.run(JobSpec::Orders { since_id: None })
        .await
        .expect("incremental sync");
    let (live, stored, marked) = compare(&w).await;
    let lost: Vec<i64> = live.difference(&stored).copied().collect();
    let undead: Vec<i64> = stored.difference(&live).copied().collect();
    assert!(
        lost.is_empty(),
        "{order:?} seed {seed}: {} live orders never stored: {lost:?} ({first:?})",
        lost.len()
    );
    assert!(
        undead.is_empty(),
        "{order:?} seed {seed}: deleted in RetailCRM but not marked: {undead:?}"
    );
    // Orders deleted during the run that had been stored are marked deleted.
    let deleted_in_mock: BTreeSet<i64> = w
        .mock
        .state()
        .order_history
        .iter()
        .filter(|h| matches!(h.kind, retailcrm_sync::mock::state::HistKind::Deleted))
        .map(|h| h.entity.id)
        .collect();
    assert!(!deleted_in_mock.is_empty(), "the churn deleted orders");
    for id in &marked {
        assert!(
            deleted_in_mock.contains(id),
            "{id} marked deleted but alive"
        );
    }
    (live.len(), first.requests)
}

/// Done-when of the real-RetailCRM issue: both sort orders (and an unstable one), creations
/// and deletions between every page, 20 seeds each, 0 lost orders, every deletion applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_loses_no_order_under_churn_whatever_the_sort_order() {
    for order in [
        ListOrder::NewestFirst,
        ListOrder::OldestFirst,
        ListOrder::Unstable { seed: 7 },
    ] {
        let mut requests = Vec::new();
        for seed in 0..20u64 {
            let (live, r) = one_run(order, 9000 + seed).await;
            assert!(live > 250, "{live}");
            requests.push(r);
        }
        println!("{order:?}: first-sync requests per run {requests:?}");
    }
}

/// Lists requests made since `before` (`/orders` and `/customers`).
fn list_requests(w: &World, before: &std::collections::BTreeMap<String, u64>) -> u64 {
    let diff = route_diff(before, &w.routes());
    ["/api/v5/orders", "/api/v5/customers"]
        .iter()
        .map(|r| diff.get(*r).copied().unwrap_or(0))
        .sum()
}

const RESYNC_ORDERS: JobSpec = JobSpec::Resync {
    stream: Some(Stream::Orders),
};

async fn orders_cursor(w: &World) -> Cursor {
    w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap()
}

/// A resync cut off mid-snapshot (crash, failed attempt) resumes when the same job runs again,
/// instead of starting over from the first window; another job's resync starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_resumes_its_own_snapshot_when_the_job_runs_again() {
    let w = World::new(Spec {
        orders: 900,
        customers: 20,
        seed: 61,
        page_size: 20,
        ..Spec::default()
    })
    .await;
    w.sync_all().await;
    let before = w.routes();
    w.run(RESYNC_ORDERS).await.expect("a full resync");
    let full = list_requests(&w, &before);

    // The same resync, killed after about half of its windows.
    w.mock.set_faults(FaultConfig {
        slow_ms: 3,
        ..FaultConfig::default()
    });
    let engine = w.engine().with_job_id("resync-job-1");
    let task = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run(RESYNC_ORDERS, &Progress::new()).await }
    });
    loop {
        let c = orders_cursor(&w).await;
        let half_way = c
            .snapshot_page
            .is_some_and(|p| i64::from(p) > full as i64 / 2);
        if c.snapshot_job.as_deref() == Some("resync-job-1") && half_way {
            break;
        }
        assert!(!task.is_finished(), "the resync finished before the kill");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    task.abort();
    let _ = task.await;
    // A batch commit in flight when the job was killed still lands on its own task.
    let mut cut = orders_cursor(&w).await;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let again = orders_cursor(&w).await;
        if again == cut {
            break;
        }
        cut = again;
    }
    w.mock.set_faults(FaultConfig::default());
    assert!(
        cut.snapshot_page.is_some(),
        "still in the snapshot: {cut:?}"
    );

    // Its retry resumes: fewer list requests than a whole snapshot, same anchor.
    let before = w.routes();
    engine
        .run(RESYNC_ORDERS, &Progress::new())
        .await
        .expect("the retry finishes");
    let resumed = list_requests(&w, &before);
    println!("full resync {full} list requests; resumed {resumed}");
    assert!(resumed < full, "resumed {resumed} vs full {full}");
    let done = orders_cursor(&w).await;
    assert_eq!(done.snapshot_page, None);
    assert!(done.since_id >= cut.since_id);
    assert_level_with_mock(&w, &Default::default(), &Default::default()).await;

    // A new resync job starts over.
    let before = w.routes();
    w.engine()
        .with_job_id("resync-job-2")
        .run(RESYNC_ORDERS, &Progress::new())
        .await
        .unwrap();
    assert!(list_requests(&w, &before) >= full * 9 / 10);
}
