//! Wakes the supervisor when the platform writes the outbox: one dedicated Postgres connection
//! runs `LISTEN retailcrm_outbox` (the outbox's insert trigger sends `NOTIFY` with the project
//! id, delivered when the platform's transaction commits), and each notification becomes a
//! project id on a channel to the supervisor, which enqueues a `push` job (coalesced).
//!
//! The connection is re-established with capped backoff when it drops; notifications sent
//! while it is down are not replayed, which is why the supervisor also sweeps the outbox every
//! `sync.push_sweep_secs`: LISTEN makes pushes immediate, the sweep makes them certain.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The channel the outbox trigger notifies.
pub const CHANNEL: &str = "retailcrm_outbox";

/// Listens until `stop`; sends the project id of every notification to `out`.
pub async fn run(database_url: String, out: mpsc::Sender<i64>, stop: CancellationToken) {
    let mut delay = Duration::from_millis(500);
    loop {
        if stop.is_cancelled() {
            return;
        }
        match listen_once(&database_url, &out, &stop).await {
            Ok(()) => return,
            Err(e) => {
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "outbox LISTEN connection lost; the periodic sweep covers the gap");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

async fn listen_once(
    url: &str,
    out: &mpsc::Sender<i64>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let (tx, mut messages) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(m) => {
                    if tx.send(Ok(m)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    info!("listening for outbox changes (LISTEN {CHANNEL})");
    let result = loop {
        tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            m = messages.recv() => match m {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    match n.payload().trim().parse::<i64>() {
                        Ok(project_id) => {
                            if out.send(project_id).await.is_err() {
                                break Ok(());
                            }
                        }
                        Err(_) => debug!(payload = n.payload(), "outbox notification without a project id; ignored"),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e.to_string()),
                None => break Err("the connection closed".to_string()),
            }
        }
    };
    driver.abort();
    result
}
