//! Isolated Postgres database per test: `TestDb::new()` creates `rcs_t_<random>` on the real
//! server (`RCS_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`), applies
//! the embedded migrations, and drops the database (`WITH (FORCE)`) when dropped. The drop runs
//! on its own thread with its own runtime, so it is safe inside `#[tokio::test]`.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use retailcrm_sync::config::DatabaseSettings;
use retailcrm_sync::store::Store;

/// Admin URL of the test server.
pub fn admin_url() -> String {
    std::env::var("RCS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh, migrated database that is dropped with this value.
pub struct TestDb {
    /// URL of the test database.
    pub url: String,
    /// Database name.
    pub name: String,
    admin: String,
}

impl TestDb {
    /// Creates and migrates a fresh database.
    pub async fn new() -> TestDb {
        let db = TestDb::empty().await;
        db.store().await.run_migrations().await.expect("migrations");
        db
    }

    /// Creates a fresh database without running migrations.
    pub async fn empty() -> TestDb {
        let admin = admin_url();
        let name = format!("rcs_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = AsyncPgConnection::establish(&admin)
            .await
            .expect("connect to the test Postgres (is it running? scripts/services.sh)");
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = match admin.rfind('/') {
            Some(i) => format!("{}/{name}", &admin[..i]),
            None => panic!("RCS_TEST_PG_URL has no database part: {admin}"),
        };
        TestDb { url, name, admin }
    }

    /// Settings pointing at this database.
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.url.clone(),
            pool_size: 4,
            ..DatabaseSettings::default()
        }
    }

    /// A store on this database.
    pub async fn store(&self) -> Store {
        Store::connect(&self.settings())
            .await
            .expect("connect store")
    }

    /// A raw connection for assertions.
    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .execute(&mut conn)
                    .await;
                }
            });
        });
        let _ = handle.join();
    }
}
