//! Redis outage: against a private, persistent redis-server started by this test (so the shared
//! Redis is never disturbed), a killed Redis makes calls fail with the typed
//! `QueueError::Unavailable`, and once Redis is back the same queue handle works again and every
//! job accepted before the crash is still there.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use retailcrm_sync::clock::{ManualClock, SharedClock};
use retailcrm_sync::queue::{JobKind, JobQueue, NewJob, QueueError, Trigger};
use serde_json::json;

use common::redis::{PrivateRedis, free_port, test_options};

fn new_job(i: i64) -> NewJob {
    NewJob {
        project_id: 1,
        kind: JobKind::SyncOrder { id: i },
        since_id: None,
        trigger: Trigger::Manual,
    }
}

#[tokio::test]
async fn redis_crash_gives_typed_error_and_loses_nothing_once_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let clock: SharedClock = Arc::new(ManualClock::new(Utc::now()));
    let mut redis = PrivateRedis::start(dir.path(), port);
    let q = JobQueue::connect(&url, test_options(), clock)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(q.enqueue(&new_job(i)).await.unwrap().job_id);
    }
    let running = q.reserve(1, "w").await.unwrap().unwrap();

    redis.kill();
    let err = q.enqueue(&new_job(99)).await.expect_err("Redis is down");
    assert!(
        matches!(err, QueueError::Unavailable { .. }),
        "expected Unavailable, got {err:?}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let err = q.reserve(1, "w").await.expect_err("Redis is down");
    assert!(err.is_retryable(), "{err:?}");

    // Redis comes back (same data dir, AOF replayed). The same handle recovers after at most a
    // few failed calls, which is what a caller retrying with backoff sees.
    let _redis = PrivateRedis::start(dir.path(), port);
    let started = Instant::now();
    let stats = loop {
        match q.stats(1).await {
            Ok(s) => break s,
            Err(e) if e.is_retryable() && started.elapsed() < Duration::from_secs(15) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("queue did not recover: {e}"),
        }
    };
    assert_eq!(stats.waiting, 19, "every accepted job survived");
    assert_eq!(stats.active.map(|a| a.job.id), Some(running.job.id.clone()));
    q.ack(&running, &json!({})).await.unwrap();
    let mut drained = vec![running.job.id.clone()];
    while let Some(lease) = q.reserve(1, "w").await.unwrap() {
        drained.push(lease.job.id.clone());
        q.ack(&lease, &json!({})).await.unwrap();
    }
    assert_eq!(drained, ids, "all jobs, in order, exactly once");
}
