//! What the history walk keeps of each history record ([`HistoryEntry`]) and of a page
//! ([`HistoryWalk`]): changed and deleted ids, fields changed by others (two-way sync's
//! conflict rule), poison, where the cursor goes.

use std::collections::{BTreeMap, BTreeSet};

use crate::crm::types::HasHistoryId;
use crate::crm::{Decoded, PoisonItem};
use crate::store::PoisonRecord;

/// The parts of a page of history records the walk needs, whatever the stream.
pub(super) fn entries_of<R: HasHistoryId>(items: Vec<Decoded<R>>) -> Vec<HistoryEntry> {
    items
        .into_iter()
        .map(|d| match d {
            Decoded::Ok(r) => HistoryEntry {
                id: Some(r.history_id()),
                entity: r.entity_id(),
                deleted: r.is_deleted(),
                also: r.combined_to_id(),
                foreign_field: r.foreign_field().map(str::to_string),
                poison: None,
            },
            Decoded::Poison(p) => HistoryEntry::from_poison(p, R::ENTITY_KEY),
        })
        .collect()
}

/// The part of a history record the walk needs.
pub(super) struct HistoryEntry {
    pub(super) id: Option<i64>,
    pub(super) entity: Option<i64>,
    pub(super) deleted: bool,
    /// `combinedTo.id`: the entity a merged one went into, which changed too.
    pub(super) also: Option<i64>,
    /// The field changed, when someone other than this key changed it.
    pub(super) foreign_field: Option<String>,
    pub(super) poison: Option<PoisonItem>,
}

impl HistoryEntry {
    /// A history record that did not decode: keep it aside, but still learn its id (so the
    /// cursor moves on) and its entity id (so the entity is re-fetched) when the raw JSON has them.
    pub(super) fn from_poison(p: PoisonItem, entity_key: &str) -> Self {
        let entity = p
            .raw
            .get(entity_key)
            .and_then(|e| e.get("id"))
            .and_then(serde_json::Value::as_i64);
        HistoryEntry {
            id: p.id,
            entity,
            deleted: false,
            also: None,
            foreign_field: None,
            poison: Some(p),
        }
    }
}

#[derive(Default)]
pub(super) struct HistoryWalk {
    pub(super) changed: Vec<i64>,
    /// Entity -> fields someone other than this key changed (two-way sync conflicts).
    pub(super) touched: BTreeMap<i64, BTreeSet<String>>,
    pub(super) deleted: Vec<i64>,
    pub(super) poison: Vec<PoisonRecord>,
    pub(super) last_id: Option<i64>,
    pub(super) records: u64,
    pub(super) more: bool,
}
