//! The control socket server against real Unix sockets in a temp dir. The "supervisor" here is
//! the test's own task answering from a fixed table.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngCore;
use retailcrm_sync::control::protocol::{
    DaemonStatus, ErrorCode, Pong, ProjectState, ProjectStatus, TriggerAccepted, VersionInfo,
};
use retailcrm_sync::control::{
    ControlCall, ControlClient, ControlError, ControlServer, Request, Response, ServerOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running server plus everything needed to stop it.
struct TestServer {
    _dir: tempfile::TempDir,
    path: PathBuf,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ControlError>>,
}

impl TestServer {
    async fn start(options: ServerOptions) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        // A nested directory: bind must create it.
        let path = dir.path().join("run").join("control.sock");
        let server = ControlServer::bind(&path, 0o660)
            .unwrap()
            .with_options(options);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(fake_supervisor(rx));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.serve(tx, shutdown.clone()));
        TestServer {
            _dir: dir,
            path,
            shutdown,
            task,
        }
    }

    async fn client(&self) -> ControlClient {
        ControlClient::connect(&self.path)
            .await
            .unwrap()
            .with_timeout(Duration::from_secs(20))
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve did not stop")
            .unwrap()
            .unwrap();
        assert!(!self.path.exists(), "socket file left behind");
    }
}

fn status_of(project_id: i64) -> ProjectStatus {
    ProjectStatus {
        project_id,
        name: Some(format!("project {project_id}")),
        state: ProjectState::Idle,
        running_job: None,
        last_success_at: None,
        fresh_as_of: None,
        outbox: None,
        last_error: None,
        last_finished: None,
        next_run_at: None,
        queue_depth: 3,
        delayed: 0,
        dead_jobs: 1,
        cursor_lag: Some(12),
        restarts: 0,
    }
}

/// The test's supervisor: a fixed answer per command.
async fn fake_supervisor(mut rx: mpsc::Receiver<ControlCall>) {
    while let Some(call) = rx.recv().await {
        let response = match call.request {
            Request::Ping => Response::ok(Pong { pong: true }),
            Request::Version => Response::ok(VersionInfo {
                version: "9.9.9".into(),
                pid: std::process::id(),
            }),
            Request::Status { project_id } => {
                let all = vec![status_of(7), status_of(8)];
                let projects: Vec<_> = all
                    .into_iter()
                    .filter(|p| project_id.is_none_or(|id| id == p.project_id))
                    .collect();
                if projects.is_empty() {
                    Response::error(ErrorCode::NotFound, "no such project")
                } else {
                    Response::ok(DaemonStatus {
                        version: "9.9.9".into(),
                        pid: std::process::id(),
                        started_at: chrono::Utc::now(),
                        config_path: "/etc/x.toml".into(),
                        config_error: None,
                        restart_required: vec![],
                        warnings: vec![],
                        http_listen: None,
                        projects,
                    })
                }
            }
            Request::Trigger { .. } => Response::ok(TriggerAccepted {
                job_id: "job-1".into(),
                coalesced: false,
            }),
            _ => Response::ok_empty(),
        };
        let _ = call.reply.send(response);
    }
}

fn code_of(response: Response) -> ErrorCode {
    response.into_result().expect_err("expected an error").code
}

async fn assert_pings(path: &Path) {
    let mut client = ControlClient::connect(path)
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let pong: Pong = client
        .call(&Request::Ping)
        .await
        .unwrap()
        .data_as()
        .unwrap();
    assert!(pong.pong);
}

#[tokio::test]
async fn ping_version_status_round_trip() {
    let server = TestServer::start(ServerOptions::default()).await;
    let mode = std::fs::metadata(&server.path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);

    let mut client = server.client().await;
    let pong: Pong = client
        .call(&Request::Ping)
        .await
        .unwrap()
        .data_as()
        .unwrap();
    assert!(pong.pong);
    let version: VersionInfo = client
        .call(&Request::Version)
        .await
        .unwrap()
        .data_as()
        .unwrap();
    assert_eq!(version.version, "9.9.9");
    let all: DaemonStatus = client
        .call(&Request::Status { project_id: None })
        .await
        .unwrap()
        .data_as()
        .unwrap();
    assert_eq!(all.projects.len(), 2);
    let one: DaemonStatus = client
        .call(&Request::Status {
            project_id: Some(8),
        })
        .await
        .unwrap()
        .data_as()
        .unwrap();
    assert_eq!(one.projects.len(), 1);
    assert_eq!(one.projects[0].project_id, 8);
    assert_eq!(one.projects[0].cursor_lag, Some(12));
    let missing = client
        .call(&Request::Status {
            project_id: Some(99),
        })
        .await
        .unwrap();
    assert_eq!(code_of(missing), ErrorCode::NotFound);
    // Mutating commands from our own uid are allowed.
    let accepted: TriggerAccepted = client
        .call(&Request::Trigger {
            project_id: 7,
            kind: "sync_all".into(),
            entity_id: None,
            since_id: None,
        })
        .await
        .unwrap()
        .data_as()
        .unwrap();
    assert_eq!(accepted.job_id, "job-1");
    server.stop().await;
}

#[tokio::test]
async fn garbage_gets_json_errors_and_the_server_keeps_answering() {
    let server = TestServer::start(ServerOptions::default()).await;
    let mut client = server.client().await;

    let mut random = vec![0u8; 4096];
    rand::rng().fill_bytes(&mut random);
    for b in random.iter_mut() {
        if *b == b'\n' {
            *b = b'x';
        }
    }
    random[0] = b'@'; // never a valid JSON start
    random.push(b'\n');
    let r = client.call_raw(&random).await.unwrap();
    assert_eq!(code_of(r), ErrorCode::BadJson);

    let r = client
        .call_raw(b"{\"cmd\":\"ping\xff\xfe\"}\n")
        .await
        .unwrap();
    assert_eq!(code_of(r), ErrorCode::BadJson);

    let r = client
        .call_raw(b"{\"cmd\":\"self_destruct\"}\n")
        .await
        .unwrap();
    assert_eq!(code_of(r), ErrorCode::UnknownCommand);

    let r = client
        .call_raw(b"{\"cmd\":\"trigger\",\"project_id\":1}\n")
        .await
        .unwrap();
    let error = r.into_result().unwrap_err();
    assert_eq!(error.code, ErrorCode::Invalid);
    assert!(error.message.contains("kind"), "{}", error.message);

    let r = client.call_raw(b"{\"no_cmd\":true}\n").await.unwrap();
    assert_eq!(code_of(r), ErrorCode::Invalid);

    let r = client.call_raw(b"\n").await.unwrap();
    assert_eq!(code_of(r), ErrorCode::Invalid);

    // A 10 MB line: refused without being buffered, and the connection stays usable.
    let mut huge = vec![b'a'; 10 * 1024 * 1024];
    huge.push(b'\n');
    let r = client.call_raw(&huge).await.unwrap();
    assert_eq!(code_of(r), ErrorCode::LineTooLong);
    let r = client.call_raw(b"{\"cmd\":\"ping\"}\r\n").await.unwrap();
    assert!(r.ok, "{r:?}");

    // Several requests in one write are answered in order.
    client
        .call_raw(b"{\"cmd\":\"ping\"}\nnope\n{\"cmd\":\"version\"}\n")
        .await
        .unwrap();
    assert_eq!(
        code_of(client.read_response().await.unwrap()),
        ErrorCode::BadJson
    );
    assert!(client.read_response().await.unwrap().ok);

    // A client that sends half a line and hangs up hurts nobody.
    let mut raw = UnixStream::connect(&server.path).await.unwrap();
    raw.write_all(b"{\"cmd\":\"pi").await.unwrap();
    drop(raw);

    assert_pings(&server.path).await;
    server.stop().await;
}

#[tokio::test]
async fn idle_connections_do_not_block_others() {
    let server = TestServer::start(ServerOptions::default()).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(UnixStream::connect(&server.path).await.unwrap());
    }
    // One of them sends a partial line and stalls mid-request.
    idle[0].write_all(b"{\"cmd\":").await.unwrap();
    let started = std::time::Instant::now();
    assert_pings(&server.path).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "ping took {:?}",
        started.elapsed()
    );
    drop(idle);
    server.stop().await;
}

#[tokio::test]
async fn over_the_connection_cap_answers_busy() {
    let options = ServerOptions {
        max_connections: 4,
        ..ServerOptions::default()
    };
    let server = TestServer::start(options).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = server.client().await;
        // Make sure each connection has been accepted and holds a permit.
        assert!(c.call(&Request::Ping).await.unwrap().ok);
        held.push(c);
    }
    let mut extra = UnixStream::connect(&server.path).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let response: Response = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(code_of(response), ErrorCode::Busy);
    drop(held);
    // Permits come back once the held connections close.
    let mut ok = false;
    for _ in 0..50 {
        let mut c = server.client().await;
        if let Ok(r) = c.call(&Request::Ping).await
            && r.ok
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "server never recovered from the connection cap");
    server.stop().await;
}

#[tokio::test]
async fn idle_timeout_closes_silent_connections() {
    let options = ServerOptions {
        idle_timeout: Duration::from_millis(200),
        ..ServerOptions::default()
    };
    let server = TestServer::start(options).await;
    let mut silent = UnixStream::connect(&server.path).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf))
        .await
        .expect("idle connection was not closed")
        .unwrap();
    assert_eq!(n, 0);
    assert_pings(&server.path).await;
    server.stop().await;
}

#[tokio::test]
async fn a_second_daemon_is_refused_and_a_stale_socket_is_replaced() {
    let server = TestServer::start(ServerOptions::default()).await;
    match ControlServer::bind(&server.path, 0o660) {
        Err(ControlError::AlreadyRunning { path }) => assert_eq!(path, server.path),
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    // The refused bind did not disturb the live one.
    assert_pings(&server.path).await;
    server.stop().await;

    // A socket file nobody listens on (a crashed daemon's leftover).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let err = ControlClient::connect(&path).await.unwrap_err();
    assert!(matches!(err, ControlError::NotRunning { .. }), "{err:?}");
    let server = ControlServer::bind(&path, 0o600).unwrap();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(fake_supervisor(rx));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.serve(tx, shutdown.clone()));
    assert_pings(&path).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(!path.exists());

    // Something that is not a socket is never deleted.
    std::fs::write(&path, b"precious").unwrap();
    match ControlServer::bind(&path, 0o660) {
        Err(ControlError::NotASocket { .. }) => {}
        other => panic!("expected NotASocket, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[tokio::test]
async fn a_gone_supervisor_answers_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let server = ControlServer::bind(&path, 0o660).unwrap();
    let (tx, rx) = mpsc::channel::<ControlCall>(4);
    // A supervisor that drops every call without answering, then one that is gone.
    let dropper = tokio::spawn(async move {
        let mut rx = rx;
        if let Some(call) = rx.recv().await {
            drop(call);
        }
    });
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.serve(tx, shutdown.clone()));
    let mut client = ControlClient::connect(&path).await.unwrap();
    assert_eq!(
        code_of(client.call(&Request::Ping).await.unwrap()),
        ErrorCode::Internal
    );
    dropper.await.unwrap();
    assert_eq!(
        code_of(client.call(&Request::Ping).await.unwrap()),
        ErrorCode::Unavailable
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn connecting_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let err = ControlClient::connect(&path).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ControlError::NotRunning { .. }));
    assert!(message.contains("daemon is not running"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("systemctl start retailcrm-sync"),
        "{message}"
    );
}
