//! `retailcrm-sync bench`: not built yet (see the issue that delivers it).

use std::process::ExitCode;

use super::Cli;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs `bench`.
pub fn execute(_cli: &Cli, _args: &BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`bench` is not implemented yet")
}
