//! Section 7, freshness: how long after a change in RetailCRM its row is committed in Postgres.
//!
//! One project on a small mock account, synced once first. Then changes are made one at a
//! time, in turn an order status change, a new order and a customer edit (first name); each is
//! timed from just before the change is made in the mock until the bench sees the row that
//! proves it committed (`orders.retailcrm_status` = the new status, a new `orders` row, the new
//! `users.first_name`), polling Postgres every [`FRESHNESS_POLL_MS`] ms. A change not seen
//! within the timeout is a miss; after [`MAX_MISSES_IN_A_ROW`] misses in a row the run stops.
//!
//! - **With webhooks**: the project gets a webhook secret (its hash stored, then `reload`) and
//!   the mock's trigger calls the daemon's `POST /webhooks/retailcrm/{project}?token=..`; the
//!   project's schedule is a day, so only webhooks can make a change arrive. After each commit
//!   the bench pauses a fraction of [`webhook_pause`] (the debounce window and 100 ms more,
//!   spread evenly as below) before the next change, so changes fall at every phase of the
//!   daemon's debounce window and job loop; back to back, every change would land inside the
//!   window the previous one opened and wait all of it.
//! - **Against the schedule**: a second daemon on the same project and cursors, the trigger
//!   cleared and the secret removed, `sync_interval_minutes` = 1 with `sync.minute_secs`
//!   shortened. The bench starts right after a periodic walk; before each change it waits a
//!   fraction of the interval that walks the interval evenly (golden-ratio steps from a random
//!   start), so the changes fall at every phase of the schedule, as users' changes do: the
//!   expected p50 is half the interval, and whatever the start it is at least 0.38 of it for 5
//!   changes (0.41 for 20), so a test can compare it with the webhook figures.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::Statement;

use super::daemon::Daemon;
use super::report::{FRESHNESS_POLL_MS, FreshnessRun};
use super::{BenchError, MOCK_KEY, Run, start_mock};
use crate::mock::MockHandle;
use crate::mock::data::all_status_codes;

/// Misses in a row after which a run stops (the daemon is clearly not picking changes up).
pub const MAX_MISSES_IN_A_ROW: u64 = 3;

/// What proves a change committed.
#[derive(Debug, Clone)]
enum Proof {
    /// `orders.retailcrm_status` of the order is the new status.
    Status { id: i64, status: String },
    /// An `orders` row for the new order exists.
    NewOrder { id: i64 },
    /// `users.first_name` of the customer is the new name.
    FirstName { id: i64, name: String },
}

/// The kinds of change, made in turn.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Status,
    NewOrder,
    CustomerEdit,
}

/// Prepared probe statements.
struct Probes {
    order: Statement,
    user: Statement,
}

/// The latencies of one run of changes.
#[derive(Debug, Default)]
struct Changes {
    latencies: Vec<f64>,
    made: u64,
    status_changes: u64,
    new_orders: u64,
    customer_edits: u64,
    misses: u64,
    stopped_early: bool,
}

impl Run<'_> {
    /// The freshness account and project, its daemon (with `fresh_debounce_ms`) and the first
    /// sync. Returns the daemon and the mock.
    pub(super) async fn freshness_setup(
        &mut self,
        project_id: i64,
    ) -> Result<(Daemon, MockHandle), BenchError> {
        let o = self.opts;
        let mock = start_mock(o.fresh_orders, o.fresh_customers, 77, None).await?;
        self.env.deactivate_all().await?;
        self.env
            .add_integrations(project_id, 1, &mock.url, MOCK_KEY)
            .await?;
        let mut spec = self.spec(o.fast_rps);
        spec.webhook_debounce_ms = Some(o.fresh_debounce_ms);
        let mut daemon = Daemon::spawn(&spec)?;
        daemon.wait_ready(1, Duration::from_secs(60)).await?;
        let mut client = daemon.client().await?;
        let started = Instant::now();
        let job = Daemon::trigger(&mut client, project_id, "sync_all").await?;
        let ends = daemon
            .wait_jobs(
                &mut client,
                &[(project_id, job)],
                started,
                Duration::from_millis(20),
                o.job_timeout,
            )
            .await?;
        if !ends[0].succeeded {
            return Err(BenchError::Daemon(format!(
                "the first sync of the freshness project failed: {}",
                ends[0].message.as_deref().unwrap_or("no reason given")
            )));
        }
        Ok((daemon, mock))
    }

    /// The part with webhooks, on the daemon and mock of [`Self::freshness_setup`].
    pub(super) async fn freshness_webhooks(
        &mut self,
        daemon: &mut Daemon,
        mock: &MockHandle,
        project_id: i64,
    ) -> Result<FreshnessRun, BenchError> {
        let o = self.opts;
        let token = crate::http::generate_webhook_token();
        self.env
            .pg
            .execute(
                "UPDATE retailcrm_integrations SET webhook_token_sha256 = $1 WHERE project_id = $2",
                &[&crate::http::webhook_token_hash(&token), &project_id],
            )
            .await
            .map_err(BenchError::pg("set the webhook secret"))?;
        let mut client = daemon.client().await?;
        Daemon::reload(&mut client).await?;
        // The project may restart on the changed integration: wait until it is back.
        daemon.wait_ready(1, Duration::from_secs(60)).await?;
        let listen = Daemon::status(&mut client)
            .await?
            .http_listen
            .ok_or_else(|| {
                BenchError::Daemon("status names no HTTP listener (http_listen)".to_string())
            })?;
        mock.set_webhook_url(Some(format!(
            "http://{listen}/webhooks/retailcrm/{project_id}?token={token}"
        )));
        let before = mock.stats();
        let walks_before = self.walks(project_id, "webhook").await?;
        let pause = webhook_pause(o.fresh_debounce_ms);
        let changes = self
            .make_changes(mock, project_id, o.fresh_changes, o.fresh_timeout, pause)
            .await;
        // The last calls may still earn one walk after the debounce window; let it start.
        tokio::time::sleep(Duration::from_millis(o.fresh_debounce_ms + 500)).await;
        mock.set_webhook_url(None);
        let changes = changes?;
        let walks = self.walks(project_id, "webhook").await? - walks_before;
        let after = mock.stats();
        let mut run = figures(&changes, o.fresh_timeout, walks, "webhook");
        run.pause_span_secs = pause.as_secs_f64();
        run.webhook_debounce_ms = Some(o.fresh_debounce_ms);
        run.webhook_calls_sent = after.webhooks_sent - before.webhooks_sent;
        run.webhook_calls_failed = after.webhooks_failed - before.webhooks_failed;
        Ok(run)
    }

    /// The part without webhooks: a new daemon on the same project whose schedule is one short
    /// "minute" of `fresh_interval_secs`.
    pub(super) async fn freshness_schedule(
        &mut self,
        mock: &MockHandle,
        project_id: i64,
    ) -> Result<FreshnessRun, BenchError> {
        let o = self.opts;
        let interval = Duration::from_secs(o.fresh_interval_secs.max(1));
        mock.set_webhook_url(None);
        self.env
            .pg
            .execute(
                "UPDATE retailcrm_integrations SET sync_interval_minutes = 1, \
                 webhook_token_sha256 = NULL WHERE project_id = $1",
                &[&project_id],
            )
            .await
            .map_err(BenchError::pg("set the schedule of the freshness project"))?;
        let mut spec = self.spec(o.fast_rps);
        spec.minute_secs = Some(interval.as_secs());
        spec.webhook_debounce_ms = Some(o.fresh_debounce_ms);
        let mut daemon = Daemon::spawn(&spec)?;
        daemon.wait_ready(1, Duration::from_secs(60)).await?;
        // Start in step with the schedule: right after a periodic walk (the first one comes at
        // once, `last_sync_at` being older than the interval).
        let timeout = o.fresh_timeout + interval;
        let finished = self.finished_walks(project_id, "schedule").await?;
        let deadline = Instant::now() + timeout;
        while self.finished_walks(project_id, "schedule").await? == finished {
            if Instant::now() > deadline {
                daemon.stop().await;
                return Err(BenchError::Timeout {
                    what: "the first periodic sync of the freshness project".to_string(),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(FRESHNESS_POLL_MS)).await;
        }
        let walks_before = self.walks(project_id, "schedule").await?;
        let changes = self
            .make_changes(
                mock,
                project_id,
                o.fresh_scheduled_changes,
                timeout,
                interval,
            )
            .await;
        let walks = self.walks(project_id, "schedule").await;
        daemon.stop().await;
        let changes = changes?;
        let mut run = figures(&changes, timeout, walks? - walks_before, "schedule");
        run.interval_secs = Some(interval.as_secs_f64());
        run.pause_span_secs = interval.as_secs_f64();
        Ok(run)
    }

    /// `sync_runs` of the project started by `trigger`.
    async fn walks(&self, project_id: i64, trigger: &str) -> Result<u64, BenchError> {
        let row = self
            .env
            .pg
            .query_one(
                "SELECT count(*) FROM sync_runs WHERE project_id = $1 AND trigger = $2",
                &[&project_id, &trigger],
            )
            .await
            .map_err(BenchError::pg("count sync runs"))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Finished `sync_runs` of the project started by `trigger`.
    async fn finished_walks(&self, project_id: i64, trigger: &str) -> Result<u64, BenchError> {
        let row = self
            .env
            .pg
            .query_one(
                "SELECT count(*) FROM sync_runs WHERE project_id = $1 AND trigger = $2 \
                 AND finished_at IS NOT NULL",
                &[&project_id, &trigger],
            )
            .await
            .map_err(BenchError::pg("count finished sync runs"))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Makes `n` changes one at a time and times each until committed. Before each change it
    /// waits a fraction of `spread` that walks it evenly (see the module doc).
    async fn make_changes(
        &self,
        mock: &MockHandle,
        project_id: i64,
        n: u64,
        timeout: Duration,
        spread: Duration,
    ) -> Result<Changes, BenchError> {
        let pg = &self.env.pg;
        let probes = Probes {
            order: pg
                .prepare(
                    "SELECT retailcrm_status FROM orders \
                     WHERE project_id = $1 AND retailcrm_order_id = $2",
                )
                .await
                .map_err(BenchError::pg("prepare the order probe"))?,
            user: pg
                .prepare(
                    "SELECT first_name FROM users \
                     WHERE project_id = $1 AND retailcrm_customer_id = $2",
                )
                .await
                .map_err(BenchError::pg("prepare the user probe"))?,
        };
        // Entities to change: those stored (so their rows exist to be updated).
        let order_ids: Vec<i64> = pg
            .query(
                "SELECT retailcrm_order_id FROM orders WHERE project_id = $1 \
                 AND deleted_at IS NULL AND retailcrm_order_id IS NOT NULL",
                &[&project_id],
            )
            .await
            .map_err(BenchError::pg("list stored orders"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let customer_ids: Vec<i64> = pg
            .query(
                "SELECT retailcrm_customer_id FROM users WHERE project_id = $1 \
                 AND deleted_at IS NULL AND retailcrm_customer_id IS NOT NULL",
                &[&project_id],
            )
            .await
            .map_err(BenchError::pg("list stored users"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if order_ids.is_empty() || customer_ids.is_empty() {
            return Err(BenchError::Setup(
                "the freshness project stored no orders or no users to change".to_string(),
            ));
        }
        let statuses = all_status_codes();
        let mut rng = StdRng::seed_from_u64(rand::random());
        let golden = (5f64.sqrt() - 1.0) / 2.0;
        let mut phase: f64 = rng.random();
        let mut out = Changes::default();
        let mut misses_in_a_row = 0;
        for k in 0..n {
            tokio::time::sleep(spread.mul_f64(phase)).await;
            phase = (phase + golden).fract();
            let kind = match k % 3 {
                0 => Kind::Status,
                1 => Kind::NewOrder,
                _ => Kind::CustomerEdit,
            };
            let started = Instant::now();
            let proof = {
                let mut state = mock.state();
                match kind {
                    Kind::Status => {
                        let mut made = None;
                        for _ in 0..100 {
                            let id = order_ids[rng.random_range(0..order_ids.len())];
                            let Some(current) = state.orders.get(&id).map(|o| o.status.clone())
                            else {
                                continue;
                            };
                            let others: Vec<&str> =
                                statuses.iter().copied().filter(|s| *s != current).collect();
                            let status = others[rng.random_range(0..others.len())];
                            if state.set_order_status(id, status, "user") {
                                made = Some(Proof::Status {
                                    id,
                                    status: status.to_string(),
                                });
                                break;
                            }
                        }
                        made
                    }
                    Kind::NewOrder => Some(Proof::NewOrder {
                        id: state.add_random_order("user"),
                    }),
                    Kind::CustomerEdit => {
                        let mut made = None;
                        for _ in 0..100 {
                            let id = customer_ids[rng.random_range(0..customer_ids.len())];
                            let name = format!("Fresh{k}x{:06}", rng.random_range(0..1_000_000));
                            let changed = state.edit_customer(
                                id,
                                None,
                                None,
                                Some(Some(name.clone())),
                                None,
                                "user",
                            );
                            if changed {
                                made = Some(Proof::FirstName { id, name });
                                break;
                            }
                        }
                        made
                    }
                }
                // The guard drops here: the change is visible and its trigger call leaves.
            };
            let Some(proof) = proof else {
                return Err(BenchError::Setup(format!(
                    "found no stored entity the mock could change ({kind:?})"
                )));
            };
            out.made += 1;
            match kind {
                Kind::Status => out.status_changes += 1,
                Kind::NewOrder => out.new_orders += 1,
                Kind::CustomerEdit => out.customer_edits += 1,
            }
            match wait_committed(pg, &probes, project_id, &proof, started, timeout).await? {
                Some(latency) => {
                    out.latencies.push(latency.as_secs_f64());
                    misses_in_a_row = 0;
                }
                None => {
                    tracing::warn!(?proof, "freshness: change not committed in time");
                    out.misses += 1;
                    misses_in_a_row += 1;
                    if misses_in_a_row >= MAX_MISSES_IN_A_ROW && k + 1 < n {
                        out.stopped_early = true;
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Polls every [`FRESHNESS_POLL_MS`] until `proof` holds; the time since `started`, or `None`
/// after `timeout`.
async fn wait_committed(
    pg: &tokio_postgres::Client,
    probes: &Probes,
    project_id: i64,
    proof: &Proof,
    started: Instant,
    timeout: Duration,
) -> Result<Option<Duration>, BenchError> {
    loop {
        let holds = match proof {
            Proof::Status { id, status } => pg
                .query_opt(&probes.order, &[&project_id, id])
                .await
                .map_err(BenchError::pg("probe an order"))?
                .and_then(|r| r.get::<_, Option<String>>(0))
                .is_some_and(|s| &s == status),
            Proof::NewOrder { id } => pg
                .query_opt(&probes.order, &[&project_id, id])
                .await
                .map_err(BenchError::pg("probe an order"))?
                .is_some(),
            Proof::FirstName { id, name } => pg
                .query_opt(&probes.user, &[&project_id, id])
                .await
                .map_err(BenchError::pg("probe a user"))?
                .and_then(|r| r.get::<_, Option<String>>(0))
                .is_some_and(|s| &s == name),
        };
        let elapsed = started.elapsed();
        if holds {
            return Ok(Some(elapsed));
        }
        if elapsed > timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(FRESHNESS_POLL_MS)).await;
    }
}

/// The span of the pauses between webhook changes: the debounce window and 100 ms more.
pub fn webhook_pause(debounce_ms: u64) -> Duration {
    Duration::from_millis(debounce_ms + 100)
}

/// The figures of one run.
fn figures(c: &Changes, timeout: Duration, walks: u64, trigger: &str) -> FreshnessRun {
    let mut run = FreshnessRun {
        changes: c.made,
        status_changes: c.status_changes,
        new_orders: c.new_orders,
        customer_edits: c.customer_edits,
        misses: c.misses,
        timeout_secs: timeout.as_secs_f64(),
        stopped_early: c.stopped_early,
        history_walks: walks,
        walk_trigger: trigger.to_string(),
        ..FreshnessRun::default()
    };
    run.set_latencies(&c.latencies);
    run
}
