//! `retailcrm-sync ctl`: talks to a running daemon over its control socket.
//!
//! Prints aligned tables for people and, with `--json`, the raw `data` of the answer for
//! scripts. `trigger --wait` follows the job with a progress bar by polling `status`.
//! Exit codes: 0 ok, 1 the command failed, 69 (`EX_UNAVAILABLE`) no daemon is running (or it is
//! not taking commands).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::{Cli, EX_UNAVAILABLE};
use crate::control::protocol::{
    DaemonStatus, ErrorBody, ErrorCode, FinishedJob, JobList, JobOutcome, ProjectStatus,
    TRIGGER_KINDS, TriggerAccepted, VersionInfo,
};
use crate::control::{ControlClient, ControlError, DEFAULT_SOCKET_PATH, Request};

/// Environment variable that overrides `control.socket_path` (same as the daemon's config).
const SOCKET_ENV: &str = "RETAILCRM_SYNC__CONTROL__SOCKET_PATH";

/// How often `trigger --wait` polls `status`.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Arguments of `ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// Control socket. Default: `control.socket_path` from the config file, else
    /// /run/retailcrm-sync/control.sock.
    #[arg(long, value_name = "PATH", env = SOCKET_ENV)]
    pub socket: Option<PathBuf>,

    /// Print the answer's raw JSON data (for scripts) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for each answer from the daemon.
    #[arg(long, value_name = "SECS", default_value_t = 40)]
    pub timeout: u64,

    /// What to ask the daemon.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `ctl` subcommands, one per control-socket command.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// State of every project (or one): running job, last success and error, queue, lag.
    Status {
        /// Only this project id.
        project: Option<i64>,
    },
    /// Enqueue a job now and print its id.
    Trigger {
        /// Project id.
        project: i64,
        /// Job kind.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(TRIGGER_KINDS))]
        kind: String,
        /// RetailCRM id of the order or customer (required for sync_order / sync_customer).
        #[arg(long, value_name = "N")]
        entity_id: Option<i64>,
        /// Restart the history stream from this history id.
        #[arg(long, value_name = "N")]
        since_id: Option<i64>,
        /// Follow the job with a progress bar until it ends; exit 1 if it failed.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this many seconds (the job keeps running).
        #[arg(long, value_name = "SECS", requires = "wait")]
        wait_timeout: Option<u64>,
    },
    /// Re-read the config file and the integrations (like `systemctl reload`).
    Reload,
    /// Waiting, delayed and running jobs of a project.
    Jobs {
        /// Project id.
        project: i64,
        /// At most this many jobs.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Dead-lettered jobs of a project.
    Dead {
        /// Project id.
        project: i64,
        /// At most this many jobs.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Put a dead job back on the queue.
    Retry {
        /// Project id.
        project: i64,
        /// Job id (see `ctl dead`).
        job_id: String,
    },
    /// Stop starting jobs for a project.
    Pause {
        /// Project id.
        project: i64,
    },
    /// Resume a paused project.
    Resume {
        /// Project id.
        project: i64,
    },
    /// Two-way sync: outbox counts and the failed, conflicted and pending rows of a project.
    Outbox {
        /// Project id.
        project: i64,
        /// At most this many rows.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Two-way sync: push failed and conflicted outbox rows again (all, or `--id N`...).
    OutboxRetry {
        /// Project id.
        project: i64,
        /// Only this row (repeatable).
        #[arg(long = "id")]
        ids: Vec<i64>,
    },
    /// Check that the daemon answers.
    Ping,
    /// The daemon's version.
    Version,
}

impl CtlCommand {
    /// The request this subcommand sends.
    fn request(&self) -> Request {
        match self {
            CtlCommand::Status { project } => Request::Status {
                project_id: *project,
            },
            CtlCommand::Trigger {
                project,
                kind,
                entity_id,
                since_id,
                ..
            } => Request::Trigger {
                project_id: *project,
                kind: kind.clone(),
                entity_id: *entity_id,
                since_id: *since_id,
            },
            CtlCommand::Reload => Request::Reload,
            CtlCommand::Jobs { project, limit } => Request::Jobs {
                project_id: *project,
                limit: *limit,
            },
            CtlCommand::Dead { project, limit } => Request::Dead {
                project_id: *project,
                limit: *limit,
            },
            CtlCommand::Retry { project, job_id } => Request::Retry {
                project_id: *project,
                job_id: job_id.clone(),
            },
            CtlCommand::Pause { project } => Request::Pause {
                project_id: *project,
            },
            CtlCommand::Resume { project } => Request::Resume {
                project_id: *project,
            },
            CtlCommand::Outbox { project, limit } => Request::Outbox {
                project_id: *project,
                limit: *limit,
            },
            CtlCommand::OutboxRetry { project, ids } => Request::OutboxRetry {
                project_id: *project,
                ids: (!ids.is_empty()).then(|| ids.clone()),
            },
            CtlCommand::Ping => Request::Ping,
            CtlCommand::Version => Request::Version,
        }
    }
}

/// Runs `ctl`.
pub fn execute(cli: &Cli, args: &CtlArgs) -> anyhow::Result<ExitCode> {
    if let CtlCommand::Trigger {
        kind, entity_id, ..
    } = &args.command
        && matches!(kind.as_str(), "sync_order" | "sync_customer")
        && entity_id.is_none()
    {
        bail!("`trigger ... {kind}` needs the RetailCRM id: add --entity-id N");
    }
    let socket = resolve_socket(cli, args)?;
    let runtime = super::runtime()?;
    runtime.block_on(run(&socket, args))
}

/// The socket to use: `--socket` (or its environment variable), else `control.socket_path`
/// from the config file, else the default.
fn resolve_socket(cli: &Cli, args: &CtlArgs) -> anyhow::Result<PathBuf> {
    if let Some(socket) = &args.socket {
        return Ok(socket.clone());
    }
    let (config, named) = cli.config_path();
    match std::fs::read_to_string(&config) {
        Ok(text) => match socket_from_config_text(&text) {
            Ok(Some(path)) => Ok(path),
            Ok(None) => Ok(PathBuf::from(DEFAULT_SOCKET_PATH)),
            Err(err) if named => {
                bail!(
                    "cannot read control.socket_path from {}: {err}",
                    config.display()
                )
            }
            Err(err) => {
                eprintln!(
                    "warning: ignoring {} ({err}); using {DEFAULT_SOCKET_PATH}",
                    config.display()
                );
                Ok(PathBuf::from(DEFAULT_SOCKET_PATH))
            }
        },
        Err(_) if !named => Ok(PathBuf::from(DEFAULT_SOCKET_PATH)),
        Err(err) => Err(err).with_context(|| {
            format!(
                "cannot read config file {} to find the control socket; pass --socket PATH",
                config.display()
            )
        }),
    }
}

/// Extracts `control.socket_path` from a config file's text, without the full config model
/// (ctl must work even when other sections are invalid).
pub fn socket_from_config_text(text: &str) -> Result<Option<PathBuf>, String> {
    let table: toml::Table =
        toml::from_str(text).map_err(|err| format!("not valid TOML: {err}"))?;
    match table.get("control").and_then(|c| c.get("socket_path")) {
        None => Ok(None),
        Some(toml::Value::String(path)) if !path.trim().is_empty() => {
            Ok(Some(PathBuf::from(path.trim())))
        }
        Some(_) => Err("control.socket_path must be a non-empty string".to_string()),
    }
}

/// Connects, sends the request, prints the answer.
async fn run(socket: &Path, args: &CtlArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    let mut client = match ControlClient::connect(socket).await {
        Ok(client) => client.with_timeout(timeout),
        Err(err @ ControlError::NotRunning { .. }) => {
            return Ok(report_local_error(
                args.json,
                "unavailable",
                &err.to_string(),
                EX_UNAVAILABLE,
            ));
        }
        Err(err) if args.json => {
            return Ok(report_local_error(
                true,
                "unavailable",
                &err.to_string(),
                EX_UNAVAILABLE,
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let started = Instant::now();
    let response = match client.call(&args.command.request()).await {
        Ok(r) => r,
        Err(err) if args.json => {
            return Ok(report_local_error(
                true,
                "unavailable",
                &err.to_string(),
                EX_UNAVAILABLE,
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let elapsed = started.elapsed();
    let data = match response.into_result() {
        Ok(data) => data,
        Err(error) if args.json => {
            println!(
                "{}",
                serde_json::json!({ "ok": false, "error": { "code": error.code, "message": error.message } })
            );
            return Ok(if error.code == ErrorCode::Unavailable {
                ExitCode::from(EX_UNAVAILABLE)
            } else {
                ExitCode::FAILURE
            });
        }
        Err(error) => return Ok(report_error(&error)),
    };

    match &args.command {
        CtlCommand::Trigger {
            project,
            wait: true,
            wait_timeout,
            ..
        } => {
            let accepted: TriggerAccepted = decode(data)?;
            let limit = wait_timeout.map(Duration::from_secs);
            wait_for_job(
                client, socket, timeout, *project, &accepted, limit, args.json,
            )
            .await
        }
        _ if args.json => {
            println!("{}", serde_json::to_string_pretty(&data)?);
            Ok(ExitCode::SUCCESS)
        }
        command => {
            print_human(command, socket, elapsed, data)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An error found on this side (no daemon, a broken connection): text on stderr, or with
/// `--json` the envelope on stdout, so scripts parse one format whatever happens.
fn report_local_error(json: bool, code: &str, message: &str, exit: u8) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": false, "error": { "code": code, "message": message } })
        );
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(exit)
}

/// Prints a daemon-side error; `unavailable` exits 69 like a daemon that is not running.
fn report_error(error: &ErrorBody) -> ExitCode {
    eprintln!("error ({}): {}", error.code, error.message);
    if error.code == ErrorCode::Unavailable {
        ExitCode::from(EX_UNAVAILABLE)
    } else {
        ExitCode::FAILURE
    }
}

/// Decodes answer data into `T`, explaining a mismatch.
fn decode<T: serde::de::DeserializeOwned>(data: Value) -> anyhow::Result<T> {
    serde_json::from_value(data).context(
        "the daemon's answer has an unexpected shape; are `ctl` and the daemon the same version?",
    )
}

/// Human output for a successful answer.
fn print_human(
    command: &CtlCommand,
    socket: &Path,
    elapsed: Duration,
    data: Value,
) -> anyhow::Result<()> {
    match command {
        CtlCommand::Ping => println!(
            "pong from {} in {:.1} ms",
            socket.display(),
            elapsed.as_secs_f64() * 1000.0
        ),
        CtlCommand::Version => {
            let info: VersionInfo = decode(data)?;
            let ours = env!("CARGO_PKG_VERSION");
            println!("daemon {} (pid {}), ctl {ours}", info.version, info.pid);
            if info.version != ours {
                eprintln!(
                    "warning: ctl and daemon versions differ; restart the daemon after upgrading"
                );
            }
        }
        CtlCommand::Status { .. } => {
            let status: DaemonStatus = decode(data)?;
            print!("{}", render_status(&status, Utc::now()));
        }
        CtlCommand::Trigger { project, kind, .. } => {
            let accepted: TriggerAccepted = decode(data)?;
            if accepted.coalesced {
                println!(
                    "project {project}: {kind} was already waiting as job {}; joined it",
                    accepted.job_id
                );
            } else {
                println!(
                    "project {project}: {kind} queued as job {}",
                    accepted.job_id
                );
            }
        }
        CtlCommand::Jobs { .. } | CtlCommand::Dead { .. } => {
            let list: JobList = decode(data)?;
            print!("{}", render_jobs(&list, Utc::now()));
        }
        CtlCommand::Reload => {
            println!("reload: ok");
            print_fields(&data);
        }
        CtlCommand::Retry { project, job_id } => {
            println!("project {project}: dead job {job_id} is back on the queue");
            print_fields(&data);
        }
        CtlCommand::Outbox { project, .. } => print!("{}", render_outbox(*project, &data)),
        CtlCommand::OutboxRetry { project, .. } => println!(
            "project {project}: {} outbox rows back to pending",
            data["requeued"]
        ),
        CtlCommand::Pause { project } => println!("project {project}: paused"),
        CtlCommand::Resume { project } => println!("project {project}: resumed"),
    }
    Ok(())
}

/// The `ctl outbox` text: counts, then one line per row.
fn render_outbox(project: i64, data: &Value) -> String {
    use std::fmt::Write;
    let c = &data["counts"];
    let mut out = format!(
        "project {project} outbox: {} pending, {} sent, {} failed, {} conflict\n",
        c["pending"], c["sent"], c["failed"], c["conflict"]
    );
    for r in data["rows"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  #{:<8} {:<8} {:<8} {:>8}  {}  {}{}",
            r["id"],
            r["state"].as_str().unwrap_or("?"),
            r["entity"].as_str().unwrap_or("?"),
            r["local_id"],
            r["fields"],
            r["last_error"].as_str().unwrap_or(""),
            match r.get("conflict") {
                Some(Value::Null) | None => String::new(),
                Some(v) => format!(" conflict: {v}"),
            }
        );
    }
    out
}

/// Prints the top-level fields of an object answer as `key: value` lines.
fn print_fields(data: &Value) {
    if let Value::Object(map) = data {
        let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
        for (key, value) in map {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("  {key:width$}  {shown}");
        }
    }
}

/// Follows a triggered job by polling `status` until it finishes.
async fn wait_for_job(
    mut client: ControlClient,
    socket: &Path,
    timeout: Duration,
    project: i64,
    accepted: &TriggerAccepted,
    limit: Option<Duration>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let job_id = accepted.job_id.as_str();
    let triggered_at = Utc::now();
    let started = Instant::now();
    let bar = if json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(spinner_style());
    bar.enable_steady_tick(Duration::from_millis(120));
    if !json {
        bar.println(format!("project {project}: job {job_id} accepted"));
    }
    let mut seen_running = false;
    let mut with_total = false;
    loop {
        tokio::time::sleep(WAIT_POLL).await;
        if let Some(limit) = limit
            && started.elapsed() >= limit
        {
            bar.finish_and_clear();
            eprintln!(
                "project {project}: job {job_id} has not finished after {}; it keeps running in \
                 the daemon (see `retailcrm-sync ctl status {project}`)",
                fmt_duration(limit)
            );
            return Ok(ExitCode::FAILURE);
        }
        let request = Request::Status {
            project_id: Some(project),
        };
        let response = match client.call(&request).await {
            Ok(response) => response,
            Err(err) => {
                // The daemon may be restarting (systemctl restart, or a crash followed by
                // Restart=on-failure); the job is durable in Redis, so wait for it to return.
                bar.set_message(format!(
                    "lost the daemon ({err}); waiting up to {} for it to come back",
                    fmt_duration(RECONNECT_FOR)
                ));
                match reconnect(socket, timeout).await {
                    Some(fresh) => {
                        client = fresh;
                        continue;
                    }
                    None => {
                        bar.finish_and_clear();
                        return Err(anyhow::Error::new(err).context(format!(
                            "lost the daemon while waiting for job {job_id}; it did not come \
                             back within {}",
                            fmt_duration(RECONNECT_FOR)
                        )));
                    }
                }
            }
        };
        let status: DaemonStatus = match response.data_as() {
            Ok(status) => status,
            Err(error) if error.code == ErrorCode::Unavailable => {
                // Starting or reloading: not an answer about the job yet.
                bar.set_message(format!("daemon busy: {}", error.message));
                continue;
            }
            Err(error) => {
                bar.finish_and_clear();
                return Ok(report_error(&error));
            }
        };
        let Some(ps) = status
            .projects
            .into_iter()
            .find(|p| p.project_id == project)
        else {
            bar.finish_and_clear();
            bail!("project {project} disappeared from the daemon's status while waiting");
        };
        let verdict = job_verdict(&ps, job_id, triggered_at, seen_running);
        match verdict {
            Verdict::Finished { succeeded, message } => {
                bar.finish_and_clear();
                if json {
                    let out = serde_json::json!({
                        "job_id": job_id,
                        "coalesced": accepted.coalesced,
                        "succeeded": succeeded,
                        "message": message,
                        "project": ps,
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else if succeeded {
                    println!(
                        "project {project}: job {job_id} succeeded in {}",
                        fmt_duration(started.elapsed())
                    );
                } else {
                    eprintln!(
                        "project {project}: job {job_id} failed: {}",
                        message.as_deref().unwrap_or("no reason given")
                    );
                }
                return Ok(if succeeded {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            Verdict::Running => {
                seen_running = true;
                if let Some(job) = &ps.running_job {
                    let p = &job.progress;
                    match p.total {
                        Some(total) => {
                            if !with_total {
                                bar.set_style(bar_style());
                                with_total = true;
                            }
                            bar.set_length(total);
                        }
                        None => {
                            if with_total {
                                bar.set_style(spinner_style());
                                with_total = false;
                            }
                        }
                    }
                    bar.set_position(p.done);
                    let stream = p.stream.as_deref().unwrap_or(&job.kind);
                    bar.set_message(format!("{stream}: {}", p.phase));
                }
            }
            Verdict::Waiting(why) => bar.set_message(why),
        }
    }
}

/// How long `trigger --wait` keeps trying to reach a daemon that went away.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Tries to reconnect once a second for [`RECONNECT_FOR`].
async fn reconnect(socket: &Path, timeout: Duration) -> Option<ControlClient> {
    let deadline = Instant::now() + RECONNECT_FOR;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(client) = ControlClient::connect(socket).await {
            return Some(client.with_timeout(timeout));
        }
    }
    None
}

/// What one status poll says about the awaited job.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// It ended.
    Finished {
        /// True on success.
        succeeded: bool,
        /// The failure, if any.
        message: Option<String>,
    },
    /// It is the running job.
    Running,
    /// Queued, retrying, paused...; the text says which.
    Waiting(String),
}

/// Decides from one project status how the job `job_id` (triggered at `triggered_at`) stands.
/// `last_finished` names the job exactly; for a daemon that does not fill it, a job that was
/// seen running and is no longer is judged by `last_success_at` / `last_error` after the trigger.
fn job_verdict(
    ps: &ProjectStatus,
    job_id: &str,
    triggered_at: DateTime<Utc>,
    seen_running: bool,
) -> Verdict {
    if let Some(FinishedJob {
        job_id: finished,
        outcome,
        message,
        ..
    }) = &ps.last_finished
        && finished == job_id
    {
        let running_again = ps.running_job.as_ref().is_some_and(|j| j.job_id == job_id);
        match outcome {
            JobOutcome::Succeeded => {
                return Verdict::Finished {
                    succeeded: true,
                    message: None,
                };
            }
            JobOutcome::Dead => {
                return Verdict::Finished {
                    succeeded: false,
                    message: message.clone(),
                };
            }
            JobOutcome::Retrying if !running_again => {
                return Verdict::Waiting(format!(
                    "attempt failed ({}); waiting for the retry",
                    message.as_deref().unwrap_or("no reason given")
                ));
            }
            JobOutcome::Retrying => {}
        }
    }
    match &ps.running_job {
        Some(job) if job.job_id == job_id => return Verdict::Running,
        Some(other) => {
            return Verdict::Waiting(format!("queued behind running job {}", other.job_id));
        }
        None => {}
    }
    if ps.last_finished.is_none() && seen_running {
        let failed_at = ps.last_error.as_ref().map(|e| e.at);
        let succeeded_at = ps.last_success_at;
        match (succeeded_at, failed_at) {
            (Some(s), f) if s >= triggered_at && f.is_none_or(|f| s >= f) => {
                return Verdict::Finished {
                    succeeded: true,
                    message: None,
                };
            }
            (_, Some(f)) if f >= triggered_at => {
                return Verdict::Finished {
                    succeeded: false,
                    message: ps.last_error.as_ref().map(|e| e.message.clone()),
                };
            }
            _ => {}
        }
    }
    if let Some(error) = &ps.last_error
        && error.permanent
        && error.at >= triggered_at
    {
        return Verdict::Finished {
            succeeded: false,
            message: Some(error.message.clone()),
        };
    }
    Verdict::Waiting(match ps.state.as_str() {
        "paused" => format!(
            "project is paused; run `retailcrm-sync ctl resume {}`",
            ps.project_id
        ),
        "failed" => "project actor failed and is backing off; see `ctl status`".to_string(),
        _ => format!("queued ({} waiting)", ps.queue_depth),
    })
}

/// Progress style while the total is unknown.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {pos} done ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Progress style once the total is known.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The `status` table.
fn render_status(status: &DaemonStatus, now: DateTime<Utc>) -> String {
    let mut out = format!(
        "daemon {} (pid {}), up {}, config {}\n",
        status.version,
        status.pid,
        fmt_duration((now - status.started_at).to_std().unwrap_or_default()),
        status.config_path
    );
    if let Some(error) = &status.config_error {
        out.push_str(&format!(
            "! last reload failed, still running on the previous config: {error}\n"
        ));
    }
    if !status.restart_required.is_empty() {
        out.push_str(&format!(
            "! changed settings that need a restart: {}\n",
            status.restart_required.join(", ")
        ));
    }
    for warning in &status.warnings {
        out.push_str(&format!("! {warning}\n"));
    }
    if status.projects.is_empty() {
        out.push_str("no active projects\n");
        return out;
    }
    let headers = [
        "PROJECT",
        "NAME",
        "STATE",
        "JOB",
        "PROGRESS",
        "LAST SUCCESS",
        "LAST ERROR",
        "NEXT RUN",
        "QUEUE",
        "DEAD",
        "LAG",
        "OUTBOX",
    ];
    let rows: Vec<Vec<String>> = status
        .projects
        .iter()
        .map(|p| {
            let (job, progress) = match &p.running_job {
                Some(job) => {
                    let pr = &job.progress;
                    let count = match pr.total {
                        Some(total) => format!("{}/{}", pr.done, total),
                        None => pr.done.to_string(),
                    };
                    let stream = pr
                        .stream
                        .as_deref()
                        .map(|s| format!("{s} "))
                        .unwrap_or_default();
                    (
                        format!("{} {}", job.kind, short_id(&job.job_id)),
                        format!("{stream}{} {count}", pr.phase),
                    )
                }
                None => ("-".to_string(), "-".to_string()),
            };
            let last_error = match &p.last_error {
                Some(e) => format!(
                    "{}{}: {}",
                    fmt_relative(e.at, now),
                    if e.permanent { " [permanent]" } else { "" },
                    truncate(&e.message, 60)
                ),
                None => "-".to_string(),
            };
            let mut queue = p.queue_depth.to_string();
            if p.delayed > 0 {
                queue.push_str(&format!(" (+{} delayed)", p.delayed));
            }
            let mut state = p.state.as_str().to_string();
            if p.restarts > 0 {
                state.push_str(&format!(" ({} restarts)", p.restarts));
            }
            vec![
                p.project_id.to_string(),
                p.name
                    .as_deref()
                    .map(|n| truncate(n, 24))
                    .unwrap_or_else(|| "-".into()),
                state,
                job,
                progress,
                p.last_success_at
                    .map(|t| fmt_relative(t, now))
                    .unwrap_or_else(|| "never".into()),
                last_error,
                p.next_run_at
                    .map(|t| fmt_relative(t, now))
                    .unwrap_or_else(|| "-".into()),
                queue,
                p.dead_jobs.to_string(),
                p.cursor_lag
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
                match p.outbox {
                    None => "-".into(),
                    Some(o) if o.failed + o.conflict == 0 => o.pending.to_string(),
                    Some(o) => format!(
                        "{} ({} failed, {} conflict)",
                        o.pending, o.failed, o.conflict
                    ),
                },
            ]
        })
        .collect();
    out.push_str(&render_table(&headers, &rows));
    out
}

/// The `jobs` / `dead` table.
fn render_jobs(list: &JobList, now: DateTime<Utc>) -> String {
    if list.jobs.is_empty() {
        return format!("project {}: no jobs\n", list.project_id);
    }
    let headers = [
        "JOB ID",
        "KIND",
        "STATE",
        "ATTEMPTS",
        "ENTITY",
        "ENQUEUED",
        "RUN AT",
        "LAST ERROR",
    ];
    let rows: Vec<Vec<String>> = list
        .jobs
        .iter()
        .map(|j| {
            vec![
                j.job_id.clone(),
                j.kind.clone(),
                j.state.clone(),
                j.attempts.to_string(),
                j.entity_id
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "-".into()),
                j.enqueued_at
                    .map(|t| fmt_relative(t, now))
                    .unwrap_or_else(|| "-".into()),
                j.run_at
                    .map(|t| fmt_relative(t, now))
                    .unwrap_or_else(|| "-".into()),
                j.last_error
                    .as_deref()
                    .map(|e| truncate(e, 60))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    render_table(&headers, &rows)
}

/// Left-aligned columns separated by two spaces; widths count characters, not bytes.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &mut dyn Iterator<Item = &str>| {
        let mut line = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(&mut headers.iter().copied());
    for row in rows {
        push_row(&mut row.iter().map(String::as_str));
    }
    out
}

/// `"3m ago"` / `"in 5m"`.
fn fmt_relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = now - t;
    match delta.to_std() {
        Ok(past) => format!("{} ago", fmt_duration(past)),
        Err(_) => format!(
            "in {}",
            fmt_duration((t - now).to_std().unwrap_or_default())
        ),
    }
}

/// Compact duration: `45s`, `3m12s`, `2h05m`, `3d04h`.
fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// At most `max` characters, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    let flat = text.replace(['\n', '\r'], " ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The first 8 characters of a job id (enough to tell jobs apart in a table).
fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{LastError, Progress, ProjectState, RunningJob};
    use chrono::TimeZone;

    fn project(state: ProjectState) -> ProjectStatus {
        ProjectStatus {
            project_id: 7,
            name: Some("Магазин".into()),
            state,
            running_job: None,
            last_success_at: None,
            fresh_as_of: None,
            outbox: None,
            last_error: None,
            last_finished: None,
            next_run_at: None,
            queue_depth: 0,
            delayed: 0,
            dead_jobs: 0,
            cursor_lag: None,
            restarts: 0,
        }
    }

    #[test]
    fn socket_path_from_config() {
        let text = "[control]\nsocket_path = \"/tmp/x.sock\"\n[database]\nurl = 5\n";
        assert_eq!(
            socket_from_config_text(text).unwrap(),
            Some(PathBuf::from("/tmp/x.sock"))
        );
        assert_eq!(socket_from_config_text("[database]\n").unwrap(), None);
        assert!(socket_from_config_text("[control]\nsocket_path = 3\n").is_err());
        assert!(socket_from_config_text("not = = toml").is_err());
    }

    #[test]
    fn table_aligns_by_characters() {
        let table = render_table(
            &["A", "NAME"],
            &[
                vec!["1".into(), "Магазин".into()],
                vec!["22".into(), "x".into()],
            ],
        );
        assert_eq!(table, "A   NAME\n1   Магазин\n22  x\n");
    }

    #[test]
    fn verdicts() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let later = t0 + chrono::Duration::seconds(5);
        let mut ps = project(ProjectState::Running);
        ps.running_job = Some(RunningJob {
            job_id: "j1".into(),
            kind: "sync_all".into(),
            started_at: later,
            progress: Progress {
                stream: Some("orders".into()),
                done: 5,
                total: Some(10),
                phase: "fetching".into(),
            },
        });
        assert_eq!(job_verdict(&ps, "j1", t0, false), Verdict::Running);
        assert!(matches!(
            job_verdict(&ps, "j2", t0, false),
            Verdict::Waiting(_)
        ));

        // Exact answer through last_finished.
        ps.running_job = None;
        ps.state = ProjectState::Idle;
        ps.last_finished = Some(FinishedJob {
            job_id: "j1".into(),
            kind: "sync_all".into(),
            finished_at: later,
            outcome: JobOutcome::Dead,
            message: Some("wrong API key".into()),
        });
        assert_eq!(
            job_verdict(&ps, "j1", t0, true),
            Verdict::Finished {
                succeeded: false,
                message: Some("wrong API key".into())
            }
        );

        // Fallback without last_finished: success after the trigger.
        ps.last_finished = None;
        ps.last_success_at = Some(later);
        assert_eq!(
            job_verdict(&ps, "j1", t0, true),
            Verdict::Finished {
                succeeded: true,
                message: None
            }
        );
        // ...but not before the job was seen running (it may still be queued).
        assert!(matches!(
            job_verdict(&ps, "j1", t0, false),
            Verdict::Waiting(_)
        ));

        // A permanent error after the trigger ends the wait even if never seen running.
        ps.last_success_at = None;
        ps.last_error = Some(LastError {
            at: later,
            message: "missing scope".into(),
            permanent: true,
        });
        assert!(matches!(
            job_verdict(&ps, "j1", t0, false),
            Verdict::Finished {
                succeeded: false,
                ..
            }
        ));
    }

    #[test]
    fn status_rendering_mentions_problems() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap();
        let mut p = project(ProjectState::Failed);
        p.last_error = Some(LastError {
            at: now - chrono::Duration::seconds(90),
            message: "HTTP 401: wrong API key".into(),
            permanent: true,
        });
        p.restarts = 5;
        let status = DaemonStatus {
            version: "0.1.0".into(),
            pid: 42,
            started_at: now - chrono::Duration::seconds(3700),
            config_path: "/etc/retailcrm-sync/retailcrm-sync.toml".into(),
            config_error: Some("database.url: missing".into()),
            restart_required: vec!["control.socket_path".into()],
            warnings: vec!["Redis keeps nothing on disk".into()],
            http_listen: None,
            projects: vec![p],
        };
        let text = render_status(&status, now);
        assert!(text.contains("up 1h01m"), "{text}");
        assert!(text.contains("last reload failed"), "{text}");
        assert!(text.contains("control.socket_path"), "{text}");
        assert!(text.contains("! Redis keeps nothing on disk"), "{text}");
        assert!(text.contains("failed (5 restarts)"), "{text}");
        assert!(text.contains("1m30s ago [permanent]: HTTP 401"), "{text}");
    }
}
