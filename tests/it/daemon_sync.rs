//! The daemon end to end: real binary, real Postgres and Redis, in-process mock RetailCRM.

use crate::common;

use std::time::Duration;

use common::daemon::{DaemonOpts, Env, mock};
use common::proxy::TcpProxy;
use common::redis::{PrivateRedis, free_port};
use retailcrm_sync::control::protocol::{JobOutcome, ProjectState, Request};

/// `ctl trigger P sync_all --wait` ends with Postgres equal to the mock and `status` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_wait_syncs_everything() {
    let crm = mock(700, 300, 11).await;
    let env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &crm, 60).await;
    let daemon = env.start().await;
    daemon
        .wait_status("project 1 running", Duration::from_secs(10), |s| {
            s.projects.iter().any(|p| p.project_id == 1)
        })
        .await;
    // The integration never synced, so the scheduler's first tick enqueues at once; the manual
    // trigger coalesces with it or runs after it. Either way --wait must end in success.
    let socket = daemon.socket.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        common::daemon::ctl(&socket, &["trigger", "1", "sync_all", "--wait"])
    })
    .await
    .unwrap();
    assert_eq!(
        code,
        0,
        "ctl trigger --wait failed\nstdout: {out}\nstderr: {err}\nlog:\n{}",
        env.logs()
    );
    env.assert_equals_mock(1, &crm).await;

    let (code, out, _) = daemon.ctl(&["--json", "status"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    let text = out.clone();
    let projects = status["projects"]
        .as_array()
        .or_else(|| status["data"]["projects"].as_array())
        .unwrap_or_else(|| panic!("no projects in {text}"));
    let p = &projects[0];
    assert_eq!(p["project_id"], 1);
    assert!(p["last_success_at"].is_string(), "{p}");
    assert_eq!(p["last_finished"]["outcome"], "succeeded", "{p}");
    let p = daemon.project(1).await.unwrap();
    assert_eq!(p.state, ProjectState::Idle);
    assert_eq!(p.last_finished.unwrap().outcome, JobOutcome::Succeeded);
    assert_eq!(p.cursor_lag, Some(0), "caught up after the run");
    let runs = env
        .count("SELECT count(*) AS n FROM sync_runs WHERE project_id = 1 AND outcome = 'succeeded'")
        .await;
    assert!(runs >= 1);

    // Changes in RetailCRM reach Postgres through the history on the next trigger.
    let report = crm.mutate_random(120, 5);
    assert!(report.status_changes + report.orders_created + report.orders_deleted > 0);
    let socket = daemon.socket.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        common::daemon::ctl(&socket, &["trigger", "1", "sync_all", "--wait"])
    })
    .await
    .unwrap();
    assert_eq!(
        code, 0,
        "second trigger --wait failed\nstdout: {out}\nstderr: {err}"
    );
    env.assert_equals_mock(1, &crm).await;
    let (code, out, _) = daemon.ctl(&["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("shop 1"), "the table names the project: {out}");
    assert!(!env.logs().contains(&crm.api_key));

    let (code, out, _) = daemon.ctl(&["--json", "jobs", "1"]);
    assert_eq!(code, 0);
    let jobs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let completed = jobs["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .filter(|j| j["state"] == "completed")
        .count();
    assert!(
        completed >= 2,
        "both triggered syncs are in the history: {out}"
    );
    let (code, out, _) = daemon.ctl(&["status", "1"]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = daemon.ctl(&["status", "999"]);
    assert_ne!(code, 0);
    assert!(err.contains("999"), "{err}");

    // Rows lost behind the daemon's back come back with a full resync (history cannot name
    // them): `ctl trigger 1 resync_all --wait`.
    env.sql("DELETE FROM orders WHERE project_id = 1 AND id IN (SELECT id FROM orders WHERE project_id = 1 ORDER BY id LIMIT 5)")
        .await;
    let socket = daemon.socket.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        common::daemon::ctl(&socket, &["trigger", "1", "resync_all", "--wait"])
    })
    .await
    .unwrap();
    assert_eq!(
        code, 0,
        "resync --wait failed\nstdout: {out}\nstderr: {err}"
    );
    env.assert_equals_mock(1, &crm).await;

    // After a restart, status still shows the last success (from the integration row).
    let mut daemon = daemon;
    daemon.signal(libc::SIGTERM);
    assert!(
        daemon
            .wait_exit(Duration::from_secs(10))
            .await
            .is_some_and(|e| e.success())
    );
    let (code, _, err) = daemon.ctl(&["status"]);
    assert_ne!(code, 0, "ctl fails when the daemon is not running");
    assert!(err.contains("not running"), "a clear message: {err}");
    let daemon = env.start().await;
    let p = daemon
        .wait_status("project 1 back", Duration::from_secs(10), |s| {
            !s.projects.is_empty()
        })
        .await;
    assert!(p.projects[0].last_success_at.is_some(), "{p:?}");
}

/// A second SIGTERM during the drain stops waiting for the running job: the daemon exits 0 at
/// once instead of after the (long) grace period, and the job is handed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigterm_cuts_the_grace_period_short() {
    let crm = slow_mock(43).await;
    let env = Env::new(DaemonOpts {
        grace_seconds: 60,
        ..slow_sync_opts()
    })
    .await;
    env.insert_integration(1, &crm, 600).await;
    let mut daemon = env.start().await;
    wait_mid_sync(&daemon).await;
    daemon.signal(libc::SIGTERM);
    // The first SIGTERM waits for the job: once the drain has begun, the job still sends
    // requests to RetailCRM and the daemon still runs. An exit or an aborted job at the first
    // SIGTERM never gets past this loop.
    env.wait_log("the drain to begin", Duration::from_secs(10), |l| {
        l.contains("stopping: no new jobs; waiting for running ones")
    })
    .await;
    let at_drain = crm.request_count();
    let drain_started = std::time::Instant::now();
    while crm.request_count() < at_drain + 3 {
        assert!(
            daemon.try_exit().is_none(),
            "the daemon exited at the first SIGTERM instead of waiting for the job\n{}",
            env.logs()
        );
        assert!(
            drain_started.elapsed() < Duration::from_secs(10),
            "the job made no progress after the first SIGTERM\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        daemon.try_exit().is_none(),
        "the first SIGTERM waits for the job"
    );
    let stopped = std::time::Instant::now();
    daemon.signal(libc::SIGTERM);
    let exit = daemon
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no exit after the second SIGTERM\n{}", env.logs()));
    assert!(exit.success(), "exit status {exit}");
    assert!(stopped.elapsed() < Duration::from_secs(4));
    let cancelled = env
        .count("SELECT count(*) AS n FROM sync_runs WHERE project_id = 1 AND outcome = 'cancelled'")
        .await;
    assert_eq!(cancelled, 1, "handed back as cancelled");
}

/// Row count of `sync_runs` for one job (one row per attempt).
async fn runs_of_job(env: &Env, job_id: &str) -> i64 {
    env.count(&format!(
        "SELECT count(*) AS n FROM sync_runs WHERE job_id = '{job_id}'"
    ))
    .await
}

/// Row count of `sync_runs` for a project and trigger.
async fn runs(env: &Env, project_id: i64, trigger: &str) -> i64 {
    env.count(&format!(
        "SELECT count(*) AS n FROM sync_runs WHERE project_id = {project_id} AND trigger = '{trigger}'"
    ))
    .await
}

/// Periodic sync fires every `sync_interval_minutes` (1 "minute" = 2 s here) and never piles
/// jobs up when a run is longer than the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_sync_fires_and_never_piles_up() {
    let fast = mock(200, 100, 21).await;
    let slow = mock(200, 100, 22).await;
    // Every request of the slow account takes 1.5 s: each run (>= 3 requests) outlasts the
    // 2 s interval several times over.
    slow.set_faults(retailcrm_sync::mock::FaultConfig {
        slow_ms: 1500,
        ..Default::default()
    });
    let env = Env::new(DaemonOpts {
        minute_secs: 2,
        ..DaemonOpts::default()
    })
    .await;
    env.insert_integration(1, &fast, 1).await;
    env.insert_integration(2, &slow, 1).await;
    let daemon = env.start().await;
    let started = std::time::Instant::now();
    let mut max_waiting = 0;
    while started.elapsed() < Duration::from_secs(14) {
        let s = daemon.status().await;
        for p in &s.projects {
            max_waiting = max_waiting.max(p.queue_depth);
            assert!(p.next_run_at.is_some(), "next_run_at is shown: {p:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fast_runs = runs(&env, 1, "schedule").await;
    assert!(
        fast_runs >= 4,
        "the fast project ran {fast_runs} scheduled syncs in 14 s with a 2 s interval\n{}",
        env.logs()
    );
    assert!(fast_runs <= 9, "more runs than ticks: {fast_runs}");
    assert!(max_waiting <= 1, "jobs piled up: {max_waiting} waiting");
    let slow_runs = runs(&env, 2, "schedule").await;
    assert!(slow_runs >= 1, "the slow project never ran");
    assert!(
        slow_runs <= 4,
        "the slow project ran {slow_runs} times in 14 s with 1.5 s requests"
    );
    // Never two runs of one project at the same time.
    let overlaps = env
        .count(
            "SELECT count(*) AS n FROM sync_runs a JOIN sync_runs b ON a.project_id = b.project_id \
             AND a.id < b.id AND b.started_at < COALESCE(a.finished_at, now())",
        )
        .await;
    assert_eq!(overlaps, 0, "two runs of one project overlapped");
    assert_eq!(runs(&env, 1, "manual").await, 0);
}

/// Options for a sync that takes a few seconds: pages of 20 against a mock answering in 60 ms.
fn slow_sync_opts() -> DaemonOpts {
    DaemonOpts {
        page_size: 20,
        lease_secs: 3,
        grace_seconds: 1,
        ..DaemonOpts::default()
    }
}

async fn slow_mock(seed: u64) -> retailcrm_sync::mock::MockHandle {
    let crm = mock(1000, 300, seed).await;
    crm.set_faults(retailcrm_sync::mock::FaultConfig {
        slow_ms: 60,
        ..Default::default()
    });
    crm
}

/// Waits until project 1 runs a job that has made some progress; returns its id.
async fn wait_mid_sync(daemon: &common::daemon::Daemon) -> String {
    let s = daemon
        .wait_status("a job with progress", Duration::from_secs(15), |s| {
            s.projects.iter().any(|p| {
                p.running_job
                    .as_ref()
                    .is_some_and(|j| j.progress.done >= 200)
            })
        })
        .await;
    s.projects[0].running_job.as_ref().unwrap().job_id.clone()
}

/// Waits (up to 40 s) until `daemon` reports job `job_id` of project 1 as succeeded.
async fn job_succeeded(
    daemon: &common::daemon::Daemon,
    what: &str,
    job_id: &str,
) -> retailcrm_sync::control::protocol::DaemonStatus {
    daemon
        .wait_status(what, Duration::from_secs(40), |s| {
            s.projects.iter().any(|p| {
                p.last_finished
                    .as_ref()
                    .is_some_and(|f| f.job_id == job_id && f.outcome == JobOutcome::Succeeded)
            })
        })
        .await
}

/// During an outage: the daemon process still runs and answers `ping`.
async fn assert_alive(daemon: &mut common::daemon::Daemon, outage: &str) {
    assert!(daemon.try_exit().is_none(), "the daemon survives {outage}");
    let pong = daemon.try_call(&Request::Ping).await;
    assert!(
        pong.as_ref().is_ok_and(|r| r.ok),
        "and answers during {outage}: {pong:?}"
    );
}

/// After an outage: a sync of project 1 ends in success, nothing is dead, the rows equal the
/// mock, the daemon still runs, and its log shows `evidence` (the outage hit a running job; it
/// was not over before the outage began).
async fn assert_recovers(
    daemon: &mut common::daemon::Daemon,
    env: &Env,
    crm: &retailcrm_sync::mock::MockHandle,
    after: &str,
    evidence: &str,
) {
    let s = daemon
        .wait_status(
            &format!("a sync finished after {after}"),
            Duration::from_secs(60),
            |s| {
                s.projects.iter().any(|p| {
                    p.last_finished
                        .as_ref()
                        .is_some_and(|f| f.outcome == JobOutcome::Succeeded)
                        && p.running_job.is_none()
                })
            },
        )
        .await;
    assert_eq!(s.projects[0].dead_jobs, 0, "{:?}", s.projects[0]);
    env.assert_equals_mock(1, crm).await;
    assert!(daemon.try_exit().is_none(), "the daemon still runs");
    assert!(env.logs().contains(evidence), "no `{evidence}` in the log");
}

/// Redis dies mid-sync (kill -9, no final save) and comes back from its append-only file once
/// the running job has felt the outage (a lease renewal failed): the daemon keeps running and
/// answering, the job (or its rerun after the lease expired) finishes, and Postgres ends equal
/// to the mock with nothing dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crash_mid_sync_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut redis = PrivateRedis::start(dir.path(), port);
    let crm = slow_mock(33).await;
    let env = Env::new(slow_sync_opts()).await;
    env.insert_integration(1, &crm, 600).await;
    let mut daemon = env.spawn_with_env(&[("RETAILCRM_SYNC__REDIS__URL", url.as_str())]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    wait_mid_sync(&daemon).await;

    redis.kill();
    // The outage reaches the running job: its next lease renewal (every third of the 3 s
    // lease) fails. Past that, the daemon must still run and answer.
    env.wait_log("a failed lease renewal", Duration::from_secs(15), |l| {
        l.contains("lease renewal failed")
    })
    .await;
    assert_alive(&mut daemon, "Redis going away").await;
    let _redis = PrivateRedis::start(dir.path(), port);

    assert_recovers(
        &mut daemon,
        &env,
        &crm,
        "Redis came back",
        "lease renewal failed",
    )
    .await;
}

/// Postgres goes away mid-sync (every connection cut, new ones refused until the running job
/// has failed on it and been put back to wait): the daemon keeps running and answering, the job waits and retries without spending attempts
/// (it has only one), and once Postgres is reachable again the sync finishes with rows equal
/// to the mock, nothing dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_mid_sync_is_survived() {
    let crm = slow_mock(34).await;
    let mut env = Env::new(slow_sync_opts()).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let db_url = env.db.url.clone();
    assert!(db_url.contains("127.0.0.1:5432"), "{db_url}");
    env.opts.db_url = Some(db_url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port)));
    // One attempt: only an outage that spends no attempt lets this job survive.
    env.opts.max_attempts = 1;
    env.write_config();
    env.insert_integration(1, &crm, 600).await;
    let mut daemon = env.start().await;
    wait_mid_sync(&daemon).await;

    proxy.cut();
    // The outage reaches the running job: it fails on Postgres and is put back to wait
    // without spending its one attempt. Past that, the daemon must still run and answer.
    env.wait_log(
        "the job deferred for Postgres",
        Duration::from_secs(20),
        |l| l.contains("waits for Postgres without spending an attempt"),
    )
    .await;
    assert_alive(&mut daemon, "Postgres going away").await;
    proxy.restore();

    assert_recovers(
        &mut daemon,
        &env,
        &crm,
        "Postgres came back",
        "waits for Postgres without spending an attempt",
    )
    .await;
}

/// Two daemons on one database, Redis and key prefix (DESIGN.md section 9 without its lease):
/// the queue lets only one of them run the project's job at a time, and when the one running
/// it is killed, the other takes the job over after the lease expires and finishes it. Rows end
/// equal to the mock, and no two finished runs of the project overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_a_project_and_one_takes_over() {
    let crm = slow_mock(35).await;
    let env = Env::new(slow_sync_opts()).await;
    env.insert_integration(1, &crm, 600).await;
    let a = env.start().await;
    let b = env.start_peer("b").await;
    let busy = |s: &retailcrm_sync::control::protocol::DaemonStatus| {
        s.projects.iter().any(|p| {
            p.running_job
                .as_ref()
                .is_some_and(|j| j.progress.done >= 200)
        })
    };
    let started = std::time::Instant::now();
    let (mut runner, survivor) = loop {
        let (sa, sb) = (a.status().await, b.status().await);
        assert!(
            !(busy(&sa) && busy(&sb)),
            "both daemons run the project's job at once"
        );
        if busy(&sa) {
            break (a, b);
        }
        if busy(&sb) {
            break (b, a);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no daemon started the sync\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let job_id = runner.status().await.projects[0]
        .running_job
        .as_ref()
        .unwrap()
        .job_id
        .clone();
    runner.kill9();
    let s = job_succeeded(&survivor, "the other daemon finished the job", &job_id).await;
    assert_eq!(s.projects[0].dead_jobs, 0);
    env.assert_equals_mock(1, &crm).await;
    let overlaps = env
        .count(
            "SELECT count(*) AS n FROM sync_runs a JOIN sync_runs b ON a.project_id = b.project_id \
             AND a.id < b.id AND a.finished_at IS NOT NULL AND b.started_at < a.finished_at",
        )
        .await;
    assert_eq!(overlaps, 0, "two finished runs of one project overlapped");
}

/// kill -9 mid-sync, start again: the job comes back after its lease expires and the rows
/// end equal to the mock's, without duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_sync_resumes_after_lease_expiry() {
    let crm = slow_mock(31).await;
    let env = Env::new(slow_sync_opts()).await;
    env.insert_integration(1, &crm, 600).await;
    let mut daemon = env.start().await;
    let job_id = wait_mid_sync(&daemon).await;
    daemon.kill9();
    let partial = env
        .count("SELECT count(*) AS n FROM orders WHERE project_id = 1")
        .await
        + env
            .count("SELECT count(*) AS n FROM users WHERE project_id = 1")
            .await;
    assert!(partial > 0, "some batches were committed before the kill");
    assert!(
        (partial as usize) < 1000 + 300,
        "the kill came after the sync ended; nothing to resume"
    );
    assert!(!daemon.socket.exists() || std::fs::metadata(&daemon.socket).is_ok());
    let daemon = env.start().await;
    let s = job_succeeded(&daemon, "the job finished after restart", &job_id).await;
    assert_eq!(s.projects[0].dead_jobs, 0);
    env.assert_equals_mock(1, &crm).await;
    // The interrupted run stays `running` in sync_runs (its process died); the resumed one
    // succeeded; no other job was created.
    let jobs = env
        .count("SELECT count(DISTINCT job_id) AS n FROM sync_runs WHERE project_id = 1")
        .await;
    assert_eq!(jobs, 1, "the resumed job is the same job");
}

/// SIGTERM mid-sync: exit 0 within the grace period; the job is handed back (not dead) and
/// finishes after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_sync_hands_the_job_back() {
    let crm = slow_mock(41).await;
    let env = Env::new(slow_sync_opts()).await;
    env.insert_integration(1, &crm, 600).await;
    let mut daemon = env.start().await;
    let job_id = wait_mid_sync(&daemon).await;
    let stopped = std::time::Instant::now();
    daemon.signal(libc::SIGTERM);
    let exit = daemon
        .wait_exit(Duration::from_secs(8))
        .await
        .unwrap_or_else(|| panic!("no exit 8 s after SIGTERM\n{}", env.logs()));
    assert!(exit.success(), "exit status {exit}\n{}", env.logs());
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "took {:?} with a 1 s grace",
        stopped.elapsed()
    );
    assert!(
        !daemon.socket.exists(),
        "the socket file is removed at exit"
    );
    let cancelled = env
        .count("SELECT count(*) AS n FROM sync_runs WHERE project_id = 1 AND outcome = 'cancelled'")
        .await;
    assert_eq!(cancelled, 1, "the interrupted run is recorded as cancelled");
    let daemon = env.start().await;
    let s = daemon
        .wait_status(
            "the handed-back job finished",
            Duration::from_secs(30),
            |s| {
                s.projects.iter().any(|p| {
                    p.last_finished
                        .as_ref()
                        .is_some_and(|f| f.job_id == job_id && f.outcome == JobOutcome::Succeeded)
                })
            },
        )
        .await;
    assert_eq!(s.projects[0].dead_jobs, 0, "handed back, not dead");
    env.assert_equals_mock(1, &crm).await;
}

/// A revoked API key fails the job for good: a clear, permanent error in `status`, the job in
/// `dead`, and no retry storm afterwards. The key never reaches the logs (trace level).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_key_is_permanent_and_never_logged() {
    let crm = mock(300, 100, 51).await;
    let env = Env::new(DaemonOpts {
        log_level: "trace".into(),
        ..DaemonOpts::default()
    })
    .await;
    env.insert_integration(1, &crm, 600).await;
    let daemon = env.start().await;
    // A good sync first, so the logs hold a whole successful run. It is over once it no longer
    // runs (its last requests, measuring the cursor lag, come before that).
    daemon
        .wait_status("first sync", Duration::from_secs(20), |s| {
            s.projects
                .iter()
                .any(|p| p.last_success_at.is_some() && p.running_job.is_none())
        })
        .await;
    crm.revoke_key();
    let at_revoke = crm.request_count();
    let job_id = daemon.trigger(1, "sync_all").await;
    let s = daemon
        .wait_status("the job is dead", Duration::from_secs(20), |s| {
            s.projects.iter().any(|p| {
                p.last_finished
                    .as_ref()
                    .is_some_and(|f| f.job_id == job_id && f.outcome == JobOutcome::Dead)
            })
        })
        .await;
    let p = &s.projects[0];
    let err = p.last_error.as_ref().expect("last_error is shown");
    assert!(err.permanent, "{err:?}");
    let msg = err.message.to_lowercase();
    assert!(
        msg.contains("key"),
        "the reason names the key: {}",
        err.message
    );
    assert_eq!(p.dead_jobs, 1);
    let (code, out, _) = daemon.ctl(&["dead", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains(&job_id), "ctl dead lists the job: {out}");
    let (code, out, _) = daemon.ctl(&["--json", "dead", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains(&job_id), "{out}");
    // No retry storm. The job went dead after its one run, never retried (a retry would
    // have been another run before it went dead) ...
    assert_eq!(
        runs_of_job(&env, &job_id).await,
        1,
        "a permanent failure is not retried"
    );
    // ... and that run stopped at RetailCRM's first refusal: no request was retried.
    let at_dead = crm.request_count();
    assert_eq!(
        at_dead - at_revoke,
        1,
        "the refused run sent RetailCRM one request, no retries"
    );
    // Nothing follows the dead job: a job triggered now runs next, is refused at its first
    // request and goes dead too, and RetailCRM has seen that one request since, no other.
    let later = daemon.trigger(1, "sync_orders").await;
    env.wait_count(
        "the later job's run to end",
        Duration::from_secs(20),
        &format!(
            "SELECT count(*) AS n FROM sync_runs WHERE job_id = '{later}' \
             AND finished_at IS NOT NULL"
        ),
        |n| n >= 1,
    )
    .await;
    assert_eq!(runs_of_job(&env, &later).await, 1);
    assert_eq!(
        crm.request_count() - at_dead,
        1,
        "requests kept coming after the permanent failure"
    );
    // `trigger --wait` on a dead key exits non-zero and says why.
    let socket = daemon.socket.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        common::daemon::ctl(&socket, &["trigger", "1", "sync_orders", "--wait"])
    })
    .await
    .unwrap();
    assert_ne!(code, 0, "a failed job makes --wait fail\n{out}\n{err}");
    assert!(
        format!("{out}{err}").to_lowercase().contains("key"),
        "the reason is printed: {out}{err}"
    );
    // The whole run, at trace level, never printed the key.
    let logs = env.logs();
    assert!(
        logs.len() > 10_000,
        "trace logs were captured ({} bytes)",
        logs.len()
    );
    assert!(
        !logs.contains(&crm.api_key),
        "the API key appears in the daemon's log"
    );
    let (_, out, err) = daemon.ctl(&["--json", "status"]);
    assert!(!out.contains(&crm.api_key) && !err.contains(&crm.api_key));
}

/// A transient failure (Postgres refusing the writes) is retried with backoff, at most
/// `max_attempts` times, then dead-lettered; `retry` after the fix completes the sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_retry_with_backoff_then_dead() {
    let crm = mock(200, 80, 61).await;
    let env = Env::new(DaemonOpts::default()).await;
    env.sql(
        "CREATE FUNCTION rcs_test_fail() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected write failure'; END $$",
    )
    .await;
    env.sql(
        "CREATE TRIGGER rcs_test_fail BEFORE INSERT OR UPDATE ON orders \
         FOR EACH ROW EXECUTE FUNCTION rcs_test_fail()",
    )
    .await;
    // Orders only, so the failing stream is the whole job.
    env.insert_integration(1, &crm, 600).await;
    env.sql("UPDATE retailcrm_integrations SET sync_customers = FALSE")
        .await;
    let daemon = env.start().await;
    let started = std::time::Instant::now();
    let s = daemon
        .wait_status(
            "the job is dead after its attempts",
            Duration::from_secs(30),
            |s| s.projects.first().is_some_and(|p| p.dead_jobs == 1),
        )
        .await;
    let elapsed = started.elapsed();
    let p = &s.projects[0];
    let err = p.last_error.as_ref().expect("last_error");
    assert!(!err.permanent, "a write failure is transient: {err:?}");
    let failed = env
        .count("SELECT count(*) AS n FROM sync_runs WHERE outcome = 'failed'")
        .await;
    assert_eq!(failed, 3, "max_attempts = 3 runs, no more");
    // Backoff 1 s then 2 s (plus jitter) between the three attempts.
    assert!(
        elapsed >= Duration::from_secs(3),
        "retried too fast: {elapsed:?}"
    );
    let gaps = env
        .count(
            "SELECT count(*) AS n FROM (SELECT started_at - lag(finished_at) OVER (ORDER BY id) AS gap \
             FROM sync_runs) g WHERE gap < interval '900 milliseconds'",
        )
        .await;
    assert_eq!(gaps, 0, "an attempt started before its backoff was over");
    let (_, out, _) = daemon.ctl(&["--json", "dead", "1"]);
    let dead: serde_json::Value = serde_json::from_str(&out).unwrap();
    let job_id = dead["jobs"][0]["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();

    env.sql("DROP TRIGGER rcs_test_fail ON orders").await;
    let (code, _, err) = daemon.ctl(&["retry", "1", &job_id]);
    assert_eq!(code, 0, "{err}");
    daemon
        .wait_status("the retried job succeeded", Duration::from_secs(20), |s| {
            s.projects[0]
                .last_finished
                .as_ref()
                .is_some_and(|f| f.job_id == job_id && f.outcome == JobOutcome::Succeeded)
        })
        .await;
    let want = crm.orders_snapshot().len();
    assert_eq!(env.orders(1).await.len(), want);
}

/// RetailCRM answering 503 above a few requests per second: the sync still completes, and the
/// client backs off instead of hammering the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_account_syncs_without_hammering() {
    let crm = mock(600, 200, 71).await;
    crm.set_faults(retailcrm_sync::mock::FaultConfig {
        rate_limit: Some(4.0),
        ..Default::default()
    });
    let env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &crm, 600).await;
    let daemon = env.start().await;
    daemon
        .wait_status("synced despite 503s", Duration::from_secs(30), |s| {
            s.projects
                .first()
                .is_some_and(|p| p.last_success_at.is_some())
        })
        .await;
    env.assert_equals_mock(1, &crm).await;
    let stats = crm.stats();
    // Backoff after a 503 starts at 100 ms and doubles: a few refusals per served request at
    // most (a storm would be hundreds).
    let served = stats.requests - stats.rate_limited;
    assert!(
        stats.rate_limited <= 3 * served + 10 && stats.requests < 200,
        "the client hammered the rate-limited API: {stats:?}"
    );
}

/// Retry settings change live on reload (`ctl reload`; SIGHUP takes the same path): with `max_attempts` lowered to 1 a failing job dies
/// after one run instead of three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_retry_settings_live() {
    let crm = mock(100, 40, 65).await;
    let mut env = Env::new(DaemonOpts::default()).await;
    env.insert_integration(1, &crm, 600).await;
    // Synced a moment ago: no periodic run at start.
    env.sql("UPDATE retailcrm_integrations SET last_sync_at = now(), sync_customers = FALSE")
        .await;
    env.sql(
        "CREATE FUNCTION rcs_test_fail() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected write failure'; END $$",
    )
    .await;
    env.sql(
        "CREATE TRIGGER rcs_test_fail BEFORE INSERT OR UPDATE ON orders \
         FOR EACH ROW EXECUTE FUNCTION rcs_test_fail()",
    )
    .await;
    let daemon = env.start().await;
    env.opts.max_attempts = 1;
    env.write_config();
    let r = daemon
        .call(&retailcrm_sync::control::protocol::Request::Reload)
        .await;
    assert!(r.ok, "{r:?}");
    // The reload answers before the queue handle (a new Redis connection) is swapped in; a
    // job's max_attempts is the enqueueing handle's, so trigger only once the daemon says the
    // new handle is in place.
    env.wait_log(
        "the new retry settings in force",
        Duration::from_secs(10),
        |l| l.contains("queue retry and lease settings applied"),
    )
    .await;
    let job = daemon.trigger(1, "sync_orders").await;
    daemon
        .wait_status("dead after one attempt", Duration::from_secs(15), |s| {
            s.projects[0].dead_jobs == 1
        })
        .await;
    let failed = env
        .count("SELECT count(*) AS n FROM sync_runs WHERE outcome = 'failed'")
        .await;
    assert_eq!(failed, 1, "max_attempts = 1 after the reload");
    let (_, out, _) = daemon.ctl(&["dead", "1"]);
    assert!(out.contains(&job), "{out}");
}
