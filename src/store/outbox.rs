//! The outbox of two-way sync (`retailcrm_outbox`): the platform's changes waiting to be pushed
//! to RetailCRM, and what the daemon records of each (state, attempts, error, RetailCRM id,
//! conflict).
//!
//! States: `pending` (to push), `sent` (RetailCRM has it), `failed` (a permanent problem with
//! this row, with RetailCRM's or our message; the others go on), `conflict` (settled, but some
//! fields were not pushed because RetailCRM changed them too and RetailCRM wins; `conflict`
//! holds both values). `retry_outbox` puts failed and conflicted rows back to pending.
//!
//! Also here: what a push needs of the local rows (users, orders), linking a new RetailCRM
//! customer to its user, and what a pull needs to keep a pending platform change from being
//! overwritten ([`Store::pending_fields`], [`Store::note_pull_conflicts`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::users::UserRow;
use super::{Store, StoreError, op};

/// Entity names of the outbox.
pub const CUSTOMER: &str = "customer";
/// Entity names of the outbox.
pub const ORDER: &str = "order";

/// One outbox row.
#[derive(Debug, Clone, PartialEq, QueryableByName, Serialize, Deserialize)]
pub struct OutboxRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub project_id: i64,
    #[diesel(sql_type = Text)]
    pub entity: String,
    #[diesel(sql_type = BigInt)]
    pub local_id: i64,
    #[diesel(sql_type = Jsonb)]
    pub fields: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub sent_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub retailcrm_id: Option<i64>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub conflict: Option<serde_json::Value>,
}

/// Rows per state of one project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
    pub conflict: u64,
}

/// How a pushed row ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// RetailCRM has it (`retailcrm_id` of the entity); `conflict` lists fields not pushed.
    Sent {
        retailcrm_id: Option<i64>,
        conflict: Option<serde_json::Value>,
    },
    /// A permanent problem with this row.
    Failed(String),
}

/// An order as a push needs it.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct PushOrder {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub retailcrm_order_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A pending change of one entity, keyed for a pull by the entity's RetailCRM id.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct PendingChange {
    #[diesel(sql_type = BigInt)]
    pub outbox_id: i64,
    #[diesel(sql_type = BigInt)]
    pub retailcrm_id: i64,
    #[diesel(sql_type = Jsonb)]
    pub fields: serde_json::Value,
}

const COLUMNS: &str = "id, project_id, entity, local_id, fields, created_at, state, attempts, \
                       last_error, sent_at, retailcrm_id, conflict";

impl Store {
    /// Pending rows of a project in id order (the order of the platform's changes).
    pub async fn pending_outbox(
        &self,
        project_id: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(format!(
            "SELECT {COLUMNS} FROM retailcrm_outbox WHERE project_id = $1 AND state = 'pending' \
             ORDER BY id LIMIT $2"
        ))
        .bind::<BigInt, _>(project_id)
        .bind::<BigInt, _>(limit)
        .load(&mut conn)
        .await
        .map_err(op("read pending outbox rows"))
    }

    /// Rows of a project in the given states, newest first (for `ctl outbox` and the API).
    pub async fn outbox_rows(
        &self,
        project_id: i64,
        states: &[&str],
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut conn = self.conn().await?;
        let states: Vec<String> = states.iter().map(|s| s.to_string()).collect();
        diesel::sql_query(format!(
            "SELECT {COLUMNS} FROM retailcrm_outbox WHERE project_id = $1 AND state = ANY($2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind::<BigInt, _>(project_id)
        .bind::<Array<Text>, _>(&states)
        .bind::<BigInt, _>(limit)
        .load(&mut conn)
        .await
        .map_err(op("read outbox rows"))
    }

    /// Rows per state for every project that has any (one grouped query).
    pub async fn outbox_counts(&self) -> Result<HashMap<i64, OutboxCounts>, StoreError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            project_id: i64,
            #[diesel(sql_type = Text)]
            state: String,
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT project_id, state, count(*) AS n FROM retailcrm_outbox \
             GROUP BY project_id, state",
        )
        .load(&mut conn)
        .await
        .map_err(op("count outbox rows"))?;
        let mut out: HashMap<i64, OutboxCounts> = HashMap::new();
        for r in rows {
            let c = out.entry(r.project_id).or_default();
            let n = u64::try_from(r.n).unwrap_or(0);
            match r.state.as_str() {
                "pending" => c.pending = n,
                "sent" => c.sent = n,
                "failed" => c.failed = n,
                "conflict" => c.conflict = n,
                _ => {}
            }
        }
        Ok(out)
    }

    /// Records how rows ended (each attempt counted).
    pub async fn settle_outbox(&self, ids: &[i64], how: &Settle) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let (state, error, retailcrm_id, conflict) = match how {
            Settle::Sent {
                retailcrm_id,
                conflict,
            } => (
                if conflict.is_some() {
                    "conflict"
                } else {
                    "sent"
                },
                conflict.as_ref().map(|_| {
                    "RetailCRM changed these fields too; RetailCRM wins (see conflict)".to_string()
                }),
                *retailcrm_id,
                conflict.clone(),
            ),
            Settle::Failed(e) => ("failed", Some(e.clone()), None, None),
        };
        diesel::sql_query(
            "UPDATE retailcrm_outbox SET state = $2, attempts = attempts + 1, last_error = $3, \
             sent_at = CASE WHEN $2 IN ('sent', 'conflict') THEN now() ELSE sent_at END, \
             retailcrm_id = COALESCE($4, retailcrm_id), \
             conflict = CASE WHEN $5::jsonb IS NULL THEN conflict \
                             ELSE COALESCE(conflict, '{}'::jsonb) || $5::jsonb END \
             WHERE id = ANY($1) AND state = 'pending'",
        )
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Text, _>(state)
        .bind::<Nullable<Text>, _>(error)
        .bind::<Nullable<BigInt>, _>(retailcrm_id)
        .bind::<Nullable<Jsonb>, _>(conflict)
        .execute(&mut conn)
        .await
        .map_err(op("settle outbox rows"))?;
        Ok(())
    }

    /// Puts a project's failed and conflicted rows (all, or those in `ids`) back to pending;
    /// returns how many.
    pub async fn retry_outbox(
        &self,
        project_id: i64,
        ids: Option<&[i64]>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let n = diesel::sql_query(
            "UPDATE retailcrm_outbox SET state = 'pending', last_error = NULL \
             WHERE project_id = $1 AND state IN ('failed', 'conflict') \
             AND ($2::bigint[] IS NULL OR id = ANY($2))",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Nullable<Array<BigInt>>, _>(ids)
        .execute(&mut conn)
        .await
        .map_err(op("retry outbox rows"))?;
        Ok(n as u64)
    }

    /// Project ids with pending rows (the sweep).
    pub async fn outbox_projects(&self) -> Result<Vec<i64>, StoreError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            project_id: i64,
        }
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT DISTINCT project_id FROM retailcrm_outbox WHERE state = 'pending'",
        )
        .load(&mut conn)
        .await
        .map_err(op("find projects with pending outbox rows"))?;
        Ok(rows.into_iter().map(|r| r.project_id).collect())
    }

    /// The users a push needs.
    pub async fn push_users(
        &self,
        project_id: i64,
        ids: &[i64],
    ) -> Result<Vec<UserRow>, StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "SELECT id, email, phone, first_name, last_name, retailcrm_customer_id, deleted_at \
             FROM users WHERE project_id = $1 AND id = ANY($2)",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Array<BigInt>, _>(ids)
        .load(&mut conn)
        .await
        .map_err(op("read users to push"))
    }

    /// The orders a push needs.
    pub async fn push_orders(
        &self,
        project_id: i64,
        ids: &[i64],
    ) -> Result<Vec<PushOrder>, StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "SELECT id, retailcrm_order_id, status, deleted_at FROM orders \
             WHERE project_id = $1 AND id = ANY($2)",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Array<BigInt>, _>(ids)
        .load(&mut conn)
        .await
        .map_err(op("read orders to push"))
    }

    /// Links a user to the RetailCRM customer created for it and settles its rows, in one
    /// transaction (a crash leaves both or neither; a retried create finds the customer by
    /// its external id).
    pub async fn link_pushed_user(
        &self,
        project_id: i64,
        user_id: i64,
        retailcrm_id: i64,
        outbox_ids: &[i64],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.transaction(async |c| {
            diesel::sql_query(
                "UPDATE users SET retailcrm_customer_id = $3, updated_at = now() \
                 WHERE project_id = $1 AND id = $2",
            )
            .bind::<BigInt, _>(project_id)
            .bind::<BigInt, _>(user_id)
            .bind::<BigInt, _>(retailcrm_id)
            .execute(c)
            .await
            .map_err(op("link a pushed user"))?;
            diesel::sql_query(
                "UPDATE retailcrm_outbox SET state = 'sent', attempts = attempts + 1, \
                 last_error = NULL, sent_at = now(), retailcrm_id = $2 \
                 WHERE id = ANY($1) AND state = 'pending'",
            )
            .bind::<Array<BigInt>, _>(outbox_ids)
            .bind::<BigInt, _>(retailcrm_id)
            .execute(c)
            .await
            .map_err(op("settle outbox rows"))?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    /// Records the RetailCRM status code an order was pushed with.
    pub async fn set_pushed_order_status(
        &self,
        project_id: i64,
        order_id: i64,
        code: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "UPDATE orders SET retailcrm_status = $3, updated_at = now() \
             WHERE project_id = $1 AND id = $2",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<BigInt, _>(order_id)
        .bind::<Text, _>(code)
        .execute(&mut conn)
        .await
        .map_err(op("record a pushed order status"))?;
        Ok(())
    }

    /// Pending changes of entities a pull is about to write, by their RetailCRM ids.
    pub async fn pending_fields(
        &self,
        project_id: i64,
        entity: &str,
        retailcrm_ids: &[i64],
    ) -> Result<Vec<PendingChange>, StoreError> {
        if retailcrm_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (table, column) = if entity == ORDER {
            ("orders", "retailcrm_order_id")
        } else {
            ("users", "retailcrm_customer_id")
        };
        let mut conn = self.conn().await?;
        diesel::sql_query(format!(
            "SELECT o.id AS outbox_id, t.{column} AS retailcrm_id, o.fields FROM retailcrm_outbox o \
             JOIN {table} t ON t.id = o.local_id AND t.project_id = o.project_id \
             WHERE o.project_id = $1 AND o.entity = $2 AND o.state = 'pending' \
             AND t.{column} = ANY($3) ORDER BY o.id"
        ))
        .bind::<BigInt, _>(project_id)
        .bind::<Text, _>(entity)
        .bind::<Array<BigInt>, _>(retailcrm_ids)
        .load(&mut conn)
        .await
        .map_err(op("read pending outbox changes"))
    }

    /// A pull found RetailCRM changed fields that pending rows change too (and RetailCRM
    /// wins): those fields leave the rows, the conflict is recorded, and a row left with no
    /// field ends as `conflict`.
    pub async fn note_pull_conflicts(
        &self,
        conflicts: &[(i64, serde_json::Value)],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        for (outbox_id, conflict) in conflicts {
            let fields: Vec<String> = conflict
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            diesel::sql_query(
                "UPDATE retailcrm_outbox SET fields = fields - $2::text[], \
                 conflict = COALESCE(conflict, '{}'::jsonb) || $3, \
                 state = CASE WHEN (fields - $2::text[]) = '{}'::jsonb THEN 'conflict' ELSE state END, \
                 last_error = 'RetailCRM changed these fields too; RetailCRM wins (see conflict)', \
                 sent_at = CASE WHEN (fields - $2::text[]) = '{}'::jsonb THEN now() ELSE sent_at END \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind::<BigInt, _>(outbox_id)
            .bind::<Array<Text>, _>(&fields)
            .bind::<Jsonb, _>(conflict)
            .execute(&mut conn)
            .await
            .map_err(op("record a conflict"))?;
        }
        Ok(())
    }
}
