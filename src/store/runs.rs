//! Sync runs: one `sync_runs` row per job execution (start, finish, outcome, counts, error).
//! A successful finish also stamps `retailcrm_integrations.last_sync_at`, in one transaction.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;

use super::{Store, StoreError, op};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Finished without error.
    Succeeded,
    /// Failed (the error is stored).
    Failed,
    /// Stopped (shutdown, integration removed) before finishing.
    Cancelled,
    /// Its daemon died or lost the job's lease; closed when the project's next run started.
    Abandoned,
}

impl RunOutcome {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Abandoned => "abandoned",
        }
    }
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, QueryableByName, Serialize)]
pub struct SyncRun {
    /// Row id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Project.
    #[diesel(sql_type = BigInt)]
    pub project_id: i64,
    /// Queue job id.
    #[diesel(sql_type = Text)]
    pub job_id: String,
    /// Job kind (`sync_orders`, ...).
    #[diesel(sql_type = Text)]
    pub job_kind: String,
    /// What started it (`schedule`, `manual`, ...).
    #[diesel(sql_type = Text)]
    pub trigger: String,
    /// Start time.
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
    /// End time; `None` while running (or if the process died).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed`, `cancelled` or `abandoned`.
    #[diesel(sql_type = Text)]
    pub outcome: String,
    /// Counters reported by the job.
    #[diesel(sql_type = Jsonb)]
    pub counts: serde_json::Value,
    /// Error message of a failed run.
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

const COLUMNS: &str =
    "id, project_id, job_id, job_kind, trigger, started_at, finished_at, outcome, counts, error";

impl Store {
    /// Records the start of a run; returns its id. The queue runs one job of a project at a
    /// time (across daemons sharing Redis), so a run of the project still marked `running` now
    /// belongs to a daemon that died or lost its lease: it is closed as `abandoned` first, in
    /// the same transaction.
    pub async fn start_run(
        &self,
        project_id: i64,
        job_id: &str,
        job_kind: &str,
        trigger: &str,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn().await?;
        conn.transaction(async |c| {
            let closed = diesel::sql_query(
                "UPDATE sync_runs SET outcome = 'abandoned', finished_at = now(), \
                 error = COALESCE(error, 'the daemon running it stopped or lost the job''s lease \
                 before it finished; the job ran again') \
                 WHERE project_id = $1 AND outcome = 'running'",
            )
            .bind::<BigInt, _>(project_id)
            .execute(c)
            .await
            .map_err(op("close abandoned runs"))?;
            if closed > 0 {
                tracing::info!(
                    project_id,
                    closed,
                    "runs left running by a stopped daemon closed as abandoned"
                );
            }
            let rows: Vec<IdRow> = diesel::sql_query(
                "INSERT INTO sync_runs (project_id, job_id, job_kind, trigger) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind::<BigInt, _>(project_id)
            .bind::<Text, _>(job_id)
            .bind::<Text, _>(job_kind)
            .bind::<Text, _>(trigger)
            .load(c)
            .await
            .map_err(op("start run"))?;
            rows.into_iter()
                .next()
                .map(|r| r.id)
                .ok_or_else(|| StoreError::Invalid("INSERT ... RETURNING gave no row".into()))
        })
        .await
    }

    /// Records the end of a run; success also sets the integration's `last_sync_at`.
    pub async fn finish_run(
        &self,
        run_id: i64,
        outcome: RunOutcome,
        counts: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.transaction(async |c| {
            let rows: Vec<IdRow> = diesel::sql_query(
                "UPDATE sync_runs SET finished_at = now(), outcome = $2, counts = $3, error = $4 \
                 WHERE id = $1 RETURNING project_id AS id",
            )
            .bind::<BigInt, _>(run_id)
            .bind::<Text, _>(outcome.as_str())
            .bind::<Jsonb, _>(counts)
            .bind::<Nullable<Text>, _>(error)
            .load(c)
            .await
            .map_err(op("finish run"))?;
            let Some(project) = rows.into_iter().next() else {
                return Err(StoreError::Invalid(format!(
                    "sync run {run_id} does not exist"
                )));
            };
            if outcome == RunOutcome::Succeeded {
                diesel::sql_query(
                    "UPDATE retailcrm_integrations SET last_sync_at = now() WHERE project_id = $1",
                )
                .bind::<BigInt, _>(project.id)
                .execute(c)
                .await
                .map_err(op("stamp last_sync_at"))?;
            }
            Ok(())
        })
        .await
    }

    /// The newest runs of a project.
    pub async fn recent_runs(
        &self,
        project_id: i64,
        limit: i64,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(format!(
            "SELECT {COLUMNS} FROM sync_runs WHERE project_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        ))
        .bind::<BigInt, _>(project_id)
        .bind::<BigInt, _>(limit.max(0))
        .load(&mut conn)
        .await
        .map_err(op("recent runs"))
    }

    /// The newest successful run of a project.
    pub async fn last_success(&self, project_id: i64) -> Result<Option<SyncRun>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<SyncRun> = diesel::sql_query(format!(
            "SELECT {COLUMNS} FROM sync_runs WHERE project_id = $1 AND outcome = 'succeeded' \
             ORDER BY finished_at DESC, id DESC LIMIT 1"
        ))
        .bind::<BigInt, _>(project_id)
        .load(&mut conn)
        .await
        .map_err(op("last success"))?;
        Ok(rows.into_iter().next())
    }
}
