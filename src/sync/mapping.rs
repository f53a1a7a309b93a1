//! Mapping RetailCRM's wire entities (`crm::types`) to the domain records the store writes
//! (`model`). Pure functions: every rule of DESIGN.md section 4 that is not SQL lives here
//! (contact resolution, status mapping, timezone conversion). A record that cannot be mapped
//! comes back as an error string, and the engine stores it aside as a poison record.

use std::collections::HashMap;

use chrono_tz::Tz;

use crate::crm::parse_crm_datetime;
use crate::crm::types::{Customer, Order};
use crate::model::{
    CustomerRecord, OrderContact, OrderRecord, OrderStatus, map_status, normalize_email,
    normalize_phone,
};

/// What mapping an order needs to know about the account and the integration.
#[derive(Debug, Clone)]
pub struct MappingContext {
    /// The account's timezone (`/api/v5/settings`), for `Y-m-d H:i:s` times.
    pub timezone: Tz,
    /// The integration's `status_mapping` (RetailCRM status or group code -> platform status).
    pub status_mapping: HashMap<String, OrderStatus>,
    /// Status code -> group code, from `/api/v5/reference/statuses`.
    pub status_groups: HashMap<String, String>,
    /// The account's currency, for orders that do not name theirs.
    pub default_currency: Option<String>,
}

fn clean(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Maps a customer. Fails only when the record cannot identify anybody.
pub fn map_customer(c: &Customer) -> Result<CustomerRecord, String> {
    let phone = c
        .phones
        .iter()
        .find_map(|p| p.number.as_deref().and_then(normalize_phone));
    Ok(CustomerRecord {
        retailcrm_id: c.id,
        email: c.email.as_deref().and_then(normalize_email),
        phone,
        first_name: clean(c.first_name.as_deref()),
        last_name: clean(c.last_name.as_deref()),
    })
}

/// Maps an order. Its contact comes from the order's own fields first (what the buyer typed),
/// then from the linked customer. The second value is true when the status is unmapped.
pub fn map_order(o: &Order, ctx: &MappingContext) -> Result<(OrderRecord, bool), String> {
    let number = clean(o.number.as_deref()).ok_or("order has no `number`")?;
    let status_code = clean(o.status.as_deref()).ok_or("order has no `status`")?;
    let total = o.total_summ.clone();
    let ordered_at = match o.created_at.as_deref() {
        Some(raw) => Some(
            parse_crm_datetime(raw, ctx.timezone)
                .ok_or_else(|| format!("order `createdAt` {raw:?} is not `Y-m-d H:i:s`"))?,
        ),
        None => None,
    };
    let customer = o.customer.as_ref();
    let email = o.email.as_deref().and_then(normalize_email).or_else(|| {
        customer
            .and_then(|c| c.email.as_deref())
            .and_then(normalize_email)
    });
    let phone = o.phone.as_deref().and_then(normalize_phone).or_else(|| {
        customer.and_then(|c| {
            c.phones
                .iter()
                .find_map(|p| p.number.as_deref().and_then(normalize_phone))
        })
    });
    let contact = OrderContact {
        customer_retailcrm_id: customer.and_then(|c| c.id),
        email,
        phone,
        first_name: clean(o.first_name.as_deref())
            .or_else(|| customer.and_then(|c| clean(c.first_name.as_deref()))),
        last_name: clean(o.last_name.as_deref())
            .or_else(|| customer.and_then(|c| clean(c.last_name.as_deref()))),
    };
    let status = map_status(&status_code, &ctx.status_mapping, &ctx.status_groups);
    Ok((
        OrderRecord {
            retailcrm_id: o.id,
            number,
            status,
            retailcrm_status: status_code,
            total_amount: total,
            currency: clean(o.currency.as_deref()).or_else(|| ctx.default_currency.clone()),
            ordered_at,
            contact,
        },
        status.is_none(),
    ))
}
