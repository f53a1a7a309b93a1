//! Loading and `validate`: every problem in one run, exit 78, environment overrides.

use std::process::Command;

use retailcrm_sync::config::{LogFormat, Settings};

fn write(content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

const FIVE_MISTAKES: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/x"
pool_sise = 4                     # 1: unknown key

[redis]
url = "not a url"                 # 2: invalid URL

[control]
socket_mode = "0999"              # 3: not octal

[sync]
page_size = 30                    # 4: RetailCRM accepts 20/50/100
max_attempts = "three"            # 5: wrong type

[log]
format = "xml"                    # 6: bad format
"#;

#[test]
fn validate_lists_every_mistake_and_exits_78() {
    let (dir, path) = write(FIVE_MISTAKES);
    let out = Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .arg("validate")
        .arg("--config")
        .arg(&path)
        .env_remove("RETAILCRM_SYNC__LOG__FORMAT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{stdout}");
    for key in [
        "database.pool_sise",
        "redis.url",
        "control.socket_mode",
        "sync.page_size",
        "sync.max_attempts",
        "log.format",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("error: ") && l.contains(key)),
            "{key} not reported:\n{stdout}"
        );
    }
    drop(dir);
}

#[test]
fn validate_accepts_a_good_file() {
    let (dir, path) = write("[sync]\npage_size = 50\n[control]\nsocket_path = \"/tmp/rcs.sock\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok"), "{stdout}");
    drop(dir);
}

#[test]
fn a_named_file_must_exist() {
    let (settings, problems) =
        Settings::load_with_env(std::path::Path::new("/nonexistent/rcs.toml"), true, &[]);
    assert!(
        problems
            .iter()
            .any(|p| p.is_error() && p.message.contains("cannot read"))
    );
    assert!(settings.is_some());
    let (settings, problems) =
        Settings::load_with_env(std::path::Path::new("/nonexistent/rcs.toml"), false, &[]);
    assert_eq!(settings, Some(Settings::default()));
    assert!(problems.iter().all(|p| !p.is_error()), "{problems:?}");
}

#[test]
fn environment_overrides_file_and_bad_env_is_reported() {
    let (_dir, path) = write("[log]\nlevel = \"debug\"\n[sync]\npage_size = 20\n");
    let env = vec![
        (
            "RETAILCRM_SYNC__LOG__FORMAT".to_string(),
            "json".to_string(),
        ),
        (
            "RETAILCRM_SYNC__SYNC__PAGE_SIZE".to_string(),
            "50".to_string(),
        ),
        (
            "RETAILCRM_SYNC__DATABASE__URL".to_string(),
            "postgres://u@db:5432/p".to_string(),
        ),
        (
            "RETAILCRM_SYNC__CONTROL__SOCKET_MODE".to_string(),
            "0600".to_string(),
        ),
        (
            "RETAILCRM_SYNC__SYNC__REQUESTS_PER_SECOND".to_string(),
            "2.5".to_string(),
        ),
        ("RETAILCRM_SYNC_CONFIG".to_string(), "/ignored".to_string()),
    ];
    let (settings, problems) = Settings::load_with_env(&path, true, &env);
    let s = settings.unwrap();
    assert!(problems.iter().all(|p| !p.is_error()), "{problems:?}");
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.log.level, "debug");
    assert_eq!(s.sync.page_size, 50);
    assert_eq!(s.sync.requests_per_second, 2.5);
    assert_eq!(s.database.url, "postgres://u@db:5432/p");
    assert_eq!(s.control.mode(), Some(0o600));

    let bad = vec![
        (
            "RETAILCRM_SYNC__SYNC__PAGE_SISE".to_string(),
            "50".to_string(),
        ),
        (
            "RETAILCRM_SYNC__SYNC__MAX_ATTEMPTS".to_string(),
            "many".to_string(),
        ),
    ];
    let (_, problems) = Settings::load_with_env(&path, true, &bad);
    let keys: Vec<&str> = problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "RETAILCRM_SYNC__SYNC__PAGE_SISE",
            "RETAILCRM_SYNC__SYNC__MAX_ATTEMPTS"
        ]
    );
}

#[test]
fn process_environment_reaches_load() {
    // `load` reads the real process environment; run the binary so this test owns it.
    let (_dir, path) = write("[control]\nsocket_path = \"/tmp/rcs.sock\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .args(["validate", "--config"])
        .arg(&path)
        .env("RETAILCRM_SYNC__SYNC__PAGE_SIZE", "30")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{stdout}");
    assert!(stdout.contains("sync.page_size"), "{stdout}");
}

#[test]
fn missing_socket_directory_is_a_warning_not_an_error() {
    let (_dir, path) = write("[control]\nsocket_path = \"/nonexistent-dir/x/control.sock\"\n");
    let (settings, problems) = Settings::load_with_env(&path, true, &[]);
    assert!(settings.is_some());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(!problems[0].is_error());
    assert_eq!(problems[0].key, "control.socket_path");
}

#[test]
fn broken_toml_is_reported_with_position() {
    let (_dir, path) = write("[sync\npage_size = 20\n");
    let (_, problems) = Settings::load_with_env(&path, true, &[]);
    assert!(
        problems
            .iter()
            .any(|p| p.is_error() && p.message.contains("TOML")),
        "{problems:?}"
    );
}

/// Runs `validate --config path`: (exit code, stdout).
fn validate_file(path: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .arg("validate")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Every `[http]` mistake is reported at once with the key, exit 78; a public listener is a
/// warning; a good token file passes.
#[test]
fn http_section_problems_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short-token");
    std::fs::write(&short, "abc").unwrap();
    let bad = format!(
        r#"
[http]
listen = "localhost"
api_token_file = "{short}"
public_url = "ftp://sync.example.com"
body_limit_bytes = 10
request_timeout_secs = 0
webhook_debounce_ms = 120000
"#,
        short = short.display()
    );
    let (_d, path) = write(&bad);
    let (code, stdout) = validate_file(&path);
    assert_eq!(code, Some(78), "{stdout}");
    for key in [
        "http.listen",
        "http.api_token_file",
        "http.public_url",
        "http.body_limit_bytes",
        "http.request_timeout_secs",
        "http.webhook_debounce_ms",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("error: ") && l.contains(key)),
            "{key} not reported:\n{stdout}"
        );
    }

    let good_token = dir.path().join("token");
    std::fs::write(&good_token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let ok = format!(
        "[http]\nlisten = \"0.0.0.0:9860\"\napi_token_file = \"{}\"\n",
        good_token.display()
    );
    let (_d2, path) = write(&ok);
    let (code, stdout) = validate_file(&path);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains("http.listen")),
        "a listener reachable from other hosts is a warning:\n{stdout}"
    );
}
