//! `retailcrm-sync run`: not built yet (see the issue that delivers it).

use std::process::ExitCode;

use super::Cli;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

/// Runs `run`.
pub fn execute(_cli: &Cli, _args: &RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not implemented yet")
}
