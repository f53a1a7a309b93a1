//! OS signals as messages. signal-hook-tokio turns SIGHUP, SIGTERM and SIGINT into a stream; a
//! small task maps each to a [`Signal`] and sends it to the supervisor's channel, where it is
//! handled next to control-socket commands (one internal enum, one place; Vector's
//! `src/signal.rs` pattern). Repeated signals are all forwarded: the supervisor decides what a
//! second SIGTERM during a drain means.

use futures::StreamExt;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::{Handle, Signals};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: re-read and validate the config, apply the difference.
    Reload,
    /// SIGTERM or SIGINT: stop taking jobs, drain, exit 0.
    Terminate,
}

impl Signal {
    /// Maps a raw signal number; `None` for signals we do not listen to.
    pub fn from_raw(signal: i32) -> Option<Signal> {
        match signal {
            SIGHUP => Some(Signal::Reload),
            SIGTERM | SIGINT => Some(Signal::Terminate),
            _ => None,
        }
    }
}

/// A running signal listener. Dropping it leaves the task running until the receiver is
/// dropped; call [`close`](SignalListener::close) to stop it explicitly.
#[derive(Debug)]
pub struct SignalListener {
    /// Closes the signal stream (the task then ends).
    handle: Handle,
    /// The forwarding task.
    task: JoinHandle<()>,
}

impl SignalListener {
    /// Stops listening and waits for the forwarding task to end. The signal handlers stay
    /// registered (signal-hook never unregisters), so later signals are ignored, not fatal.
    pub async fn close(self) {
        self.handle.close();
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "Signal listener task ended abnormally.");
        }
    }
}

/// Installs handlers for SIGHUP, SIGTERM and SIGINT and spawns a task (on the current tokio
/// runtime) that sends a [`Signal`] to `tx` for each. The task ends when `tx`'s receiver is
/// dropped or the listener is closed.
pub fn spawn_signal_listener(tx: mpsc::Sender<Signal>) -> std::io::Result<SignalListener> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let handle = signals.handle();
    let task = tokio::spawn(async move {
        while let Some(raw) = signals.next().await {
            let Some(signal) = Signal::from_raw(raw) else {
                continue;
            };
            tracing::info!(signal = raw, action = ?signal, "Received signal.");
            if tx.send(signal).await.is_err() {
                break;
            }
        }
    });
    Ok(SignalListener { handle, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_signals() {
        assert_eq!(Signal::from_raw(SIGHUP), Some(Signal::Reload));
        assert_eq!(Signal::from_raw(SIGTERM), Some(Signal::Terminate));
        assert_eq!(Signal::from_raw(SIGINT), Some(Signal::Terminate));
        assert_eq!(Signal::from_raw(signal_hook::consts::signal::SIGUSR1), None);
    }
}
