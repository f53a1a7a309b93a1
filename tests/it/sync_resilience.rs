//! The sync engine under interruption, concurrency and concurrent deletions, against real
//! Postgres and the in-process mock RetailCRM (issue 5). Plus a throughput measurement
//! (`--ignored`).

use crate::sync_support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use retailcrm_sync::mock::FaultConfig;
use retailcrm_sync::model::Stream;
use retailcrm_sync::store::Cursor;
use retailcrm_sync::sync::{JobSpec, Progress, RunCounts, SyncError};
use sync_support::{DbOrder, PROJECT, Spec, World, assert_level_with_mock, count, route_diff};

/// A small deterministic generator for kill points.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Live rows of a database without ids: orders with their user's identity, and users.
async fn portable_rows(
    w: &World,
) -> (
    Vec<DbOrder>,
    Vec<(Option<i64>, Option<String>, Option<String>)>,
) {
    let mut orders: Vec<DbOrder> = w
        .orders()
        .await
        .into_iter()
        .filter(|o| !o.deleted)
        .map(|o| o.portable())
        .collect();
    orders.sort();
    let mut users: Vec<_> = w
        .users()
        .await
        .into_iter()
        .filter(|u| !u.deleted)
        .map(|u| (u.cid, u.email, u.phone))
        .collect();
    users.sort();
    (orders, users)
}

/// Spawns `job`; returns the task and its live progress.
fn spawn_run(
    w: &World,
    job: JobSpec,
) -> (
    tokio::task::JoinHandle<Result<RunCounts, SyncError>>,
    Progress,
) {
    let engine = w.engine();
    let progress = Progress::new();
    let p = progress.clone();
    (
        tokio::spawn(async move { engine.run(job, &p).await }),
        progress,
    )
}

/// 3. Killing the sync at 20 points (batch boundaries, mid-batch, mid-commit, start-up) and
/// re-running always ends with the rows of an uninterrupted run, and never a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_twenty_points_ends_like_an_uninterrupted_run() {
    let w = World::new(Spec {
        orders: 600,
        customers: 200,
        seed: 31,
        page_size: 20,
        ..Spec::default()
    })
    .await;
    w.mock.set_faults(FaultConfig {
        slow_ms: 2,
        ..FaultConfig::default()
    });
    let mut rng = Lcg(7);
    let mut completed = 0;
    let mut kills = 0;
    let mut conflicts = 0;
    let mut phases = BTreeMap::<String, u32>::new();
    for i in 0..20u64 {
        if i == 8 || i == 14 {
            // Changes that land in history: > 100 records, so history has several batches.
            let mut st = w.mock.state();
            let ids: Vec<i64> = st.order_ids().to_vec();
            for k in 0..140 {
                let id = ids[(k * 7 + i as usize) % ids.len()];
                let code = ["complete", "new", "delivering", "no-call"][k % 4];
                st.set_order_status(id, code, "user");
            }
            for _ in 0..15 {
                st.add_random_order("user");
            }
        }
        let (task, progress) = spawn_run(&w, JobSpec::All { since_id: None });
        if i % 2 == 0 {
            // After at least one committed batch, then a random moment inside the next.
            let start = Instant::now();
            while progress.snapshot().done == 0 && start.elapsed() < Duration::from_secs(10) {
                if task.is_finished() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.below(15))).await;
        } else {
            // Anywhere, start-up included.
            tokio::time::sleep(Duration::from_millis(1 + rng.below(60))).await;
        }
        let snap = progress.snapshot();
        *phases
            .entry(format!("{:?}/{}", snap.stream, snap.phase))
            .or_default() += 1;
        task.abort();
        match task.await {
            Ok(Ok(_)) => completed += 1,
            // The batch commit of a killed run finishes on its own task (the engine never cuts
            // a transaction off); if it lands after the next run read the cursor, that run is
            // refused and retried, as the queue would.
            Ok(Err(SyncError::Conflict { .. })) => conflicts += 1,
            Ok(Err(e)) => panic!("run {i} failed: {e}"),
            Err(e) if e.is_cancelled() => kills += 1,
            Err(e) => panic!("run {i} panicked: {e}"),
        }
    }
    println!("kills {kills}, completed {completed}, conflicts {conflicts}, killed in {phases:?}");
    assert!(
        kills >= 10 && completed <= 3,
        "most runs were cut off: {kills} killed, {completed} completed, {conflicts} refused"
    );
    assert!(
        phases
            .keys()
            .any(|k| k.contains("Orders") && k.contains("snapshot")),
        "{phases:?}"
    );
    w.mock.set_faults(FaultConfig::default());
    w.sync_all_retrying().await;
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
    assert_eq!(
        count(
            &w.db,
            &format!("SELECT count(*) AS n FROM dead_records WHERE project_id = {PROJECT}")
        )
        .await,
        0,
        "no spurious poison from repeated batches"
    );

    // The same account synced without interruption into a fresh database.
    let reference = World::with_mock(w.mock.clone(), 20, HashMap::new()).await;
    reference.sync_all().await;
    let (o1, u1) = portable_rows(&w).await;
    let (o2, u2) = portable_rows(&reference).await;
    assert_eq!(o1.len(), o2.len());
    assert_eq!(o1, o2, "orders differ from an uninterrupted run");
    assert_eq!(u1, u2, "users differ from an uninterrupted run");
}

/// Runs an orders sync until its snapshot has committed `page` pages, kills it, and waits for
/// a commit in flight to land; returns the cursor the next run starts from.
async fn suspend_snapshot_after_page(w: &World, page: i32) -> Cursor {
    w.mock.set_faults(FaultConfig {
        slow_ms: 3,
        ..FaultConfig::default()
    });
    let (task, _p) = spawn_run(w, JobSpec::Orders { since_id: None });
    loop {
        let c = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();
        if c.snapshot_page.is_some_and(|p| p >= page) {
            break;
        }
        assert!(!task.is_finished(), "snapshot finished before the kill");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // A batch commit in flight when the job was killed still finishes on its own task.
    let mut cursor = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let again = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();
        if again == cursor {
            break;
        }
        cursor = again;
    }
    w.mock.set_faults(FaultConfig::default());
    cursor
}

/// 3b. A snapshot interrupted half-way resumes at its window, not at the first one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_snapshot_resumes_from_its_window() {
    let w = World::new(Spec {
        orders: 800,
        customers: 10,
        seed: 32,
        page_size: 20,
        ..Spec::default()
    })
    .await;
    // What a whole snapshot of this account costs, in a fresh database.
    let reference = World::with_mock(w.mock.clone(), 20, HashMap::new()).await;
    let before = reference.routes();
    reference
        .run(JobSpec::Orders { since_id: None })
        .await
        .unwrap();
    let full = route_diff(&before, &reference.routes())
        .get("/api/v5/orders")
        .copied()
        .unwrap_or(0);

    let cursor = suspend_snapshot_after_page(&w, 15).await;
    let k = cursor.snapshot_page.expect("still in the snapshot") as u64;
    assert!(cursor.snapshot_from.is_some(), "{cursor:?}");
    assert!(k > 1 && k < full, "window {k} of {full} requests");

    let before = w.routes();
    w.run(JobSpec::Orders { since_id: None }).await.unwrap();
    let diff = route_diff(&before, &w.routes());
    let listed = diff.get("/api/v5/orders").copied().unwrap_or(0);
    println!(
        "resumed at window {k}; whole snapshot {full} list requests; resumed {listed} ({diff:?})"
    );
    // The windows before k are not read again (a few requests to find the width again).
    assert!(listed + (k - 1) <= full + 4, "{listed} + {k} vs {full}");
    assert!(listed < full);
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
}

/// 4. Two syncs of one project at once cannot corrupt data: one is refused (`Conflict`) or
/// both succeed, and the rows equal the mock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_syncs_of_one_project_cannot_corrupt_data() {
    let w = World::new(Spec {
        orders: 800,
        customers: 250,
        seed: 33,
        page_size: 50,
        ..Spec::default()
    })
    .await;
    let mut conflicts = 0;
    for round in 0..3 {
        if round > 0 {
            w.mock.mutate_random(120, round);
        }
        eprintln!("round {round}: two runs");
        let (a, b) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(
                w.run(JobSpec::All { since_id: None }),
                w.run(JobSpec::All { since_id: None })
            )
        })
        .await
        .expect("two parallel runs must not hang");
        eprintln!(
            "round {round}: {:?} / {:?}",
            a.as_ref().err(),
            b.as_ref().err()
        );
        for r in [a, b] {
            match r {
                Ok(_) => {}
                Err(SyncError::Conflict { project_id, .. }) => {
                    assert_eq!(project_id, PROJECT);
                    conflicts += 1;
                }
                Err(e) => panic!("round {round}: unexpected failure {e}"),
            }
        }
        // The refused run is retried by the queue; do the same.
        w.sync_all().await;
        assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
    }
    println!("conflicts: {conflicts}");
    assert!(
        conflicts >= 1,
        "two first syncs cannot both take the cursor"
    );
}

/// A batch refused mid-snapshot (another run moved the cursor) ends the job with `Conflict`
/// promptly, even while the fetcher is waiting for room in the full pipeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_mid_snapshot_ends_the_job_instead_of_hanging_it() {
    let w = World::new(Spec {
        orders: 2000,
        customers: 10,
        seed: 36,
        page_size: 20,
        ..Spec::default()
    })
    .await;
    let (task, progress) = spawn_run(&w, JobSpec::Orders { since_id: None });
    while progress.snapshot().done < 100 {
        assert!(!task.is_finished(), "finished before the cursor moved");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Another sync of the project commits: the cursor's version moves.
    sync_support::exec(
        &w.db,
        &format!(
            "UPDATE sync_cursors SET version = version + 1 \
             WHERE project_id = {PROJECT} AND stream = 'orders'"
        ),
    )
    .await;
    let result = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the job ends instead of hanging")
        .expect("no panic");
    assert!(
        matches!(
            result,
            Err(SyncError::Conflict {
                stream: Stream::Orders,
                ..
            })
        ),
        "{result:?}"
    );
}

/// The hazard that broke paging: with the list served oldest first, deleting an entity already
/// read shifts an unread one onto a page already read. Windows of creation time have no
/// offsets: nothing is skipped, and the deletions are applied by the history walk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_during_a_snapshot_do_not_skip_entities() {
    let w = World::new(Spec {
        orders: 1000,
        customers: 50,
        seed: 34,
        page_size: 20,
        ..Spec::default()
    })
    .await;
    // Oldest first: paging by number lost the entity after each deleted one here.
    w.mock.state().list_order = retailcrm_sync::mock::ListOrder::OldestFirst;
    w.mock.set_faults(FaultConfig {
        slow_ms: 4,
        ..FaultConfig::default()
    });
    let (task, progress) = spawn_run(&w, JobSpec::Orders { since_id: None });
    loop {
        let s = progress.snapshot();
        if s.phase == "snapshot" && s.done >= 200 {
            assert!(s.done < 600, "deletion must land mid-snapshot: {s:?}");
            break;
        }
        assert!(!task.is_finished());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Delete orders the snapshot has already stored.
    let stored: Vec<i64> = w.orders().await.iter().map(|r| r.rid).take(3).collect();
    assert_eq!(stored.len(), 3);
    let deleted: Vec<i64> = {
        let mut st = w.mock.state();
        for id in &stored {
            assert!(st.delete_order(*id, "user"));
        }
        stored
    };
    task.await.unwrap().expect("sync");
    w.mock.set_faults(FaultConfig::default());
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
    let rows = w.orders().await;
    for id in deleted {
        assert!(rows.iter().any(|r| r.rid == id && r.deleted));
    }
}

/// The same hazard across runs: the snapshot is suspended (killed) after some windows, orders
/// already stored are deleted, the list is served oldest first, and the next run resumes at
/// its window: nothing is skipped (windows have no offsets to shift) and the deletions land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_while_a_snapshot_is_suspended_do_not_skip_entities() {
    let w = World::new(Spec {
        orders: 800,
        customers: 10,
        seed: 35,
        page_size: 20,
        ..Spec::default()
    })
    .await;
    w.mock.state().list_order = retailcrm_sync::mock::ListOrder::OldestFirst;
    let cursor = suspend_snapshot_after_page(&w, 10).await;
    assert!(cursor.snapshot_from.is_some(), "{cursor:?}");
    // Delete orders the suspended snapshot has already stored.
    let stored: Vec<i64> = w.orders().await.iter().map(|r| r.rid).take(5).collect();
    assert_eq!(stored.len(), 5);
    let deleted: Vec<i64> = {
        let mut st = w.mock.state();
        for id in &stored {
            assert!(st.delete_order(*id, "user"));
        }
        stored
    };
    w.run(JobSpec::Orders { since_id: None }).await.unwrap();
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
    let rows = w.orders().await;
    for id in deleted {
        assert!(
            rows.iter().any(|r| r.rid == id && r.deleted),
            "{id} marked deleted"
        );
    }
    let done = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();
    assert_eq!(
        (done.snapshot_page, done.snapshot_total, done.snapshot_from),
        (None, None, None)
    );
}

/// Throughput of a first full sync of a 20,000-order account (debug build unless run with
/// `--release`); prints the figure, asserts only correctness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored"]
async fn throughput_of_a_20k_order_account() {
    let w = World::new(Spec {
        orders: 20_000,
        customers: 5_000,
        seed: 35,
        page_size: 100,
        ..Spec::default()
    })
    .await;
    let started = Instant::now();
    let counts = w.sync_all().await;
    let secs = started.elapsed().as_secs_f64();
    let orders = w.mock.orders_snapshot().len();
    println!(
        "full sync of {orders} orders + {} customers: {secs:.1} s, {:.0} entities/s, {} requests",
        w.mock.customers_snapshot().len(),
        counts.fetched as f64 / secs,
        counts.requests
    );
    w.mock.mutate_random(2_000, 5);
    let started = Instant::now();
    let inc = w.sync_all().await;
    println!(
        "incremental after 2,000 changes: {:.2} s, {} fetched, {} requests",
        started.elapsed().as_secs_f64(),
        inc.fetched,
        inc.requests
    );
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
}
