//! Two-way sync, the push side: one `push` job of one project takes its pending outbox rows
//! (`store::outbox`) in id order and writes them to RetailCRM.
//!
//! - **Merging**: the pending rows of one entity become one call (later values win), and the
//!   rows settle together.
//! - **Exactly-once effect**: edits are idempotent (`customers/{id}/edit`, `orders/{id}/edit`
//!   with `by=id`). A platform user without a RetailCRM customer is created with `externalId`
//!   `loyalty-{project}-user-{user id}`; before creating, and when RetailCRM refuses the create
//!   as a duplicate, the customer is looked up by that external id and linked instead. The link
//!   and the rows' settlement commit in one transaction, so a crash at any instant means at
//!   worst one more lookup, never a second customer.
//! - **Conflicts** ([`ConflictRule`]): RetailCRM's history after the stored pull cursor (what no
//!   pull has applied yet) is read once per job; a field that someone other than this key
//!   changed there is a conflict. `retailcrm_wins` (the default) skips that field and records
//!   both values on the row (state `conflict`); `platform_wins` pushes it anyway. The pull side
//!   of the same rule is in `engine` (a pull that brings a RetailCRM change of a field with a
//!   pending platform change applies the rule there).
//! - **Status back-mapping** ([`back_map`]): platform status -> RetailCRM code through the
//!   integration's `status_back_mapping`, else the inverse of its `status_mapping`, else the
//!   seed's table, only to codes the account has; otherwise the row fails with the reason.
//! - **Errors**: what is wrong with one row (missing local row, bad e-mail, a field RetailCRM
//!   refuses) fails that row and the job goes on; what is wrong with the account or the network
//!   fails the job, which is retried with the rows still pending.
//! - **Sharing the rate budget**: the job uses the project's one client (its token bucket) and
//!   runs in the project's queue between pulls; it pushes at most [`ROWS_PER_JOB`] rows and
//!   says whether more are waiting, so a long outbox alternates with pulls instead of starving
//!   them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use super::SyncError;
use crate::crm::{CrmClient, CrmError, Decoded, ErrorClass};
use crate::model::{OrderStatus, Stream, normalize_email, seed_status};
use crate::store::integrations::ConflictRule;
use crate::store::outbox::{CUSTOMER, ORDER, OutboxRow, PushOrder, Settle};
use crate::store::users::UserRow;
use crate::store::{Integration, Store};

/// Outbox rows one push job takes; more are left for the next job (enqueued at once).
pub const ROWS_PER_JOB: i64 = 500;

/// Pages of unpulled history read for conflict detection (100 records each); beyond that the
/// pull catches up first.
const CONFLICT_PAGES: u32 = 20;

/// What one push job did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushCounts {
    /// Outbox rows settled as sent.
    pub sent: u64,
    /// Rows failed for good (with the reason on the row).
    pub failed: u64,
    /// Rows settled with fields not pushed because RetailCRM wins.
    pub conflicts: u64,
    /// RetailCRM customers created for platform users.
    pub customers_created: u64,
    /// Existing customers linked by external id (a retried create).
    pub customers_linked: u64,
    /// RetailCRM calls that changed something.
    pub writes: u64,
    /// Whether pending rows remain (another push job follows).
    pub more: bool,
}

/// The external id of a platform user's RetailCRM customer.
pub fn external_id(project_id: i64, user_id: i64) -> String {
    format!("loyalty-{project_id}-user-{user_id}")
}

/// Platform status -> RetailCRM status code (see the module doc); `Err` says why not.
pub fn back_map(
    status: OrderStatus,
    integration: &Integration,
    account_codes: &HashSet<String>,
) -> Result<String, String> {
    if let Some(code) = integration.status_back_mapping.get(&status) {
        return if account_codes.contains(code) {
            Ok(code.clone())
        } else {
            Err(format!(
                "status_back_mapping maps {status} to `{code}`, which this RetailCRM account does not have"
            ))
        };
    }
    let mut from_mapping: Vec<&String> = integration
        .status_mapping
        .iter()
        .filter(|(code, st)| **st == status && account_codes.contains(*code))
        .map(|(code, _)| code)
        .collect();
    from_mapping.sort();
    if let Some(code) = from_mapping.first() {
        return Ok((*code).clone());
    }
    const SEED: [&str; 8] = [
        "new",
        "acceptance",
        "approval",
        "assembling",
        "delivery",
        "complete",
        "cancel",
        "refund",
    ];
    if let Some(code) = SEED
        .iter()
        .find(|c| seed_status(c) == Some(status) && account_codes.contains(**c))
    {
        return Ok(code.to_string());
    }
    Err(format!(
        "no RetailCRM status for platform status {status}: none of the seed's codes for it exists \
         in this account; set one with `retailcrm-sync integration set --project-id {} \
         --status-back-mapping '{{\"{status}\":\"CODE\"}}'`",
        integration.project_id
    ))
}

/// A history record as conflict detection reads it: (record id, entity id, the field changed
/// when someone other than this key changed it).
type Touch = (i64, Option<i64>, Option<String>);

/// The touches of one history page, and whether more pages follow.
fn touches<R: crate::crm::HasHistoryId>(page: crate::crm::HistoryPage<R>) -> (Vec<Touch>, bool) {
    let more = page.pagination.current_page < page.pagination.total_page_count;
    let records = page
        .items
        .into_iter()
        .filter_map(|d| match d {
            Decoded::Ok(r) => Some((
                r.history_id(),
                r.entity_id(),
                r.foreign_field().map(str::to_string),
            )),
            Decoded::Poison(_) => None,
        })
        .collect();
    (records, more)
}

/// One entity's pending rows, merged.
struct Group {
    entity: String,
    local_id: i64,
    ids: Vec<i64>,
    fields: Map<String, Value>,
}

fn groups(rows: Vec<OutboxRow>) -> Vec<Group> {
    let mut order: Vec<(String, i64)> = Vec::new();
    let mut by: HashMap<(String, i64), Group> = HashMap::new();
    for r in rows {
        let key = (r.entity.clone(), r.local_id);
        let g = by.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Group {
                entity: r.entity.clone(),
                local_id: r.local_id,
                ids: Vec::new(),
                fields: Map::new(),
            }
        });
        g.ids.push(r.id);
        if let Value::Object(f) = r.fields {
            g.fields.extend(f);
        }
    }
    order.into_iter().filter_map(|k| by.remove(&k)).collect()
}

/// Whether `e` is about this row's data (the row fails) rather than the account or the
/// network (the job fails and is retried).
fn row_error(e: &CrmError) -> bool {
    matches!(e, CrmError::Api { status, .. } if e.class() == ErrorClass::Permanent && matches!(status, 400 | 404 | 422 | 460))
}

/// The history field names that carry a pushable field.
fn history_fields(field: &str) -> &'static [&'static str] {
    match field {
        "email" => &["email"],
        "phone" => &["phones", "phone"],
        "first_name" => &["first_name", "firstName"],
        "last_name" => &["last_name", "lastName"],
        "status" => &["status"],
        _ => &[],
    }
}

/// Runs push jobs of one project.
pub struct Pusher {
    store: Store,
    client: CrmClient,
    integration: Integration,
}

impl Pusher {
    /// A pusher for `integration`.
    pub fn new(store: Store, client: CrmClient, integration: Integration) -> Self {
        Pusher {
            store,
            client,
            integration,
        }
    }

    fn project_id(&self) -> i64 {
        self.integration.project_id
    }

    /// Pushes up to [`ROWS_PER_JOB`] pending rows.
    pub async fn run(&self) -> Result<PushCounts, SyncError> {
        let project_id = self.project_id();
        let rows = self
            .store
            .pending_outbox(project_id, ROWS_PER_JOB)
            .await
            .map_err(SyncError::Store)?;
        let mut counts = PushCounts {
            more: rows.len() as i64 >= ROWS_PER_JOB,
            ..PushCounts::default()
        };
        if rows.is_empty() {
            return Ok(counts);
        }
        let groups = groups(rows);
        let has = |e: &str| groups.iter().any(|g| g.entity == e);
        let touched_customers = if has(CUSTOMER) {
            self.unpulled_changes(Stream::Customers).await?
        } else {
            HashMap::new()
        };
        let touched_orders = if has(ORDER) {
            self.unpulled_changes(Stream::Orders).await?
        } else {
            HashMap::new()
        };
        let user_ids: Vec<i64> = groups
            .iter()
            .filter(|g| g.entity == CUSTOMER)
            .map(|g| g.local_id)
            .collect();
        let order_ids: Vec<i64> = groups
            .iter()
            .filter(|g| g.entity == ORDER)
            .map(|g| g.local_id)
            .collect();
        let users: HashMap<i64, UserRow> = self
            .store
            .push_users(project_id, &user_ids)
            .await
            .map_err(SyncError::Store)?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let orders: HashMap<i64, PushOrder> = self
            .store
            .push_orders(project_id, &order_ids)
            .await
            .map_err(SyncError::Store)?
            .into_iter()
            .map(|o| (o.id, o))
            .collect();
        let mut codes: Option<HashSet<String>> = None;
        for g in &groups {
            let outcome = match g.entity.as_str() {
                CUSTOMER => {
                    self.push_customer(g, users.get(&g.local_id), &touched_customers, &mut counts)
                        .await?
                }
                ORDER => {
                    let codes = match &mut codes {
                        Some(c) => &*c,
                        slot @ None => {
                            &*slot.insert(self.client.statuses().await?.into_keys().collect())
                        }
                    };
                    self.push_order(
                        g,
                        orders.get(&g.local_id),
                        &touched_orders,
                        codes,
                        &mut counts,
                    )
                    .await?
                }
                other => Some(Settle::Failed(format!(
                    "unknown entity `{other}`; outbox rows are for `customer` (users.id) or `order` (orders.id)"
                ))),
            };
            // `None`: already settled (a linked new customer).
            if let Some(settle) = outcome {
                match &settle {
                    Settle::Failed(reason) => {
                        counts.failed += g.ids.len() as u64;
                        warn!(project_id, entity = %g.entity, local_id = g.local_id, reason = %reason, "outbox row failed");
                        crate::metrics::metrics().push(project_id, &g.entity, "failed");
                    }
                    Settle::Sent { conflict, .. } => {
                        if conflict.is_some() {
                            counts.conflicts += g.ids.len() as u64;
                            crate::metrics::metrics().push(project_id, &g.entity, "conflict");
                        } else {
                            counts.sent += g.ids.len() as u64;
                            crate::metrics::metrics().push(project_id, &g.entity, "sent");
                        }
                    }
                }
                self.store
                    .settle_outbox(&g.ids, &settle)
                    .await
                    .map_err(SyncError::Store)?;
            }
        }
        info!(
            project_id,
            sent = counts.sent,
            failed = counts.failed,
            conflicts = counts.conflicts,
            created = counts.customers_created,
            "push finished"
        );
        Ok(counts)
    }

    /// Entity id -> history fields changed by someone other than this key, in the history no
    /// pull has applied yet.
    async fn unpulled_changes(
        &self,
        stream: Stream,
    ) -> Result<HashMap<i64, BTreeSet<String>>, SyncError> {
        let cursor = self
            .store
            .load_cursor(self.project_id(), stream)
            .await
            .map_err(SyncError::Store)?;
        let mut out: HashMap<i64, BTreeSet<String>> = HashMap::new();
        let Some(mut since) = cursor.since_id else {
            return Ok(out);
        };
        for _ in 0..CONFLICT_PAGES {
            let (records, more) = match stream {
                Stream::Orders => touches(self.client.orders_history(Some(since), 100).await?),
                Stream::Customers => {
                    touches(self.client.customers_history(Some(since), 100).await?)
                }
            };
            let mut last = since;
            for (id, entity, field) in records {
                last = last.max(id);
                if let (Some(entity), Some(field)) = (entity, field) {
                    out.entry(entity).or_default().insert(field);
                }
            }
            if !more || last <= since {
                break;
            }
            since = last;
        }
        Ok(out)
    }

    /// Splits `fields` into what to push and what conflicts (RetailCRM changed it since the
    /// last pull and RetailCRM wins).
    fn conflicts(
        &self,
        fields: &Map<String, Value>,
        touched: Option<&BTreeSet<String>>,
    ) -> (Map<String, Value>, Vec<String>) {
        let mut push = Map::new();
        let mut conflicted = Vec::new();
        for (k, v) in fields {
            let changed_there =
                touched.is_some_and(|t| history_fields(k).iter().any(|h| t.contains(*h)));
            if changed_there && self.integration.conflict_rule == ConflictRule::RetailcrmWins {
                conflicted.push(k.clone());
            } else {
                push.insert(k.clone(), v.clone());
            }
        }
        (push, conflicted)
    }

    async fn push_customer(
        &self,
        g: &Group,
        user: Option<&UserRow>,
        touched: &HashMap<i64, BTreeSet<String>>,
        counts: &mut PushCounts,
    ) -> Result<Option<Settle>, SyncError> {
        let project_id = self.project_id();
        let Some(user) = user else {
            return Ok(Some(Settle::Failed(format!(
                "user {} does not exist in project {project_id}",
                g.local_id
            ))));
        };
        if user.deleted_at.is_some() {
            return Ok(Some(Settle::Failed(format!(
                "user {} is deleted; deleted users are not pushed",
                g.local_id
            ))));
        }
        for k in g.fields.keys() {
            if !matches!(k.as_str(), "email" | "phone" | "first_name" | "last_name") {
                return Ok(Some(Settle::Failed(format!(
                    "unknown customer field `{k}`; customers take email, phone, first_name, last_name"
                ))));
            }
        }
        let Some(crm_id) = user.retailcrm_customer_id else {
            return self.create_customer(g, user, counts).await;
        };
        let (push, conflicted) = self.conflicts(&g.fields, touched.get(&crm_id));
        let mut body = Map::new();
        for (k, v) in &push {
            match customer_field(k, v) {
                Ok((key, value)) => {
                    body.insert(key.to_string(), value);
                }
                Err(e) => return Ok(Some(Settle::Failed(e))),
            }
        }
        let conflict = if conflicted.is_empty() {
            None
        } else {
            Some(
                self.customer_conflict(crm_id, &g.fields, &conflicted)
                    .await?,
            )
        };
        if !body.is_empty() {
            match self
                .client
                .edit_customer(crm_id, &Value::Object(body), None)
                .await
            {
                Ok(_) => counts.writes += 1,
                Err(e) if row_error(&e) => return Ok(Some(Settle::Failed(e.to_string()))),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(Settle::Sent {
            retailcrm_id: Some(crm_id),
            conflict,
        }))
    }

    /// The conflict record: each conflicted field with the platform's and RetailCRM's value.
    async fn customer_conflict(
        &self,
        crm_id: i64,
        fields: &Map<String, Value>,
        conflicted: &[String],
    ) -> Result<Value, SyncError> {
        let page = self.client.customers_by_ids(&[crm_id]).await?;
        let current = page.items.into_iter().find_map(|d| match d {
            Decoded::Ok(c) if c.id == crm_id => Some(c),
            _ => None,
        });
        let mut out = Map::new();
        for k in conflicted {
            let theirs = current.as_ref().map(|c| match k.as_str() {
                "email" => json!(c.email),
                "phone" => json!(c.phones.first().map(|p| p.number.clone())),
                "first_name" => json!(c.first_name),
                "last_name" => json!(c.last_name),
                _ => Value::Null,
            });
            out.insert(
                k.clone(),
                json!({ "platform": fields.get(k), "retailcrm": theirs }),
            );
        }
        Ok(Value::Object(out))
    }

    async fn create_customer(
        &self,
        g: &Group,
        user: &UserRow,
        counts: &mut PushCounts,
    ) -> Result<Option<Settle>, SyncError> {
        let project_id = self.project_id();
        let ext = external_id(project_id, user.id);
        // A previous attempt may have created it and crashed before linking.
        if let Some(found) = self.client.customer_by_external_id(&ext).await? {
            counts.customers_linked += 1;
            return self.link(g, user, found.id).await;
        }
        let mut body = Map::new();
        body.insert("externalId".into(), json!(ext));
        // The user's current values, overridden by what the rows say (the same, normally).
        let mut values = Map::new();
        for (k, v) in [
            ("email", &user.email),
            ("phone", &user.phone),
            ("first_name", &user.first_name),
            ("last_name", &user.last_name),
        ] {
            if let Some(v) = v {
                values.insert(k.to_string(), json!(v));
            }
        }
        values.extend(g.fields.clone());
        for (k, v) in &values {
            if v.is_null() {
                continue;
            }
            match customer_field(k, v) {
                Ok((key, value)) => {
                    body.insert(key.to_string(), value);
                }
                Err(e) => return Ok(Some(Settle::Failed(e))),
            }
        }
        crate::failpoint::hit("push_before_create");
        let created = self
            .client
            .create_customer(&Value::Object(body), None)
            .await;
        let id = match created {
            Ok(id) => {
                counts.writes += 1;
                counts.customers_created += 1;
                id
            }
            Err(e) if row_error(&e) => {
                // A duplicate external id: the customer exists after all.
                match self.client.customer_by_external_id(&ext).await? {
                    Some(found) => {
                        counts.customers_linked += 1;
                        found.id
                    }
                    None => return Ok(Some(Settle::Failed(e.to_string()))),
                }
            }
            Err(e) => return Err(e.into()),
        };
        crate::failpoint::hit("push_after_create");
        self.link(g, user, id).await
    }

    async fn link(
        &self,
        g: &Group,
        user: &UserRow,
        crm_id: i64,
    ) -> Result<Option<Settle>, SyncError> {
        self.store
            .link_pushed_user(self.project_id(), user.id, crm_id, &g.ids)
            .await
            .map_err(SyncError::Store)?;
        crate::metrics::metrics().push(self.project_id(), CUSTOMER, "sent");
        debug!(
            project_id = self.project_id(),
            user_id = user.id,
            crm_id,
            "platform user linked to its RetailCRM customer"
        );
        Ok(None)
    }

    async fn push_order(
        &self,
        g: &Group,
        order: Option<&PushOrder>,
        touched: &HashMap<i64, BTreeSet<String>>,
        codes: &HashSet<String>,
        counts: &mut PushCounts,
    ) -> Result<Option<Settle>, SyncError> {
        let project_id = self.project_id();
        let Some(order) = order else {
            return Ok(Some(Settle::Failed(format!(
                "order {} does not exist in project {project_id}",
                g.local_id
            ))));
        };
        let Some(crm_id) = order.retailcrm_order_id else {
            return Ok(Some(Settle::Failed(format!(
                "order {} has no RetailCRM id (it was not synced from RetailCRM); creating orders \
                 in RetailCRM from the platform is not supported",
                order.id
            ))));
        };
        for k in g.fields.keys() {
            if k != "status" {
                return Ok(Some(Settle::Failed(format!(
                    "unknown order field `{k}`; orders take `status` (a platform status)"
                ))));
            }
        }
        let (push, conflicted) = self.conflicts(&g.fields, touched.get(&crm_id));
        let conflict = (!conflicted.is_empty()).then(|| {
            json!({ "status": { "platform": g.fields.get("status"), "retailcrm": "changed in RetailCRM since the last pull" } })
        });
        if let Some(status) = push.get("status") {
            let Some(raw) = status.as_str() else {
                return Ok(Some(Settle::Failed(format!(
                    "status {status} is not a platform status string"
                ))));
            };
            let status: OrderStatus = match raw.parse() {
                Ok(s) => s,
                Err(e) => return Ok(Some(Settle::Failed(e))),
            };
            let code = match back_map(status, &self.integration, codes) {
                Ok(c) => c,
                Err(e) => return Ok(Some(Settle::Failed(e))),
            };
            crate::failpoint::hit("push_before_call");
            match self
                .client
                .edit_order(crm_id, &json!({ "status": code }), None)
                .await
            {
                Ok(_) => counts.writes += 1,
                Err(e) if row_error(&e) => return Ok(Some(Settle::Failed(e.to_string()))),
                Err(e) => return Err(e.into()),
            }
            crate::failpoint::hit("push_after_call");
            self.store
                .set_pushed_order_status(project_id, order.id, &code)
                .await
                .map_err(SyncError::Store)?;
        }
        Ok(Some(Settle::Sent {
            retailcrm_id: Some(crm_id),
            conflict,
        }))
    }
}

/// A customer field as RetailCRM's customer JSON takes it; `Err` for a value it cannot be.
fn customer_field(k: &str, v: &Value) -> Result<(&'static str, Value), String> {
    let text = match v {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_string()),
        other => return Err(format!("{k} must be a string, got {other}")),
    };
    Ok(match k {
        "email" => {
            let email = text.as_deref().and_then(normalize_email);
            if let Some(e) = &email {
                let valid = e.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty() && host.contains('.') && !host.starts_with('.')
                }) && !e.chars().any(char::is_whitespace);
                if !valid {
                    return Err(format!("invalid e-mail `{e}`"));
                }
            }
            ("email", json!(email.unwrap_or_default()))
        }
        "phone" => {
            let phones = match text.filter(|t| !t.is_empty()) {
                None => json!([]),
                Some(t) => {
                    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
                    if digits.len() < 7 || digits.len() > 15 {
                        return Err(format!("invalid phone `{t}`"));
                    }
                    json!([{ "number": format!("+{digits}") }])
                }
            };
            ("phones", phones)
        }
        "first_name" => ("firstName", json!(text.unwrap_or_default())),
        "last_name" => ("lastName", json!(text.unwrap_or_default())),
        other => return Err(format!("unknown customer field `{other}`")),
    })
}

/// The pull side of the conflict rule, for the engine: `records` are about to be written; for
/// entities with pending platform changes, a field RetailCRM changed in the walked history
/// (`touched`, by someone other than this key) follows the rule; any other pending field keeps
/// the platform's value (so a pull never overwrites a change waiting to be pushed). Returns the
/// conflicts to record (outbox id, {field: {platform, retailcrm}}).
pub fn protect_pending<F>(
    pending: &[crate::store::outbox::PendingChange],
    touched: &BTreeMap<i64, BTreeSet<String>>,
    rule: ConflictRule,
    mut apply: F,
) -> Vec<(i64, Value)>
where
    F: FnMut(i64, &str, Option<&Value>) -> Option<Value>,
{
    let mut conflicts = Vec::new();
    for change in pending {
        let Value::Object(fields) = &change.fields else {
            continue;
        };
        let mut conflict = Map::new();
        for (k, v) in fields {
            let changed_there = touched
                .get(&change.retailcrm_id)
                .is_some_and(|t| history_fields(k).iter().any(|h| t.contains(*h)));
            if changed_there && rule == ConflictRule::RetailcrmWins {
                // RetailCRM's value is written; the platform's push of it is dropped.
                let theirs = apply(change.retailcrm_id, k, None);
                conflict.insert(k.clone(), json!({ "platform": v, "retailcrm": theirs }));
            } else {
                apply(change.retailcrm_id, k, Some(v));
            }
        }
        if !conflict.is_empty() {
            conflicts.push((change.outbox_id, Value::Object(conflict)));
        }
    }
    conflicts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration() -> Integration {
        Integration {
            project_id: 3,
            project_name: None,
            api_url: "https://x.retailcrm.ru".into(),
            api_key: crate::secret::ApiKey::new("k".to_string()),
            is_active: true,
            sync_orders: true,
            sync_customers: true,
            sync_interval_minutes: 60,
            status_mapping: HashMap::new(),
            status_mapping_errors: Vec::new(),
            orders_created_from: None,
            default_phone_country: None,
            webhook_token_sha256: None,
            conflict_rule: ConflictRule::RetailcrmWins,
            status_back_mapping: HashMap::new(),
            last_sync_at: None,
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn back_mapping_uses_the_override_then_the_mapping_then_the_seed() {
        let codes: HashSet<String> = ["new", "complete", "assembling", "refund-done"]
            .into_iter()
            .map(String::from)
            .collect();
        let mut i = integration();
        assert_eq!(
            back_map(OrderStatus::Delivered, &i, &codes).unwrap(),
            "complete"
        );
        assert_eq!(back_map(OrderStatus::Pending, &i, &codes).unwrap(), "new");
        let err = back_map(OrderStatus::Refunded, &i, &codes).unwrap_err();
        assert!(
            err.contains("REFUNDED") && err.contains("--status-back-mapping"),
            "{err}"
        );
        i.status_mapping
            .insert("refund-done".into(), OrderStatus::Refunded);
        assert_eq!(
            back_map(OrderStatus::Refunded, &i, &codes).unwrap(),
            "refund-done"
        );
        i.status_back_mapping
            .insert(OrderStatus::Delivered, "gone".into());
        let err = back_map(OrderStatus::Delivered, &i, &codes).unwrap_err();
        assert!(err.contains("gone"), "{err}");
    }

    #[test]
    fn customer_fields_are_checked_and_shaped() {
        assert_eq!(
            customer_field("phone", &json!("7 912 345-67-89")).unwrap(),
            ("phones", json!([{ "number": "+79123456789" }]))
        );
        assert!(customer_field("email", &json!("not an email")).is_err());
        assert_eq!(
            customer_field("email", &json!(" A@B.RU ")).unwrap(),
            ("email", json!("a@b.ru"))
        );
        assert!(customer_field("first_name", &json!(5)).is_err());
    }

    #[test]
    fn pending_rows_merge_per_entity_in_order() {
        let row = |id, entity: &str, local_id, fields: Value| OutboxRow {
            id,
            project_id: 1,
            entity: entity.into(),
            local_id,
            fields,
            created_at: chrono::Utc::now(),
            state: "pending".into(),
            attempts: 0,
            last_error: None,
            sent_at: None,
            retailcrm_id: None,
            conflict: None,
        };
        let g = groups(vec![
            row(1, "customer", 7, json!({"email": "a@x.ru"})),
            row(2, "order", 7, json!({"status": "DELIVERED"})),
            row(
                3,
                "customer",
                7,
                json!({"email": "b@x.ru", "phone": "79001234567"}),
            ),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].ids, vec![1, 3]);
        assert_eq!(g[0].fields["email"], json!("b@x.ru"), "later values win");
        assert_eq!(g[1].entity, "order");
    }

    #[test]
    fn the_pull_keeps_pending_values_unless_retailcrm_changed_them() {
        let pending = vec![crate::store::outbox::PendingChange {
            outbox_id: 9,
            retailcrm_id: 100,
            fields: json!({"email": "new@x.ru", "phone": "79001112233"}),
        }];
        let mut touched = BTreeMap::new();
        touched.insert(100, BTreeSet::from(["email".to_string()]));
        let mut applied = Vec::new();
        let conflicts = protect_pending(
            &pending,
            &touched,
            ConflictRule::RetailcrmWins,
            |id, k, v| {
                if let Some(v) = v {
                    applied.push((id, k.to_string(), v.clone()));
                }
                Some(json!("theirs@x.ru"))
            },
        );
        assert_eq!(conflicts[0].1["email"]["retailcrm"], json!("theirs@x.ru"));
        assert_eq!(
            applied.len(),
            1,
            "the conflicted field keeps RetailCRM's value"
        );
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].0, 9);
        assert_eq!(conflicts[0].1["email"]["platform"], json!("new@x.ru"));
        assert!(applied.contains(&(100, "phone".into(), json!("79001112233"))));
        let mut applied = Vec::new();
        let conflicts = protect_pending(
            &pending,
            &touched,
            ConflictRule::PlatformWins,
            |id, k, v| {
                if let Some(v) = v {
                    applied.push((id, k.to_string(), v.clone()));
                }
                None
            },
        );
        assert!(conflicts.is_empty());
        assert_eq!(applied.len(), 2, "platform_wins keeps both pending values");
    }
}
