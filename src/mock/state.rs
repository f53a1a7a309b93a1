//! The mock account's state: entities, their history, and every way to change them.
//!
//! Every change (API create/edit, admin mutation, generated change) appends history records
//! with strictly increasing ids (one sequence per stream, as in RetailCRM) and a `createdAt`
//! that is close to, but not monotonic in, the id. A `created` record carries a full snapshot of
//! the entity as it was created (shared through `Arc`, so snapshots cost nothing until the entity
//! changes); field records carry `oldValue`/`newValue`; deletions carry `deleted: true` and the
//! entity disappears from the lists. While a trigger URL is set, every record also stages one
//! call in the [`WebhookOutbox`] (one per entity and change, see [`super::webhook`]).
//!
//! Lists are filtered by [`ListFilter`] and served in [`MockState::list_order`]; history
//! queries (page cap, padding, date filters) live in [`super::history`]. `externalId` is unique
//! per store for orders and for customers (indexed, so `by=externalId` finds one entity).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Duration as ChronoDuration, NaiveDateTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::clock::Clock;
use super::data::{
    Kopecks, MockCorporate, MockCustomer, MockOrder, MockPayment, MockPhone, PhpMap,
    all_status_codes, fmt_time, random_customer, random_order,
};
use super::history::{HistQuery, Padding, Slot};
use super::listing::{ListFilter, ListOrder, page_ids};
use super::webhook::{WebhookCall, WebhookOutbox};
use crate::model::Stream;

mod merge;

/// The entity a history record is about, as shown on non-create records.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRef {
    /// Entity id.
    pub id: i64,
    /// External id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Store code.
    pub site: String,
    /// Status code (orders only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// An order as the API renders it: the order plus its customer's (or corporate customer's and
/// contact's) current state, and its payments (an object on lists, a list in `created`
/// snapshots, as the live API does).
#[derive(Serialize)]
struct OrderView<'a> {
    #[serde(flatten)]
    order: &'a MockOrder,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<CustomerView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact: Option<&'a MockCustomer>,
    payments: PaymentsView<'a>,
}

/// The `customer` of an order.
#[derive(Serialize)]
#[serde(untagged)]
enum CustomerView<'a> {
    Ordinary(&'a MockCustomer),
    Corporate(&'a MockCorporate),
}

/// `payments`: keyed by id (`{}` when none), or a JSON list.
enum PaymentsView<'a> {
    Map(&'a BTreeMap<String, MockPayment>),
    List(&'a BTreeMap<String, MockPayment>),
}

impl Serialize for PaymentsView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PaymentsView::Map(m) => m.serialize(s),
            PaymentsView::List(m) => s.collect_seq(m.values()),
        }
    }
}

/// A history record as the API renders it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistView<'a> {
    id: i64,
    created_at: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    created: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<Value>,
    field: &'a str,
    old_value: Value,
    new_value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    combined_to: Option<&'a RawValue>,
}

/// Serialises `v` once into JSON text kept as-is (no re-parse).
fn raw<T: Serialize>(v: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap_or_default()
}

/// What a history record says.
#[derive(Debug, Clone)]
pub enum HistKind<E> {
    /// The entity was created; full snapshot.
    Created(Arc<E>),
    /// One field changed.
    Field {
        /// snake_case field name (`status`, `email`, `first_name`, ...).
        field: String,
        /// Old value.
        old: Value,
        /// New value.
        new: Value,
    },
    /// The entity was deleted.
    Deleted,
    /// The entity was merged into entity `into` (`source: combine`): it is deleted, and the
    /// record carries `combinedTo`.
    Combined {
        /// The entity it went into.
        into: EntityRef,
    },
}

/// One history record.
#[derive(Debug, Clone)]
pub struct HistEntry<E> {
    /// Strictly increasing id (the cursor).
    pub id: i64,
    /// `Y-m-d H:i:s` (not monotonic in id).
    pub created_at: String,
    /// `api`, `user`, `code`, ...
    pub source: &'static str,
    /// The entity.
    pub entity: EntityRef,
    /// The change.
    pub kind: HistKind<E>,
}

/// What `mutate_random` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MutationReport {
    /// Orders whose status changed.
    pub status_changes: u64,
    /// Customers edited.
    pub customer_edits: u64,
    /// Orders created.
    pub orders_created: u64,
    /// Customers created.
    pub customers_created: u64,
    /// Orders deleted.
    pub orders_deleted: u64,
    /// Customers deleted.
    pub customers_deleted: u64,
}

/// A failed API write: HTTP status, `errorMsg`, `errors`.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteError {
    /// HTTP status to answer.
    pub status: u16,
    /// `errorMsg`.
    pub message: String,
    /// `errors` (object).
    pub errors: BTreeMap<String, String>,
}

impl WriteError {
    fn new(status: u16, message: &str) -> Self {
        WriteError {
            status,
            message: message.to_string(),
            errors: BTreeMap::new(),
        }
    }
}

/// The whole account.
#[derive(Debug)]
pub struct MockState {
    /// Store code of the account's only store.
    pub site: String,
    /// Live orders by id.
    pub orders: BTreeMap<i64, Arc<MockOrder>>,
    /// Live customers by id.
    pub customers: BTreeMap<i64, Arc<MockCustomer>>,
    /// Order history, ascending by id.
    pub order_history: Vec<HistEntry<MockOrder>>,
    /// Customer history, ascending by id.
    pub customer_history: Vec<HistEntry<MockCustomer>>,
    /// The order lists are served in (default newest first).
    pub list_order: ListOrder,
    /// History requests with `page` above this answer 400, as RetailCRM does (0: no cap).
    pub history_page_cap: u32,
    /// The clock of changes (real time in the account timezone after generation).
    pub clock: Clock,
    /// Trigger calls of changes (see [`super::webhook`]); staged only while a URL is set.
    webhooks: Arc<WebhookOutbox>,
    /// Number of the current change (one trigger call per entity and change).
    change_seq: u64,
    /// Inside [`MockState::grouped`]: records belong to one change.
    grouping: bool,
    order_pad: Padding,
    customer_pad: Padding,
    order_ext: HashMap<(String, String), i64>,
    customer_ext: HashMap<(String, String), i64>,
    list_requests: AtomicU64,
    order_list_cache: ListCache,
    customer_list_cache: ListCache,
    orders_by_created: BTreeSet<(u64, i64)>,
    customers_by_created: BTreeSet<(u64, i64)>,
    order_ids: Vec<i64>,
    customer_ids: Vec<i64>,
    next_order_id: i64,
    next_customer_id: i64,
    next_order_hist: i64,
    next_customer_hist: i64,
    rng: StdRng,
}

/// The matching ids of the last few filtered list requests, valid while the stream's history
/// does not grow (every change of an entity appends a history record).
type ListCache = Mutex<Vec<(ListFilter, i64, Arc<Vec<i64>>)>>;

/// Filtered results kept per list.
const CACHED_FILTERS: usize = 4;

/// A `Y-m-d H:i:s` time as a number with the same order (`20250102153000`), for the creation
/// index.
fn time_key(s: &str) -> u64 {
    s.bytes().filter(u8::is_ascii_digit).fold(0u64, |k, b| {
        k.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    })
}

fn remove_sorted(v: &mut Vec<i64>, id: i64) {
    if let Ok(pos) = v.binary_search(&id) {
        v.remove(pos);
    }
}

/// Inserts `id` keeping `v` sorted and unique; O(1) for the usual "new id is the largest".
fn push_sorted(v: &mut Vec<i64>, id: i64) {
    match v.last() {
        None => v.push(id),
        Some(last) if *last < id => v.push(id),
        Some(_) => {
            if let Err(pos) = v.binary_search(&id) {
                v.insert(pos, id);
            }
        }
    }
}

/// Reads a string field from a JSON patch (`null` clears it).
fn patch_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl MockState {
    /// An account with nothing in it.
    pub fn empty(site: String, seed: u64) -> Self {
        MockState {
            site,
            orders: BTreeMap::new(),
            customers: BTreeMap::new(),
            order_history: Vec::new(),
            customer_history: Vec::new(),
            list_order: ListOrder::default(),
            history_page_cap: 10,
            clock: Clock::real(chrono_tz::Europe::Moscow),
            webhooks: Arc::new(WebhookOutbox::default()),
            change_seq: 0,
            grouping: false,
            order_pad: Padding::default(),
            customer_pad: Padding::default(),
            order_ext: HashMap::new(),
            customer_ext: HashMap::new(),
            list_requests: AtomicU64::new(0),
            order_list_cache: Mutex::new(Vec::new()),
            customer_list_cache: Mutex::new(Vec::new()),
            orders_by_created: BTreeSet::new(),
            customers_by_created: BTreeSet::new(),
            order_ids: Vec::new(),
            customer_ids: Vec::new(),
            next_order_id: 1,
            next_customer_id: 1,
            next_order_hist: 1,
            next_customer_hist: 1,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_cafe),
        }
    }

    /// Sets (or, with `None`, clears) the URL RetailCRM's trigger calls after every change
    /// (see [`super::webhook`]). Clearing it drops the calls not yet sent.
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.webhooks.set_url(url);
    }

    /// The trigger URL, if set.
    pub fn webhook_url(&self) -> Option<String> {
        self.webhooks.url()
    }

    /// The outbox of trigger calls (shared with the server and its sender).
    pub fn webhook_outbox(&self) -> &Arc<WebhookOutbox> {
        &self.webhooks
    }

    /// Stages the trigger call for a record about `id` of `stream`.
    fn trigger(&mut self, stream: Stream, id: i64) {
        if !self.webhooks.enabled() {
            return;
        }
        if !self.grouping {
            self.change_seq += 1;
        }
        self.webhooks
            .stage(WebhookCall { stream, id }, self.change_seq);
    }

    /// Runs `f` as one change: its records about one entity make one trigger call.
    fn grouped<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        if self.grouping {
            return f(self);
        }
        self.change_seq += 1;
        self.grouping = true;
        let r = f(self);
        self.grouping = false;
        r
    }

    /// Live order ids, ascending.
    pub fn order_ids(&self) -> &[i64] {
        &self.order_ids
    }

    /// Live customer ids, ascending.
    pub fn customer_ids(&self) -> &[i64] {
        &self.customer_ids
    }

    /// The next change time: the clock's now (real, or simulated while generating, then moving
    /// 1-90 s per change), and the record's `createdAt` may lag it by up to 5 minutes (so
    /// `createdAt` is not monotonic in id, as on the live API). Draws the same two random numbers
    /// as ever, so a mutation seed gives the same changes as before the real clock.
    fn change_time(&mut self) -> NaiveDateTime {
        let (now, lag) = self.clock_draw();
        now - ChronoDuration::seconds(lag)
    }

    /// The time of a creation: the clock's now, exactly (so the entity's `createdAt` is now).
    fn creation_time(&mut self) -> NaiveDateTime {
        self.clock_draw().0
    }

    fn clock_draw(&mut self) -> (NaiveDateTime, i64) {
        let step = self.rng.random_range(1..90);
        let lag = self.rng.random_range(0..300);
        (self.clock.tick(step), lag)
    }

    fn order_ref(o: &MockOrder) -> EntityRef {
        EntityRef {
            id: o.id,
            external_id: o.external_id.clone(),
            site: o.site.clone(),
            status: Some(o.status.clone()),
        }
    }

    fn customer_ref(c: &MockCustomer) -> EntityRef {
        EntityRef {
            id: c.id,
            external_id: c.external_id.clone(),
            site: c.site.clone(),
            status: None,
        }
    }

    fn push_order_hist(
        &mut self,
        source: &'static str,
        at: NaiveDateTime,
        entity: EntityRef,
        kind: HistKind<MockOrder>,
    ) {
        self.trigger(Stream::Orders, entity.id);
        push_hist(
            &mut self.next_order_hist,
            &mut self.order_history,
            source,
            at,
            entity,
            kind,
        );
    }

    fn push_customer_hist(
        &mut self,
        source: &'static str,
        at: NaiveDateTime,
        entity: EntityRef,
        kind: HistKind<MockCustomer>,
    ) {
        self.trigger(Stream::Customers, entity.id);
        push_hist(
            &mut self.next_customer_hist,
            &mut self.customer_history,
            source,
            at,
            entity,
            kind,
        );
    }

    /// Adds a customer (its id must be the next one) with a `created` record at time `at`.
    pub fn insert_customer(
        &mut self,
        c: MockCustomer,
        source: &'static str,
        at: NaiveDateTime,
    ) -> i64 {
        let id = c.id;
        self.next_customer_id = self.next_customer_id.max(id + 1);
        if let Some(ext) = &c.external_id {
            self.customer_ext.insert((c.site.clone(), ext.clone()), id);
        }
        self.customers_by_created
            .insert((time_key(&c.created_at), id));
        let c = Arc::new(c);
        self.customers.insert(id, c.clone());
        push_sorted(&mut self.customer_ids, id);
        self.push_customer_hist(source, at, Self::customer_ref(&c), HistKind::Created(c));
        id
    }

    /// Adds an order with a `created` record at time `at`.
    pub fn insert_order(&mut self, o: MockOrder, source: &'static str, at: NaiveDateTime) -> i64 {
        let id = o.id;
        self.next_order_id = self.next_order_id.max(id + 1);
        if let Some(ext) = &o.external_id {
            self.order_ext.insert((o.site.clone(), ext.clone()), id);
        }
        self.orders_by_created.insert((time_key(&o.created_at), id));
        let o = Arc::new(o);
        self.orders.insert(id, o.clone());
        push_sorted(&mut self.order_ids, id);
        self.push_order_hist(source, at, Self::order_ref(&o), HistKind::Created(o));
        id
    }

    /// Changes an order's status (a `status` record with `{code}` values). False if the order
    /// does not exist or already has that status.
    pub fn set_order_status(&mut self, id: i64, status: &str, source: &'static str) -> bool {
        let Some(current) = self.orders.get(&id).cloned() else {
            return false;
        };
        if current.status == status {
            return false;
        }
        let at = self.change_time();
        let mut next = (*current).clone();
        next.status = status.to_string();
        next.status_updated_at = fmt_time(at);
        let old = json!({ "code": current.status });
        let new = json!({ "code": status });
        let entity = Self::order_ref(&next);
        self.orders.insert(id, Arc::new(next));
        self.push_order_hist(
            source,
            at,
            entity,
            HistKind::Field {
                field: "status".into(),
                old,
                new,
            },
        );
        true
    }

    /// Changes an order's contact e-mail.
    pub fn set_order_email(
        &mut self,
        id: i64,
        email: Option<String>,
        source: &'static str,
    ) -> bool {
        let Some(current) = self.orders.get(&id).cloned() else {
            return false;
        };
        let at = self.change_time();
        let mut next = (*current).clone();
        next.email = email.clone();
        let entity = Self::order_ref(&next);
        self.orders.insert(id, Arc::new(next));
        self.push_order_hist(
            source,
            at,
            entity,
            HistKind::Field {
                field: "email".into(),
                old: current
                    .email
                    .clone()
                    .map(Value::String)
                    .unwrap_or(Value::Null),
                new: email.map(Value::String).unwrap_or(Value::Null),
            },
        );
        true
    }

    /// Deletes an order (a `deleted: true` record; it leaves the lists).
    pub fn delete_order(&mut self, id: i64, source: &'static str) -> bool {
        let Some(current) = self.orders.remove(&id) else {
            return false;
        };
        if let Some(ext) = &current.external_id {
            self.order_ext.remove(&(current.site.clone(), ext.clone()));
        }
        self.orders_by_created
            .remove(&(time_key(&current.created_at), id));
        remove_sorted(&mut self.order_ids, id);
        let at = self.change_time();
        self.push_order_hist(source, at, Self::order_ref(&current), HistKind::Deleted);
        true
    }

    /// Deletes a customer.
    pub fn delete_customer(&mut self, id: i64, source: &'static str) -> bool {
        let Some(current) = self.remove_customer(id) else {
            return false;
        };
        let at = self.change_time();
        self.push_customer_hist(source, at, Self::customer_ref(&current), HistKind::Deleted);
        true
    }

    /// Takes a customer out of the account and its indexes (no history record).
    fn remove_customer(&mut self, id: i64) -> Option<Arc<MockCustomer>> {
        let current = self.customers.remove(&id)?;
        if let Some(ext) = &current.external_id {
            self.customer_ext
                .remove(&(current.site.clone(), ext.clone()));
        }
        self.customers_by_created
            .remove(&(time_key(&current.created_at), id));
        remove_sorted(&mut self.customer_ids, id);
        Some(current)
    }

    /// Edits a customer: each given field that changes becomes one history record (and the
    /// edit one trigger call).
    pub fn edit_customer(
        &mut self,
        id: i64,
        email: Option<Option<String>>,
        phones: Option<Vec<String>>,
        first_name: Option<Option<String>>,
        last_name: Option<Option<String>>,
        source: &'static str,
    ) -> bool {
        self.grouped(|st| st.edit_customer_fields(id, email, phones, first_name, last_name, source))
    }

    fn edit_customer_fields(
        &mut self,
        id: i64,
        email: Option<Option<String>>,
        phones: Option<Vec<String>>,
        first_name: Option<Option<String>>,
        last_name: Option<Option<String>>,
        source: &'static str,
    ) -> bool {
        let Some(current) = self.customers.get(&id).cloned() else {
            return false;
        };
        let mut next = (*current).clone();
        let mut changes: Vec<(String, Value, Value)> = Vec::new();
        let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        if let Some(e) = email
            && e != next.email
        {
            changes.push(("email".into(), opt(&next.email), opt(&e)));
            next.email = e;
        }
        if let Some(f) = first_name
            && f != next.first_name
        {
            changes.push(("first_name".into(), opt(&next.first_name), opt(&f)));
            next.first_name = f;
        }
        if let Some(l) = last_name
            && l != next.last_name
        {
            changes.push(("last_name".into(), opt(&next.last_name), opt(&l)));
            next.last_name = l;
        }
        if let Some(p) = phones {
            let new_phones: Vec<MockPhone> =
                p.into_iter().map(|number| MockPhone { number }).collect();
            if new_phones != next.phones {
                let old = json!(
                    next.phones
                        .iter()
                        .map(|p| json!({"number": p.number}))
                        .collect::<Vec<_>>()
                );
                let new = json!(
                    new_phones
                        .iter()
                        .map(|p| json!({"number": p.number}))
                        .collect::<Vec<_>>()
                );
                changes.push(("phones".into(), old, new));
                next.phones = new_phones;
            }
        }
        if changes.is_empty() {
            return false;
        }
        let entity = Self::customer_ref(&next);
        self.customers.insert(id, Arc::new(next));
        for (field, old, new) in changes {
            let at = self.change_time();
            self.push_customer_hist(
                source,
                at,
                entity.clone(),
                HistKind::Field { field, old, new },
            );
        }
        true
    }

    /// Creates a random order (linked to a random live customer 70% of the time). Returns its id.
    pub fn add_random_order(&mut self, source: &'static str) -> i64 {
        let id = self.next_order_id;
        let at = self.creation_time();
        let customer = if !self.customer_ids.is_empty() && self.rng.random_bool(0.7) {
            let idx = self.rng.random_range(0..self.customer_ids.len());
            self.customers.get(&self.customer_ids[idx]).cloned()
        } else {
            None
        };
        let site = self.site.clone();
        let o = random_order(
            &mut self.rng,
            id,
            &site,
            fmt_time(at),
            customer.as_deref(),
            "new",
        );
        self.insert_order(o, source, at)
    }

    /// Creates a random customer. Returns its id.
    pub fn add_random_customer(&mut self, source: &'static str) -> i64 {
        let id = self.next_customer_id;
        let at = self.creation_time();
        let site = self.site.clone();
        let c = random_customer(&mut self.rng, id, &site, fmt_time(at));
        self.insert_customer(c, source, at)
    }

    /// Applies `n` random changes (status changes, customer edits, new orders and customers,
    /// deletions), reproducible for a given `seed` and state.
    pub fn mutate_random(&mut self, n: u64, seed: u64) -> MutationReport {
        self.rng = StdRng::seed_from_u64(seed);
        let statuses = all_status_codes();
        let mut report = MutationReport::default();
        for _ in 0..n {
            let roll = self.rng.random_range(0..100);
            if roll < 55 && !self.order_ids.is_empty() {
                let id = self.order_ids[self.rng.random_range(0..self.order_ids.len())];
                let status = statuses[self.rng.random_range(0..statuses.len())];
                if self.set_order_status(id, status, "user") {
                    report.status_changes += 1;
                }
            } else if roll < 75 && !self.customer_ids.is_empty() {
                let id = self.customer_ids[self.rng.random_range(0..self.customer_ids.len())];
                let tag: u32 = self.rng.random_range(0..1_000_000);
                let email = Some(Some(format!("changed{tag}@mail.ru")));
                let phones = self.rng.random_bool(0.5).then(|| {
                    vec![format!(
                        "+7 (9{:02}) {:03}-{:02}-{:02}",
                        tag % 100,
                        tag % 1000,
                        tag % 97,
                        tag % 89
                    )]
                });
                if self.edit_customer(id, email, phones, None, None, "user") {
                    report.customer_edits += 1;
                }
            } else if roll < 88 {
                self.add_random_order("user");
                report.orders_created += 1;
            } else if roll < 95 {
                self.add_random_customer("user");
                report.customers_created += 1;
            } else if !self.order_ids.is_empty() {
                let id = self.order_ids[self.rng.random_range(0..self.order_ids.len())];
                if self.delete_order(id, "user") {
                    report.orders_deleted += 1;
                }
            }
        }
        report
    }

    /// `n` changes of a busy shop, reproducible for `seed`: each is a new order, a deleted
    /// order, a new customer, a deleted customer or a status change, in turn from a random
    /// start (so deletions and creations both happen at every call with `n >= 2`).
    pub fn churn(&mut self, n: u64, seed: u64) -> MutationReport {
        self.rng = StdRng::seed_from_u64(seed ^ 0xc4_0412);
        let statuses = all_status_codes();
        let mut report = MutationReport::default();
        let start = self.rng.random_range(0..5u64);
        for k in 0..n {
            match (start + k) % 5 {
                0 => {
                    self.add_random_order("user");
                    report.orders_created += 1;
                }
                1 if !self.order_ids.is_empty() => {
                    let id = self.order_ids[self.rng.random_range(0..self.order_ids.len())];
                    if self.delete_order(id, "user") {
                        report.orders_deleted += 1;
                    }
                }
                2 => {
                    self.add_random_customer("user");
                    report.customers_created += 1;
                }
                3 if !self.customer_ids.is_empty() => {
                    let id = self.customer_ids[self.rng.random_range(0..self.customer_ids.len())];
                    if self.delete_customer(id, "user") {
                        report.customers_deleted += 1;
                    }
                }
                _ if !self.order_ids.is_empty() => {
                    let id = self.order_ids[self.rng.random_range(0..self.order_ids.len())];
                    let status = statuses[self.rng.random_range(0..statuses.len())];
                    if self.set_order_status(id, status, "user") {
                        report.status_changes += 1;
                    }
                }
                _ => {}
            }
        }
        report
    }

    // -----------------------------------------------------------------------------------------
    // API writes
    // -----------------------------------------------------------------------------------------

    /// The live order named by `key` (`by` = `id` or `externalId`, in this account's store).
    pub fn find_order_id(&self, key: &str, by: &str) -> Option<i64> {
        match by {
            "id" => key
                .parse::<i64>()
                .ok()
                .filter(|id| self.orders.contains_key(id)),
            _ => self
                .order_ext
                .get(&(self.site.clone(), key.to_string()))
                .copied(),
        }
    }

    /// The live customer named by `key`.
    pub fn find_customer_id(&self, key: &str, by: &str) -> Option<i64> {
        match by {
            "id" => key
                .parse::<i64>()
                .ok()
                .filter(|id| self.customers.contains_key(id)),
            _ => self
                .customer_ext
                .get(&(self.site.clone(), key.to_string()))
                .copied(),
        }
    }

    /// Refuses an order `externalId` already used by another order of the store.
    fn check_order_ext(&self, ext: Option<&str>, own: Option<i64>) -> Result<(), WriteError> {
        match ext.and_then(|e| self.find_order_id(e, "externalId")) {
            Some(other) if Some(other) != own => Err(WriteError::new(
                400,
                &format!(
                    "Order with externalId \"{}\" already exists.",
                    ext.unwrap_or_default()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a customer `externalId` already used by another customer of the store.
    fn check_customer_ext(&self, ext: Option<&str>, own: Option<i64>) -> Result<(), WriteError> {
        match ext.and_then(|e| self.find_customer_id(e, "externalId")) {
            Some(other) if Some(other) != own => Err(WriteError::new(
                400,
                &format!(
                    "Customer with externalId \"{}\" already exists.",
                    ext.unwrap_or_default()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `POST /orders/create`: validates and stores an order from its JSON.
    pub fn api_create_order(&mut self, order: &Value) -> Result<i64, WriteError> {
        let obj = order
            .as_object()
            .ok_or_else(|| WriteError::new(400, "Errors in the entity format"))?;
        let id = self.next_order_id;
        let external_id = obj.get("externalId").and_then(patch_str);
        self.check_order_ext(external_id.as_deref(), None)?;
        let at = self.creation_time();
        let status = obj
            .get("status")
            .and_then(patch_str)
            .unwrap_or_else(|| "new".into());
        if !all_status_codes().contains(&status.as_str()) {
            let mut e = WriteError::new(400, "Errors in the entity format");
            e.errors.insert(
                "status".into(),
                format!("Status \"{status}\" does not exist"),
            );
            return Err(e);
        }
        let customer_id = obj
            .get("customer")
            .and_then(|c| c.get("id"))
            .and_then(Value::as_i64);
        if let Some(cid) = customer_id
            && !self.customers.contains_key(&cid)
        {
            let mut e = WriteError::new(400, "Errors in the entity format");
            e.errors
                .insert("customer".into(), "Customer not found".into());
            return Err(e);
        }
        let total = items_total(obj.get("items")).unwrap_or(Kopecks(0));
        let created_at = match obj.get("createdAt").and_then(patch_str) {
            None => fmt_time(at),
            Some(t) => {
                NaiveDateTime::parse_from_str(&t, crate::crm::decode::CRM_DATETIME_FORMAT)
                    .map_err(|_| {
                        let mut e = WriteError::new(400, "Errors in the entity format");
                        e.errors.insert(
                            "createdAt".into(),
                            "This value is not a valid datetime.".into(),
                        );
                        e
                    })?;
                t
            }
        };
        let o = MockOrder {
            id,
            number: obj
                .get("number")
                .and_then(patch_str)
                .unwrap_or_else(|| format!("{id}A")),
            external_id,
            site: self.site.clone(),
            status,
            status_updated_at: fmt_time(at),
            created_at,
            order_type: "eshop-individual",
            order_method: "shopping-cart",
            first_name: obj.get("firstName").and_then(patch_str),
            last_name: obj.get("lastName").and_then(patch_str),
            email: obj.get("email").and_then(patch_str),
            phone: obj.get("phone").and_then(patch_str),
            summ: total,
            total_summ: total,
            currency: "RUB",
            customer_id,
            corporate: None,
            contact_id: None,
            payments: BTreeMap::new(),
            custom_fields: PhpMap::default(),
        };
        Ok(self.insert_order(o, "api", at))
    }

    /// `POST /orders/{key}/edit`: applies a partial order (one change: one trigger call).
    pub fn api_edit_order(
        &mut self,
        key: &str,
        by: &str,
        patch: &Value,
    ) -> Result<i64, WriteError> {
        self.grouped(|st| st.api_edit_order_fields(key, by, patch))
    }

    fn api_edit_order_fields(
        &mut self,
        key: &str,
        by: &str,
        patch: &Value,
    ) -> Result<i64, WriteError> {
        let obj = patch
            .as_object()
            .ok_or_else(|| WriteError::new(400, "Errors in the entity format"))?;
        let id = self
            .find_order_id(key, by)
            .ok_or_else(|| WriteError::new(404, "Not found"))?;
        if let Some(ext) = obj.get("externalId") {
            self.check_order_ext(patch_str(ext).as_deref(), Some(id))?;
        }
        if let Some(status) = obj.get("status").and_then(patch_str) {
            if !all_status_codes().contains(&status.as_str()) {
                let mut e = WriteError::new(400, "Errors in the entity format");
                e.errors.insert(
                    "status".into(),
                    format!("Status \"{status}\" does not exist"),
                );
                return Err(e);
            }
            self.set_order_status(id, &status, "api");
        }
        if let Some(email) = obj.get("email") {
            self.set_order_email(id, patch_str(email), "api");
        }
        let mut simple: Vec<(&str, &str)> = Vec::new();
        for (json_key, field) in [
            ("firstName", "first_name"),
            ("lastName", "last_name"),
            ("phone", "phone"),
            ("externalId", "external_id"),
        ] {
            if obj.contains_key(json_key) {
                simple.push((json_key, field));
            }
        }
        for (json_key, field) in simple {
            let Some(current) = self.orders.get(&id).cloned() else {
                break;
            };
            let mut next = (*current).clone();
            let new = obj.get(json_key).and_then(patch_str);
            let slot = match json_key {
                "firstName" => &mut next.first_name,
                "lastName" => &mut next.last_name,
                "phone" => &mut next.phone,
                _ => &mut next.external_id,
            };
            if *slot == new {
                continue;
            }
            let old = slot.clone();
            *slot = new.clone();
            if json_key == "externalId" {
                if let Some(o) = &old {
                    self.order_ext.remove(&(next.site.clone(), o.clone()));
                }
                if let Some(n) = &new {
                    self.order_ext.insert((next.site.clone(), n.clone()), id);
                }
            }
            let at = self.change_time();
            let entity = Self::order_ref(&next);
            self.orders.insert(id, Arc::new(next));
            self.push_order_hist(
                "api",
                at,
                entity,
                HistKind::Field {
                    field: field.into(),
                    old: old.map(Value::String).unwrap_or(Value::Null),
                    new: new.map(Value::String).unwrap_or(Value::Null),
                },
            );
        }
        Ok(id)
    }

    /// `POST /customers/create`.
    pub fn api_create_customer(&mut self, customer: &Value) -> Result<i64, WriteError> {
        let obj = customer
            .as_object()
            .ok_or_else(|| WriteError::new(400, "Errors in the entity format"))?;
        let id = self.next_customer_id;
        let external_id = obj.get("externalId").and_then(patch_str);
        self.check_customer_ext(external_id.as_deref(), None)?;
        let at = self.creation_time();
        let phones = obj
            .get("phones")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.get("number").and_then(patch_str))
                    .map(|number| MockPhone { number })
                    .collect()
            })
            .unwrap_or_default();
        let c = MockCustomer {
            kind: "customer",
            id,
            external_id,
            site: self.site.clone(),
            created_at: fmt_time(at),
            first_name: obj.get("firstName").and_then(patch_str),
            last_name: obj.get("lastName").and_then(patch_str),
            patronymic: obj.get("patronymic").and_then(patch_str),
            email: obj.get("email").and_then(patch_str),
            phones,
            vip: false,
            bad: false,
            custom_fields: PhpMap::default(),
        };
        Ok(self.insert_customer(c, "api", at))
    }

    /// `POST /customers/{key}/edit` (one change: one trigger call).
    pub fn api_edit_customer(
        &mut self,
        key: &str,
        by: &str,
        patch: &Value,
    ) -> Result<i64, WriteError> {
        self.grouped(|st| st.api_edit_customer_fields(key, by, patch))
    }

    fn api_edit_customer_fields(
        &mut self,
        key: &str,
        by: &str,
        patch: &Value,
    ) -> Result<i64, WriteError> {
        let obj = patch
            .as_object()
            .ok_or_else(|| WriteError::new(400, "Errors in the entity format"))?;
        let id = self
            .find_customer_id(key, by)
            .ok_or_else(|| WriteError::new(404, "Not found"))?;
        if let Some(ext) = obj.get("externalId") {
            self.check_customer_ext(patch_str(ext).as_deref(), Some(id))?;
        }
        let phones = obj.get("phones").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|p| p.get("number").and_then(patch_str))
                .collect::<Vec<_>>()
        });
        self.edit_customer(
            id,
            obj.get("email").map(patch_str),
            phones,
            obj.get("firstName").map(patch_str),
            obj.get("lastName").map(patch_str),
            "api",
        );
        if let Some(ext) = obj.get("externalId") {
            self.set_customer_external_id(id, patch_str(ext), "api");
        }
        Ok(id)
    }

    /// Changes a customer's `externalId` (an `external_id` record), keeping the index.
    fn set_customer_external_id(&mut self, id: i64, ext: Option<String>, source: &'static str) {
        let Some(current) = self.customers.get(&id).cloned() else {
            return;
        };
        if current.external_id == ext {
            return;
        }
        let mut next = (*current).clone();
        if let Some(old) = &current.external_id {
            self.customer_ext.remove(&(next.site.clone(), old.clone()));
        }
        if let Some(new) = &ext {
            self.customer_ext
                .insert((next.site.clone(), new.clone()), id);
        }
        next.external_id = ext.clone();
        let entity = Self::customer_ref(&next);
        self.customers.insert(id, Arc::new(next));
        let at = self.change_time();
        let opt = |v: Option<String>| v.map(Value::String).unwrap_or(Value::Null);
        self.push_customer_hist(
            source,
            at,
            entity,
            HistKind::Field {
                field: "external_id".into(),
                old: opt(current.external_id.clone()),
                new: opt(ext),
            },
        );
    }

    // -----------------------------------------------------------------------------------------
    // Reads (rendered to the wire shape)
    // -----------------------------------------------------------------------------------------

    /// Renders an order as the API shows it on lists (customer, corporate customer and contact
    /// embedded from their current state; `payments` keyed by id).
    pub fn render_order(&self, o: &MockOrder) -> Box<RawValue> {
        raw(&self.order_view(o, PaymentsView::Map(&o.payments)))
    }

    /// Renders an order as a `created` history record shows it (`payments` as a list).
    fn render_order_created(&self, o: &MockOrder) -> Box<RawValue> {
        raw(&self.order_view(o, PaymentsView::List(&o.payments)))
    }

    fn order_view<'a>(&'a self, o: &'a MockOrder, payments: PaymentsView<'a>) -> OrderView<'a> {
        let ordinary = |id: Option<i64>| id.and_then(|cid| self.customers.get(&cid)).map(|c| &**c);
        let customer = match &o.corporate {
            Some(corp) => Some(CustomerView::Corporate(corp)),
            None => ordinary(o.customer_id).map(CustomerView::Ordinary),
        };
        OrderView {
            order: o,
            customer,
            contact: ordinary(o.contact_id),
            payments,
        }
    }

    /// The live order ids (ascending) matching `f`: all of them without a filter, a lookup
    /// with `ids`/`externalIds`, else one scan, cached until the order history grows.
    fn matching_order_ids(&self, f: &ListFilter) -> IdSet<'_> {
        let pick = |o: &MockOrder| {
            f.site_ok(&o.site)
                && f.created_ok(&o.created_at)
                && (f.numbers.is_empty() || f.numbers.contains(&o.number))
        };
        let keyed = narrow(
            f.ids.as_deref(),
            &f.external_ids,
            |id| self.orders.contains_key(id),
            |ext| self.find_order_id(ext, "externalId"),
        );
        if let Some(mut ids) = keyed {
            ids.retain(|id| self.orders.get(id).is_some_and(|o| pick(o)));
            return IdSet::Owned(ids);
        }
        if *f == ListFilter::default() {
            return IdSet::All(&self.order_ids);
        }
        IdSet::Shared(cached(
            &self.order_list_cache,
            f,
            self.next_order_hist,
            || {
                let others = !f.sites.is_empty() || !f.numbers.is_empty();
                let keep = |id: &i64| !others || self.orders.get(id).is_some_and(|o| pick(o));
                in_window(&self.orders_by_created, f, &self.order_ids, keep)
            },
        ))
    }

    /// The live customer ids (ascending) matching `f`.
    fn matching_customer_ids(&self, f: &ListFilter) -> IdSet<'_> {
        let pick = |c: &MockCustomer| f.site_ok(&c.site) && f.created_ok(&c.created_at);
        let keyed = narrow(
            f.ids.as_deref(),
            &f.external_ids,
            |id| self.customers.contains_key(id),
            |ext| self.find_customer_id(ext, "externalId"),
        );
        if let Some(mut ids) = keyed {
            ids.retain(|id| self.customers.get(id).is_some_and(|c| pick(c)));
            return IdSet::Owned(ids);
        }
        if *f == ListFilter::default() {
            return IdSet::All(&self.customer_ids);
        }
        IdSet::Shared(cached(
            &self.customer_list_cache,
            f,
            self.next_customer_hist,
            || {
                let others = !f.sites.is_empty();
                let keep = |id: &i64| !others || self.customers.get(id).is_some_and(|c| pick(c));
                in_window(&self.customers_by_created, f, &self.customer_ids, keep)
            },
        ))
    }

    fn next_request(&self) -> u64 {
        self.list_requests.fetch_add(1, Ordering::Relaxed)
    }

    /// A page of `/orders` matching `f`, in [`Self::list_order`]: `(items, totalCount)`.
    pub fn orders_list(
        &self,
        f: &ListFilter,
        page: u32,
        limit: u32,
    ) -> (Vec<Box<RawValue>>, usize) {
        let all = self.matching_order_ids(f);
        let ids = page_ids(&all, page, limit, self.list_order, self.next_request());
        let items = ids
            .iter()
            .filter_map(|id| self.orders.get(id))
            .map(|o| self.render_order(o))
            .collect();
        (items, all.len())
    }

    /// A page of `/customers` matching `f`.
    pub fn customers_list(
        &self,
        f: &ListFilter,
        page: u32,
        limit: u32,
    ) -> (Vec<Box<RawValue>>, usize) {
        let all = self.matching_customer_ids(f);
        let ids = page_ids(&all, page, limit, self.list_order, self.next_request());
        let items = ids
            .iter()
            .filter_map(|id| self.customers.get(id))
            .map(|c| raw(&**c))
            .collect();
        (items, all.len())
    }

    /// `GET /orders/{key}?by=`: the rendered order, if it exists.
    pub fn order_by(&self, key: &str, by: &str) -> Option<Box<RawValue>> {
        let id = self.find_order_id(key, by)?;
        self.orders.get(&id).map(|o| self.render_order(o))
    }

    /// `GET /customers/{key}?by=`: the rendered customer, if it exists.
    pub fn customer_by(&self, key: &str, by: &str) -> Option<Box<RawValue>> {
        let id = self.find_customer_id(key, by)?;
        self.customers.get(&id).map(|c| raw(&**c))
    }

    fn render_hist<E>(
        &self,
        h: &HistEntry<E>,
        entity_key: &str,
        render_created: impl Fn(&E) -> Box<RawValue>,
    ) -> Box<RawValue> {
        let entity = match &h.kind {
            HistKind::Created(snapshot) => render_created(snapshot),
            _ => raw(&h.entity),
        };
        let is_order = entity_key == "order";
        let (field, old_value, new_value, created, deleted) = match &h.kind {
            // The live API: an order's creation is a `status` record `null -> {code}`, a
            // customer's an `id` record `null -> id`.
            HistKind::Created(_) if is_order => (
                "status",
                Value::Null,
                json!({"code": h.entity.status}),
                true,
                false,
            ),
            HistKind::Created(_) => ("id", Value::Null, json!(h.entity.id), true, false),
            HistKind::Field { field, old, new } => {
                (field.as_str(), old.clone(), new.clone(), false, false)
            }
            HistKind::Deleted | HistKind::Combined { .. } => {
                ("id", json!(h.entity.id), Value::Null, false, true)
            }
        };
        let combined_to = match &h.kind {
            HistKind::Combined { into } => Some(raw(into)),
            _ => None,
        };
        raw(&HistView {
            id: h.id,
            created_at: &h.created_at,
            created,
            deleted,
            source: h.source,
            user: (h.source == "user").then(|| json!({"id": 1})),
            api_key: (h.source == "api").then(|| json!({"current": true})),
            field,
            old_value,
            new_value,
            order: is_order.then_some(&*entity),
            customer: (!is_order).then_some(&*entity),
            combined_to: combined_to.as_deref(),
        })
    }

    /// Rendered order history page: `(records, totalCount)`.
    pub fn order_history_page(&self, q: &HistQuery) -> (Vec<Box<RawValue>>, u64) {
        let page = super::history::query(&self.order_pad, &self.order_history, q);
        let items = page
            .slots
            .iter()
            .map(|slot| match slot {
                Slot::Virtual(p) => self.order_pad.render(*p, "order", &self.site),
                Slot::Real(h) => self.render_hist(h, "order", |o| self.render_order_created(o)),
            })
            .collect();
        (items, page.total)
    }

    /// Rendered customer history page.
    pub fn customer_history_page(&self, q: &HistQuery) -> (Vec<Box<RawValue>>, u64) {
        let page = super::history::query(&self.customer_pad, &self.customer_history, q);
        let items = page
            .slots
            .iter()
            .map(|slot| match slot {
                Slot::Virtual(p) => self.customer_pad.render(*p, "customer", &self.site),
                Slot::Real(h) => self.render_hist(h, "customer", raw),
            })
            .collect();
        (items, page.total)
    }

    /// Prepends `count` virtual history records to `stream`, older than every record so far,
    /// with ids spaced by `stride` (1: dense). Every existing record id (and the next id) moves
    /// up by `count * stride`, so ids stay strictly ascending. Costs O(real records) once and
    /// no memory per virtual record.
    pub fn pad_history(&mut self, stream: Stream, count: u64, stride: u64) {
        match stream {
            Stream::Orders => {
                let shift = self.order_pad.prepend(count, stride);
                shift_ids(&mut self.order_history, &mut self.next_order_hist, shift);
            }
            Stream::Customers => {
                let shift = self.customer_pad.prepend(count, stride);
                shift_ids(
                    &mut self.customer_history,
                    &mut self.next_customer_hist,
                    shift,
                );
            }
        }
    }

    /// History records of `stream`, virtual and real.
    pub fn history_len(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Orders => self.order_pad.len() + self.order_history.len() as u64,
            Stream::Customers => self.customer_pad.len() + self.customer_history.len() as u64,
        }
    }

    /// Newest history record ids `(orders, customers)`.
    pub fn latest_history_ids(&self) -> (Option<i64>, Option<i64>) {
        let latest = |pad: &Padding, last: Option<i64>| {
            last.or_else(|| (!pad.is_empty()).then(|| pad.id_at(pad.len() - 1)))
        };
        (
            latest(&self.order_pad, self.order_history.last().map(|h| h.id)),
            latest(
                &self.customer_pad,
                self.customer_history.last().map(|h| h.id),
            ),
        )
    }

    /// Counts of live entities and history records (virtual ones included).
    pub fn counts(&self) -> HashMap<&'static str, usize> {
        HashMap::from([
            ("orders", self.orders.len()),
            ("customers", self.customers.len()),
            ("order_history", self.history_len(Stream::Orders) as usize),
            (
                "customer_history",
                self.history_len(Stream::Customers) as usize,
            ),
        ])
    }
}

/// The ids named by `filter[ids][]` and/or `filter[externalIds][]` (live ones, ascending,
/// intersected when both are given); `None` when neither is.
fn narrow(
    ids: Option<&[i64]>,
    external_ids: &[String],
    live: impl Fn(&i64) -> bool,
    by_ext: impl Fn(&str) -> Option<i64>,
) -> Option<Vec<i64>> {
    if ids.is_none() && external_ids.is_empty() {
        return None;
    }
    let mut out: Vec<i64> = match ids {
        Some(ids) => ids.iter().copied().filter(|id| live(id)).collect(),
        None => external_ids.iter().filter_map(|e| by_ext(e)).collect(),
    };
    if ids.is_some() && !external_ids.is_empty() {
        let named: Vec<i64> = external_ids.iter().filter_map(|e| by_ext(e)).collect();
        out.retain(|id| named.contains(id));
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Matching ids, ascending, however they were found.
enum IdSet<'a> {
    All(&'a [i64]),
    Owned(Vec<i64>),
    Shared(Arc<Vec<i64>>),
}

impl std::ops::Deref for IdSet<'_> {
    type Target = [i64];
    fn deref(&self) -> &[i64] {
        match self {
            IdSet::All(ids) => ids,
            IdSet::Owned(ids) => ids,
            IdSet::Shared(ids) => ids,
        }
    }
}

/// The ids (ascending) created inside `f`'s window (from the creation index; all of `all`
/// without a window) that `keep` accepts.
fn in_window(
    index: &BTreeSet<(u64, i64)>,
    f: &ListFilter,
    all: &[i64],
    keep: impl Fn(&i64) -> bool,
) -> Vec<i64> {
    if f.created_from.is_none() && f.created_to.is_none() {
        return all.iter().copied().filter(|id| keep(id)).collect();
    }
    let lo = f.created_from.as_deref().map_or(0, time_key);
    let hi = f.created_to.as_deref().map_or(u64::MAX, time_key);
    if lo > hi {
        return Vec::new();
    }
    let mut ids: Vec<i64> = index
        .range((lo, i64::MIN)..=(hi, i64::MAX))
        .map(|(_, id)| *id)
        .filter(|id| keep(id))
        .collect();
    ids.sort_unstable();
    ids
}

/// The cached ids for `f` at `generation`, or `compute()` (then cached, the oldest of
/// [`CACHED_FILTERS`] entries making room).
fn cached(
    cache: &ListCache,
    f: &ListFilter,
    generation: i64,
    compute: impl FnOnce() -> Vec<i64>,
) -> Arc<Vec<i64>> {
    let mut entries = cache.lock().unwrap_or_else(|e| e.into_inner());
    entries.retain(|(_, g, _)| *g == generation);
    if let Some((_, _, ids)) = entries.iter().find(|(key, _, _)| key == f) {
        return ids.clone();
    }
    let ids = Arc::new(compute());
    if entries.len() >= CACHED_FILTERS {
        entries.remove(0);
    }
    entries.push((f.clone(), generation, ids.clone()));
    ids
}

/// Moves every record id (and the next id) of a stream up by `shift`.
fn shift_ids<E>(history: &mut [HistEntry<E>], next_id: &mut i64, shift: i64) {
    for h in history.iter_mut() {
        h.id += shift;
    }
    *next_id += shift;
}

/// Sum of `initialPrice * quantity` over `items` (prices in roubles, exact to the kopeck).
fn items_total(items: Option<&Value>) -> Option<Kopecks> {
    let items = items?.as_array()?;
    let mut total: i64 = 0;
    for item in items {
        let price = item
            .get("initialPrice")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let qty = item.get("quantity").and_then(Value::as_f64).unwrap_or(1.0);
        total = total.saturating_add((price * qty * 100.0).round() as i64);
    }
    Some(Kopecks(total))
}

/// Appends a history record with the next id of its stream (ids strictly increase).
fn push_hist<T>(
    next_id: &mut i64,
    history: &mut Vec<HistEntry<T>>,
    source: &'static str,
    at: NaiveDateTime,
    entity: EntityRef,
    kind: HistKind<T>,
) {
    let id = *next_id;
    *next_id += 1;
    history.push(HistEntry {
        id,
        created_at: fmt_time(at),
        source,
        entity,
        kind,
    });
}
