//! Mapping RetailCRM's wire entities (`crm::types`) to the domain records the store writes
//! (`model`). Pure functions: every rule of DESIGN.md section 4 that is not SQL lives here
//! (contact resolution, status mapping, timezone conversion, the country phones are read in).
//! A record that cannot be mapped comes back as an error string, and the engine stores it aside
//! as a poison record.
//!
//! # Corporate customers
//! In a B2B account an order's `customer` may be a corporate customer (`type:
//! "customer_corporate"`), whose id is in a separate id space that can equal an ordinary
//! customer's id. The person is then the order's `contact` (an ordinary customer): its id links
//! the order, its data fills what the order itself lacks. Without a contact the order is linked
//! only by its own e-mail/phone (or to nobody); never by the corporate id.

use std::collections::HashMap;

use chrono_tz::Tz;

use crate::crm::parse_crm_datetime;
use crate::crm::types::{Customer, Order, OrderCustomer, Phone, Site};
use crate::model::{
    CustomerRecord, OrderContact, OrderRecord, OrderStatus, PhoneCountry, map_status,
    normalize_email, normalize_phone_in,
};

/// `customer.type` of a corporate customer.
pub const CORPORATE_CUSTOMER: &str = "customer_corporate";

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
    /// Country in which phones written without a country code are read.
    pub phone_country: PhoneCountry,
}

impl MappingContext {
    /// What mapping customers needs: only the country phones are read in. The order fields
    /// are empty (UTC, no status mapping, no currency); `map_customer` never reads them.
    pub fn for_customers(phone_country: PhoneCountry) -> Self {
        MappingContext {
            timezone: Tz::UTC,
            status_mapping: HashMap::new(),
            status_groups: HashMap::new(),
            default_currency: None,
            phone_country,
        }
    }
}

/// The account's country for phones, from `/api/v5/reference/sites`: the `countryIso` of the
/// default store (`defaultForCrm`), else the one country all stores that name one agree on;
/// `None` when no store names a known country or the stores disagree.
pub fn account_phone_country(sites: &HashMap<String, Site>) -> Option<PhoneCountry> {
    let country = |s: &Site| s.country_iso.as_deref().and_then(|c| c.parse().ok());
    if let Some(c) = sites
        .values()
        .filter(|s| s.default_for_crm)
        .find_map(country)
    {
        return Some(c);
    }
    let mut all = sites.values().filter_map(country);
    let first = all.next()?;
    all.all(|c| c == first).then_some(first)
}

fn clean(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The first of `phones` that normalises to a number.
fn first_phone(phones: &[Phone], country: PhoneCountry) -> Option<String> {
    phones.iter().find_map(|p| {
        p.number
            .as_deref()
            .and_then(|n| normalize_phone_in(n, country))
    })
}

/// Maps a customer; phones without a country code are read in `phone_country`. Fails only
/// when the record cannot identify anybody.
pub fn map_customer(c: &Customer, phone_country: PhoneCountry) -> Result<CustomerRecord, String> {
    let phone = first_phone(&c.phones, phone_country);
    Ok(CustomerRecord {
        retailcrm_id: c.id,
        email: c.email.as_deref().and_then(normalize_email),
        phone,
        first_name: clean(c.first_name.as_deref()),
        last_name: clean(c.last_name.as_deref()),
    })
}

/// The ordinary customer behind an order: `order.customer`, or for a corporate customer the
/// order's `contact` person (`None` without one). See the module doc.
fn order_person(o: &Order) -> Option<&OrderCustomer> {
    match o.customer.as_ref() {
        Some(c) if c.kind.as_deref() == Some(CORPORATE_CUSTOMER) => o.contact.as_ref(),
        other => other,
    }
}

/// Maps an order. Its contact comes from the order's own fields first (what the buyer typed),
/// then from the person behind it (the customer, or a corporate customer's contact person).
/// The second value is true when the status is unmapped.
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
    let person = order_person(o);
    let country = ctx.phone_country;
    let email = o.email.as_deref().and_then(normalize_email).or_else(|| {
        person
            .and_then(|c| c.email.as_deref())
            .and_then(normalize_email)
    });
    let phone = o
        .phone
        .as_deref()
        .and_then(|n| normalize_phone_in(n, country))
        .or_else(|| person.and_then(|c| first_phone(&c.phones, country)));
    let contact = OrderContact {
        customer_retailcrm_id: person.and_then(|c| c.id),
        email,
        phone,
        first_name: clean(o.first_name.as_deref())
            .or_else(|| person.and_then(|c| clean(c.first_name.as_deref()))),
        last_name: clean(o.last_name.as_deref())
            .or_else(|| person.and_then(|c| clean(c.last_name.as_deref()))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(phone_country: PhoneCountry) -> MappingContext {
        MappingContext {
            timezone: chrono_tz::Europe::Moscow,
            status_mapping: HashMap::new(),
            status_groups: HashMap::new(),
            default_currency: Some("RUB".into()),
            phone_country,
        }
    }

    fn order(extra: serde_json::Value) -> Order {
        let mut base = serde_json::json!({
            "id": 501, "number": "501A", "status": "new", "totalSumm": 100,
            "createdAt": "2026-11-30 12:00:00",
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn contact_of(o: &Order) -> OrderContact {
        map_order(o, &ctx(PhoneCountry::RU)).unwrap().0.contact
    }

    #[test]
    fn an_ordinary_customer_links_and_fills_the_contact() {
        let o = order(serde_json::json!({
            "customer": {"type": "customer", "id": 7, "email": "Ivan@Example.ru",
                         "phones": [{"number": "8 912 345 67 89"}], "firstName": "Иван"},
            "contact": {"type": "customer", "id": 99, "email": "other@example.ru"},
        }));
        assert_eq!(
            contact_of(&o),
            OrderContact {
                customer_retailcrm_id: Some(7),
                email: Some("ivan@example.ru".into()),
                phone: Some("79123456789".into()),
                first_name: Some("Иван".into()),
                last_name: None,
            }
        );
    }

    #[test]
    fn a_corporate_customer_is_represented_by_its_contact_person() {
        let o = order(serde_json::json!({
            "lastName": "Петров",
            "customer": {"type": "customer_corporate", "id": 7, "nickName": "ООО Ромашка",
                         "email": "office@romashka.ru", "phones": [{"number": "+7 495 000-00-00"}]},
            "contact": {"type": "customer", "id": 42, "firstName": "Пётр", "lastName": "Иванов",
                        "email": "petr@romashka.ru", "phones": [{"number": "+7 (912) 000-11-22"}]},
        }));
        assert_eq!(
            contact_of(&o),
            OrderContact {
                customer_retailcrm_id: Some(42),
                email: Some("petr@romashka.ru".into()),
                phone: Some("79120001122".into()),
                first_name: Some("Пётр".into()),
                // The order's own field comes first.
                last_name: Some("Петров".into()),
            }
        );
    }

    #[test]
    fn a_corporate_customer_without_contact_links_only_by_the_orders_own_data() {
        let with_own = order(serde_json::json!({
            "email": "buyer@romashka.ru",
            "customer": {"type": "customer_corporate", "id": 7, "email": "office@romashka.ru",
                         "phones": [{"number": "+7 495 000-00-00"}], "firstName": "ООО"},
        }));
        assert_eq!(
            contact_of(&with_own),
            OrderContact {
                customer_retailcrm_id: None,
                email: Some("buyer@romashka.ru".into()),
                phone: None,
                first_name: None,
                last_name: None,
            }
        );
        let bare = order(serde_json::json!({
            "customer": {"type": "customer_corporate", "id": 7, "email": "office@romashka.ru"},
        }));
        let (record, _) = map_order(&bare, &ctx(PhoneCountry::RU)).expect("never dropped");
        assert!(record.contact.is_empty(), "{:?}", record.contact);
        assert_eq!(record.number, "501A");
    }

    fn sites(list: &[(&str, Option<&str>, bool)]) -> HashMap<String, Site> {
        list.iter()
            .map(|(code, country, default)| {
                let site: Site = serde_json::from_value(serde_json::json!({
                    "code": code, "countryIso": country, "defaultForCrm": default,
                }))
                .unwrap();
                (code.to_string(), site)
            })
            .collect()
    }

    #[test]
    fn the_accounts_country_is_the_default_stores_or_the_one_all_agree_on() {
        let kz: PhoneCountry = "KZ".parse().unwrap();
        let by: PhoneCountry = "BY".parse().unwrap();
        let pick = |l: &[(&str, Option<&str>, bool)]| account_phone_country(&sites(l));
        assert_eq!(
            pick(&[("a", Some("BY"), false), ("b", Some("kz"), true)]),
            Some(kz)
        );
        assert_eq!(
            pick(&[("a", Some("BY"), false), ("b", Some("BY"), false)]),
            Some(by)
        );
        assert_eq!(
            pick(&[("a", Some("BY"), false), ("b", Some("KZ"), false)]),
            None
        );
        // A default store without a (known) country does not hide the others' agreement.
        assert_eq!(
            pick(&[("a", Some("ZZ"), true), ("b", Some("BY"), false)]),
            Some(by)
        );
        assert_eq!(pick(&[("a", None, true)]), None);
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn phones_are_read_in_the_contexts_country() {
        let kz: PhoneCountry = "KZ".parse().unwrap();
        let o = order(serde_json::json!({"phone": "8 701 123 45 67"}));
        let (record, _) = map_order(&o, &ctx(kz)).unwrap();
        assert_eq!(record.contact.phone.as_deref(), Some("77011234567"));
        let c: Customer = serde_json::from_value(serde_json::json!({
            "id": 3, "phones": [{"number": ""}, {"number": "701 123 4567"}],
        }))
        .unwrap();
        assert_eq!(
            map_customer(&c, kz).unwrap().phone.as_deref(),
            Some("77011234567")
        );
    }
}
