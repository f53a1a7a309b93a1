//! The daemon's life from `run` to exit (DESIGN.md section 7): bind the control socket
//! (refusing a second daemon, cleaning a stale file), wait for Postgres and Redis with backoff
//! (reporting `STATUS=`, and "starting" to `ctl`), run pending migrations if configured, start
//! the supervisor, report `READY=1`,
//! bridge signals, control calls and webhook calls into the supervisor's one event enum, and
//! exit when the supervisor has drained the running jobs. The HTTP listener (`[http]`) is bound
//! next to the socket, before Postgres is awaited, so `/healthz` and `/readyz` answer while the
//! daemon starts.

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::notify;
use super::signals::{Signal, spawn_signal_listener};
use super::supervisor::{DaemonEvent, Supervisor, SupervisorArgs};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::control::ControlError;
use crate::control::protocol::{ErrorCode, Request, Response};
use crate::control::server::{ControlCall, ControlServer};
use crate::http::{HttpError, HttpServer, HttpShared, Readiness, WebhookDue};
use crate::queue::{JobQueue, QueueOptions, new_worker_id};
use crate::store::Store;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("stopped by a signal while waiting for {0}")]
    Interrupted(&'static str),
    #[error("could not run the database migrations: {0}")]
    Migrations(crate::store::StoreError),
    #[error("could not listen for signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// What the daemon is doing while it starts: shown to `ctl` callers and `/readyz` until it is
/// ready, and sent to systemd as `STATUS=`.
#[derive(Clone)]
struct Phase {
    text: Rc<RefCell<String>>,
    http: Arc<HttpShared>,
}

impl Phase {
    fn set(&self, text: &str) {
        notify::status(text);
        *self.text.borrow_mut() = text.to_string();
        self.http
            .set_readiness(Readiness::Starting(text.to_string()));
    }

    fn get(&self) -> String {
        self.text.borrow().clone()
    }
}

/// Retries `connect` with capped exponential backoff until it works or a stop signal arrives
/// (a reload during start-up is ignored: the config is read fresh at start anyway).
async fn with_backoff<T, E, F, Fut>(
    what: &'static str,
    signals: &mut mpsc::Receiver<Signal>,
    phase: &Phase,
    mut connect: F,
) -> Result<T, DaemonError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(500);
    loop {
        match connect().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let msg = format!(
                    "waiting for {what}: {e}; retrying in {}s",
                    delay.as_secs_f32()
                );
                warn!("{msg}");
                phase.set(&msg);
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        sig = signals.recv() => match sig {
                            Some(Signal::Terminate) | None => return Err(DaemonError::Interrupted(what)),
                            Some(Signal::Reload) => continue,
                        },
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Sets the start-up phase (systemd STATUS=, what `ctl` and `/readyz` are told).
fn set_phase(phase: &Phase, text: &str) {
    phase.set(text);
}

/// Runs the daemon until SIGTERM/SIGINT; must be called inside an actix `System`.
///
/// The control socket is bound first: a second daemon is refused before it touches Postgres,
/// a stale socket file is cleaned, and while Postgres or Redis are awaited `ctl` gets a clear
/// "starting: waiting for ..." answer (and `ping` a pong) instead of "not running".
pub async fn run(
    settings: Settings,
    config_path: PathBuf,
    clock: SharedClock,
) -> Result<(), DaemonError> {
    // Signals first, so a stop during start-up is honoured.
    let (sig_tx, sig_rx) = mpsc::channel::<Signal>(16);
    let _signals = spawn_signal_listener(sig_tx).map_err(DaemonError::Signals)?;

    // Validation refused a bad mode already; 0660 is only a belt-and-braces default.
    let mode = settings.control.mode().unwrap_or(0o660);
    let server = ControlServer::bind(std::path::Path::new(&settings.control.socket_path), mode)?
        .with_options(crate::control::ServerOptions {
            max_connections: settings.control.max_connections.max(8) as usize,
            ..crate::control::ServerOptions::default()
        });
    let server_stop = CancellationToken::new();
    let (ctl_tx, ctl_rx) = mpsc::channel::<ControlCall>(256);
    let http = HttpShared::new(ctl_tx.clone(), &settings.http);
    let server_task = tokio::spawn(server.serve(ctl_tx, server_stop.clone()));

    // The HTTP listener is bound before Postgres is awaited, like the socket: a taken port is
    // refused at once, and /healthz, /readyz answer during start-up.
    let http_stop = CancellationToken::new();
    let listen = settings.http.listen_addr().ok().flatten();
    let http_task = match listen {
        Some(addr) => {
            let listener = match HttpServer::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    server_stop.cancel();
                    let _ = tokio::time::timeout(Duration::from_secs(2), server_task).await;
                    return Err(e.into());
                }
            };
            Some(tokio::spawn(listener.serve(
                http.clone(),
                settings.http.clone(),
                http_stop.clone(),
            )))
        }
        None => None,
    };
    let (hook_tx, hook_rx) = mpsc::channel::<WebhookDue>(64);
    let (outbox_tx, outbox_rx) = mpsc::channel::<i64>(256);
    tokio::spawn(super::outbox_listener::run(
        settings.database.url.clone(),
        outbox_tx,
        http_stop.clone(),
    ));
    tokio::spawn(crate::http::webhooks::dispatch(
        http.clone(),
        hook_tx,
        http_stop.clone(),
    ));

    let done = CancellationToken::new();
    let phase = Phase {
        text: Rc::new(RefCell::new("starting".to_string())),
        http: http.clone(),
    };
    let (started_tx, started_rx) = oneshot::channel::<(Addr<Supervisor>, mpsc::Receiver<Signal>)>();
    actix::spawn(bridge(
        ctl_rx,
        hook_rx,
        outbox_rx,
        started_rx,
        phase.clone(),
        done.clone(),
    ));

    let result = start(
        settings,
        config_path,
        clock,
        sig_rx,
        &phase,
        done.clone(),
        started_tx,
    )
    .await;
    if result.is_ok() {
        http.set_readiness(Readiness::Ready);
        notify::ready();
        info!("daemon ready");
        done.cancelled().await;
    }
    server_stop.cancel();
    http_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), server_task).await;
    if let Some(task) = http_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    if result.is_ok() {
        info!("daemon stopped");
    }
    result
}

/// Connects, migrates and starts the supervisor; hands it (and the signals) to the bridge.
async fn start(
    settings: Settings,
    config_path: PathBuf,
    clock: SharedClock,
    mut sig_rx: mpsc::Receiver<Signal>,
    phase: &Phase,
    done: CancellationToken,
    started: oneshot::Sender<(Addr<Supervisor>, mpsc::Receiver<Signal>)>,
) -> Result<(), DaemonError> {
    set_phase(phase, "connecting to PostgreSQL");
    let store = with_backoff("PostgreSQL", &mut sig_rx, phase, || {
        Store::connect(&settings.database)
    })
    .await?;
    with_backoff("PostgreSQL", &mut sig_rx, phase, || store.ping()).await?;
    if settings.database.run_migrations_on_start {
        set_phase(phase, "running database migrations");
        store
            .run_migrations()
            .await
            .map_err(DaemonError::Migrations)?;
    }
    set_phase(phase, "connecting to Redis");
    let queue = with_backoff("Redis", &mut sig_rx, phase, || {
        JobQueue::connect(
            &settings.redis.url,
            QueueOptions::from_settings(&settings),
            clock.clone(),
        )
    })
    .await?;
    phase.http.set_backends(store.clone(), queue.clone());
    let warnings = queue.durability_warnings().await;
    for w in &warnings {
        warn!("{w}");
    }

    let worker_id = new_worker_id();
    info!(worker_id = %worker_id, socket = %settings.control.socket_path, "daemon starting");
    let supervisor = Supervisor::new(SupervisorArgs {
        store,
        queue,
        settings,
        config_path,
        clock,
        worker_id,
        warnings,
        done,
        http: phase.http.clone(),
    })
    .start();
    // The bridge only ends early when the daemon is stopping anyway.
    let _ = started.send((supervisor, sig_rx));
    Ok(())
}

/// The one bridge from the outside into the supervisor: while the daemon starts, control calls
/// are answered here (`ping`/`version` normally, the rest "starting: <phase>"); once the
/// supervisor runs, every control call and signal becomes a [`DaemonEvent`] for it.
async fn bridge(
    mut ctl_rx: mpsc::Receiver<ControlCall>,
    mut hook_rx: mpsc::Receiver<WebhookDue>,
    mut outbox_rx: mpsc::Receiver<i64>,
    mut started: oneshot::Receiver<(Addr<Supervisor>, mpsc::Receiver<Signal>)>,
    phase: Phase,
    done: CancellationToken,
) {
    let (supervisor, mut sig_rx) = loop {
        tokio::select! {
            s = &mut started => match s {
                Ok(s) => break s,
                Err(_) => return, // start-up failed or was interrupted
            },
            Some(call) = ctl_rx.recv() => {
                let response = match call.request {
                    Request::Ping => Response::ok(serde_json::json!({ "pong": true, "starting": true })),
                    Request::Version => Response::ok(
                        serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "pid": std::process::id(), "starting": true }),
                    ),
                    _ => Response::error(
                        ErrorCode::Unavailable,
                        format!(
                            "the daemon is starting ({}); retry in a moment, or see its log",
                            phase.get()
                        ),
                    ),
                };
                let _ = call.reply.send(response);
            }
        }
    };
    loop {
        tokio::select! {
            Some(call) = ctl_rx.recv() => supervisor.do_send(DaemonEvent::Control(call)),
            Some(sig) = sig_rx.recv() => supervisor.do_send(DaemonEvent::Signal(sig)),
            Some(due) = hook_rx.recv() => supervisor.do_send(DaemonEvent::Webhook(due)),
            Some(project_id) = outbox_rx.recv() => supervisor.do_send(DaemonEvent::OutboxChanged(project_id)),
            _ = done.cancelled() => break,
            else => break,
        }
    }
}
