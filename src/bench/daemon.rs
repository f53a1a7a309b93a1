//! The daemon under test, run as a real child process (`retailcrm-sync --config F run`) and
//! driven only through its control socket, exactly as an operator would: the measured path is
//! the production one (queue in Redis, actors, engine, store), and its memory and CPU are
//! read from `/proc` for that process alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;
use super::procfs::{self, Memory};
use crate::control::ControlClient;
use crate::control::protocol::{
    DaemonStatus, ErrorCode, JobOutcome, ProjectState, Request, TriggerAccepted,
};

/// How to configure one daemon.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// The daemon binary (normally `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Directory for its config, socket and log.
    pub dir: PathBuf,
    /// Postgres URL of the bench database.
    pub db_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// Redis key prefix (unique per daemon).
    pub key_prefix: String,
    /// `sync.requests_per_second`.
    pub requests_per_second: f64,
    /// `sync.minute_secs`: seconds in one minute of `sync_interval_minutes` (`None`: the
    /// production 60). The freshness section shortens it to measure the schedule.
    pub minute_secs: Option<u64>,
    /// `http.webhook_debounce_ms` (`None`: the daemon's default).
    pub webhook_debounce_ms: Option<u64>,
}

/// A running daemon child.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// Its pid.
    pub pid: u32,
    socket: PathBuf,
    log: PathBuf,
    spawned: Instant,
}

/// Time the engine spent committing batches of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CommitTime {
    /// Batches committed.
    pub batches: u64,
    /// Rows in them.
    pub rows: u64,
    /// Sum of their commit durations (each truncated to whole milliseconds).
    pub millis: u64,
}

/// When one awaited job ended, and how.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// Time from the trigger to the end.
    pub elapsed: Duration,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// The failure message, if any.
    pub message: Option<String>,
    /// Time from the trigger until each stream was first seen running (from status polls).
    pub stream_seen: HashMap<String, Duration>,
}

impl DaemonSpec {
    /// The TOML config this daemon runs with.
    fn config_toml(&self, socket: &Path) -> String {
        let minute = self
            .minute_secs
            .map_or_else(String::new, |s| format!("minute_secs = {s}\n"));
        let debounce = self
            .webhook_debounce_ms
            .map_or_else(String::new, |ms| format!("webhook_debounce_ms = {ms}\n"));
        format!(
            "[database]\nurl = {db:?}\npool_size = 16\nrun_migrations_on_start = true\n\n\
             [redis]\nurl = {redis:?}\nkey_prefix = {prefix:?}\n\n\
             [control]\nsocket_path = {socket:?}\nsocket_mode = \"0600\"\n\n\
             [sync]\nrequests_per_second = {rps:?}\ndefault_interval_minutes = 1440\n{minute}\n\
             [shutdown]\ngrace_seconds = 5\n\n\
             [log]\nlevel = \"warn,retailcrm_sync::sync::engine=debug\"\nformat = \"json\"\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\n{debounce}",
            db = self.db_url,
            redis = self.redis_url,
            prefix = self.key_prefix,
            socket = socket.display().to_string(),
            rps = self.requests_per_second,
        )
    }
}

impl Daemon {
    /// Writes the config and starts `exe --config F run`; its output goes to `daemon.log` in
    /// `spec.dir`.
    pub fn spawn(spec: &DaemonSpec) -> Result<Daemon, BenchError> {
        let io = |action: String| move |source| BenchError::Io { action, source };
        std::fs::create_dir_all(&spec.dir).map_err(io(format!("create {}", spec.dir.display())))?;
        let socket = spec.dir.join("control.sock");
        let config = spec.dir.join("retailcrm-sync.toml");
        let log = spec.dir.join("daemon.log");
        std::fs::write(&config, spec.config_toml(&socket))
            .map_err(io(format!("write {}", config.display())))?;
        let out = std::fs::File::create(&log).map_err(io(format!("create {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("open {}", log.display())))?;
        let mut cmd = Command::new(&spec.exe);
        cmd.arg("--config")
            .arg(&config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env_remove("RUST_LOG")
            .env_remove("RETAILCRM_SYNC_CONFIG")
            .env_remove("NOTIFY_SOCKET");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RETAILCRM_SYNC__") {
                cmd.env_remove(&key);
            }
        }
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .map_err(io(format!("start the daemon {}", spec.exe.display())))?;
        Ok(Daemon {
            pid: child.id(),
            child,
            socket,
            log,
            spawned,
        })
    }

    /// Sums the engine's `batch committed` events (JSON log, one per committed batch) per
    /// stream, from log line `from_line` on: how long the writer spent in Postgres.
    pub fn commit_times(&self, from_line: usize) -> HashMap<String, CommitTime> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out: HashMap<String, CommitTime> = HashMap::new();
        for line in text.lines().skip(from_line) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v.get("message").and_then(|m| m.as_str()) != Some("batch committed") {
                continue;
            }
            let (Some(stream), Some(ms), Some(rows)) = (
                v.get("stream").and_then(|s| s.as_str()),
                v.get("duration_ms").and_then(|d| d.as_u64()),
                v.get("rows").and_then(|r| r.as_u64()),
            ) else {
                continue;
            };
            let t = out.entry(stream.to_string()).or_default();
            t.batches += 1;
            t.rows += rows;
            t.millis += ms;
        }
        out
    }

    /// Lines in the daemon's log so far (a mark for [`Self::commit_times`]).
    pub fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |t| t.lines().count())
    }

    /// The last lines of the daemon's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Fails with the log tail if the daemon has exited.
    fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(BenchError::Daemon(format!(
                "the daemon exited ({status}); its log ends with:\n{}",
                self.log_tail()
            ))),
            _ => Ok(()),
        }
    }

    /// Waits until the daemon answers `status` with all `projects` projects out of `starting`;
    /// returns the time since spawn.
    pub async fn wait_ready(
        &mut self,
        projects: usize,
        timeout: Duration,
    ) -> Result<Duration, BenchError> {
        let deadline = Instant::now() + timeout;
        let mut client: Option<ControlClient> = None;
        loop {
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: format!("the daemon to list {projects} ready projects"),
                    secs: timeout.as_secs(),
                });
            }
            if client.is_none() {
                client = ControlClient::connect(&self.socket)
                    .await
                    .ok()
                    .map(|c| c.with_timeout(Duration::from_secs(10)));
            }
            if let Some(c) = client.as_mut() {
                match c.call(&Request::Status { project_id: None }).await {
                    Ok(resp) => {
                        if let Ok(status) = resp.data_as::<DaemonStatus>()
                            && status.projects.len() >= projects
                            && status
                                .projects
                                .iter()
                                .all(|p| p.state != ProjectState::Starting)
                        {
                            return Ok(self.spawned.elapsed());
                        }
                    }
                    Err(_) => client = None,
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A control connection.
    pub async fn client(&self) -> Result<ControlClient, BenchError> {
        Ok(ControlClient::connect(&self.socket)
            .await?
            .with_timeout(Duration::from_secs(30)))
    }

    /// Triggers `kind` for `project_id`; returns the job id.
    pub async fn trigger(
        client: &mut ControlClient,
        project_id: i64,
        kind: &str,
    ) -> Result<String, BenchError> {
        let resp = client
            .call(&Request::Trigger {
                project_id,
                kind: kind.to_string(),
                entity_id: None,
                since_id: None,
            })
            .await?;
        let accepted: TriggerAccepted = resp.data_as().map_err(|e| {
            BenchError::Daemon(format!(
                "trigger {kind} for project {project_id}: {}",
                e.message
            ))
        })?;
        Ok(accepted.job_id)
    }

    /// The daemon's `status` answer for every project.
    pub async fn status(client: &mut ControlClient) -> Result<DaemonStatus, BenchError> {
        let resp = client.call(&Request::Status { project_id: None }).await?;
        resp.data_as()
            .map_err(|e| BenchError::Daemon(format!("status: {}", e.message)))
    }

    /// `reload`: re-reads the config and the integrations (webhook secrets included); the
    /// daemon answers once its projects match the table.
    pub async fn reload(client: &mut ControlClient) -> Result<(), BenchError> {
        let resp = client.call(&Request::Reload).await?;
        resp.data_as::<serde_json::Value>()
            .map(|_| ())
            .map_err(|e| BenchError::Daemon(format!("reload: {}", e.message)))
    }

    /// Polls `status` every `poll` until every `(project, job)` has finished (succeeded or dead);
    /// returns each job's end, in the order given. `started` is the trigger time.
    pub async fn wait_jobs(
        &mut self,
        client: &mut ControlClient,
        jobs: &[(i64, String)],
        started: Instant,
        poll: Duration,
        timeout: Duration,
    ) -> Result<Vec<JobEnd>, BenchError> {
        let mut ends: Vec<Option<JobEnd>> = vec![None; jobs.len()];
        let mut seen: Vec<HashMap<String, Duration>> = vec![HashMap::new(); jobs.len()];
        let index: HashMap<i64, usize> = jobs.iter().enumerate().map(|(i, j)| (j.0, i)).collect();
        let one = (jobs.len() == 1).then(|| jobs[0].0);
        loop {
            self.check_alive()?;
            if started.elapsed() > timeout {
                let left = ends.iter().filter(|e| e.is_none()).count();
                return Err(BenchError::Timeout {
                    what: format!("{left} of {} jobs to finish", jobs.len()),
                    secs: timeout.as_secs(),
                });
            }
            let resp = client.call(&Request::Status { project_id: one }).await?;
            let status: DaemonStatus = match resp.data_as() {
                Ok(s) => s,
                Err(e) if e.code == ErrorCode::Unavailable => {
                    tokio::time::sleep(poll).await;
                    continue;
                }
                Err(e) => return Err(BenchError::Daemon(format!("status: {}", e.message))),
            };
            let now = started.elapsed();
            for ps in &status.projects {
                let Some(&i) = index.get(&ps.project_id) else {
                    continue;
                };
                if ends[i].is_some() {
                    continue;
                }
                let job_id = &jobs[i].1;
                if let Some(run) = &ps.running_job
                    && &run.job_id == job_id
                    && let Some(stream) = &run.progress.stream
                {
                    seen[i].entry(stream.clone()).or_insert(now);
                }
                if let Some(fin) = &ps.last_finished
                    && &fin.job_id == job_id
                    && fin.outcome != JobOutcome::Retrying
                {
                    ends[i] = Some(JobEnd {
                        elapsed: now,
                        succeeded: fin.outcome == JobOutcome::Succeeded,
                        message: fin.message.clone(),
                        stream_seen: std::mem::take(&mut seen[i]),
                    });
                }
            }
            if ends.iter().all(Option::is_some) {
                return Ok(ends.into_iter().flatten().collect());
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Current and peak resident memory.
    pub fn memory(&self) -> Result<Memory, BenchError> {
        procfs::memory(self.pid)
            .ok_or_else(|| BenchError::Daemon(format!("cannot read /proc/{}/status", self.pid)))
    }

    /// CPU time used so far.
    pub fn cpu_time(&self) -> Result<Duration, BenchError> {
        procfs::cpu_time(self.pid)
            .ok_or_else(|| BenchError::Daemon(format!("cannot read /proc/{}/stat", self.pid)))
    }

    /// SIGTERM, then SIGKILL if it has not exited within 15 s.
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            pid = self.pid,
            "daemon ignored SIGTERM for 15 s; killing it"
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A bench that fails half-way must not leave a daemon behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
