//! `retailcrm-sync validate`: loads the config exactly as `run` would and prints every problem
//! (errors and warnings). Exit 78 (EX_CONFIG) when any error is found, 0 with `ok` otherwise.
//! systemd's `ExecStartPre=` runs it so a bad file never reaches the daemon.

use std::process::ExitCode;

use super::{Cli, EX_CONFIG};
use crate::config::Settings;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {}

/// Runs `validate`.
pub fn execute(cli: &Cli, _args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let (path, must_exist) = cli.config_path();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (settings, problems) = Settings::load_with_env(&path, must_exist, &env);
    for problem in &problems {
        println!("{problem}");
    }
    let errors = problems.iter().filter(|p| p.is_error()).count();
    if errors > 0 || settings.is_none() {
        println!(
            "{}: {errors} error(s), {} warning(s)",
            path.display(),
            problems.len() - errors
        );
        return Ok(ExitCode::from(EX_CONFIG));
    }
    let source = if path.exists() {
        path.display().to_string()
    } else {
        format!("{} absent; defaults and environment", path.display())
    };
    println!("ok: {source} ({} warning(s))", problems.len());
    Ok(ExitCode::SUCCESS)
}
