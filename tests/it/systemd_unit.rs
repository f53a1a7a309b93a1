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
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
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
