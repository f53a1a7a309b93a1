//! The Postgres data layer: a pooled diesel-async connection set ([`Store`], cheap to clone)
//! and every query the daemon runs. Each write is set-based per batch (arrays bound once,
//! `UNNEST`), never one round trip per row; each sync batch is one transaction that also moves
//! the stream's cursor by compare-and-set, so a cursor never moves without its rows.
//!
//! Files: [`migrations`] (embedded schema), [`integrations`], [`users`] (customer -> user
//! resolution), [`orders`], [`cursors`] (cursor CAS and poison records), [`runs`], [`prepared`]
//! (cached raw statements of the batch path), [`phones`] (re-normalising stored phones),
//! [`schema`] (diesel `table!` definitions).

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};

use crate::config::DatabaseSettings;
use crate::model::Stream;

pub mod admin;
pub mod cursors;
pub mod integrations;
pub mod migrations;
pub mod monitor;
pub mod orders;
pub mod outbox;
pub mod phones;
pub mod prepared;
pub mod runs;
pub mod schema;
mod scrub;
pub mod summary;
pub mod users;

pub use cursors::{Cursor, DeadRecord, PoisonRecord};
pub use integrations::{Integration, IntegrationPatch, NewIntegration};
pub use orders::OrderBatchOutcome;
pub use runs::{RunOutcome, SyncRun};
pub use users::CustomerBatchOutcome;

/// Errors of the data layer. Messages say what failed and what to do; none contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The pool could not be built or no connection could be opened.
    #[error(
        "cannot connect to Postgres at {target}: {detail}; check database.url and that Postgres \
         is running and reachable"
    )]
    Connect {
        /// Host/port/database of the URL (no password).
        target: String,
        /// What the driver said.
        detail: String,
    },
    /// No pooled connection became free in time.
    #[error(
        "no Postgres connection available within {0:?}; the pool is exhausted or Postgres is \
         down (raise database.pool_size or check the server)"
    )]
    PoolTimeout(Duration),
    /// A statement failed.
    #[error("Postgres query `{op}` failed: {source}")]
    Query {
        /// Which operation was running.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: diesel::result::Error,
    },
    /// Applying or reverting migrations failed.
    #[error("database migration failed: {0}; fix the cause and run `retailcrm-sync migrate` again")]
    Migration(String),
    /// Another commit moved the cursor since it was read; the batch was rolled back.
    #[error(
        "cursor of project {project_id} stream {stream} is no longer at version {expected}: \
         another sync of this stream committed first; this batch was rolled back, restart the \
         sync from the stored cursor"
    )]
    CursorConflict {
        /// Project whose cursor moved.
        project_id: i64,
        /// Stream whose cursor moved.
        stream: Stream,
        /// The version this batch expected.
        expected: i64,
    },
    /// The project has no integration row.
    #[error(
        "project {0} has no RetailCRM integration; add one with `retailcrm-sync integration add`"
    )]
    IntegrationNotFound(i64),
    /// A row or an argument holds a value this code cannot use.
    #[error("invalid data: {0}")]
    Invalid(String),
}

impl StoreError {
    /// True when Postgres itself could not be reached (no connection, the pool starved, the
    /// connection dropped mid-statement): nothing is wrong with the job, it must wait for the
    /// database. False for errors of a statement or of the data.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            StoreError::Connect { .. } | StoreError::PoolTimeout(_) => true,
            // diesel-async reports an I/O failure (an error without SQLSTATE, e.g. "connection
            // closed") as `UnableToSendCommand`; the server never judged the statement.
            StoreError::Query { source, .. } => matches!(
                source,
                Error::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _
                ) | Error::BrokenTransactionManager
            ),
            _ => false,
        }
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(source: diesel::result::Error) -> Self {
        StoreError::Query {
            op: "transaction",
            source,
        }
    }
}

/// Adds the operation name to a diesel error.
pub(crate) fn op(op: &'static str) -> impl FnOnce(diesel::result::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

/// A pooled connection.
pub type Conn = Object<AsyncPgConnection>;

/// Handle to the platform database. Clone freely: clones share one pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool<AsyncPgConnection>,
    url: String,
    wait: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("target", &redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

/// The session setting that marks the daemon's own connections: the outbox triggers
/// (`sql/outbox_triggers.sql`) skip writes made with it, so a pull never echoes as a push.
pub const WRITER_SETTING: &str = "retailcrm_sync.writer";

/// `url` with `options=-c retailcrm_sync.writer=daemon` added (kept as is when it does not
/// parse; validation refuses such a URL anyway).
fn daemon_marked_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    let mut options = format!("-c {WRITER_SETTING}=daemon");
    let mut others: Vec<(String, String)> = Vec::new();
    for (k, v) in parsed.query_pairs() {
        if k == "options" {
            options = format!("{v} {options}");
        } else {
            others.push((k.into_owned(), v.into_owned()));
        }
    }
    others.push(("options".to_string(), options));
    // Percent-encoded by hand: the driver reads `%20`, not `+`, as a space.
    let query = others
        .iter()
        .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
        .collect::<Vec<_>>()
        .join("&");
    parsed.set_query(Some(&query));
    parsed.to_string()
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Store {
    /// Builds the pool and opens one connection to prove the database is reachable.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(daemon_marked_url(
            &settings.url,
        ));
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1) as usize)
            .build()
            .map_err(|e| StoreError::Connect {
                target: redact_url(&settings.url),
                detail: e.to_string(),
            })?;
        let store = Store {
            pool,
            url: settings.url.clone(),
            wait: Duration::from_secs(settings.connect_timeout_secs.max(1)),
        };
        store.ping().await?;
        Ok(store)
    }

    /// Checks out a connection, waiting at most `database.connect_timeout_secs`.
    pub async fn conn(&self) -> Result<Conn, StoreError> {
        match tokio::time::timeout(self.wait, self.pool.get()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(StoreError::Connect {
                target: redact_url(&self.url),
                detail: e.to_string(),
            }),
            Err(_) => Err(StoreError::PoolTimeout(self.wait)),
        }
    }

    /// Runs `SELECT 1`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(op("ping"))?;
        Ok(())
    }

    /// The database URL this store uses (with its password, for migrations; never log it).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// `host:port/db` of a Postgres URL, without user or password, for messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "<unparsable database.url>".to_string(),
    }
}

/// Advisory-lock key serialising user writes of one project (customers and orders streams both
/// create users; without the lock two concurrent batches could create the same person twice).
pub(crate) fn users_lock_key(project_id: i64) -> i64 {
    const NAMESPACE: i64 = 0x5243_5355_0000_0000; // "RCSU"
    NAMESPACE ^ project_id
}

/// Takes the per-project user-write lock until the end of the current transaction.
pub(crate) async fn lock_users(
    conn: &mut AsyncPgConnection,
    project_id: i64,
) -> Result<(), StoreError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(users_lock_key(project_id))
        .execute(conn)
        .await
        .map_err(op("lock users"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_connections_are_marked() {
        assert_eq!(
            daemon_marked_url("postgres://u@h:5432/db"),
            "postgres://u@h:5432/db?options=-c%20retailcrm_sync.writer%3Ddaemon"
        );
        assert_eq!(
            daemon_marked_url("postgres://u@h/db?sslmode=disable&options=-c%20a%3Db"),
            "postgres://u@h/db?sslmode=disable&options=-c%20a%3Db%20-c%20retailcrm_sync.writer%3Ddaemon"
        );
    }
}
