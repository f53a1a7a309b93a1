//! Scheduler: enqueues a project's periodic `sync_all` every `sync_interval_minutes` (the seed's
//! `schedulePeriodicSync`).
//!
//! It never piles jobs up when a run takes longer than the interval: a tick is skipped while a
//! `sync_all` is running (here, or still leased by a daemon that died), and a tick while one is
//! waiting coalesces into it in the queue. The
//! first tick comes one interval after the last successful sync (at once if that is past).

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use super::board::StatusBoard;
use super::sync_actor::{SyncActor, Wake};
use crate::clock::SharedClock;
use crate::queue::{JobKind, JobQueue, NewJob, Trigger};

/// Pause or resume scheduling.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetSchedulePaused(pub bool);

/// Stop the scheduler (its project is stopping).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopScheduler;

/// What a scheduler is built from.
pub struct SchedulerArgs {
    pub project_id: i64,
    /// Time between two periodic syncs.
    pub interval: Duration,
    pub queue: JobQueue,
    pub board: StatusBoard,
    pub clock: SharedClock,
    /// Woken after each enqueue so the job starts at once.
    pub sync: Addr<SyncActor>,
    /// The integration's `last_sync_at`: the first tick is one interval after it.
    pub last_sync_at: Option<DateTime<Utc>>,
    pub paused: bool,
}

/// Periodic job producer of one project.
pub struct Scheduler {
    project_id: i64,
    interval: Duration,
    queue: JobQueue,
    board: StatusBoard,
    clock: SharedClock,
    sync: Addr<SyncActor>,
    last_sync_at: Option<DateTime<Utc>>,
    paused: bool,
    timer: Option<SpawnHandle>,
}

impl Scheduler {
    /// A scheduler ticking every `interval`, the first tick `interval` after `last_sync_at`.
    pub fn new(args: SchedulerArgs) -> Self {
        Scheduler {
            project_id: args.project_id,
            interval: args.interval,
            queue: args.queue,
            board: args.board,
            clock: args.clock,
            sync: args.sync,
            last_sync_at: args.last_sync_at,
            paused: args.paused,
            timer: None,
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>, after: Duration) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        let at = self.clock.now() + chrono::Duration::from_std(after).unwrap_or_default();
        self.board
            .update(self.project_id, |p| p.next_run_at = Some(at));
        self.timer = Some(ctx.run_later(after, |act, ctx| act.tick(ctx)));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        self.arm(ctx, self.interval);
        if self.paused {
            return;
        }
        let running_all = self
            .board
            .get(self.project_id)
            .and_then(|p| p.running)
            .is_some_and(|j| j.kind.parse::<JobKind>().is_ok_and(|k| k.covers_project()));
        if running_all {
            debug!(
                project_id = self.project_id,
                "periodic sync skipped: a sync_all is running"
            );
            return;
        }
        let queue = self.queue.clone();
        let job = NewJob {
            project_id: self.project_id,
            kind: JobKind::SyncAll,
            since_id: None,
            trigger: Trigger::Schedule,
        };
        let sync = self.sync.clone();
        let project_id = self.project_id;
        ctx.spawn(
            async move {
                // The board only knows this process's jobs; the queue also knows a sync_all
                // still leased by a daemon that was killed (its lease not yet expired), which
                // will resume: enqueueing another one then would only run the same sync twice.
                match queue.stats(project_id).await {
                    Ok(stats)
                        if stats
                            .active
                            .as_ref()
                            .is_some_and(|a| a.job.kind.covers_project()) =>
                    {
                        debug!(project_id, "periodic sync skipped: a sync_all holds the project's lease");
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(project_id, error = %e, "could not read the job queue; enqueueing the periodic sync anyway");
                    }
                }
                match queue.enqueue(&job).await {
                    Ok(e) => {
                        debug!(project_id, job_id = %e.job_id, coalesced = e.coalesced, "periodic sync enqueued");
                        sync.do_send(Wake);
                    }
                    Err(e) => warn!(project_id, error = %e, "could not enqueue the periodic sync; next tick will try again"),
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let now = self.clock.now();
        let first = match self.last_sync_at {
            Some(last) => {
                let due = last + chrono::Duration::from_std(self.interval).unwrap_or_default();
                (due - now).to_std().unwrap_or(Duration::ZERO)
            }
            None => Duration::ZERO,
        };
        self.arm(ctx, first);
    }
}

impl Handler<SetSchedulePaused> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: SetSchedulePaused, _ctx: &mut Context<Self>) {
        self.paused = msg.0;
    }
}

impl Handler<StopScheduler> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: StopScheduler, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
