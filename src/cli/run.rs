//! `retailcrm-sync run`: the long-running daemon. Loads and validates the config (every problem
//! listed, exit 78 when bad), sets up logging, and runs the actor system on a multi-thread tokio
//! runtime until SIGTERM/SIGINT.

use std::process::ExitCode;

use super::{Cli, EX_CONFIG, EX_UNAVAILABLE};
use crate::config::Settings;
use crate::daemon::lifecycle::{self, DaemonError};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

/// Runs the daemon.
pub fn execute(cli: &Cli, _args: &RunArgs) -> anyhow::Result<ExitCode> {
    let (path, must_exist) = cli.config_path();
    let settings = match Settings::load(&path, must_exist) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    crate::telemetry::init(&settings.log);
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("retailcrm-sync")
            .build()
            .unwrap_or_else(|e| {
                eprintln!("cannot start the tokio runtime: {e}");
                std::process::exit(1)
            })
    });
    let result = system.block_on(lifecycle::run(settings, path, crate::clock::system()));
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(DaemonError::Interrupted(what)) => {
            tracing::info!("stopped by a signal while waiting for {what}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ DaemonError::Control(_)) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            Ok(ExitCode::from(EX_UNAVAILABLE))
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
