//! Phones and corporate orders through mapping and the store against a real Postgres (one
//! fresh database per test): numbers from abroad are other people, a corporate customer's id
//! never links an order, `integration ... --phone-country` and `phones renormalize` end to end.

use crate::common;

use std::process::{Command, Output, Stdio};

use common::pg::TestDb;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;
use retailcrm_sync::crm::types::{Customer, Order};
use retailcrm_sync::model::{PhoneCountry, Stream};
use retailcrm_sync::store::{Cursor, IntegrationPatch, NewIntegration, Store};
use retailcrm_sync::sync::mapping::{MappingContext, map_customer, map_order};

const P: i64 = 42;

async fn setup() -> (TestDb, Store) {
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut conn = db.conn().await;
    diesel::sql_query("INSERT INTO projects (id, name) VALUES (42, 'shop'), (43, 'other')")
        .execute(&mut conn)
        .await
        .unwrap();
    (db, store)
}

#[derive(QueryableByName, Debug, PartialEq, Eq, Clone)]
struct UserRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    phone: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    retailcrm_customer_id: Option<i64>,
}

async fn users(db: &TestDb, project_id: i64) -> Vec<UserRow> {
    let mut conn = db.conn().await;
    diesel::sql_query(format!(
        "SELECT id, phone, retailcrm_customer_id FROM users WHERE project_id = {project_id} \
         ORDER BY id"
    ))
    .load(&mut conn)
    .await
    .unwrap()
}

fn customer(json: serde_json::Value) -> Customer {
    serde_json::from_value(json).unwrap()
}

fn next(c: &Cursor, since: i64) -> Cursor {
    Cursor {
        since_id: Some(since),
        snapshot_page: None,
        snapshot_total: None,
        version: c.version,
        ..Cursor::default()
    }
}

fn ctx() -> MappingContext {
    MappingContext {
        timezone: chrono_tz::Europe::Moscow,
        status_mapping: Default::default(),
        status_groups: Default::default(),
        default_currency: Some("RUB".into()),
        phone_country: PhoneCountry::RU,
    }
}

#[tokio::test]
async fn a_vietnamese_and_a_russian_number_are_two_users() {
    let (db, store) = setup().await;
    let records: Vec<_> = [
        customer(serde_json::json!({"id": 1, "firstName": "Nguyen",
            "phones": [{"number": "+84 912 345 678"}]})),
        customer(serde_json::json!({"id": 2, "firstName": "Иван",
            "phones": [{"number": "+7 491 234-56-78"}]})),
    ]
    .iter()
    .map(|c| map_customer(c, PhoneCountry::RU).unwrap())
    .collect();
    let c0 = store.load_cursor(P, Stream::Customers).await.unwrap();
    let out = store
        .commit_customers(P, &c0, &next(&c0, 1), &records, &[], &[])
        .await
        .unwrap();
    assert_eq!(out.created, 2);
    let rows = users(&db, P).await;
    let got: Vec<(Option<&str>, Option<i64>)> = rows
        .iter()
        .map(|u| (u.phone.as_deref(), u.retailcrm_customer_id))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("84912345678"), Some(1)),
            (Some("74912345678"), Some(2))
        ]
    );

    // An order typed with the Vietnamese number goes to the Vietnamese customer's user.
    let order: Order = serde_json::from_value(serde_json::json!({
        "id": 900, "number": "900A", "status": "new", "totalSumm": 10,
        "phone": "+84 (912) 345-678",
    }))
    .unwrap();
    let (record, _) = map_order(&order, &ctx()).unwrap();
    let o0 = store.load_cursor(P, Stream::Orders).await.unwrap();
    store
        .commit_orders(P, &o0, &next(&o0, 1), &[record], &[], &[])
        .await
        .unwrap();
    let linked = order_user(&db, 900).await;
    assert_eq!(linked, Some(rows[0].id));
}

async fn order_user(db: &TestDb, rid: i64) -> Option<i64> {
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = Nullable<BigInt>)]
        user_id: Option<i64>,
    }
    let mut conn = db.conn().await;
    let rows: Vec<R> = diesel::sql_query(format!(
        "SELECT user_id FROM orders WHERE project_id = {P} AND retailcrm_order_id = {rid}"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "order {rid} is stored");
    rows[0].user_id
}

#[tokio::test]
async fn a_corporate_id_equal_to_a_customers_id_never_links_that_customer() {
    let (db, store) = setup().await;
    // Ordinary customer 7 (a private person) has a user.
    let person = map_customer(
        &customer(serde_json::json!({"id": 7, "email": "anna@example.ru",
            "phones": [{"number": "+7 912 000-00-07"}]})),
        PhoneCountry::RU,
    )
    .unwrap();
    let c0 = store.load_cursor(P, Stream::Customers).await.unwrap();
    store
        .commit_customers(P, &c0, &next(&c0, 1), &[person], &[], &[])
        .await
        .unwrap();
    let anna = users(&db, P).await[0].id;

    // Corporate customer 7 (another id space): one order with a contact person, one with only
    // the order's own e-mail, one with nothing at all.
    let orders: Vec<Order> = [
        serde_json::json!({"id": 1, "number": "1C", "status": "new", "totalSumm": 1,
            "customer": {"type": "customer_corporate", "id": 7, "nickName": "ООО Ромашка"},
            "contact": {"type": "customer", "id": 55, "email": "petr@romashka.ru",
                        "firstName": "Пётр"}}),
        serde_json::json!({"id": 2, "number": "2C", "status": "new", "totalSumm": 1,
            "email": "buyer@romashka.ru",
            "customer": {"type": "customer_corporate", "id": 7}}),
        serde_json::json!({"id": 3, "number": "3C", "status": "new", "totalSumm": 1,
            "customer": {"type": "customer_corporate", "id": 7, "nickName": "ООО Ромашка"}}),
    ]
    .into_iter()
    .map(|j| serde_json::from_value(j).unwrap())
    .collect();
    let records: Vec<_> = orders
        .iter()
        .map(|o| map_order(o, &ctx()).unwrap().0)
        .collect();
    let o0 = store.load_cursor(P, Stream::Orders).await.unwrap();
    store
        .commit_orders(P, &o0, &next(&o0, 1), &records, &[], &[])
        .await
        .unwrap();

    let rows = users(&db, P).await;
    let contact_user = rows
        .iter()
        .find(|u| u.retailcrm_customer_id == Some(55))
        .expect("the contact person became a user");
    assert_eq!(order_user(&db, 1).await, Some(contact_user.id));
    let buyer = order_user(&db, 2).await.expect("linked by its own e-mail");
    assert_ne!(buyer, anna);
    assert_eq!(
        rows.iter()
            .find(|u| u.id == buyer)
            .unwrap()
            .retailcrm_customer_id,
        None,
        "a user created from a corporate order's e-mail gets no customer id"
    );
    assert_eq!(order_user(&db, 3).await, None, "stored, linked to nobody");
    for rid in 1..=3 {
        assert_ne!(order_user(&db, rid).await, Some(anna), "order {rid}");
    }
}

#[tokio::test]
async fn the_default_phone_country_is_stored_patched_and_removed() {
    let (_db, store) = setup().await;
    let kz: PhoneCountry = "KZ".parse().unwrap();
    let saved = store
        .upsert_integration(&NewIntegration {
            project_id: P,
            project_name: None,
            api_url: "https://shop.retailcrm.ru".into(),
            api_key: retailcrm_sync::secret::ApiKey::new("k".to_string()),
            is_active: true,
            sync_orders: true,
            sync_customers: true,
            sync_interval_minutes: 60,
            status_mapping: Default::default(),
            orders_created_from: None,
            default_phone_country: Some(kz),
        })
        .await
        .unwrap();
    assert_eq!(saved.default_phone_country, Some(kz));
    let untouched = store
        .update_integration(
            P,
            &IntegrationPatch {
                sync_interval_minutes: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(untouched.default_phone_country, Some(kz));
    let removed = store
        .update_integration(
            P,
            &IntegrationPatch {
                default_phone_country: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(removed.default_phone_country, None);
}

fn run(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .args(args)
        .env("RETAILCRM_SYNC__DATABASE__URL", &db.url)
        .env_remove("RETAILCRM_SYNC_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn integration_phone_country_is_validated_and_listed() {
    let (db, store) = setup().await;
    let keyfile = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keyfile.path(), "SomeKey-123\n").unwrap();
    let add = run(
        &db,
        &[
            "integration",
            "add",
            "--project-id",
            "42",
            "--api-url",
            "https://shop.retailcrm.ru",
            "--api-key-file",
            keyfile.path().to_str().unwrap(),
            "--phone-country",
            "by",
        ],
    );
    assert!(add.status.success(), "{}", text(&add));
    let bad = run(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "42",
            "--phone-country",
            "Kazakhstan",
        ],
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("ISO 3166"), "{}", text(&bad));
    let set = run(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "42",
            "--phone-country",
            "kz",
        ],
    );
    assert!(set.status.success(), "{}", text(&set));
    let list = run(&db, &["integration", "list"]);
    assert!(text(&list).contains("phones KZ"), "{}", text(&list));
    let json = run(&db, &["integration", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["default_phone_country"], "KZ");
    let reset = run(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "42",
            "--phone-country",
            "account",
        ],
    );
    assert!(reset.status.success(), "{}", text(&reset));
    let i = store.get_integration(P).await.unwrap().unwrap();
    assert_eq!(i.default_phone_country, None);
    let list = run(&db, &["integration", "list"]);
    assert!(
        text(&list).contains("phones account's country"),
        "{}",
        text(&list)
    );
}

#[tokio::test]
async fn phones_renormalize_fixes_what_it_can_and_reports_collisions() {
    let (db, _store) = setup().await;
    let mut conn = db.conn().await;
    diesel::sql_query(
        "INSERT INTO users (id, project_id, phone, retailcrm_customer_id) VALUES \
         (1, 42, '89123456789123', 101), \
         (2, 42, '79123456789', 102), \
         (3, 42, '79001112233444', 103), \
         (4, 42, '3432123456', 104), \
         (5, 42, '74912345678', 105), \
         (6, 42, 'нет', 106), \
         (7, 43, '70291234567', 201), \
         (8, 43, '79161234567', NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // Project 43 is a Belarusian shop.
    diesel::sql_query(
        "INSERT INTO retailcrm_integrations (project_id, api_url, api_key, default_phone_country) \
         VALUES (43, 'https://by.retailcrm.ru', 'k', 'BY')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let before_42 = users(&db, 42).await;
    let before_43 = users(&db, 43).await;

    let dry = run(&db, &["phones", "renormalize"]);
    let out = text(&dry);
    assert!(dry.status.success(), "{out}");
    assert!(
        out.contains("user 3: 79001112233444 -> 79001112233"),
        "{out}"
    );
    assert!(out.contains("user 4: 3432123456 -> 73432123456"), "{out}");
    assert!(out.contains("user 7: 70291234567 -> 375291234567"), "{out}");
    assert!(
        out.contains("collision: users 1, 2 would share 79123456789"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert!(
        !out.contains("user 5:") && !out.contains("user 8:"),
        "{out}"
    );
    assert_eq!(users(&db, 42).await, before_42, "a dry run writes nothing");
    assert_eq!(users(&db, 43).await, before_43);

    let one = run(
        &db,
        &["phones", "renormalize", "--project-id", "43", "--apply"],
    );
    assert!(one.status.success(), "{}", text(&one));
    assert!(!text(&one).contains("project 42"), "{}", text(&one));
    assert_eq!(users(&db, 42).await, before_42, "only the named project");
    let by = users(&db, 43).await;
    assert_eq!(by[0].phone.as_deref(), Some("375291234567"));
    assert_eq!(by[1].phone.as_deref(), Some("79161234567"));

    let all = run(&db, &["phones", "renormalize", "--apply"]);
    assert!(all.status.success(), "{}", text(&all));
    let phones: Vec<(i64, Option<String>)> = users(&db, 42)
        .await
        .into_iter()
        .map(|u| (u.id, u.phone))
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        phones,
        vec![
            (1, s("89123456789123")), // collides with user 2: unchanged, reported
            (2, s("79123456789")),
            (3, s("79001112233")),
            (4, s("73432123456")),
            (5, s("74912345678")),
            (6, s("нет")),
        ]
    );
    // Applied changes are idempotent: a second dry run finds only the collision.
    let again = run(&db, &["phones", "renormalize"]);
    let out = text(&again);
    assert!(out.contains("0 would change, 1 collision(s)"), "{out}");

    let missing = run(&db, &["phones", "renormalize", "--project-id", "999"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(text(&missing).contains("project 999 does not exist"));
}
