//! The command line: one `clap` parser, one file per subcommand. Each subcommand returns an
//! exit code; `anyhow` is used only here, at the edge, to print a chain of causes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod ctl;
pub mod demo;
pub mod docs;
pub mod integration;
pub mod migrate;
pub mod mock_crm;
pub mod phones;
pub mod run;
pub mod validate;

/// Exit code for a bad configuration (sysexits.h EX_CONFIG); systemd's ExecStartPre shows it.
pub const EX_CONFIG: u8 = 78;
/// Exit code when a service we need is unavailable (sysexits.h EX_UNAVAILABLE).
pub const EX_UNAVAILABLE: u8 = 69;

/// Default config path, used when neither `--config` nor `RETAILCRM_SYNC_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/retailcrm-sync/retailcrm-sync.toml";

/// The exit codes, shown at the end of `--help` and in the man page.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   failure (the message says what failed and what to do)
  2   usage error (unknown option, missing argument)
  69  the daemon (or a service it needs) is unavailable: `ctl` finds no daemon
  78  invalid configuration (`validate` lists every problem)

Examples:
  retailcrm-sync validate --config /etc/retailcrm-sync/retailcrm-sync.toml
  retailcrm-sync run --config /etc/retailcrm-sync/retailcrm-sync.toml
  retailcrm-sync ctl status
  retailcrm-sync integration add --project-id 42 --api-url https://shop.retailcrm.ru --api-key-file key.txt
  retailcrm-sync completions bash > /etc/bash_completion.d/retailcrm-sync";

#[derive(Debug, Parser)]
#[command(
    name = "retailcrm-sync",
    version,
    about = "Keeps a loyalty platform's Postgres in step with RetailCRM accounts",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Config file (TOML). Environment variables `RETAILCRM_SYNC__SECTION__KEY` override it.
    #[arg(
        long,
        global = true,
        env = "RETAILCRM_SYNC_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The config path to load, and whether the user named it (a named file must exist).
    pub fn config_path(&self) -> (PathBuf, bool) {
        match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (under systemd or in a terminal).
    #[command(after_help = "Examples:\n  \
        retailcrm-sync run --config /etc/retailcrm-sync/retailcrm-sync.toml\n  \
        RETAILCRM_SYNC__LOG__LEVEL=debug retailcrm-sync run   # one setting from the environment\n\n\
        Under systemd use the shipped unit (systemd/retailcrm-sync.service): Type=notify, \
        SIGHUP reloads, SIGTERM drains running jobs.\n\
        Exit codes: 0 stopped cleanly, 1 failed, 69 a dependency never came up, 78 bad config.")]
    Run(run::RunArgs),
    /// Check a config file and list every problem; exits 78 when it is invalid.
    Validate(validate::ValidateArgs),
    /// Apply (or revert) the database migrations embedded in this binary.
    Migrate(migrate::MigrateArgs),
    /// Manage integration rows (one per loyalty project).
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        retailcrm-sync integration add --project-id 42 --api-url https://shop.retailcrm.ru --api-key-file key.txt\n  \
        retailcrm-sync integration test --project-id 42\n  \
        retailcrm-sync integration set --project-id 42 --webhook-token generate\n  \
        retailcrm-sync integration set --project-id 42 --conflict-rule platform_wins\n  \
        retailcrm-sync integration list --json"
    )]
    Integration(integration::IntegrationCommand),
    /// Talk to a running daemon over its control socket.
    #[command(after_help = "Examples:\n  \
        retailcrm-sync ctl status                      # every project\n  \
        retailcrm-sync ctl trigger 42 sync_all --wait  # sync now and wait for the result\n  \
        retailcrm-sync ctl dead 42 && retailcrm-sync ctl retry 42 JOB_ID\n  \
        retailcrm-sync ctl outbox 42                   # two-way sync rows\n  \
        retailcrm-sync --json ctl status | jq .        # scripts: JSON, errors too\n\n\
        Exit codes: 0 ok, 1 the daemon refused (message on stderr, or JSON with --json), \
        69 no daemon on the socket.")]
    Ctl(ctl::CtlArgs),
    /// Serve a mock RetailCRM account on loopback (tests, demos, benchmarks).
    MockCrm(mock_crm::MockCrmArgs),
    /// The main job end to end on an embedded default: mock RetailCRM, local Postgres and Redis.
    Demo(demo::DemoArgs),
    /// Measure sync speed and memory against the physical limits.
    Bench(bench::BenchArgs),
    /// Maintain stored phone numbers (`phones renormalize`).
    #[command(subcommand)]
    Phones(phones::PhonesCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff) of this binary.
    Man(docs::ManArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::execute(&cli, args),
        Command::Validate(args) => validate::execute(&cli, args),
        Command::Migrate(args) => migrate::execute(&cli, args),
        Command::Integration(cmd) => integration::execute(&cli, cmd),
        Command::Ctl(args) => ctl::execute(&cli, args),
        Command::MockCrm(args) => mock_crm::execute(&cli, args),
        Command::Demo(args) => demo::execute(&cli, args),
        Command::Bench(args) => bench::execute(&cli, args),
        Command::Phones(cmd) => phones::execute(&cli, cmd),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A tokio runtime for the one-shot subcommands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
