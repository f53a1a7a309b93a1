//! `retailcrm-sync mock-crm`: serves a generated mock RetailCRM account on loopback until
//! Ctrl-C or SIGTERM. Drive it through `/admin/stats`, `/admin/mutate?n=&seed=`,
//! `/admin/revoke-key`, `/admin/restore-key`, `/admin/faults?rate_limit=&fail_rate=&truncate_rate=&slow_ms=`,
//! `/admin/account?exists=false`, `/admin/orders/{id}/status?status=`,
//! `/admin/orders/{id}/delete` and `/admin/customers/{id}/merge?into=` (a RetailCRM "combine":
//! `deleted` + `combinedTo` in history, the orders move).
//!
//! Trigger: `--webhook-url URL` makes the mock call URL after every change, as a RetailCRM
//! trigger with the action "HTTP request" does (one form-encoded `POST` per changed entity:
//! `entity=order&order_id=<id>` or `entity=customer&customer_id=<id>`, no retry). At run time:
//! `POST /admin/webhook` with `{"url": "..."}` (or `{"url": null}` to stop), `GET /admin/webhook`.
//!
//! Strictness and scale: `--history-page-cap N` (history `page` above N answers 400, as the live
//! API; 0 = no cap; default 10), `--list-order newest|oldest|unstable` (sort order of `/orders`
//! and `/customers`; `unstable` serves every request in a different order),
//! `--pad-order-history N` / `--pad-customer-history N` (N virtual history records older than
//! the real ones, costing no memory) with `--history-stride S` (their id spacing).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use super::Cli;
use crate::mock::{FaultConfig, ListOrder, MockConfig, MockCrm};

/// Arguments of `mock-crm`.
#[derive(Debug, clap::Args)]
pub struct MockCrmArgs {
    /// Address to listen on (port 0 picks a free one; the URL is printed).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Orders to generate.
    #[arg(long, default_value_t = 1000)]
    pub orders: u64,
    /// Customers to generate.
    #[arg(long, default_value_t = 500)]
    pub customers: u64,
    /// Seed: the same seed gives the same account.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The API key the mock accepts.
    #[arg(long, env = "MOCK_CRM_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Requests per second before answering 503 (like the real API's 10 per second).
    #[arg(long)]
    pub rate_limit: Option<f64>,
    /// Share (0..1) of requests answered with HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Share (0..1) of successful answers cut in half.
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Delay before each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub slow_ms: u64,
    /// Timezone reported by /api/v5/settings (and of every createdAt).
    #[arg(long, default_value = "Europe/Moscow")]
    pub timezone: String,
    /// History requests with `page` above this answer 400 "Use the shift of the
    /// filter\[sinceId\] instead of page parameter", as RetailCRM does (0: no cap).
    #[arg(long, default_value_t = 10)]
    pub history_page_cap: u32,
    /// Sort order of /orders and /customers: newest, oldest, or unstable (a different
    /// pseudo-random order on every request, so paging by page is unreliable).
    #[arg(long, default_value = "newest")]
    pub list_order: ListOrder,
    /// Virtual order history records older than the real ones (e.g. 10000000 for a deep
    /// account; they cost no memory).
    #[arg(long, default_value_t = 0)]
    pub pad_order_history: u64,
    /// Virtual customer history records older than the real ones.
    #[arg(long, default_value_t = 0)]
    pub pad_customer_history: u64,
    /// Id spacing of the virtual history records (1: dense ids, larger: sparse).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub history_stride: u64,
    /// Act as RetailCRM's trigger: after every change (admin mutations, API writes), POST
    /// `entity=order&order_id=<id>` or `entity=customer&customer_id=<id>` (form-encoded) to this
    /// URL, used as given (e.g. `http://127.0.0.1:8090/webhook?token=...`). One call per
    /// changed entity, 2 s timeout, no retry. Changeable at run time via `POST /admin/webhook`.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
}

/// Runs `mock-crm`.
pub fn execute(_cli: &Cli, args: &MockCrmArgs) -> anyhow::Result<ExitCode> {
    for (name, v) in [
        ("--fail-rate", args.fail_rate),
        ("--truncate-rate", args.truncate_rate),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&v),
            "{name} must be between 0 and 1, got {v}"
        );
    }
    if !args.listen.ip().is_loopback() {
        anyhow::bail!("the mock serves on loopback only; use --listen 127.0.0.1:PORT");
    }
    anyhow::ensure!(
        !args.api_key.trim().is_empty(),
        "--api-key must not be empty"
    );
    anyhow::ensure!(
        args.timezone.parse::<chrono_tz::Tz>().is_ok(),
        "--timezone {:?} is not an IANA timezone name such as Europe/Moscow",
        args.timezone
    );
    if let Some(url) = &args.webhook_url {
        crate::mock::server::check_webhook_url(url)
            .map_err(|msg| anyhow::anyhow!("--webhook-url: {msg}"))?;
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        let cfg = MockConfig {
            listen: args.listen,
            orders: args.orders,
            customers: args.customers,
            seed: args.seed,
            api_key: args.api_key.trim().to_string(),
            timezone: args.timezone.clone(),
            history_page_cap: args.history_page_cap,
            // `unstable` permutes from the account's seed.
            list_order: match args.list_order {
                ListOrder::Unstable { .. } => ListOrder::Unstable { seed: args.seed },
                other => other,
            },
            pad_order_history: args.pad_order_history,
            pad_customer_history: args.pad_customer_history,
            history_stride: args.history_stride,
            webhook_url: args.webhook_url.clone(),
            faults: FaultConfig {
                rate_limit: args.rate_limit,
                fail_rate: args.fail_rate,
                truncate_rate: args.truncate_rate,
                slow_ms: args.slow_ms,
                churn_per_list: 0,
            },
            ..MockConfig::default()
        };
        let handle = MockCrm::start(cfg)
            .await
            .context("starting the mock RetailCRM")?;
        println!(
            "mock-crm listening on {} ({} orders, {} customers, seed {})",
            handle.url, args.orders, args.customers, args.seed
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        handle.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
