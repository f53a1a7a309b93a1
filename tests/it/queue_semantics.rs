//! Queue semantics against the real Redis: lifecycle, coalescing, retries and backoff timing
//! (moved with a ManualClock, never slept), rate limits, dead letters, crash recovery, stalls,
//! one running job per project, release, purge and Redis-down errors.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use retailcrm_sync::clock::{Clock, ManualClock, SharedClock};
use retailcrm_sync::queue::{
    DeadReason, FailOutcome, FailureClass, JobKind, JobQueue, NewJob, QueueError, QueueOptions,
    Trigger,
};
use serde_json::json;

use common::redis::{PrefixGuard, cleanup, count_keys, test_options, test_queue, test_queue_with};

fn manual() -> (ManualClock, SharedClock) {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    let shared: SharedClock = Arc::new(clock.clone());
    (clock, shared)
}

fn job(project_id: i64, kind: JobKind) -> NewJob {
    NewJob {
        project_id,
        kind,
        since_id: None,
        trigger: Trigger::Schedule,
    }
}

fn ms(d: i64) -> chrono::Duration {
    chrono::Duration::milliseconds(d)
}

#[tokio::test]
async fn enqueue_reserve_ack_round_trip() {
    let (clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    let new = NewJob {
        project_id: 7,
        kind: JobKind::SyncOrders,
        since_id: Some(1234),
        trigger: Trigger::Manual,
    };
    let enq = q.enqueue(&new).await.unwrap();
    assert!(!enq.coalesced);
    assert_eq!(q.projects_with_jobs().await.unwrap(), vec![7]);
    let stats = q.stats(7).await.unwrap();
    assert_eq!((stats.waiting, stats.delayed, stats.dead), (1, 0, 0));
    assert!(stats.active.is_none());
    assert_eq!(q.next_due(7).await.unwrap(), Some(clock.now()));

    clock.advance(ms(1500));
    let lease = q.reserve(7, "w1").await.unwrap().expect("job is due");
    assert_eq!(lease.job.id, enq.job_id);
    assert_eq!(lease.job.kind, JobKind::SyncOrders);
    assert_eq!(lease.job.since_id, Some(1234));
    assert_eq!(lease.job.trigger, Trigger::Manual);
    assert_eq!(lease.job.attempts, 0);
    assert_eq!(lease.job.max_attempts, 3);
    assert_eq!(lease.job.enqueued_at, clock.now() - ms(1500));
    assert_eq!(lease.deadline, clock.now() + ms(30_000));
    assert_eq!(lease.worker_id, "w1");

    let stats = q.stats(7).await.unwrap();
    assert_eq!(stats.waiting, 0);
    let active = stats.active.expect("active job shown");
    assert_eq!(active.job.id, enq.job_id);
    assert_eq!(active.worker_id, "w1");
    assert_eq!(active.deadline, lease.deadline);

    clock.advance(ms(10_000));
    let renewed = q.renew(&lease).await.unwrap();
    assert_eq!(renewed.deadline, clock.now() + ms(30_000));

    q.ack(&renewed, &json!({"orders": 12})).await.unwrap();
    let stats = q.stats(7).await.unwrap();
    assert!(stats.active.is_none());
    assert_eq!(stats.completed, 1);
    let done = q.completed(7, 10).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].job.id, enq.job_id);
    assert_eq!(done[0].summary, json!({"orders": 12}));
    assert_eq!(done[0].worker_id, "w1");
    assert_eq!(done[0].finished_at, clock.now());
    assert!(q.reserve(7, "w1").await.unwrap().is_none());
    assert!(q.projects_with_jobs().await.unwrap().is_empty());
    assert_eq!(q.next_due(7).await.unwrap(), None);
    // A second ack of the same lease is refused.
    assert!(matches!(
        q.ack(&renewed, &json!({})).await,
        Err(QueueError::LeaseLost { .. })
    ));
    cleanup(&q).await;
}

#[tokio::test]
async fn identical_waiting_jobs_are_coalesced() {
    let (_clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    let a = q.enqueue(&job(1, JobKind::SyncOrders)).await.unwrap();
    let b = q.enqueue(&job(1, JobKind::SyncOrders)).await.unwrap();
    assert!(b.coalesced);
    assert_eq!(a.job_id, b.job_id);
    // Different kind, entity, since_id or project: separate jobs.
    let c = q.enqueue(&job(1, JobKind::SyncCustomers)).await.unwrap();
    let d = q
        .enqueue(&job(1, JobKind::SyncOrder { id: 5 }))
        .await
        .unwrap();
    let e = q
        .enqueue(&job(1, JobKind::SyncOrder { id: 6 }))
        .await
        .unwrap();
    let f = q
        .enqueue(&NewJob {
            since_id: Some(9),
            ..job(1, JobKind::SyncOrders)
        })
        .await
        .unwrap();
    let g = q.enqueue(&job(2, JobKind::SyncOrders)).await.unwrap();
    for x in [&c, &d, &e, &f, &g] {
        assert!(!x.coalesced);
    }
    let d2 = q
        .enqueue(&job(1, JobKind::SyncOrder { id: 5 }))
        .await
        .unwrap();
    assert_eq!(d2.job_id, d.job_id);
    assert!(d2.coalesced);
    assert_eq!(q.stats(1).await.unwrap().waiting, 5);

    // Once it runs, an identical trigger is queued again (the run may have started too early to
    // see the new data), and that waiting job coalesces further triggers.
    let lease = q.reserve(1, "w").await.unwrap().unwrap();
    assert_eq!(lease.job.id, a.job_id);
    let h = q.enqueue(&job(1, JobKind::SyncOrders)).await.unwrap();
    assert!(!h.coalesced);
    assert_ne!(h.job_id, a.job_id);
    let h2 = q.enqueue(&job(1, JobKind::SyncOrders)).await.unwrap();
    assert_eq!(h2.job_id, h.job_id);
    assert!(h2.coalesced);
    cleanup(&q).await;
}

#[tokio::test]
async fn transient_failures_retry_with_exponential_backoff_then_die() {
    let (clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    let id = q
        .enqueue(&job(3, JobKind::SyncCustomers))
        .await
        .unwrap()
        .job_id;

    // First failure: due 5 s later (+0..20% jitter), not before.
    let lease = q.reserve(3, "w").await.unwrap().unwrap();
    let failed_at = clock.now();
    let FailOutcome::RetryAt(at) = q
        .fail(&lease, FailureClass::Transient, "HTTP 500 from CRM")
        .await
        .unwrap()
    else {
        panic!("first failure must retry");
    };
    assert!(
        at >= failed_at + ms(5_000) && at <= failed_at + ms(6_000),
        "{at}"
    );
    assert_eq!(q.next_due(3).await.unwrap(), Some(at));
    let stats = q.stats(3).await.unwrap();
    assert_eq!((stats.waiting, stats.delayed), (0, 1));
    clock.set(at - ms(1));
    assert!(q.reserve(3, "w").await.unwrap().is_none(), "not due yet");
    clock.set(at);
    let lease = q.reserve(3, "w").await.unwrap().expect("due at retry time");
    assert_eq!(lease.job.id, id);
    assert_eq!(lease.job.attempts, 1);
    assert_eq!(lease.job.last_error.as_deref(), Some("HTTP 500 from CRM"));

    // Second failure: 10 s (+0..20%).
    let failed_at = clock.now();
    let FailOutcome::RetryAt(at) = q
        .fail(&lease, FailureClass::Transient, "timeout")
        .await
        .unwrap()
    else {
        panic!("second failure must retry");
    };
    assert!(
        at >= failed_at + ms(10_000) && at <= failed_at + ms(12_000),
        "{at}"
    );
    clock.set(at - ms(1));
    assert!(q.reserve(3, "w").await.unwrap().is_none(), "not due yet");
    clock.set(at);
    let lease = q.reserve(3, "w").await.unwrap().expect("due at retry time");
    assert_eq!(lease.job.attempts, 2);

    // Third failure: attempts exhausted -> dead letters with the error.
    assert_eq!(
        q.fail(&lease, FailureClass::Transient, "still timing out")
            .await
            .unwrap(),
        FailOutcome::Dead
    );
    clock.advance(ms(3_600_000));
    assert!(q.reserve(3, "w").await.unwrap().is_none());
    let dead = q.dead_jobs(3, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.id, id);
    assert_eq!(dead[0].reason, DeadReason::Exhausted);
    assert_eq!(dead[0].error, "still timing out");
    assert_eq!(dead[0].job.attempts, 3);
    assert_eq!(dead[0].died_at, clock.now() - ms(3_600_000));
    assert_eq!(q.stats(3).await.unwrap().dead, 1);
    assert!(q.projects_with_jobs().await.unwrap().is_empty());
    cleanup(&q).await;
}

#[tokio::test]
async fn rate_limited_and_unavailable_retries_do_not_spend_attempts() {
    let (clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    q.enqueue(&job(4, JobKind::SyncOrders)).await.unwrap();
    for round in 0..6 {
        let lease = q.reserve(4, "w").await.unwrap().expect("due");
        assert_eq!(lease.job.attempts, 0, "round {round}");
        // Alternating: the remote's rate limit, and Postgres being unreachable.
        let retry_after = Duration::from_secs(60);
        let class = if round % 2 == 0 {
            FailureClass::RateLimited { retry_after }
        } else {
            FailureClass::Unavailable { retry_after }
        };
        let outcome = q.fail(&lease, class, "HTTP 429").await.unwrap();
        assert_eq!(outcome, FailOutcome::RetryAt(clock.now() + ms(60_000)));
        clock.advance(ms(59_999));
        assert!(q.reserve(4, "w").await.unwrap().is_none());
        clock.advance(ms(1));
    }
    // A transient failure after that is still the first counted attempt.
    let lease = q.reserve(4, "w").await.unwrap().unwrap();
    assert!(matches!(
        q.fail(&lease, FailureClass::Transient, "x").await.unwrap(),
        FailOutcome::RetryAt(_)
    ));
    assert!(q.dead_jobs(4, 10).await.unwrap().is_empty());
    cleanup(&q).await;
}

#[tokio::test]
async fn permanent_failure_dies_at_once_and_requeued_dead_job_succeeds() {
    let (_clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    let id = q
        .enqueue(&job(5, JobKind::SyncOrders))
        .await
        .unwrap()
        .job_id;
    let lease = q.reserve(5, "w").await.unwrap().unwrap();
    assert_eq!(
        q.fail(&lease, FailureClass::Permanent, "API key rejected (403)")
            .await
            .unwrap(),
        FailOutcome::Dead
    );
    assert!(q.reserve(5, "w").await.unwrap().is_none());
    let dead = q.dead_jobs(5, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadReason::Permanent);
    assert_eq!(dead[0].error, "API key rejected (403)");
    assert_eq!(dead[0].job.attempts, 0);

    assert!(!q.requeue_dead(5, "no-such-job").await.unwrap());
    assert!(!q.requeue_dead(6, &id).await.unwrap(), "other project");
    assert!(q.requeue_dead(5, &id).await.unwrap());
    assert!(!q.requeue_dead(5, &id).await.unwrap(), "already requeued");
    assert!(q.dead_jobs(5, 10).await.unwrap().is_empty());
    let lease = q.reserve(5, "w").await.unwrap().expect("requeued job runs");
    assert_eq!(lease.job.id, id);
    assert_eq!(lease.job.attempts, 0);
    q.ack(&lease, &json!({"ok": true})).await.unwrap();
    assert_eq!(q.completed(5, 10).await.unwrap()[0].job.id, id);
    cleanup(&q).await;
}

#[tokio::test]
async fn expired_lease_goes_to_another_worker_and_stale_worker_is_refused() {
    let (clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    let id = q.enqueue(&job(8, JobKind::SyncAll)).await.unwrap().job_id;
    let stale = q.reserve(8, "worker-a").await.unwrap().unwrap();
    // worker-a is killed: no renew, no ack. Before the lease runs out nobody else gets the job.
    clock.advance(ms(29_999));
    assert!(q.reserve(8, "worker-b").await.unwrap().is_none());
    assert_eq!(q.next_due(8).await.unwrap(), Some(stale.deadline));
    clock.advance(ms(1));
    assert_eq!(q.next_due(8).await.unwrap(), Some(clock.now()));
    let fresh = q.reserve(8, "worker-b").await.unwrap().expect("reclaimed");
    assert_eq!(fresh.job.id, id);
    assert_eq!(fresh.job.stalls, 1);
    assert_eq!(fresh.job.attempts, 0, "a stall is not a failed attempt");
    assert_ne!(fresh.token, stale.token);
    assert_eq!(fresh.worker_id, "worker-b");

    // The stale worker comes back: every call is refused and does not disturb worker-b.
    for res in [
        q.ack(&stale, &json!({})).await,
        q.release(&stale).await,
        q.renew(&stale).await.map(|_| ()),
        q.fail(&stale, FailureClass::Transient, "late")
            .await
            .map(|_| ()),
    ] {
        match res {
            Err(QueueError::LeaseLost { job_id }) => assert_eq!(job_id, id),
            other => panic!("stale lease must be refused, got {other:?}"),
        }
    }
    let stats = q.stats(8).await.unwrap();
    assert_eq!(stats.active.unwrap().worker_id, "worker-b");
    q.ack(&fresh, &json!({})).await.unwrap();
    assert_eq!(q.completed(8, 10).await.unwrap().len(), 1);
    cleanup(&q).await;
}

#[tokio::test]
async fn renew_after_expiry_is_refused_and_job_is_reclaimed() {
    let (clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    q.enqueue(&job(9, JobKind::SyncOrders)).await.unwrap();
    let lease = q.reserve(9, "w").await.unwrap().unwrap();
    clock.advance(ms(30_000));
    assert!(matches!(
        q.renew(&lease).await,
        Err(QueueError::LeaseLost { .. })
    ));
    let stats = q.stats(9).await.unwrap();
    assert!(stats.active.is_none());
    assert_eq!(stats.waiting, 1);
    let again = q.reserve(9, "w").await.unwrap().unwrap();
    assert_eq!(again.job.stalls, 1);
    cleanup(&q).await;
}

#[tokio::test]
async fn poison_job_that_keeps_stalling_ends_in_dead_letters() {
    let (clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    let id = q
        .enqueue(&job(10, JobKind::SyncOrder { id: 1 }))
        .await
        .unwrap()
        .job_id;
    let other = q
        .enqueue(&job(10, JobKind::SyncOrder { id: 2 }))
        .await
        .unwrap()
        .job_id;
    for stall in 0..3 {
        let lease = q.reserve(10, &format!("w{stall}")).await.unwrap().unwrap();
        assert_eq!(lease.job.id, id, "a reclaimed job goes to the front");
        assert_eq!(lease.job.stalls, stall);
        clock.advance(ms(30_001)); // worker crashes every time
    }
    // The third expiry kills it; the next reserve gets the other job instead.
    let lease = q.reserve(10, "w9").await.unwrap().unwrap();
    assert_eq!(lease.job.id, other);
    let dead = q.dead_jobs(10, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.id, id);
    assert_eq!(dead[0].reason, DeadReason::Stalled);
    assert_eq!(dead[0].job.stalls, 3);
    assert!(dead[0].error.contains("lease"), "{}", dead[0].error);
    cleanup(&q).await;
}

#[tokio::test]
async fn one_running_job_per_project_and_others_unaffected() {
    let (_clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    for i in 0..3 {
        q.enqueue(&job(11, JobKind::SyncOrder { id: i }))
            .await
            .unwrap();
    }
    q.enqueue(&job(12, JobKind::SyncOrders)).await.unwrap();
    let first = q.reserve(11, "a").await.unwrap().unwrap();
    assert!(q.reserve(11, "b").await.unwrap().is_none());
    assert!(q.reserve(11, "a").await.unwrap().is_none());
    let p12 = q
        .reserve(12, "b")
        .await
        .unwrap()
        .expect("other project runs");
    assert_eq!(p12.job.project_id, 12);
    q.ack(&first, &json!({})).await.unwrap();
    let second = q.reserve(11, "b").await.unwrap().unwrap();
    assert_eq!(second.job.kind, JobKind::SyncOrder { id: 1 });
    // A failed job frees the project too.
    q.fail(&second, FailureClass::Transient, "x").await.unwrap();
    let third = q.reserve(11, "a").await.unwrap().unwrap();
    assert_eq!(third.job.kind, JobKind::SyncOrder { id: 2 });
    cleanup(&q).await;
}

#[tokio::test]
async fn release_hands_job_back_first_without_spending_an_attempt() {
    let (_clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    let a = q
        .enqueue(&job(13, JobKind::SyncOrders))
        .await
        .unwrap()
        .job_id;
    q.enqueue(&job(13, JobKind::SyncCustomers)).await.unwrap();
    let lease = q.reserve(13, "w").await.unwrap().unwrap();
    q.release(&lease).await.unwrap();
    // Released job waits again and coalesces new identical triggers.
    let again = q.enqueue(&job(13, JobKind::SyncOrders)).await.unwrap();
    assert!(again.coalesced);
    assert_eq!(again.job_id, a);
    let lease = q.reserve(13, "w2").await.unwrap().unwrap();
    assert_eq!(lease.job.id, a);
    assert_eq!((lease.job.attempts, lease.job.stalls), (0, 0));
    cleanup(&q).await;
}

#[tokio::test]
async fn purge_removes_everything_of_one_project_only() {
    let (_clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    let prefix = q.options().key_prefix.clone();
    for i in 0..5 {
        q.enqueue(&job(14, JobKind::SyncOrder { id: i }))
            .await
            .unwrap();
    }
    q.enqueue(&job(15, JobKind::SyncOrders)).await.unwrap();
    let done = q.reserve(14, "w").await.unwrap().unwrap();
    q.ack(&done, &json!({})).await.unwrap();
    let dead = q.reserve(14, "w").await.unwrap().unwrap();
    q.fail(&dead, FailureClass::Permanent, "x").await.unwrap();
    let delayed = q.reserve(14, "w").await.unwrap().unwrap();
    q.fail(&delayed, FailureClass::Transient, "x")
        .await
        .unwrap();
    let running = q.reserve(14, "w").await.unwrap().unwrap();
    assert_eq!(q.projects_with_jobs().await.unwrap(), vec![14, 15]);

    let counts = q.purge(14).await.unwrap();
    assert_eq!(
        (
            counts.waiting,
            counts.delayed,
            counts.active,
            counts.dead,
            counts.completed
        ),
        (1, 1, 1, 1, 1)
    );
    assert!(matches!(
        q.ack(&running, &json!({})).await,
        Err(QueueError::LeaseLost { .. })
    ));
    assert_eq!(q.projects_with_jobs().await.unwrap(), vec![15]);
    assert!(q.reserve(14, "w").await.unwrap().is_none());
    assert!(q.reserve(15, "w").await.unwrap().is_some());
    q.purge(15).await.unwrap();
    assert_eq!(count_keys(&prefix).await, 0, "purge leaves no keys behind");
    cleanup(&q).await;
}

#[tokio::test]
async fn history_and_dead_letters_are_capped() {
    let (_clock, shared) = manual();
    let opts = QueueOptions {
        completed_keep: 3,
        dead_keep: 2,
        ..test_options()
    };
    let q = test_queue_with(opts, shared).await;
    let _guard = PrefixGuard::new(&q);
    for i in 0..5 {
        q.enqueue(&job(16, JobKind::SyncOrder { id: i }))
            .await
            .unwrap();
        let l = q.reserve(16, "w").await.unwrap().unwrap();
        q.ack(&l, &json!({ "i": i })).await.unwrap();
    }
    let done = q.completed(16, 10).await.unwrap();
    assert_eq!(done.len(), 3);
    assert_eq!(done[0].summary, json!({"i": 4}), "newest first");
    for i in 0..4 {
        q.enqueue(&job(16, JobKind::SyncCustomer { id: i }))
            .await
            .unwrap();
        let l = q.reserve(16, "w").await.unwrap().unwrap();
        q.fail(&l, FailureClass::Permanent, &format!("e{i}"))
            .await
            .unwrap();
    }
    let dead = q.dead_jobs(16, 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    // Trimmed dead jobs leave no job hash behind: only the project keys remain.
    let prefix = q.options().key_prefix.clone();
    q.purge(16).await.unwrap();
    assert_eq!(count_keys(&prefix).await, 0);
    cleanup(&q).await;
}

#[tokio::test]
async fn redis_down_is_a_typed_actionable_error() {
    let (_clock, shared) = manual();
    let err = JobQueue::connect("redis://127.0.0.1:1/", test_options(), shared.clone())
        .await
        .expect_err("nothing listens on port 1");
    assert!(err.is_retryable(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("127.0.0.1:1") && msg.contains("unavailable"),
        "{msg}"
    );
    let bad = JobQueue::connect(
        "redis://:secret@127.0.0.1:1/",
        test_options(),
        shared.clone(),
    )
    .await
    .expect_err("unreachable");
    assert!(
        !bad.to_string().contains("secret"),
        "password leaked: {bad}"
    );
    let invalid = JobQueue::connect("not a url", test_options(), shared)
        .await
        .expect_err("bad url");
    assert!(
        matches!(invalid, QueueError::InvalidUrl { .. }),
        "{invalid:?}"
    );
}

#[tokio::test]
async fn invalid_options_are_rejected() {
    let (_clock, shared) = manual();
    let opts = QueueOptions {
        max_attempts: 0,
        ..test_options()
    };
    let err = JobQueue::connect(&common::redis::redis_url(), opts, shared)
        .await
        .expect_err("zero attempts");
    assert!(matches!(err, QueueError::InvalidOptions(_)), "{err:?}");
}

#[tokio::test]
async fn pending_lists_waiting_then_delayed_jobs() {
    let (clock, shared) = manual();
    let q = test_queue(shared).await;
    let _guard = PrefixGuard::new(&q);
    let first = q.enqueue(&job(3, JobKind::SyncAll)).await.unwrap();
    let second = q
        .enqueue(&job(3, JobKind::SyncOrder { id: 42 }))
        .await
        .unwrap();
    let lease = q.reserve(3, "w1").await.unwrap().expect("first job is due");
    assert_eq!(lease.job.id, first.job_id);
    let retry_at = match q
        .fail(&lease, FailureClass::Transient, "boom")
        .await
        .unwrap()
    {
        FailOutcome::RetryAt(at) => at,
        other => panic!("expected a retry, got {other:?}"),
    };
    let third = q.enqueue(&job(3, JobKind::SyncCustomers)).await.unwrap();

    let pending = q.pending(3, 10).await.unwrap();
    let listed: Vec<(&str, bool)> = pending
        .iter()
        .map(|p| (p.job.id.as_str(), p.delayed))
        .collect();
    assert_eq!(
        listed,
        vec![
            (second.job_id.as_str(), false),
            (third.job_id.as_str(), false),
            (first.job_id.as_str(), true),
        ]
    );
    assert_eq!(pending[2].run_at, Some(retry_at));
    assert!(retry_at > clock.now());
    assert_eq!(pending[2].job.attempts, 1);
    assert_eq!(pending[0].job.kind, JobKind::SyncOrder { id: 42 });
    assert_eq!(pending[0].run_at, None);
    assert_eq!(q.pending(3, 2).await.unwrap().len(), 2);
    assert!(q.pending(4, 10).await.unwrap().is_empty());
}
