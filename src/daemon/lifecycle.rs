//! The daemon's life from `run` to exit (DESIGN.md section 7): wait for Postgres and Redis with
//! backoff (reporting `STATUS=`), run pending migrations if configured, bind the control socket
//! (refusing a second daemon, cleaning a stale file), start the supervisor, report `READY=1`,
//! bridge signals and control calls into the supervisor's one event enum, and exit when the
//! supervisor has drained the running jobs.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::notify;
use super::signals::{Signal, spawn_signal_listener};
use super::supervisor::{DaemonEvent, Supervisor, SupervisorArgs};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::control::ControlError;
use crate::control::server::{ControlCall, ControlServer};
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
}

/// The queue options the config asks for.
pub fn queue_options(settings: &Settings) -> QueueOptions {
    QueueOptions {
        key_prefix: settings.redis.key_prefix.clone(),
        max_attempts: settings.sync.max_attempts,
        backoff_base: Duration::from_secs(settings.sync.backoff_base_secs),
        lease: Duration::from_secs(settings.sync.lease_secs),
        max_stalls: settings.sync.max_stalls,
        ..QueueOptions::default()
    }
}

/// Retries `connect` with capped exponential backoff until it works or a stop signal arrives
/// (a reload during start-up is ignored: the config is read fresh at start anyway).
async fn with_backoff<T, E, F, Fut>(
    what: &'static str,
    signals: &mut mpsc::Receiver<Signal>,
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
                notify::status(&msg);
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

/// Runs the daemon until SIGTERM/SIGINT; must be called inside an actix `System`.
pub async fn run(
    settings: Settings,
    config_path: PathBuf,
    clock: SharedClock,
) -> Result<(), DaemonError> {
    // Signals first, so a stop during start-up is honoured.
    let (sig_tx, mut sig_rx) = mpsc::channel::<Signal>(16);
    spawn_signal_listener(sig_tx).map_err(DaemonError::Signals)?;

    notify::status("connecting to PostgreSQL");
    let store = with_backoff("PostgreSQL", &mut sig_rx, || {
        Store::connect(&settings.database)
    })
    .await?;
    with_backoff("PostgreSQL", &mut sig_rx, || store.ping()).await?;
    if settings.database.run_migrations_on_start {
        notify::status("running database migrations");
        store
            .run_migrations()
            .await
            .map_err(DaemonError::Migrations)?;
    }
    notify::status("connecting to Redis");
    let queue = with_backoff("Redis", &mut sig_rx, || {
        JobQueue::connect(&settings.redis.url, queue_options(&settings), clock.clone())
    })
    .await?;

    // Validation refused a bad mode already; 0660 is only a belt-and-braces default.
    let mode = settings.control.mode().unwrap_or(0o660);
    let server = ControlServer::bind(std::path::Path::new(&settings.control.socket_path), mode)?;

    let done = CancellationToken::new();
    let server_stop = CancellationToken::new();
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlCall>(256);
    let server_task = tokio::spawn(server.serve(ctl_tx, server_stop.clone()));

    let worker_id = new_worker_id();
    info!(worker_id = %worker_id, socket = %settings.control.socket_path, "daemon starting");
    let supervisor = Supervisor::new(SupervisorArgs {
        store,
        queue,
        settings,
        config_path,
        clock,
        worker_id,
        done: done.clone(),
    })
    .start();

    // One bridge: every signal and control call becomes a DaemonEvent for the supervisor.
    let bridge_sup = supervisor.clone();
    let bridge_done = done.clone();
    actix::spawn(async move {
        loop {
            tokio::select! {
                Some(call) = ctl_rx.recv() => bridge_sup.do_send(DaemonEvent::Control(call)),
                Some(sig) = sig_rx.recv() => bridge_sup.do_send(DaemonEvent::Signal(sig)),
                _ = bridge_done.cancelled() => break,
                else => break,
            }
        }
    });

    notify::ready();
    info!("daemon ready");
    done.cancelled().await;
    server_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), server_task).await;
    info!("daemon stopped");
    Ok(())
}
