//! The systemd notification protocol (`sd_notify`), as a handful of named calls.
//!
//! Every function is a no-op when `NOTIFY_SOCKET` is unset (not under systemd, or a unit that is
//! not `Type=notify`), and a failure to notify is logged, never fatal: the daemon's work matters
//! more than telling systemd about it. `RELOADING=1` always carries `MONOTONIC_USEC`, which
//! systemd ≥ 253 requires for `Type=notify-reload` (anchors D).

use std::time::Duration;

use sd_notify::NotifyState;

/// True when systemd asked for notifications.
fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `states`, logging (not returning) a failure.
fn send(what: &'static str, states: &[NotifyState<'_>]) {
    if !enabled() {
        return;
    }
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(notification = what, error = %err, "sd_notify failed.");
    }
}

/// `READY=1`: start-up (or a reload) is complete.
pub fn ready() {
    send("READY", &[NotifyState::Ready]);
}

/// `RELOADING=1` with `MONOTONIC_USEC`: a reload started; follow with [`ready`] when done.
pub fn reloading() {
    if !enabled() {
        return;
    }
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("RELOADING", &[NotifyState::Reloading, now]),
        Err(err) => {
            tracing::warn!(error = %err, "Cannot read CLOCK_MONOTONIC for RELOADING=1.");
            send("RELOADING", &[NotifyState::Reloading]);
        }
    }
}

/// `STOPPING=1`: shutdown started.
pub fn stopping() {
    send("STOPPING", &[NotifyState::Stopping]);
}

/// `STATUS=...`: a one-line status shown by `systemctl status`. Newlines are flattened since
/// the protocol is line-based.
pub fn status(text: &str) {
    if !enabled() {
        return;
    }
    let line = text.replace(['\n', '\r'], " ");
    send("STATUS", &[NotifyState::Status(&line)]);
}

/// `WATCHDOG=1`: the daemon is alive; send at least every [`watchdog_interval`].
pub fn watchdog() {
    send("WATCHDOG", &[NotifyState::Watchdog]);
}

/// How often to call [`watchdog`]: half of `WATCHDOG_USEC`, or `None` when the watchdog is off
/// (or meant for another process, per `WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|period| period / 2)
}
