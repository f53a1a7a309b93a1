//! Job vocabulary shared by producers (scheduler, control socket), workers and the queue itself:
//! what a job is, how it failed, and the views the inspect commands return. Pure data, no Redis.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a job does for its project.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    /// Incremental sync of the orders stream.
    SyncOrders,
    /// Incremental sync of the customers stream.
    SyncCustomers,
    /// Both streams (the worker enqueues or runs `sync_orders` and `sync_customers`).
    SyncAll,
    /// Re-sync one order by its RetailCRM id.
    SyncOrder {
        /// RetailCRM order id.
        id: i64,
    },
    /// Re-sync one customer by its RetailCRM id.
    SyncCustomer {
        /// RetailCRM customer id.
        id: i64,
    },
    /// Full refresh of the orders stream: forget its cursor and read every order again (a
    /// snapshot, then history from a new anchor). Repairs rows changed behind the daemon's back.
    ResyncOrders,
    /// Full refresh of the customers stream.
    ResyncCustomers,
    /// Full refresh of both streams (customers first).
    ResyncAll,
    /// Two-way sync: push the project's pending outbox rows to RetailCRM.
    Push,
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobKind::SyncOrders => f.write_str("sync_orders"),
            JobKind::SyncCustomers => f.write_str("sync_customers"),
            JobKind::SyncAll => f.write_str("sync_all"),
            JobKind::SyncOrder { id } => write!(f, "sync_order({id})"),
            JobKind::SyncCustomer { id } => write!(f, "sync_customer({id})"),
            JobKind::ResyncOrders => f.write_str("resync_orders"),
            JobKind::ResyncCustomers => f.write_str("resync_customers"),
            JobKind::ResyncAll => f.write_str("resync_all"),
            JobKind::Push => f.write_str("push"),
        }
    }
}

impl JobKind {
    /// The kind without its entity id (`sync_order`), for metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::SyncOrders => "sync_orders",
            JobKind::SyncCustomers => "sync_customers",
            JobKind::SyncAll => "sync_all",
            JobKind::SyncOrder { .. } => "sync_order",
            JobKind::SyncCustomer { .. } => "sync_customer",
            JobKind::ResyncOrders => "resync_orders",
            JobKind::ResyncCustomers => "resync_customers",
            JobKind::ResyncAll => "resync_all",
            JobKind::Push => "push",
        }
    }

    /// The streams a job of this kind walks to the end of their history.
    pub fn walks(&self) -> &'static [crate::model::Stream] {
        use crate::model::Stream;
        match self {
            JobKind::SyncOrders | JobKind::ResyncOrders => &[Stream::Orders],
            JobKind::SyncCustomers | JobKind::ResyncCustomers => &[Stream::Customers],
            JobKind::SyncAll | JobKind::ResyncAll => &Stream::ALL,
            JobKind::SyncOrder { .. } | JobKind::SyncCustomer { .. } | JobKind::Push => &[],
        }
    }
    /// True for the kinds that sync every enabled stream of the project (`sync_all`,
    /// `resync_all`): while one runs, a periodic `sync_all` would only repeat it.
    pub fn covers_project(&self) -> bool {
        matches!(self, JobKind::SyncAll | JobKind::ResyncAll)
    }
}

/// Error from parsing a [`JobKind`] written as by its `Display` (e.g. `sync_order(42)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job kind {0:?}; expected sync_orders, sync_customers, sync_all, sync_order(ID), \
     sync_customer(ID), resync_orders, resync_customers or resync_all"
)]
pub struct ParseJobKindError(String);

impl FromStr for JobKind {
    type Err = ParseJobKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let err = || ParseJobKindError(s.to_owned());
        match s {
            "sync_orders" => return Ok(JobKind::SyncOrders),
            "sync_customers" => return Ok(JobKind::SyncCustomers),
            "sync_all" => return Ok(JobKind::SyncAll),
            "resync_orders" => return Ok(JobKind::ResyncOrders),
            "resync_customers" => return Ok(JobKind::ResyncCustomers),
            "resync_all" => return Ok(JobKind::ResyncAll),
            "push" => return Ok(JobKind::Push),
            _ => {}
        }
        let (name, rest) = s.split_once('(').ok_or_else(err)?;
        let id: i64 = rest
            .strip_suffix(')')
            .ok_or_else(err)?
            .trim()
            .parse()
            .map_err(|_| err())?;
        match name.trim() {
            "sync_order" => Ok(JobKind::SyncOrder { id }),
            "sync_customer" => Ok(JobKind::SyncCustomer { id }),
            _ => Err(err()),
        }
    }
}

/// Who asked for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The per-project schedule.
    Schedule,
    /// An operator (control socket / CLI).
    Manual,
    /// A follow-up enqueued by a worker (e.g. a continuation).
    Retry,
    /// A RetailCRM trigger called the project's webhook.
    Webhook,
    /// The platform wrote the two-way sync outbox.
    Outbox,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Retry => "retry",
            Trigger::Webhook => "webhook",
            Trigger::Outbox => "outbox",
        })
    }
}

/// A job as submitted to [`crate::queue::JobQueue::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Project the job belongs to.
    pub project_id: i64,
    /// What to do.
    pub kind: JobKind,
    /// Optional lower bound for incremental syncs (RetailCRM history id).
    pub since_id: Option<i64>,
    /// Who asked for it.
    pub trigger: Trigger,
}

/// A job as stored in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Queue-assigned id (UUID, simple form).
    pub id: String,
    /// Project the job belongs to.
    pub project_id: i64,
    /// What to do.
    pub kind: JobKind,
    /// Optional lower bound for incremental syncs.
    pub since_id: Option<i64>,
    /// Who asked for it.
    pub trigger: Trigger,
    /// Failed attempts so far (transient failures only; rate limits and stalls do not count).
    pub attempts: u32,
    /// Attempts allowed before the job goes to dead letters.
    pub max_attempts: u32,
    /// Times a worker's lease on this job expired without an ack.
    pub stalls: u32,
    /// When the job was first enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// Last failure message, if any.
    pub last_error: Option<String>,
}

/// Immutable part of a job, stored as JSON in the job hash's `data` field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobData {
    pub project_id: i64,
    pub kind: JobKind,
    pub since_id: Option<i64>,
    pub trigger: Trigger,
    pub enqueued_at_ms: i64,
}

/// Result of [`crate::queue::JobQueue::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id (the existing job's id when coalesced).
    pub job_id: String,
    /// True if an identical job was already waiting and no new job was created.
    pub coalesced: bool,
}

/// A reserved job: the holder may work on it until `deadline` and must renew before then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job: Job,
    /// Secret proving ownership; stale tokens are refused by renew/ack/fail/release.
    pub token: String,
    /// When the lease runs out unless renewed.
    pub deadline: DateTime<Utc>,
    /// Worker that holds the lease.
    pub worker_id: String,
    /// When the job was reserved.
    pub reserved_at: DateTime<Utc>,
}

/// How a job failed, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Worth retrying: attempts += 1, retry with exponential backoff, dead after the last attempt.
    Transient,
    /// Retrying cannot help (bad API key, missing scope): dead letters at once.
    Permanent,
    /// The remote asked us to slow down: retry after `retry_after`, attempts unchanged.
    RateLimited {
        /// How long to wait before the job becomes runnable again.
        retry_after: Duration,
    },
    /// A service the job needs (Postgres) is unreachable; the job is not at fault: retry after
    /// `retry_after`, attempts unchanged, for as long as the outage lasts.
    Unavailable {
        /// How long to wait before the job becomes runnable again.
        retry_after: Duration,
    },
}

/// What [`crate::queue::JobQueue::fail`] did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// The job will be runnable again at this time.
    RetryAt(DateTime<Utc>),
    /// The job went to dead letters.
    Dead,
}

/// Why a job is in dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// It failed `max_attempts` times.
    Exhausted,
    /// It failed with a permanent error.
    Permanent,
    /// Its lease expired `max_stalls` times (poison job or crash loop).
    Stalled,
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeadReason::Exhausted => "exhausted",
            DeadReason::Permanent => "permanent",
            DeadReason::Stalled => "stalled",
        })
    }
}

/// A job not yet running: waiting for a worker, or delayed until its retry time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJob {
    /// The job.
    pub job: Job,
    /// True when it waits for a retry time (`run_at`), false when it is due now.
    pub delayed: bool,
    /// When a delayed job becomes due.
    pub run_at: Option<DateTime<Utc>>,
}

/// A job in dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    /// The job as it died.
    pub job: Job,
    /// The last error (what to show the operator).
    pub error: String,
    /// Why it died.
    pub reason: DeadReason,
    /// When it died.
    pub died_at: DateTime<Utc>,
}

/// A successfully completed job in the per-project history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedJob {
    /// The job as it ran.
    pub job: Job,
    /// The worker's summary (counts etc.), as given to `ack`.
    pub summary: serde_json::Value,
    /// Worker that completed it.
    pub worker_id: String,
    /// When the final (successful) run was reserved.
    pub started_at: DateTime<Utc>,
    /// When it was acknowledged.
    pub finished_at: DateTime<Utc>,
}

/// The job currently running for a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveInfo {
    /// The job.
    pub job: Job,
    /// Worker holding the lease.
    pub worker_id: String,
    /// When the lease runs out unless renewed (may be in the past if the holder died and nobody
    /// has reclaimed it yet).
    pub deadline: DateTime<Utc>,
}

/// Queue depth for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// Jobs runnable now.
    pub waiting: u64,
    /// Jobs waiting for a retry time.
    pub delayed: u64,
    /// The running job, if any.
    pub active: Option<ActiveInfo>,
    /// Jobs in dead letters.
    pub dead: u64,
    /// Entries in the completed history.
    pub completed: u64,
}

/// What [`crate::queue::JobQueue::purge`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Waiting jobs removed.
    pub waiting: u64,
    /// Delayed jobs removed.
    pub delayed: u64,
    /// Active jobs removed (their holders will get `LeaseLost`).
    pub active: u64,
    /// Dead letters removed.
    pub dead: u64,
    /// Completed-history entries removed.
    pub completed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_display_and_parse_round_trip() {
        let kinds = [
            JobKind::SyncOrders,
            JobKind::SyncCustomers,
            JobKind::SyncAll,
            JobKind::SyncOrder { id: 42 },
            JobKind::SyncCustomer { id: -7 },
            JobKind::ResyncOrders,
            JobKind::ResyncCustomers,
            JobKind::ResyncAll,
        ];
        for k in kinds {
            let shown = k.to_string();
            assert_eq!(shown.parse::<JobKind>(), Ok(k.clone()), "{shown}");
        }
        assert_eq!(JobKind::SyncOrder { id: 42 }.to_string(), "sync_order(42)");
        assert!("sync_order(x)".parse::<JobKind>().is_err());
        assert!("sync_orderz".parse::<JobKind>().is_err());
        assert!("other(1)".parse::<JobKind>().is_err());
        assert_eq!(JobKind::ResyncAll.to_string(), "resync_all");
        assert!(JobKind::ResyncAll.covers_project() && JobKind::SyncAll.covers_project());
        assert!(!JobKind::ResyncOrders.covers_project());
    }

    #[test]
    fn kind_serde_is_tagged() {
        let v = serde_json::to_value(JobKind::SyncOrder { id: 5 }).unwrap();
        assert_eq!(v, serde_json::json!({"type": "sync_order", "id": 5}));
        let back: JobKind =
            serde_json::from_value(serde_json::json!({"type": "sync_all"})).unwrap();
        assert_eq!(back, JobKind::SyncAll);
    }
}
