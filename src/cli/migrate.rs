//! `retailcrm-sync migrate`: not built yet.

use std::process::ExitCode;

use super::Cli;

/// Arguments of `migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {}

/// Runs `migrate`.
pub fn execute(_cli: &Cli, _args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`migrate` is not implemented yet")
}
