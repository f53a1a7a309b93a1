//! Logging setup: `tracing` with structured fields, JSON or human format.
//! Not built yet beyond a default subscriber.

/// Installs a stderr subscriber honouring `RUST_LOG` (default `info`). Safe to call twice.
pub fn init_default() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
