//! `retailcrm-sync mock-crm`: not built yet (see the issue that delivers it).

use std::process::ExitCode;

use super::Cli;

/// Arguments of `mock-crm`.
#[derive(Debug, clap::Args)]
pub struct MockCrmArgs {}

/// Runs `mock-crm`.
pub fn execute(_cli: &Cli, _args: &MockCrmArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`mock-crm` is not implemented yet")
}
