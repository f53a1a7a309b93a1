//! Load and fairness against the real Redis: 10 projects x 1,000 jobs drained by concurrent
//! workers. Every job is acked exactly once, no project ever runs two jobs at once, and no
//! project is starved while another has work.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use retailcrm_sync::clock::{self, ManualClock, SharedClock};
use retailcrm_sync::queue::{JobKind, NewJob, Trigger};
use serde_json::json;

use common::redis::{PrefixGuard, cleanup, test_queue};

const PROJECTS: i64 = 10;
const JOBS_PER_PROJECT: i64 = 1_000;
const WORKERS: usize = 6;

#[derive(Default)]
struct Ledger {
    /// Acks per job id.
    acks: HashMap<String, u32>,
    /// Project of each ack, in ack order.
    order: Vec<i64>,
    /// Projects with a job in flight right now.
    in_flight: HashSet<i64>,
    /// Violations of "one running job per project".
    overlaps: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_projects_thousand_jobs_each_acked_exactly_once_without_starvation() {
    let q = test_queue(clock::system()).await;
    let _guard = PrefixGuard::new(&q);

    // Enqueue concurrently, one producer per project.
    let mut producers = Vec::new();
    for p in 1..=PROJECTS {
        let q = q.clone();
        producers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..JOBS_PER_PROJECT {
                let e = q
                    .enqueue(&NewJob {
                        project_id: p,
                        kind: JobKind::SyncOrder { id: i },
                        since_id: None,
                        trigger: Trigger::Schedule,
                    })
                    .await
                    .unwrap();
                assert!(!e.coalesced);
                ids.push(e.job_id);
            }
            ids
        }));
    }
    let mut enqueued = HashSet::new();
    for p in producers {
        enqueued.extend(p.await.unwrap());
    }
    assert_eq!(enqueued.len(), (PROJECTS * JOBS_PER_PROJECT) as usize);
    assert_eq!(
        q.projects_with_jobs().await.unwrap().len(),
        PROJECTS as usize
    );

    // Workers go round the projects, each starting at a different one.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let q = q.clone();
        let ledger = ledger.clone();
        workers.push(tokio::spawn(async move {
            let worker_id = format!("load-w{w}");
            let total = (PROJECTS * JOBS_PER_PROJECT) as usize;
            let mut p = (w as i64 % PROJECTS) + 1;
            // Run until every job is acked (by anyone) or the time budget is spent.
            while ledger.lock().unwrap().order.len() < total
                && started.elapsed() < Duration::from_secs(240)
            {
                let mut got_any = false;
                for _ in 0..PROJECTS {
                    p = p % PROJECTS + 1;
                    let Some(lease) = q.reserve(p, &worker_id).await.unwrap() else {
                        continue;
                    };
                    got_any = true;
                    {
                        let mut l = ledger.lock().unwrap();
                        if !l.in_flight.insert(p) {
                            l.overlaps += 1;
                        }
                    }
                    tokio::task::yield_now().await; // "work"
                    {
                        let mut l = ledger.lock().unwrap();
                        l.in_flight.remove(&p);
                    }
                    q.ack(&lease, &json!({"worker": w})).await.unwrap();
                    let mut l = ledger.lock().unwrap();
                    *l.acks.entry(lease.job.id.clone()).or_default() += 1;
                    l.order.push(p);
                }
                if !got_any {
                    // Everything left is running on other workers.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let total = (PROJECTS * JOBS_PER_PROJECT) as usize;
    assert_eq!(ledger.overlaps, 0, "a project ran two jobs at once");
    assert_eq!(ledger.acks.len(), total, "every job completed");
    assert!(
        ledger.acks.values().all(|&n| n == 1),
        "a job was acked more than once"
    );
    assert_eq!(
        ledger.acks.keys().cloned().collect::<HashSet<_>>(),
        enqueued
    );

    // No starvation: in the first fifth of all acks every project already got a fair share
    // (expected ~200 each; at least half of that).
    let first = &ledger.order[..total / 5];
    for p in 1..=PROJECTS {
        let n = first.iter().filter(|&&x| x == p).count();
        assert!(
            n >= 100,
            "project {p} got only {n} of the first {} acks",
            first.len()
        );
    }
    for p in 1..=PROJECTS {
        let s = q.stats(p).await.unwrap();
        assert_eq!((s.waiting, s.delayed, s.dead), (0, 0, 0));
        assert!(s.active.is_none());
    }
    assert!(q.projects_with_jobs().await.unwrap().is_empty());
    eprintln!(
        "drained {total} jobs with {WORKERS} workers in {:.2}s ({:.0} jobs/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    cleanup(&q).await;
}

#[tokio::test]
async fn huge_backlog_in_one_project_does_not_delay_another() {
    let manual = ManualClock::new(Utc::now());
    let shared: SharedClock = Arc::new(manual);
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    for i in 0..10_000 {
        q.enqueue(&NewJob {
            project_id: 1,
            kind: JobKind::SyncOrder { id: i },
            since_id: None,
            trigger: Trigger::Manual,
        })
        .await
        .unwrap();
    }
    let busy = q.reserve(1, "w1").await.unwrap().unwrap();
    let e = q
        .enqueue(&NewJob {
            project_id: 2,
            kind: JobKind::SyncOrders,
            since_id: None,
            trigger: Trigger::Schedule,
        })
        .await
        .unwrap();
    let other = q
        .reserve(2, "w2")
        .await
        .unwrap()
        .expect("project 2 runs at once");
    assert_eq!(other.job.id, e.job_id);
    assert_eq!(q.stats(1).await.unwrap().waiting, 9_999);
    q.ack(&other, &json!({})).await.unwrap();
    q.ack(&busy, &json!({})).await.unwrap();
    let counts = q.purge(1).await.unwrap();
    assert_eq!(counts.waiting, 9_999);
    cleanup(&q).await;
}
