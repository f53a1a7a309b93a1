//! Live progress of one running job, shared between the engine (writer) and whoever reports
//! status (the control socket, the CLI progress bar). A cheap clonable handle over a mutex: the
//! engine updates it once per batch, readers take a snapshot.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::model::Stream;

/// What a job is doing right now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    /// Stream being synced, if any yet.
    pub stream: Option<Stream>,
    /// `snapshot` (paging the full list), `history` (walking changes), `entity` or `starting`.
    pub phase: String,
    /// Entities written so far in this phase.
    pub done: u64,
    /// Entities expected in this phase, when the API tells (the list's `totalCount`).
    pub total: Option<u64>,
}

/// Shared, updatable progress of one job.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<ProgressSnapshot>>);

impl Progress {
    /// A fresh progress at `starting`.
    pub fn new() -> Self {
        Progress(Arc::new(Mutex::new(ProgressSnapshot {
            phase: "starting".into(),
            ..Default::default()
        })))
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> ProgressSnapshot {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts a new phase of `stream`, resetting the counters.
    pub fn begin(&self, stream: Stream, phase: &str, done: u64, total: Option<u64>) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *p = ProgressSnapshot {
            stream: Some(stream),
            phase: phase.to_string(),
            done,
            total,
        };
    }

    /// Adds `n` entities done, and updates the total when a newer one is known.
    pub fn advance(&self, n: u64, total: Option<u64>) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        p.done += n;
        if total.is_some() {
            p.total = total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_resets_per_phase_and_accumulates() {
        let p = Progress::new();
        assert_eq!(p.snapshot().phase, "starting");
        p.begin(Stream::Orders, "snapshot", 200, Some(1000));
        p.advance(100, None);
        let s = p.snapshot();
        assert_eq!((s.done, s.total), (300, Some(1000)));
        p.begin(Stream::Orders, "history", 0, None);
        assert_eq!(p.snapshot().done, 0);
        assert_eq!(p.snapshot().total, None);
    }
}
