//! Durable per-project job queue in Redis: leases, retries with backoff, dead letters,
//! coalescing, and one running job per project.
//!
//! Why our own queue instead of a crate: we need, at once, leases that survive `kill -9` (the job
//! returns after the lease runs out, and a job that keeps stalling ends in dead letters instead of
//! crash-looping), exponential retries stored in Redis (not sleeping in the worker), rate limits
//! and database outages that do not spend attempts, coalescing of identical waiting jobs, and a
//! per-project queue so one busy project never delays another. See DESIGN.md §5 and
//! reference/anchors.md part A.
//!
//! # Layout (all keys under `key_prefix`)
//! - `<p>:job:<id>` HASH: `data` (immutable JSON), `attempts`, `max_attempts`, `stalls`, `state`,
//!   `last_error`, `dedup`, and lease/dead-letter fields;
//! - per project `<p>:p:<project_id>:` + `wait` (LIST, FIFO), `delayed` (ZSET by due ms), `active`
//!   (HASH: job, token, worker, deadline, reserved_at), `dedup` (HASH coalescing key -> waiting
//!   job id), `dead` (ZSET by death ms, capped), `completed` (LIST of JSON, capped);
//! - `<p>:projects` SET of projects with waiting, delayed or active work.
//!
//! Every state change is one Lua script (`scripts/*.lua`), so it is atomic; all times come from
//! the injected [`SharedClock`] (ms scores), so tests move time instead of sleeping. Expired
//! leases are reclaimed lazily by the next `reserve` (or by the stale holder's own
//! renew/ack/fail), which is enough because a project's jobs only move when someone reserves.
//!
//! Durability: a job is written to Redis before `enqueue` returns; surviving a Redis restart
//! needs Redis persistence (`appendonly yes`, `maxmemory-policy noeviction`).
//! Delivery is at-least-once: a job whose lease expires runs again elsewhere.
//!
//! # How a worker uses it
//! 1. `reserve(project_id, worker_id)`; on `None`, sleep until `next_due(project_id)` (capped,
//!    and woken early when this process enqueues for the project);
//! 2. while working, `renew(&lease)` every [`JobQueue::renew_every`]; on `LeaseLost` abandon the
//!    job without reporting (someone else owns it now);
//! 3. finish with `ack`, or `fail` with a [`FailureClass`]; on shutdown, `release`.
//!
//! Limits: coalescing looks only at *waiting* jobs (not delayed retries or the running job); all
//! hosts sharing a prefix must have synchronised clocks (lease deadlines and retry times are
//! their wall-clock ms); scripts address job keys they are not given, so Redis Cluster is not
//! supported (a single Redis or Sentinel is).

mod durability;
mod error;
mod job;
pub mod keys;
mod scripts;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script, ScriptInvocation};
use tracing::{debug, info, warn};

use crate::clock::SharedClock;

pub use durability::RedisDurability;
pub use error::QueueError;
pub use job::{
    ActiveInfo, CompletedJob, DeadJob, DeadReason, Enqueued, FailOutcome, FailureClass, Job,
    JobKind, Lease, NewJob, ParseJobKindError, PendingJob, PurgeCounts, QueueStats, Trigger,
};

use job::JobData;

/// Result alias for queue operations.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// A Redis hash as returned by `HGETALL`.
type Hash = HashMap<String, String>;
/// Reply of `reserve.lua`: job id, token, deadline ms, reserved-at ms, job hash.
type ReserveReply = (String, String, i64, i64, Hash);
/// Reply of `stats.lua`: waiting, delayed, dead, completed, active hash, active job hash.
type StatsReply = (u64, u64, u64, u64, Hash, Hash);

/// Upper bound of the random extra added to a retry delay (fraction of the delay).
const RETRY_JITTER: f64 = 0.2;
/// How long to wait for a TCP connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for a reply. Longer than redis 1.x's 500 ms default because purging a large
/// project is one script; the queue never issues blocking commands on this connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Tunables of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// Prefix of every Redis key the queue owns (e.g. `rcsync`); lets several deployments or
    /// tests share one Redis.
    pub key_prefix: String,
    /// Attempts (runs ending in a transient failure) before a job goes to dead letters.
    pub max_attempts: u32,
    /// Retry delay after the first failure; doubles with each further failure (plus 0-20% jitter).
    pub backoff_base: Duration,
    /// How long a reservation lasts without renewal; a crashed worker's job returns after this.
    pub lease: Duration,
    /// Lease expiries after which a job is dead-lettered as stalled.
    pub max_stalls: u32,
    /// Completed jobs kept per project for inspection.
    pub completed_keep: usize,
    /// Dead letters kept per project (oldest dropped first).
    pub dead_keep: usize,
}

impl QueueOptions {
    /// The options the config asks for (`[redis] key_prefix`, the retry settings of `[sync]`).
    pub fn from_settings(settings: &crate::config::Settings) -> QueueOptions {
        QueueOptions {
            key_prefix: settings.redis.key_prefix.clone(),
            max_attempts: settings.sync.max_attempts,
            backoff_base: Duration::from_secs(settings.sync.backoff_base_secs),
            lease: Duration::from_secs(settings.sync.lease_secs),
            max_stalls: settings.sync.max_stalls,
            ..QueueOptions::default()
        }
    }
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            key_prefix: "rcsync".to_owned(),
            max_attempts: 3,
            backoff_base: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            max_stalls: 3,
            completed_keep: 100,
            dead_keep: 1000,
        }
    }
}

impl QueueOptions {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(QueueError::InvalidOptions(m.to_owned()));
        if self.key_prefix.is_empty() || self.key_prefix.contains(char::is_whitespace) {
            return bad("key_prefix must be non-empty and contain no whitespace");
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1");
        }
        if self.max_stalls == 0 {
            return bad("max_stalls must be at least 1");
        }
        if self.lease < Duration::from_millis(100) {
            return bad("lease must be at least 100 ms");
        }
        if self.dead_keep == 0 {
            return bad("dead_keep must be at least 1");
        }
        Ok(())
    }
}

/// A unique id for this process start (`hostname:pid:uuid`), so a restarted process never
/// inherits the identity, and thus the leases, of its previous life.
pub fn new_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Handle to the queue; cheap to clone (one multiplexed, auto-reconnecting connection).
#[derive(Clone)]
pub struct JobQueue {
    conn: ConnectionManager,
    opts: Arc<QueueOptions>,
    clock: SharedClock,
    /// Host:port of Redis for messages (never the URL, which may hold a password).
    addr: Arc<str>,
}

impl fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobQueue")
            .field("addr", &self.addr)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn ms_to_duration_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl JobQueue {
    /// Connects to Redis. Fails with [`QueueError::Unavailable`] if Redis cannot be reached
    /// (after the client's own short reconnect attempts) and [`QueueError::InvalidUrl`] /
    /// [`QueueError::InvalidOptions`] for bad configuration.
    pub async fn connect(redis_url: &str, opts: QueueOptions, clock: SharedClock) -> Result<Self> {
        opts.validate()?;
        let client = redis::Client::open(redis_url).map_err(|e| QueueError::InvalidUrl {
            reason: format!("{:?}", e.kind()),
        })?;
        let addr: Arc<str> = client.get_connection_info().addr().to_string().into();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| QueueError::from_redis(&addr, e))?;
        info!(redis = %addr, prefix = %opts.key_prefix, "job queue connected");
        Ok(Self {
            conn,
            opts: Arc::new(opts),
            clock,
            addr,
        })
    }

    /// The options the queue runs with.
    pub fn options(&self) -> &QueueOptions {
        &self.opts
    }

    /// How often a lease holder should renew: a third of the lease, so two renewals can fail
    /// (e.g. a short Redis blip) before the lease runs out.
    pub fn renew_every(&self) -> Duration {
        self.opts.lease / 3
    }

    fn project_key(&self, project_id: i64) -> String {
        format!("{}:p:{project_id}", self.opts.key_prefix)
    }

    fn job_prefix(&self) -> String {
        format!("{}:job:", self.opts.key_prefix)
    }

    fn projects_key(&self) -> String {
        format!("{}:projects", self.opts.key_prefix)
    }

    /// A script invocation with the common KEYS/ARGV prelude (see `scripts/common.lua`).
    fn invocation<'a>(
        &self,
        script: &'a Script,
        project_id: i64,
        now_ms: i64,
    ) -> ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.key(self.project_key(project_id))
            .key(self.job_prefix())
            .key(self.projects_key())
            .arg(project_id)
            .arg(now_ms)
            .arg(self.opts.max_stalls)
            .arg(self.opts.dead_keep)
            .arg(self.opts.completed_keep);
        inv
    }

    async fn run<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T> {
        let mut conn = self.conn.clone();
        inv.invoke_async(&mut conn)
            .await
            .map_err(|e| QueueError::from_redis(&self.addr, e))
    }

    async fn cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| QueueError::from_redis(&self.addr, e))
    }

    /// Adds a job to its project's queue. The job is in Redis when this returns. If an
    /// identical job (same project, kind and `since_id`) is waiting (not running), no new job is
    /// created and the existing id is returned with `coalesced: true`.
    pub async fn enqueue(&self, new: &NewJob) -> Result<Enqueued> {
        let now = self.clock.now_ms();
        let data = JobData {
            project_id: new.project_id,
            kind: new.kind.clone(),
            since_id: new.since_id,
            trigger: new.trigger,
            enqueued_at_ms: now,
        };
        let data = serde_json::to_string(&data)?;
        let dedup = match new.since_id {
            Some(s) => format!("{}|{s}", new.kind),
            None => format!("{}|-", new.kind),
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut inv = self.invocation(&scripts::ENQUEUE, new.project_id, now);
        inv.arg(&id)
            .arg(&dedup)
            .arg(&data)
            .arg(self.opts.max_attempts);
        let (job_id, coalesced): (String, i64) = self.run(&inv).await?;
        let coalesced = coalesced == 1;
        debug!(project_id = new.project_id, job_id = %job_id, job_kind = %new.kind,
            trigger = %new.trigger, coalesced, "job enqueued");
        Ok(Enqueued { job_id, coalesced })
    }

    /// Reserves the project's next runnable job for `worker_id` under a fresh lease. Returns
    /// `None` if nothing is due or another job of the project is running under a live lease.
    /// First promotes due retries and reclaims an expired lease (stalls += 1; dead letters as
    /// `Stalled` at `max_stalls`).
    pub async fn reserve(&self, project_id: i64, worker_id: &str) -> Result<Option<Lease>> {
        let now = self.clock.now_ms();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut inv = self.invocation(&scripts::RESERVE, project_id, now);
        inv.arg(&token)
            .arg(worker_id)
            .arg(ms_to_duration_i64(self.opts.lease));
        let reply: Option<ReserveReply> = self.run(&inv).await?;
        let Some((id, token, deadline, reserved_at, hash)) = reply else {
            return Ok(None);
        };
        let key = format!("{}{id}", self.job_prefix());
        let job = job_from_hash(&key, &hash)?;
        debug!(project_id, job_id = %job.id, job_kind = %job.kind, worker_id,
            attempts = job.attempts, stalls = job.stalls, "job reserved");
        Ok(Some(Lease {
            job,
            token,
            deadline: ms_to_dt(&key, deadline)?,
            worker_id: worker_id.to_owned(),
            reserved_at: ms_to_dt(&key, reserved_at)?,
        }))
    }

    /// Extends the lease by the configured lease length from now. Call it well before the
    /// deadline (e.g. every lease/3). Fails with [`QueueError::LeaseLost`] if the lease expired
    /// or was taken over; the holder must then abandon the job.
    pub async fn renew(&self, lease: &Lease) -> Result<Lease> {
        let now = self.clock.now_ms();
        let mut inv = self.invocation(&scripts::RENEW, lease.job.project_id, now);
        inv.arg(&lease.job.id)
            .arg(&lease.token)
            .arg(ms_to_duration_i64(self.opts.lease));
        let deadline: i64 = self.run(&inv).await?;
        if deadline < 0 {
            return Err(self.lost(lease, "renew"));
        }
        let key = format!("{}{}", self.job_prefix(), lease.job.id);
        Ok(Lease {
            deadline: ms_to_dt(&key, deadline)?,
            ..lease.clone()
        })
    }

    fn lost(&self, lease: &Lease, op: &str) -> QueueError {
        warn!(project_id = lease.job.project_id, job_id = %lease.job.id,
            worker_id = %lease.worker_id, op, "lease lost");
        QueueError::LeaseLost {
            job_id: lease.job.id.clone(),
        }
    }

    /// Marks the job done and records it (with `summary`) in the project's completed history.
    pub async fn ack(&self, lease: &Lease, summary: &serde_json::Value) -> Result<()> {
        let now = self.clock.now_ms();
        let entry = CompletedJob {
            job: lease.job.clone(),
            summary: summary.clone(),
            worker_id: lease.worker_id.clone(),
            started_at: lease.reserved_at,
            finished_at: ms_to_dt(&lease.job.id, now)?,
        };
        let entry = serde_json::to_string(&entry)?;
        let mut inv = self.invocation(&scripts::ACK, lease.job.project_id, now);
        inv.arg(&lease.job.id).arg(&lease.token).arg(&entry);
        let ok: i64 = self.run(&inv).await?;
        if ok != 1 {
            return Err(self.lost(lease, "ack"));
        }
        debug!(project_id = lease.job.project_id, job_id = %lease.job.id,
            job_kind = %lease.job.kind,
            duration_ms = now - lease.reserved_at.timestamp_millis(), "job acked");
        Ok(())
    }

    /// Records a failed run. Transient: attempts += 1 and retry after
    /// `backoff_base * 2^(attempts-1)` (+0-20% jitter), dead letters once `max_attempts` is
    /// reached. Permanent: dead letters at once. RateLimited and Unavailable: retry after
    /// `retry_after`, attempts unchanged.
    pub async fn fail(
        &self,
        lease: &Lease,
        class: FailureClass,
        error: &str,
    ) -> Result<FailOutcome> {
        let now = self.clock.now_ms();
        let (class_name, retry_after) = match class {
            FailureClass::Transient => ("transient", 0),
            FailureClass::Permanent => ("permanent", 0),
            FailureClass::RateLimited { retry_after } => {
                ("rate_limited", ms_to_duration_i64(retry_after))
            }
            FailureClass::Unavailable { retry_after } => {
                ("unavailable", ms_to_duration_i64(retry_after))
            }
        };
        let jitter = rand::random::<f64>() * RETRY_JITTER;
        let mut inv = self.invocation(&scripts::FAIL, lease.job.project_id, now);
        inv.arg(&lease.job.id)
            .arg(&lease.token)
            .arg(class_name)
            .arg(error)
            .arg(ms_to_duration_i64(self.opts.backoff_base))
            .arg(jitter)
            .arg(retry_after);
        let (outcome, due): (String, i64) = self.run(&inv).await?;
        let key = format!("{}{}", self.job_prefix(), lease.job.id);
        let outcome = match outcome.as_str() {
            "retry" => FailOutcome::RetryAt(ms_to_dt(&key, due)?),
            "dead" => FailOutcome::Dead,
            "lost" => return Err(self.lost(lease, "fail")),
            other => {
                return Err(QueueError::Corrupt {
                    key,
                    detail: format!("fail script answered {other:?}"),
                });
            }
        };
        match outcome {
            FailOutcome::Dead => warn!(project_id = lease.job.project_id, job_id = %lease.job.id,
                job_kind = %lease.job.kind, class = class_name, error, "job dead-lettered"),
            FailOutcome::RetryAt(at) => info!(project_id = lease.job.project_id,
                job_id = %lease.job.id, job_kind = %lease.job.kind, class = class_name, error,
                retry_at = %at, "job failed, will retry"),
        }
        Ok(outcome)
    }

    /// Hands the job back to the front of its queue without spending an attempt (graceful
    /// shutdown).
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        let now = self.clock.now_ms();
        let mut inv = self.invocation(&scripts::RELEASE, lease.job.project_id, now);
        inv.arg(&lease.job.id).arg(&lease.token);
        let ok: i64 = self.run(&inv).await?;
        if ok != 1 {
            return Err(self.lost(lease, "release"));
        }
        debug!(project_id = lease.job.project_id, job_id = %lease.job.id, "job released");
        Ok(())
    }

    /// When the project can next make progress: now if jobs wait (or a lease has expired), the
    /// running job's lease deadline if one runs, else the earliest retry time; `None` if the
    /// project has no waiting, delayed or running job. Workers sleep until then (or until
    /// notified of a new job) instead of polling.
    pub async fn next_due(&self, project_id: i64) -> Result<Option<DateTime<Utc>>> {
        let now = self.clock.now_ms();
        let inv = self.invocation(&scripts::NEXT_DUE, project_id, now);
        let due: Option<i64> = self.run(&inv).await?;
        due.map(|ms| ms_to_dt(&self.project_key(project_id), ms))
            .transpose()
    }

    /// Queue depth, running job and history sizes for one project.
    pub async fn stats(&self, project_id: i64) -> Result<QueueStats> {
        let now = self.clock.now_ms();
        let inv = self.invocation(&scripts::STATS, project_id, now);
        let (waiting, delayed, dead, completed, active, job): StatsReply = self.run(&inv).await?;
        let active_key = format!("{}:active", self.project_key(project_id));
        let active = if active.is_empty() || job.is_empty() {
            None
        } else {
            let deadline = field(&active_key, &active, "deadline")?;
            let deadline = parse_num::<i64>(&active_key, "deadline", deadline)?;
            Some(ActiveInfo {
                job: job_from_hash(&active_key, &job)?,
                worker_id: field(&active_key, &active, "worker")?.to_owned(),
                deadline: ms_to_dt(&active_key, deadline)?,
            })
        };
        Ok(QueueStats {
            waiting,
            delayed,
            active,
            dead,
            completed,
        })
    }

    /// The project's jobs that are not running yet: waiting ones in the order they will run,
    /// then delayed retries by due time; at most `limit`. Two reads, not one atomic snapshot:
    /// a job taken in between is simply left out.
    pub async fn pending(&self, project_id: i64, limit: usize) -> Result<Vec<PendingJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let base = self.project_key(project_id);
        let waiting: Vec<String> = self
            .cmd(
                redis::cmd("LRANGE")
                    .arg(format!("{base}:wait"))
                    .arg(0)
                    .arg(limit - 1),
            )
            .await?;
        let delayed: Vec<(String, i64)> = self
            .cmd(
                redis::cmd("ZRANGE")
                    .arg(format!("{base}:delayed"))
                    .arg(0)
                    .arg(limit - 1)
                    .arg("WITHSCORES"),
            )
            .await?;
        let entries: Vec<(String, Option<i64>)> = waiting
            .into_iter()
            .map(|id| (id, None))
            .chain(delayed.into_iter().map(|(id, due)| (id, Some(due))))
            .take(limit)
            .collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, _) in &entries {
            pipe.cmd("HGETALL")
                .arg(format!("{}{id}", self.job_prefix()));
        }
        let mut conn = self.conn.clone();
        let hashes: Vec<HashMap<String, String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| QueueError::from_redis(&self.addr, e))?;
        let mut out = Vec::with_capacity(entries.len());
        for ((id, due), hash) in entries.iter().zip(hashes) {
            if hash.is_empty() {
                continue; // taken or purged between the two reads
            }
            let key = format!("{}{id}", self.job_prefix());
            out.push(PendingJob {
                job: job_from_hash(&key, &hash)?,
                delayed: due.is_some(),
                run_at: due.map(|ms| ms_to_dt(&key, ms)).transpose()?,
            });
        }
        Ok(out)
    }

    /// The project's dead letters, newest first.
    pub async fn dead_jobs(&self, project_id: i64, limit: usize) -> Result<Vec<DeadJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let dead_key = format!("{}:dead", self.project_key(project_id));
        let ids: Vec<String> = self
            .cmd(redis::cmd("ZREVRANGE").arg(&dead_key).arg(0).arg(limit - 1))
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL")
                .arg(format!("{}{id}", self.job_prefix()));
        }
        let mut conn = self.conn.clone();
        let hashes: Vec<HashMap<String, String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| QueueError::from_redis(&self.addr, e))?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, hash) in ids.iter().zip(hashes) {
            if hash.is_empty() {
                continue; // purged or trimmed between the two reads
            }
            let key = format!("{}{id}", self.job_prefix());
            let reason = match field(&key, &hash, "reason")? {
                "exhausted" => DeadReason::Exhausted,
                "permanent" => DeadReason::Permanent,
                "stalled" => DeadReason::Stalled,
                other => {
                    return Err(QueueError::Corrupt {
                        key,
                        detail: format!("unknown dead reason {other:?}"),
                    });
                }
            };
            let died_at = parse_num::<i64>(&key, "died_at", field(&key, &hash, "died_at")?)?;
            let job = job_from_hash(&key, &hash)?;
            out.push(DeadJob {
                error: job.last_error.clone().unwrap_or_default(),
                job,
                reason,
                died_at: ms_to_dt(&key, died_at)?,
            });
        }
        Ok(out)
    }

    /// The project's completed history, newest first.
    pub async fn completed(&self, project_id: i64, limit: usize) -> Result<Vec<CompletedJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = format!("{}:completed", self.project_key(project_id));
        let entries: Vec<String> = self
            .cmd(redis::cmd("LRANGE").arg(&key).arg(0).arg(limit - 1))
            .await?;
        entries
            .iter()
            .map(|e| {
                serde_json::from_str(e).map_err(|err| QueueError::Corrupt {
                    key: key.clone(),
                    detail: format!("bad completed entry: {err}"),
                })
            })
            .collect()
    }

    /// Moves a dead job back to the waiting queue with attempts and stalls reset. Returns false
    /// if the project has no such dead job.
    pub async fn requeue_dead(&self, project_id: i64, job_id: &str) -> Result<bool> {
        let now = self.clock.now_ms();
        let mut inv = self.invocation(&scripts::REQUEUE_DEAD, project_id, now);
        inv.arg(job_id);
        let ok: i64 = self.run(&inv).await?;
        if ok == 1 {
            info!(project_id, job_id, "dead job requeued");
        }
        Ok(ok == 1)
    }

    /// Deletes everything the project has in the queue (waiting, delayed, running, dead,
    /// history). A worker still running a purged job gets `LeaseLost` on its next call.
    pub async fn purge(&self, project_id: i64) -> Result<PurgeCounts> {
        let now = self.clock.now_ms();
        let inv = self.invocation(&scripts::PURGE, project_id, now);
        let (waiting, delayed, active, dead, completed): (u64, u64, u64, u64, u64) =
            self.run(&inv).await?;
        let counts = PurgeCounts {
            waiting,
            delayed,
            active,
            dead,
            completed,
        };
        info!(project_id, ?counts, "project queue purged");
        Ok(counts)
    }

    /// Projects that have waiting, delayed or running jobs, ascending.
    pub async fn projects_with_jobs(&self) -> Result<Vec<i64>> {
        let key = self.projects_key();
        let members: Vec<String> = self.cmd(redis::cmd("SMEMBERS").arg(&key)).await?;
        let mut ids = members
            .iter()
            .map(|m| parse_num::<i64>(&key, "member", m))
            .collect::<Result<Vec<_>>>()?;
        ids.sort_unstable();
        Ok(ids)
    }
}

fn field<'a>(key: &str, hash: &'a HashMap<String, String>, name: &str) -> Result<&'a str> {
    hash.get(name)
        .map(String::as_str)
        .ok_or_else(|| QueueError::Corrupt {
            key: key.to_owned(),
            detail: format!("missing field {name}"),
        })
}

fn parse_num<T: std::str::FromStr>(key: &str, name: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| QueueError::Corrupt {
        key: key.to_owned(),
        detail: format!("field {name} is not a number: {value:?}"),
    })
}

fn ms_to_dt(key: &str, ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| QueueError::Corrupt {
        key: key.to_owned(),
        detail: format!("timestamp out of range: {ms}"),
    })
}

fn job_from_hash(key: &str, hash: &HashMap<String, String>) -> Result<Job> {
    let data: JobData =
        serde_json::from_str(field(key, hash, "data")?).map_err(|e| QueueError::Corrupt {
            key: key.to_owned(),
            detail: format!("bad job data: {e}"),
        })?;
    Ok(Job {
        id: field(key, hash, "id")?.to_owned(),
        project_id: data.project_id,
        kind: data.kind,
        since_id: data.since_id,
        trigger: data.trigger,
        attempts: parse_num(key, "attempts", field(key, hash, "attempts")?)?,
        max_attempts: parse_num(key, "max_attempts", field(key, hash, "max_attempts")?)?,
        stalls: parse_num(key, "stalls", field(key, hash, "stalls")?)?,
        enqueued_at: ms_to_dt(key, data.enqueued_at_ms)?,
        last_error: hash.get("last_error").cloned(),
    })
}
