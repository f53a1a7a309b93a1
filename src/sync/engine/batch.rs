//! The writer's unit of work: [`Batch`] (rows of one stream, deletions, poison, where the
//! cursor goes) and how batches merge when the writer falls behind; [`apply_pending`], the
//! pull-side guard's access to a pulled record's pushable fields (two-way sync).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{CustomerRecord, OrderRecord, Stream};
use crate::store::PoisonRecord;

/// Entities of one stream, mapped and ready to commit.
pub(super) enum Records {
    Orders(Vec<OrderRecord>),
    Customers(Vec<CustomerRecord>),
}

impl Records {
    pub(super) fn empty(stream: Stream) -> Self {
        match stream {
            Stream::Orders => Records::Orders(Vec::new()),
            Stream::Customers => Records::Customers(Vec::new()),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Records::Orders(v) => v.len(),
            Records::Customers(v) => v.len(),
        }
    }
}

/// One unit of work for the writer: rows, deletions, poison and where the cursor goes.
pub(super) struct Batch {
    pub(super) records: Records,
    pub(super) deleted: Vec<i64>,
    pub(super) poison: Vec<PoisonRecord>,
    pub(super) fetched: u64,
    pub(super) unmapped: u64,
    /// Orders left out by the integration's date filter.
    pub(super) filtered: u64,
    pub(super) history_records: u64,
    /// Cursor after this batch (the version is filled in by the writer).
    pub(super) next_since_id: Option<i64>,
    pub(super) next_snapshot_page: Option<i32>,
    /// The list's `totalCount` stored with `next_snapshot_page` (see [`Cursor::snapshot_total`]).
    pub(super) next_snapshot_total: Option<i64>,
    /// Where the snapshot's next window starts (see [`Cursor::snapshot_from`]).
    pub(super) next_snapshot_from: Option<String>,
    /// Total entities of the phase, when the API says.
    pub(super) total: Option<u64>,
    /// From a history walk: entity -> fields changed by someone other than this key.
    pub(super) touched: BTreeMap<i64, BTreeSet<String>>,
}

impl Batch {
    pub(super) fn new(stream: Stream) -> Self {
        Batch {
            records: Records::empty(stream),
            deleted: Vec::new(),
            poison: Vec::new(),
            fetched: 0,
            unmapped: 0,
            filtered: 0,
            history_records: 0,
            next_since_id: None,
            next_snapshot_page: None,
            next_snapshot_total: None,
            next_snapshot_from: None,
            total: None,
            touched: BTreeMap::new(),
        }
    }

    /// Appends a LATER batch of the same stream: rows, deletions and poison add up, and the
    /// cursor and total become the later batch's.
    pub(super) fn merge(&mut self, later: Batch) {
        self.deleted.extend(later.deleted.iter().copied());
        self.history_records += later.history_records;
        self.next_since_id = later.next_since_id;
        self.next_snapshot_page = later.next_snapshot_page;
        self.next_snapshot_total = later.next_snapshot_total;
        self.next_snapshot_from = later.next_snapshot_from.clone();
        if later.total.is_some() {
            self.total = later.total;
        }
        self.absorb(later);
    }

    /// Leaves out the entities with these ids (already committed by the batch before); they
    /// no longer count as fetched.
    pub(super) fn drop_ids(&mut self, ids: &std::collections::HashSet<i64>) {
        if ids.is_empty() {
            return;
        }
        let before = self.records.len();
        match &mut self.records {
            Records::Orders(v) => v.retain(|r| !ids.contains(&r.retailcrm_id)),
            Records::Customers(v) => v.retain(|r| !ids.contains(&r.retailcrm_id)),
        }
        self.fetched = self
            .fetched
            .saturating_sub((before - self.records.len()) as u64);
    }

    pub(super) fn absorb(&mut self, other: Batch) {
        match (&mut self.records, other.records) {
            (Records::Orders(a), Records::Orders(b)) => a.extend(b),
            (Records::Customers(a), Records::Customers(b)) => a.extend(b),
            _ => {}
        }
        self.poison.extend(other.poison);
        for (entity, fields) in other.touched {
            self.touched.entry(entity).or_default().extend(fields);
        }
        self.fetched += other.fetched;
        self.unmapped += other.unmapped;
        self.filtered += other.filtered;
    }
}

/// Reads (`value` = `None`) or sets a pushable field of the pulled record with RetailCRM id
/// `id`; returns the value it had.
pub(super) fn apply_pending(
    records: &mut Records,
    id: i64,
    field: &str,
    value: Option<&serde_json::Value>,
) -> Option<serde_json::Value> {
    let text = |v: &serde_json::Value| v.as_str().map(|s| s.trim().to_string());
    match records {
        Records::Customers(c) => {
            let r = c.iter_mut().find(|r| r.retailcrm_id == id)?;
            let slot = match field {
                "email" => &mut r.email,
                "phone" => &mut r.phone,
                "first_name" => &mut r.first_name,
                "last_name" => &mut r.last_name,
                _ => return None,
            };
            let old = serde_json::json!(slot.clone());
            if let Some(v) = value {
                *slot = match field {
                    "email" => text(v).as_deref().and_then(crate::model::normalize_email),
                    "phone" => text(v)
                        .map(|t| t.chars().filter(char::is_ascii_digit).collect::<String>())
                        .filter(|d| !d.is_empty()),
                    _ => text(v).filter(|t| !t.is_empty()),
                };
            }
            Some(old)
        }
        Records::Orders(o) => {
            let r = o.iter_mut().find(|r| r.retailcrm_id == id)?;
            if field != "status" {
                return None;
            }
            let old = serde_json::json!(r.retailcrm_status.clone());
            if let Some(st) = value.and_then(text).and_then(|t| t.parse().ok()) {
                r.status = Some(st);
            }
            Some(old)
        }
    }
}
