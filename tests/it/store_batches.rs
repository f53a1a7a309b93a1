//! Store batch commits against a real Postgres (one fresh database per test).

use crate::common;

use std::str::FromStr;
use std::time::Instant;

use bigdecimal::BigDecimal;
use chrono::{TimeZone, Utc};
use common::pg::TestDb;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use retailcrm_sync::model::{CustomerRecord, OrderContact, OrderRecord, OrderStatus, Stream};
use retailcrm_sync::store::{Cursor, PoisonRecord, Store, StoreError};

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

fn contact(cid: Option<i64>, email: Option<&str>, phone: Option<&str>) -> OrderContact {
    OrderContact {
        customer_retailcrm_id: cid,
        email: email.map(str::to_string),
        phone: phone.map(str::to_string),
        first_name: Some("Иван".into()),
        last_name: Some("Петров".into()),
    }
}

fn order(id: i64, status: Option<OrderStatus>, c: OrderContact) -> OrderRecord {
    OrderRecord {
        retailcrm_id: id,
        number: format!("{id}A"),
        status,
        retailcrm_status: status.map_or("mystery".into(), |s| s.as_str().to_lowercase()),
        total_amount: BigDecimal::from_str(&format!("{id}.10")).unwrap(),
        currency: Some("RUB".into()),
        ordered_at: Some(Utc.timestamp_opt(1_700_000_000 + id, 123_456_789).unwrap()),
        contact: c,
    }
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

#[derive(QueryableByName, Debug, PartialEq)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    let rows: Vec<Count> = diesel::sql_query(sql).load(conn).await.unwrap();
    rows[0].n
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Snapshot {
    #[diesel(sql_type = Text)]
    row: String,
}

async fn snapshot(conn: &mut AsyncPgConnection) -> Vec<Snapshot> {
    diesel::sql_query(
        "SELECT row_to_json(x)::text AS row FROM (SELECT 'o' AS t, o.id, to_jsonb(o) AS j FROM orders o \
         UNION ALL SELECT 'u', u.id, to_jsonb(u) FROM users u) x ORDER BY t, id",
    )
    .load(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn rerunning_a_batch_changes_nothing() {
    let (db, store) = setup().await;
    let orders: Vec<OrderRecord> = (1..=50)
        .map(|i| {
            let e = format!("c{}@x.ru", i % 10);
            let p = format!("7900000000{}", i % 10);
            order(
                i,
                Some(OrderStatus::Confirmed),
                contact(Some(i % 10), Some(&e), Some(&p)),
            )
        })
        .collect();
    let c0 = Cursor::default();
    let first = store
        .commit_orders(P, &c0, &next(&c0, 10), &orders, &[], &[])
        .await
        .unwrap();
    assert_eq!(
        (first.created, first.updated, first.users_created),
        (50, 0, 10)
    );
    let mut conn = db.conn().await;
    let before = snapshot(&mut conn).await;
    let again = store
        .commit_orders(
            P,
            &first.cursor,
            &next(&first.cursor, 10),
            &orders,
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            again.created,
            again.updated,
            again.users_created,
            again.deleted
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(again.cursor.version, first.cursor.version + 1);
    assert_eq!(
        snapshot(&mut conn).await,
        before,
        "a repeated batch must not touch any row"
    );

    let customers: Vec<CustomerRecord> = (0..10)
        .map(|i| CustomerRecord {
            retailcrm_id: i,
            email: Some(format!("c{i}@x.ru")),
            phone: Some(format!("7900000000{i}")),
            first_name: Some("Иван".into()),
            last_name: Some("Петров".into()),
        })
        .collect();
    let cc = Cursor::default();
    let a = store
        .commit_customers(P, &cc, &next(&cc, 5), &customers, &[], &[])
        .await
        .unwrap();
    assert_eq!(
        (a.created, a.updated),
        (0, 0),
        "customers match the users orders created"
    );
    let before = snapshot(&mut conn).await;
    let b = store
        .commit_customers(P, &a.cursor, &next(&a.cursor, 5), &customers, &[], &[])
        .await
        .unwrap();
    assert_eq!((b.created, b.updated, b.deleted), (0, 0, 0));
    assert_eq!(snapshot(&mut conn).await, before);
}

#[tokio::test]
async fn thousand_orders_with_shared_customers_make_exactly_one_user_each() {
    let (db, store) = setup().await;
    // Customer k has cid 10_000+k, an e-mail and a phone; each order carries a different subset,
    // so users are found by customer id, by e-mail or by phone depending on the order.
    let all: Vec<OrderRecord> = (0..1000i64)
        .map(|i| {
            let k = i % 300;
            let (cid, email, phone) = (10_000 + k, format!("k{k}@shop.ru"), format!("7912{k:07}"));
            let c = match (i / 300) % 3 {
                0 => contact(Some(cid), Some(&email), Some(&phone)),
                1 => contact(None, Some(&email), Some(&phone)),
                _ => contact(Some(cid), None, Some(&phone)),
            };
            order(i + 1, Some(OrderStatus::Delivered), c)
        })
        .collect();
    let mut cursor = Cursor::default();
    let mut users_created = 0;
    let mut slowest = 0u128;
    let started = Instant::now();
    for (b, chunk) in all.chunks(100).enumerate() {
        let t = Instant::now();
        let out = store
            .commit_orders(P, &cursor, &next(&cursor, b as i64), chunk, &[], &[])
            .await
            .unwrap();
        slowest = slowest.max(t.elapsed().as_micros());
        assert_eq!(out.created, 100);
        users_created += out.users_created;
        cursor = out.cursor;
    }
    eprintln!(
        "10 batches of 100 orders: {} ms in total, slowest {slowest} us",
        started.elapsed().as_millis()
    );
    assert_eq!(users_created, 300);
    let mut conn = db.conn().await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM orders").await,
        1000
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM users").await,
        300
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM (SELECT email FROM users WHERE email IS NOT NULL GROUP BY project_id, email HAVING count(*) > 1) d").await,
        0
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM (SELECT phone FROM users WHERE phone IS NOT NULL GROUP BY project_id, phone HAVING count(*) > 1) d").await,
        0
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM orders WHERE user_id IS NULL"
        )
        .await,
        0
    );
    // every order of customer k points at the same user, and that user carries k's phone
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM orders o JOIN users u ON u.id = o.user_id \
             WHERE u.phone <> '7912' || lpad(((o.retailcrm_order_id - 1) % 300)::text, 7, '0')"
        )
        .await,
        0
    );
    assert_eq!(cursor.version, 10);
    assert_eq!(store.load_cursor(P, Stream::Orders).await.unwrap(), cursor);
}

#[tokio::test]
async fn order_without_contact_is_stored_without_user() {
    let (db, store) = setup().await;
    let c0 = Cursor::default();
    let out = store
        .commit_orders(
            P,
            &c0,
            &next(&c0, 1),
            &[order(7, None, OrderContact::default())],
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!((out.created, out.users_created), (1, 0));
    let mut conn = db.conn().await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM orders WHERE user_id IS NULL AND status = 'PENDING' AND retailcrm_status = 'mystery'").await,
        1
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM users").await, 0);
}

/// Injects a failure: inserting or updating an order with this number raises an error.
async fn fail_on_order_number(db: &TestDb, number: &str) {
    let mut conn = db.conn().await;
    diesel::sql_query(format!(
        "CREATE FUNCTION rcs_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.order_number = '{number}' THEN RAISE EXCEPTION 'injected failure'; END IF; \
         RETURN NEW; END $$"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(
        "CREATE TRIGGER rcs_test_fail BEFORE INSERT OR UPDATE ON orders \
         FOR EACH ROW EXECUTE FUNCTION rcs_test_fail()",
    )
    .execute(&mut conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_batch_failing_half_way_leaves_neither_rows_nor_cursor() {
    let (db, store) = setup().await;
    let c0 = Cursor::default();
    let good = store
        .commit_orders(
            P,
            &c0,
            &next(&c0, 1),
            &[order(1, None, contact(Some(1), Some("a@b.ru"), None))],
            &[],
            &[],
        )
        .await
        .unwrap();
    // Users are written and the cursor is moved before the orders insert, which then fails:
    // an injected trigger refuses order number "boom".
    fail_on_order_number(&db, "boom").await;
    let mut bad = order(
        2,
        None,
        contact(Some(2), Some("new@b.ru"), Some("79001112233")),
    );
    bad.number = "boom".into();
    let poison = PoisonRecord {
        stream: Stream::Orders,
        entity_id: Some(99),
        raw: serde_json::json!({"id": 99}),
        reason: "test".into(),
    };
    let err = store
        .commit_orders(
            P,
            &good.cursor,
            &next(&good.cursor, 2),
            &[order(3, None, OrderContact::default()), bad],
            &[1],
            &[poison],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Query { .. }), "{err}");
    let mut conn = db.conn().await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM orders").await,
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM orders WHERE deleted_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM users").await, 1);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM dead_records").await,
        0
    );
    assert_eq!(
        store.load_cursor(P, Stream::Orders).await.unwrap(),
        good.cursor
    );
}

#[tokio::test]
async fn a_moved_cursor_refuses_the_batch() {
    let (db, store) = setup().await;
    let c0 = Cursor::default();
    let a = store
        .commit_orders(
            P,
            &c0,
            &next(&c0, 5),
            &[order(1, None, OrderContact::default())],
            &[],
            &[],
        )
        .await
        .unwrap();
    // A second sync that read the cursor before `a` committed.
    let err = store
        .commit_orders(
            P,
            &c0,
            &next(&c0, 9),
            &[order(2, None, OrderContact::default())],
            &[],
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::CursorConflict { expected: 0, .. }),
        "{err}"
    );
    let stale = store
        .commit_orders(
            P,
            &c0,
            &next(&c0, 9),
            &[order(3, None, OrderContact::default())],
            &[],
            &[],
        )
        .await;
    assert!(stale.is_err());
    let b = store
        .commit_orders(P, &a.cursor, &next(&a.cursor, 6), &[], &[], &[])
        .await
        .unwrap();
    let err = store
        .commit_orders(
            P,
            &a.cursor,
            &next(&a.cursor, 7),
            &[order(4, None, OrderContact::default())],
            &[],
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::CursorConflict { expected: 1, .. }),
        "{err}"
    );
    let mut conn = db.conn().await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM orders").await,
        1
    );
    assert_eq!(
        store.load_cursor(P, Stream::Orders).await.unwrap(),
        b.cursor
    );
    assert_eq!(b.cursor.since_id, Some(6));

    // Concurrent commits from the same cursor: exactly one wins.
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            let from = b.cursor.clone();
            tokio::spawn(async move {
                store
                    .commit_orders(
                        P,
                        &from,
                        &next(&from, 100 + i),
                        &[order(
                            100 + i,
                            None,
                            contact(Some(5), Some("same@x.ru"), None),
                        )],
                        &[],
                        &[],
                    )
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::CursorConflict { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM orders").await,
        2
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM users").await, 1);
    // the other stream's cursor is independent
    assert_eq!(
        store.load_cursor(P, Stream::Customers).await.unwrap(),
        Cursor::default()
    );
}

#[tokio::test]
async fn unmapped_status_keeps_previous_and_deletion_round_trips() {
    let (db, store) = setup().await;
    let c0 = Cursor::default();
    let a = store
        .commit_orders(
            P,
            &c0,
            &next(&c0, 1),
            &[order(
                1,
                Some(OrderStatus::Shipped),
                OrderContact::default(),
            )],
            &[],
            &[],
        )
        .await
        .unwrap();
    let mut unmapped = order(1, None, OrderContact::default());
    unmapped.retailcrm_status = "weird-code".into();
    let b = store
        .commit_orders(P, &a.cursor, &next(&a.cursor, 2), &[unmapped], &[], &[])
        .await
        .unwrap();
    assert_eq!(b.updated, 1);
    let mut conn = db.conn().await;
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM orders WHERE status = 'SHIPPED' AND retailcrm_status = 'weird-code'").await, 1);
    let c = store
        .commit_orders(P, &b.cursor, &next(&b.cursor, 3), &[], &[1, 555], &[])
        .await
        .unwrap();
    assert_eq!(c.deleted, 1);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM orders WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
    let d = store
        .commit_orders(
            P,
            &c.cursor,
            &next(&c.cursor, 4),
            &[order(
                1,
                Some(OrderStatus::Delivered),
                OrderContact::default(),
            )],
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(d.updated, 1);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM orders WHERE deleted_at IS NULL AND status = 'DELIVERED' AND total_amount = 1.10").await, 1);
}

#[derive(QueryableByName, Debug, PartialEq)]
struct UserView {
    #[diesel(sql_type = Nullable<BigInt>)]
    retailcrm_customer_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    phone: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    first_name: Option<String>,
}

async fn view(conn: &mut AsyncPgConnection) -> Vec<UserView> {
    diesel::sql_query(
        "SELECT retailcrm_customer_id, email, phone, first_name FROM users ORDER BY id",
    )
    .load(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn customers_sharing_a_phone_do_not_flip_flop_one_user() {
    let (db, store) = setup().await;
    let cust = |id: i64, email: Option<&str>, phone: &str, name: &str| CustomerRecord {
        retailcrm_id: id,
        email: email.map(str::to_string),
        phone: Some(phone.to_string()),
        first_name: Some(name.to_string()),
        last_name: None,
    };
    let c0 = Cursor::default();
    // Same phone twice in one batch: one user; B is linked, only fills the NULL e-mail.
    let a = store
        .commit_customers(
            P,
            &c0,
            &next(&c0, 1),
            &[
                cust(1, None, "79990000001", "Anna"),
                cust(2, Some("b@x.ru"), "79990000001", "Boris"),
            ],
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(a.created, 1);
    let mut conn = db.conn().await;
    let expect = vec![UserView {
        retailcrm_customer_id: Some(1),
        email: Some("b@x.ru".into()),
        phone: Some("79990000001".into()),
        first_name: Some("Anna".into()),
    }];
    assert_eq!(view(&mut conn).await, expect);
    // B again with another name: the user belongs to customer 1, nothing changes.
    let b = store
        .commit_customers(
            P,
            &a.cursor,
            &next(&a.cursor, 2),
            &[cust(2, Some("b@x.ru"), "79990000001", "Boris2")],
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!((b.created, b.updated), (0, 0));
    assert_eq!(view(&mut conn).await, expect);
    // The owner renames: overwritten. A new customer with a taken e-mail gets no duplicate e-mail.
    let c = store
        .commit_customers(
            P,
            &b.cursor,
            &next(&b.cursor, 3),
            &[
                cust(1, None, "79990000001", "Anya"),
                cust(3, None, "79990000003", "Vera"),
            ],
            &[1],
            &[],
        )
        .await
        .unwrap();
    assert_eq!((c.created, c.updated), (1, 1));
    assert_eq!(
        c.deleted, 1,
        "deletions apply after the upserts of the same batch"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM users WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
    let d = store
        .commit_customers(
            P,
            &c.cursor,
            &next(&c.cursor, 4),
            &[cust(1, None, "79990000001", "Anya")],
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(d.updated, 1, "a re-listed customer is undeleted");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM users WHERE deleted_at IS NOT NULL"
        )
        .await,
        0
    );
    // Other projects are separate.
    let e = store
        .commit_customers(
            43,
            &Cursor::default(),
            &next(&Cursor::default(), 1),
            &[cust(1, None, "79990000001", "Anna")],
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(e.created, 1);
}

#[tokio::test]
async fn concurrent_customer_and_order_streams_never_duplicate_users() {
    let (db, store) = setup().await;
    // Both streams of one project see the same 200 people at the same time.
    let customers: Vec<CustomerRecord> = (0..200)
        .map(|k| CustomerRecord {
            retailcrm_id: 500 + k,
            email: Some(format!("p{k}@x.ru")),
            phone: Some(format!("7913{k:07}")),
            first_name: None,
            last_name: None,
        })
        .collect();
    let orders: Vec<OrderRecord> = (0..200)
        .map(|k| {
            let (e, p) = (format!("p{k}@x.ru"), format!("7913{k:07}"));
            order(k + 1, None, contact(None, Some(&e), Some(&p)))
        })
        .collect();
    let mut tasks = Vec::new();
    for chunk in 0..4 {
        let (s1, s2) = (store.clone(), store.clone());
        let cs = customers[chunk * 50..(chunk + 1) * 50].to_vec();
        let os = orders[chunk * 50..(chunk + 1) * 50].to_vec();
        tasks.push(tokio::spawn(async move {
            let mut c = s1.load_cursor(P, Stream::Customers).await.unwrap();
            loop {
                match s1
                    .commit_customers(P, &c, &next(&c, chunk as i64), &cs, &[], &[])
                    .await
                {
                    Ok(_) => break,
                    Err(StoreError::CursorConflict { .. }) => {
                        c = s1.load_cursor(P, Stream::Customers).await.unwrap()
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            let mut c = s2.load_cursor(P, Stream::Orders).await.unwrap();
            loop {
                match s2
                    .commit_orders(P, &c, &next(&c, chunk as i64), &os, &[], &[])
                    .await
                {
                    Ok(_) => break,
                    Err(StoreError::CursorConflict { .. }) => {
                        c = s2.load_cursor(P, Stream::Orders).await.unwrap()
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut conn = db.conn().await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM users").await,
        200
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM orders WHERE user_id IS NOT NULL"
        )
        .await,
        200
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM users WHERE retailcrm_customer_id IS NOT NULL"
        )
        .await,
        200,
        "every user ends linked to its customer"
    );
    assert_eq!(
        store
            .load_cursor(P, Stream::Customers)
            .await
            .unwrap()
            .version,
        4
    );
    assert_eq!(
        store.load_cursor(P, Stream::Orders).await.unwrap().version,
        4
    );
}

#[tokio::test]
async fn a_clashing_order_number_is_isolated_and_the_rest_applied() {
    let (db, store) = setup().await;
    let mut conn = db.conn().await;
    // An order the platform created itself (no RetailCRM id yet) is matched by its number.
    diesel::sql_query(
        "INSERT INTO orders (project_id, order_number, status) VALUES (42, '1A', 'CONFIRMED')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let c0 = Cursor::default();
    let a = store
        .commit_orders(
            P,
            &c0,
            &next(&c0, 1),
            &[order(1, None, OrderContact::default())],
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!((a.created, a.updated), (0, 1));
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM orders WHERE retailcrm_order_id = 1 AND status = 'CONFIRMED'"
        )
        .await,
        1
    );
    // RetailCRM order 2 now claims number 1A, and two orders in one batch claim 3A.
    let mut clash = order(2, None, OrderContact::default());
    clash.number = "1A".into();
    let mut twin = order(4, None, OrderContact::default());
    twin.number = "3A".into();
    let b = store
        .commit_orders(
            P,
            &a.cursor,
            &next(&a.cursor, 2),
            &[clash, order(3, None, OrderContact::default()), twin],
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!((b.created, b.isolated), (1, 2));
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM orders").await,
        2
    );
    let dead = store.dead_records(P, 10).await.unwrap();
    let mut ids: Vec<Option<i64>> = dead.iter().map(|d| d.entity_id).collect();
    ids.sort();
    assert_eq!(ids, [Some(2), Some(3)]);
}

#[tokio::test]
async fn nul_characters_from_crm_never_fail_a_batch() {
    let (db, store) = setup().await;
    let customers = [CustomerRecord {
        retailcrm_id: 1,
        email: Some("a@b.ru".into()),
        phone: None,
        first_name: Some("Nul\u{0}Name".into()),
        last_name: None,
    }];
    // Postgres refuses \u0000 in text and jsonb; the store strips it instead of failing the
    // batch (which would fail again on every retry and block the stream).
    let poison = PoisonRecord {
        stream: Stream::Customers,
        entity_id: Some(2),
        raw: serde_json::json!({"name": "nul\u{0}byte"}),
        reason: "bad\u{0}".into(),
    };
    let c0 = Cursor::default();
    let out = store
        .commit_customers(P, &c0, &next(&c0, 9), &customers, &[], &[poison])
        .await
        .unwrap();
    assert_eq!(out.created, 1);
    let mut o = order(5, None, contact(Some(1), None, None));
    o.number = "5\u{0}A".into();
    store
        .commit_orders(
            P,
            &Cursor::default(),
            &next(&Cursor::default(), 1),
            &[o],
            &[],
            &[],
        )
        .await
        .unwrap();
    let mut conn = db.conn().await;
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM users WHERE first_name = 'NulName'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM orders WHERE order_number = '5A'"
        )
        .await,
        1
    );
    let dead = store.dead_records(P, 5).await.unwrap();
    assert_eq!(
        (dead[0].raw["name"].as_str(), dead[0].reason.as_str()),
        (Some("nulbyte"), "bad")
    );
}

#[tokio::test]
async fn a_failing_customers_batch_leaves_neither_users_nor_cursor() {
    let (db, store) = setup().await;
    let mut conn = db.conn().await;
    // Injected failure at the last write of the batch (the poison insert).
    diesel::sql_query(
        "CREATE FUNCTION rcs_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         RAISE EXCEPTION 'injected failure'; END $$",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("CREATE TRIGGER t BEFORE INSERT ON dead_records FOR EACH ROW EXECUTE FUNCTION rcs_test_fail()")
        .execute(&mut conn)
        .await
        .unwrap();
    let customers = [CustomerRecord {
        retailcrm_id: 1,
        email: Some("a@b.ru".into()),
        phone: None,
        first_name: None,
        last_name: None,
    }];
    let poison = PoisonRecord {
        stream: Stream::Customers,
        entity_id: Some(2),
        raw: serde_json::json!({}),
        reason: "x".into(),
    };
    let c0 = Cursor::default();
    let err = store
        .commit_customers(P, &c0, &next(&c0, 9), &customers, &[1], &[poison])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Query { .. }), "{err}");
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM users").await, 0);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM sync_cursors").await,
        0
    );
    // The same batch without the poison goes through from the same cursor.
    let ok = store
        .commit_customers(P, &c0, &next(&c0, 9), &customers, &[], &[])
        .await
        .unwrap();
    assert_eq!((ok.created, ok.cursor.version), (1, 1));
}
