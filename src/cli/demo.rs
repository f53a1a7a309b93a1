//! `retailcrm-sync demo`: the main job end to end on an embedded default.
//!
//! Starts a mock RetailCRM account (generated orders and customers) on loopback, creates the
//! demo database and a demo project with its integration, starts the real daemon (`run`) as a
//! child process with a temporary config, triggers `sync_all` over the control socket with
//! `ctl trigger --wait` (progress bar), then prints what was synced, how to look at the rows and
//! the URL of the monitoring page, and keeps the daemon (and the mock) running for a look at the
//! page until Ctrl-C (`--exit` stops at once). The page's read views are open without a token
//! (`http.ui_anonymous_read`, loopback only); its actions use the API token the demo prints.
//! Nothing is faked: the daemon, queue, engine and store are the production ones; only
//! RetailCRM is the mock.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::Cli;
use crate::control::client::ControlClient;
use crate::control::protocol::Request;
use crate::mock::{MockConfig, MockCrm};
use crate::model::OrderStatus;
use crate::secret::ApiKey;
use crate::store::Store;
use crate::store::integrations::NewIntegration;

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Orders in the generated RetailCRM account.
    #[arg(long, default_value_t = 5_000)]
    pub orders: u64,
    /// Customers in the generated account.
    #[arg(long, default_value_t = 2_000)]
    pub customers: u64,
    /// Seed of the generated account (same seed, same account).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Postgres database for the demo (created when missing).
    #[arg(
        long,
        env = "RCS_DEMO_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/retailcrm_sync_demo"
    )]
    pub database_url: String,
    /// Redis for the demo's job queue.
    #[arg(
        long,
        env = "RCS_DEMO_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Project id of the demo shop.
    #[arg(long, default_value_t = 1001)]
    pub project_id: i64,
    /// Requests per second to the (mock) RetailCRM; the real API allows 10.
    #[arg(long, default_value_t = 10.0)]
    pub requests_per_second: f64,
    /// The daemon's HTTP listener (the monitoring page); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub http_listen: String,
    /// Stop after the summary instead of keeping the daemon running for a look at the page
    /// (the demo also stops at once when stdin is not a terminal or `CI` is set).
    #[arg(long)]
    pub exit: bool,
}

/// Runs the demo.
pub fn execute(_cli: &Cli, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(demo(args))
}

/// Kills the daemon child if the demo stops half-way.
struct DaemonChild(Option<Child>);

impl DaemonChild {
    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.0.take() {
            // SIGTERM: the daemon drains and exits 0.
            let pid = child.id() as libc::pid_t;
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        bail!("the daemon exited with {status}");
                    }
                    return Ok(());
                }
                if Instant::now() > deadline {
                    child.kill()?;
                    bail!("the daemon did not stop within 30 s of SIGTERM; killed it");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

impl Drop for DaemonChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    println!("retailcrm-sync demo");
    println!(
        "  1/5 mock RetailCRM: generating {} orders and {} customers (seed {})",
        args.orders, args.customers, args.seed
    );
    let mock = MockCrm::start(MockConfig {
        orders: args.orders,
        customers: args.customers,
        seed: args.seed,
        ..MockConfig::default()
    })
    .await
    .context("starting the mock RetailCRM")?;
    println!("      serving at {}", mock.url);

    println!(
        "  2/5 database: {}",
        crate::store::redact_url(&args.database_url)
    );
    if crate::store::admin::ensure_database(&args.database_url)
        .await
        .context(
            "creating the demo database (is PostgreSQL running? scripts/services.sh starts it)",
        )?
    {
        println!("      created the database");
    }
    let mut settings = crate::config::Settings::default();
    settings.database.url = args.database_url.clone();
    settings.database.pool_size = 4;
    let store = Store::connect(&settings.database)
        .await
        .context("connecting to the demo database")?;
    store.run_migrations().await.context("running migrations")?;
    store.reset_project_data(args.project_id).await?;
    store
        .upsert_integration(&NewIntegration {
            project_id: args.project_id,
            project_name: Some("Demo shop".into()),
            api_url: mock.url.clone(),
            api_key: ApiKey::new(mock.api_key.clone()),
            is_active: true,
            sync_orders: true,
            sync_customers: true,
            sync_interval_minutes: 60,
            status_mapping: std::collections::HashMap::<String, OrderStatus>::new(),
            orders_created_from: None,
            default_phone_country: None,
        })
        .await
        .context("creating the demo integration")?;
    println!(
        "      project {} \"Demo shop\" with an active integration",
        args.project_id
    );

    let dir = tempfile::Builder::new()
        .prefix("retailcrm-sync-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let socket = dir.path().join("control.sock");
    let log_path = dir.path().join("daemon.log");
    let prefix = format!("retailcrm-sync-demo-{}", std::process::id());
    let config_path = dir.path().join("retailcrm-sync.toml");
    // The monitoring page's actions need the API token; the demo makes one and prints it.
    let token_path = dir.path().join("api-token");
    let api_token = crate::http::generate_webhook_token();
    std::fs::write(&token_path, format!("{api_token}\n"))?;
    std::fs::write(
        &config_path,
        demo_config(args, &socket, &prefix, &token_path)?,
    )?;

    println!(
        "  3/5 daemon: starting `retailcrm-sync run` (log: {})",
        log_path.display()
    );
    let exe = std::env::current_exe().context("finding this binary")?;
    let log = std::fs::File::create(&log_path)?;
    let mut daemon = DaemonChild(Some(
        Command::new(&exe)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env_remove("NOTIFY_SOCKET")
            .spawn()
            .context("starting the daemon")?,
    ));
    wait_for_socket(&socket, &mut daemon).await?;

    println!(
        "  4/5 sync: `retailcrm-sync ctl trigger {} sync_all --wait`",
        args.project_id
    );
    let sync_started = Instant::now();
    let requests_before = mock.request_count();
    let status = Command::new(&exe)
        .arg("ctl")
        .arg("--socket")
        .arg(&socket)
        .args([
            "trigger",
            &args.project_id.to_string(),
            "sync_all",
            "--wait",
        ])
        .status()
        .context("running ctl")?;
    let sync_time = sync_started.elapsed();
    let requests = mock.request_count() - requests_before;
    if !status.success() {
        daemon.stop().ok();
        bail!(
            "the sync failed (ctl exited with {status}); the daemon log is {}",
            keep(dir, &log_path).display()
        );
    }

    println!("  5/5 summary");
    let summary = store.project_summary(args.project_id).await?;
    let truth_orders = mock.orders_snapshot().len();
    let truth_customers = mock.customers_snapshot().len();
    println!("      RetailCRM (mock): {truth_orders} orders, {truth_customers} customers");
    println!(
        "      Postgres:         {} orders ({} without any contact, stored with no user), {} users ({} from RetailCRM customers, {} created from order contacts)",
        summary.orders,
        summary.orders_without_user,
        summary.users,
        summary.users_from_customers,
        summary.users - summary.users_from_customers
    );
    let merged = truth_customers as i64 - summary.users_from_customers;
    if merged > 0 {
        println!(
            "                        {merged} customers share an e-mail or phone with another one and were linked to that user"
        );
    }
    let statuses: Vec<String> = summary
        .by_status
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    println!("      statuses:         {}", statuses.join(", "));
    println!(
        "      records set aside: {} (see dead_records)",
        summary.dead_records
    );
    println!(
        "      sync took {:.1} s with {requests} requests to RetailCRM at {} requests/s; demo total {:.1} s",
        sync_time.as_secs_f64(),
        args.requests_per_second,
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("Look at the rows:");
    println!(
        "  psql {} -c \"SELECT order_number, status, retailcrm_status, total_amount, currency, ordered_at FROM orders WHERE project_id = {} ORDER BY ordered_at DESC LIMIT 10\"",
        args.database_url, args.project_id
    );
    println!(
        "  psql {} -c \"SELECT started_at, job_kind, outcome, counts FROM sync_runs WHERE project_id = {} ORDER BY id DESC LIMIT 5\"",
        args.database_url, args.project_id
    );
    let complete = summary.orders as usize == truth_orders;
    if !complete {
        eprintln!(
            "warning: Postgres has {} orders but the mock has {truth_orders}",
            summary.orders
        );
    }
    // Stay up for a look only when someone is there to look (and press Ctrl-C): not in CI,
    // not with stdin redirected.
    let interactive = {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal() && std::env::var_os("CI").is_none()
    };
    if !args.exit && interactive {
        look_at_the_page(&socket, &api_token, &mut daemon).await?;
    } else if !args.exit {
        println!("(not a terminal: stopping now; run it in a terminal to look at the page)");
    }
    daemon.stop()?;
    mock.shutdown().await;
    clean_redis(&args.redis_url, &prefix).await;
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints the monitoring page's URL and waits for Ctrl-C (or the daemon's end).
async fn look_at_the_page(
    socket: &Path,
    api_token: &str,
    daemon: &mut DaemonChild,
) -> anyhow::Result<()> {
    let mut client = ControlClient::connect(socket).await?;
    let status = client.call(&Request::Status { project_id: None }).await?;
    let listen = status
        .data
        .as_ref()
        .and_then(|d| d.get("http_listen"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let Some(listen) = listen else {
        println!("(the HTTP listener is off, so there is no monitoring page to show)");
        return Ok(());
    };
    let port = listen.rsplit(':').next().unwrap_or("9860");
    println!();
    println!("Monitoring page: http://{listen}/");
    println!("  read views open without a token here (http.ui_anonymous_read, loopback only);");
    println!("  Sync now, Full resync, Pause/Resume and Retry ask for the API token:");
    println!("  {api_token}");
    println!(
        "  on a server: `ssh -L {port}:127.0.0.1:{port} HOST` on your machine, then open http://localhost:{port}/"
    );
    println!(
        "The daemon and the mock keep running for a look; press Ctrl-C to stop (--exit stops at once)."
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                println!();
                println!("stopping the daemon");
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Some(child) = daemon.0.as_mut()
                    && let Some(status) = child.try_wait()? {
                        daemon.0 = None;
                        bail!("the daemon exited with {status}");
                    }
            }
        }
    }
}

fn demo_config(
    args: &DemoArgs,
    socket: &Path,
    prefix: &str,
    token_path: &Path,
) -> anyhow::Result<String> {
    let mut settings = crate::config::Settings::default();
    settings.database.url = args.database_url.clone();
    settings.database.pool_size = 8;
    settings.redis.url = args.redis_url.clone();
    settings.redis.key_prefix = prefix.to_string();
    settings.control.socket_path = socket.display().to_string();
    settings.control.socket_mode = "0600".to_string();
    settings.sync.requests_per_second = args.requests_per_second;
    // A free port by default: the demo must not collide with a daemon already installed here.
    settings.http.listen = args.http_listen.clone();
    settings.http.api_token_file = token_path.display().to_string();
    settings.http.ui_anonymous_read = true;
    Ok(toml::to_string(&settings)?)
}

async fn wait_for_socket(socket: &Path, daemon: &mut DaemonChild) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut client) = ControlClient::connect(socket).await
            && client.call(&Request::Ping).await.is_ok()
        {
            return Ok(());
        }
        if let Some(child) = daemon.0.as_mut()
            && let Some(status) = child.try_wait()?
        {
            daemon.0 = None;
            bail!("the daemon exited during start-up with {status}");
        }
        if Instant::now() > deadline {
            bail!("the daemon did not open its control socket within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Keeps the temporary directory (so the log survives) and returns the log path.
fn keep(dir: tempfile::TempDir, log: &Path) -> PathBuf {
    let _ = dir.keep();
    log.to_path_buf()
}

/// Removes the demo's Redis keys.
async fn clean_redis(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let _ = crate::queue::keys::delete_prefix(&mut conn, prefix).await;
}
