//! Domain records shared by the layers: what the sync engine hands to the store after decoding
//! RetailCRM's wire types, plus the pure rules of the data contract (DESIGN.md section 3-4):
//! e-mail and phone normalisation (phones in [`phone`]) and the order-status mapping.
//!
//! Nothing here does I/O, so every rule is unit-tested with tricky inputs.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod phone;

pub use phone::{
    PhoneCountry, PhoneCountryError, normalize_phone, normalize_phone_in, renormalize_stored,
};

/// A stream of entities synced independently, each with its own history cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// `/api/v5/orders` and `/api/v5/orders/history`.
    Orders,
    /// `/api/v5/customers` and `/api/v5/customers/history`.
    Customers,
}

impl Stream {
    /// Both streams, customers first (orders link to users that customers create).
    pub const ALL: [Stream; 2] = [Stream::Customers, Stream::Orders];

    /// The name stored in Postgres (`sync_cursors.stream`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Orders => "orders",
            Stream::Customers => "customers",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "orders" => Ok(Stream::Orders),
            "customers" => Ok(Stream::Customers),
            other => Err(format!(
                "unknown stream `{other}` (expected orders or customers)"
            )),
        }
    }
}

/// The platform's order status (the `orders.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Processing,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
    ];

    /// The value stored in `orders.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Processing => "PROCESSING",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Refunded => "REFUNDED",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown platform status `{s}` (expected one of PENDING CONFIRMED PROCESSING \
                     SHIPPED DELIVERED CANCELLED REFUNDED)"
                )
            })
    }
}

/// The seed's status table (seed/README.md "Status mapping"), plus the default group
/// `approval`, which DESIGN.md section 4 counts as CONFIRMED.
pub fn seed_status(code: &str) -> Option<OrderStatus> {
    Some(match code {
        "new" => OrderStatus::Pending,
        "acceptance" | "approval" => OrderStatus::Confirmed,
        "assembling" => OrderStatus::Processing,
        "delivery" => OrderStatus::Shipped,
        "complete" => OrderStatus::Delivered,
        "cancel" => OrderStatus::Cancelled,
        "refund" => OrderStatus::Refunded,
        _ => return None,
    })
}

/// Maps a RetailCRM status code to a platform status (DESIGN.md section 4):
/// 1. the integration's own `status_mapping` (code -> platform status);
/// 2. the seed's table;
/// 3. the status's group (from `/reference/statuses`) through the seed's table.
///
/// `None` means unmapped: the caller stores the raw code, keeps the previous platform status
/// (or PENDING for a new order) and counts it.
pub fn map_status(
    code: &str,
    integration_mapping: &HashMap<String, OrderStatus>,
    status_groups: &HashMap<String, String>,
) -> Option<OrderStatus> {
    if let Some(status) = integration_mapping.get(code) {
        return Some(*status);
    }
    if let Some(status) = seed_status(code) {
        return Some(status);
    }
    let group = status_groups.get(code)?;
    integration_mapping
        .get(group)
        .copied()
        .or_else(|| seed_status(group))
}

/// Trims and lower-cases an e-mail; empty becomes `None`.
pub fn normalize_email(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        None
    } else {
        Some(trimmed.to_lowercase())
    }
}

/// A RetailCRM customer, decoded and normalised, ready for `store::users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRecord {
    /// RetailCRM's internal customer id (`customer.id`).
    pub retailcrm_id: i64,
    /// Normalised e-mail (see [`normalize_email`]).
    pub email: Option<String>,
    /// Normalised phone (see [`normalize_phone`]); the first of the customer's phones.
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// Contact data carried by an order, used to find or create its user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderContact {
    /// RetailCRM customer id the order belongs to (`order.customer.id`), if any.
    pub customer_retailcrm_id: Option<i64>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl OrderContact {
    /// True when nothing can identify or create a user: the order is stored with `user_id` NULL.
    pub fn is_empty(&self) -> bool {
        self.customer_retailcrm_id.is_none() && self.email.is_none() && self.phone.is_none()
    }
}

/// A RetailCRM order, decoded, normalised and status-mapped, ready for `store::orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// RetailCRM's internal order id (`order.id`).
    pub retailcrm_id: i64,
    /// `order.number` (e.g. `7141C`); unique per project.
    pub number: String,
    /// Mapped platform status; `None` when the code is unmapped (see [`map_status`]).
    pub status: Option<OrderStatus>,
    /// The raw RetailCRM status code, always kept.
    pub retailcrm_status: String,
    /// Exact total (`order.totalSumm`).
    pub total_amount: BigDecimal,
    /// ISO currency code when known.
    pub currency: Option<String>,
    /// `order.createdAt` converted from the account's timezone to UTC.
    pub ordered_at: Option<DateTime<Utc>>,
    pub contact: OrderContact,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_trim_and_lowercase() {
        assert_eq!(
            normalize_email("  Ivan.Petrov@Example.RU ").as_deref(),
            Some("ivan.petrov@example.ru")
        );
        assert_eq!(normalize_email(""), None);
        assert_eq!(normalize_email("   "), None);
        assert_eq!(
            normalize_email("ПОЧТА@Пример.РФ").as_deref(),
            Some("почта@пример.рф")
        );
    }

    #[test]
    fn status_mapping_order_is_integration_then_seed_then_group() {
        let groups: HashMap<String, String> = [
            ("send-to-delivery", "delivery"),
            ("client-confirmed", "approval"),
            ("no-call", "cancel"),
            ("complete", "complete"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let none = HashMap::new();
        assert_eq!(
            map_status("new", &none, &groups),
            Some(OrderStatus::Pending)
        );
        assert_eq!(
            map_status("refund", &none, &groups),
            Some(OrderStatus::Refunded)
        );
        assert_eq!(
            map_status("send-to-delivery", &none, &groups),
            Some(OrderStatus::Shipped)
        );
        assert_eq!(
            map_status("client-confirmed", &none, &groups),
            Some(OrderStatus::Confirmed)
        );
        assert_eq!(
            map_status("no-call", &none, &groups),
            Some(OrderStatus::Cancelled)
        );
        assert_eq!(map_status("made-up-code", &none, &groups), None);

        let custom: HashMap<String, OrderStatus> = [
            ("new".to_string(), OrderStatus::Confirmed),
            ("made-up-code".to_string(), OrderStatus::Refunded),
            ("delivery".to_string(), OrderStatus::Delivered),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            map_status("new", &custom, &groups),
            Some(OrderStatus::Confirmed)
        );
        assert_eq!(
            map_status("made-up-code", &custom, &groups),
            Some(OrderStatus::Refunded)
        );
        // A group named in the integration mapping wins over the seed table for that group.
        assert_eq!(
            map_status("send-to-delivery", &custom, &groups),
            Some(OrderStatus::Delivered)
        );
    }

    #[test]
    fn platform_status_parses_case_insensitively() {
        assert_eq!("shipped".parse::<OrderStatus>(), Ok(OrderStatus::Shipped));
        assert!("SENT".parse::<OrderStatus>().is_err());
    }
}
