//! The daemon end to end: real binary, real Postgres and Redis, in-process mock RetailCRM.

mod common;

use std::time::Duration;

use common::daemon::{DaemonOpts, Env, mock};
use retailcrm_sync::control::protocol::{JobOutcome, ProjectState};

/// `ctl trigger P sync_all --wait` ends with Postgres equal to the mock and `status` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_wait_syncs_everything() {
    let crm = mock(700, 300, 11).await;
    let env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &crm, 60).await;
    let daemon = env.start().await;
    daemon
        .wait_status("project 1 running", Duration::from_secs(10), |s| {
            s.projects.iter().any(|p| p.project_id == 1)
        })
        .await;
    // The integration never synced, so the scheduler's first tick enqueues at once; the manual
    // trigger coalesces with it or runs after it. Either way --wait must end in success.
    let socket = daemon.socket.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        common::daemon::ctl(&socket, &["trigger", "1", "sync_all", "--wait"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "ctl trigger --wait failed\nstdout: {out}\nstderr: {err}\nlog:\n{}", env.logs());
    env.assert_equals_mock(1, &crm).await;

    let (code, out, _) = daemon.ctl(&["--json", "status"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    let text = out.clone();
    let projects = status["projects"].as_array().or_else(|| status["data"]["projects"].as_array()).unwrap_or_else(|| panic!("no projects in {text}"));
    let p = &projects[0];
    assert_eq!(p["project_id"], 1);
    assert!(p["last_success_at"].is_string(), "{p}");
    assert_eq!(p["last_finished"]["outcome"], "succeeded", "{p}");
    let p = daemon.project(1).await.unwrap();
    assert_eq!(p.state, ProjectState::Idle);
    assert_eq!(p.last_finished.unwrap().outcome, JobOutcome::Succeeded);
    let runs = env
        .count("SELECT count(*) AS n FROM sync_runs WHERE project_id = 1 AND outcome = 'succeeded'")
        .await;
    assert!(runs >= 1);
}
