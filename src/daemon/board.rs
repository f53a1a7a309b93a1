//! The status board: what every project is doing right now, written by the project and sync
//! actors as things happen and read by the supervisor when `status` is asked. A shared map
//! behind a mutex (held for microseconds, never across an await) rather than a round of actor
//! messages, so `status` answers instantly even while every project is busy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::control::protocol::FinishedJob;
use crate::model::Stream;
use crate::sync::Progress;

/// Lifecycle state of one project's actors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveState {
    /// Actors starting (client being built).
    Starting,
    /// Waiting for the next job.
    Idle,
    /// A job is running.
    Running,
    /// Paused by an operator: no jobs are taken, schedules do not enqueue.
    Paused,
    /// Restart budget spent; retried later.
    Failed,
}

/// The job a project is running.
#[derive(Debug, Clone)]
pub struct LiveJob {
    pub job_id: String,
    pub kind: String,
    pub started_at: DateTime<Utc>,
    pub progress: Progress,
}

/// The last failure of a project.
#[derive(Debug, Clone)]
pub struct LiveError {
    pub at: DateTime<Utc>,
    pub message: String,
    pub permanent: bool,
}

/// Everything `status` shows about one project that is not in Postgres or Redis.
#[derive(Debug, Clone)]
pub struct ProjectLive {
    pub name: Option<String>,
    pub state: LiveState,
    pub running: Option<LiveJob>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<LiveError>,
    /// How the most recent job attempt ended (`ctl trigger --wait` watches it).
    pub last_finished: Option<FinishedJob>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub restarts: u32,
    /// Newest history id RetailCRM reported minus our cursor, per the last run.
    pub cursor_lag: Option<i64>,
    /// Per stream (orders, customers): start of its last successful history walk; every
    /// change before it is committed.
    pub walked_at: [Option<DateTime<Utc>>; 2],
    /// Outbox rows per state (two-way sync), from the last outbox sweep.
    pub outbox: Option<crate::control::protocol::OutboxDepth>,
}

impl ProjectLive {
    fn new() -> Self {
        ProjectLive {
            name: None,
            state: LiveState::Starting,
            running: None,
            last_success_at: None,
            last_error: None,
            last_finished: None,
            next_run_at: None,
            restarts: 0,
            cursor_lag: None,
            walked_at: [None, None],
            outbox: None,
        }
    }

    /// Notes a successful walk of `stream` that started at `at`.
    pub fn walked(&mut self, stream: Stream, at: DateTime<Utc>) {
        let slot = &mut self.walked_at[stream_index(stream)];
        *slot = (*slot).max(Some(at));
    }

    /// Every change before this moment is committed: the stalest walked stream's walk start.
    pub fn fresh_as_of(&self) -> Option<DateTime<Utc>> {
        self.walked_at.iter().flatten().min().copied()
    }
}

fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Orders => 0,
        Stream::Customers => 1,
    }
}

/// Shared board of all projects.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<Mutex<HashMap<i64, ProjectLive>>>);

impl StatusBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `f` to a project's entry, creating it when absent.
    pub fn update<R>(&self, project_id: i64, f: impl FnOnce(&mut ProjectLive) -> R) -> R {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(project_id).or_insert_with(ProjectLive::new))
    }

    /// A copy of one project's entry.
    pub fn get(&self, project_id: i64) -> Option<ProjectLive> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&project_id)
            .cloned()
    }

    /// Removes a project (its integration went away).
    pub fn remove(&self, project_id: i64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&project_id);
    }

    /// All project ids on the board, sorted.
    pub fn project_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// How many projects are running a job.
    pub fn running_count(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|p| p.running.is_some())
            .count()
    }
}
