//! Read-only summaries of one project's synced data, for the demo and operators' reports:
//! row counts by platform status, users, orders without a user, dead records. One round trip.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use serde::Serialize;

use super::{Store, StoreError, op};

/// Counts of one project's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectSummary {
    /// Orders not marked deleted.
    pub orders: i64,
    /// Orders marked deleted (`deleted_at` set).
    pub deleted_orders: i64,
    /// Orders stored without a user (no contact data at all).
    pub orders_without_user: i64,
    /// Users of the project.
    pub users: i64,
    /// Users linked to a RetailCRM customer.
    pub users_from_customers: i64,
    /// Records kept aside in `dead_records`.
    pub dead_records: i64,
    /// Live orders per platform status, sorted by status.
    pub by_status: Vec<(String, i64)>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Store {
    /// Counts `project_id`'s rows.
    pub async fn project_summary(&self, project_id: i64) -> Result<ProjectSummary, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT 'orders' AS key, count(*) FILTER (WHERE deleted_at IS NULL) AS n FROM orders WHERE project_id = $1
             UNION ALL SELECT 'deleted_orders', count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM orders WHERE project_id = $1
             UNION ALL SELECT 'orders_without_user', count(*) FILTER (WHERE user_id IS NULL AND deleted_at IS NULL) FROM orders WHERE project_id = $1
             UNION ALL SELECT 'users', count(*) FROM users WHERE project_id = $1
             UNION ALL SELECT 'users_from_customers', count(retailcrm_customer_id) FROM users WHERE project_id = $1
             UNION ALL SELECT 'dead_records', count(*) FROM dead_records WHERE project_id = $1
             UNION ALL SELECT * FROM (SELECT 'status:' || status, count(*) FROM orders
                 WHERE project_id = $1 AND deleted_at IS NULL GROUP BY status ORDER BY status) s",
        )
        .bind::<BigInt, _>(project_id)
        .load(&mut conn)
        .await
        .map_err(op("project summary"))?;
        let mut s = ProjectSummary::default();
        for Row { key, n } in rows {
            match key.as_str() {
                "orders" => s.orders = n,
                "deleted_orders" => s.deleted_orders = n,
                "orders_without_user" => s.orders_without_user = n,
                "users" => s.users = n,
                "users_from_customers" => s.users_from_customers = n,
                "dead_records" => s.dead_records = n,
                other => {
                    if let Some(status) = other.strip_prefix("status:") {
                        s.by_status.push((status.to_string(), n));
                    }
                }
            }
        }
        Ok(s)
    }

    /// Deletes everything the daemon wrote for `project_id` (orders, users, cursors, runs, dead
    /// records), keeping the project and integration rows. For the demo's fresh start.
    pub async fn reset_project_data(&self, project_id: i64) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        for table in [
            "orders",
            "users",
            "sync_cursors",
            "sync_runs",
            "dead_records",
        ] {
            diesel::sql_query(format!("DELETE FROM {table} WHERE project_id = $1"))
                .bind::<BigInt, _>(project_id)
                .execute(&mut conn)
                .await
                .map_err(op("reset project data"))?;
        }
        Ok(())
    }
}
