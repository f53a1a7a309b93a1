//! `retailcrm-sync phones renormalize [--project-id N] [--apply]`: re-reads the stored
//! `users.phone` with the current phone rules. A dry run unless `--apply`; prints per project
//! what changes and which users would share a phone (those are reported, never merged, and left
//! unchanged). The logic is in `store::phones`.
//!
//! Exit codes: 0 done, 1 the command failed (e.g. no such project), 69 Postgres unreachable,
//! 78 bad config.

use std::process::ExitCode;

use super::migrate::load_settings;
use super::{Cli, EX_UNAVAILABLE};
use crate::store::phones::{CountrySource, ProjectPhones};
use crate::store::{Store, StoreError};

/// Subcommands of `phones`.
#[derive(Debug, clap::Subcommand)]
pub enum PhonesCommand {
    /// Re-normalise stored phones with the current rules (dry run unless --apply).
    ///
    /// The raw input is gone, so this works from the stored digits and fixes only what they
    /// can tell: an extension glued on by older versions (`89123456789123` from
    /// `8 912 345-67-89 доб. 123` becomes `79123456789`), numbers stored without country code
    /// (`3432123456` under RU), a trunk `8` turned into `7` under another default country
    /// (`70291234567` under BY becomes `375291234567`), and hand-written values with spaces or
    /// `+`. It CANNOT undo a foreign number misread as Russian: `+84 912 345 678` was stored
    /// as `74912345678`, a valid Russian number, and stays so. Only RetailCRM still has the
    /// numbers as typed: `ctl trigger P resync_all` re-reads them (customers, then orders, which
    /// re-links orders to the right users); points already credited to the wrong user are
    /// the platform's to move. Digits that already form a valid number, or that are
    /// ambiguous, stay as stored.
    ///
    /// Numbers without a country code are read in the integration's `--phone-country`, else
    /// RU (the RetailCRM account is not asked: set the integration's country first if the
    /// account is not Russian).
    Renormalize(RenormalizeArgs),
}

/// Arguments of `phones renormalize`.
#[derive(Debug, clap::Args)]
pub struct RenormalizeArgs {
    /// Only this loyalty project (default: every project with users).
    #[arg(long)]
    pub project_id: Option<i64>,
    /// Write the changes (without it nothing is written).
    #[arg(long)]
    pub apply: bool,
}

/// Runs `phones`.
pub fn execute(cli: &Cli, cmd: &PhonesCommand) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_default();
    let settings = match load_settings(cli) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let PhonesCommand::Renormalize(args) = cmd;
    let result = super::runtime()?.block_on(async {
        let store = Store::connect(&settings.database).await?;
        store.renormalize_phones(args.project_id, args.apply).await
    });
    match result {
        Ok(projects) => {
            print_report(&projects, args.apply);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_unavailable() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EX_UNAVAILABLE))
        }
        Err(e @ StoreError::Invalid(_)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

fn print_report(projects: &[ProjectPhones], apply: bool) {
    if projects.is_empty() {
        println!("no project has users; nothing to do");
    }
    let mut collisions = 0;
    for p in projects {
        let source = match p.country_source {
            CountrySource::Integration => "the integration's phone country",
            CountrySource::Default => "default; set one with `integration set --phone-country`",
        };
        println!(
            "project {}: {} phones checked (numbers without code read in {}, {source}): {} {}, \
             {} collision(s) left unchanged, {} without digits left as they are",
            p.project_id,
            p.checked,
            p.country,
            p.changes.len(),
            if p.applied { "changed" } else { "would change" },
            p.collisions.len(),
            p.unreadable,
        );
        for c in &p.changes {
            println!("  user {}: {} -> {}", c.user_id, c.old, c.new);
        }
        for c in &p.collisions {
            let ids: Vec<String> = c.user_ids.iter().map(i64::to_string).collect();
            println!(
                "  collision: users {} would share {}; left unchanged (merge or correct them by hand)",
                ids.join(", "),
                c.phone
            );
        }
        collisions += p.collisions.len();
    }
    if !apply {
        println!("dry run: nothing written; pass --apply to write the changes");
    }
    if collisions > 0 {
        println!(
            "{collisions} collision(s): those users keep their stored phones; decide by hand \
             which of them is the person"
        );
    }
}
