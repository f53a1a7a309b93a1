//! SyncActor: takes one project's jobs from its Redis queue, one at a time.
//!
//! The actor only decides *when* to look for work: right away when woken (a trigger or the
//! scheduler enqueued something), at the due time of the next delayed retry, or on a slow idle
//! poll (jobs enqueued by another process). The job itself runs on the tokio pool
//! (`job_runner`), so a slow or panicking sync never blocks the actor system.

use std::time::Duration;

use actix::prelude::*;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::board::LiveState;
use super::job_runner::{JobDeps, JobEnd, run_job};

/// Longest sleep between two looks at the queue when nothing is due.
pub const IDLE_POLL: Duration = Duration::from_secs(10);

/// Look at the queue now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// Stop or start taking jobs (operator `pause` / `resume`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPaused(pub bool);

/// Stop the actor (its project is stopping). A running job keeps running on the pool and
/// settles itself; the shutdown tracker waits for it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopSync;

/// The per-project job taker.
pub struct SyncActor {
    deps: JobDeps,
    worker_id: String,
    /// Cancelled when the daemon stops taking jobs.
    stop: CancellationToken,
    tracker: TaskTracker,
    busy: bool,
    /// A `Wake` came while a poll was in flight: poll again as soon as it ends (a job enqueued
    /// just after the queue looked empty must not wait for the idle poll).
    woken: bool,
    paused: bool,
    timer: Option<SpawnHandle>,
}

impl SyncActor {
    /// A job taker for `deps.integration`'s project.
    pub fn new(
        deps: JobDeps,
        worker_id: String,
        stop: CancellationToken,
        tracker: TaskTracker,
        paused: bool,
    ) -> Self {
        SyncActor {
            deps,
            worker_id,
            stop,
            tracker,
            busy: false,
            woken: false,
            paused,
            timer: None,
        }
    }

    fn project_id(&self) -> i64 {
        self.deps.integration.project_id
    }

    fn poll_later(&mut self, ctx: &mut Context<Self>, after: Duration) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        self.timer = Some(ctx.notify_later(Wake, after));
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.woken = true;
            return;
        }
        if self.paused {
            debug!(
                project_id = self.project_id(),
                "paused: queued jobs wait for resume"
            );
            return;
        }
        if self.stop.is_cancelled() {
            return;
        }
        self.woken = false;
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        self.busy = true;
        let queue = self.deps.queue.clone();
        let project_id = self.project_id();
        let worker_id = self.worker_id.clone();
        let stop = self.stop.clone();
        let deps = self.deps.clone();
        // Reserve and run in one task on the shutdown tracker: it outlives this actor (a
        // project restart or shutdown stops the actor, never the job), and a shutdown waits
        // for a reservation in flight and its job instead of exiting with the job leased.
        let task = self.tracker.spawn(async move {
            match queue.reserve(project_id, &worker_id).await {
                Ok(Some(lease)) if stop.is_cancelled() => {
                    // Shutting down between reserve and start: hand it straight back.
                    if let Err(e) = queue.release(&lease).await {
                        warn!(project_id, error = %e, "could not hand a just-reserved job back; it returns when its lease expires");
                    }
                    Polled::Idle(None)
                }
                Ok(Some(lease)) => Polled::Ran(run_job(deps, lease).await),
                Ok(None) => match queue.next_due(project_id).await {
                    Ok(due) => Polled::Idle(due),
                    Err(e) => Polled::Error(e),
                },
                Err(e) => Polled::Error(e),
            }
        });
        ctx.spawn(task.into_actor(self).map(|res, act, ctx| {
            act.busy = false;
            let woken = std::mem::take(&mut act.woken);
            match res {
                // Woken meanwhile (a job was enqueued): look again now, unless the queue
                // itself failed (then the backoff below stands).
                Ok(Polled::Idle(_) | Polled::Ran(_)) if woken => act.poll(ctx),
                Ok(Polled::Ran(JobEnd::Failed { .. } | JobEnd::LeaseLost)) => {
                    act.poll_later(ctx, Duration::from_millis(500))
                }
                Ok(Polled::Ran(_)) => act.poll(ctx),
                Ok(Polled::Idle(due)) => {
                    let now = act.deps.clock.now();
                    let wait = due
                        .and_then(|d| (d - now).to_std().ok())
                        .map_or(IDLE_POLL, |d| d.min(IDLE_POLL))
                        .max(Duration::from_millis(50));
                    act.poll_later(ctx, wait);
                }
                Ok(Polled::Error(e)) => {
                    warn!(project_id = act.project_id(), error = %e, "could not read the job queue; retrying");
                    act.poll_later(ctx, Duration::from_secs(2));
                }
                Err(e) => {
                    // Cannot happen (run_job catches the engine's panics), but never silent.
                    warn!(project_id = act.project_id(), error = %e, "the job task ended abnormally");
                    act.poll_later(ctx, Duration::from_secs(2));
                }
            }
        }));
    }
}

/// What one look at the queue came to.
enum Polled {
    /// A job ran and ended like this.
    Ran(JobEnd),
    /// Nothing runnable; the queue says when something will be (`None`: nothing queued).
    Idle(Option<chrono::DateTime<chrono::Utc>>),
    /// The queue could not be read.
    Error(crate::queue::QueueError),
}

impl Actor for SyncActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let project_id = self.project_id();
        let paused = self.paused;
        self.deps.board.update(project_id, |p| {
            p.state = if paused {
                LiveState::Paused
            } else {
                LiveState::Idle
            };
        });
        self.poll(ctx);
    }
}

impl Handler<Wake> for SyncActor {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.poll(ctx);
    }
}

impl Handler<SetPaused> for SyncActor {
    type Result = ();
    fn handle(&mut self, msg: SetPaused, ctx: &mut Context<Self>) {
        self.paused = msg.0;
        let project_id = self.project_id();
        self.deps.board.update(project_id, |p| {
            if msg.0 {
                p.state = LiveState::Paused;
            } else if p.running.is_none() {
                p.state = LiveState::Idle;
            }
        });
        if !msg.0 {
            self.poll(ctx);
        }
    }
}

impl Handler<StopSync> for SyncActor {
    type Result = ();
    fn handle(&mut self, _: StopSync, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
