//! Orders: the orders batch commit. One transaction: cursor compare-and-set, one read of the
//! matching orders and candidate users, in-memory resolution, then one insert and one update
//! per table (`UNNEST`), deletions and poison records.
//!
//! Matching: by `retailcrm_order_id`, then `order_number` (only a row without a RetailCRM id,
//! i.e. created by the platform). An order whose number belongs to another stored order, or two
//! orders of one batch claiming one number, are isolated into `dead_records`, not fatal. User: by the contact's customer id,
//! then e-mail, then phone, else a user is created from the contact; an order without any contact
//! is stored with `user_id` NULL (never dropped). An unmapped status (`status: None`) keeps the
//! order's previous platform status (`PENDING` when new); the raw RetailCRM status is always
//! stored. A listed order clears `deleted_at`.

use std::collections::HashMap;

use bigdecimal::BigDecimal;
use chrono::{DateTime, SubsecRound, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Nullable, Numeric, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::cursors::{self, Cursor, PoisonRecord};
use super::prepared::prepared;
use super::users::{Contact, UserIndex};
use super::{Store, StoreError, lock_users, op};
use crate::model::{OrderRecord, OrderStatus, Stream};

/// Result of one orders batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderBatchOutcome {
    /// Orders created.
    pub created: u64,
    /// Existing orders whose stored fields changed.
    pub updated: u64,
    /// Orders marked deleted.
    pub deleted: u64,
    /// Users created from order contacts.
    pub users_created: u64,
    /// Orders isolated by the store itself (e.g. an order number used by another order); they
    /// are in `dead_records` alongside the caller's poison.
    pub isolated: u64,
    /// The cursor as stored by this commit.
    pub cursor: Cursor,
}

#[derive(Debug, Clone, PartialEq, QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    user_id: Option<i64>,
    #[diesel(sql_type = Text)]
    order_number: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    retailcrm_order_id: Option<i64>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    retailcrm_status: Option<String>,
    #[diesel(sql_type = Numeric)]
    total_amount: BigDecimal,
    #[diesel(sql_type = Nullable<Text>)]
    currency: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    ordered_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    deleted_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Applies one orders batch, its deletions and poison records, and moves the cursor from
    /// `expected` to `next`, all in one transaction. A moved cursor rolls everything back with
    /// [`StoreError::CursorConflict`]. `next.version` is ignored: the stored version becomes
    /// `expected.version + 1` and is returned in the outcome's `cursor`, which is the `expected`
    /// of the next batch. Do not wrap the call in a timeout or `select!` (a transaction cut off
    /// mid-way is rolled back by Postgres only when its connection is discarded).
    pub async fn commit_orders(
        &self,
        project_id: i64,
        expected: &Cursor,
        next: &Cursor,
        orders: &[OrderRecord],
        deleted_order_ids: &[i64],
        poison: &[PoisonRecord],
    ) -> Result<OrderBatchOutcome, StoreError> {
        let orders = super::scrub::orders(orders);
        let orders: &[OrderRecord] = &orders;
        let mut conn = self.conn().await?;
        conn.transaction(async |c| {
            let cursor =
                cursors::compare_and_set(c, project_id, Stream::Orders, expected, next).await?;
            let mut isolated: Vec<PoisonRecord> = Vec::new();
            let batch = dedupe(orders, &mut isolated);

            let existing = load_orders(c, project_id, &batch).await?;
            let by_rid: HashMap<i64, usize> = existing
                .iter()
                .enumerate()
                .filter_map(|(i, o)| o.retailcrm_order_id.map(|r| (r, i)))
                .collect();
            let by_number: HashMap<&str, usize> = existing
                .iter()
                .enumerate()
                .map(|(i, o)| (o.order_number.as_str(), i))
                .collect();

            // Match orders; isolate one whose number belongs to a different stored order.
            let mut matched: Vec<(&OrderRecord, Option<usize>)> = Vec::with_capacity(batch.len());
            for rec in batch {
                // By number only a row without a RetailCRM id (created by the platform) is
                // matched; a row with another id is another RetailCRM order.
                let m = by_rid.get(&rec.retailcrm_id).copied().or_else(|| {
                    by_number
                        .get(rec.number.as_str())
                        .copied()
                        .filter(|&i| existing[i].retailcrm_order_id.is_none())
                });
                let number_owner = by_number.get(rec.number.as_str()).copied();
                if number_owner.is_some() && number_owner != m {
                    isolated.push(poison_of(
                        rec,
                        format!(
                            "order number {} is already used by another stored order; fix the \
                             number in RetailCRM",
                            rec.number
                        ),
                    ));
                    continue;
                }
                matched.push((rec, m));
            }

            // Resolve users.
            lock_users(c, project_id).await?;
            let contacts: Vec<Option<Contact<'_>>> = matched
                .iter()
                .map(|(rec, _)| {
                    let k = &rec.contact;
                    (!k.is_empty()).then_some(Contact {
                        customer_id: k.customer_retailcrm_id,
                        email: k.email.as_deref(),
                        phone: k.phone.as_deref(),
                        first_name: k.first_name.as_deref(),
                        last_name: k.last_name.as_deref(),
                    })
                })
                .collect();
            let all: Vec<Contact<'_>> = contacts.iter().flatten().copied().collect();
            let mut users = UserIndex::load(c, project_id, &all).await?;
            let slots: Vec<Option<usize>> = contacts
                .iter()
                .map(|k| k.as_ref().map(|k| users.resolve(k, false)))
                .collect();
            let user_writes = users.write(c, project_id).await?;

            // Plan order rows.
            let mut inserts: Vec<OrderRow> = Vec::new();
            let mut updates: Vec<OrderRow> = Vec::new();
            for ((rec, m), slot) in matched.iter().zip(&slots) {
                let user_id = slot.and_then(|s| users.id(s));
                let prev = m.map(|i| &existing[i]);
                let status = match (rec.status, prev) {
                    (Some(s), _) => s.as_str().to_string(),
                    (None, Some(p)) => p.status.clone(),
                    (None, None) => OrderStatus::Pending.as_str().to_string(),
                };
                let row = OrderRow {
                    id: prev.map_or(0, |p| p.id),
                    user_id,
                    order_number: rec.number.clone(),
                    retailcrm_order_id: Some(rec.retailcrm_id),
                    status,
                    retailcrm_status: Some(rec.retailcrm_status.clone()),
                    total_amount: rec.total_amount.clone(),
                    currency: rec.currency.clone(),
                    ordered_at: rec.ordered_at.map(|t| t.trunc_subsecs(6)),
                    deleted_at: None,
                };
                match prev {
                    None => inserts.push(row),
                    Some(p) if !same(p, &row) => updates.push(row),
                    Some(_) => {}
                }
            }
            let (created, updated) = (inserts.len() as u64, updates.len() as u64);
            if created + updated > 0 {
                inserts.append(&mut updates);
                write_orders(c, project_id, &inserts).await?;
            }
            let deleted = if deleted_order_ids.is_empty() {
                0
            } else {
                prepared(
                    "UPDATE orders SET deleted_at = now(), updated_at = now() \
                     WHERE project_id = $1 AND retailcrm_order_id = ANY($2) \
                     AND deleted_at IS NULL",
                )
                .bind::<BigInt, _>(project_id)
                .bind::<Array<BigInt>, _>(deleted_order_ids)
                .execute(c)
                .await
                .map_err(op("mark orders deleted"))? as u64
            };
            cursors::insert_poison(c, project_id, poison).await?;
            cursors::insert_poison(c, project_id, &isolated).await?;
            Ok(OrderBatchOutcome {
                created,
                updated,
                deleted,
                users_created: user_writes.created,
                isolated: isolated.len() as u64,
                cursor,
            })
        })
        .await
    }
}

/// Keeps the last record per RetailCRM id, then the last per order number; isolates the rest
/// of a number clash (two RetailCRM orders claiming one number in one batch).
fn dedupe<'a>(orders: &'a [OrderRecord], isolated: &mut Vec<PoisonRecord>) -> Vec<&'a OrderRecord> {
    let mut last_by_id: HashMap<i64, usize> = HashMap::new();
    for (i, o) in orders.iter().enumerate() {
        last_by_id.insert(o.retailcrm_id, i);
    }
    let unique: Vec<&OrderRecord> = orders
        .iter()
        .enumerate()
        .filter(|(i, o)| last_by_id.get(&o.retailcrm_id) == Some(i))
        .map(|(_, o)| o)
        .collect();
    let mut last_by_number: HashMap<&str, i64> = HashMap::new();
    for o in &unique {
        last_by_number.insert(o.number.as_str(), o.retailcrm_id);
    }
    let mut out = Vec::with_capacity(unique.len());
    for o in unique {
        if last_by_number.get(o.number.as_str()) == Some(&o.retailcrm_id) {
            out.push(o);
        } else {
            isolated.push(poison_of(
                o,
                format!(
                    "order number {} is claimed by two orders in one batch",
                    o.number
                ),
            ));
        }
    }
    out
}

fn poison_of(rec: &OrderRecord, reason: String) -> PoisonRecord {
    PoisonRecord {
        stream: Stream::Orders,
        entity_id: Some(rec.retailcrm_id),
        raw: serde_json::to_value(rec).unwrap_or(serde_json::Value::Null),
        reason,
    }
}

/// Whether writing `new` over `old` would change nothing.
fn same(old: &OrderRow, new: &OrderRow) -> bool {
    old.user_id == new.user_id
        && old.order_number == new.order_number
        && old.retailcrm_order_id == new.retailcrm_order_id
        && old.status == new.status
        && old.retailcrm_status == new.retailcrm_status
        && old.total_amount == new.total_amount
        && old.currency == new.currency
        && old.ordered_at == new.ordered_at
        && old.deleted_at.is_none()
}

async fn load_orders(
    conn: &mut AsyncPgConnection,
    project_id: i64,
    batch: &[&OrderRecord],
) -> Result<Vec<OrderRow>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let rids: Vec<i64> = batch.iter().map(|o| o.retailcrm_id).collect();
    let numbers: Vec<&str> = batch.iter().map(|o| o.number.as_str()).collect();
    prepared(
        // One unique-index probe per key (LATERAL), then the rows by primary key. The plain
        // `project_id = $1 AND (a = ANY OR b = ANY)` form lets the planner scan the whole
        // project when its statistics are stale, which they always are during a first sync.
        "SELECT id, user_id, order_number, retailcrm_order_id, status, retailcrm_status, \
         total_amount, currency, ordered_at, deleted_at FROM orders \
         WHERE id = ANY(ARRAY( \
           SELECT o.id FROM unnest($2::bigint[]) AS k(rid) CROSS JOIN LATERAL \
             (SELECT id FROM orders WHERE project_id = $1 AND retailcrm_order_id = k.rid LIMIT 1) o \
           UNION \
           SELECT o.id FROM unnest($3::text[]) AS k(num) CROSS JOIN LATERAL \
             (SELECT id FROM orders WHERE project_id = $1 AND order_number = k.num LIMIT 1) o)) \
         FOR UPDATE",
    )
    .bind::<BigInt, _>(project_id)
    .bind::<Array<BigInt>, _>(rids)
    .bind::<Array<Text>, _>(numbers)
    .load(conn)
    .await
    .map_err(op("load orders"))
}

/// Inserts the rows with `id == 0` and updates the others, in ONE statement (a data-modifying
/// CTE over the same columnar arrays), so a batch costs one round trip for its order rows.
async fn write_orders(
    conn: &mut AsyncPgConnection,
    project_id: i64,
    rows: &[OrderRow],
) -> Result<(), StoreError> {
    prepared(
        "WITH t AS (SELECT * FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::bigint[], \
           $6::text[], $7::text[], $8::numeric[], $9::text[], $10::timestamptz[]) \
           AS t(id, user_id, num, rid, status, rstatus, total, currency, ordered_at)), \
         updated AS (UPDATE orders AS o SET user_id = t.user_id, order_number = t.num, \
           retailcrm_order_id = t.rid, status = t.status, retailcrm_status = t.rstatus, \
           total_amount = t.total, currency = t.currency, ordered_at = t.ordered_at, \
           deleted_at = NULL, updated_at = now() \
           FROM t WHERE t.id <> 0 AND o.id = t.id AND o.project_id = $1) \
         INSERT INTO orders (project_id, user_id, order_number, retailcrm_order_id, status, \
           retailcrm_status, total_amount, currency, ordered_at) \
         SELECT $1, user_id, num, rid, status, rstatus, total, currency, ordered_at \
         FROM t WHERE t.id = 0",
    )
    .bind::<BigInt, _>(project_id)
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|r| r.order_number.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<BigInt>>, _>(
        rows.iter()
            .map(|r| r.retailcrm_order_id)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.retailcrm_status.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Numeric>, _>(
        rows.iter()
            .map(|r| r.total_amount.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.currency.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|r| r.ordered_at).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map_err(op("write orders"))?;
    Ok(())
}
