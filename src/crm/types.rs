//! RetailCRM API v5 wire types: what the sync engine reads from a response.
//!
//! Only the fields the daemon uses are typed; everything else is ignored (RetailCRM adds fields
//! at any time, so `deny_unknown_fields` is never used). Every field that has been seen in more
//! than one shape goes through a tolerant helper from [`super::decode`]. Date-times are kept as
//! the raw `Y-m-d H:i:s` text in the account timezone; `*_utc(tz)` helpers convert them.

use std::collections::HashMap;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::decode::{
    Decoded, lenient_bool, lenient_i64, lenient_opt_i64, lenient_opt_string, lenient_string,
    map_or_empty, money, opt_money, parse_crm_datetime, seq_or_map,
};

/// `pagination` of a list response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pagination {
    /// Page size.
    pub limit: u32,
    /// Number of matching items in total.
    pub total_count: u64,
    /// This page (1-based).
    pub current_page: u32,
    /// Number of pages (0 when nothing matches).
    pub total_page_count: u32,
}

impl Pagination {
    /// True when this page is the last one (or there are none).
    pub fn is_last(&self) -> bool {
        self.current_page >= self.total_page_count
    }
}

/// One page of a list (`/orders`, `/customers`).
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items in the order the API sent them; each decoded on its own.
    pub items: Vec<Decoded<T>>,
    /// The envelope's pagination.
    pub pagination: Pagination,
}

impl<T> Page<T> {
    /// The items that decoded.
    pub fn ok_items(&self) -> impl Iterator<Item = &T> {
        self.items.iter().filter_map(Decoded::ok)
    }

    /// The items that did not decode.
    pub fn poison_items(&self) -> impl Iterator<Item = &super::decode::PoisonItem> {
        self.items.iter().filter_map(Decoded::poison)
    }
}

/// One page of a history method.
#[derive(Debug, Clone)]
pub struct HistoryPage<T> {
    /// Records ascending by id; each decoded on its own.
    pub items: Vec<Decoded<T>>,
    /// The envelope's pagination (with `sinceId` the current page is always 1).
    pub pagination: Pagination,
    /// `generatedAt` of the response, raw.
    pub generated_at: Option<String>,
}

impl<T: HasHistoryId> HistoryPage<T> {
    /// The highest record id on this page, counting poison records whose id could be read.
    /// This is where the cursor moves after the page is processed.
    pub fn max_id(&self) -> Option<i64> {
        self.items
            .iter()
            .filter_map(|d| match d {
                Decoded::Ok(r) => Some(r.history_id()),
                Decoded::Poison(p) => p.id,
            })
            .max()
    }
}

impl<T> HistoryPage<T> {
    /// The records that decoded.
    pub fn ok_items(&self) -> impl Iterator<Item = &T> {
        self.items.iter().filter_map(Decoded::ok)
    }

    /// The records that did not decode (their `id`, when readable, still moves the cursor).
    pub fn poison_items(&self) -> impl Iterator<Item = &super::decode::PoisonItem> {
        self.items.iter().filter_map(Decoded::poison)
    }
}

/// What the sync needs from any history record: its id, the entity it touches, and how.
pub trait HasHistoryId {
    /// The history record's own id (the cursor).
    fn history_id(&self) -> i64;
    /// Key of the affected entity in the raw record (`order` or `customer`).
    const ENTITY_KEY: &'static str;
    /// Id of the affected entity, when the record names it.
    fn entity_id(&self) -> Option<i64>;
    /// True on the record of a deletion.
    fn is_deleted(&self) -> bool;
    /// The entity a merged one went into (`combinedTo.id`), which changed too.
    fn combined_to_id(&self) -> Option<i64>;
    /// The field the record changed, when someone other than this key changed it (what the
    /// two-way sync's conflict rule looks at).
    fn foreign_field(&self) -> Option<&str> {
        None
    }
}

/// `{ "number": "+7..." }` in `phones`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone {
    /// The phone as typed by a person (any format).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub number: Option<String>,
}

/// The customer snapshot embedded in an order (`order.customer`, `order.contact`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCustomer {
    /// RetailCRM customer id.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub id: Option<i64>,
    /// `customer` or `customer_corporate`.
    #[serde(default, rename = "type", deserialize_with = "lenient_opt_string")]
    pub kind: Option<String>,
    /// External id, if set.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub external_id: Option<String>,
    /// E-mail (may be empty).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub email: Option<String>,
    /// Phones.
    #[serde(default, deserialize_with = "seq_or_map")]
    pub phones: Vec<Phone>,
    /// First name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub last_name: Option<String>,
    /// Patronymic.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub patronymic: Option<String>,
    /// Store code.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub site: Option<String>,
}

/// `deserialize_with` for `order.payments`: an object keyed by payment id (lists), `[]` when
/// empty, or a JSON list of payments (the live API's `created` history snapshots; keyed by each
/// payment's id, or its position when it has none). Never fails: an entry that is not a
/// payment is left out, anything else is "no payments" (one odd order must not fail a page).
pub fn payments_map<'de, D>(d: D) -> Result<HashMap<String, Payment>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let decode = |v: serde_json::Value| serde_json::from_value::<Payment>(v).ok();
    let out = match serde_json::Value::deserialize(d)? {
        serde_json::Value::Object(m) => m
            .into_iter()
            .filter_map(|(k, v)| decode(v).map(|p| (k, p)))
            .collect(),
        serde_json::Value::Array(list) => list
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| decode(v).map(|p| (i, p)))
            .map(|(i, p)| (p.id.map_or_else(|| i.to_string(), |id| id.to_string()), p))
            .collect(),
        _ => HashMap::new(),
    };
    Ok(out)
}

/// One entry of `order.payments`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Payment id.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub id: Option<i64>,
    /// Payment type code.
    #[serde(default, rename = "type", deserialize_with = "lenient_opt_string")]
    pub kind: Option<String>,
    /// Payment status code (`paid`, ...).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub status: Option<String>,
    /// Amount, exact.
    #[serde(default, deserialize_with = "opt_money")]
    pub amount: Option<BigDecimal>,
    /// `Y-m-d H:i:s` in the account timezone.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub paid_at: Option<String>,
}

/// An order from `/api/v5/orders` (or a create/edit response).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Internal id: the stable key.
    #[serde(deserialize_with = "lenient_i64")]
    pub id: i64,
    /// Human order number (`7141C`).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub number: Option<String>,
    /// Id in an external system.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub external_id: Option<String>,
    /// Store code.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub site: Option<String>,
    /// Status **code** (map through `/reference/statuses` to the group).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub status: Option<String>,
    /// Last status change, `Y-m-d H:i:s` in the account timezone.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub status_updated_at: Option<String>,
    /// Creation time, `Y-m-d H:i:s` in the account timezone.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub created_at: Option<String>,
    /// Order total incl. delivery and discounts, exact (zero when absent).
    #[serde(default, deserialize_with = "money")]
    pub total_summ: BigDecimal,
    /// Items total, exact.
    #[serde(default, deserialize_with = "opt_money")]
    pub summ: Option<BigDecimal>,
    /// Currency code (`RUB`); absent on older accounts.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub currency: Option<String>,
    /// Contact e-mail copied onto the order.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub email: Option<String>,
    /// Contact phone copied onto the order.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub phone: Option<String>,
    /// Second phone.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub additional_phone: Option<String>,
    /// Contact first name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub first_name: Option<String>,
    /// Contact last name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub last_name: Option<String>,
    /// Contact patronymic.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub patronymic: Option<String>,
    /// Embedded customer snapshot.
    #[serde(default)]
    pub customer: Option<OrderCustomer>,
    /// Contact person (corporate orders).
    #[serde(default)]
    pub contact: Option<OrderCustomer>,
    /// Payments keyed by payment id (`{}` or `[]` when none; a list in `created` history
    /// snapshots).
    #[serde(default, deserialize_with = "payments_map")]
    pub payments: HashMap<String, Payment>,
    /// Custom fields (`[]` when none).
    #[serde(default, deserialize_with = "map_or_empty")]
    pub custom_fields: HashMap<String, serde_json::Value>,
    /// Order type code.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub order_type: Option<String>,
    /// Order method code.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub order_method: Option<String>,
    /// Manager id.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub manager_id: Option<i64>,
}

impl Order {
    /// `created_at` converted from the account timezone to UTC (`None` if absent or malformed).
    pub fn created_at_utc(&self, tz: Tz) -> Option<DateTime<Utc>> {
        self.created_at
            .as_deref()
            .and_then(|s| parse_crm_datetime(s, tz))
    }
}

/// A customer from `/api/v5/customers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Internal id.
    #[serde(deserialize_with = "lenient_i64")]
    pub id: i64,
    /// `customer` (corporate customers have their own endpoint).
    #[serde(default, rename = "type", deserialize_with = "lenient_opt_string")]
    pub kind: Option<String>,
    /// External id (unique per store).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub external_id: Option<String>,
    /// Store code.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub site: Option<String>,
    /// E-mail (may be `""`).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub email: Option<String>,
    /// Phones (`[]` when none).
    #[serde(default, deserialize_with = "seq_or_map")]
    pub phones: Vec<Phone>,
    /// First name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub last_name: Option<String>,
    /// Patronymic.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub patronymic: Option<String>,
    /// Creation time, `Y-m-d H:i:s` in the account timezone.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub created_at: Option<String>,
    /// VIP flag.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub vip: bool,
    /// "Bad customer" flag.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub bad: bool,
    /// Custom fields (`[]` when none).
    #[serde(default, deserialize_with = "map_or_empty")]
    pub custom_fields: HashMap<String, serde_json::Value>,
}

impl Customer {
    /// `created_at` converted from the account timezone to UTC.
    pub fn created_at_utc(&self, tz: Tz) -> Option<DateTime<Utc>> {
        self.created_at
            .as_deref()
            .and_then(|s| parse_crm_datetime(s, tz))
    }
}

/// `apiKey` of a history record: `current` is true for changes made with the reading key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryApiKey {
    /// The change was made with the same key that reads the history.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub current: bool,
}

/// The entity a history record is about (partial except on `created` records).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntityRef {
    /// Entity id. Absent only on malformed records.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub id: Option<i64>,
    /// External id.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub external_id: Option<String>,
    /// Store code.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub site: Option<String>,
    /// Order number (orders; present on created records).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub number: Option<String>,
    /// Status code (orders).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub status: Option<String>,
}

/// One record of `/api/v5/orders/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderHistoryRecord {
    /// Record id: strictly increasing, the cursor.
    #[serde(deserialize_with = "lenient_i64")]
    pub id: i64,
    /// When the change happened (NOT monotonic in `id`).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub created_at: Option<String>,
    /// This record created the order (and carries a full snapshot).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub created: bool,
    /// The order was deleted.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub deleted: bool,
    /// `api`, `code`, `user`, `rule`, `combine`, `split`.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub source: Option<String>,
    /// Changed field (`status`, `payments.status`, `custom_x`, ...).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub field: Option<String>,
    /// Present for API changes.
    #[serde(default)]
    pub api_key: Option<HistoryApiKey>,
    /// Old value (scalar, object or null).
    #[serde(default)]
    pub old_value: serde_json::Value,
    /// New value (scalar, object or null).
    #[serde(default)]
    pub new_value: serde_json::Value,
    /// The order this record is about.
    #[serde(default)]
    pub order: Option<HistoryEntityRef>,
    /// Set when the order was merged into another one.
    #[serde(default)]
    pub combined_to: Option<HistoryEntityRef>,
}

impl OrderHistoryRecord {
    /// The order id this record is about (`None` only on malformed records).
    pub fn order_id(&self) -> Option<i64> {
        self.order.as_ref().and_then(|o| o.id)
    }

    /// True for changes this key made itself (`source == api` and `apiKey.current`).
    pub fn is_own_write(&self) -> bool {
        self.source.as_deref() == Some("api") && self.api_key.is_some_and(|k| k.current)
    }
}

impl HasHistoryId for OrderHistoryRecord {
    const ENTITY_KEY: &'static str = "order";
    fn history_id(&self) -> i64 {
        self.id
    }
    fn entity_id(&self) -> Option<i64> {
        self.order_id()
    }
    fn is_deleted(&self) -> bool {
        self.deleted
    }
    fn combined_to_id(&self) -> Option<i64> {
        self.combined_to.as_ref().and_then(|c| c.id)
    }
    fn foreign_field(&self) -> Option<&str> {
        if self.is_own_write() {
            None
        } else {
            self.field.as_deref()
        }
    }
}

/// One record of `/api/v5/customers/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerHistoryRecord {
    /// Record id: strictly increasing, the cursor.
    #[serde(deserialize_with = "lenient_i64")]
    pub id: i64,
    /// When the change happened (NOT monotonic in `id`).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub created_at: Option<String>,
    /// This record created the customer.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub created: bool,
    /// The customer was deleted.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub deleted: bool,
    /// `api`, `code`, `user`, `rule`, `combine`.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub source: Option<String>,
    /// Changed field (`email`, `phones`, `first_name`, `address.city`, ...).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub field: Option<String>,
    /// Present for API changes.
    #[serde(default)]
    pub api_key: Option<HistoryApiKey>,
    /// Old value.
    #[serde(default)]
    pub old_value: serde_json::Value,
    /// New value.
    #[serde(default)]
    pub new_value: serde_json::Value,
    /// The customer this record is about.
    #[serde(default)]
    pub customer: Option<HistoryEntityRef>,
    /// Set when the customer was merged into another one.
    #[serde(default)]
    pub combined_to: Option<HistoryEntityRef>,
}

impl CustomerHistoryRecord {
    /// The customer id this record is about.
    pub fn customer_id(&self) -> Option<i64> {
        self.customer.as_ref().and_then(|c| c.id)
    }

    /// True for changes this key made itself.
    pub fn is_own_write(&self) -> bool {
        self.source.as_deref() == Some("api") && self.api_key.is_some_and(|k| k.current)
    }
}

impl HasHistoryId for CustomerHistoryRecord {
    const ENTITY_KEY: &'static str = "customer";
    fn history_id(&self) -> i64 {
        self.id
    }
    fn entity_id(&self) -> Option<i64> {
        self.customer_id()
    }
    fn is_deleted(&self) -> bool {
        self.deleted
    }
    fn combined_to_id(&self) -> Option<i64> {
        self.combined_to.as_ref().and_then(|c| c.id)
    }
    fn foreign_field(&self) -> Option<&str> {
        if self.is_own_write() {
            None
        } else {
            self.field.as_deref()
        }
    }
}

/// A status from `/api/v5/reference/statuses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Status code (what orders carry).
    #[serde(deserialize_with = "lenient_string")]
    pub code: String,
    /// Display name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub name: Option<String>,
    /// Group code (`new`, `approval`, `assembling`, `delivery`, `complete`, `cancel`, ...).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub group: Option<String>,
    /// Whether the status is active.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub active: bool,
    /// Sort order.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub ordering: Option<i64>,
}

/// A status group from `/api/v5/reference/status-groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusGroup {
    /// Group code.
    #[serde(deserialize_with = "lenient_string")]
    pub code: String,
    /// Display name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub name: Option<String>,
    /// Whether the group is active.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub active: bool,
    /// Sort order.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub ordering: Option<i64>,
    /// Whether orders in this group are "in process".
    #[serde(default, deserialize_with = "lenient_bool")]
    pub process: bool,
    /// Status codes in the group.
    #[serde(default, deserialize_with = "seq_or_map")]
    pub statuses: Vec<String>,
}

/// A store from `/api/v5/reference/sites`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    /// Store code.
    #[serde(deserialize_with = "lenient_string")]
    pub code: String,
    /// Store id.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub id: Option<i64>,
    /// Display name.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub name: Option<String>,
    /// Store URL.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub url: Option<String>,
    /// Store currency.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub currency: Option<String>,
    /// The store's country (ISO 3166 alpha-2), e.g. `RU`.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub country_iso: Option<String>,
    /// Default store of the account.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub default_for_crm: bool,
}

/// `/api/credentials`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// Scopes of the key (`order_read`, ...).
    #[serde(default, deserialize_with = "seq_or_map")]
    pub scopes: Vec<String>,
    /// `access_full` or `access_selective`.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub site_access: Option<String>,
    /// Store codes the key may use with `access_selective`.
    #[serde(default, deserialize_with = "seq_or_map")]
    pub sites_available: Vec<String>,
}

/// What `/api/v5/settings` tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    /// Account timezone; Europe/Moscow when the account does not say.
    pub timezone: Tz,
    /// The timezone text the account sent, when it sent one (even if it was not recognised).
    pub timezone_raw: Option<String>,
    /// Default currency code.
    pub default_currency: Option<String>,
}

/// Result of a successful [`super::CrmClient::test_connection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionReport {
    /// API versions the account accepts.
    pub versions: Vec<String>,
    /// Scopes of the key.
    pub scopes: Vec<String>,
    /// `access_full` or `access_selective`.
    pub site_access: Option<String>,
    /// Store codes available with `access_selective`.
    pub sites_available: Vec<String>,
}

#[cfg(test)]
mod payment_tests {
    use super::*;

    #[derive(Deserialize)]
    struct P {
        #[serde(default, deserialize_with = "payments_map")]
        payments: HashMap<String, Payment>,
    }

    fn decode(json: &str) -> HashMap<String, Payment> {
        serde_json::from_str::<P>(json).unwrap().payments
    }

    #[test]
    fn payments_as_object_empty_list_or_list() {
        assert!(decode(r#"{"payments": []}"#).is_empty());
        assert!(decode(r#"{"payments": {}}"#).is_empty());
        assert!(decode(r#"{"payments": null}"#).is_empty());
        let obj = decode(r#"{"payments": {"7": {"id": 7, "type": "cash", "amount": 10.5}}}"#);
        assert_eq!(obj["7"].kind.as_deref(), Some("cash"));
        // The live API's `created` history snapshot sends a list.
        let list = decode(
            r#"{"payments": [{"id": 1422, "status": "not-paid", "type": "cash", "amount": 2663.96},
                             {"type": "bank-card"}, "odd"]}"#,
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list["1422"].status.as_deref(), Some("not-paid"));
        assert_eq!(list["1"].kind.as_deref(), Some("bank-card"));
        assert!(decode(r#"{"payments": 5}"#).is_empty());
    }
}
