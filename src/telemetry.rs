//! Logging setup: `tracing` with structured fields, human (`pretty`) or JSON lines on stderr
//! (journald captures stderr under systemd). `RUST_LOG`, when set, overrides the configured level.

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
        .with_writer(std::io::stderr);
    match settings.format {
        LogFormat::Pretty => builder.try_init().is_ok(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
            .is_ok(),
    }
}
