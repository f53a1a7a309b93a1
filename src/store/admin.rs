//! Database administration the daemon itself never needs, only the demo and benchmarks:
//! creating the target database when it does not exist yet.

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{StoreError, op, redact_url};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    datname: String,
}

/// Creates the database named in `url` on its server when it is missing (connecting to the
/// server's `postgres` database to do so). Returns true when it was created.
pub async fn ensure_database(url: &str) -> Result<bool, StoreError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| StoreError::Connect {
        target: redact_url(url),
        detail: format!("not a database URL: {e}"),
    })?;
    let name = parsed.path().trim_start_matches('/').to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::Connect {
            target: redact_url(url),
            detail: format!(
                "database name `{name}` must be letters, digits and underscores to be created"
            ),
        });
    }
    let mut admin_url = parsed.clone();
    admin_url.set_path("/postgres");
    let mut conn = AsyncPgConnection::establish(admin_url.as_str())
        .await
        .map_err(|e| StoreError::Connect {
            target: redact_url(admin_url.as_str()),
            detail: e.to_string(),
        })?;
    let found: Vec<Name> = diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(&name)
        .load(&mut conn)
        .await
        .map_err(op("look up database"))?;
    if !found.is_empty() {
        return Ok(false);
    }
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .map_err(op("create database"))?;
    Ok(true)
}
