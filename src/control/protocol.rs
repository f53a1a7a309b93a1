//! The control-socket wire format: one JSON object per line in each direction (NDJSON).
//!
//! A request names its command in `cmd` (`{"cmd":"status","project_id":7}`); the answer is
//! either `{"ok":true,"data":...}` or `{"ok":false,"error":{"code":"...","message":"..."}}`.
//! The types here are shared by the server (which parses requests and writes responses), the
//! supervisor (which fills the status payloads) and `retailcrm-sync ctl` (which prints them), so
//! the three cannot drift apart. Everything is plain serde data; nothing here does I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Maximum length of one request line in bytes (without the newline). Longer lines are
/// answered with [`ErrorCode::LineTooLong`] and discarded without being buffered.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Job kinds accepted by [`Request::Trigger`].
pub const TRIGGER_KINDS: &[&str] = &[
    "sync_orders",
    "sync_customers",
    "sync_all",
    "sync_order",
    "sync_customer",
    "resync_orders",
    "resync_customers",
    "resync_all",
    "push",
];

/// One request from a control client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Liveness check; answered with `{"pong":true}`.
    Ping,
    /// The daemon's version and pid.
    Version,
    /// Status of every project, or of one.
    Status {
        /// Limit the answer to this project.
        #[serde(default)]
        project_id: Option<i64>,
    },
    /// Enqueue a job now; answered at once with [`TriggerAccepted`].
    Trigger {
        /// The loyalty project.
        project_id: i64,
        /// One of [`TRIGGER_KINDS`].
        kind: String,
        /// RetailCRM id of the order or customer, for `sync_order` / `sync_customer`.
        #[serde(default)]
        entity_id: Option<i64>,
        /// Restart the history stream from this history id instead of the stored cursor.
        #[serde(default)]
        since_id: Option<i64>,
    },
    /// Re-read the config file and the integrations table (like SIGHUP).
    Reload,
    /// Waiting, delayed and running jobs of a project.
    Jobs {
        /// The loyalty project.
        project_id: i64,
        /// At most this many items (the daemon picks a default when absent).
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Dead-lettered jobs of a project.
    Dead {
        /// The loyalty project.
        project_id: i64,
        /// At most this many items.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Move a dead job back to the queue with a fresh attempt budget.
    Retry {
        /// The loyalty project.
        project_id: i64,
        /// Id of the dead job (from `dead`).
        job_id: String,
    },
    /// Stop starting jobs for a project (a running job finishes; triggers still queue).
    Pause {
        /// The loyalty project.
        project_id: i64,
    },
    /// Undo [`Request::Pause`].
    Resume {
        /// The loyalty project.
        project_id: i64,
    },
    /// Two-way sync: the project's outbox counts and its failed, conflicted and pending rows.
    Outbox {
        /// The loyalty project.
        project_id: i64,
        /// At most this many rows (default 50).
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Two-way sync: put failed and conflicted outbox rows back to pending (all, or `ids`).
    OutboxRetry {
        /// The loyalty project.
        project_id: i64,
        /// Only these rows.
        #[serde(default)]
        ids: Option<Vec<i64>>,
    },
}

impl Request {
    /// Every command name, as it appears in `cmd`.
    pub const COMMANDS: &'static [&'static str] = &[
        "ping",
        "version",
        "status",
        "trigger",
        "reload",
        "jobs",
        "dead",
        "retry",
        "pause",
        "resume",
        "outbox",
        "outbox_retry",
    ];

    /// True for commands that change anything; those require the peer to be the daemon's user
    /// (or root), checked with `SO_PEERCRED`.
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Request::Trigger { .. }
                | Request::Reload
                | Request::Retry { .. }
                | Request::Pause { .. }
                | Request::Resume { .. }
                | Request::OutboxRetry { .. }
        )
    }

    /// The command name (`"status"`, ...), for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Version => "version",
            Request::Status { .. } => "status",
            Request::Trigger { .. } => "trigger",
            Request::Reload => "reload",
            Request::Jobs { .. } => "jobs",
            Request::Dead { .. } => "dead",
            Request::Retry { .. } => "retry",
            Request::Pause { .. } => "pause",
            Request::Resume { .. } => "resume",
            Request::Outbox { .. } => "outbox",
            Request::OutboxRetry { .. } => "outbox_retry",
        }
    }

    /// Parses one request line. Never panics; every failure is a ready-to-send error response
    /// that says which of "not JSON", "unknown command" or "bad fields" it was.
    pub fn parse_line(line: &[u8]) -> Result<Request, Response> {
        let value: Value = serde_json::from_slice(line).map_err(|err| {
            Response::error(
                ErrorCode::BadJson,
                format!(
                    "the request is not valid JSON ({err}); send one JSON object per line, \
                     e.g. {{\"cmd\":\"ping\"}}"
                ),
            )
        })?;
        let Some(object) = value.as_object() else {
            return Err(Response::error(
                ErrorCode::Invalid,
                "the request must be a JSON object with a \"cmd\" field, e.g. {\"cmd\":\"ping\"}",
            ));
        };
        let cmd = match object.get("cmd") {
            Some(Value::String(cmd)) => cmd.as_str(),
            Some(_) => {
                return Err(Response::error(
                    ErrorCode::Invalid,
                    "\"cmd\" must be a string naming the command, e.g. {\"cmd\":\"status\"}",
                ));
            }
            None => {
                return Err(Response::error(
                    ErrorCode::Invalid,
                    "the request has no \"cmd\" field; add one, e.g. {\"cmd\":\"status\"}",
                ));
            }
        };
        if !Self::COMMANDS.contains(&cmd) {
            let shown: String = cmd.chars().take(64).collect();
            return Err(Response::error(
                ErrorCode::UnknownCommand,
                format!(
                    "unknown command {shown:?}; known commands: {}",
                    Self::COMMANDS.join(", ")
                ),
            ));
        }
        let request: Request = serde_json::from_value(value.clone()).map_err(|err| {
            Response::error(
                ErrorCode::Invalid,
                format!("bad fields for command {cmd:?}: {err}; see `retailcrm-sync ctl --help`"),
            )
        })?;
        if let Request::Trigger { kind, .. } = &request
            && !TRIGGER_KINDS.contains(&kind.as_str())
        {
            let shown: String = kind.chars().take(64).collect();
            return Err(Response::error(
                ErrorCode::Invalid,
                format!(
                    "unknown job kind {shown:?}; use one of: {}",
                    TRIGGER_KINDS.join(", ")
                ),
            ));
        }
        Ok(request)
    }
}

/// Machine-readable error class of a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line was not JSON (or not UTF-8).
    BadJson,
    /// `cmd` named no known command.
    UnknownCommand,
    /// The line exceeded [`MAX_REQUEST_LINE`].
    LineTooLong,
    /// The project, job or entity does not exist.
    NotFound,
    /// The peer may not run this (mutating) command.
    Forbidden,
    /// The daemon cannot answer right now (starting, stopping, a dependency down).
    Unavailable,
    /// A bug or unexpected failure inside the daemon.
    Internal,
    /// The command was understood but its fields are wrong.
    Invalid,
    /// Too many control connections are open; retry shortly.
    Busy,
    /// HTTP only: the bearer token or webhook secret is missing or wrong.
    Unauthorized,
}

impl ErrorCode {
    /// The wire spelling (`"bad_json"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Busy => "busy",
            ErrorCode::Unauthorized => "unauthorized",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Error class.
    pub code: ErrorCode,
    /// What went wrong and what to do about it, for people.
    pub message: String,
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// True when the command succeeded.
    pub ok: bool,
    /// The command's result (present when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Why it failed (present when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    /// A success carrying `data`. A value that cannot be serialised (it never should) becomes
    /// an `internal` error rather than a panic.
    pub fn ok(data: impl Serialize) -> Response {
        match serde_json::to_value(data) {
            Ok(data) => Response {
                ok: true,
                data: Some(data),
                error: None,
            },
            Err(err) => Response::error(
                ErrorCode::Internal,
                format!("the daemon could not encode its answer ({err}); please report this bug"),
            ),
        }
    }

    /// A success with an empty object as data.
    pub fn ok_empty() -> Response {
        Response::ok(serde_json::json!({}))
    }

    /// A failure.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response {
            ok: false,
            data: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
        }
    }

    /// `Ok(data)` (JSON `null` when absent) or `Err(error)`.
    pub fn into_result(self) -> Result<Value, ErrorBody> {
        if self.ok {
            Ok(self.data.unwrap_or(Value::Null))
        } else {
            Err(self.error.unwrap_or_else(|| ErrorBody {
                code: ErrorCode::Internal,
                message: "the daemon answered ok=false without an error object".to_string(),
            }))
        }
    }

    /// The data decoded as `T`, or the error; a decoding failure is reported as `internal`.
    pub fn data_as<T: serde::de::DeserializeOwned>(self) -> Result<T, ErrorBody> {
        let data = self.into_result()?;
        serde_json::from_value(data).map_err(|err| ErrorBody {
            code: ErrorCode::Internal,
            message: format!(
                "the daemon's answer has an unexpected shape ({err}); are `ctl` and the daemon \
                 the same version?"
            ),
        })
    }

    /// The line to write: compact JSON followed by `\n`.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"ok":false,"error":{"code":"internal","message":"response encoding failed"}}"#
                .to_vec()
        });
        line.push(b'\n');
        line
    }
}

/// Answer to `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// Always true.
    pub pong: bool,
}

/// Answer to `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The daemon's crate version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
}

/// Answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's crate version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// When the daemon started.
    pub started_at: DateTime<Utc>,
    /// The config file the daemon runs from.
    pub config_path: String,
    /// Why the last reload failed (the daemon kept the previous config); `None` after a
    /// successful reload.
    #[serde(default)]
    pub config_error: Option<String>,
    /// Settings changed in the file that only take effect after a restart (e.g. `database.url`).
    #[serde(default)]
    pub restart_required: Vec<String>,
    /// Problems of the daemon's environment to fix, each saying what to do (e.g. Redis keeps
    /// nothing on disk). Empty when all is well.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Address the HTTP listener is bound to (webhooks, API, metrics), when it is on.
    #[serde(default)]
    pub http_listen: Option<String>,
    /// One entry per project (only the asked one when `status` named a project).
    pub projects: Vec<ProjectStatus>,
}

/// State of one project's actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectState {
    /// Waiting for the next job.
    Idle,
    /// Running a job.
    Running,
    /// Restarted too often (or a permanent error); backed off.
    Failed,
    /// Paused by an operator.
    Paused,
    /// Being started (or restarted after a config change).
    Starting,
}

impl ProjectState {
    /// Lower-case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectState::Idle => "idle",
            ProjectState::Running => "running",
            ProjectState::Failed => "failed",
            ProjectState::Paused => "paused",
            ProjectState::Starting => "starting",
        }
    }
}

/// Status of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectStatus {
    /// The loyalty project id.
    pub project_id: i64,
    /// A human name for the project, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// What the project's actor is doing.
    pub state: ProjectState,
    /// The job in progress, if any.
    #[serde(default)]
    pub running_job: Option<RunningJob>,
    /// When a job last succeeded.
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    /// Every RetailCRM change made before this moment is committed in Postgres: the start of
    /// the last successful history walk of the stalest synced stream (`freshness_seconds`).
    #[serde(default)]
    pub fresh_as_of: Option<DateTime<Utc>>,
    /// The last failure (cleared by nothing: compare `at` with `last_success_at`).
    #[serde(default)]
    pub last_error: Option<LastError>,
    /// The most recently finished job attempt; lets `ctl trigger --wait` know how *its* job ended.
    #[serde(default)]
    pub last_finished: Option<FinishedJob>,
    /// When the scheduler will enqueue the next periodic sync.
    #[serde(default)]
    pub next_run_at: Option<DateTime<Utc>>,
    /// Jobs waiting to run.
    #[serde(default)]
    pub queue_depth: u64,
    /// Jobs waiting for a retry time.
    #[serde(default)]
    pub delayed: u64,
    /// Jobs in the dead-letter list.
    #[serde(default)]
    pub dead_jobs: u64,
    /// How many history records RetailCRM has beyond the stored cursors (one `totalCount`
    /// request per stream after each successful run), when known.
    #[serde(default)]
    pub cursor_lag: Option<i64>,
    /// How often the project's actor has been restarted since the daemon started.
    #[serde(default)]
    pub restarts: u32,
    /// Two-way sync: outbox rows per state (refreshed by the outbox sweep), when known.
    #[serde(default)]
    pub outbox: Option<OutboxDepth>,
}

/// Outbox rows of one project per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxDepth {
    /// Waiting to be pushed.
    pub pending: u64,
    /// Pushed.
    pub sent: u64,
    /// Failed for good (see `ctl outbox P`).
    pub failed: u64,
    /// Settled with fields RetailCRM kept (see `ctl outbox P`).
    pub conflict: u64,
}

/// The job a project is running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningJob {
    /// Job id (as returned by `trigger`).
    pub job_id: String,
    /// Job kind (`sync_orders`, ...).
    pub kind: String,
    /// When this attempt started.
    pub started_at: DateTime<Utc>,
    /// How far it got.
    pub progress: Progress,
}

/// Progress of a running job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The stream being synced (`orders` / `customers`), if the job has one.
    #[serde(default)]
    pub stream: Option<String>,
    /// Records done so far.
    pub done: u64,
    /// Records expected in total, when RetailCRM said so.
    #[serde(default)]
    pub total: Option<u64>,
    /// Phase name (`fetching`, `writing`, ...).
    pub phase: String,
}

/// The last failure of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What went wrong (never contains an API key).
    pub message: String,
    /// True when retrying cannot help (wrong API key, missing scope).
    pub permanent: bool,
}

/// How a job attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// Done.
    Succeeded,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed for good (permanent error or attempts used up): in the dead-letter list.
    Dead,
}

/// The most recently finished job attempt of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedJob {
    /// Job id.
    pub job_id: String,
    /// Job kind.
    pub kind: String,
    /// When the attempt ended.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: JobOutcome,
    /// The error, when it failed.
    #[serde(default)]
    pub message: Option<String>,
}

/// Answer to `trigger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerAccepted {
    /// Id of the job that will do the work.
    pub job_id: String,
    /// True when an identical job was already waiting and this trigger joined it.
    pub coalesced: bool,
}

/// One job in a `jobs` or `dead` listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Job id.
    pub job_id: String,
    /// Job kind.
    pub kind: String,
    /// `waiting`, `delayed`, `running` or `dead`.
    pub state: String,
    /// Attempts made so far (a running job's current attempt and a completed job's successful
    /// one included).
    #[serde(default)]
    pub attempts: u32,
    /// When it was enqueued.
    #[serde(default)]
    pub enqueued_at: Option<DateTime<Utc>>,
    /// When it will run (delayed) or last ran.
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    /// Last error (dead or retrying jobs).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Entity id for single-record jobs.
    #[serde(default)]
    pub entity_id: Option<i64>,
}

/// Answer to `jobs` and `dead`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    /// The project.
    pub project_id: i64,
    /// The jobs, oldest first.
    pub jobs: Vec<JobInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    #[test]
    fn requests_round_trip_with_cmd_tag() {
        let req = Request::Trigger {
            project_id: 7,
            kind: "sync_order".into(),
            entity_id: Some(42),
            since_id: None,
        };
        let line = serde_json::to_string(&req).unwrap();
        assert!(line.contains(r#""cmd":"trigger""#), "{line}");
        assert_eq!(Request::parse_line(line.as_bytes()).unwrap(), req);
        assert_eq!(
            Request::parse_line(br#"{"cmd":"status"}"#).unwrap(),
            Request::Status { project_id: None }
        );
    }

    #[test]
    fn parse_errors_are_classified() {
        let code = |line: &[u8]| Request::parse_line(line).unwrap_err().error.unwrap().code;
        assert_eq!(code(b"not json"), ErrorCode::BadJson);
        assert_eq!(code(b"\xff\xfe{}"), ErrorCode::BadJson);
        assert_eq!(code(b"[1,2]"), ErrorCode::Invalid);
        assert_eq!(code(br#"{"project_id":1}"#), ErrorCode::Invalid);
        assert_eq!(code(br#"{"cmd":5}"#), ErrorCode::Invalid);
        assert_eq!(code(br#"{"cmd":"explode"}"#), ErrorCode::UnknownCommand);
        assert_eq!(code(br#"{"cmd":"trigger"}"#), ErrorCode::Invalid);
        assert_eq!(
            code(br#"{"cmd":"trigger","project_id":1,"kind":"nope"}"#),
            ErrorCode::Invalid
        );
        assert_eq!(
            code(br#"{"cmd":"pause","project_id":"x"}"#),
            ErrorCode::Invalid
        );
        // A misspelt field must not silently widen `status` to every project.
        assert_eq!(
            code(br#"{"cmd":"status","projectid":1}"#),
            ErrorCode::Invalid
        );
        // (Field-less commands such as `ping` ignore extra fields: serde does not check them.)
        assert!(Request::parse_line(br#"{"cmd":"ping","extra":1}"#).is_ok());
    }

    proptest::proptest! {
        /// Any bytes at all get a parsed request or an error response, never a panic.
        #[test]
        fn parse_line_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            match Request::parse_line(&bytes) {
                Ok(request) => proptest::prop_assert!(Request::COMMANDS.contains(&request.name())),
                Err(response) => proptest::prop_assert!(!response.ok && response.error.is_some()),
            }
        }

        /// Fields of the right command with arbitrary JSON values never panic either.
        #[test]
        fn parse_line_survives_odd_field_values(
            cmd in proptest::sample::select(Request::COMMANDS.to_vec()),
            value in proptest::prop_oneof![
                proptest::strategy::Just(serde_json::Value::Null),
                proptest::num::i64::ANY.prop_map(serde_json::Value::from),
                proptest::num::f64::ANY.prop_map(serde_json::Value::from),
                ".{0,40}".prop_map(serde_json::Value::from),
            ],
        ) {
            let line = serde_json::json!({
                "cmd": cmd, "project_id": value.clone(), "kind": value.clone(),
                "job_id": value.clone(), "limit": value,
            });
            let _ = Request::parse_line(line.to_string().as_bytes());
        }
    }

    #[test]
    fn mutating_commands() {
        assert!(Request::Reload.is_mutating());
        assert!(Request::Pause { project_id: 1 }.is_mutating());
        assert!(!Request::Status { project_id: None }.is_mutating());
        assert!(
            !Request::Dead {
                project_id: 1,
                limit: None
            }
            .is_mutating()
        );
    }

    #[test]
    fn response_shapes() {
        let ok = Response::ok(Pong { pong: true });
        assert_eq!(
            String::from_utf8(ok.to_line()).unwrap(),
            "{\"ok\":true,\"data\":{\"pong\":true}}\n"
        );
        let err = Response::error(ErrorCode::NotFound, "no project 9");
        let line = String::from_utf8(err.to_line()).unwrap();
        assert_eq!(
            line,
            "{\"ok\":false,\"error\":{\"code\":\"not_found\",\"message\":\"no project 9\"}}\n"
        );
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back.into_result().unwrap_err().code, ErrorCode::NotFound);
    }
}
