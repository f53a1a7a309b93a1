//! `retailcrm-sync validate`: not built yet.

use std::process::ExitCode;

use super::Cli;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {}

/// Runs `validate`.
pub fn execute(_cli: &Cli, _args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`validate` is not implemented yet")
}
