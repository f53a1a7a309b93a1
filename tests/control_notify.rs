//! The sd_notify wrapper against a real datagram socket standing in for systemd. One test in
//! its own binary, because it sets process-wide environment variables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use retailcrm_sync::daemon::notify;

fn recv(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("no notification arrived");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notifications_reach_systemd_and_are_silent_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    // Without NOTIFY_SOCKET nothing is sent and nothing fails.
    // SAFETY: this test binary has a single test, so no other thread reads the environment.
    unsafe {
        std::env::remove_var("NOTIFY_SOCKET");
        std::env::remove_var("WATCHDOG_USEC");
        std::env::remove_var("WATCHDOG_PID");
    }
    notify::ready();
    notify::reloading();
    notify::status("x");
    assert_eq!(notify::watchdog_interval(), None);

    // SAFETY: as above.
    unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
    notify::ready();
    assert_eq!(recv(&systemd), "READY=1\n");
    notify::reloading();
    let reloading = recv(&systemd);
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"));
    let usec: i128 = lines
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("RELOADING=1 without MONOTONIC_USEC")
        .parse()
        .unwrap();
    assert!(usec > 0);
    notify::status("syncing 3 projects\nsecond line");
    assert_eq!(recv(&systemd), "STATUS=syncing 3 projects second line\n");
    notify::stopping();
    assert_eq!(recv(&systemd), "STOPPING=1\n");
    notify::watchdog();
    assert_eq!(recv(&systemd), "WATCHDOG=1\n");

    // SAFETY: as above.
    unsafe {
        std::env::set_var("WATCHDOG_USEC", "60000000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    }
    assert_eq!(notify::watchdog_interval(), Some(Duration::from_secs(30)));
    // SAFETY: as above.
    unsafe { std::env::set_var("WATCHDOG_PID", "1") };
    assert_eq!(
        notify::watchdog_interval(),
        None,
        "watchdog meant for another pid"
    );

    // A dead systemd socket is logged, not fatal.
    drop(systemd);
    notify::ready();
}
