//! `retailcrm-sync integration ...`: not built yet.

use std::process::ExitCode;

use super::Cli;

/// Subcommands of `integration`.
#[derive(Debug, clap::Subcommand)]
pub enum IntegrationCommand {
    /// List integrations (keys masked).
    List,
}

/// Runs `integration`.
pub fn execute(_cli: &Cli, _cmd: &IntegrationCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`integration` is not implemented yet")
}
