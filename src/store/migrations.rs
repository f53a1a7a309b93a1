//! The schema migrations, embedded in the binary from `migrations/`. diesel's migration harness
//! is synchronous; it runs over diesel-async's `AsyncConnectionWrapper` inside
//! `spawn_blocking` (diesel-async's own async harness uses `block_in_place`, which fails on a
//! current-thread runtime).

use diesel::Connection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{Store, StoreError};

/// Every migration in `migrations/`.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// What to do with the migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationDirection {
    /// Apply every pending migration.
    Up,
    /// Revert every applied migration (drops the daemon's tables).
    RevertAll,
}

impl Store {
    /// Applies pending migrations; returns the versions applied.
    pub async fn run_migrations(&self) -> Result<Vec<String>, StoreError> {
        migrate(self.url(), MigrationDirection::Up).await
    }

    /// Reverts every applied migration; returns the versions reverted.
    pub async fn revert_all_migrations(&self) -> Result<Vec<String>, StoreError> {
        migrate(self.url(), MigrationDirection::RevertAll).await
    }
}

/// Runs migrations against `url` on a blocking thread with its own connection.
pub async fn migrate(url: &str, direction: MigrationDirection) -> Result<Vec<String>, StoreError> {
    let url = url.to_string();
    let joined = tokio::task::spawn_blocking(move || -> Result<Vec<String>, StoreError> {
        let mut conn =
            AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).map_err(|e| {
                StoreError::Connect {
                    target: super::redact_url(&url),
                    detail: e.to_string(),
                }
            })?;
        let versions = match direction {
            MigrationDirection::Up => conn.run_pending_migrations(MIGRATIONS),
            MigrationDirection::RevertAll => conn.revert_all_migrations(MIGRATIONS),
        }
        .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(versions.into_iter().map(|v| v.to_string()).collect())
    })
    .await;
    joined.map_err(|e| StoreError::Migration(format!("migration task failed: {e}")))?
}
