//! Every migration goes up, down and up again; a platform-owned `projects` table survives down.

use crate::common;

use common::pg::TestDb;
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

#[derive(QueryableByName, Debug)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

async fn tables(db: &TestDb) -> Vec<String> {
    let mut conn = db.conn().await;
    let rows: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' \
         ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.name).collect()
}

const ALL: [&str; 8] = [
    "dead_records",
    "orders",
    "projects",
    "retailcrm_integrations",
    "retailcrm_outbox",
    "sync_cursors",
    "sync_runs",
    "users",
];

/// The migration directories in the source tree (each must be embedded and applied).
fn on_disk() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("up.sql").is_file())
        .count()
}

#[tokio::test]
async fn all_up_all_down_all_up() {
    let db = TestDb::empty().await;
    let store = db.store().await;
    let n = on_disk();
    assert!(n >= 3, "{n}");
    let applied = store.run_migrations().await.unwrap();
    assert_eq!(applied.len(), n);
    assert_eq!(tables(&db).await, ALL);
    assert!(
        store.run_migrations().await.unwrap().is_empty(),
        "second run applies nothing"
    );

    let reverted = store.revert_all_migrations().await.unwrap();
    assert_eq!(reverted.len(), n);
    assert!(tables(&db).await.is_empty(), "{:?}", tables(&db).await);

    assert_eq!(store.run_migrations().await.unwrap().len(), n);
    assert_eq!(tables(&db).await, ALL);
}

#[tokio::test]
async fn platform_projects_table_is_kept() {
    let db = TestDb::empty().await;
    let mut conn = db.conn().await;
    diesel::sql_query("CREATE TABLE projects (id BIGINT PRIMARY KEY, name TEXT, plan TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query("INSERT INTO projects VALUES (1, 'p', 'gold')")
        .execute(&mut conn)
        .await
        .unwrap();
    let store = db.store().await;
    store.run_migrations().await.unwrap();
    store.revert_all_migrations().await.unwrap();
    assert_eq!(tables(&db).await, ["projects"]);
}

#[tokio::test]
async fn schema_rs_names_real_columns() {
    use diesel::QueryDsl;
    use retailcrm_sync::store::schema::*;
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    // Selecting every column of every table fails if schema.rs names a column that is missing.
    macro_rules! probe {
        ($($t:ident),*) => {$(
            $t::table.select($t::all_columns).limit(0).execute(&mut conn).await
                .unwrap_or_else(|e| panic!("{}: {e}", stringify!($t)));
        )*};
    }
    probe!(
        projects,
        retailcrm_integrations,
        users,
        orders,
        sync_cursors,
        sync_runs,
        dead_records,
        retailcrm_outbox
    );
}
