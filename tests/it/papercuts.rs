//! Operator papercuts found by trying the daemon as a new user would (issue 14), each pinned by
//! a test that failed before its fix.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::daemon::{DaemonOpts, Env, mock};

fn validate(toml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .arg("validate")
        .arg("--config")
        .arg(&path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A log level that names no level (`inf`, `warnn`, `x=verbose`) is refused, listing the
/// allowed values; real filters pass.
#[test]
fn misspelt_log_levels_are_refused() {
    for bad in ["inf", "warnn", "retailcrm_sync=verbose,info"] {
        let (code, out) = validate(&format!("[log]\nlevel = \"{bad}\"\n"));
        assert_eq!(code, 78, "{bad}: {out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("error: ") && l.contains("log.level")),
            "{bad}: {out}"
        );
        assert!(
            out.contains("trace, debug, info, warn, error or off"),
            "{out}"
        );
    }
    for good in [
        "info",
        "WARN",
        "retailcrm_sync=debug,info",
        "warn,retailcrm_sync::sync::engine=debug",
    ] {
        let (code, out) = validate(&format!("[log]\nlevel = \"{good}\"\n"));
        assert!(
            !out.lines()
                .any(|l| l.starts_with("error: ") && l.contains("log.level")),
            "{good}: {out} ({code})"
        );
    }
}

/// A rate that would overflow the pacer (and panic when a client is built) is refused.
#[test]
fn absurd_request_rates_are_refused() {
    for bad in ["1e-9", "0.0", "-1.0", "1e9"] {
        let (code, out) = validate(&format!("[sync]\nrequests_per_second = {bad}\n"));
        assert_eq!(code, 78, "{bad}: {out}");
        assert!(out.contains("sync.requests_per_second"), "{out}");
    }
}

/// `ctl version` answers (it failed on a missing `pid`); `--json` errors are JSON on stdout
/// with a non-zero exit; completed jobs count their successful attempt; the logs written to a
/// file carry no ANSI colours, and JSON logs name the span once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_answers_and_logs_are_clean() {
    let crm = mock(20, 10, 61).await;
    let env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &crm, 600).await;
    let daemon = env.start().await;
    let (code, out, err) = daemon.ctl(&["version"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("pid {}", daemon.pid())), "{out}");

    let socket = daemon.socket.clone();
    let (code, _, _) = tokio::task::spawn_blocking(move || {
        common::daemon::ctl(&socket, &["trigger", "1", "sync_all", "--wait"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    let (code, out, _) = daemon.ctl(&["--json", "jobs", "1"]);
    assert_eq!(code, 0);
    let jobs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let completed: Vec<_> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["state"] == "completed")
        .collect();
    assert!(!completed.is_empty());
    assert!(completed.iter().all(|j| j["attempts"] == 1), "{out}");

    let (code, out, _) = daemon.ctl(&["--json", "status", "999"]);
    assert_ne!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON on stdout");
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "not_found");
    let logs = env.logs();
    assert!(!logs.contains("\"spans\""), "the span list is not repeated");
    assert!(logs.contains("\"span\""));
    drop(daemon);

    let gone = env.dir.path().join("nowhere.sock");
    let (code, out, _) = common::daemon::ctl(&gone, &["--json", "status"]);
    assert_eq!(code, 69);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON on stdout");
    assert_eq!(v["error"]["code"], "unavailable");

    // Pretty logs into a file: no colour codes.
    let mut daemon = env.spawn_with_env(&[("RETAILCRM_SYNC__LOG__FORMAT", "pretty")]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    drop(daemon);
    let logs = env.logs();
    assert!(logs.contains("daemon ready"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escapes in a log file");
}

/// 300 idle connections held by another user cannot lock the daemon's operator out: the
/// reserve lets `ctl` through at once, and connections that never send a line are closed
/// within seconds, not after the 60 s idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_of_another_user_cannot_lock_ctl_out() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(DaemonOpts::default()).await;
    std::fs::write(
        &env.config_path,
        env.config_text()
            .replace("socket_mode = \"0600\"", "socket_mode = \"0666\""),
    )
    .unwrap();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let daemon = env.start().await;
    // `nobody` opens 300 connections and says nothing.
    let script = format!(
        "import socket, time\n\
         held = []\n\
         for _ in range(300):\n\
         \x20   s = socket.socket(socket.AF_UNIX)\n\
         \x20   s.connect({:?})\n\
         \x20   held.append(s)\n\
         print('held', flush=True)\n\
         time.sleep(30)\n",
        daemon.socket.display().to_string()
    );
    let mut hog = tokio::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("setpriv and /usr/bin/python3");
    let mut out = tokio::io::BufReader::new(hog.stdout.take().unwrap());
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
        .await
        .unwrap();
    assert_eq!(line.trim(), "held", "the other user holds its connections");
    let started = std::time::Instant::now();
    let (code, out, err) = daemon.ctl(&["ping"]);
    assert_eq!(
        code, 0,
        "the owner's ctl gets through the reserve: {out}{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(hog);
}
