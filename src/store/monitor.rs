//! Read-only queries of the monitoring page (`http::api_history`): each project's sync interval
//! (what "late" means for its freshness) and how many poison records it has. Nothing here
//! writes.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::RunQueryDsl;

use super::{Store, StoreError, op};

#[derive(QueryableByName)]
struct IntervalRow {
    #[diesel(sql_type = BigInt)]
    project_id: i64,
    #[diesel(sql_type = Integer)]
    sync_interval_minutes: i32,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Store {
    /// `(project_id, sync_interval_minutes)` of every active integration, in one round trip.
    pub async fn active_sync_intervals(&self) -> Result<Vec<(i64, i32)>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<IntervalRow> = diesel::sql_query(
            "SELECT project_id, sync_interval_minutes FROM retailcrm_integrations \
             WHERE is_active ORDER BY project_id",
        )
        .load(&mut conn)
        .await
        .map_err(op("active sync intervals"))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.project_id, r.sync_interval_minutes))
            .collect())
    }

    /// How many records of `project_id` are kept in `dead_records`.
    pub async fn dead_record_count(&self, project_id: i64) -> Result<i64, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<CountRow> =
            diesel::sql_query("SELECT count(*) AS n FROM dead_records WHERE project_id = $1")
                .bind::<BigInt, _>(project_id)
                .load(&mut conn)
                .await
                .map_err(op("count dead records"))?;
        Ok(rows.into_iter().next().map_or(0, |r| r.n))
    }
}
