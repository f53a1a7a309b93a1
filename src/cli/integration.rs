//! `retailcrm-sync integration add|list|set|remove`: manage integration rows from the shell.
//! The API key is read from `--api-key-file` or stdin and never printed: `list` masks it.
//! URLs must pass `config::validate_api_url`; mapping values must be platform statuses.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::NaiveDate;

use super::Cli;
use super::migrate::load_settings;
use crate::config::{Settings, validate_api_url};
use crate::model::{OrderStatus, PhoneCountry};
use crate::secret::ApiKey;
use crate::store::{Integration, IntegrationPatch, NewIntegration, Store};

/// Subcommands of `integration`.
#[derive(Debug, clap::Subcommand)]
pub enum IntegrationCommand {
    /// Create (or replace) a project's integration.
    Add(AddArgs),
    /// List integrations (keys masked).
    List(ListArgs),
    /// Change fields of an existing integration.
    Set(SetArgs),
    /// Delete a project's integration (synced orders and users stay).
    Remove(RemoveArgs),
    /// Test the connection: the URL is a RetailCRM account speaking API v5 and the key has the
    /// scopes the enabled streams need (`order_read`, `customer_read`, `reference_read`).
    Test(TestArgs),
}

/// Arguments of `integration test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Loyalty project id.
    #[arg(long)]
    pub project_id: i64,
}

/// Arguments of `integration add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Loyalty project id.
    #[arg(long)]
    pub project_id: i64,
    /// Project name (stored when the project row is created).
    #[arg(long)]
    pub project_name: Option<String>,
    /// RetailCRM account URL (https; http only for loopback).
    #[arg(long)]
    pub api_url: String,
    /// File holding the API key; without it the key is read from stdin.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Minutes between scheduled syncs.
    #[arg(long, default_value_t = 60)]
    pub interval_minutes: i32,
    /// Do not sync orders.
    #[arg(long)]
    pub no_orders: bool,
    /// Do not sync customers.
    #[arg(long)]
    pub no_customers: bool,
    /// Create it inactive.
    #[arg(long)]
    pub inactive: bool,
    /// JSON object RetailCRM status code -> platform status, e.g. '{"paid":"CONFIRMED"}'.
    #[arg(long, value_name = "JSON")]
    pub status_mapping: Option<String>,
    /// Sync only orders created on or after this date (YYYY-MM-DD, the account's timezone).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub orders_from: Option<NaiveDate>,
    /// Country in which phones written without a country code are read (ISO 3166 alpha-2,
    /// e.g. KZ). Without it: the account's country (its default store), else RU.
    #[arg(long, value_name = "CC")]
    pub phone_country: Option<PhoneCountry>,
}

/// Arguments of `integration list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `integration set`.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Loyalty project id.
    #[arg(long)]
    pub project_id: i64,
    /// New RetailCRM account URL.
    #[arg(long)]
    pub api_url: Option<String>,
    /// Read a new API key from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "api_key_stdin")]
    pub api_key_file: Option<PathBuf>,
    /// Read a new API key from stdin.
    #[arg(long)]
    pub api_key_stdin: bool,
    /// Activate or deactivate.
    #[arg(long, value_name = "true|false")]
    pub active: Option<bool>,
    /// Sync orders or not.
    #[arg(long, value_name = "true|false")]
    pub orders: Option<bool>,
    /// Sync customers or not.
    #[arg(long, value_name = "true|false")]
    pub customers: Option<bool>,
    /// Minutes between scheduled syncs.
    #[arg(long)]
    pub interval_minutes: Option<i32>,
    /// Replace the status mapping (JSON object code -> platform status).
    #[arg(long, value_name = "JSON")]
    pub status_mapping: Option<String>,
    /// Sync only orders created on or after this date (YYYY-MM-DD); `all` removes the filter.
    /// Orders already synced stay; `ctl trigger P resync_orders` reads the wider range.
    #[arg(long, value_name = "YYYY-MM-DD|all", value_parser = parse_orders_from)]
    pub orders_from: Option<OrdersFrom>,
    /// Country in which phones written without a country code are read (ISO 3166 alpha-2,
    /// e.g. KZ); `account` removes it (the account's country, else RU). Applies to rows synced
    /// from now on; `retailcrm-sync phones renormalize` re-reads stored phones.
    #[arg(long, value_name = "CC|account", value_parser = parse_phone_country)]
    pub phone_country: Option<PhoneCountryArg>,
    /// Webhook secret of the project's RetailCRM triggers: `generate` makes a random one and
    /// prints it once with the trigger URL and settings to paste into RetailCRM; `none` removes
    /// it (webhooks are then refused). Only its SHA-256 is stored.
    #[arg(long, value_name = "generate|none", value_parser = parse_webhook_token, conflicts_with = "webhook_token_file")]
    pub webhook_token: Option<WebhookTokenArg>,
    /// Use the secret in this file (at least 16 characters, no spaces) as the webhook secret.
    #[arg(long, value_name = "FILE")]
    pub webhook_token_file: Option<PathBuf>,
    /// Two-way sync: who wins a field changed both in RetailCRM and on the platform since the
    /// last sync: `retailcrm_wins` (default: the push of that field is skipped and the conflict
    /// recorded) or `platform_wins` (pushed anyway).
    #[arg(long, value_name = "retailcrm_wins|platform_wins")]
    pub conflict_rule: Option<crate::store::integrations::ConflictRule>,
    /// Two-way sync: platform status -> RetailCRM status code for pushed order statuses, e.g.
    /// '{"REFUNDED":"refund-done"}' (replaces the previous map; `{}` clears it).
    #[arg(long, value_name = "JSON")]
    pub status_back_mapping: Option<String>,
}

fn parse_back_mapping_arg(json: &str) -> anyhow::Result<HashMap<OrderStatus, String>> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("--status-back-mapping is not JSON")?;
    let obj = value
        .as_object()
        .context("--status-back-mapping must be a JSON object of platform status -> code")?;
    let mut map = HashMap::new();
    for (status, code) in obj {
        let status: OrderStatus = status.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        let code = code
            .as_str()
            .filter(|c| !c.trim().is_empty())
            .with_context(|| {
                format!("--status-back-mapping: {status} must map to a status code")
            })?;
        map.insert(status, code.trim().to_string());
    }
    Ok(map)
}

/// The value of `integration set --webhook-token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookTokenArg {
    /// Make a new random secret.
    Generate,
    /// Remove the secret.
    None,
}

fn parse_webhook_token(s: &str) -> Result<WebhookTokenArg, String> {
    match s.to_ascii_lowercase().as_str() {
        "generate" => Ok(WebhookTokenArg::Generate),
        "none" => Ok(WebhookTokenArg::None),
        _ => Err("use `generate` or `none` (or --webhook-token-file FILE for a given one)".into()),
    }
}

/// The value of `integration set --phone-country`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneCountryArg {
    /// This country.
    Country(PhoneCountry),
    /// The account's country, else RU.
    Account,
}

fn parse_phone_country(s: &str) -> Result<PhoneCountryArg, String> {
    if s.eq_ignore_ascii_case("account") {
        return Ok(PhoneCountryArg::Account);
    }
    s.parse::<PhoneCountry>()
        .map(PhoneCountryArg::Country)
        .map_err(|e| format!("{e}, or `account`"))
}

/// The value of `integration set --orders-from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrdersFrom {
    /// Orders created on or after this date.
    Date(NaiveDate),
    /// Every order.
    All,
}

fn parse_orders_from(s: &str) -> Result<OrdersFrom, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(OrdersFrom::All);
    }
    s.parse::<NaiveDate>()
        .map(OrdersFrom::Date)
        .map_err(|e| format!("`{s}` is not a date YYYY-MM-DD or `all`: {e}"))
}

/// Arguments of `integration remove`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Loyalty project id.
    #[arg(long)]
    pub project_id: i64,
}

/// Runs `integration`.
pub fn execute(cli: &Cli, cmd: &IntegrationCommand) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_default();
    let settings = match load_settings(cli) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    super::runtime()?.block_on(async {
        let store = Store::connect(&settings.database).await?;
        match cmd {
            IntegrationCommand::Add(a) => add(&store, a).await,
            IntegrationCommand::List(a) => list(&store, a).await,
            IntegrationCommand::Set(a) => set(&store, &settings, a).await,
            IntegrationCommand::Remove(a) => remove(&store, a).await,
            IntegrationCommand::Test(a) => test(&store, &settings, a).await,
        }
    })
}

async fn add(store: &Store, a: &AddArgs) -> anyhow::Result<ExitCode> {
    let api_url = check_url(&a.api_url)?;
    let status_mapping = match &a.status_mapping {
        Some(json) => parse_mapping_arg(json)?,
        None => HashMap::new(),
    };
    if a.interval_minutes <= 0 {
        bail!("--interval-minutes must be positive");
    }
    let api_key = read_key(a.api_key_file.as_deref())?;
    let saved = store
        .upsert_integration(&NewIntegration {
            project_id: a.project_id,
            project_name: a.project_name.clone(),
            api_url,
            api_key,
            is_active: !a.inactive,
            sync_orders: !a.no_orders,
            sync_customers: !a.no_customers,
            sync_interval_minutes: a.interval_minutes,
            status_mapping,
            orders_created_from: a.orders_from,
            default_phone_country: a.phone_country,
        })
        .await?;
    println!(
        "saved integration of project {} (key {})",
        saved.project_id,
        saved.api_key.masked()
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(store: &Store, a: &ListArgs) -> anyhow::Result<ExitCode> {
    let all = store.list_integrations().await?;
    if a.json {
        let rows: Vec<serde_json::Value> = all.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("no integrations; add one with `retailcrm-sync integration add`");
    }
    for i in &all {
        println!(
            "project {} ({}): {} key {} {} orders={}{} customers={} every {} min, phones {}, \
             webhook {}, last sync {}",
            i.project_id,
            i.project_name.as_deref().unwrap_or("-"),
            i.api_url,
            i.api_key.masked(),
            if i.is_active { "active" } else { "inactive" },
            i.sync_orders,
            i.orders_created_from
                .map_or(String::new(), |d| format!(" (created from {d})")),
            i.sync_customers,
            i.sync_interval_minutes,
            i.default_phone_country
                .map_or("account's country".to_string(), |c| c.to_string()),
            if i.webhook_token_sha256.is_some() {
                "set"
            } else {
                "not set"
            },
            i.last_sync_at
                .map_or("never".to_string(), |t| t.to_rfc3339()),
        );
        for e in &i.status_mapping_errors {
            println!("  warning: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(i: &Integration) -> serde_json::Value {
    let mut mapping: Vec<_> = i.status_mapping.iter().collect();
    mapping.sort_by(|a, b| a.0.cmp(b.0));
    serde_json::json!({
        "project_id": i.project_id,
        "project_name": i.project_name,
        "api_url": i.api_url,
        "api_key": i.api_key.masked(),
        "is_active": i.is_active,
        "sync_orders": i.sync_orders,
        "sync_customers": i.sync_customers,
        "sync_interval_minutes": i.sync_interval_minutes,
        "status_mapping": mapping.into_iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "status_mapping_errors": i.status_mapping_errors,
        "orders_created_from": i.orders_created_from,
        "default_phone_country": i.default_phone_country.map(|c| c.to_string()),
        "webhook_token": if i.webhook_token_sha256.is_some() { "set" } else { "not set" },
        "conflict_rule": i.conflict_rule.as_str(),
        "status_back_mapping": crate::store::integrations::back_mapping_json(&i.status_back_mapping),
        "last_sync_at": i.last_sync_at,
        "updated_at": i.updated_at,
    })
}

async fn set(store: &Store, settings: &Settings, a: &SetArgs) -> anyhow::Result<ExitCode> {
    let api_key = if let Some(f) = &a.api_key_file {
        Some(read_key(Some(f))?)
    } else if a.api_key_stdin {
        Some(read_key(None)?)
    } else {
        None
    };
    let patch = IntegrationPatch {
        api_url: a.api_url.as_deref().map(check_url).transpose()?,
        api_key,
        is_active: a.active,
        sync_orders: a.orders,
        sync_customers: a.customers,
        sync_interval_minutes: a.interval_minutes,
        status_mapping: a
            .status_mapping
            .as_deref()
            .map(parse_mapping_arg)
            .transpose()?,
        orders_created_from: a.orders_from.map(|f| match f {
            OrdersFrom::Date(d) => Some(d),
            OrdersFrom::All => None,
        }),
        default_phone_country: a.phone_country.map(|c| match c {
            PhoneCountryArg::Country(c) => Some(c),
            PhoneCountryArg::Account => None,
        }),
        webhook_token_sha256: None,
        conflict_rule: a.conflict_rule,
        status_back_mapping: a
            .status_back_mapping
            .as_deref()
            .map(parse_back_mapping_arg)
            .transpose()?,
    };
    let new_token = match (a.webhook_token, &a.webhook_token_file) {
        (Some(WebhookTokenArg::Generate), _) => Some(crate::http::generate_webhook_token()),
        (_, Some(file)) => Some(read_webhook_token(file)?),
        _ => None,
    };
    let patch = IntegrationPatch {
        webhook_token_sha256: match (&new_token, a.webhook_token) {
            (Some(t), _) => Some(Some(crate::http::webhook_token_hash(t))),
            (None, Some(WebhookTokenArg::None)) => Some(None),
            _ => None,
        },
        ..patch
    };
    if patch == IntegrationPatch::default() {
        bail!("nothing to change; pass at least one option (see --help)");
    }
    let saved = store.update_integration(a.project_id, &patch).await?;
    println!("updated integration of project {}", saved.project_id);
    if let Some(token) = new_token {
        print_trigger_setup(
            settings,
            saved.project_id,
            &token,
            a.webhook_token_file.is_none(),
        );
    } else if a.webhook_token == Some(WebhookTokenArg::None) {
        println!(
            "webhook secret removed: calls to its webhook URL are refused from the next reconcile"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn read_webhook_token(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the webhook secret from {}", file.display()))?;
    let token = text.trim();
    if token.len() < 16
        || !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
    {
        bail!(
            "{} must hold one secret of at least 16 characters, letters, digits and -_.~ only              (it travels in a URL); `--webhook-token generate` makes one",
            file.display()
        );
    }
    Ok(token.to_string())
}

/// Prints the webhook URL and the RetailCRM trigger settings (the secret is shown only here).
fn print_trigger_setup(settings: &Settings, project_id: i64, token: &str, generated: bool) {
    let listen = settings.http.listen_addr().ok().flatten();
    let url = crate::http::webhook_url(settings.http.public_url.trim(), listen, project_id, token);
    if generated {
        println!("\nwebhook secret (shown this once; only its SHA-256 is stored):\n  {token}");
    }
    println!(
        "\nwebhook URL:\n  {url}\n\n\
         In RetailCRM: Administration > Communications > Triggers > Add, twice:\n\
         \x20 1. Event \"Order changed\" (also tick \"Order created\" if offered), action \"HTTP request\",\n\
         \x20    method POST, URL above, parameters: entity = order, order_id = {{{{ order.id }}}}\n\
         \x20 2. Event \"Customer changed\", action \"HTTP request\", method POST, URL above,\n\
         \x20    parameters: entity = customer, customer_id = {{{{ customer.id }}}}\n\
         The daemon takes the secret at its next reconcile, or now with `retailcrm-sync ctl reload`.\n\
         Periodic syncs go on: a missed call is caught by the next one."
    );
    if settings.http.public_url.trim().is_empty() && listen.is_none_or(|a| a.ip().is_loopback()) {
        println!(
            "\nnote: this URL is on loopback, which RetailCRM's servers cannot reach; set \
             http.public_url to the https address of the reverse proxy in front of the daemon"
        );
    }
}

async fn remove(store: &Store, a: &RemoveArgs) -> anyhow::Result<ExitCode> {
    if store.remove_integration(a.project_id).await? {
        println!("removed integration of project {}", a.project_id);
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("project {} has no integration", a.project_id)
    }
}

/// Scopes a read-only sync of `integration` needs.
pub fn needed_scopes(integration: &Integration) -> Vec<&'static str> {
    let mut scopes = Vec::new();
    if integration.sync_orders {
        scopes.extend(["order_read", "reference_read"]);
    }
    if integration.sync_customers {
        scopes.push("customer_read");
    }
    scopes
}

async fn test(
    store: &Store,
    settings: &crate::config::Settings,
    a: &TestArgs,
) -> anyhow::Result<ExitCode> {
    let Some(integration) = store.get_integration(a.project_id).await? else {
        bail!(
            "project {} has no integration; add one with `retailcrm-sync integration add`",
            a.project_id
        );
    };
    let client = crate::crm::CrmClient::new(
        &integration.api_url,
        integration.api_key.clone(),
        crate::crm::ClientOptions {
            requests_per_second: settings.sync.requests_per_second,
            timeout: std::time::Duration::from_secs(settings.sync.request_timeout_secs),
            ..Default::default()
        },
    )?;
    let scopes = needed_scopes(&integration);
    match client.test_connection(&scopes).await {
        Ok(report) => {
            println!(
                "ok: {} speaks API v5 (versions {}); the key has {}",
                integration.api_url,
                report.versions.join(", "),
                report.scopes.join(", ")
            );
            if report.site_access.as_deref() == Some("access_selective") {
                println!(
                    "note: the key covers only these stores: {}",
                    report.sites_available.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("connection test failed for project {}: {e}", a.project_id);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn check_url(raw: &str) -> anyhow::Result<String> {
    validate_api_url(raw)
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .map_err(|e| anyhow::anyhow!("--api-url: {e}"))
}

/// Parses `{"code": "STATUS", ...}`; every bad entry is listed.
fn parse_mapping_arg(json: &str) -> anyhow::Result<HashMap<String, OrderStatus>> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("--status-mapping is not valid JSON")?;
    let (map, errors) = crate::store::integrations::parse_mapping(&value);
    if !value.is_object() || !errors.is_empty() {
        bail!(
            "--status-mapping: {}",
            if errors.is_empty() {
                "expected a JSON object".to_string()
            } else {
                errors.join("; ")
            }
        );
    }
    Ok(map)
}

/// Reads the key from a file or stdin. On a terminal, echo is switched off while the key is
/// typed, so it never appears on screen; the key is never printed back.
fn read_key(file: Option<&Path>) -> anyhow::Result<ApiKey> {
    let raw = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the API key file {}", path.display()))?,
        None if std::io::stdin().is_terminal() => {
            eprint!("API key (not shown): ");
            let line =
                read_line_without_echo().context("cannot read the API key from the terminal")?;
            eprintln!();
            line
        }
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the API key from stdin")?;
            s
        }
    };
    let key = ApiKey::new(raw);
    if key.is_empty() {
        bail!("the API key is empty; pass --api-key-file FILE or pipe the key on stdin");
    }
    Ok(key)
}

/// Reads one line from the stdin terminal with echo off, restoring the terminal afterwards.
fn read_line_without_echo() -> std::io::Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd or fails.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `saved` is a valid, writable termios.
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // SAFETY: `quiet` is a termios obtained from tcgetattr with flags changed.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut line = String::new();
    let result = std::io::stdin().read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    result.map(|_| line)
}
