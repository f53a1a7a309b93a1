//! Shared fixtures of the sync end-to-end tests: a fresh Postgres database, an in-process mock
//! RetailCRM account, an integration pointing at it, and independent expectations (status
//! table, contact resolution) to compare Postgres against the mock's truth.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use bigdecimal::BigDecimal;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel_async::RunQueryDsl;
use retailcrm_sync::crm::{ClientOptions, CrmClient};
use retailcrm_sync::mock::data::DEFAULT_STATUS_GROUPS;
use retailcrm_sync::mock::state::HistKind;
use retailcrm_sync::mock::{MockConfig, MockCrm, MockCustomer, MockHandle, MockOrder};
use retailcrm_sync::model::{OrderStatus, normalize_email, normalize_phone};
use retailcrm_sync::secret::ApiKey;
use retailcrm_sync::store::{Integration, NewIntegration, Store};
use retailcrm_sync::sync::{Engine, JobSpec, Progress, RunCounts, SyncError};

use crate::common::pg::TestDb;

/// The project every test syncs.
pub const PROJECT: i64 = 7;

/// One test's world.
pub struct World {
    pub db: TestDb,
    pub store: Store,
    pub mock: Arc<MockHandle>,
    pub client: CrmClient,
    pub integration: Integration,
    pub page_size: u32,
}

/// Options of a world.
pub struct Spec {
    pub orders: u64,
    pub customers: u64,
    pub seed: u64,
    pub page_size: u32,
    pub mapping: HashMap<String, OrderStatus>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            orders: 600,
            customers: 200,
            seed: 11,
            page_size: 50,
            mapping: HashMap::new(),
        }
    }
}

/// A client without pacing (the mock has no rate limit unless a test sets one).
pub fn client_for(mock: &MockHandle) -> CrmClient {
    CrmClient::new(
        &mock.url,
        ApiKey::new(mock.api_key.clone()),
        ClientOptions {
            requests_per_second: 0.0,
            ..ClientOptions::default()
        },
    )
    .expect("client for the mock")
}

impl World {
    pub async fn new(spec: Spec) -> World {
        let mock = MockCrm::start(MockConfig {
            orders: spec.orders,
            customers: spec.customers,
            seed: spec.seed,
            ..MockConfig::default()
        })
        .await
        .expect("mock starts");
        World::with_mock(Arc::new(mock), spec.page_size, spec.mapping).await
    }

    /// A fresh database syncing from an existing mock.
    pub async fn with_mock(
        mock: Arc<MockHandle>,
        page_size: u32,
        mapping: HashMap<String, OrderStatus>,
    ) -> World {
        let db = TestDb::new().await;
        let store = db.store().await;
        let integration = store
            .upsert_integration(&NewIntegration {
                project_id: PROJECT,
                project_name: Some("shop".into()),
                api_url: mock.url.clone(),
                api_key: ApiKey::new(mock.api_key.clone()),
                is_active: true,
                sync_orders: true,
                sync_customers: true,
                sync_interval_minutes: 5,
                status_mapping: mapping,
                orders_created_from: None,
                default_phone_country: None,
            })
            .await
            .expect("integration");
        let client = client_for(&mock);
        World {
            db,
            store,
            mock,
            client,
            integration,
            page_size,
        }
    }

    pub fn engine(&self) -> Engine {
        Engine::new(
            self.store.clone(),
            self.client.clone(),
            self.integration.clone(),
            self.page_size,
        )
    }

    pub async fn run(&self, job: JobSpec) -> Result<RunCounts, SyncError> {
        self.engine().run(job, &Progress::new()).await
    }

    pub async fn sync_all(&self) -> RunCounts {
        self.run(JobSpec::All { since_id: None })
            .await
            .expect("sync succeeds")
    }

    /// `sync_all`, retried on `Conflict` as the queue would (a killed run's last batch commit
    /// may still land after the next run read the cursor).
    pub async fn sync_all_retrying(&self) -> RunCounts {
        for _ in 0..5 {
            match self.run(JobSpec::All { since_id: None }).await {
                Ok(c) => return c,
                Err(SyncError::Conflict { .. }) => continue,
                Err(e) => panic!("sync failed: {e}"),
            }
        }
        panic!("five conflicts in a row with no other run going")
    }

    /// Requests per route served by the mock so far.
    pub fn routes(&self) -> BTreeMap<String, u64> {
        self.mock.stats().by_endpoint
    }

    pub async fn orders(&self) -> Vec<DbOrder> {
        db_orders(&self.db).await
    }

    pub async fn users(&self) -> Vec<DbUser> {
        db_users(&self.db).await
    }
}

/// `after - before` per route, without zero entries.
pub fn route_diff(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// An order row joined with its user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, QueryableByName)]
pub struct DbOrder {
    #[diesel(sql_type = BigInt)]
    pub rid: i64,
    #[diesel(sql_type = Text)]
    pub number: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub retailcrm_status: Option<String>,
    #[diesel(sql_type = Text)]
    pub total: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub currency: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub ordered_at: Option<String>,
    #[diesel(sql_type = Bool)]
    pub deleted: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub user_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub user_email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub user_phone: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub user_cid: Option<i64>,
}

impl DbOrder {
    /// The row without database ids (for comparing two databases).
    pub fn portable(&self) -> DbOrder {
        DbOrder {
            user_id: None,
            ..self.clone()
        }
    }
}

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, QueryableByName)]
pub struct DbUser {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub phone: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub cid: Option<i64>,
    #[diesel(sql_type = Bool)]
    pub deleted: bool,
}

pub async fn db_orders(db: &TestDb) -> Vec<DbOrder> {
    let mut conn = db.conn().await;
    diesel::sql_query(
        "SELECT o.retailcrm_order_id AS rid, o.order_number AS number, o.status, \
         o.retailcrm_status, o.total_amount::text AS total, o.currency, \
         to_char(o.ordered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS ordered_at, \
         o.deleted_at IS NOT NULL AS deleted, o.user_id, u.email AS user_email, \
         u.phone AS user_phone, u.retailcrm_customer_id AS user_cid \
         FROM orders o LEFT JOIN users u ON u.id = o.user_id \
         WHERE o.project_id = $1 ORDER BY o.retailcrm_order_id",
    )
    .bind::<BigInt, _>(PROJECT)
    .load(&mut conn)
    .await
    .expect("read orders")
}

pub async fn db_users(db: &TestDb) -> Vec<DbUser> {
    let mut conn = db.conn().await;
    diesel::sql_query(
        "SELECT id, email, phone, retailcrm_customer_id AS cid, deleted_at IS NOT NULL AS deleted \
         FROM users WHERE project_id = $1 ORDER BY id",
    )
    .bind::<BigInt, _>(PROJECT)
    .load(&mut conn)
    .await
    .expect("read users")
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub async fn count(db: &TestDb, sql: &str) -> i64 {
    let mut conn = db.conn().await;
    let rows: Vec<N> = diesel::sql_query(sql)
        .load(&mut conn)
        .await
        .expect("count query");
    rows.into_iter().next().map_or(0, |r| r.n)
}

pub async fn exec(db: &TestDb, sql: &str) {
    let mut conn = db.conn().await;
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .expect("statement");
}

/// The platform status the design says a RetailCRM status code maps to, written out here
/// independently of `model::map_status`: integration mapping (code), the seed's table, then
/// the code's group (mapping, then table). `None`: unmapped.
pub fn expected_status(code: &str, mapping: &HashMap<String, OrderStatus>) -> Option<OrderStatus> {
    fn seed(code: &str) -> Option<OrderStatus> {
        match code {
            "new" => Some(OrderStatus::Pending),
            "acceptance" | "approval" => Some(OrderStatus::Confirmed),
            "assembling" => Some(OrderStatus::Processing),
            "delivery" => Some(OrderStatus::Shipped),
            "complete" => Some(OrderStatus::Delivered),
            "cancel" => Some(OrderStatus::Cancelled),
            "refund" => Some(OrderStatus::Refunded),
            _ => None,
        }
    }
    if let Some(s) = mapping.get(code) {
        return Some(*s);
    }
    if let Some(s) = seed(code) {
        return Some(s);
    }
    let group = DEFAULT_STATUS_GROUPS
        .iter()
        .find(|(_, _, _, sts)| sts.iter().any(|(c, _)| *c == code))
        .map(|(g, _, _, _)| *g)?;
    mapping.get(group).copied().or_else(|| seed(group))
}

/// The contact an order carries: `(customer id, e-mail, phone)`, normalised, order fields first.
pub fn order_contact(
    o: &MockOrder,
    customers: &HashMap<i64, &MockCustomer>,
) -> (Option<i64>, Option<String>, Option<String>) {
    // A corporate order's person is its contact (the corporate id is another id space).
    let person = o.customer_id.or(o.contact_id);
    let customer = person.and_then(|id| customers.get(&id)).copied();
    let email = o
        .email
        .as_deref()
        .and_then(normalize_email)
        .or_else(|| customer.and_then(|c| c.email.as_deref().and_then(normalize_email)));
    let phone = o.phone.as_deref().and_then(normalize_phone).or_else(|| {
        customer.and_then(|c| c.phones.iter().find_map(|p| normalize_phone(&p.number)))
    });
    (customer.map(|c| c.id), email, phone)
}

/// What a comparison found.
#[derive(Debug, Default)]
pub struct Coverage {
    pub orders: usize,
    pub guest_no_contact: usize,
    pub guest_with_contact: usize,
    pub linked: usize,
    pub customers_own_user: usize,
    pub customers_merged: usize,
    /// Orders linked to the user they resolved to before a customer edit.
    pub stale_links: usize,
    /// Customers left without a user after the user they were merged into changed.
    pub orphaned_by_edit: usize,
}

/// Asserts Postgres holds exactly the mock's live orders and customers.
///
/// `previous`: platform statuses of orders whose code is unmapped (they keep what they had;
/// PENDING when absent).
pub async fn assert_level_with_mock(
    world: &World,
    mapping: &HashMap<String, OrderStatus>,
    previous: &HashMap<i64, OrderStatus>,
) -> Coverage {
    let mock_orders = world.mock.orders_snapshot();
    let mock_customers = world.mock.customers_snapshot();
    let customers: HashMap<i64, &MockCustomer> = mock_customers.iter().map(|c| (c.id, c)).collect();
    let rows = world.orders().await;
    let users = world.users().await;
    let mut cov = Coverage::default();
    // Customers edited after they were created (by mutations; the generator edits none).
    let edited: HashSet<i64> = world
        .mock
        .state()
        .customer_history
        .iter()
        .filter(|h| matches!(h.kind, HistKind::Field { .. }))
        .map(|h| h.entity.id)
        .collect();
    // E-mails and phones that edits took away from a customer (normalised).
    let edited_away: HashSet<String> = {
        let st = world.mock.state();
        let mut out = HashSet::new();
        for h in &st.customer_history {
            if let HistKind::Field { field, old, .. } = &h.kind {
                match field.as_str() {
                    "email" => {
                        if let Some(e) = old.as_str().and_then(normalize_email) {
                            out.insert(e);
                        }
                    }
                    "phones" => {
                        for p in old.as_array().into_iter().flatten() {
                            if let Some(n) = p["number"].as_str().and_then(normalize_phone) {
                                out.insert(n);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    };

    // No duplicate orders, no duplicate users per customer id, e-mail or phone.
    let mut seen = HashSet::new();
    for r in &rows {
        assert!(seen.insert(r.rid), "order {} stored twice", r.rid);
    }
    for (what, keys) in [
        (
            "customer id",
            users
                .iter()
                .filter_map(|u| u.cid.map(|c| c.to_string()))
                .collect::<Vec<_>>(),
        ),
        (
            "e-mail",
            users.iter().filter_map(|u| u.email.clone()).collect(),
        ),
        (
            "phone",
            users.iter().filter_map(|u| u.phone.clone()).collect(),
        ),
    ] {
        let mut s = HashSet::new();
        for k in keys {
            assert!(s.insert(k.clone()), "two users share the {what} {k}");
        }
    }

    let by_rid: HashMap<i64, &DbOrder> = rows.iter().map(|r| (r.rid, r)).collect();
    let live: HashSet<i64> = mock_orders.iter().map(|o| o.id).collect();
    for r in &rows {
        assert_eq!(
            r.deleted,
            !live.contains(&r.rid),
            "order {}: deleted in Postgres = {}, but the mock {} it",
            r.rid,
            r.deleted,
            if live.contains(&r.rid) {
                "has"
            } else {
                "lacks"
            }
        );
    }
    let users_by_cid: HashMap<i64, &DbUser> =
        users.iter().filter_map(|u| u.cid.map(|c| (c, u))).collect();
    let users_by_email: HashMap<&str, &DbUser> = users
        .iter()
        .filter_map(|u| u.email.as_deref().map(|e| (e, u)))
        .collect();
    let users_by_phone: HashMap<&str, &DbUser> = users
        .iter()
        .filter_map(|u| u.phone.as_deref().map(|p| (p, u)))
        .collect();

    for o in &mock_orders {
        cov.orders += 1;
        let r = by_rid
            .get(&o.id)
            .unwrap_or_else(|| panic!("mock order {} ({}) is not in Postgres", o.id, o.number));
        assert_eq!(r.number, o.number, "order {} number", o.id);
        assert_eq!(
            r.retailcrm_status.as_deref(),
            Some(o.status.as_str()),
            "order {} raw status",
            o.id
        );
        let want = expected_status(&o.status, mapping)
            .or_else(|| previous.get(&o.id).copied())
            .unwrap_or(OrderStatus::Pending);
        assert_eq!(
            r.status,
            want.as_str(),
            "order {} with code {:?}",
            o.id,
            o.status
        );
        let total = BigDecimal::from_str(&r.total).expect("numeric total");
        assert_eq!(total, o.total(), "order {} total", o.id);
        assert_eq!(r.currency.as_deref(), Some("RUB"));
        assert!(r.ordered_at.is_some(), "order {} ordered_at", o.id);

        let (cid, email, phone) = order_contact(o, &customers);
        if cid.is_none() && email.is_none() && phone.is_none() {
            cov.guest_no_contact += 1;
            assert_eq!(r.user_id, None, "order {} has no contact: no user", o.id);
            continue;
        }
        if cid.is_some() {
            cov.linked += 1;
        } else {
            cov.guest_with_contact += 1;
        }
        // Resolution: customer id, then e-mail, then phone.
        let expected = cid
            .and_then(|c| users_by_cid.get(&c))
            .or_else(|| email.as_deref().and_then(|e| users_by_email.get(e)))
            .or_else(|| phone.as_deref().and_then(|p| users_by_phone.get(p)))
            .copied();
        let actual = users
            .iter()
            .find(|u| Some(u.id) == r.user_id)
            .unwrap_or_else(|| panic!("order {} with a contact has no user", o.id));
        if expected.map(|e| e.id) != Some(actual.id)
            && (cid.is_some_and(|c| edited.contains(&c))
                || actual.cid.is_some_and(|c| edited.contains(&c)))
        {
            // A customer involved was edited after the order was written: the order keeps the
            // user it was resolved to then (see the engine's module doc). It must still be
            // that user's by some key, or the user's own customer was the one edited away.
            assert!(
                actual.cid == cid
                    || (email.is_some() && actual.email == email)
                    || (phone.is_some() && actual.phone == phone)
                    || actual.cid.is_some_and(|c| edited.contains(&c)),
                "order {} linked to user {actual:?} that matches none of {cid:?} {email:?} \
                 {phone:?}",
                o.id
            );
            cov.stale_links += 1;
            continue;
        }
        let expected = expected.unwrap_or_else(|| {
            panic!(
                "order {}: no user matches its contact {cid:?} {email:?} {phone:?}",
                o.id
            )
        });
        assert_eq!(
            actual.id, expected.id,
            "order {} linked to the wrong user {actual:?}, expected {expected:?} (contact \
             {cid:?} {email:?} {phone:?})",
            o.id
        );
        assert_eq!(
            (&r.user_email, &r.user_phone),
            (&expected.email, &expected.phone)
        );
    }
    assert_eq!(
        rows.iter().filter(|r| !r.deleted).count(),
        mock_orders.len(),
        "live orders in Postgres vs the mock"
    );

    for c in &mock_customers {
        let email = c.email.as_deref().and_then(normalize_email);
        let phone = c.phones.iter().find_map(|p| normalize_phone(&p.number));
        match users_by_cid.get(&c.id) {
            Some(u) => {
                cov.customers_own_user += 1;
                assert!(!u.deleted, "customer {} user is deleted", c.id);
                // The owner gets the customer's values unless another user already holds them.
                if let Some(e) = &email {
                    assert!(
                        u.email.as_ref() == Some(e)
                            || users_by_email.get(e.as_str()).is_some_and(|o| o.id != u.id),
                        "customer {} e-mail {e} is neither on its user ({:?}) nor on another",
                        c.id,
                        u.email
                    );
                }
                if let Some(p) = &phone {
                    assert!(
                        u.phone.as_ref() == Some(p)
                            || users_by_phone.get(p.as_str()).is_some_and(|o| o.id != u.id),
                        "customer {} phone {p} is neither on its user ({:?}) nor on another",
                        c.id,
                        u.phone
                    );
                }
            }
            None => {
                // Merged into the user holding its e-mail or phone.
                cov.customers_merged += 1;
                let merged = email
                    .as_deref()
                    .and_then(|e| users_by_email.get(e))
                    .or_else(|| phone.as_deref().and_then(|p| users_by_phone.get(p)));
                if merged.is_none()
                    && (email.as_ref().is_some_and(|e| edited_away.contains(e))
                        || phone.as_ref().is_some_and(|p| edited_away.contains(p)))
                {
                    // It had been merged into a user whose own customer then changed this
                    // e-mail/phone away; the store keeps no link of the merged customer, so it
                    // has no user until it changes itself (store limitation, see the report).
                    cov.orphaned_by_edit += 1;
                    continue;
                }
                assert!(
                    merged.is_some(),
                    "customer {} ({email:?}, {phone:?}) has no user at all",
                    c.id
                );
            }
        }
    }
    cov
}
