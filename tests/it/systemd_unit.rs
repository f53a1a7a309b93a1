//! The shipped systemd unit: required keys are present, and `systemd-analyze verify` accepts it
//! (with no warnings about our file) when systemd-analyze is installed.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../../systemd/retailcrm-sync.service");

/// section -> key -> every value (keys may repeat).
fn parse_unit(text: &str) -> HashMap<String, HashMap<String, Vec<String>>> {
    let mut sections: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line without '=' in unit: {line:?}"));
        assert!(!current.is_empty(), "key {key} outside any section");
        sections
            .entry(current.clone())
            .or_default()
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    sections
}

#[test]
fn unit_has_the_required_keys() {
    let unit = parse_unit(UNIT);
    let service = &unit["Service"];
    let one = |key: &str| -> &str {
        let values = service
            .get(key)
            .or_else(|| unit["Unit"].get(key))
            .unwrap_or_else(|| panic!("[Service] lacks {key}"));
        values[0].as_str()
    };
    let expected = [
        ("Type", "notify"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("RuntimeDirectory", "retailcrm-sync"),
        ("RuntimeDirectoryMode", "0750"),
        ("ConfigurationDirectory", "retailcrm-sync"),
        ("User", "retailcrm-sync"),
        ("Group", "retailcrm-sync"),
        ("WatchdogSec", "60"),
        ("TimeoutStopSec", "60"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0007"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("RemoveIPC", "yes"),
        ("PrivateMounts", "yes"),
        ("Documentation", "man:retailcrm-sync(1)"),
    ];
    for (key, value) in expected {
        assert_eq!(one(key), value, "[Service] {key}");
    }
    assert_eq!(
        one("ExecStartPre"),
        "/usr/bin/retailcrm-sync validate --config /etc/retailcrm-sync/retailcrm-sync.toml"
    );
    assert_eq!(
        one("ExecStart"),
        "/usr/bin/retailcrm-sync run --config /etc/retailcrm-sync/retailcrm-sync.toml"
    );
    assert!(
        service.get("DynamicUser").is_none(),
        "a dedicated system user is used, not DynamicUser"
    );
    let unit_section = &unit["Unit"];
    let after = unit_section["After"].join(" ");
    for dep in [
        "network-online.target",
        "postgresql.service",
        "redis-server.service",
    ] {
        assert!(after.contains(dep), "After= lacks {dep}: {after}");
    }
    assert!(
        unit_section["Wants"]
            .join(" ")
            .contains("network-online.target")
    );
    assert_eq!(unit["Install"]["WantedBy"][0], "multi-user.target");
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Ok(output) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("NOTE: systemd-analyze is not installed; skipping `systemd-analyze verify`");
        return;
    };
    assert!(output.status.success());
    // verify checks that Exec paths exist, so point them at the binary under test.
    let binary = env!("CARGO_BIN_EXE_retailcrm-sync");
    assert!(Path::new(binary).exists());
    let dir = tempfile::tempdir().unwrap();
    let unit_path = dir.path().join("retailcrm-sync.service");
    std::fs::write(&unit_path, UNIT.replace("/usr/bin/retailcrm-sync", binary)).unwrap();
    // Documentation=man:retailcrm-sync(1): verify runs `man`, so install the generated page
    // where it looks (as the README's install steps do under /usr/share/man).
    let man_dir = dir.path().join("man/man1");
    std::fs::create_dir_all(&man_dir).unwrap();
    let page = Command::new(binary).arg("man").output().unwrap();
    assert!(page.status.success());
    std::fs::write(man_dir.join("retailcrm-sync.1"), &page.stdout).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Unknown or invalid keys are only warnings ("..., ignoring."); treat them as failures.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("retailcrm-sync.service"))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze warned about the unit:\n{stderr}"
    );
}

/// The unit's comments tell the truth: the install steps name files that exist, and the grace
/// period they quote is the default; `~@resources` joins the syscall filter.
#[test]
fn unit_comments_match_the_tree_and_the_defaults() {
    assert!(
        !UNIT.contains("example.toml"),
        "the config example is config/retailcrm-sync.toml"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(root.join("config/retailcrm-sync.toml").is_file());
    let grace = retailcrm_sync::config::Settings::default()
        .shutdown
        .grace_seconds;
    assert!(
        UNIT.contains(&format!("default {grace} s")),
        "the unit quotes the grace period's default ({grace} s)"
    );
    let unit = parse_unit(UNIT);
    let filters = unit["Service"]["SystemCallFilter"].join(" ");
    assert!(filters.contains("~@privileged @resources"), "{filters}");
}

/// `systemd-analyze security --offline` rates the unit OK (exposure below 2.0, printed for the
/// README) when systemd-analyze is installed.
#[test]
fn systemd_analyze_security_rates_the_unit_ok() {
    let Ok(output) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("NOTE: systemd-analyze is not installed; skipping `systemd-analyze security`");
        return;
    };
    assert!(output.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit_path = dir.path().join("retailcrm-sync.service");
    std::fs::write(&unit_path, UNIT).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line in:\n{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line}"));
    println!("systemd-analyze security: {score}");
    assert!(score < 2.0, "{line}");
}
