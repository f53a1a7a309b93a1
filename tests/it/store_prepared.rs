//! The batch path's raw statements are really prepared once per connection, and their
//! parameters land where the text says.

use crate::common;

use common::pg::TestDb;
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::RunQueryDsl;
use retailcrm_sync::store::prepared::prepared;

#[derive(QueryableByName, Debug, PartialEq)]
struct Row {
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = BigInt)]
    c: i64,
}

#[derive(QueryableByName, Debug)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const PROBE: &str = "SELECT $1::bigint AS a, $2::text AS b, $1::bigint + cardinality($3) AS c \
                     /* store_prepared probe */";

#[test]
fn placeholders_are_renumbered_in_text_order() {
    let q = prepared(PROBE)
        .bind::<BigInt, _>(7_i64)
        .bind::<Text, _>("x")
        .bind::<Array<BigInt>, _>(vec![1_i64, 2]);
    let shown = diesel::debug_query::<Pg, _>(&q).to_string();
    assert!(
        shown.starts_with(
            "SELECT $1::bigint AS a, $2::text AS b, $3::bigint + cardinality($4) AS c"
        ),
        "{shown}"
    );
    assert!(shown.contains("binds: [7, \"x\", 7, [1, 2]]"), "{shown}");
}

#[tokio::test]
async fn statements_run_with_the_right_values_and_are_prepared_once() {
    let db = TestDb::empty().await;
    let mut conn = db.conn().await;
    for i in 0..3_i64 {
        let rows: Vec<Row> = prepared(PROBE)
            .bind::<BigInt, _>(i)
            .bind::<Text, _>(format!("run {i}"))
            .bind::<Array<BigInt>, _>(vec![1_i64, 2, 3])
            .load(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![Row {
                a: i,
                b: format!("run {i}"),
                c: i + 3
            }]
        );
    }
    // One named prepared statement on this connection, however many runs: planned once.
    let cached: Vec<Count> = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_prepared_statements \
         WHERE statement LIKE '%' || $1 || '%' AND name <> ''",
    )
    .bind::<Text, _>("store_prepared probe")
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(cached[0].n, 1);
}

#[tokio::test]
async fn a_placeholder_without_a_value_is_an_error_not_a_panic() {
    let db = TestDb::empty().await;
    let mut conn = db.conn().await;
    let err = prepared("SELECT $1::bigint AS a, $2::text AS b")
        .bind::<BigInt, _>(1_i64)
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("$2"), "{err}");
}
