//! `retailcrm-sync bench`: measures sync speed and memory against the physical limits on the
//! local Postgres and Redis, with the mock RetailCRM in-process and the daemon as a child
//! process (see `crate::bench`). Prints a readable table (figures next to their targets) and a
//! JSON report to a file and/or stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::Cli;
use crate::bench::{self, BenchOptions};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Every size about ten times smaller (a run of a minute or two); explicit sizes still win.
    #[arg(long)]
    pub quick: bool,
    /// Orders of the full-sync account [default: 100000, quick 10000].
    #[arg(long)]
    pub orders: Option<u64>,
    /// Customers of the full-sync account [default: 50000, quick 5000].
    #[arg(long)]
    pub customers: Option<u64>,
    /// Integrations on one daemon for the many-projects section; 0 skips it [default: 200].
    #[arg(long)]
    pub projects: Option<u64>,
    /// Orders of each many-projects account [default: 500, quick 50].
    #[arg(long)]
    pub project_orders: Option<u64>,
    /// Customers of each many-projects account [default: 200, quick 20].
    #[arg(long)]
    pub project_customers: Option<u64>,
    /// Orders of the API-bound (10 rps) account [default: 5000, quick 500].
    #[arg(long)]
    pub api_orders: Option<u64>,
    /// Customers of the API-bound account [default: 2000, quick 200].
    #[arg(long)]
    pub api_customers: Option<u64>,
    /// Skip the API-bound section (it lasts requests / 10 seconds).
    #[arg(long)]
    pub skip_api_bound: bool,
    /// Changes applied to the mock before the incremental sync [default: 1000].
    #[arg(long)]
    pub mutations: Option<u64>,
    /// Orders of the memory-flatness account [default: 400000, quick 40000].
    #[arg(long)]
    pub large_orders: Option<u64>,
    /// Skip the memory-flatness section (the largest sync).
    #[arg(long)]
    pub skip_large: bool,
    /// Seconds of the idle window of the many-projects section [default: 10, quick 5].
    #[arg(long)]
    pub idle_secs: Option<u64>,
    /// Maintenance database; the bench creates (and drops) `rcs_bench_<random>` next to it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// Redis for the daemons' queues (random key prefixes, deleted afterwards).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Write the JSON report to this file.
    #[arg(long, value_name = "PATH")]
    pub json_out: Option<PathBuf>,
    /// Print the JSON report on stdout (the table then goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Experiment: run `ANALYZE orders, users` every SECS (fractions allowed) during the full
    /// syncs, to measure what fresh planner statistics are worth (see the report).
    #[arg(long, value_name = "SECS")]
    pub analyze_every: Option<f64>,
    /// Profiling: log the plan of every bench-database statement slower than MS milliseconds to
    /// the Postgres server log (auto_explain with ANALYZE; slows Postgres down).
    #[arg(long, value_name = "MS")]
    pub explain_slow_ms: Option<u64>,
    /// Keep the bench database and the scratch directory (daemon configs and logs).
    #[arg(long)]
    pub keep: bool,
}

impl BenchArgs {
    /// The options these arguments describe.
    fn options(&self) -> anyhow::Result<BenchOptions> {
        let exe = std::env::current_exe().context("finding this binary to run as the daemon")?;
        let base = if self.quick {
            BenchOptions::quick(exe)
        } else {
            BenchOptions::full(exe)
        };
        let mut o = BenchOptions {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            orders: self.orders.unwrap_or(base.orders),
            customers: self.customers.unwrap_or(base.customers),
            projects: self.projects.unwrap_or(base.projects),
            project_orders: self.project_orders.unwrap_or(base.project_orders),
            project_customers: self.project_customers.unwrap_or(base.project_customers),
            api_orders: self.api_orders.unwrap_or(base.api_orders),
            api_customers: self.api_customers.unwrap_or(base.api_customers),
            api_bound: !self.skip_api_bound,
            mutations: self.mutations.unwrap_or(base.mutations),
            large_orders: self.large_orders.unwrap_or(base.large_orders),
            idle: self.idle_secs.map_or(base.idle, Duration::from_secs),
            keep: self.keep,
            explain_slow_ms: self.explain_slow_ms,
            analyze_every: self
                .analyze_every
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64),
            ..base
        };
        if self.skip_large {
            o.large_orders = 0;
        }
        anyhow::ensure!(o.orders > 0, "--orders must be positive");
        Ok(o)
    }
}

/// Runs `bench`.
pub fn execute(_cli: &Cli, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let opts = args.options()?;
    crate::telemetry::init(&crate::config::LogSettings {
        level: "warn".to_string(),
        ..crate::config::LogSettings::default()
    });
    let rt = super::runtime()?;
    let report = rt
        .block_on(bench::run(&opts))
        .context("setting up the bench (fresh database, scratch directory)")?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let table = report.render();
    if args.json {
        eprintln!("{table}");
        println!("{json}");
    } else {
        println!("{table}");
    }
    if args.keep {
        eprintln!(
            "bench: kept database {} and the scratch directory rcs-bench-* under {}",
            report.database,
            std::env::temp_dir().display()
        );
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
