//! The real daemon binary under test: a temp config (fresh database, random Redis prefix,
//! socket in a tempdir, JSON logs at debug level captured to a file), `retailcrm-sync run`
//! spawned as a child process, control calls through the real client, signals through
//! `libc::kill`. The child is killed (SIGKILL) and its Redis keys removed on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;
use retailcrm_sync::control::client::ControlClient;
use retailcrm_sync::control::protocol::{DaemonStatus, ProjectStatus, Request, Response};
use retailcrm_sync::mock::{MockConfig, MockCrm, MockHandle};

use super::pg::TestDb;

/// The daemon binary built by cargo for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_retailcrm-sync");

/// Knobs of the temp config.
#[derive(Debug, Clone)]
pub struct DaemonOpts {
    /// `database.url`; the test database when `None`.
    pub db_url: Option<String>,
    /// `sync.minute_secs`.
    pub minute_secs: u64,
    /// `sync.lease_secs`.
    pub lease_secs: u64,
    /// `sync.requests_per_second`.
    pub rps: f64,
    /// `sync.page_size`.
    pub page_size: u32,
    /// `shutdown.grace_seconds`.
    pub grace_seconds: u64,
    /// `daemon.reconcile_interval_secs`.
    pub reconcile_secs: u64,
    /// `log.level`.
    pub log_level: String,
    /// `sync.max_attempts`.
    pub max_attempts: u32,
    /// `http.listen` (a free port by default; `ctl status` shows the bound one).
    pub http_listen: String,
    /// `http.api_token_file` content: a token file is written when `Some`.
    pub api_token: Option<String>,
    /// `http.webhook_debounce_ms`.
    pub webhook_debounce_ms: u64,
    /// `http.ui_anonymous_read`.
    pub ui_anonymous_read: bool,
}

impl Default for DaemonOpts {
    fn default() -> Self {
        DaemonOpts {
            db_url: None,
            minute_secs: 60,
            lease_secs: 30,
            rps: 1000.0,
            page_size: 100,
            grace_seconds: 5,
            reconcile_secs: 600,
            log_level: "debug".into(),
            max_attempts: 3,
            http_listen: "127.0.0.1:0".into(),
            api_token: None,
            webhook_debounce_ms: 100,
            ui_anonymous_read: false,
        }
    }
}

/// One test's environment: database, Redis prefix, temp dir with config, socket and log.
pub struct Env {
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub config_path: PathBuf,
    pub socket: PathBuf,
    pub log_path: PathBuf,
    pub opts: DaemonOpts,
}

/// `assert!` that returns `Err(message)` instead of panicking.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// `assert_eq!` that returns `Err(message)` instead of panicking.
macro_rules! ensure_eq {
    ($a:expr, $b:expr, $($msg:tt)+) => {
        if $a != $b {
            return Err(format!("{}: {:?} != {:?}", format!($($msg)+), $a, $b));
        }
    };
}

impl Env {
    /// A fresh environment with the config written.
    pub async fn new(opts: DaemonOpts) -> Env {
        let db = TestDb::new().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = super::redis::test_prefix();
        let config_path = dir.path().join("retailcrm-sync.toml");
        let socket = dir.path().join("control.sock");
        let log_path = dir.path().join("daemon.log");
        let env = Env {
            db,
            dir,
            prefix,
            config_path,
            socket,
            log_path,
            opts,
        };
        env.write_config();
        env
    }

    /// The config text for the current options.
    pub fn config_text(&self) -> String {
        let o = &self.opts;
        let db_url = o.db_url.clone().unwrap_or_else(|| self.db.url.clone());
        let token_file = match &o.api_token {
            Some(token) => {
                let path = self.dir.path().join("api-token");
                std::fs::write(&path, token).expect("write the API token file");
                path.display().to_string()
            }
            None => String::new(),
        };
        format!(
            r#"[database]
url = "{db_url}"
pool_size = 4
connect_timeout_secs = 2
run_migrations_on_start = true

[redis]
url = "{redis}"
key_prefix = "{prefix}"

[control]
socket_path = "{socket}"
socket_mode = "0600"

[sync]
default_interval_minutes = 60
page_size = {page_size}
max_attempts = {max_attempts}
backoff_base_secs = 1
request_timeout_secs = 10
requests_per_second = {rps:?}
lease_secs = {lease}
max_stalls = 5
rate_limit_budget_secs = 10
minute_secs = {minute}

[shutdown]
grace_seconds = {grace}

[log]
level = "{level}"
format = "json"

[daemon]
reconcile_interval_secs = {reconcile}
restart_max = 5
restart_window_secs = 60

[http]
listen = "{http_listen}"
api_token_file = "{token_file}"
webhook_debounce_ms = {debounce}
ui_anonymous_read = {ui_anonymous_read}
"#,
            ui_anonymous_read = o.ui_anonymous_read,
            http_listen = o.http_listen,
            debounce = o.webhook_debounce_ms,
            redis = super::redis::redis_url(),
            prefix = self.prefix,
            socket = self.socket.display(),
            page_size = o.page_size,
            rps = o.rps,
            lease = o.lease_secs,
            minute = o.minute_secs,
            grace = o.grace_seconds,
            level = o.log_level,
            reconcile = o.reconcile_secs,
            max_attempts = o.max_attempts,
        )
    }

    /// (Re)writes the config file from `self.opts`.
    pub fn write_config(&self) {
        std::fs::write(&self.config_path, self.config_text()).expect("write config");
    }

    /// Starts the daemon (logs appended to `log_path`) without waiting for it.
    pub fn spawn(&self) -> Daemon {
        self.spawn_with_env(&[])
    }

    /// Starts the daemon with extra environment variables.
    pub fn spawn_with_env(&self, vars: &[(&str, &str)]) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open log file");
        let log2 = log.try_clone().expect("clone log file");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config_path)
            .arg("run")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("spawn the daemon");
        Daemon {
            child: Some(child),
            socket: self.socket.clone(),
            log_path: self.log_path.clone(),
        }
    }

    /// Starts a second daemon on the same config (same database, Redis and key prefix) but its
    /// own control socket `<name>.sock`; its log goes to the same file.
    pub async fn start_peer(&self, name: &str) -> Daemon {
        let socket = self.dir.path().join(format!("{name}.sock"));
        let socket_text = socket.to_str().expect("utf-8 temp dir").to_string();
        let mut d =
            self.spawn_with_env(&[("RETAILCRM_SYNC__CONTROL__SOCKET_PATH", socket_text.as_str())]);
        d.socket = socket;
        d.wait_ready(Duration::from_secs(20)).await;
        d
    }

    /// Starts the daemon and waits until it answers `status`.
    pub async fn start(&self) -> Daemon {
        let mut d = self.spawn();
        d.wait_ready(Duration::from_secs(20)).await;
        d
    }

    /// Everything the daemon(s) logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Polls the log every 50 ms until `f` holds for it or `limit` passes; returns the log.
    /// The daemon writes each line whole and in order, so a line found here means every line
    /// logged before it is in the file too.
    pub async fn wait_log(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            let logs = self.logs();
            if f(&logs) {
                return logs;
            }
            assert!(
                started.elapsed() < limit,
                "timed out waiting for {what} in the log:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Inserts (or replaces) an active integration for `project_id` with plain SQL.
    pub async fn insert_integration(&self, project_id: i64, mock: &MockHandle, interval_min: i32) {
        self.insert_integration_raw(project_id, &mock.url, &mock.api_key, interval_min)
            .await;
    }

    /// Inserts (or replaces) an active integration with plain SQL.
    pub async fn insert_integration_raw(
        &self,
        project_id: i64,
        url: &str,
        key: &str,
        interval_min: i32,
    ) {
        let mut conn = self.db.conn().await;
        diesel::sql_query(
            "INSERT INTO projects (id, name) VALUES ($1, 'shop ' || $1::text) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind::<BigInt, _>(project_id)
        .execute(&mut conn)
        .await
        .expect("insert project");
        diesel::sql_query(
            "INSERT INTO retailcrm_integrations \
               (project_id, api_url, api_key, is_active, sync_interval_minutes) \
             VALUES ($1, $2, $3, TRUE, $4) \
             ON CONFLICT (project_id) DO UPDATE SET api_url = EXCLUDED.api_url, \
               api_key = EXCLUDED.api_key, is_active = TRUE, \
               sync_interval_minutes = EXCLUDED.sync_interval_minutes, updated_at = now()",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Text, _>(url)
        .bind::<Text, _>(key)
        .bind::<diesel::sql_types::Integer, _>(interval_min)
        .execute(&mut conn)
        .await
        .expect("insert integration");
    }

    /// Runs one SQL statement on the test database.
    pub async fn sql(&self, statement: &str) -> usize {
        let mut conn = self.db.conn().await;
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .expect("SQL statement")
    }

    /// `SELECT count(*)` of a query returning `n`.
    pub async fn count(&self, query: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = self.db.conn().await;
        let rows: Vec<N> = diesel::sql_query(query)
            .load(&mut conn)
            .await
            .expect("count query");
        rows.into_iter().next().map_or(0, |r| r.n)
    }

    /// Polls [`Env::count`] of `query` every 50 ms until `f` holds for it or `limit` passes;
    /// returns the count.
    pub async fn wait_count(
        &self,
        what: &str,
        limit: Duration,
        query: &str,
        mut f: impl FnMut(i64) -> bool,
    ) -> i64 {
        let started = Instant::now();
        loop {
            let n = self.count(query).await;
            if f(n) {
                return n;
            }
            assert!(
                started.elapsed() < limit,
                "timed out waiting for {what}: {n} from {query}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Live orders of a project: retailcrm id -> (number, raw status).
    pub async fn orders(&self, project_id: i64) -> BTreeMap<i64, (String, Option<String>)> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Nullable<BigInt>)]
            retailcrm_order_id: Option<i64>,
            #[diesel(sql_type = Text)]
            order_number: String,
            #[diesel(sql_type = Nullable<Text>)]
            retailcrm_status: Option<String>,
        }
        let mut conn = self.db.conn().await;
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT retailcrm_order_id, order_number, retailcrm_status FROM orders \
             WHERE project_id = $1 AND deleted_at IS NULL",
        )
        .bind::<BigInt, _>(project_id)
        .load(&mut conn)
        .await
        .expect("load orders");
        rows.into_iter()
            .map(|r| {
                (
                    r.retailcrm_order_id
                        .expect("synced order has a RetailCRM id"),
                    (r.order_number, r.retailcrm_status),
                )
            })
            .collect()
    }

    /// RetailCRM customer ids of a project's live users.
    pub async fn customer_ids(&self, project_id: i64) -> Vec<i64> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        let mut conn = self.db.conn().await;
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT retailcrm_customer_id AS id FROM users WHERE project_id = $1 \
             AND retailcrm_customer_id IS NOT NULL AND deleted_at IS NULL ORDER BY 1",
        )
        .bind::<BigInt, _>(project_id)
        .load(&mut conn)
        .await
        .expect("load users");
        rows.into_iter().map(|r| r.id).collect()
    }

    /// Sets a project's webhook secret (its hash, as `integration set` does) and returns it.
    pub async fn set_webhook_token(&self, project_id: i64) -> String {
        let token = retailcrm_sync::http::generate_webhook_token();
        let hash = retailcrm_sync::http::webhook_token_hash(&token);
        self.sql(&format!(
            "UPDATE retailcrm_integrations SET webhook_token_sha256 = '{hash}' \
             WHERE project_id = {project_id}"
        ))
        .await;
        token
    }

    /// Whether the project's live orders equal the mock's (`Err` says how not): every order
    /// (id, number, status) once, no extra order, no order stored twice.
    pub async fn orders_mismatch(&self, project_id: i64, mock: &MockHandle) -> Result<(), String> {
        let want: BTreeMap<i64, (String, Option<String>)> = mock
            .orders_snapshot()
            .into_iter()
            .map(|o| (o.id, (o.number, Some(o.status))))
            .collect();
        let got = self.orders(project_id).await;
        ensure_eq!(got.len(), want.len(), "order count differs from the mock");
        ensure!(got == want, "orders differ from the mock");
        let live = self
            .count(&format!(
                "SELECT count(*) AS n FROM orders WHERE project_id = {project_id} \
                 AND deleted_at IS NULL"
            ))
            .await;
        ensure_eq!(
            live as usize,
            want.len(),
            "duplicate or stray live order rows"
        );
        let distinct = self
            .count(&format!(
                "SELECT count(*) - count(DISTINCT retailcrm_order_id) AS n FROM orders \
                 WHERE project_id = {project_id}"
            ))
            .await;
        ensure_eq!(distinct, 0, "an order is stored twice");
        Ok(())
    }

    /// Whether the project's rows equal the mock's account (`Err` says how not): orders as
    /// [`Env::orders_mismatch`], and every customer exactly once.
    pub async fn mock_mismatch(&self, project_id: i64, mock: &MockHandle) -> Result<(), String> {
        self.orders_mismatch(project_id, mock).await?;
        // Customers: one user per customer, except that a customer sharing an e-mail or phone
        // with another one is linked to that user (the store's matching rules), not duplicated.
        let customers = mock.customers_snapshot();
        let got_ids = self.customer_ids(project_id).await;
        let mut seen = std::collections::BTreeSet::new();
        for id in &got_ids {
            ensure!(seen.insert(*id), "customer {id} has two users");
        }
        let key = |c: &retailcrm_sync::mock::MockCustomer| {
            let mut keys: Vec<String> = c.email.iter().map(|e| e.trim().to_lowercase()).collect();
            for p in &c.phones {
                let digits: String = p.number.chars().filter(char::is_ascii_digit).collect();
                if digits.len() >= 10 {
                    keys.push(digits[digits.len() - 10..].to_string());
                }
            }
            keys
        };
        for c in &customers {
            if seen.contains(&c.id) {
                continue;
            }
            let mine = key(c);
            let shared = customers
                .iter()
                .filter(|o| o.id != c.id)
                .any(|o| key(o).iter().any(|k| mine.contains(k)));
            ensure!(
                shared,
                "customer {} has no user and shares no e-mail/phone with another customer",
                c.id
            );
        }
        let mock_ids: std::collections::BTreeSet<i64> = customers.iter().map(|c| c.id).collect();
        ensure!(
            seen.is_subset(&mock_ids),
            "users for customers the mock does not have"
        );
        ensure!(
            seen.len() * 10 >= customers.len() * 9,
            "only {} of {} customers have users",
            seen.len(),
            customers.len()
        );
        Ok(())
    }

    /// Asserts the project's rows equal the mock's account: every order (id, number, status)
    /// once, no extra order, every customer exactly once.
    pub async fn assert_equals_mock(&self, project_id: i64, mock: &MockHandle) {
        if let Err(e) = self.mock_mismatch(project_id, mock).await {
            panic!("{e}");
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let Ok(client) = redis::Client::open(super::redis::redis_url()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let _ =
            retailcrm_sync::queue::keys::delete_prefix_blocking(&mut conn, &format!("{prefix}:"));
    }
}

/// A running daemon process; SIGKILLed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log_path: PathBuf,
}

impl Daemon {
    /// Process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Waits until `status` is answered (the daemon has started).
    pub async fn wait_ready(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_exit() {
                panic!(
                    "daemon exited during start-up with {status}; log:\n{}",
                    std::fs::read_to_string(&self.log_path).unwrap_or_default()
                );
            }
            // `ping` answers while the daemon is still starting; `status` once it runs.
            if let Ok(r) = self.try_call(&Request::Status { project_id: None }).await
                && r.ok
            {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "daemon did not answer status within {limit:?}; log:\n{}",
                std::fs::read_to_string(&self.log_path).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `limit` for the process to end.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// One control call on a fresh connection.
    pub async fn try_call(
        &self,
        request: &Request,
    ) -> Result<Response, retailcrm_sync::control::ControlError> {
        call_socket(&self.socket, request).await
    }

    /// One control call that must get an answer.
    pub async fn call(&self, request: &Request) -> Response {
        self.try_call(request).await.expect("control call")
    }

    /// `status` of every project.
    pub async fn status(&self) -> DaemonStatus {
        let r = self.call(&Request::Status { project_id: None }).await;
        assert!(r.ok, "status failed: {r:?}");
        serde_json::from_value(r.data.expect("status data")).expect("status shape")
    }

    /// `status` of one project, if the daemon runs it.
    pub async fn project(&self, project_id: i64) -> Option<ProjectStatus> {
        self.status()
            .await
            .projects
            .into_iter()
            .find(|p| p.project_id == project_id)
    }

    /// Polls `f` on the status every 100 ms until it holds or `limit` passes.
    pub async fn wait_status(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut(&DaemonStatus) -> bool,
    ) -> DaemonStatus {
        let started = Instant::now();
        loop {
            let s = self.status().await;
            if f(&s) {
                return s;
            }
            assert!(
                started.elapsed() < limit,
                "timed out waiting for: {what}; last status: {s:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (30 s at most) until `project_id` has synced once and runs no job.
    pub async fn wait_synced(&self, project_id: i64) {
        self.wait_status(
            &format!("project {project_id} synced and idle"),
            Duration::from_secs(30),
            |s| {
                s.projects.iter().any(|p| {
                    p.project_id == project_id
                        && p.last_success_at.is_some()
                        && p.running_job.is_none()
                })
            },
        )
        .await;
    }

    /// Enqueues a job; returns the job id.
    pub async fn trigger(&self, project_id: i64, kind: &str) -> String {
        let r = self
            .call(&Request::Trigger {
                project_id,
                kind: kind.into(),
                entity_id: None,
                since_id: None,
            })
            .await;
        assert!(r.ok, "trigger failed: {r:?}");
        r.data.expect("trigger data")["job_id"]
            .as_str()
            .expect("job id")
            .to_string()
    }

    /// Base URL of the daemon's HTTP listener (`http://127.0.0.1:PORT`), from `status`.
    pub async fn http(&self) -> String {
        let status = self.status().await;
        let addr = status
            .http_listen
            .clone()
            .unwrap_or_else(|| panic!("the HTTP listener is off: {status:?}"));
        format!("http://{addr}")
    }

    /// Runs `retailcrm-sync ctl --socket S <args>` and returns (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        ctl(&self.socket, args)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One control call on a fresh connection to `socket`.
pub async fn call_socket(
    socket: &Path,
    request: &Request,
) -> Result<Response, retailcrm_sync::control::ControlError> {
    let mut c = ControlClient::connect(socket)
        .await?
        .with_timeout(Duration::from_secs(10));
    c.call(request).await
}

/// Runs the `ctl` subcommand of the binary against `socket`.
pub fn ctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A mock RetailCRM account of `orders` orders and `customers` customers.
pub async fn mock(orders: u64, customers: u64, seed: u64) -> MockHandle {
    MockCrm::start(MockConfig {
        orders,
        customers,
        seed,
        api_key: format!("test-key-{}", uuid::Uuid::new_v4().simple()),
        ..MockConfig::default()
    })
    .await
    .expect("start the mock RetailCRM")
}
