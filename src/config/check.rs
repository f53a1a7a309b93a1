//! Semantic checks of loaded settings: values that have the right type but cannot work (page
//! size 30, a socket directory that does not exist, a Redis URL that is not a URL, ...).

use std::path::Path;

use super::problem::ConfigProblem;
use super::sections::Settings;
use super::url::Url;

/// Slowest pacing accepted (one request every 10 s); slower rates overflow the pacer's
/// arithmetic and could never finish a sync anyway.
pub const MIN_RPS: f64 = 0.1;
/// Fastest pacing accepted.
pub const MAX_RPS: f64 = 1000.0;

/// Levels `log.level` may name.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// The first directive of a `tracing` filter that names no level: `inf`, `warnn`,
/// `retailcrm_sync=verbose` (a bare target such as `retailcrm_sync` means "everything from it"
/// to `tracing` and is refused too: it is almost always a typo of a level).
pub fn unknown_level(filter: &str) -> Option<String> {
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level.trim())) {
            return Some(directive.to_string());
        }
    }
    None
}

/// Page sizes RetailCRM accepts for list calls.
pub const PAGE_SIZES: [u32; 3] = [20, 50, 100];

impl Settings {
    /// Every semantic problem of these settings (errors and warnings); empty when all is well.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let p = &mut out;

        check_url(
            p,
            "database.url",
            &self.database.url,
            &["postgres", "postgresql"],
        );
        at_least(p, "database.pool_size", self.database.pool_size.into(), 1);
        at_least(
            p,
            "database.connect_timeout_secs",
            self.database.connect_timeout_secs,
            1,
        );

        check_url(
            p,
            "redis.url",
            &self.redis.url,
            &["redis", "rediss", "unix", "redis+unix"],
        );
        let prefix = &self.redis.key_prefix;
        if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.push(ConfigProblem::error(
                "redis.key_prefix",
                format!("key prefix `{prefix}` is empty or contains spaces"),
                "use a short name such as `retailcrm-sync`",
            ));
        }

        check_socket(p, self);
        at_least(
            p,
            "control.max_connections",
            self.control.max_connections.into(),
            8,
        );

        let sync = &self.sync;
        if !PAGE_SIZES.contains(&sync.page_size) {
            p.push(ConfigProblem::error(
                "sync.page_size",
                format!("page size {} is not accepted by RetailCRM", sync.page_size),
                "use 20, 50 or 100",
            ));
        }
        at_least(
            p,
            "sync.default_interval_minutes",
            sync.default_interval_minutes.into(),
            1,
        );
        at_least(p, "sync.max_attempts", sync.max_attempts.into(), 1);
        at_least(p, "sync.backoff_base_secs", sync.backoff_base_secs, 1);
        at_least(p, "sync.request_timeout_secs", sync.request_timeout_secs, 1);
        at_least(p, "sync.lease_secs", sync.lease_secs, 2);
        at_least(p, "sync.max_stalls", sync.max_stalls.into(), 1);
        at_least(p, "sync.minute_secs", sync.minute_secs, 1);
        at_least(p, "sync.push_sweep_secs", sync.push_sweep_secs, 1);
        at_least(
            p,
            "sync.rate_limit_budget_secs",
            sync.rate_limit_budget_secs,
            1,
        );
        if !(sync.requests_per_second.is_finite()
            && (MIN_RPS..=MAX_RPS).contains(&sync.requests_per_second))
        {
            p.push(ConfigProblem::error(
                "sync.requests_per_second",
                format!(
                    "{} is not a usable rate (from {MIN_RPS} to {MAX_RPS} requests per second)",
                    sync.requests_per_second
                ),
                "use a number from 0.1 to 1000; RetailCRM allows 10 per second",
            ));
        }

        if let Some(bad) = unknown_level(&self.log.level) {
            p.push(ConfigProblem::error(
                "log.level",
                format!("`{bad}` in `{}` names no log level", self.log.level),
                "use trace, debug, info, warn, error or off, alone or as target=level \
                 (e.g. `info` or `retailcrm_sync=debug,info`)",
            ));
        } else if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.push(ConfigProblem::error(
                "log.level",
                format!("`{}` is not a log level or filter ({e})", self.log.level),
                "use trace, debug, info, warn or error (or a filter like `retailcrm_sync=debug`)",
            ));
        }

        at_least(
            p,
            "daemon.reconcile_interval_secs",
            self.daemon.reconcile_interval_secs,
            1,
        );
        at_least(
            p,
            "daemon.restart_window_secs",
            self.daemon.restart_window_secs,
            1,
        );
        check_http(p, self);
        out
    }
}

/// Shortest API token accepted (a 32-byte random token is 64 hex characters).
pub const MIN_API_TOKEN_LEN: usize = 16;

/// Reads the JSON API's bearer token from `path`: trimmed, at least [`MIN_API_TOKEN_LEN`]
/// characters; the error says what to fix.
pub fn read_api_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    if token.len() < MIN_API_TOKEN_LEN || token.chars().any(|c| c.is_whitespace()) {
        return Err(format!(
            "{} must hold one token of at least {MIN_API_TOKEN_LEN} characters without spaces",
            path.display()
        ));
    }
    Ok(token.to_string())
}

fn check_http(p: &mut Vec<ConfigProblem>, s: &Settings) {
    let http = &s.http;
    match http.listen_addr() {
        Err(e) => p.push(ConfigProblem::error(
            "http.listen",
            e,
            "use host:port such as 127.0.0.1:9860, or \"\" to turn the listener off",
        )),
        Ok(Some(addr)) if !addr.ip().is_loopback() => p.push(ConfigProblem::warning(
            "http.listen",
            format!("{addr} is reachable from other hosts; /metrics and /readyz need no token"),
            "expose only /webhooks/ through a reverse proxy, or firewall the port",
        )),
        Ok(_) => {}
    }
    if !http.api_token_file.trim().is_empty()
        && let Err(e) = read_api_token(Path::new(http.api_token_file.trim()))
    {
        p.push(ConfigProblem::error(
            "http.api_token_file",
            e,
            "write a token into it, e.g. `openssl rand -hex 32 > FILE; chmod 600 FILE`",
        ));
    }
    if !http.public_url.trim().is_empty() {
        check_url(
            p,
            "http.public_url",
            http.public_url.trim(),
            &["https", "http"],
        );
    }
    at_least(p, "http.body_limit_bytes", http.body_limit_bytes, 1024);
    at_least(p, "http.request_timeout_secs", http.request_timeout_secs, 1);
    if http.webhook_debounce_ms > 60_000 {
        p.push(ConfigProblem::error(
            "http.webhook_debounce_ms",
            format!(
                "{} ms would delay every webhook's sync by more than a minute",
                http.webhook_debounce_ms
            ),
            "use 0 to 60000; 100 to 500 suits RetailCRM triggers",
        ));
    }
    if http.ui_anonymous_read
        && let Ok(Some(addr)) = http.listen_addr()
        && !addr.ip().is_loopback()
    {
        p.push(ConfigProblem::warning(
            "http.ui_anonymous_read",
            format!("has no effect: {addr} is not a loopback address"),
            "the monitoring page asks for the API token; to look without one, listen \
                     on 127.0.0.1 and open the page through an SSH port forward",
        ));
    }
}

fn at_least(p: &mut Vec<ConfigProblem>, key: &str, value: u64, min: u64) {
    if value < min {
        p.push(ConfigProblem::error(
            key,
            format!("{value} is too small"),
            format!("use {min} or more"),
        ));
    }
}

fn check_url(p: &mut Vec<ConfigProblem>, key: &str, raw: &str, schemes: &[&str]) {
    match Url::parse(raw) {
        Ok(u) if schemes.contains(&u.scheme()) => {}
        Ok(u) => p.push(ConfigProblem::error(
            key,
            format!("URL scheme `{}` is not supported", u.scheme()),
            format!("use one of: {}", schemes.join(", ")),
        )),
        Err(e) => p.push(ConfigProblem::error(
            key,
            format!("not a valid URL ({e})"),
            format!("write it as {}://host:port/...", schemes[0]),
        )),
    }
}

fn check_socket(p: &mut Vec<ConfigProblem>, s: &Settings) {
    if s.control.mode().is_none() {
        p.push(ConfigProblem::error(
            "control.socket_mode",
            format!("`{}` is not an octal file mode", s.control.socket_mode),
            "use an octal string such as \"0660\" or \"0600\"",
        ));
    }
    let path = Path::new(&s.control.socket_path);
    if !path.is_absolute() {
        p.push(ConfigProblem::error(
            "control.socket_path",
            format!("`{}` is not an absolute path", path.display()),
            "use an absolute path such as /run/retailcrm-sync/control.sock",
        ));
        return;
    }
    let Some(dir) = path.parent() else {
        p.push(ConfigProblem::error(
            "control.socket_path",
            "the socket path has no directory",
            "use a path such as /run/retailcrm-sync/control.sock",
        ));
        return;
    };
    if !dir.is_dir() {
        p.push(ConfigProblem::warning(
            "control.socket_path",
            format!("directory {} does not exist", dir.display()),
            "create it (systemd's RuntimeDirectory= does so for the service) or choose another path",
        ));
    } else if !writable(dir) {
        p.push(ConfigProblem::warning(
            "control.socket_path",
            format!("directory {} is not writable by this user", dir.display()),
            "run as the service user or choose a writable directory",
        ));
    }
}

/// Whether the current user may create files in `dir` (access(2) with W_OK|X_OK).
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}
