//! `retailcrm-sync mock-crm`: serves a generated mock RetailCRM account on loopback until
//! Ctrl-C or SIGTERM. Drive it through `/admin/stats`, `/admin/mutate?n=&seed=`,
//! `/admin/revoke-key`, `/admin/restore-key`, `/admin/faults?rate_limit=&fail_rate=&truncate_rate=&slow_ms=`,
//! `/admin/account?exists=false`, `/admin/orders/{id}/status?status=` and
//! `/admin/orders/{id}/delete`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use super::Cli;
use crate::mock::{FaultConfig, MockConfig, MockCrm};

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
    /// Timezone reported by /api/v5/settings.
    #[arg(long, default_value = "Europe/Moscow")]
    pub timezone: String,
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
    let rt = super::runtime()?;
    rt.block_on(async {
        let cfg = MockConfig {
            listen: args.listen,
            orders: args.orders,
            customers: args.customers,
            seed: args.seed,
            api_key: args.api_key.trim().to_string(),
            timezone: args.timezone.clone(),
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
