//! `retailcrm-sync ctl`: not built yet (see the issue that delivers it).

use std::process::ExitCode;

use super::Cli;

/// Arguments of `ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {}

/// Runs `ctl`.
pub fn execute(_cli: &Cli, _args: &CtlArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ctl` is not implemented yet")
}
