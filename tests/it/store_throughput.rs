//! Throughput of the batch commits (run with `cargo test --release --test store_throughput --
//! --ignored --nocapture`; ignored by default because it measures, it does not check behaviour
//! beyond row counts).

use crate::common;

use std::str::FromStr;
use std::time::Instant;

use bigdecimal::BigDecimal;
use common::pg::TestDb;
use diesel_async::RunQueryDsl;
use retailcrm_sync::model::{OrderContact, OrderRecord, OrderStatus};
use retailcrm_sync::store::Cursor;

#[tokio::test]
#[ignore = "measurement; run explicitly"]
async fn twenty_thousand_orders() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut conn = db.conn().await;
    diesel::sql_query("INSERT INTO projects (id) VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap();
    let orders: Vec<OrderRecord> = (0..20_000i64)
        .map(|i| {
            let k = i % 5_000;
            OrderRecord {
                retailcrm_id: i + 1,
                number: format!("{}A", i + 1),
                status: Some(OrderStatus::Delivered),
                retailcrm_status: "complete".into(),
                total_amount: BigDecimal::from_str("1234.50").unwrap(),
                currency: Some("RUB".into()),
                ordered_at: None,
                contact: OrderContact {
                    customer_retailcrm_id: Some(100_000 + k),
                    email: Some(format!("u{k}@x.ru")),
                    phone: Some(format!("7916{k:07}")),
                    first_name: Some("Имя".into()),
                    last_name: None,
                },
            }
        })
        .collect();
    let (cursor, first) = commit_in_batches(&store, Cursor::default(), &orders).await;
    let (_, again) = commit_in_batches(&store, cursor, &orders).await;
    eprintln!(
        "20000 orders / 5000 users in batches of 100: insert {:.0} orders/s ({:.2} ms/batch), \
         unchanged re-run {:.0} orders/s",
        20_000.0 / first.as_secs_f64(),
        first.as_secs_f64() * 1000.0 / 200.0,
        20_000.0 / again.as_secs_f64()
    );
}

/// Commits `orders` in batches of 100 from `cursor`; returns the last cursor and the time taken.
async fn commit_in_batches(
    store: &retailcrm_sync::store::Store,
    mut cursor: Cursor,
    orders: &[OrderRecord],
) -> (Cursor, std::time::Duration) {
    let started = Instant::now();
    for chunk in orders.chunks(100) {
        let next = Cursor {
            since_id: Some(chunk[0].retailcrm_id),
            snapshot_page: None,
            snapshot_total: None,
            version: cursor.version,
            ..Cursor::default()
        };
        cursor = store
            .commit_orders(1, &cursor, &next, chunk, &[], &[])
            .await
            .unwrap()
            .cursor;
    }
    (cursor, started.elapsed())
}
