//! Running one leased job to its end: the part of the SyncActor that lives on the tokio pool.
//!
//! The engine runs in its own task so a panic is caught as a `JoinError` and becomes a failed
//! attempt, never a dead daemon. Around it, this runner renews the lease, records the run in
//! `sync_runs`, updates the status board, and finally acks or fails the job with the error's
//! class (transient -> retry with backoff, permanent -> dead at once, rate limited -> delayed
//! without spending an attempt). On shutdown past the grace period the job is aborted and handed
//! back to the queue without spending an attempt.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, warn};

use super::board::{LiveError, LiveJob, LiveState, StatusBoard};
use crate::clock::SharedClock;
use crate::control::protocol::{FinishedJob, JobOutcome};
use crate::crm::{CrmClient, ErrorClass};
use crate::model::Stream;
use crate::queue::{FailOutcome, FailureClass, JobKind, JobQueue, Lease, QueueError};
use crate::store::{Integration, RunOutcome, Store};
use crate::sync::{Engine, JobSpec, Progress, RunCounts, SyncError};

/// How long a rate-limited job waits before it is tried again (attempts unchanged).
pub const RATE_LIMIT_RETRY: Duration = Duration::from_secs(60);

/// Everything a job run needs; cloned per job.
#[derive(Clone)]
pub struct JobDeps {
    pub store: Store,
    pub queue: JobQueue,
    pub client: CrmClient,
    pub integration: Integration,
    pub page_size: u32,
    pub board: StatusBoard,
    pub clock: SharedClock,
    /// Cancelled when the job must stop now (shutdown grace spent).
    pub abort: CancellationToken,
}

/// How a job ended, for the actor that ran it.
#[derive(Debug)]
pub enum JobEnd {
    Succeeded,
    Failed { permanent: bool },
    HandedBack,
    LeaseLost,
}

enum Failure {
    Sync(SyncError),
    Panic(String),
    LeaseLost,
    Aborted,
}

/// The engine's view of a queue job; `None` for `push`, which the pusher runs.
pub fn job_spec(kind: &JobKind, since_id: Option<i64>) -> Option<JobSpec> {
    Some(match kind {
        JobKind::SyncOrders => JobSpec::Orders { since_id },
        JobKind::SyncCustomers => JobSpec::Customers { since_id },
        JobKind::SyncAll => JobSpec::All { since_id },
        JobKind::SyncOrder { id } => JobSpec::Order { id: *id },
        JobKind::SyncCustomer { id } => JobSpec::Customer { id: *id },
        JobKind::ResyncOrders => JobSpec::Resync {
            stream: Some(Stream::Orders),
        },
        JobKind::ResyncCustomers => JobSpec::Resync {
            stream: Some(Stream::Customers),
        },
        JobKind::ResyncAll => JobSpec::Resync { stream: None },
        JobKind::Push => return None,
    })
}

/// Runs `lease`'s job to the end and settles it with the queue.
pub async fn run_job(deps: JobDeps, lease: Lease) -> JobEnd {
    let project_id = deps.integration.project_id;
    let job_id = lease.job.id.clone();
    let job_kind = lease.job.kind.to_string();
    let span = tracing::info_span!("job", project_id, job_id = %job_id, job_kind = %job_kind);
    run_job_inner(deps, lease).instrument(span).await
}

async fn run_job_inner(deps: JobDeps, mut lease: Lease) -> JobEnd {
    let project_id = deps.integration.project_id;
    let job = lease.job.clone();
    let kind = job.kind.to_string();
    let started = Instant::now();
    let walk_started = deps.clock.now();
    let progress = Progress::new();
    deps.board.update(project_id, |p| {
        p.state = LiveState::Running;
        p.running = Some(LiveJob {
            job_id: job.id.clone(),
            kind: kind.clone(),
            started_at: deps.clock.now(),
            progress: progress.clone(),
        });
    });
    info!(attempt = job.attempts + 1, trigger = ?job.trigger, "job started");
    let run_id = match deps
        .store
        .start_run(
            project_id,
            &job.id,
            &kind,
            &format!("{:?}", job.trigger).to_lowercase(),
        )
        .await
    {
        Ok(id) => Some(id),
        Err(e) => {
            warn!(error = %e, "could not record the run start in sync_runs; the job goes on");
            None
        }
    };

    let engine = Engine::new(
        deps.store.clone(),
        deps.client.clone(),
        deps.integration.clone(),
        deps.page_size,
    )
    .with_job_id(job.id.to_string());
    let engine_progress = progress.clone();
    let mut task = match job_spec(&job.kind, job.since_id) {
        Some(spec) => {
            tokio::spawn(async move { engine.run(spec, &engine_progress).await }.in_current_span())
        }
        None => {
            let pusher = crate::sync::push::Pusher::new(
                deps.store.clone(),
                deps.client.clone(),
                deps.integration.clone(),
            );
            tokio::spawn(
                async move {
                    pusher.run().await.map(|pushed| RunCounts {
                        pushed: Some(pushed),
                        ..RunCounts::default()
                    })
                }
                .in_current_span(),
            )
        }
    };

    // The job's life, one `select!` over three events, whichever comes first:
    // - the engine (or pusher) task ends: its result, or a panic as a `JoinError`, is the
    //   attempt's outcome;
    // - the renewal tick (a third of the lease): the lease is extended; a lease found lost
    //   (another worker reclaimed it after Redis was away longer than the lease) aborts the
    //   task at once, since its next commit would be refused by the cursor compare-and-set
    //   anyway; a renewal that merely fails (Redis down) is retried at the next tick;
    // - `abort` (grace period spent, or a second SIGTERM): the task is aborted and awaited, so
    //   no half-done batch is left in flight (commits run on their own task, see
    //   `Engine::commit_detached`), and the job is handed back without spending an attempt.
    let renew_every = lease_renew_interval(&lease, deps.clock.now());
    let mut renew = tokio::time::interval(renew_every);
    renew.tick().await;
    let result: Result<RunCounts, Failure> = loop {
        tokio::select! {
            joined = &mut task => break outcome_of(joined),
            _ = renew.tick() => {
                match deps.queue.renew(&lease).await {
                    Ok(renewed) => lease = renewed,
                    Err(QueueError::LeaseLost { .. }) => {
                        task.abort();
                        break Err(Failure::LeaseLost);
                    }
                    Err(e) => warn!(error = %e, "lease renewal failed; will try again"),
                }
            }
            _ = deps.abort.cancelled() => {
                task.abort();
                let _ = (&mut task).await;
                break Err(Failure::Aborted);
            }
        }
    };

    let duration_ms = started.elapsed().as_millis() as u64;
    let end = settle(&deps, &lease, run_id, result, duration_ms, walk_started).await;
    crate::metrics::metrics().job_finished(
        project_id,
        job.kind.name(),
        match &end {
            JobEnd::Succeeded => "succeeded",
            JobEnd::Failed { permanent: true } => "dead",
            JobEnd::Failed { permanent: false } => "retrying",
            JobEnd::HandedBack => "handed_back",
            JobEnd::LeaseLost => "lease_lost",
        },
        started.elapsed(),
    );
    deps.board.update(project_id, |p| {
        p.running = None;
        if p.state == LiveState::Running {
            p.state = LiveState::Idle;
        }
    });
    end
}

async fn settle(
    deps: &JobDeps,
    lease: &Lease,
    run_id: Option<i64>,
    result: Result<RunCounts, Failure>,
    duration_ms: u64,
    walk_started: chrono::DateTime<Utc>,
) -> JobEnd {
    let project_id = deps.integration.project_id;
    let now = deps.clock.now();
    match result {
        Ok(counts) => {
            let summary = serde_json::json!({ "counts": counts, "duration_ms": duration_ms });
            retry_redis(|| deps.queue.ack(lease, &summary)).await;
            finish(deps, run_id, RunOutcome::Succeeded, &summary, None).await;
            deps.board.update(project_id, |p| {
                p.last_success_at = Some(now);
                for stream in lease.job.kind.walks() {
                    if !counts.skipped_streams.contains(stream) {
                        p.walked(*stream, walk_started);
                    }
                }
                p.last_finished = Some(FinishedJob {
                    job_id: lease.job.id.clone(),
                    kind: lease.job.kind.to_string(),
                    finished_at: now,
                    outcome: JobOutcome::Succeeded,
                    message: None,
                });
            });
            info!(
                duration_ms,
                fetched = counts.fetched,
                created = counts.created,
                updated = counts.updated,
                "job succeeded"
            );
            if counts.pushed.as_ref().is_some_and(|p| p.more) {
                // A long outbox goes on in the next job, after whatever pulls wait.
                let next = crate::queue::NewJob {
                    project_id,
                    kind: JobKind::Push,
                    since_id: None,
                    trigger: crate::queue::Trigger::Retry,
                };
                if let Err(e) = deps.queue.enqueue(&next).await {
                    warn!(error = %e, "could not enqueue the next push job; the outbox sweep will");
                }
            }
            if let Some(lag) = measure_cursor_lag(deps).await {
                deps.board.update(project_id, |p| p.cursor_lag = Some(lag));
            }
            JobEnd::Succeeded
        }
        Err(Failure::Aborted) => {
            retry_redis(|| deps.queue.release(lease)).await;
            let msg = "the daemon stopped before the job finished; it was handed back to the queue";
            finish(
                deps,
                run_id,
                RunOutcome::Cancelled,
                &serde_json::json!({ "duration_ms": duration_ms }),
                Some(msg),
            )
            .await;
            warn!(duration_ms, "job aborted at shutdown and handed back");
            JobEnd::HandedBack
        }
        Err(Failure::LeaseLost) => {
            let msg = "the job's lease was lost (Redis unreachable for longer than the lease?); \
                       another worker may run it; this run stopped";
            finish(
                deps,
                run_id,
                RunOutcome::Cancelled,
                &serde_json::json!({ "duration_ms": duration_ms }),
                Some(msg),
            )
            .await;
            warn!(duration_ms, "{msg}");
            JobEnd::LeaseLost
        }
        Err(failure) => {
            let (queue_class, message) = classify(&failure, deps.queue.options().backoff_base);
            let permanent = matches!(queue_class, FailureClass::Permanent);
            let outcome = retry_redis(|| deps.queue.fail(lease, queue_class, &message)).await;
            finish(
                deps,
                run_id,
                RunOutcome::Failed,
                &serde_json::json!({ "duration_ms": duration_ms }),
                Some(&message),
            )
            .await;
            let finished_outcome = match outcome {
                Some(FailOutcome::RetryAt(_)) => JobOutcome::Retrying,
                // Not settled: the lease expires and the job runs again.
                None => JobOutcome::Retrying,
                Some(FailOutcome::Dead) => JobOutcome::Dead,
            };
            deps.board.update(project_id, |p| {
                p.last_error = Some(LiveError {
                    at: now,
                    message: message.to_string(),
                    permanent,
                });
                p.last_finished = Some(FinishedJob {
                    job_id: lease.job.id.clone(),
                    kind: lease.job.kind.to_string(),
                    finished_at: now,
                    outcome: finished_outcome,
                    message: Some(message.to_string()),
                });
            });
            match outcome {
                Some(FailOutcome::RetryAt(at)) => {
                    warn!(duration_ms, error = %message, retry_at = %at, "job failed; will retry")
                }
                Some(FailOutcome::Dead) => {
                    error!(duration_ms, error = %message, "job failed for good; moved to dead letters")
                }
                None => {
                    error!(duration_ms, error = %message, "job failed and could not be settled in Redis; its lease will expire and it will run again")
                }
            }
            JobEnd::Failed { permanent }
        }
    }
}

/// How many history records RetailCRM has beyond our cursors (summed over the enabled
/// streams), measured right after a successful run: 0 means the run caught up; more means
/// changes arrived while it ran (the next run takes them). Best effort: `None` when RetailCRM or
/// Postgres does not answer within a few seconds, which is logged at debug and otherwise
/// ignored (the job itself succeeded).
async fn measure_cursor_lag(deps: &JobDeps) -> Option<i64> {
    let project_id = deps.integration.project_id;
    let measure = async {
        let mut lag = 0i64;
        for stream in crate::model::Stream::ALL {
            let enabled = match stream {
                crate::model::Stream::Orders => deps.integration.sync_orders,
                crate::model::Stream::Customers => deps.integration.sync_customers,
            };
            if !enabled {
                continue;
            }
            let cursor = deps
                .store
                .load_cursor(project_id, stream)
                .await
                .map_err(|e| e.to_string())?;
            let Some(since) = cursor.since_id else {
                continue;
            };
            // One request of `limit=20` per stream: `totalCount` above the cursor.
            let backlog = deps
                .client
                .history_backlog(stream, since)
                .await
                .map_err(|e| e.to_string())?;
            let stream_lag = backlog.map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX));
            crate::metrics::metrics().set_history_lag(project_id, stream, stream_lag);
            lag = lag.saturating_add(stream_lag);
        }
        Ok::<i64, String>(lag)
    };
    match tokio::time::timeout(Duration::from_secs(10), measure).await {
        Ok(Ok(lag)) => Some(lag),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "could not measure the cursor lag");
            None
        }
        Err(_) => {
            tracing::debug!("measuring the cursor lag timed out");
            None
        }
    }
}

async fn finish(
    deps: &JobDeps,
    run_id: Option<i64>,
    outcome: RunOutcome,
    counts: &serde_json::Value,
    error: Option<&str>,
) {
    if let Some(run_id) = run_id
        && let Err(e) = deps.store.finish_run(run_id, outcome, counts, error).await
    {
        warn!(error = %e, run_id, "could not record the run end in sync_runs");
    }
}

/// Tries a Redis settlement a few times (Redis may be restarting); `None` if it never worked,
/// in which case the lease expires and the job runs again (harmless: upserts are idempotent).
async fn retry_redis<T, F, Fut>(mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
{
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=5 {
        match op().await {
            Ok(v) => return Some(v),
            Err(QueueError::LeaseLost { .. }) => {
                warn!("lease lost before the job could be settled; another worker owns it now");
                return None;
            }
            Err(e) => {
                warn!(error = %e, attempt, "settling the job in Redis failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    None
}

/// Renew at a third of the lease, so two renewals can fail before it expires.
fn lease_renew_interval(lease: &Lease, now: chrono::DateTime<Utc>) -> Duration {
    let left = (lease.deadline - now)
        .to_std()
        .unwrap_or(Duration::from_secs(3));
    (left / 3).max(Duration::from_millis(200))
}

/// What the engine task's end means: its result, a panic (a failed attempt, never a dead
/// daemon), or an abort.
fn outcome_of(
    joined: Result<Result<RunCounts, SyncError>, tokio::task::JoinError>,
) -> Result<RunCounts, Failure> {
    match joined {
        Ok(Ok(counts)) => Ok(counts),
        Ok(Err(e)) => Err(Failure::Sync(e)),
        Err(e) if e.is_panic() => Err(Failure::Panic(panic_message(e.into_panic()))),
        Err(_) => Err(Failure::Aborted),
    }
}

/// How the queue should settle a failed attempt, and the message to record. A job that failed
/// only because Postgres was unreachable waits `store_retry` without spending an attempt: an
/// outage of the database must not push jobs into dead letters.
fn classify(failure: &Failure, store_retry: Duration) -> (FailureClass, String) {
    if let Failure::Sync(e) = failure
        && e.is_store_unavailable()
    {
        return (
            FailureClass::Unavailable {
                retry_after: store_retry,
            },
            format!("{e}; the job waits for Postgres without spending an attempt"),
        );
    }
    let (class, message) = match failure {
        Failure::Sync(e) => (e.class(), e.to_string()),
        Failure::Panic(m) => (
            ErrorClass::Transient,
            format!("the sync job panicked: {m}; this is a bug, please report it with the logs"),
        ),
        Failure::LeaseLost | Failure::Aborted => (
            ErrorClass::Transient,
            "the job stopped before it finished".to_string(),
        ),
    };
    let queue_class = match class {
        ErrorClass::Permanent => FailureClass::Permanent,
        ErrorClass::Transient => FailureClass::Transient,
        ErrorClass::RateLimited => FailureClass::RateLimited {
            retry_after: RATE_LIMIT_RETRY,
        },
    };
    (queue_class, message)
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[tokio::test]
    async fn a_panicking_job_is_a_transient_failed_attempt() {
        let joined = tokio::spawn(async {
            if std::hint::black_box(true) {
                panic!("index out of bounds in the mapper");
            }
            Ok::<RunCounts, SyncError>(RunCounts::default())
        })
        .await;
        let failure = outcome_of(joined).expect_err("a panic is a failure");
        assert!(matches!(&failure, Failure::Panic(m) if m.contains("index out of bounds")));
        let (class, message) = classify(&failure, Duration::from_secs(5));
        assert_eq!(class, FailureClass::Transient);
        assert!(
            message.contains("panicked: index out of bounds"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn results_and_aborts_are_told_apart() {
        let ok = tokio::spawn(async { Ok::<_, SyncError>(RunCounts::default()) }).await;
        assert_eq!(outcome_of(ok).ok(), Some(RunCounts::default()));

        let inactive = tokio::spawn(async { Err::<RunCounts, _>(SyncError::Inactive(9)) }).await;
        let failure = outcome_of(inactive).expect_err("an engine error is a failure");
        assert_eq!(
            classify(&failure, Duration::from_secs(5)).0,
            FailureClass::Permanent
        );

        // Postgres unreachable: wait, do not spend an attempt. A failed statement is transient.
        let down = Failure::Sync(SyncError::Store(StoreError::Connect {
            target: "127.0.0.1:5432/db".into(),
            detail: "connection refused".into(),
        }));
        let (class, message) = classify(&down, Duration::from_secs(7));
        assert_eq!(
            class,
            FailureClass::Unavailable {
                retry_after: Duration::from_secs(7)
            }
        );
        assert!(message.contains("without spending an attempt"), "{message}");
        // The connection dropped mid-transaction (diesel-async: no SQLSTATE, UnableToSendCommand).
        let dropped = Failure::Sync(SyncError::Store(StoreError::Query {
            op: "transaction",
            source: diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UnableToSendCommand,
                Box::new("connection closed".to_string()),
            ),
        }));
        assert!(matches!(
            classify(&dropped, Duration::from_secs(7)).0,
            FailureClass::Unavailable { .. }
        ));
        let bad_row = Failure::Sync(SyncError::Store(StoreError::Invalid("x".into())));
        assert_eq!(
            classify(&bad_row, Duration::from_secs(7)).0,
            FailureClass::Transient
        );

        let task = tokio::spawn(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, SyncError>(RunCounts::default())
        });
        task.abort();
        assert!(matches!(outcome_of(task.await), Err(Failure::Aborted)));
    }
}
