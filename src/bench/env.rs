//! The bench's private world: a fresh Postgres database `rcs_bench_<random>` (migrated), a
//! random Redis key prefix per daemon, and a temporary directory for configs, sockets and
//! daemon logs. [`BenchEnv::cleanup`] drops and deletes all three, so runs never see each
//! other's data and leave nothing behind.

use std::collections::HashMap;
use std::path::PathBuf;

use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use super::BenchError;
use crate::config::DatabaseSettings;
use crate::secret::ApiKey;
use crate::store::{NewIntegration, Store};

/// The fresh database, its connections and the scratch directory of one bench run.
pub struct BenchEnv {
    /// Maintenance database URL (used to create and drop the bench database).
    admin_url: String,
    /// Name of the bench database.
    pub db_name: String,
    /// URL of the bench database.
    pub db_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// Scratch directory (configs, sockets, daemon logs).
    pub dir: PathBuf,
    /// The crate's data layer on the bench database (integration rows, migrations).
    pub store: Store,
    /// A raw Postgres connection on the bench database (baselines, bookkeeping queries).
    pub pg: tokio_postgres::Client,
    /// Task driving `pg`.
    pg_task: JoinHandle<()>,
    /// Redis prefixes handed out, deleted at cleanup.
    prefixes: Vec<String>,
    /// Random tag shared by the names of this run.
    tag: String,
}

impl std::fmt::Debug for BenchEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchEnv")
            .field("db_name", &self.db_name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Connects a raw client and spawns its connection task.
pub async fn connect_raw(
    url: &str,
) -> Result<(tokio_postgres::Client, JoinHandle<()>), BenchError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(BenchError::pg("connect"))?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "bench Postgres connection closed with an error");
        }
    });
    Ok((client, task))
}

/// `url` with its database (path) replaced by `db`.
fn with_database(url: &str, db: &str) -> Result<String, BenchError> {
    let mut u = reqwest::Url::parse(url)
        .map_err(|e| BenchError::Setup(format!("--database-url is not a URL ({e})")))?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

impl BenchEnv {
    /// Creates and migrates a fresh database next to `admin_url`'s and a scratch directory.
    /// `explain_slow_ms` logs the plan of every statement on the bench database slower than
    /// that many milliseconds to the Postgres server log (`auto_explain`), for profiling.
    pub async fn create(
        admin_url: &str,
        redis_url: &str,
        explain_slow_ms: Option<u64>,
    ) -> Result<BenchEnv, BenchError> {
        let tag = format!("{:08x}", rand::random::<u32>());
        let db_name = format!("rcs_bench_{tag}");
        let (admin, task) = connect_raw(admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {db_name}"))
            .await
            .map_err(BenchError::pg("create the bench database"))?;
        if let Some(ms) = explain_slow_ms {
            admin
                .batch_execute(&format!(
                    "ALTER DATABASE {db_name} SET session_preload_libraries = 'auto_explain'; \
                     ALTER DATABASE {db_name} SET auto_explain.log_min_duration = {ms}; \
                     ALTER DATABASE {db_name} SET auto_explain.log_analyze = on;"
                ))
                .await
                .map_err(BenchError::pg("enable auto_explain on the bench database"))?;
        }
        drop(admin);
        task.abort();
        let db_url = with_database(admin_url, &db_name)?;
        let dir = std::env::temp_dir().join(format!("rcs-bench-{tag}"));
        std::fs::create_dir_all(&dir).map_err(|source| BenchError::Io {
            action: format!("create {}", dir.display()),
            source,
        })?;
        let store = Store::connect(&DatabaseSettings {
            url: db_url.clone(),
            pool_size: 4,
            ..DatabaseSettings::default()
        })
        .await?;
        store.run_migrations().await?;
        let (pg, pg_task) = connect_raw(&db_url).await?;
        Ok(BenchEnv {
            admin_url: admin_url.to_string(),
            db_name,
            db_url,
            redis_url: redis_url.to_string(),
            dir,
            store,
            pg,
            pg_task,
            prefixes: Vec::new(),
            tag,
        })
    }

    /// A new Redis key prefix, deleted at cleanup.
    pub fn redis_prefix(&mut self) -> String {
        let prefix = format!("rcs-bench-{}-{}", self.tag, self.prefixes.len());
        self.prefixes.push(prefix.clone());
        prefix
    }

    /// Adds active integrations `first..first+count` pointing at `api_url`, with `last_sync_at`
    /// set to now so the daemon's scheduler does not start a sync of its own: every sync the
    /// bench measures is one it triggered.
    pub async fn add_integrations(
        &self,
        first: i64,
        count: i64,
        api_url: &str,
        api_key: &str,
    ) -> Result<(), BenchError> {
        for project_id in first..first + count {
            self.store
                .upsert_integration(&NewIntegration {
                    project_id,
                    project_name: Some(format!("bench project {project_id}")),
                    api_url: api_url.to_string(),
                    api_key: ApiKey::new(api_key),
                    is_active: true,
                    sync_orders: true,
                    sync_customers: true,
                    sync_interval_minutes: 24 * 60,
                    status_mapping: HashMap::new(),
                    orders_created_from: None,
                    default_phone_country: None,
                })
                .await?;
        }
        self.pg
            .execute(
                "UPDATE retailcrm_integrations SET last_sync_at = now() \
                 WHERE project_id >= $1 AND project_id < $2",
                &[&first, &(first + count)],
            )
            .await
            .map_err(BenchError::pg("set last_sync_at"))?;
        Ok(())
    }

    /// Deactivates every integration, so the next daemon sees only the ones added after.
    pub async fn deactivate_all(&self) -> Result<(), BenchError> {
        self.pg
            .execute("UPDATE retailcrm_integrations SET is_active = false", &[])
            .await
            .map_err(BenchError::pg("deactivate integrations"))?;
        Ok(())
    }

    /// Drops the database, deletes the Redis keys and the scratch directory (`keep` keeps the
    /// database and the directory for inspection). Failures are returned as text (cleanup
    /// continues past them).
    pub async fn cleanup(self, keep: bool) -> Vec<String> {
        let mut problems = Vec::new();
        let BenchEnv {
            admin_url,
            db_name,
            redis_url,
            dir,
            store,
            pg,
            pg_task,
            prefixes,
            ..
        } = self;
        drop(store);
        drop(pg);
        pg_task.abort();
        match connect_raw(&admin_url).await {
            Ok(_) if keep => {}
            Ok((admin, task)) => {
                if let Err(e) = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
                    .await
                {
                    problems.push(format!("drop database {db_name}: {e}"));
                }
                task.abort();
            }
            Err(e) => problems.push(format!("drop database {db_name}: {e}")),
        }
        if let Err(e) = delete_redis_keys(&redis_url, &prefixes).await {
            problems.push(format!("delete Redis keys: {e}"));
        }
        if !keep && let Err(e) = std::fs::remove_dir_all(&dir) {
            problems.push(format!("remove {}: {e}", dir.display()));
        }
        problems
    }
}

/// Deletes every key under each prefix ([`crate::queue::keys::delete_prefix`]).
async fn delete_redis_keys(url: &str, prefixes: &[String]) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    for prefix in prefixes {
        crate::queue::keys::delete_prefix(&mut conn, prefix).await?;
    }
    Ok(())
}
