//! `retailcrm-sync bench`: end-to-end sync speed and memory against the physical limits.
//!
//! Everything runs on the local Postgres and Redis with the mock RetailCRM in this process on
//! loopback; the daemon is the real binary started as a child (`run --config F`) and driven
//! over its control socket, so what is measured is the production job path. Each run gets a
//! fresh database `rcs_bench_<random>` and random Redis prefixes, removed at the end.
//!
//! Sections (see [`report`] for the figures): 1 full sync, 2 raw Postgres baselines on the
//! same rows, 3 API-bound sync against a 10 rps mock, 4 incremental latency, 5 many projects
//! on one daemon, 6 peak RSS at a larger account, 8 two-way sync push throughput against a
//! 10 rps mock ([`push`]), 7 freshness: changes made one at a time in
//! the mock (status changes, new orders, customer edits), each timed until its row is
//! committed, p50/p99/max with the mock's trigger calling the daemon's webhook (200 changes,
//! quick 50; target p99 < 2 s, moonshot < 1 s) and without webhooks against a 5 s schedule
//! (20 changes, quick 5). Files: [`env`](mod@env) (database, Redis, scratch), [`daemon`] (the
//! child process), [`baseline`] (INSERT/COPY), [`freshness`], [`procfs`], [`report`].
//!
//! Profiling aids: `--keep` keeps the database, `--explain-slow-ms N` logs the plans of slow
//! statements (auto_explain) to the Postgres server log, `--analyze-every S` runs `ANALYZE`
//! during the full syncs, and the report sums the engine's `batch committed` events per stream.
//!
//! Section 8 (2026-12-04): 200 outbox rows pushed in 20.09 s against a 10 rps mock, 10.0 rows/s,
//! 201 requests, 1.000x the API floor.
//!
//! # Measured (release build, 2 shared cores, 2026-11-24; see the lead's notes for the fixes)
//! Full sync 100k orders / 50k customers: 29.9 s (3,347 orders/s; orders stream 4,043/s,
//! customers 9,725/s), 0.10x the batched upsert (38,635 rows/s), 0.08x COPY; 400k orders:
//! 1,240 orders/s. The writer is the bottleneck (24.3 ms per 100-order batch, Postgres CPU
//! 25 s of 30 s) and it slows as the project grows: `load orders` and `load users` in
//! `store::{orders,users}` are planned as a scan of the whole project filtered by
//! `= ANY(..) OR ..` (the planner's statistics of a freshly filled project are stale), so
//! each batch reads every row of the project. API-bound 0.99x floor; incremental 1,000 changes
//! 0.32 s; 200 projects READY 0.77 s, idle 0.2 % CPU, 37 MiB, aggregate 10,524 orders/s; peak
//! RSS 16.8 MiB at 100k and 17.1 MiB at 400k orders.
//!
//! Freshness (2026-12-04, same machine, 2,000 orders / 1,000 customers): with webhooks
//! (debounce 200 ms) 200 changes p50 0.051 s, p99 0.199 s, max 0.202 s, 0 misses, 200 walks;
//! against a 5 s schedule 20 changes p50 2.34 s, p99 4.98 s.

pub mod baseline;
pub mod daemon;
pub mod env;
pub mod freshness;
pub mod procfs;
pub mod push;
pub mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::control::ControlError;
use crate::mock::{FaultConfig, MockConfig, MockCrm, MockError, MockHandle};
use crate::store::StoreError;
use daemon::{Daemon, DaemonSpec};
use env::BenchEnv;
use report::{
    ApiBound, Freshness, FullSync, Incremental, Limits, ManyProjects, MemoryFlatness, Report,
    SectionError, mib,
};

/// Errors of a bench section. Each says what failed; the run goes on with the next section.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A raw Postgres call failed.
    #[error("Postgres ({action}): {source}; check that Postgres runs at --database-url")]
    Postgres {
        /// What was being done.
        action: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The crate's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mock could not start.
    #[error(transparent)]
    Mock(#[from] MockError),
    /// The control conversation failed.
    #[error("control socket: {0}")]
    Control(#[from] ControlError),
    /// A file or process operation failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The daemon misbehaved (exited, refused a request, failed a job).
    #[error("daemon: {0}")]
    Daemon(String),
    /// Something did not happen in time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// How long.
        secs: u64,
    },
    /// Bad options or environment.
    #[error("{0}")]
    Setup(String),
}

impl BenchError {
    /// Maps a raw Postgres error, naming the action.
    pub fn pg(action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> BenchError {
        move |source| BenchError::Postgres { action, source }
    }
}

/// Sizes and services of one bench run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The daemon binary to spawn.
    pub daemon_exe: PathBuf,
    /// A maintenance database URL; the bench creates its database next to it.
    pub database_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// Section 1: orders.
    pub orders: u64,
    /// Section 1: customers.
    pub customers: u64,
    /// Section 3: orders of the throttled account.
    pub api_orders: u64,
    /// Section 3: customers of the throttled account.
    pub api_customers: u64,
    /// Section 3: requests per second of the mock and the daemon.
    pub api_rps: f64,
    /// Section 4: changes applied to the mock.
    pub mutations: u64,
    /// Section 5: integrations on one daemon (0 skips the section).
    pub projects: u64,
    /// Section 5: orders of the shared account.
    pub project_orders: u64,
    /// Section 5: customers of the shared account.
    pub project_customers: u64,
    /// Section 5: length of the idle window.
    pub idle: Duration,
    /// Section 6: orders of the large account (0 skips the section).
    pub large_orders: u64,
    /// Run section 3 (it takes `requests / api_rps` seconds).
    pub api_bound: bool,
    /// `sync.requests_per_second` of the unthrottled daemons.
    pub fast_rps: f64,
    /// Longest wait for one sync job.
    pub job_timeout: Duration,
    /// `--quick` sizes were chosen (recorded in the report).
    pub quick: bool,
    /// Experiment: run `ANALYZE orders, users` from the bench every this often while the full
    /// syncs (sections 1 and 6) run, to show what fresh planner statistics are worth.
    pub analyze_every: Option<Duration>,
    /// Profiling: log plans of statements slower than this (ms) to the Postgres server log.
    pub explain_slow_ms: Option<u64>,
    /// Keep the database and the scratch directory (configs, daemon logs) for inspection.
    pub keep: bool,
    /// Section 8: outbox rows pushed against the throttled mock (0 skips the section).
    pub push_rows: u64,
    /// Section 7: orders of the freshness account.
    pub fresh_orders: u64,
    /// Section 7: customers of the freshness account.
    pub fresh_customers: u64,
    /// Section 7: changes made one at a time with webhooks (0 skips the section).
    pub fresh_changes: u64,
    /// Section 7: changes made one at a time without webhooks, each picked up by the periodic
    /// sync (0 skips that part).
    pub fresh_scheduled_changes: u64,
    /// Section 7: the schedule's interval in seconds (`sync_interval_minutes` 1 with
    /// `sync.minute_secs` this).
    pub fresh_interval_secs: u64,
    /// Section 7: `http.webhook_debounce_ms` of its daemon.
    pub fresh_debounce_ms: u64,
    /// Section 7: longest wait for one change with webhooks (a miss beyond it; the schedule
    /// part waits one interval more).
    pub fresh_timeout: Duration,
}

impl BenchOptions {
    /// The default sizes.
    pub fn full(daemon_exe: PathBuf) -> BenchOptions {
        BenchOptions {
            daemon_exe,
            database_url: "postgres://postgres@127.0.0.1:5432/postgres".to_string(),
            redis_url: "redis://127.0.0.1:6379".to_string(),
            orders: 100_000,
            customers: 50_000,
            api_orders: 5_000,
            api_customers: 2_000,
            api_rps: 10.0,
            mutations: 1_000,
            projects: 200,
            project_orders: 500,
            project_customers: 200,
            idle: Duration::from_secs(10),
            large_orders: 400_000,
            api_bound: true,
            fast_rps: 1000.0,
            analyze_every: None,
            explain_slow_ms: None,
            job_timeout: Duration::from_secs(1800),
            quick: false,
            keep: false,
            fresh_orders: 2_000,
            fresh_customers: 1_000,
            push_rows: 200,
            fresh_changes: 200,
            fresh_scheduled_changes: 20,
            fresh_interval_secs: 5,
            fresh_debounce_ms: crate::config::HttpSettings::default().webhook_debounce_ms,
            fresh_timeout: Duration::from_secs(30),
        }
    }

    /// Every size about ten times smaller (projects stay 200: READY and idle are about count).
    pub fn quick(daemon_exe: PathBuf) -> BenchOptions {
        BenchOptions {
            orders: 10_000,
            customers: 5_000,
            api_orders: 500,
            api_customers: 200,
            project_orders: 50,
            project_customers: 20,
            idle: Duration::from_secs(5),
            large_orders: 40_000,
            push_rows: 30,
            fresh_changes: 50,
            fresh_scheduled_changes: 5,
            quick: true,
            ..BenchOptions::full(daemon_exe)
        }
    }
}

/// Project of section 7 (sections 1-3 use 1-3, section 5 from 1000 on).
const FRESHNESS_PROJECT: i64 = 4;

/// The mock's API key (any non-empty value; never printed).
const MOCK_KEY: &str = "bench-mock-key-0123456789abcdef";

/// Starts a mock account.
async fn start_mock(
    orders: u64,
    customers: u64,
    seed: u64,
    rate_limit: Option<f64>,
) -> Result<MockHandle, BenchError> {
    Ok(MockCrm::start(MockConfig {
        orders,
        customers,
        seed,
        api_key: MOCK_KEY.to_string(),
        faults: FaultConfig {
            rate_limit,
            ..FaultConfig::default()
        },
        ..MockConfig::default()
    })
    .await?)
}

/// CPU time of this process (the bench and the in-process mock).
fn own_cpu() -> Duration {
    procfs::cpu_time(std::process::id()).unwrap_or_default()
}

/// State shared between sections of one run.
struct Run<'a> {
    opts: &'a BenchOptions,
    env: BenchEnv,
    daemons: u32,
}

impl Run<'_> {
    /// The spec of the next daemon: its own directory and Redis prefix, production defaults.
    fn spec(&mut self, rps: f64) -> DaemonSpec {
        self.daemons += 1;
        DaemonSpec {
            exe: self.opts.daemon_exe.clone(),
            dir: self.env.dir.join(format!("daemon-{}", self.daemons)),
            db_url: self.env.db_url.clone(),
            redis_url: self.env.redis_url.clone(),
            key_prefix: self.env.redis_prefix(),
            requests_per_second: rps,
            minute_secs: None,
            webhook_debounce_ms: None,
        }
    }

    /// Spawns a daemon seeing only the integrations active now.
    fn spawn(&mut self, rps: f64) -> Result<Daemon, BenchError> {
        let spec = self.spec(rps);
        Daemon::spawn(&spec)
    }

    /// Counts a project's stored orders, users and records set aside as poison.
    async fn stored(&self, project_id: i64) -> Result<(u64, u64, u64), BenchError> {
        let row = self
            .env
            .pg
            .query_one(
                "SELECT (SELECT count(*) FROM orders WHERE project_id = $1), \
                 (SELECT count(*) FROM users WHERE project_id = $1), \
                 (SELECT count(*) FROM dead_records WHERE project_id = $1)",
                &[&project_id],
            )
            .await
            .map_err(BenchError::pg("count stored rows"))?;
        let orders: i64 = row.get(0);
        let users: i64 = row.get(1);
        let dead: i64 = row.get(2);
        Ok((orders as u64, users as u64, dead as u64))
    }

    /// One project, one daemon, one `sync_all`: sections 1 and 6. Returns the figures and the
    /// still-running daemon and mock (section 4 continues on them).
    async fn full_sync(
        &mut self,
        project_id: i64,
        orders: u64,
        customers: u64,
    ) -> Result<(FullSync, Daemon, MockHandle), BenchError> {
        let mock = start_mock(orders, customers, project_id as u64, None).await?;
        self.env.deactivate_all().await?;
        self.env
            .add_integrations(project_id, 1, &mock.url, MOCK_KEY)
            .await?;
        let mut daemon = self.spawn(self.opts.fast_rps)?;
        let ready = daemon.wait_ready(1, Duration::from_secs(60)).await?;
        let mut client = daemon.client().await?;
        let requests_before = mock.request_count();
        let cpu_before = daemon.cpu_time()?;
        let own_before = own_cpu();
        let pg_before = procfs::cpu_time_of_command("postgres");
        let log_mark = daemon.log_lines();
        let analyzer = match self.opts.analyze_every {
            Some(every) => Some(spawn_analyzer(&self.env.db_url, every).await?),
            None => None,
        };
        let started = Instant::now();
        let job = Daemon::trigger(&mut client, project_id, "sync_all").await?;
        let ends = daemon
            .wait_jobs(
                &mut client,
                &[(project_id, job)],
                started,
                Duration::from_millis(20),
                self.opts.job_timeout,
            )
            .await;
        let analyzes = match analyzer {
            Some((task, count)) => {
                task.abort();
                Some(count.load(std::sync::atomic::Ordering::Relaxed))
            }
            None => None,
        };
        let ends = ends?;
        let end = &ends[0];
        if !end.succeeded {
            return Err(BenchError::Daemon(format!(
                "the full sync failed: {}",
                end.message.as_deref().unwrap_or("no reason given")
            )));
        }
        let wall = end.elapsed.as_secs_f64();
        let (orders_stored, users_stored, poison_records) = self.stored(project_id).await?;
        let orders_seen = end.stream_seen.get("orders").map(Duration::as_secs_f64);
        let orders_stream_secs = orders_seen.map(|s| wall - s);
        let customers_stream_secs = orders_seen;
        let per = |n: u64, s: f64| n as f64 / s.max(1e-9);
        let figures = FullSync {
            orders,
            customers,
            orders_stored,
            users_stored,
            poison_records,
            ready_secs: ready.as_secs_f64(),
            wall_secs: wall,
            orders_per_sec: per(orders, wall),
            customers_per_sec: per(customers, wall),
            customers_stream_secs,
            orders_stream_secs,
            orders_stream_per_sec: orders_stream_secs.map(|s| per(orders, s)),
            customers_stream_per_sec: customers_stream_secs.map(|s| per(customers, s)),
            http_requests: mock.request_count() - requests_before,
            peak_rss_mib: mib(daemon.memory()?.peak_kib),
            daemon_cpu_secs: (daemon.cpu_time()? - cpu_before).as_secs_f64(),
            bench_cpu_secs: (own_cpu() - own_before).as_secs_f64(),
            postgres_cpu_secs: procfs::cpu_time_of_command("postgres")
                .saturating_sub(pg_before)
                .as_secs_f64(),
            commit_times: daemon.commit_times(log_mark),
            analyzes,
        };
        Ok((figures, daemon, mock))
    }

    /// Section 4 on the daemon and mock of section 1.
    async fn incremental(
        &self,
        daemon: &mut Daemon,
        mock: &MockHandle,
        project_id: i64,
    ) -> Result<Incremental, BenchError> {
        let mutations = mock.mutate_random(self.opts.mutations, 4242);
        let mut client = daemon.client().await?;
        let requests_before = mock.request_count();
        let started = Instant::now();
        let job = Daemon::trigger(&mut client, project_id, "sync_all").await?;
        let ends = daemon
            .wait_jobs(
                &mut client,
                &[(project_id, job)],
                started,
                Duration::from_millis(10),
                self.opts.job_timeout,
            )
            .await?;
        if !ends[0].succeeded {
            return Err(BenchError::Daemon(format!(
                "the incremental sync failed: {}",
                ends[0].message.as_deref().unwrap_or("no reason given")
            )));
        }
        Ok(Incremental {
            changes: self.opts.mutations,
            mutations,
            secs: ends[0].elapsed.as_secs_f64(),
            http_requests: mock.request_count() - requests_before,
        })
    }

    /// Section 2 on the rows section 1 stored.
    async fn limits(&self, project_id: i64, full: &FullSync) -> Result<Limits, BenchError> {
        let rows = baseline::load_rows(&self.env.pg, project_id).await?;
        // The same batch size as ours: the writer commits up to MAX_COMMIT_ROWS per transaction
        // when it is the bottleneck (as in a full sync), so the raw loop gets that size too.
        let baselines =
            baseline::measure(&self.env.pg, &rows, crate::sync::engine::MAX_COMMIT_ROWS).await?;
        let ours = full.orders_stream_per_sec.unwrap_or(full.orders_per_sec);
        Ok(Limits {
            ratio_to_upsert: ours / baselines.upsert_rows_per_sec.max(1e-9),
            ratio_to_copy: ours / baselines.copy_rows_per_sec.max(1e-9),
            our_orders_per_sec: ours,
            baselines,
        })
    }

    /// Section 3.
    async fn api_bound(&mut self, project_id: i64) -> Result<ApiBound, BenchError> {
        let o = self.opts;
        let mock = start_mock(o.api_orders, o.api_customers, 7, Some(o.api_rps)).await?;
        self.env.deactivate_all().await?;
        self.env
            .add_integrations(project_id, 1, &mock.url, MOCK_KEY)
            .await?;
        let mut daemon = self.spawn(o.api_rps)?;
        daemon.wait_ready(1, Duration::from_secs(60)).await?;
        // Let the start-up requests (key check) drain out of the mock's bucket.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut client = daemon.client().await?;
        let before = mock.stats();
        let started = Instant::now();
        let job = Daemon::trigger(&mut client, project_id, "sync_all").await?;
        let result = daemon
            .wait_jobs(
                &mut client,
                &[(project_id, job)],
                started,
                Duration::from_millis(20),
                o.job_timeout,
            )
            .await;
        let after = mock.stats();
        daemon.stop().await;
        mock.shutdown().await;
        let end = result?.remove(0);
        let limited = after.rate_limited - before.rate_limited;
        let served = (after.requests - before.requests).saturating_sub(limited);
        let floor = served as f64 / o.api_rps;
        let wall = end.elapsed.as_secs_f64();
        Ok(ApiBound {
            orders: o.api_orders,
            customers: o.api_customers,
            mock_rate_limit: o.api_rps,
            daemon_rps: o.api_rps,
            wall_secs: wall,
            requests_served: served,
            requests_rate_limited: limited,
            floor_secs: floor,
            ratio_to_floor: wall / floor.max(1e-9),
            succeeded: end.succeeded,
        })
    }

    /// Section 5.
    async fn many_projects(&mut self, first_project: i64) -> Result<ManyProjects, BenchError> {
        let o = self.opts;
        let mock = start_mock(o.project_orders, o.project_customers, 5, None).await?;
        self.env.deactivate_all().await?;
        let count = o.projects as i64;
        self.env
            .add_integrations(first_project, count, &mock.url, MOCK_KEY)
            .await?;
        let mut daemon = self.spawn(o.fast_rps)?;
        let ready = daemon
            .wait_ready(o.projects as usize, Duration::from_secs(120))
            .await?;
        let cpu_before = daemon.cpu_time()?;
        let idle_started = Instant::now();
        tokio::time::sleep(o.idle).await;
        let idle_window = idle_started.elapsed();
        let idle_cpu = daemon.cpu_time()? - cpu_before;
        let idle_rss = daemon.memory()?.rss_kib;
        let mut client = daemon.client().await?;
        let started = Instant::now();
        let mut jobs = Vec::with_capacity(o.projects as usize);
        for project_id in first_project..first_project + count {
            jobs.push((
                project_id,
                Daemon::trigger(&mut client, project_id, "sync_all").await?,
            ));
        }
        let ends = daemon
            .wait_jobs(
                &mut client,
                &jobs,
                started,
                Duration::from_millis(200),
                o.job_timeout,
            )
            .await?;
        let wall = ends
            .iter()
            .map(|e| e.elapsed)
            .max()
            .unwrap_or_default()
            .as_secs_f64();
        let peak = daemon.memory()?.peak_kib;
        daemon.stop().await;
        mock.shutdown().await;
        let total_orders = o.project_orders * o.projects;
        let total_customers = o.project_customers * o.projects;
        Ok(ManyProjects {
            projects: o.projects,
            orders_per_project: o.project_orders,
            customers_per_project: o.project_customers,
            ready_secs: ready.as_secs_f64(),
            idle_window_secs: idle_window.as_secs_f64(),
            idle_cpu_percent: 100.0 * idle_cpu.as_secs_f64() / idle_window.as_secs_f64(),
            idle_rss_mib: mib(idle_rss),
            sync_wall_secs: wall,
            total_orders,
            orders_per_sec: total_orders as f64 / wall.max(1e-9),
            customers_per_sec: total_customers as f64 / wall.max(1e-9),
            failed_jobs: ends.iter().filter(|e| !e.succeeded).count() as u64,
            peak_rss_mib: mib(peak),
        })
    }
}

/// Runs `ANALYZE orders, users` every `every` on its own connection until aborted; the counter
/// says how many completed.
async fn spawn_analyzer(
    db_url: &str,
    every: Duration,
) -> Result<
    (
        tokio::task::JoinHandle<()>,
        std::sync::Arc<std::sync::atomic::AtomicU64>,
    ),
    BenchError,
> {
    let (pg, conn_task) = env::connect_raw(db_url).await?;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = count.clone();
    let task = tokio::spawn(async move {
        let _conn = conn_task;
        loop {
            tokio::time::sleep(every).await;
            if pg.batch_execute("ANALYZE orders, users").await.is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    Ok((task, count))
}

/// Records a section's outcome in the report.
fn record<T>(report: &mut Report, section: &str, result: Result<T, BenchError>) -> Option<T> {
    match result {
        Ok(v) => {
            tracing::info!(section, "bench section done");
            Some(v)
        }
        Err(e) => {
            tracing::warn!(section, error = %e, "bench section failed");
            report.errors.push(SectionError {
                section: section.to_string(),
                message: e.to_string(),
            });
            None
        }
    }
}

/// Runs every section and returns the report. Only setting up the environment can fail as a
/// whole; a failing section is recorded in [`Report::errors`] and the run goes on.
pub async fn run(opts: &BenchOptions) -> Result<Report, BenchError> {
    let env = BenchEnv::create(&opts.database_url, &opts.redis_url, opts.explain_slow_ms).await?;
    let mut report = Report {
        started_at: chrono::Utc::now().to_rfc3339(),
        quick: opts.quick,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        database: env.db_name.clone(),
        ..Report::default()
    };
    let mut run = Run {
        opts,
        env,
        daemons: 0,
    };
    let progress = |what: &str| eprintln!("bench: {what}...");

    progress("1. full sync");
    let full = run.full_sync(1, opts.orders, opts.customers).await;
    if let Some((figures, mut daemon, mock)) = record(&mut report, "full_sync", full) {
        // The baselines write the rows exactly as the full sync left them (the idle daemon
        // stays up for the incremental section).
        progress("2. physical limits");
        let limits = run.limits(1, &figures).await;
        report.limits = record(&mut report, "limits", limits);
        progress("4. incremental");
        let inc = run.incremental(&mut daemon, &mock, 1).await;
        report.incremental = record(&mut report, "incremental", inc);
        daemon.stop().await;
        mock.shutdown().await;
        report.full_sync = Some(figures);
    }

    if opts.api_bound {
        progress("3. API-bound");
        let api = run.api_bound(2).await;
        report.api_bound = record(&mut report, "api_bound", api);
    }

    if opts.api_bound && opts.push_rows > 0 {
        progress("8. two-way sync push");
        let push = run.push_throughput(5).await;
        report.push = record(&mut report, "push", push);
    }

    if opts.projects > 0 {
        progress("5. many projects");
        let many = run.many_projects(1000).await;
        report.many_projects = record(&mut report, "many_projects", many);
    }

    if opts.fresh_changes > 0 {
        progress("7. freshness with webhooks");
        let setup = run.freshness_setup(FRESHNESS_PROJECT).await;
        if let Some((mut daemon, mock)) = record(&mut report, "freshness", setup) {
            let hooks = run
                .freshness_webhooks(&mut daemon, &mock, FRESHNESS_PROJECT)
                .await;
            daemon.stop().await;
            let webhooks = record(&mut report, "freshness_webhooks", hooks);
            let schedule = if opts.fresh_scheduled_changes > 0 {
                progress("7. freshness against the schedule");
                let sched = run.freshness_schedule(&mock, FRESHNESS_PROJECT).await;
                record(&mut report, "freshness_schedule", sched)
            } else {
                None
            };
            mock.shutdown().await;
            report.freshness = Some(Freshness {
                orders: opts.fresh_orders,
                customers: opts.fresh_customers,
                webhooks,
                schedule,
            });
        }
    }

    if opts.large_orders > 0
        && let Some(base) = &report.full_sync
    {
        progress("6. memory flatness");
        let (base_orders, base_peak) = (base.orders, base.peak_rss_mib);
        let large = run.full_sync(3, opts.large_orders, opts.customers).await;
        if let Some((f, daemon, mock)) = record(&mut report, "memory", large) {
            daemon.stop().await;
            mock.shutdown().await;
            report.memory = Some(MemoryFlatness {
                base_orders,
                base_peak_rss_mib: base_peak,
                large_orders: f.orders,
                large_customers: f.customers,
                large_peak_rss_mib: f.peak_rss_mib,
                large_wall_secs: f.wall_secs,
                large_orders_per_sec: f.orders_per_sec,
                growth_percent: (f.peak_rss_mib / base_peak.max(1e-9) - 1.0) * 100.0,
            });
        }
    }

    for problem in run.env.cleanup(opts.keep).await {
        report.errors.push(SectionError {
            section: "cleanup".to_string(),
            message: problem,
        });
    }
    report.evaluate();
    Ok(report)
}
