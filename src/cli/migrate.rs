//! `retailcrm-sync migrate [--revert-all]`: applies (or reverts) the migrations embedded in the
//! binary against `database.url`. Exit 78 on a bad config, 69 when Postgres is unreachable.

use std::process::ExitCode;

use super::{Cli, EX_CONFIG, EX_UNAVAILABLE};
use crate::config::Settings;
use crate::store::StoreError;
use crate::store::migrations::{MigrationDirection, migrate};

/// Arguments of `migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Revert every applied migration instead (drops the daemon's tables and their data).
    #[arg(long)]
    pub revert_all: bool,
}

/// Loads the config for a one-shot command; prints every error (warnings, such as a missing
/// socket directory, do not concern these commands). `Err(code)` is the exit code to return.
pub(crate) fn load_settings(cli: &Cli) -> Result<Settings, ExitCode> {
    let (path, must_exist) = cli.config_path();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (settings, problems) = Settings::load_with_env(&path, must_exist, &env);
    let errors: Vec<_> = problems.iter().filter(|p| p.is_error()).collect();
    match settings {
        Some(s) if errors.is_empty() => Ok(s),
        _ => {
            eprintln!("{}: invalid configuration:", path.display());
            for e in errors {
                eprintln!("  {e}");
            }
            Err(ExitCode::from(EX_CONFIG))
        }
    }
}

/// Runs `migrate`.
pub fn execute(cli: &Cli, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_default();
    let settings = match load_settings(cli) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let direction = if args.revert_all {
        MigrationDirection::RevertAll
    } else {
        MigrationDirection::Up
    };
    let result = super::runtime()?.block_on(migrate(&settings.database.url, direction));
    match result {
        Ok(versions) => {
            let verb = if args.revert_all {
                "reverted"
            } else {
                "applied"
            };
            if versions.is_empty() {
                println!("nothing to do: no migration {verb}");
            }
            for v in versions {
                println!("{verb} {v}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ StoreError::Connect { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EX_UNAVAILABLE))
        }
        Err(e) => Err(e.into()),
    }
}
