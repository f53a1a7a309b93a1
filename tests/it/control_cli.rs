//! `retailcrm-sync ctl`: the built binary against a real control server whose supervisor is
//! this test's own task (it simulates one job that runs for three status polls).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use retailcrm_sync::control::protocol::{
    DaemonStatus, ErrorCode, FinishedJob, JobOutcome, Pong, Progress, ProjectState, ProjectStatus,
    RunningJob, TriggerAccepted, VersionInfo,
};
use retailcrm_sync::control::{ControlCall, ControlServer, Request, Response};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The simulated job: id, kind, status polls seen so far.
#[derive(Debug)]
struct JobSim {
    job: Option<(String, String, u64)>,
    finished: Option<FinishedJob>,
    triggers: u64,
    /// The job runs for this many status polls.
    run_polls: u64,
}

impl Default for JobSim {
    fn default() -> Self {
        JobSim {
            job: None,
            finished: None,
            triggers: 0,
            run_polls: 3,
        }
    }
}

fn project(sim: &mut JobSim) -> ProjectStatus {
    let now = chrono::Utc::now();
    let mut running_job = None;
    let run_polls = sim.run_polls;
    if let Some((id, kind, polls)) = sim.job.as_mut() {
        *polls += 1;
        if *polls <= run_polls {
            running_job = Some(RunningJob {
                job_id: id.clone(),
                kind: kind.clone(),
                started_at: now,
                progress: Progress {
                    stream: Some("orders".into()),
                    done: *polls * 10,
                    total: Some(30),
                    phase: "fetching".into(),
                },
            });
        } else {
            let failed = kind == "sync_customer";
            sim.finished = Some(FinishedJob {
                job_id: id.clone(),
                kind: kind.clone(),
                finished_at: now,
                outcome: if failed {
                    JobOutcome::Dead
                } else {
                    JobOutcome::Succeeded
                },
                message: failed.then(|| "RetailCRM rejected the API key".to_string()),
            });
            sim.job = None;
        }
    }
    ProjectStatus {
        project_id: 7,
        name: Some("Shop Seven".into()),
        state: if running_job.is_some() {
            ProjectState::Running
        } else {
            ProjectState::Idle
        },
        running_job,
        last_success_at: None,
        fresh_as_of: None,
        outbox: None,
        last_error: None,
        last_finished: sim.finished.clone(),
        next_run_at: Some(now + chrono::Duration::minutes(5)),
        queue_depth: 0,
        delayed: 0,
        dead_jobs: 0,
        cursor_lag: Some(0),
        restarts: 0,
    }
}

async fn fake_supervisor(mut rx: mpsc::Receiver<ControlCall>, sim: Arc<Mutex<JobSim>>) {
    while let Some(call) = rx.recv().await {
        let response = {
            let mut sim = sim.lock().unwrap();
            match call.request {
                Request::Ping => Response::ok(Pong { pong: true }),
                Request::Version => Response::ok(VersionInfo {
                    version: env!("CARGO_PKG_VERSION").into(),
                    pid: 1,
                }),
                Request::Status { project_id } if project_id.is_none_or(|p| p == 7) => {
                    Response::ok(DaemonStatus {
                        version: env!("CARGO_PKG_VERSION").into(),
                        pid: 1,
                        started_at: chrono::Utc::now(),
                        config_path: "/etc/retailcrm-sync/retailcrm-sync.toml".into(),
                        config_error: None,
                        restart_required: vec![],
                        warnings: vec![],
                        http_listen: None,
                        projects: vec![project(&mut sim)],
                    })
                }
                Request::Status { project_id } => Response::error(
                    ErrorCode::NotFound,
                    format!("no active integration for project {project_id:?}"),
                ),
                Request::Trigger { kind, .. } => {
                    sim.triggers += 1;
                    let id = format!("job-{}", sim.triggers);
                    sim.job = Some((id.clone(), kind, 0));
                    Response::ok(TriggerAccepted {
                        job_id: id,
                        coalesced: false,
                    })
                }
                _ => Response::ok_empty(),
            }
        };
        let _ = call.reply.send(response);
    }
}

struct Daemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    shutdown: CancellationToken,
}

impl Daemon {
    fn start() -> Daemon {
        Daemon::start_with(tempfile::tempdir().unwrap(), Arc::default())
    }

    fn start_with(dir: tempfile::TempDir, sim: Arc<Mutex<JobSim>>) -> Daemon {
        let socket = dir.path().join("control.sock");
        let server = ControlServer::bind(&socket, 0o660).unwrap();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(fake_supervisor(rx, sim));
        let shutdown = CancellationToken::new();
        tokio::spawn(server.serve(tx, shutdown.clone()));
        Daemon {
            dir,
            socket,
            shutdown,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn ctl(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .args(args)
        .env_remove("RETAILCRM_SYNC_CONFIG")
        .env_remove("RETAILCRM_SYNC__CONTROL__SOCKET_PATH")
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sock(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn ping_version_and_status() {
    let d = Daemon::start();
    let out = ctl(&["ctl", "--socket", sock(&d.socket), "ping"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("pong from"),
        "{}",
        text(&out.stdout)
    );

    let out = ctl(&["ctl", "--socket", sock(&d.socket), "version"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    let out = ctl(&["ctl", "--socket", sock(&d.socket), "status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status: DaemonStatus = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status.projects.len(), 1);
    assert_eq!(status.projects[0].project_id, 7);

    let out = ctl(&["ctl", "--socket", sock(&d.socket), "status"]).await;
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    let header = table.lines().nth(1).unwrap();
    assert!(header.starts_with("PROJECT  NAME"), "{table}");
    assert!(table.contains("Shop Seven"), "{table}");

    // A daemon-side error exits 1 and shows code and message.
    let out = ctl(&["ctl", "--socket", sock(&d.socket), "status", "99"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not_found"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn socket_path_comes_from_the_config_file() {
    let d = Daemon::start();
    let config = d.dir.path().join("retailcrm-sync.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"postgres://x\"\n[control]\nsocket_path = {:?}\n",
            sock(&d.socket)
        ),
    )
    .unwrap();
    let out = ctl(&["--config", config.to_str().unwrap(), "ctl", "ping"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // A named config that does not exist is an error, not a silent default.
    let out = ctl(&["--config", "/nonexistent/x.toml", "ctl", "ping"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/x.toml"));
}

#[tokio::test]
async fn not_running_exits_69_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody-home.sock");
    let out = ctl(&["ctl", "--socket", sock(&socket), "status"]).await;
    assert_eq!(out.status.code(), Some(69));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("daemon is not running"), "{stderr}");
    assert!(stderr.contains(sock(&socket)), "{stderr}");
    assert!(
        stderr.contains("systemctl start retailcrm-sync"),
        "{stderr}"
    );
}

#[tokio::test]
async fn trigger_wait_follows_the_job_to_its_end() {
    let d = Daemon::start();
    let out = ctl(&[
        "ctl",
        "--socket",
        sock(&d.socket),
        "trigger",
        "7",
        "sync_all",
        "--wait",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("job job-1 succeeded"),
        "{}",
        text(&out.stdout)
    );

    let out = ctl(&[
        "ctl",
        "--socket",
        sock(&d.socket),
        "--json",
        "trigger",
        "7",
        "sync_customer",
        "--entity-id",
        "5",
        "--wait",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["job_id"], "job-2");
    assert_eq!(result["succeeded"], false);
    assert_eq!(result["message"], "RetailCRM rejected the API key");

    // Missing entity id is caught before anything is sent.
    let out = ctl(&[
        "ctl",
        "--socket",
        sock(&d.socket),
        "trigger",
        "7",
        "sync_order",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--entity-id"));
}

#[tokio::test]
async fn trigger_wait_survives_a_daemon_restart_and_honours_its_timeout() {
    let sim = Arc::new(Mutex::new(JobSim {
        run_polls: u64::MAX,
        ..JobSim::default()
    }));
    let d = Daemon::start_with(tempfile::tempdir().unwrap(), Arc::clone(&sim));
    let socket = d.socket.clone();

    // --wait-timeout gives up (exit 1) while the job keeps running.
    let out = ctl(&[
        "ctl",
        "--socket",
        sock(&socket),
        "trigger",
        "7",
        "sync_all",
        "--wait",
        "--wait-timeout",
        "1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has not finished"),
        "{}",
        text(&out.stderr)
    );

    let waiting = tokio::spawn({
        let socket = socket.clone();
        async move {
            ctl(&[
                "ctl",
                "--socket",
                sock(&socket),
                "trigger",
                "7",
                "sync_all",
                "--wait",
                "--wait-timeout",
                "60",
            ])
            .await
        }
    });
    // Wait until ctl has seen the job running, then restart the "daemon" under it.
    let mut seen = false;
    for _ in 0..300 {
        let polled = matches!(&sim.lock().unwrap().job, Some((id, _, polls)) if id == "job-2" && *polls >= 1);
        if polled {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "ctl never polled the running job");
    d.shutdown.cancel();
    for _ in 0..100 {
        if !socket.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!socket.exists(), "old server did not remove its socket");
    // The old server closed ctl's connection before it removed the socket, so ctl has lost
    // the daemon and can only learn how the job ended from the new one, after reconnecting.
    sim.lock().unwrap().run_polls = 0; // the job ends at the next poll
    // A new server at the same path, sharing the job state (the job is durable).
    let server = ControlServer::bind(&socket, 0o660).unwrap();
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(fake_supervisor(rx, Arc::clone(&sim)));
    let shutdown2 = CancellationToken::new();
    tokio::spawn(server.serve(tx, shutdown2.clone()));

    let out = waiting.await.unwrap();
    shutdown2.cancel();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("job job-2 succeeded"),
        "{}",
        text(&out.stdout)
    );
}
