//! Users: resolving RetailCRM customers (and order contacts) to platform users, and the
//! customers batch commit.
//!
//! Resolution runs in memory over one set-based read of every candidate user (matched by
//! customer id, e-mail or phone), so duplicates *inside* a batch resolve to the same person;
//! the writes are then one `INSERT ... UNNEST` and one `UPDATE ... FROM UNNEST`. A per-project
//! advisory lock serialises user writes of the customers and orders streams.
//!
//! Rules: match by `retailcrm_customer_id`, then e-mail, then phone. Only the user that owns the
//! customer id (or has none and takes it) gets its fields overwritten, and only with values that
//! are present (a missing e-mail never erases one). A user matched by e-mail/phone that belongs
//! to another customer is linked but only filled where NULL, so two customers sharing a phone do
//! not flip-flop one user. An e-mail or phone already held by another user of the project is
//! never copied onto a second user.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::cursors::{self, Cursor, PoisonRecord};
use super::prepared::prepared;
use super::{Store, StoreError, lock_users, op};
use crate::model::{CustomerRecord, Stream};

/// Result of one customers batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerBatchOutcome {
    /// Users created.
    pub created: u64,
    /// Existing users whose stored fields changed.
    pub updated: u64,
    /// Users marked deleted.
    pub deleted: u64,
    /// The cursor as stored by this commit.
    pub cursor: Cursor,
}

/// A user row as read for resolution (and by the push, `store::outbox`).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct UserRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub phone: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub first_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub retailcrm_customer_id: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Contact data offered for a user (from a customer or an order's contact).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Contact<'a> {
    pub customer_id: Option<i64>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
}

/// One user in the working set: as read (`original`, `None` when new) and as it will be written.
#[derive(Debug)]
struct Slot {
    original: Option<UserRow>,
    current: UserRow,
}

/// The in-memory working set of one batch.
#[derive(Debug, Default)]
pub(crate) struct UserIndex {
    slots: Vec<Slot>,
    by_customer: HashMap<i64, usize>,
    by_email: HashMap<String, usize>,
    by_phone: HashMap<String, usize>,
}

/// Writes planned by a [`UserIndex`].
#[derive(Debug, Default)]
pub(crate) struct UserWrites {
    pub created: u64,
    pub updated: u64,
}

impl UserIndex {
    /// Reads every user of the project that any contact could match (one statement).
    pub(crate) async fn load(
        conn: &mut AsyncPgConnection,
        project_id: i64,
        contacts: &[Contact<'_>],
    ) -> Result<UserIndex, StoreError> {
        let cids: Vec<i64> = contacts.iter().filter_map(|c| c.customer_id).collect();
        let emails: Vec<&str> = contacts.iter().filter_map(|c| c.email).collect();
        let phones: Vec<&str> = contacts.iter().filter_map(|c| c.phone).collect();
        let mut index = UserIndex::default();
        if cids.is_empty() && emails.is_empty() && phones.is_empty() {
            return Ok(index);
        }
        let rows: Vec<UserRow> = prepared(
            // One index probe per key (LATERAL), then the rows by primary key, so the plan
            // does not depend on statistics that are stale during a first sync.
            "SELECT id, email, phone, first_name, last_name, retailcrm_customer_id, deleted_at \
             FROM users WHERE id = ANY(ARRAY( \
               SELECT u.id FROM unnest($2::bigint[]) AS k(cid) CROSS JOIN LATERAL \
                 (SELECT id FROM users WHERE project_id = $1 AND retailcrm_customer_id = k.cid LIMIT 1) u \
               UNION \
               SELECT u.id FROM unnest($3::text[]) AS k(email) CROSS JOIN LATERAL \
                 (SELECT id FROM users WHERE project_id = $1 AND email = k.email OFFSET 0) u \
               UNION \
               SELECT u.id FROM unnest($4::text[]) AS k(phone) CROSS JOIN LATERAL \
                 (SELECT id FROM users WHERE project_id = $1 AND phone = k.phone OFFSET 0) u)) \
             ORDER BY id",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Array<BigInt>, _>(cids)
        .bind::<Array<Text>, _>(emails)
        .bind::<Array<Text>, _>(phones)
        .load(conn)
        .await
        .map_err(op("load users"))?;
        for row in rows {
            index.push(Some(row.clone()), row);
        }
        Ok(index)
    }

    fn push(&mut self, original: Option<UserRow>, current: UserRow) -> usize {
        let i = self.slots.len();
        if let Some(cid) = current.retailcrm_customer_id {
            self.by_customer.entry(cid).or_insert(i);
        }
        if let Some(e) = &current.email {
            self.by_email.entry(e.clone()).or_insert(i);
        }
        if let Some(p) = &current.phone {
            self.by_phone.entry(p.clone()).or_insert(i);
        }
        self.slots.push(Slot { original, current });
        i
    }

    /// The user a contact resolves to: by customer id, then e-mail, then phone.
    fn find(&self, c: &Contact<'_>) -> Option<usize> {
        c.customer_id
            .and_then(|id| self.by_customer.get(&id))
            .or_else(|| c.email.and_then(|e| self.by_email.get(e)))
            .or_else(|| c.phone.and_then(|p| self.by_phone.get(p)))
            .copied()
    }

    /// Resolves a contact to a user slot, creating one when nothing matches. `overwrite` applies
    /// the customer rules (owner gets present values; a foreign match is filled where NULL);
    /// without it (order contacts) an existing user is only linked to an unowned customer id.
    pub(crate) fn resolve(&mut self, c: &Contact<'_>, overwrite: bool) -> usize {
        let Some(i) = self.find(c) else {
            let row = UserRow {
                id: 0,
                email: c
                    .email
                    .filter(|e| !self.by_email.contains_key(*e))
                    .map(str::to_string),
                phone: c
                    .phone
                    .filter(|p| !self.by_phone.contains_key(*p))
                    .map(str::to_string),
                first_name: c.first_name.map(str::to_string),
                last_name: c.last_name.map(str::to_string),
                retailcrm_customer_id: c.customer_id,
                deleted_at: None,
            };
            return self.push(None, row);
        };
        let owner_cid = self.slots[i].current.retailcrm_customer_id;
        let owns = owner_cid.is_some() && owner_cid == c.customer_id;
        let unowned = owner_cid.is_none();
        if unowned && let Some(cid) = c.customer_id {
            self.slots[i].current.retailcrm_customer_id = Some(cid);
            self.by_customer.insert(cid, i);
        }
        if !overwrite {
            return i;
        }
        if owns || unowned {
            self.set_email(i, c.email, false);
            self.set_phone(i, c.phone, false);
            let cur = &mut self.slots[i].current;
            if let Some(v) = c.first_name {
                cur.first_name = Some(v.to_string());
            }
            if let Some(v) = c.last_name {
                cur.last_name = Some(v.to_string());
            }
            cur.deleted_at = None;
        } else {
            self.set_email(i, c.email, true);
            self.set_phone(i, c.phone, true);
            let cur = &mut self.slots[i].current;
            if cur.first_name.is_none() {
                cur.first_name = c.first_name.map(str::to_string);
            }
            if cur.last_name.is_none() {
                cur.last_name = c.last_name.map(str::to_string);
            }
        }
        i
    }

    fn set_email(&mut self, i: usize, value: Option<&str>, only_if_null: bool) {
        let Some(v) = value else { return };
        let cur = &self.slots[i].current;
        if (only_if_null && cur.email.is_some()) || cur.email.as_deref() == Some(v) {
            return;
        }
        if self.by_email.get(v).is_some_and(|&j| j != i) {
            return; // held by another user: never duplicate
        }
        if let Some(old) = self.slots[i].current.email.take()
            && self.by_email.get(&old) == Some(&i)
        {
            self.by_email.remove(&old);
        }
        self.by_email.insert(v.to_string(), i);
        self.slots[i].current.email = Some(v.to_string());
    }

    fn set_phone(&mut self, i: usize, value: Option<&str>, only_if_null: bool) {
        let Some(v) = value else { return };
        let cur = &self.slots[i].current;
        if (only_if_null && cur.phone.is_some()) || cur.phone.as_deref() == Some(v) {
            return;
        }
        if self.by_phone.get(v).is_some_and(|&j| j != i) {
            return;
        }
        if let Some(old) = self.slots[i].current.phone.take()
            && self.by_phone.get(&old) == Some(&i)
        {
            self.by_phone.remove(&old);
        }
        self.by_phone.insert(v.to_string(), i);
        self.slots[i].current.phone = Some(v.to_string());
    }

    /// Inserts new users and updates changed ones (one statement, plus one to reserve ids). Afterwards [`UserIndex::id`] gives every slot's database id.
    pub(crate) async fn write(
        &mut self,
        conn: &mut AsyncPgConnection,
        project_id: i64,
    ) -> Result<UserWrites, StoreError> {
        let mut writes = UserWrites::default();
        let new: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].original.is_none())
            .collect();
        if !new.is_empty() {
            #[derive(QueryableByName)]
            struct Id {
                #[diesel(sql_type = BigInt)]
                id: i64,
            }
            let ids: Vec<Id> = prepared(
                "SELECT nextval(pg_get_serial_sequence('users', 'id')) AS id \
                 FROM generate_series(1, $1)",
            )
            .bind::<BigInt, _>(new.len() as i64)
            .load(conn)
            .await
            .map_err(op("reserve user ids"))?;
            if ids.len() != new.len() {
                return Err(StoreError::Invalid(
                    "user id reservation returned too few ids".into(),
                ));
            }
            for (&i, id) in new.iter().zip(&ids) {
                self.slots[i].current.id = id.id;
            }
            writes.created = new.len() as u64;
        }
        // New rows (no original) are inserted, changed ones updated, in one statement.
        let rows: Vec<(&UserRow, bool)> = self
            .slots
            .iter()
            .filter(|s| s.original.as_ref() != Some(&s.current))
            .map(|s| (&s.current, s.original.is_none()))
            .collect();
        writes.updated = rows.len() as u64 - writes.created;
        if !rows.is_empty() {
            write_users(conn, project_id, &rows).await?;
        }
        Ok(writes)
    }

    /// Database id of a slot (valid after [`UserIndex::write`]).
    pub(crate) fn id(&self, slot: usize) -> Option<i64> {
        self.slots.get(slot).map(|s| s.current.id)
    }
}

/// Inserts the rows flagged new (their ids are already reserved) and updates the others, in
/// ONE statement (a data-modifying CTE over the same columnar arrays).
async fn write_users(
    conn: &mut AsyncPgConnection,
    project_id: i64,
    rows: &[(&UserRow, bool)],
) -> Result<(), StoreError> {
    prepared(
        "WITH t AS (SELECT * FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], \
           $6::text[], $7::bigint[], $8::timestamptz[], $9::bool[]) \
           AS t(id, email, phone, first_name, last_name, cid, deleted_at, is_new)), \
         updated AS (UPDATE users AS u SET email = t.email, phone = t.phone, \
           first_name = t.first_name, last_name = t.last_name, retailcrm_customer_id = t.cid, \
           deleted_at = t.deleted_at, updated_at = now() \
           FROM t WHERE NOT t.is_new AND u.id = t.id AND u.project_id = $1) \
         INSERT INTO users (id, project_id, email, phone, first_name, last_name, \
           retailcrm_customer_id) \
         SELECT id, $1, email, phone, first_name, last_name, cid FROM t WHERE t.is_new",
    )
    .bind::<BigInt, _>(project_id)
    .bind::<Array<BigInt>, _>(rows.iter().map(|(r, _)| r.id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|(r, _)| r.email.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|(r, _)| r.phone.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|(r, _)| r.first_name.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|(r, _)| r.last_name.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<BigInt>>, _>(
        rows.iter()
            .map(|(r, _)| r.retailcrm_customer_id)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Timestamptz>>, _>(
        rows.iter().map(|(r, _)| r.deleted_at).collect::<Vec<_>>(),
    )
    .bind::<Array<Bool>, _>(rows.iter().map(|(_, new)| *new).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map_err(op("write users"))?;
    Ok(())
}

impl Store {
    /// Applies one customers batch, its deletions and poison records, and moves the cursor from
    /// `expected` to `next`, all in one transaction. A moved cursor rolls everything back with
    /// [`StoreError::CursorConflict`]. `next.version` is ignored: the stored version becomes
    /// `expected.version + 1` and is returned in the outcome's `cursor`, which is the `expected`
    /// of the next batch. Do not wrap the call in a timeout or `select!` (a transaction cut off
    /// mid-way is rolled back by Postgres only when its connection is discarded).
    pub async fn commit_customers(
        &self,
        project_id: i64,
        expected: &Cursor,
        next: &Cursor,
        customers: &[CustomerRecord],
        deleted_customer_ids: &[i64],
        poison: &[PoisonRecord],
    ) -> Result<CustomerBatchOutcome, StoreError> {
        let customers = super::scrub::customers(customers);
        let customers: &[CustomerRecord] = &customers;
        let mut conn = self.conn().await?;
        conn.transaction(async |c| {
            let cursor =
                cursors::compare_and_set(c, project_id, Stream::Customers, expected, next).await?;
            lock_users(c, project_id).await?;

            // The last record of a customer in the batch wins.
            let mut latest: HashMap<i64, &CustomerRecord> = HashMap::new();
            let mut order: Vec<i64> = Vec::new();
            for cust in customers {
                if latest.insert(cust.retailcrm_id, cust).is_none() {
                    order.push(cust.retailcrm_id);
                }
            }
            let contacts: Vec<Contact<'_>> = order
                .iter()
                .filter_map(|id| latest.get(id))
                .map(|cust| Contact {
                    customer_id: Some(cust.retailcrm_id),
                    email: cust.email.as_deref(),
                    phone: cust.phone.as_deref(),
                    first_name: cust.first_name.as_deref(),
                    last_name: cust.last_name.as_deref(),
                })
                .collect();
            let mut index = UserIndex::load(c, project_id, &contacts).await?;
            for contact in &contacts {
                index.resolve(contact, true);
            }
            let writes = index.write(c, project_id).await?;

            let deleted = if deleted_customer_ids.is_empty() {
                0
            } else {
                prepared(
                    "UPDATE users SET deleted_at = now(), updated_at = now() \
                     WHERE project_id = $1 AND retailcrm_customer_id = ANY($2) \
                     AND deleted_at IS NULL",
                )
                .bind::<BigInt, _>(project_id)
                .bind::<Array<BigInt>, _>(deleted_customer_ids)
                .execute(c)
                .await
                .map_err(op("mark users deleted"))? as u64
            };
            cursors::insert_poison(c, project_id, poison).await?;
            Ok(CustomerBatchOutcome {
                created: writes.created,
                updated: writes.updated,
                deleted,
                cursor,
            })
        })
        .await
    }
}
