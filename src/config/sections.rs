//! The typed settings and their defaults. `config/retailcrm-sync.toml` documents the same keys
//! with the same defaults; `tests/config_example.rs` fails if the two drift apart.

use serde::{Deserialize, Serialize};

/// Everything the daemon and its commands read from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Postgres connection and pool.
    pub database: DatabaseSettings,
    /// Redis connection (job queue).
    pub redis: RedisSettings,
    /// Unix control socket.
    pub control: ControlSettings,
    /// Sync engine tuning.
    pub sync: SyncSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// Logging.
    pub log: LogSettings,
    /// Supervisor behaviour.
    pub daemon: DaemonSettings,
    /// The HTTP listener: webhooks, JSON API, health, metrics.
    pub http: HttpSettings,
}

/// `[database]`: the loyalty platform's Postgres. `Debug` hides a password in the URL.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// Connection URL (`postgres://user@host:port/db`).
    pub url: String,
    /// Maximum pooled connections.
    pub pool_size: u32,
    /// Seconds to wait for a connection before giving up.
    pub connect_timeout_secs: u64,
    /// Apply pending embedded migrations when the daemon starts.
    pub run_migrations_on_start: bool,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match reqwest::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("****"));
                u.to_string()
            }
            Ok(u) => u.to_string(),
            Err(_) => "<unparsable>".to_string(),
        };
        f.debug_struct("DatabaseSettings")
            .field("url", &url)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("run_migrations_on_start", &self.run_migrations_on_start)
            .finish()
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "postgres://postgres@127.0.0.1:5432/test".to_string(),
            pool_size: 16,
            connect_timeout_secs: 10,
            run_migrations_on_start: true,
        }
    }
}

/// `[redis]`: the job queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// Connection URL (`redis://host:port[/db]`, `rediss://` for TLS).
    pub url: String,
    /// Prefix of every key the daemon writes, so several deployments can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: "redis://127.0.0.1:6379".to_string(),
            key_prefix: "retailcrm-sync".to_string(),
        }
    }
}

/// `[control]`: the Unix control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlSettings {
    /// Path of the socket file; its directory must exist and be writable.
    pub socket_path: String,
    /// Octal file mode of the socket (`"0660"`: owner and group may connect).
    pub socket_mode: String,
    /// Connections open at once; the last 16 are kept for the daemon's user and root, so an
    /// operator's `ctl` gets through whatever other users hold open.
    pub max_connections: u32,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            socket_path: "/run/retailcrm-sync/control.sock".to_string(),
            socket_mode: "0660".to_string(),
            max_connections: 256,
        }
    }
}

impl ControlSettings {
    /// The socket mode as a number, if it is valid octal no larger than `0777`.
    pub fn mode(&self) -> Option<u32> {
        let s = self.socket_mode.trim();
        let s = s.strip_prefix("0o").unwrap_or(s);
        if s.is_empty() || s.len() > 4 {
            return None;
        }
        u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o777)
    }
}

/// `[sync]`: how the sync engine talks to RetailCRM and retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncSettings {
    /// Minutes between scheduled syncs for integrations that do not set their own interval.
    pub default_interval_minutes: u32,
    /// Page size for RetailCRM list calls; RetailCRM accepts only 20, 50 or 100.
    pub page_size: u32,
    /// Attempts per job before it is failed for good.
    pub max_attempts: u32,
    /// First retry delay in seconds; doubles each attempt (plus jitter).
    pub backoff_base_secs: u64,
    /// Timeout of one HTTP request to RetailCRM, in seconds.
    pub request_timeout_secs: u64,
    /// Requests per second per RetailCRM account (RetailCRM allows 10).
    pub requests_per_second: f64,
    /// Seconds a worker holds a job lease before it must renew it.
    pub lease_secs: u64,
    /// Times a job may lose its lease (worker died) before it is failed.
    pub max_stalls: u32,
    /// Seconds a job may spend waiting on RetailCRM rate limits (HTTP 429/503) before failing.
    pub rate_limit_budget_secs: u64,
    /// Seconds in one minute of `sync_interval_minutes`. Always 60 in production; tests and
    /// demos shorten it to see periodic syncs fire without waiting for minutes.
    pub minute_secs: u64,
    /// Seconds between sweeps of the two-way sync outbox (pending rows whose NOTIFY was
    /// missed are pushed; the outbox counts of `status` are refreshed).
    pub push_sweep_secs: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            default_interval_minutes: 60,
            page_size: 100,
            max_attempts: 3,
            backoff_base_secs: 5,
            request_timeout_secs: 30,
            requests_per_second: 10.0,
            lease_secs: 30,
            max_stalls: 3,
            rate_limit_budget_secs: 120,
            minute_secs: 60,
            push_sweep_secs: 30,
        }
    }
}

/// `[shutdown]`: what happens on SIGTERM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShutdownSettings {
    /// Seconds running jobs get to finish before they are handed back to the queue.
    pub grace_seconds: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings { grace_seconds: 25 }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    #[default]
    Pretty,
    /// One JSON object per line (journald, log shippers).
    Json,
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// Level or `tracing` filter directive (`info`, `retailcrm_sync=debug,info`); `RUST_LOG`
    /// overrides it.
    pub level: String,
    /// `pretty` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_string(),
            format: LogFormat::Pretty,
        }
    }
}

/// `[daemon]`: the supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonSettings {
    /// Seconds between re-reads of the integrations table (new, changed, removed projects).
    pub reconcile_interval_secs: u64,
    /// Restarts of a crashed project actor allowed within `restart_window_secs`.
    pub restart_max: u32,
    /// Window for `restart_max`, in seconds.
    pub restart_window_secs: u64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            reconcile_interval_secs: 60,
            restart_max: 5,
            restart_window_secs: 60,
        }
    }
}

/// `[http]`: the daemon's one HTTP listener (RetailCRM trigger webhooks, the JSON API,
/// `/healthz`, `/readyz`, `/metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// `host:port` to listen on; empty turns the listener off. Port 0 picks a free port
    /// (shown by `ctl status`).
    pub listen: String,
    /// File holding the bearer token of `/api/v1/...`; empty turns the JSON API off (it then
    /// answers 503). Webhooks, health and metrics do not need it.
    pub api_token_file: String,
    /// Base URL at which RetailCRM reaches this listener (e.g. `https://sync.example.com`),
    /// used when printing a project's webhook URL; empty: `http://<listen>`.
    pub public_url: String,
    /// Largest request body accepted, in bytes (a webhook body is a few hundred).
    pub body_limit_bytes: u64,
    /// Seconds one request may take before it is answered 408.
    pub request_timeout_secs: u64,
    /// Milliseconds a burst of webhooks for one project is gathered into one history walk; a
    /// call during the window always earns one more walk after it.
    pub webhook_debounce_ms: u64,
    /// The monitoring page's read views (and the read routes of `/api/v1` it uses) answer
    /// without the API token, but only on a loopback listener and for requests addressed to a
    /// loopback name (not through a proxy). Actions always need the token.
    pub ui_anonymous_read: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: "127.0.0.1:9860".to_string(),
            api_token_file: String::new(),
            public_url: String::new(),
            body_limit_bytes: 65536,
            request_timeout_secs: 10,
            webhook_debounce_ms: 200,
            ui_anonymous_read: false,
        }
    }
}

impl HttpSettings {
    /// The listen address; `None` when the listener is off, `Err` when it does not parse.
    pub fn listen_addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        let raw = self.listen.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse()
            .map(Some)
            .map_err(|e| format!("`{raw}` is not a host:port address ({e})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_mode_is_octal_up_to_0777() {
        let mode = |m: &str| {
            ControlSettings {
                socket_mode: m.to_string(),
                ..ControlSettings::default()
            }
            .mode()
        };
        assert_eq!(mode("0660"), Some(0o660));
        assert_eq!(mode("600"), Some(0o600));
        assert_eq!(mode("0o640"), Some(0o640));
        assert_eq!(mode("0999"), None);
        assert_eq!(mode("1777"), None, "sticky/setuid bits are not allowed");
        assert_eq!(mode(""), None);
        assert_eq!(mode("rw-rw----"), None);
    }

    #[test]
    fn database_password_never_prints() {
        let db = DatabaseSettings {
            url: "postgres://app:hunter2@db:5432/p".into(),
            ..DatabaseSettings::default()
        };
        let shown = format!(
            "{:?}",
            Settings {
                database: db,
                ..Settings::default()
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app:****@db"), "{shown}");
    }

    #[test]
    fn defaults_are_valid() {
        let problems = Settings::default().validate();
        assert!(problems.iter().all(|p| !p.is_error()), "{problems:?}");
    }
}
