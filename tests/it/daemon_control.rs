//! The daemon's control plane end to end: reconcile on `ctl reload` and SIGHUP, config reload
//! errors, a hostile control socket, and start-up (second daemon, stale socket, dead Postgres).

use crate::common;

use std::time::Duration;

use common::daemon::{DaemonOpts, Env, mock};
use common::redis::{PrivateRedis, free_port};
use retailcrm_sync::control::protocol::{JobOutcome, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ids(s: &retailcrm_sync::control::protocol::DaemonStatus) -> Vec<i64> {
    s.projects.iter().map(|p| p.project_id).collect()
}

/// JSON log lines with `message == msg` and `project_id == id`.
fn log_count(logs: &str, msg: &str, project_id: i64) -> usize {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == msg && v["project_id"] == project_id)
        .count()
}

/// Integrations inserted with SQL appear after `ctl reload` and after SIGHUP; a deactivated
/// one disappears; editing one project's key restarts that project only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_and_sighup_reconcile_integrations() {
    let a = mock(50, 20, 61).await;
    let b = mock(50, 20, 62).await;
    let env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &a, 600).await;
    let daemon = env.start().await;
    daemon
        .wait_status("project 1", Duration::from_secs(10), |s| ids(s) == [1])
        .await;

    env.insert_integration(2, &b, 600).await;
    let (code, out, err) = daemon.ctl(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    // `reload` answers once the projects match the table.
    assert_eq!(ids(&daemon.status().await), [1, 2]);

    env.insert_integration(3, &b, 600).await;
    daemon.signal(libc::SIGHUP);
    daemon
        .wait_status("project 3 after SIGHUP", Duration::from_secs(10), |s| {
            ids(s) == [1, 2, 3]
        })
        .await;
    // Let every project finish its first sync so a restart would be visible.
    daemon
        .wait_status("first syncs", Duration::from_secs(20), |s| {
            s.projects.iter().all(|p| p.last_success_at.is_some())
        })
        .await;

    env.sql("UPDATE retailcrm_integrations SET is_active = FALSE WHERE project_id = 2")
        .await;
    assert!(daemon.call(&Request::Reload).await.ok);
    assert_eq!(ids(&daemon.status().await), [1, 3], "project 2 stopped");
    let r = daemon
        .call(&Request::Trigger {
            project_id: 2,
            kind: "sync_all".into(),
            entity_id: None,
            since_id: None,
        })
        .await;
    assert!(!r.ok, "a deactivated project takes no jobs");

    let before = env.logs();
    assert_eq!(log_count(&before, "project started", 1), 1);
    assert_eq!(log_count(&before, "project started", 3), 1);
    let success_1 = daemon.project(1).await.unwrap().last_success_at;
    env.sql(
        "UPDATE retailcrm_integrations SET api_key = 'another-key-0123456789' WHERE project_id = 3",
    )
    .await;
    assert!(daemon.call(&Request::Reload).await.ok);
    let started = std::time::Instant::now();
    while log_count(&env.logs(), "project started", 3) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "project 3 did not restart\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p1 = daemon.project(1).await.unwrap();
    assert_eq!(p1.last_success_at, success_1);
    assert_eq!(p1.restarts, 0);
    // A restart of project 1 would have been decided in that same reconcile, before `reload`
    // answered, and logged by its new actor before that actor could take a job. So once a job
    // triggered now has run on project 1, a wrong restart would be in the log.
    let job = daemon.trigger(1, "sync_orders").await;
    daemon
        .wait_status(
            "a job on project 1 after the reload",
            Duration::from_secs(10),
            |s| {
                s.projects.iter().any(|p| {
                    p.project_id == 1
                        && p.last_finished
                            .as_ref()
                            .is_some_and(|f| f.job_id == job && f.outcome == JobOutcome::Succeeded)
                })
            },
        )
        .await;
    let logs = env.logs();
    assert_eq!(
        log_count(&logs, "project started", 1),
        1,
        "project 1 was restarted"
    );
    assert_eq!(
        log_count(&logs, "integration changed: restarting its project", 1),
        0,
        "project 1 was restarted"
    );
    assert_eq!(
        log_count(&logs, "integration changed: restarting its project", 3),
        1
    );
    assert_eq!(daemon.project(1).await.unwrap().restarts, 0);
    assert_eq!(ids(&daemon.status().await), [1, 3]);

    // A removed integration: its project stops and its queue is purged.
    let keys_3 = format!("{}:p:3", env.prefix);
    assert!(
        common::redis::count_keys(&keys_3).await > 0,
        "project 3 has queue keys"
    );
    env.sql("DELETE FROM retailcrm_integrations WHERE project_id = 3")
        .await;
    assert!(daemon.call(&Request::Reload).await.ok);
    assert_eq!(ids(&daemon.status().await), [1]);
    let started = std::time::Instant::now();
    while common::redis::count_keys(&keys_3).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "project 3's queue was not purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !logs.contains(&a.api_key)
            && !logs.contains(&b.api_key)
            && !logs.contains("another-key-0123456789")
    );
}

/// The daemon says when its Redis would lose the queue: quiet on a Redis with AOF and no
/// eviction; after persistence is switched off and an evicting policy set, the next reload puts
/// both in `status` (and the table) with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_without_persistence_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let _redis = PrivateRedis::start(dir.path(), port);
    let env = Env::new(DaemonOpts::default()).await;
    let mut daemon = env.spawn_with_env(&[("RETAILCRM_SYNC__REDIS__URL", url.as_str())]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    // Checked before the daemon answers: the first status is the verdict.
    assert_eq!(daemon.status().await.warnings, Vec::<String>::new());

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for (key, value) in [("appendonly", "no"), ("maxmemory-policy", "allkeys-lru")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(key)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    daemon.signal(libc::SIGHUP);
    let s = daemon
        .wait_status("warnings", Duration::from_secs(10), |s| {
            s.warnings.len() == 2
        })
        .await;
    assert!(
        s.warnings[0].contains("keeps nothing on disk"),
        "{:?}",
        s.warnings
    );
    assert!(s.warnings[0].contains("appendonly yes"), "{:?}", s.warnings);
    assert!(s.warnings[1].contains("allkeys-lru"), "{:?}", s.warnings);
    let (code, out, _) = daemon.ctl(&["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("! Redis keeps nothing on disk"), "{out}");
    assert!(
        env.logs().contains("keeps nothing on disk"),
        "logged as well"
    );
}

/// SIGHUP with a broken config keeps the daemon on the old one and `status` says why; a fixed
/// file and another SIGHUP clear the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_broken_config_keeps_running() {
    let a = mock(50, 20, 71).await;
    let mut env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &a, 600).await;
    let daemon = env.start().await;
    daemon
        .wait_status("project 1", Duration::from_secs(10), |s| ids(s) == [1])
        .await;
    let good = env.config_text();
    std::fs::write(
        &env.config_path,
        good.replace("page_size = 100", "page_size = 7"),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    let s = daemon
        .wait_status("config_error", Duration::from_secs(10), |s| {
            s.config_error.is_some()
        })
        .await;
    let why = s.config_error.unwrap();
    assert!(
        why.contains("page_size"),
        "the error names the bad key: {why}"
    );
    assert_eq!(
        ids(&daemon.status().await),
        [1],
        "still running the old config"
    );
    let (code, out, _) = daemon.ctl(&["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("page_size"),
        "the table shows the reload error: {out}"
    );
    // Not even TOML.
    std::fs::write(&env.config_path, "[sync\npage_size = ").unwrap();
    let r = daemon.call(&Request::Reload).await;
    assert!(!r.ok, "ctl reload reports the failure");
    assert!(daemon.status().await.config_error.is_some());
    assert!(daemon.call(&Request::Ping).await.ok);

    env.opts.reconcile_secs = 300;
    env.write_config();
    daemon.signal(libc::SIGHUP);
    daemon
        .wait_status("config_error cleared", Duration::from_secs(10), |s| {
            s.config_error.is_none()
        })
        .await;
    assert_eq!(ids(&daemon.status().await), [1]);

    // Live: the log level. Needs a restart: the socket path (reported, the old one kept).
    env.opts.log_level = "warn".into();
    let moved = env.config_text().replace("control.sock", "moved.sock");
    std::fs::write(&env.config_path, moved).unwrap();
    daemon.signal(libc::SIGHUP);
    let s = daemon
        .wait_status("restart_required", Duration::from_secs(10), |s| {
            !s.restart_required.is_empty()
        })
        .await;
    assert_eq!(s.restart_required, ["control"]);
    assert!(s.config_error.is_none());
    let so_far = env.logs();
    assert!(
        so_far.contains("\"level\":\"INFO\""),
        "JSON lines carry their level"
    );
    let lines_before = so_far.lines().count();
    let job = daemon.trigger(1, "sync_orders").await;
    daemon
        .wait_status("job done", Duration::from_secs(10), |s| {
            s.projects[0]
                .last_finished
                .as_ref()
                .is_some_and(|f| f.job_id == job)
        })
        .await;
    let new_lines: Vec<String> = env
        .logs()
        .lines()
        .skip(lines_before)
        .map(String::from)
        .collect();
    assert!(
        new_lines
            .iter()
            .all(|l| !l.contains("\"level\":\"INFO\"") && !l.contains("\"level\":\"DEBUG\"")),
        "info/debug lines after the level became warn: {new_lines:?}"
    );
}

/// Random bytes, a 10 MB line and 200 idle connections leave the daemon answering `ping`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_socket_is_harmless() {
    let env = Env::new(DaemonOpts::default()).await;
    let mut daemon = env.start().await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(
            tokio::net::UnixStream::connect(&daemon.socket)
                .await
                .unwrap(),
        );
    }
    assert!(
        daemon.call(&Request::Ping).await.ok,
        "ping with 200 idle connections open"
    );

    // Random bytes ending in a newline: a JSON error, and the connection stays usable.
    let mut s = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let mut junk: Vec<u8> = (0..4096).map(|i| ((i * 7919 + 13) % 251) as u8).collect();
    junk.retain(|b| *b != b'\n');
    junk.push(b'\n');
    s.write_all(&junk).await.unwrap();
    s.write_all(b"{\"cmd\":\"launch_missiles\"}\n{\"cmd\":\"status\",\"project_id\":999}\n{\"cmd\":\"ping\"}\n")
        .await
        .unwrap();
    let mut reader = tokio::io::BufReader::new(s);
    let mut replies = Vec::new();
    for _ in 0..4 {
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line),
        )
        .await
        .expect("an answer to every line")
        .unwrap();
        replies.push(serde_json::from_str::<serde_json::Value>(&line).expect("JSON answer"));
    }
    assert_eq!(replies[0]["ok"], false);
    assert_eq!(replies[1]["ok"], false);
    assert_eq!(
        replies[2]["ok"], false,
        "unknown project is an error: {}",
        replies[2]
    );
    assert_eq!(replies[3]["ok"], true);

    // A 10 MB line.
    let mut big = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..10 {
        big.write_all(&chunk).await.unwrap();
    }
    big.write_all(b"\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), big.read(&mut buf))
        .await
        .expect("an answer to the huge line")
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("JSON answer");
    assert_eq!(reply["error"]["code"], "line_too_long", "{reply}");

    // Random bytes without a newline, then the writer hangs up half way.
    let mut half = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    half.write_all(&junk[..1000]).await.unwrap();
    drop(half);

    let started = std::time::Instant::now();
    assert!(daemon.call(&Request::Ping).await.ok);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(daemon.try_exit().is_none());
    drop(idle);
    assert!(daemon.call(&Request::Ping).await.ok);
}

/// A second daemon on the same socket is refused; a stale socket file is cleaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_daemon_is_refused_and_stale_socket_is_cleaned() {
    let env = Env::new(DaemonOpts::default()).await;
    // A stale socket: bound, then its listener gone.
    drop(std::os::unix::net::UnixListener::bind(&env.socket).unwrap());
    assert!(env.socket.exists());
    let first = env.start().await;
    let mut second = env.spawn();
    let exit = second
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("the second daemon exits at once");
    assert!(!exit.success(), "the second daemon must fail");
    let logs = env.logs();
    assert!(
        logs.contains("already") && logs.contains(&env.socket.display().to_string()),
        "a clear message naming the socket: {logs}"
    );
    assert!(
        first.call(&Request::Ping).await.ok,
        "the first daemon is untouched"
    );
    assert!(env.socket.exists());
}

/// With Postgres unreachable the daemon keeps retrying (reporting STATUS= to systemd) and
/// exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_postgres_is_retried_and_sigterm_exits_0() {
    let env = Env::new(DaemonOpts {
        db_url: Some("postgres://postgres@127.0.0.1:1/nothing".into()),
        ..DaemonOpts::default()
    })
    .await;
    let notify_path = env.dir.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&notify_path).unwrap();
    let mut daemon = env.spawn_with_env(&[("NOTIFY_SOCKET", notify_path.to_str().unwrap())]);
    let mut statuses = Vec::new();
    let mut buf = vec![0u8; 4096];
    let started = std::time::Instant::now();
    while statuses
        .iter()
        .filter(|s: &&String| s.contains("waiting for PostgreSQL"))
        .count()
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no retries reported: {statuses:?}"
        );
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), notify.recv(&mut buf)).await
        {
            statuses.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(
        daemon.try_exit().is_none(),
        "still running while Postgres is down"
    );
    assert!(!statuses.iter().any(|s| s.contains("READY=1")));
    // The socket is up: `ping` works and everything else says why the daemon is not ready.
    assert!(daemon.call(&Request::Ping).await.ok);
    let r = daemon.call(&Request::Status { project_id: None }).await;
    let why = r.error.expect("status is refused while starting").message;
    assert!(why.contains("waiting for PostgreSQL"), "{why}");
    let (code, _, err) = daemon.ctl(&["status"]);
    assert_ne!(code, 0);
    assert!(err.contains("waiting for PostgreSQL"), "{err}");
    daemon.signal(libc::SIGTERM);
    let exit = daemon
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits after SIGTERM");
    assert!(exit.success(), "exit status {exit}\n{}", env.logs());
    assert!(!env.socket.exists(), "the socket is removed on the way out");
}

/// `pause` keeps a triggered job waiting, `resume` runs it; a dead job comes back with `retry`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_retry_dead() {
    use retailcrm_sync::control::protocol::ProjectState;
    let crm = mock(100, 40, 81).await;
    let env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &crm, 600).await;
    let daemon = env.start().await;
    daemon
        .wait_status("first sync", Duration::from_secs(20), |s| {
            s.projects.iter().any(|p| p.last_success_at.is_some())
        })
        .await;
    let (code, _, err) = daemon.ctl(&["pause", "1"]);
    assert_eq!(code, 0, "{err}");
    let paused_looks = |logs: &str| log_count(logs, "paused: queued jobs wait for resume", 1);
    let looks_before = paused_looks(&env.logs());
    let job = daemon.trigger(1, "sync_orders").await;
    // The trigger wakes the project's job taker; it looks at the queue and, paused, leaves the
    // job there (and says so at debug level). Only past that look does "still waiting" mean
    // anything; a job taken while paused ends the wait at once.
    let started = std::time::Instant::now();
    while paused_looks(&env.logs()) <= looks_before {
        let p = daemon.project(1).await.unwrap();
        assert!(
            p.running_job.is_none() && p.queue_depth == 1,
            "the job was taken while paused: {p:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the paused project never looked at its queue after the trigger\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = daemon.project(1).await.unwrap();
    assert_eq!(p.state, ProjectState::Paused);
    assert_eq!(p.queue_depth, 1, "the job waits while paused");
    assert!(p.running_job.is_none(), "{p:?}");
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) AS n FROM sync_runs WHERE job_id = '{job}'"
        ))
        .await,
        0,
        "the job ran while paused"
    );
    let (code, _, err) = daemon.ctl(&["resume", "1"]);
    assert_eq!(code, 0, "{err}");
    daemon
        .wait_status("the job ran after resume", Duration::from_secs(10), |s| {
            s.projects[0]
                .last_finished
                .as_ref()
                .is_some_and(|f| f.job_id == job && f.outcome == JobOutcome::Succeeded)
        })
        .await;

    crm.revoke_key();
    let dead = daemon.trigger(1, "sync_customers").await;
    daemon
        .wait_status("dead", Duration::from_secs(10), |s| {
            s.projects[0].dead_jobs == 1
        })
        .await;
    crm.restore_key();
    let (code, out, err) = daemon.ctl(&["retry", "1", &dead]);
    assert_eq!(code, 0, "{out}{err}");
    let s = daemon
        .wait_status("the retried job succeeded", Duration::from_secs(10), |s| {
            s.projects[0]
                .last_finished
                .as_ref()
                .is_some_and(|f| f.job_id == dead && f.outcome == JobOutcome::Succeeded)
        })
        .await;
    assert_eq!(s.projects[0].dead_jobs, 0);
    let (code, _, _) = daemon.ctl(&["retry", "1", "no-such-job"]);
    assert_ne!(code, 0, "retrying an unknown job is an error");
}

/// A project whose RetailCRM client cannot be built (plain http to a remote host) is shown
/// `failed` with the reason, is restarted under the budget, and does not disturb the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstartable_project_is_failed_and_isolated() {
    use retailcrm_sync::control::protocol::ProjectState;
    let crm = mock(50, 20, 91).await;
    let env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &crm, 600).await;
    env.insert_integration_raw(2, "http://shop.example.com", "some-key-0123456789", 600)
        .await;
    let daemon = env.start().await;
    let s = daemon
        .wait_status(
            "project 2 failed and project 1 synced",
            Duration::from_secs(20),
            |s| {
                s.projects.len() == 2
                    && s.projects[1].state == ProjectState::Failed
                    && s.projects[0].last_success_at.is_some()
            },
        )
        .await;
    let err = s.projects[1]
        .last_error
        .as_ref()
        .expect("the reason is shown");
    assert!(err.permanent);
    assert!(err.message.contains("https"), "{}", err.message);
    daemon
        .wait_status("project 2 restarted", Duration::from_secs(10), |s| {
            s.projects[1].restarts >= 1
        })
        .await;
    assert!(daemon.call(&Request::Ping).await.ok);
    assert!(!env.logs().contains("some-key-0123456789"));
}

/// The systemd notifications over a daemon's life: READY=1 once serving; RELOADING=1 with
/// MONOTONIC_USEC then READY=1 on SIGHUP; STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_notify_ready_reloading_stopping() {
    let env = Env::new(DaemonOpts::default()).await;
    let notify_path = env.dir.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&notify_path).unwrap();
    let mut daemon = env.spawn_with_env(&[("NOTIFY_SOCKET", notify_path.to_str().unwrap())]);
    let mut buf = vec![0u8; 4096];
    let mut next = async || -> String {
        let n = tokio::time::timeout(Duration::from_secs(15), notify.recv(&mut buf))
            .await
            .expect("a notification")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.contains("READY=1")) {
        seen.push(next().await);
    }
    assert!(
        daemon.call(&Request::Ping).await.ok,
        "READY=1 only once it answers"
    );
    daemon.signal(libc::SIGHUP);
    let mut reload = Vec::new();
    while !reload.iter().any(|m: &String| m.contains("READY=1")) {
        reload.push(next().await);
    }
    let reloading = reload
        .iter()
        .find(|m| m.contains("RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 in {reload:?}"));
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    daemon.signal(libc::SIGTERM);
    let mut stop = Vec::new();
    while !stop.iter().any(|m: &String| m.contains("STOPPING=1")) {
        stop.push(next().await);
    }
    let exit = daemon
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exit");
    assert!(exit.success());
}
