//! OS signals reach the supervisor's channel as `Signal` messages (own test binary: raising
//! SIGTERM in a process shared with other tests would be rude).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use retailcrm_sync::daemon::signals::{Signal, spawn_signal_listener};
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::mpsc;

#[tokio::test]
async fn hup_term_and_int_become_messages() {
    let (tx, mut rx) = mpsc::channel(8);
    let listener = spawn_signal_listener(tx).unwrap();
    for (raw, expected) in [
        (SIGHUP, Signal::Reload),
        (SIGTERM, Signal::Terminate),
        (SIGINT, Signal::Terminate),
        (SIGHUP, Signal::Reload),
    ] {
        signal_hook::low_level::raise(raw).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("signal not delivered")
            .expect("listener ended");
        assert_eq!(got, expected, "signal {raw}");
    }
    listener.close().await;
    // After close, signals are swallowed by the still-registered handlers, not fatal.
    signal_hook::low_level::raise(SIGHUP).unwrap();
    assert!(rx.recv().await.is_none(), "no messages after close");
}
