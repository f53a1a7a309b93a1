//! Section 8, two-way sync throughput: outbox rows pushed to a mock RetailCRM that allows 10
//! requests per second, against that API floor.
//!
//! One project on a small throttled account, synced once first (at the same 10 rps). Then the
//! bench writes `push_rows` outbox rows in one transaction, each an e-mail edit of a different
//! linked user (so each is one `customers/{id}/edit` call: no merging helps), and times from
//! the commit until no row is pending. The floor is the requests the mock served meanwhile
//! (edits plus the history page per job that conflict detection reads) divided by the rate;
//! the ideal is one request per row.

use std::time::{Duration, Instant};

use super::report::PushThroughput;
use super::{BenchError, MOCK_KEY, Run, start_mock};

impl Run<'_> {
    /// Runs section 8 on `project_id`.
    pub(super) async fn push_throughput(
        &mut self,
        project_id: i64,
    ) -> Result<PushThroughput, BenchError> {
        let o = self.opts;
        let rows = o.push_rows;
        let customers = (rows * 2).max(100);
        let mock = start_mock(50, customers, 8, Some(o.api_rps)).await?;
        self.env.deactivate_all().await?;
        self.env
            .add_integrations(project_id, 1, &mock.url, MOCK_KEY)
            .await?;
        let mut daemon = self.spawn(o.api_rps)?;
        daemon.wait_ready(1, Duration::from_secs(60)).await?;
        let mut client = daemon.client().await?;
        let started = Instant::now();
        let first = super::daemon::Daemon::trigger(&mut client, project_id, "sync_all").await?;
        daemon
            .wait_jobs(
                &mut client,
                &[(project_id, first)],
                started,
                Duration::from_millis(50),
                o.job_timeout,
            )
            .await?;
        // Let the first sync's requests drain out of the mock's bucket.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pg = &self.env.pg;
        let linked = pg
            .query(
                "SELECT id FROM users WHERE project_id = $1 AND retailcrm_customer_id IS NOT NULL \
                 ORDER BY id LIMIT $2",
                &[&project_id, &(rows as i64)],
            )
            .await
            .map_err(BenchError::pg("pick users to push"))?;
        let n = linked.len() as u64;
        let before = mock.stats();
        let started = Instant::now();
        pg.execute(
            "INSERT INTO retailcrm_outbox (project_id, entity, local_id, fields) \
             SELECT $1, 'customer', id, jsonb_build_object('email', 'push' || id || '@bench.test') \
             FROM users WHERE project_id = $1 AND retailcrm_customer_id IS NOT NULL \
             ORDER BY id LIMIT $2",
            &[&project_id, &(rows as i64)],
        )
        .await
        .map_err(BenchError::pg("write outbox rows"))?;
        let deadline = started + o.job_timeout;
        loop {
            let pending: i64 = pg
                .query_one(
                    "SELECT count(*) FROM retailcrm_outbox WHERE project_id = $1 AND state = 'pending'",
                    &[&project_id],
                )
                .await
                .map_err(BenchError::pg("count pending outbox rows"))?
                .get(0);
            if pending == 0 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wall = started.elapsed().as_secs_f64();
        let after = mock.stats();
        let sent: i64 = pg
            .query_one(
                "SELECT count(*) FROM retailcrm_outbox WHERE project_id = $1 AND state = 'sent'",
                &[&project_id],
            )
            .await
            .map_err(BenchError::pg("count sent outbox rows"))?
            .get(0);
        daemon.stop().await;
        mock.shutdown().await;
        let limited = after.rate_limited - before.rate_limited;
        let served = (after.requests - before.requests).saturating_sub(limited);
        let floor = served as f64 / o.api_rps;
        Ok(PushThroughput {
            rows: n,
            sent: u64::try_from(sent).unwrap_or(0),
            rps: o.api_rps,
            wall_secs: wall,
            rows_per_sec: n as f64 / wall.max(1e-9),
            requests_served: served,
            requests_rate_limited: limited,
            floor_secs: floor,
            ratio_to_floor: wall / floor.max(1e-9),
            ideal_floor_secs: n as f64 / o.api_rps,
        })
    }
}
