//! `retailcrm-sync demo`: not built yet (see the issue that delivers it).

use std::process::ExitCode;

use super::Cli;

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Runs `demo`.
pub fn execute(_cli: &Cli, _args: &DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`demo` is not implemented yet")
}
