//! Logging setup: `tracing` with structured fields, human (`pretty`) or JSON lines on stderr
//! (journald captures stderr under systemd). `RUST_LOG`, when set, overrides the configured level.
//!
//! Colours only on a terminal: written to a file, a pipe or journald, `pretty` lines carry no
//! ANSI escapes; under systemd (`JOURNAL_STREAM` set) they also leave out the timestamp, which
//! journald records itself. JSON lines carry the current span once (`span`), not the span list
//! as well.

use crate::config::{LogFormat, LogSettings};

/// Installs a stderr subscriber honouring `RUST_LOG` (default `info`). Safe to call twice.
pub fn init_default() {
    init(&LogSettings::default());
}

/// Installs a stderr subscriber from `[log]`. Returns false when one was already installed
/// (then the first one stays; a reload does not change the log format). Safe to call twice.
pub fn init(settings: &LogSettings) -> bool {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi_wanted());
    match settings.format {
        LogFormat::Pretty if under_journald() => {
            let builder = builder.without_time().with_filter_reloading();
            let handle = builder.reload_handle();
            let installed = builder.try_init().is_ok();
            if installed {
                remember(move |f| handle.reload(f).map_err(|e| e.to_string()));
            }
            installed
        }
        LogFormat::Pretty => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            let installed = builder.try_init().is_ok();
            if installed {
                remember(move |f| handle.reload(f).map_err(|e| e.to_string()));
            }
            installed
        }
        LogFormat::Json => {
            let builder = builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            let installed = builder.try_init().is_ok();
            if installed {
                remember(move |f| handle.reload(f).map_err(|e| e.to_string()));
            }
            installed
        }
    }
}

/// Whether log lines may carry colours: only when stderr is a terminal (and `NO_COLOR` is
/// not set).
fn ansi_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Whether stderr goes to journald (systemd sets `JOURNAL_STREAM` for a unit's output).
fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

type Reloader = Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync>;

static RELOADER: std::sync::OnceLock<Reloader> = std::sync::OnceLock::new();

fn remember(
    f: impl Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync + 'static,
) {
    let _ = RELOADER.set(Box::new(f));
}

/// Changes the log level or filter of the running process (SIGHUP reload). `RUST_LOG`, when
/// set, still wins: the operator asked for it explicitly.
pub fn set_level(level: &str) -> Result<(), String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(());
    }
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("`{level}` is not a log level or filter: {e}"))?;
    match RELOADER.get() {
        Some(reload) => reload(filter),
        None => Err("logging was not initialised by this process".into()),
    }
}
