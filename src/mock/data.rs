//! The mock account's entities and their deterministic generator.
//!
//! Entities are stored typed (not as JSON trees) so 400,000 orders fit in a few hundred MB, and
//! serialise to the wire shape of `retailcrm-api.md`: PHP quirks included (`payments` is `{}` when
//! empty, `customFields` is `[]` when empty, money is a JSON number such as `1234.5` or `0`).
//!
//! [`generate`] builds an account from a seed: Cyrillic names, phones in several formats, shared
//! and missing e-mails, orders linked to customers, guest orders with and without contact data,
//! every default status code, and a history in which `createdAt` is not monotonic in `id`.
//!
//! B2B: about 3% of generated orders ([`CORPORATE_SHARE`]) belong to a corporate customer
//! (`customer: {"type": "customer_corporate", "id", "nickName"}`, ids from their own id space
//! `1..=customers/20+1`, so they may equal an ordinary customer's id); two thirds of them have
//! the buyer in `contact` (an ordinary customer of the account), the rest have no contact. The
//! choice uses its own random stream, so the rest of the account is the same as without it.
//!
//! Time: the account ends at the start of the current hour in the account timezone
//! ([`GenConfig::anchor`]): generated status changes and deletions (at most 90 s apart) take
//! the last hours before it (at most 20), customers and orders are spread over the year before
//! them, so the newest entity is less than a day old. Everything after
//! generation (API writes, mutations) gets the real clock. Apart from that anchoring, a seed
//! gives the same account.

use std::collections::BTreeMap;
use std::sync::Arc;

use bigdecimal::BigDecimal;
use chrono::{Duration as ChronoDuration, NaiveDateTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::state::MockState;

/// `(group code, group name, process, [(status code, status name)])`.
pub type StatusGroupDef = (
    &'static str,
    &'static str,
    bool,
    &'static [(&'static str, &'static str)],
);

/// `(group code, group name, process, [(status code, status name)])`: RetailCRM's default
/// statuses (from the recorded `reference/statuses` of a real account).
pub const DEFAULT_STATUS_GROUPS: &[StatusGroupDef] = &[
    ("new", "Новый", false, &[("new", "Новый")]),
    (
        "approval",
        "Согласование",
        true,
        &[
            ("availability-confirmed", "Наличие подтверждено"),
            ("offer-analog", "Предложить замену"),
            ("client-confirmed", "Согласовано с клиентом"),
            ("prepayed", "Предоплата поступила"),
        ],
    ),
    (
        "assembling",
        "Комплектация",
        true,
        &[
            ("send-to-assembling", "Передано в комплектацию"),
            ("assembling", "Комплектуется"),
            ("assembling-complete", "Укомплектован"),
        ],
    ),
    (
        "delivery",
        "Доставка",
        true,
        &[
            ("send-to-delivery", "Передан в доставку"),
            ("delivering", "Доставляется"),
            ("redirect", "Доставка перенесена"),
            ("delivered", "Доставлен"),
        ],
    ),
    ("complete", "Выполнен", false, &[("complete", "Выполнен")]),
    (
        "cancel",
        "Отменен",
        false,
        &[
            ("no-call", "Недозвон"),
            ("no-product", "Нет в наличии"),
            ("already-buyed", "Купил в другом месте"),
            ("delyvery-did-not-suit", "Не устроила доставка"),
            ("prices-did-not-suit", "Не устроила цена"),
            ("cancel-other", "Отменен"),
            ("abandoned-cart", "Брошенная корзина"),
        ],
    ),
];

/// Every default status code.
pub fn all_status_codes() -> Vec<&'static str> {
    DEFAULT_STATUS_GROUPS
        .iter()
        .flat_map(|(_, _, _, st)| st.iter().map(|(c, _)| *c))
        .collect()
}

/// Money in kopecks, serialised like PHP's `json_encode` of a float (`1234.5`, `0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Kopecks(pub i64);

impl Kopecks {
    /// The exact decimal value in roubles.
    pub fn to_decimal(self) -> BigDecimal {
        BigDecimal::new(self.0.into(), 2)
    }
}

impl Serialize for Kopecks {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            s.serialize_i64(self.0 / 100)
        } else {
            // ryu prints the shortest text that round-trips, so 139516 -> 1395.16 exactly.
            s.serialize_f64(self.0 as f64 / 100.0)
        }
    }
}

/// A map that serialises as `[]` when empty (PHP's empty array).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhpMap(pub BTreeMap<String, serde_json::Value>);

impl Serialize for PhpMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_seq(Some(0))?.end()
        } else {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }
}

/// `{ "number": ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MockPhone {
    /// As typed.
    pub number: String,
}

/// A customer of the mock account.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MockCustomer {
    /// Always `customer`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Internal id.
    pub id: i64,
    /// External id, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Store code.
    pub site: String,
    /// `Y-m-d H:i:s`, account timezone.
    pub created_at: String,
    /// First name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Patronymic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patronymic: Option<String>,
    /// E-mail; RetailCRM omits it when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phones (`[]` when none).
    pub phones: Vec<MockPhone>,
    /// VIP flag.
    pub vip: bool,
    /// Bad-customer flag.
    pub bad: bool,
    /// Custom fields (`[]` when none).
    pub custom_fields: PhpMap,
}

/// A payment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MockPayment {
    /// Payment id.
    pub id: i64,
    /// Type code.
    #[serde(rename = "type")]
    pub kind: String,
    /// Status code.
    pub status: String,
    /// Amount.
    pub amount: Kopecks,
}

/// A corporate customer as embedded in an order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MockCorporate {
    /// Always `customer_corporate`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Id in the corporate id space.
    pub id: i64,
    /// Company name, e.g. `ООО "Ромашка"`.
    pub nick_name: String,
}

/// Share of generated orders that belong to a corporate customer.
pub const CORPORATE_SHARE: f64 = 0.03;

const COMPANY_NAMES: &[&str] = &[
    "Ромашка",
    "Вектор",
    "Северный ветер",
    "ТехноСнаб",
    "Альфа",
    "Гранит",
    "Меридиан",
];

/// An order of the mock account. `customer_id` is rendered as an embedded customer snapshot
/// taken from the customer's current state when served.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MockOrder {
    /// Internal id.
    pub id: i64,
    /// Order number (`{id}A`).
    pub number: String,
    /// External id, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Store code.
    pub site: String,
    /// Status code.
    pub status: String,
    /// `Y-m-d H:i:s`.
    pub status_updated_at: String,
    /// `Y-m-d H:i:s`.
    pub created_at: String,
    /// Order type code.
    pub order_type: &'static str,
    /// Order method code.
    pub order_method: &'static str,
    /// Contact first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Contact last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Contact e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Contact phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Items total.
    pub summ: Kopecks,
    /// Order total.
    pub total_summ: Kopecks,
    /// Currency.
    pub currency: &'static str,
    /// Linked customer (rendered as `customer`).
    #[serde(skip)]
    pub customer_id: Option<i64>,
    /// Corporate customer (rendered as `customer` instead of `customer_id`).
    #[serde(skip)]
    pub corporate: Option<MockCorporate>,
    /// Contact person of a corporate order: an ordinary customer (rendered as `contact`).
    #[serde(skip)]
    pub contact_id: Option<i64>,
    /// Payments keyed by id: rendered `{}`/object on lists, a list in `created` snapshots.
    #[serde(skip)]
    pub payments: BTreeMap<String, MockPayment>,
    /// Custom fields (`[]` when none).
    pub custom_fields: PhpMap,
}

impl MockOrder {
    /// The exact total as the client should decode it.
    pub fn total(&self) -> BigDecimal {
        self.total_summ.to_decimal()
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Number of orders.
    pub orders: u64,
    /// Number of customers.
    pub customers: u64,
    /// Seed: the same seed gives the same account.
    pub seed: u64,
    /// Store code.
    pub site: String,
    /// Account timezone.
    pub timezone: chrono_tz::Tz,
    /// Where the generated account ends (`None`: the start of the current hour in
    /// `timezone`).
    pub anchor: Option<NaiveDateTime>,
}

const MALE_FIRST: &[&str] = &[
    "Иван",
    "Пётр",
    "Алексей",
    "Дмитрий",
    "Сергей",
    "Андрей",
    "Михаил",
    "Никита",
    "Артём",
    "Юрий",
];
const FEMALE_FIRST: &[&str] = &[
    "Анна",
    "Мария",
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Ксения",
    "Дарья",
    "Юлия",
    "Алёна",
];
const SURNAME_STEMS: &[&str] = &[
    "Иванов",
    "Петров",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Соколов",
    "Лебедев",
    "Козлов",
    "Новиков",
    "Морозов",
    "Волков",
    "Зайцев",
    "Соловьёв",
    "Васильев",
    "Фёдоров",
];
const PATRONYMIC_M: &[&str] = &["Иванович", "Петрович", "Сергеевич", "Андреевич"];
const PATRONYMIC_F: &[&str] = &["Ивановна", "Петровна", "Сергеевна", "Андреевна"];
const LATIN: &[&str] = &[
    "ivan", "petr", "alex", "dima", "sergey", "anna", "masha", "lena", "olga", "natasha", "ksu",
];
const DOMAINS: &[&str] = &["mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru"];

/// A phone in one of the formats people type: `+7 (912) 345-67-89`, `89123456789`,
/// `9123456789`, `8 912 345 67 89`, `+79123456789`.
pub fn format_phone(digits10: u64, style: u32) -> String {
    let s = format!("{digits10:010}");
    let (a, b, c, d) = (&s[0..3], &s[3..6], &s[6..8], &s[8..10]);
    match style % 5 {
        0 => format!("+7 ({a}) {b}-{c}-{d}"),
        1 => format!("8{s}"),
        2 => s.clone(),
        3 => format!("8 {a} {b} {c} {d}"),
        _ => format!("+7{s}"),
    }
}

/// Formats a wall time as RetailCRM does.
pub fn fmt_time(t: NaiveDateTime) -> String {
    t.format(crate::crm::decode::CRM_DATETIME_FORMAT)
        .to_string()
}

struct Person {
    first: String,
    last: String,
    patronymic: Option<String>,
}

fn person(rng: &mut StdRng) -> Person {
    let female = rng.random_bool(0.5);
    let stem = SURNAME_STEMS[rng.random_range(0..SURNAME_STEMS.len())];
    if female {
        Person {
            first: FEMALE_FIRST[rng.random_range(0..FEMALE_FIRST.len())].to_string(),
            last: format!("{stem}а"),
            patronymic: rng
                .random_bool(0.4)
                .then(|| PATRONYMIC_F[rng.random_range(0..PATRONYMIC_F.len())].to_string()),
        }
    } else {
        Person {
            first: MALE_FIRST[rng.random_range(0..MALE_FIRST.len())].to_string(),
            last: stem.to_string(),
            patronymic: rng
                .random_bool(0.4)
                .then(|| PATRONYMIC_M[rng.random_range(0..PATRONYMIC_M.len())].to_string()),
        }
    }
}

fn phone_digits(rng: &mut StdRng) -> u64 {
    9_000_000_000 + rng.random_range(0..1_000_000_000u64)
}

/// A random amount: mostly with kopecks, some round, some zero.
pub fn random_amount(rng: &mut StdRng) -> Kopecks {
    match rng.random_range(0..10) {
        0 => Kopecks(0),
        1 | 2 => Kopecks(rng.random_range(1..2000) * 100),
        3 => Kopecks(rng.random_range(1..2000) * 100 + 50),
        _ => Kopecks(rng.random_range(100..50_000_000)),
    }
}

/// A new customer with generated contact data.
pub fn random_customer(rng: &mut StdRng, id: i64, site: &str, created_at: String) -> MockCustomer {
    let p = person(rng);
    let email = match rng.random_range(0..20) {
        0 | 1 => None,
        2 => Some(String::new()),
        3 | 4 => Some(format!("family{}@{}", rng.random_range(0..50), DOMAINS[0])),
        5 => Some(format!(
            "  {}.{id}@{}  ",
            LATIN[rng.random_range(0..LATIN.len())].to_uppercase(),
            DOMAINS[rng.random_range(0..DOMAINS.len())].to_uppercase()
        )),
        _ => Some(format!(
            "{}.{id}@{}",
            LATIN[rng.random_range(0..LATIN.len())],
            DOMAINS[rng.random_range(0..DOMAINS.len())]
        )),
    };
    let n_phones = match rng.random_range(0..10) {
        0 | 1 => 0,
        2 => 2,
        _ => 1,
    };
    let phones = (0..n_phones)
        .map(|_| MockPhone {
            number: format_phone(phone_digits(rng), rng.random_range(0..5)),
        })
        .collect();
    let mut custom_fields = PhpMap::default();
    if rng.random_bool(0.1) {
        custom_fields
            .0
            .insert("galkatrue".into(), serde_json::Value::Bool(true));
    }
    MockCustomer {
        kind: "customer",
        id,
        external_id: rng.random_bool(0.5).then(|| format!("c-{id}")),
        site: site.to_string(),
        created_at,
        first_name: Some(p.first),
        last_name: Some(p.last),
        patronymic: p.patronymic,
        email,
        phones,
        vip: rng.random_bool(0.05),
        bad: rng.random_bool(0.02),
        custom_fields,
    }
}

/// A new order: linked to `customer` (copying its contact data), a guest with contact data, or
/// a guest with none.
pub fn random_order(
    rng: &mut StdRng,
    id: i64,
    site: &str,
    created_at: String,
    customer: Option<&MockCustomer>,
    status: &str,
) -> MockOrder {
    let (first_name, last_name, email, phone, customer_id) = match customer {
        Some(c) => {
            let phone = c.phones.first().map(|p| {
                // Same phone, sometimes typed differently on the order.
                if rng.random_bool(0.3) {
                    let digits: String =
                        p.number.chars().filter(|ch| ch.is_ascii_digit()).collect();
                    let tail = &digits[digits.len().saturating_sub(10)..];
                    tail.parse::<u64>()
                        .map(|d| format_phone(d, rng.random_range(0..5)))
                        .unwrap_or_else(|_| p.number.clone())
                } else {
                    p.number.clone()
                }
            });
            (
                c.first_name.clone(),
                c.last_name.clone(),
                c.email.clone().filter(|e| !e.is_empty()),
                phone,
                Some(c.id),
            )
        }
        None if rng.random_bool(0.5) => {
            let p = person(rng);
            (
                Some(p.first),
                Some(p.last),
                rng.random_bool(0.7).then(|| {
                    format!(
                        "guest{}@{}",
                        rng.random_range(0..100_000),
                        DOMAINS[rng.random_range(0..DOMAINS.len())]
                    )
                }),
                rng.random_bool(0.7)
                    .then(|| format_phone(phone_digits(rng), rng.random_range(0..5))),
                None,
            )
        }
        None => (None, None, None, None, None),
    };
    let total = random_amount(rng);
    let mut payments = BTreeMap::new();
    if rng.random_bool(0.4) {
        let pid = id * 10 + 1;
        payments.insert(
            pid.to_string(),
            MockPayment {
                id: pid,
                kind: if rng.random_bool(0.5) {
                    "bank-card"
                } else {
                    "cash"
                }
                .to_string(),
                status: if rng.random_bool(0.6) {
                    "paid"
                } else {
                    "not-paid"
                }
                .to_string(),
                amount: total,
            },
        );
    }
    let mut custom_fields = PhpMap::default();
    if rng.random_bool(0.1) {
        custom_fields.0.insert(
            "moyskladexternalid".into(),
            serde_json::Value::String(format!("ms-{id}")),
        );
    }
    MockOrder {
        id,
        number: format!("{id}A"),
        external_id: rng.random_bool(0.3).then(|| format!("o-{id}")),
        site: site.to_string(),
        status: status.to_string(),
        status_updated_at: created_at.clone(),
        created_at,
        order_type: "eshop-individual",
        order_method: if rng.random_bool(0.5) {
            "shopping-cart"
        } else {
            "phone"
        },
        first_name,
        last_name,
        email,
        phone,
        summ: total,
        total_summ: total,
        currency: "RUB",
        customer_id,
        corporate: None,
        contact_id: None,
        payments,
        custom_fields,
    }
}

/// Makes `o` a corporate order (about [`CORPORATE_SHARE`] of them): its customer becomes the
/// contact of a corporate customer (or it has no contact).
fn maybe_corporate(rng: &mut StdRng, o: &mut MockOrder, corporate_ids: i64) {
    if !rng.random_bool(CORPORATE_SHARE) {
        return;
    }
    let id = rng.random_range(1..=corporate_ids);
    let name = COMPANY_NAMES[(id as usize) % COMPANY_NAMES.len()];
    o.corporate = Some(MockCorporate {
        kind: "customer_corporate",
        id,
        nick_name: format!("ООО \"{name} {id}\""),
    });
    let with_contact = rng.random_bool(2.0 / 3.0);
    o.contact_id = o.customer_id.take().filter(|_| with_contact);
}

/// Builds the account for `cfg`: customers, then orders, each with its `created` history record;
/// then some status changes and deletions so the history has every kind of record.
pub fn generate(cfg: &GenConfig) -> MockState {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut b2b = StdRng::seed_from_u64(cfg.seed ^ 0xb2b0_b2b0);
    let mut state = MockState::empty(cfg.site.clone(), cfg.seed);
    state.clock = super::clock::Clock::real(cfg.timezone);
    let anchor = cfg
        .anchor
        .unwrap_or_else(|| super::clock::hour_anchor(cfg.timezone));
    // Generated changes take the last `window` seconds before the anchor (at most 20 hours,
    // at most 90 s apart); customers and orders are spread over the year before that.
    let changes = (cfg.orders / 20) as usize;
    let deletions = (cfg.orders / 200) as usize;
    let n = (changes + deletions + 1) as i64;
    let window: i64 = (n * 90).min(20 * 3600);
    let start = anchor - ChronoDuration::days(365);
    let statuses = all_status_codes();
    let span_secs: i64 = 365 * 24 * 3600 - window;
    let n_c = cfg.customers.max(1) as i64;
    for i in 1..=cfg.customers as i64 {
        // Roughly increasing in id, with jitter: createdAt is not monotonic in id.
        let t = start + ChronoDuration::seconds(span_secs * i / n_c)
            - ChronoDuration::seconds(rng.random_range(0..600));
        let c = random_customer(&mut rng, i, &cfg.site, fmt_time(t));
        state.insert_customer(c, "user", t);
    }
    let corporate_ids = (cfg.customers as i64) / 20 + 1;
    let n_o = cfg.orders.max(1) as i64;
    for j in 1..=cfg.orders as i64 {
        let t = start + ChronoDuration::seconds(span_secs * j / n_o)
            - ChronoDuration::seconds(rng.random_range(0..600));
        let customer = if cfg.customers > 0 && rng.random_bool(0.7) {
            let cid = rng.random_range(1..=cfg.customers as i64);
            state.customers.get(&cid).cloned()
        } else {
            None
        };
        let status = statuses[rng.random_range(0..statuses.len())];
        let mut o = random_order(
            &mut rng,
            j,
            &cfg.site,
            fmt_time(t),
            customer.as_deref(),
            status,
        );
        maybe_corporate(&mut b2b, &mut o, corporate_ids);
        state.insert_order(o, "user", t);
    }
    // Some later changes so history has field records and deletions, at most 90 s apart (so
    // their createdAt, which lags by up to 5 minutes, has inversions), ending before the anchor.
    let step = (window / n).clamp(1, 90);
    state
        .clock
        .simulate(anchor - ChronoDuration::seconds(window), step);
    for _ in 0..changes {
        let id = rng.random_range(1..=cfg.orders as i64);
        let status = statuses[rng.random_range(0..statuses.len())];
        state.set_order_status(id, status, "user");
    }
    for _ in 0..deletions {
        let id = rng.random_range(1..=cfg.orders as i64);
        state.delete_order(id, "user");
    }
    state.clock.use_real();
    state
}

/// Shares a customer for rendering.
pub type CustomerRef = Arc<MockCustomer>;
