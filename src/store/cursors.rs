//! Sync cursors (one per project and stream) and isolated "poison" records. The cursor is moved
//! only inside a batch's transaction, by compare-and-set on `version`.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::prepared::prepared;
use super::{Store, StoreError, op};
use crate::model::Stream;

/// Where a stream's sync stands. `Default` is "never synced" (version 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Last history record id applied (`filter[sinceId]` of the next walk).
    pub since_id: Option<i64>,
    /// During the first full listing: the next page to fetch; `None` outside it.
    pub snapshot_page: Option<i32>,
    /// During the first full listing: the list's `totalCount` when the last page was read, so
    /// a snapshot resumed later notices deletions made meanwhile; `None` outside it.
    pub snapshot_total: Option<i64>,
    /// During the first full listing: the creation time (`Y-m-d H:i:s`, account time) where
    /// the next window starts; `None` before the first window.
    #[serde(default)]
    pub snapshot_from: Option<String>,
    /// The resync job that reset this cursor, so its retries resume instead of starting over.
    #[serde(default)]
    pub snapshot_job: Option<String>,
    /// During the first full listing: the account's clock when the anchor was taken
    /// (`Y-m-d H:i:s`); the windows stop a margin after it. `None` when RetailCRM did not say.
    #[serde(default)]
    pub snapshot_until: Option<String>,
    /// Bumped by every commit; a commit must present the version it read.
    pub version: i64,
}

/// One record that could not be applied; stored in `dead_records` with the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct PoisonRecord {
    /// The stream it came from.
    pub stream: Stream,
    /// RetailCRM id of the entity, when known.
    pub entity_id: Option<i64>,
    /// The record as received.
    pub raw: serde_json::Value,
    /// Why it was isolated.
    pub reason: String,
}

/// A stored poison record.
#[derive(Debug, Clone, PartialEq, QueryableByName, Serialize)]
pub struct DeadRecord {
    /// Row id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Stream name (`orders`, `customers`).
    #[diesel(sql_type = Text)]
    pub stream: String,
    /// RetailCRM id of the entity, when known.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub entity_id: Option<i64>,
    /// The record as received.
    #[diesel(sql_type = Jsonb)]
    pub raw: serde_json::Value,
    /// Why it was isolated.
    #[diesel(sql_type = Text)]
    pub reason: String,
    /// When it was stored.
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct CursorRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    since_id: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    snapshot_page: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    snapshot_total: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    snapshot_from: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    snapshot_job: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    snapshot_until: Option<String>,
    #[diesel(sql_type = BigInt)]
    version: i64,
}

impl From<CursorRow> for Cursor {
    fn from(r: CursorRow) -> Self {
        Cursor {
            since_id: r.since_id,
            snapshot_page: r.snapshot_page,
            snapshot_total: r.snapshot_total,
            snapshot_from: r.snapshot_from,
            snapshot_job: r.snapshot_job,
            snapshot_until: r.snapshot_until,
            version: r.version,
        }
    }
}

impl Store {
    /// The stored cursor of `(project_id, stream)`, or `Cursor::default()` when never synced.
    pub async fn load_cursor(&self, project_id: i64, stream: Stream) -> Result<Cursor, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<CursorRow> = prepared(
            "SELECT since_id, snapshot_page, snapshot_total, snapshot_from, snapshot_job, \
             snapshot_until, version FROM sync_cursors \
             WHERE project_id = $1 AND stream = $2",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Text, _>(stream.as_str())
        .load(&mut conn)
        .await
        .map_err(op("load cursor"))?;
        Ok(rows
            .into_iter()
            .next()
            .map(Cursor::from)
            .unwrap_or_default())
    }

    /// The newest isolated records of a project.
    pub async fn dead_records(
        &self,
        project_id: i64,
        limit: i64,
    ) -> Result<Vec<DeadRecord>, StoreError> {
        let mut conn = self.conn().await?;
        prepared(
            "SELECT id, stream, entity_id, raw, reason, created_at FROM dead_records \
             WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<BigInt, _>(limit.max(0))
        .load(&mut conn)
        .await
        .map_err(op("list dead records"))
    }
}

/// Moves the cursor from `expected` to `next` (inside the caller's transaction) and returns the
/// stored cursor. Runs first in a batch: the row lock it takes makes a concurrent commit of the
/// same stream wait, then fail with [`StoreError::CursorConflict`].
pub(crate) async fn compare_and_set(
    conn: &mut AsyncPgConnection,
    project_id: i64,
    stream: Stream,
    expected: &Cursor,
    next: &Cursor,
) -> Result<Cursor, StoreError> {
    let rows: Vec<CursorRow> = if expected.version == 0 {
        prepared(
            "INSERT INTO sync_cursors \
             (project_id, stream, since_id, snapshot_page, snapshot_total, snapshot_from, \
              snapshot_job, snapshot_until, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) ON CONFLICT (project_id, stream) DO NOTHING \
             RETURNING since_id, snapshot_page, snapshot_total, snapshot_from, snapshot_job, \
             snapshot_until, version",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Text, _>(stream.as_str())
        .bind::<Nullable<BigInt>, _>(next.since_id)
        .bind::<Nullable<Integer>, _>(next.snapshot_page)
        .bind::<Nullable<BigInt>, _>(next.snapshot_total)
        .bind::<Nullable<Text>, _>(next.snapshot_from.as_deref())
        .bind::<Nullable<Text>, _>(next.snapshot_job.as_deref())
        .bind::<Nullable<Text>, _>(next.snapshot_until.as_deref())
        .load(conn)
        .await
        .map_err(op("insert cursor"))?
    } else {
        prepared(
            "UPDATE sync_cursors SET since_id = $3, snapshot_page = $4, snapshot_total = $6, \
             snapshot_from = $7, snapshot_job = $8, snapshot_until = $9, version = version + 1, \
             updated_at = now() \
             WHERE project_id = $1 AND stream = $2 AND version = $5 \
             RETURNING since_id, snapshot_page, snapshot_total, snapshot_from, snapshot_job, \
             snapshot_until, version",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Text, _>(stream.as_str())
        .bind::<Nullable<BigInt>, _>(next.since_id)
        .bind::<Nullable<Integer>, _>(next.snapshot_page)
        .bind::<BigInt, _>(expected.version)
        .bind::<Nullable<BigInt>, _>(next.snapshot_total)
        .bind::<Nullable<Text>, _>(next.snapshot_from.as_deref())
        .bind::<Nullable<Text>, _>(next.snapshot_job.as_deref())
        .bind::<Nullable<Text>, _>(next.snapshot_until.as_deref())
        .load(conn)
        .await
        .map_err(op("advance cursor"))?
    };
    match rows.into_iter().next() {
        Some(r) => Ok(Cursor::from(r)),
        None => Err(StoreError::CursorConflict {
            project_id,
            stream,
            expected: expected.version,
        }),
    }
}

/// Stores poison records in one statement (inside the caller's transaction).
pub(crate) async fn insert_poison(
    conn: &mut AsyncPgConnection,
    project_id: i64,
    poison: &[PoisonRecord],
) -> Result<(), StoreError> {
    if poison.is_empty() {
        return Ok(());
    }
    let streams: Vec<&str> = poison.iter().map(|p| p.stream.as_str()).collect();
    let ids: Vec<Option<i64>> = poison.iter().map(|p| p.entity_id).collect();
    let raws: Vec<serde_json::Value> = poison.iter().map(|p| super::scrub::json(&p.raw)).collect();
    let reasons: Vec<String> = poison
        .iter()
        .map(|p| super::scrub::text(&p.reason).into_owned())
        .collect();
    prepared(
        "INSERT INTO dead_records (project_id, stream, entity_id, raw, reason) \
         SELECT $1, s, e, r, why FROM UNNEST($2::text[], $3::bigint[], $4::jsonb[], $5::text[]) \
         AS t(s, e, r, why)",
    )
    .bind::<BigInt, _>(project_id)
    .bind::<Array<Text>, _>(streams)
    .bind::<Array<Nullable<BigInt>>, _>(ids)
    .bind::<Array<Jsonb>, _>(raws)
    .bind::<Array<Text>, _>(reasons)
    .execute(conn)
    .await
    .map_err(op("insert dead records"))?;
    Ok(())
}
