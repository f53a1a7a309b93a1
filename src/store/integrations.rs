//! Integration rows (`retailcrm_integrations`, one per loyalty project): read by the supervisor,
//! written by the platform's UI or by `retailcrm-sync integration ...`.
//!
//! A row is data from outside: a `status_mapping` value that is not a platform status is not
//! fatal; it is left out of the mapping and reported in [`Integration::status_mapping_errors`].
//! Likewise a `default_phone_country` that phone numbers have no rules for is reported there
//! and treated as unset.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Date, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, op};
use crate::model::{OrderStatus, PhoneCountry};
use crate::secret::ApiKey;

/// One project's RetailCRM integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    /// Loyalty project id.
    pub project_id: i64,
    /// Project name from `projects`, when known.
    pub project_name: Option<String>,
    /// RetailCRM account URL.
    pub api_url: String,
    /// RetailCRM API key (redacting `Debug`).
    pub api_key: ApiKey,
    /// Whether the daemon syncs this project.
    pub is_active: bool,
    /// Whether orders are synced.
    pub sync_orders: bool,
    /// Whether customers are synced.
    pub sync_customers: bool,
    /// Minutes between scheduled syncs.
    pub sync_interval_minutes: i32,
    /// Valid entries of `status_mapping` (RetailCRM code -> platform status).
    pub status_mapping: HashMap<String, OrderStatus>,
    /// Entries of `status_mapping` that were left out, with the reason.
    pub status_mapping_errors: Vec<String>,
    /// Only orders created on or after this date (account timezone) are synced; `None`: all.
    pub orders_created_from: Option<NaiveDate>,
    /// Country in which phones written without a country code are read; `None`: the
    /// account's country (`/reference/sites`), else RU.
    pub default_phone_country: Option<PhoneCountry>,
    /// SHA-256 (lower-case hex) of the webhook secret; `None`: webhooks are refused.
    pub webhook_token_sha256: Option<String>,
    /// Which side wins when a field changed on both since the last sync (two-way sync).
    pub conflict_rule: ConflictRule,
    /// Platform status -> RetailCRM status code for pushing order statuses (overrides the
    /// defaults; see `sync::push`).
    pub status_back_mapping: HashMap<OrderStatus, String>,
    /// Last successful sync.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Last change of the row (the supervisor restarts a project when it moves).
    pub updated_at: DateTime<Utc>,
}

/// A new integration (or a full replacement of an existing one).
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntegration {
    /// Loyalty project id (the `projects` row is created when absent).
    pub project_id: i64,
    /// Project name to store when the project row is created or has no name.
    pub project_name: Option<String>,
    /// RetailCRM account URL (check it with `config::validate_api_url`).
    pub api_url: String,
    /// RetailCRM API key.
    pub api_key: ApiKey,
    /// Whether the daemon syncs this project.
    pub is_active: bool,
    /// Whether orders are synced.
    pub sync_orders: bool,
    /// Whether customers are synced.
    pub sync_customers: bool,
    /// Minutes between scheduled syncs (> 0).
    pub sync_interval_minutes: i32,
    /// RetailCRM status code -> platform status.
    pub status_mapping: HashMap<String, OrderStatus>,
    /// Only orders created on or after this date are synced; `None`: all.
    pub orders_created_from: Option<NaiveDate>,
    /// Country phones without a country code are read in; `None`: the account's, else RU.
    pub default_phone_country: Option<PhoneCountry>,
}

/// Changes to an integration; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntegrationPatch {
    /// New URL.
    pub api_url: Option<String>,
    /// New key.
    pub api_key: Option<ApiKey>,
    /// New active flag.
    pub is_active: Option<bool>,
    /// New orders flag.
    pub sync_orders: Option<bool>,
    /// New customers flag.
    pub sync_customers: Option<bool>,
    /// New interval.
    pub sync_interval_minutes: Option<i32>,
    /// New mapping (replaces the old one).
    pub status_mapping: Option<HashMap<String, OrderStatus>>,
    /// New orders date filter: `Some(None)` removes it.
    pub orders_created_from: Option<Option<NaiveDate>>,
    /// New default phone country: `Some(None)` removes it (the account's country, else RU).
    pub default_phone_country: Option<Option<PhoneCountry>>,
    /// New webhook secret hash (see [`crate::http::webhook_token_hash`]): `Some(None)` removes it.
    pub webhook_token_sha256: Option<Option<String>>,
    /// New conflict rule.
    pub conflict_rule: Option<ConflictRule>,
    /// New status back-mapping (replaces the old one).
    pub status_back_mapping: Option<HashMap<OrderStatus, String>>,
}

/// Which side wins a field changed on both sides since the last sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictRule {
    /// A manager's edit in RetailCRM is kept; the platform's push of that field is skipped and
    /// the conflict recorded.
    #[default]
    RetailcrmWins,
    /// The platform's value is pushed anyway.
    PlatformWins,
}

impl ConflictRule {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictRule::RetailcrmWins => "retailcrm_wins",
            ConflictRule::PlatformWins => "platform_wins",
        }
    }
}

impl std::str::FromStr for ConflictRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "retailcrm_wins" => Ok(ConflictRule::RetailcrmWins),
            "platform_wins" => Ok(ConflictRule::PlatformWins),
            other => Err(format!(
                "unknown conflict rule `{other}`; use retailcrm_wins or platform_wins"
            )),
        }
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    project_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    project_name: Option<String>,
    #[diesel(sql_type = Text)]
    api_url: String,
    #[diesel(sql_type = Text)]
    api_key: String,
    #[diesel(sql_type = Bool)]
    is_active: bool,
    #[diesel(sql_type = Bool)]
    sync_orders: bool,
    #[diesel(sql_type = Bool)]
    sync_customers: bool,
    #[diesel(sql_type = Integer)]
    sync_interval_minutes: i32,
    #[diesel(sql_type = Jsonb)]
    status_mapping: serde_json::Value,
    #[diesel(sql_type = Nullable<Date>)]
    orders_created_from: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Text>)]
    default_phone_country: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    webhook_token_sha256: Option<String>,
    #[diesel(sql_type = Text)]
    conflict_rule: String,
    #[diesel(sql_type = Jsonb)]
    status_back_mapping: serde_json::Value,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_sync_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

impl From<Row> for Integration {
    fn from(r: Row) -> Self {
        let (status_mapping, mut status_mapping_errors) = parse_mapping(&r.status_mapping);
        let default_phone_country = r.default_phone_country.as_deref().and_then(|raw| {
            raw.parse::<PhoneCountry>()
                .map_err(|e| {
                    status_mapping_errors.push(format!(
                        "default_phone_country: {e}; phones are read in the account's country"
                    ))
                })
                .ok()
        });
        let status_back_mapping =
            parse_back_mapping(&r.status_back_mapping, &mut status_mapping_errors);
        Integration {
            project_id: r.project_id,
            project_name: r.project_name,
            api_url: r.api_url,
            api_key: ApiKey::new(r.api_key),
            is_active: r.is_active,
            sync_orders: r.sync_orders,
            sync_customers: r.sync_customers,
            sync_interval_minutes: r.sync_interval_minutes,
            status_mapping,
            status_mapping_errors,
            orders_created_from: r.orders_created_from,
            default_phone_country,
            webhook_token_sha256: r.webhook_token_sha256,
            conflict_rule: r.conflict_rule.parse().unwrap_or_default(),
            status_back_mapping,
            last_sync_at: r.last_sync_at,
            updated_at: r.updated_at,
        }
    }
}

/// Splits a stored mapping into valid entries and the reasons the others were left out.
pub fn parse_mapping(value: &serde_json::Value) -> (HashMap<String, OrderStatus>, Vec<String>) {
    let mut map = HashMap::new();
    let mut errors = Vec::new();
    match value {
        serde_json::Value::Object(obj) => {
            for (code, v) in obj {
                match v.as_str().map(str::parse::<OrderStatus>) {
                    Some(Ok(status)) => {
                        map.insert(code.clone(), status);
                    }
                    Some(Err(e)) => errors.push(format!("status_mapping.{code}: {e}")),
                    None => errors.push(format!("status_mapping.{code}: {v} is not a string")),
                }
            }
        }
        serde_json::Value::Null => {}
        other => errors.push(format!(
            "status_mapping is {other}, not an object of code -> status; it is ignored"
        )),
    }
    (map, errors)
}

/// Splits a stored back-mapping (platform status -> RetailCRM code); bad entries are left out
/// and reported in `errors`.
fn parse_back_mapping(
    value: &serde_json::Value,
    errors: &mut Vec<String>,
) -> HashMap<OrderStatus, String> {
    let mut map = HashMap::new();
    match value {
        serde_json::Value::Object(obj) => {
            for (status, code) in obj {
                match (status.parse::<OrderStatus>(), code.as_str()) {
                    (Ok(st), Some(code)) if !code.trim().is_empty() => {
                        map.insert(st, code.trim().to_string());
                    }
                    (Err(e), _) => errors.push(format!("status_back_mapping.{status}: {e}")),
                    (_, _) => errors.push(format!(
                        "status_back_mapping.{status}: {code} is not a RetailCRM status code"
                    )),
                }
            }
        }
        serde_json::Value::Null => {}
        other => errors.push(format!(
            "status_back_mapping is {other}, not an object of platform status -> code; it is ignored"
        )),
    }
    map
}

/// The stored JSON of a back-mapping.
pub fn back_mapping_json(map: &HashMap<OrderStatus, String>) -> serde_json::Value {
    serde_json::Value::Object(
        map.iter()
            .map(|(k, v)| (k.as_str().to_string(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

fn mapping_json(map: &HashMap<String, OrderStatus>) -> serde_json::Value {
    serde_json::Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.as_str().to_string())))
            .collect(),
    )
}

const SELECT: &str = "SELECT i.project_id, p.name AS project_name, i.api_url, i.api_key, \
     i.is_active, i.sync_orders, i.sync_customers, i.sync_interval_minutes, i.status_mapping, \
     i.orders_created_from, i.default_phone_country, i.webhook_token_sha256, i.conflict_rule, \
     i.status_back_mapping, i.last_sync_at, \
     i.updated_at \
     FROM retailcrm_integrations i LEFT JOIN projects p ON p.id = i.project_id";

impl Store {
    /// Every integration, ordered by project.
    pub async fn list_integrations(&self) -> Result<Vec<Integration>, StoreError> {
        self.query_integrations(&format!("{SELECT} ORDER BY i.project_id"), None)
            .await
    }

    /// Integrations with `is_active`, ordered by project (what the supervisor runs).
    pub async fn list_active_integrations(&self) -> Result<Vec<Integration>, StoreError> {
        self.query_integrations(
            &format!("{SELECT} WHERE i.is_active ORDER BY i.project_id"),
            None,
        )
        .await
    }

    /// One project's integration, if any.
    pub async fn get_integration(
        &self,
        project_id: i64,
    ) -> Result<Option<Integration>, StoreError> {
        Ok(self
            .query_integrations(
                &format!("{SELECT} WHERE i.project_id = $1"),
                Some(project_id),
            )
            .await?
            .into_iter()
            .next())
    }

    async fn query_integrations(
        &self,
        sql: &str,
        project_id: Option<i64>,
    ) -> Result<Vec<Integration>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = match project_id {
            Some(id) => {
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(id)
                    .load(&mut conn)
                    .await
            }
            None => diesel::sql_query(sql).load(&mut conn).await,
        }
        .map_err(op("read integrations"))?;
        Ok(rows.into_iter().map(Integration::from).collect())
    }

    /// Creates the integration (and the project row when absent), or replaces it.
    pub async fn upsert_integration(
        &self,
        new: &NewIntegration,
    ) -> Result<Integration, StoreError> {
        if new.sync_interval_minutes <= 0 {
            return Err(StoreError::Invalid(format!(
                "sync interval {} minutes must be positive",
                new.sync_interval_minutes
            )));
        }
        let mut conn = self.conn().await?;
        conn.transaction(async |c| {
            diesel::sql_query(
                "INSERT INTO projects (id, name) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET name = COALESCE(projects.name, EXCLUDED.name)",
            )
            .bind::<BigInt, _>(new.project_id)
            .bind::<Nullable<Text>, _>(new.project_name.as_deref())
            .execute(c)
            .await
            .map_err(op("upsert project"))?;
            diesel::sql_query(
                "INSERT INTO retailcrm_integrations (project_id, api_url, api_key, is_active, \
                 sync_orders, sync_customers, sync_interval_minutes, status_mapping, \
                 orders_created_from, default_phone_country) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (project_id) DO UPDATE SET api_url = EXCLUDED.api_url, \
                 api_key = EXCLUDED.api_key, is_active = EXCLUDED.is_active, \
                 sync_orders = EXCLUDED.sync_orders, sync_customers = EXCLUDED.sync_customers, \
                 sync_interval_minutes = EXCLUDED.sync_interval_minutes, \
                 status_mapping = EXCLUDED.status_mapping, \
                 orders_created_from = EXCLUDED.orders_created_from, \
                 default_phone_country = EXCLUDED.default_phone_country, updated_at = now()",
            )
            .bind::<BigInt, _>(new.project_id)
            .bind::<Text, _>(&new.api_url)
            .bind::<Text, _>(new.api_key.expose())
            .bind::<Bool, _>(new.is_active)
            .bind::<Bool, _>(new.sync_orders)
            .bind::<Bool, _>(new.sync_customers)
            .bind::<Integer, _>(new.sync_interval_minutes)
            .bind::<Jsonb, _>(mapping_json(&new.status_mapping))
            .bind::<Nullable<Date>, _>(new.orders_created_from)
            .bind::<Nullable<Text>, _>(new.default_phone_country.as_ref().map(PhoneCountry::as_str))
            .execute(c)
            .await
            .map_err(op("upsert integration"))?;
            Ok::<_, StoreError>(())
        })
        .await?;
        self.get_integration(new.project_id)
            .await?
            .ok_or(StoreError::IntegrationNotFound(new.project_id))
    }

    /// Applies a patch; `IntegrationNotFound` when the project has no integration.
    pub async fn update_integration(
        &self,
        project_id: i64,
        patch: &IntegrationPatch,
    ) -> Result<Integration, StoreError> {
        if patch.sync_interval_minutes.is_some_and(|m| m <= 0) {
            return Err(StoreError::Invalid("sync interval must be positive".into()));
        }
        let mut conn = self.conn().await?;
        let n = diesel::sql_query(
            "UPDATE retailcrm_integrations SET api_url = COALESCE($2, api_url), \
             api_key = COALESCE($3, api_key), is_active = COALESCE($4, is_active), \
             sync_orders = COALESCE($5, sync_orders), \
             sync_customers = COALESCE($6, sync_customers), \
             sync_interval_minutes = COALESCE($7, sync_interval_minutes), \
             status_mapping = COALESCE($8, status_mapping), \
             orders_created_from = CASE WHEN $9 THEN $10 ELSE orders_created_from END, \
             default_phone_country = CASE WHEN $11 THEN $12 ELSE default_phone_country END, \
             webhook_token_sha256 = CASE WHEN $13 THEN $14 ELSE webhook_token_sha256 END, \
             conflict_rule = COALESCE($15, conflict_rule), \
             status_back_mapping = COALESCE($16, status_back_mapping), \
             updated_at = now() \
             WHERE project_id = $1",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Nullable<Text>, _>(patch.api_url.as_deref())
        .bind::<Nullable<Text>, _>(patch.api_key.as_ref().map(ApiKey::expose))
        .bind::<Nullable<Bool>, _>(patch.is_active)
        .bind::<Nullable<Bool>, _>(patch.sync_orders)
        .bind::<Nullable<Bool>, _>(patch.sync_customers)
        .bind::<Nullable<Integer>, _>(patch.sync_interval_minutes)
        .bind::<Nullable<Jsonb>, _>(patch.status_mapping.as_ref().map(mapping_json))
        .bind::<Bool, _>(patch.orders_created_from.is_some())
        .bind::<Nullable<Date>, _>(patch.orders_created_from.flatten())
        .bind::<Bool, _>(patch.default_phone_country.is_some())
        .bind::<Nullable<Text>, _>(
            patch
                .default_phone_country
                .flatten()
                .as_ref()
                .map(PhoneCountry::as_str),
        )
        .bind::<Bool, _>(patch.webhook_token_sha256.is_some())
        .bind::<Nullable<Text>, _>(patch.webhook_token_sha256.clone().flatten())
        .bind::<Nullable<Text>, _>(patch.conflict_rule.map(ConflictRule::as_str))
        .bind::<Nullable<Jsonb>, _>(patch.status_back_mapping.as_ref().map(back_mapping_json))
        .execute(&mut conn)
        .await
        .map_err(op("update integration"))?;
        if n == 0 {
            return Err(StoreError::IntegrationNotFound(project_id));
        }
        self.get_integration(project_id)
            .await?
            .ok_or(StoreError::IntegrationNotFound(project_id))
    }

    /// Deletes a project's integration (synced rows and history stay); false when absent.
    pub async fn remove_integration(&self, project_id: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let n = diesel::sql_query("DELETE FROM retailcrm_integrations WHERE project_id = $1")
            .bind::<BigInt, _>(project_id)
            .execute(&mut conn)
            .await
            .map_err(op("remove integration"))?;
        Ok(n > 0)
    }
}
