//! ProjectActor: one per active integration. It owns the project's RetailCRM client (with its
//! own rate limit), its Scheduler and its SyncActor, and tells the supervisor when it stops so
//! the supervisor can restart it under a budget.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use super::board::{LiveError, LiveState, StatusBoard};
use super::job_runner::JobDeps;
use super::scheduler::{Scheduler, SchedulerArgs, SetSchedulePaused, StopScheduler};
use super::sync_actor::{SetPaused, StopSync, SyncActor, Wake};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::crm::{ClientOptions, CrmClient};
use crate::queue::JobQueue;
use crate::store::{Integration, Store};

/// Sent to the supervisor when a project actor stops.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ProjectStopped {
    pub project_id: i64,
    /// Which start of the project this was (stale notices are ignored).
    pub generation: u64,
    /// True when it stopped on its own (could not start), false when told to.
    pub crashed: bool,
}

/// Stop the project (integration removed, edited, deactivated, or daemon stopping).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopProject;

/// Pause or resume the project's scheduling and job taking.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PauseProject(pub bool);

/// Look at the queue now (a job was enqueued for this project).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WakeProject;

/// What a project actor is started with; shared handles are cheap clones.
#[derive(Clone)]
pub struct ProjectDeps {
    pub store: Store,
    pub queue: JobQueue,
    pub settings: Arc<Settings>,
    pub board: StatusBoard,
    pub clock: SharedClock,
    pub worker_id: String,
    pub stop: CancellationToken,
    pub abort: CancellationToken,
    pub tracker: TaskTracker,
    pub supervisor: Recipient<ProjectStopped>,
}

/// The actor of one project.
pub struct ProjectActor {
    integration: Integration,
    deps: ProjectDeps,
    generation: u64,
    paused: bool,
    sync: Option<Addr<SyncActor>>,
    scheduler: Option<Addr<Scheduler>>,
    told_to_stop: bool,
}

impl ProjectActor {
    /// A project actor for `integration`.
    pub fn new(integration: Integration, deps: ProjectDeps, generation: u64, paused: bool) -> Self {
        ProjectActor {
            integration,
            deps,
            generation,
            paused,
            sync: None,
            scheduler: None,
            told_to_stop: false,
        }
    }

    fn client_options(settings: &Settings, project_id: i64) -> ClientOptions {
        ClientOptions {
            project_id: Some(project_id),
            requests_per_second: settings.sync.requests_per_second,
            timeout: Duration::from_secs(settings.sync.request_timeout_secs),
            rate_limit_budget: Duration::from_secs(settings.sync.rate_limit_budget_secs),
            ..ClientOptions::default()
        }
    }

    /// Length of one unit of `sync_interval_minutes` (60 s; tests and demos shorten it).
    fn interval(&self) -> Duration {
        let minutes = if self.integration.sync_interval_minutes > 0 {
            self.integration.sync_interval_minutes as u64
        } else {
            u64::from(self.deps.settings.sync.default_interval_minutes)
        };
        Duration::from_secs(minutes.max(1) * self.deps.settings.sync.minute_secs.max(1))
    }
}

impl Actor for ProjectActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let project_id = self.integration.project_id;
        let name = self.integration.project_name.clone();
        let last_sync_at = self.integration.last_sync_at;
        self.deps.board.update(project_id, |p| {
            p.name = name;
            p.state = LiveState::Starting;
            // After a daemon restart `status` still knows how fresh the project is.
            p.last_success_at = p.last_success_at.max(last_sync_at);
        });
        let client = match CrmClient::new(
            &self.integration.api_url,
            self.integration.api_key.clone(),
            Self::client_options(&self.deps.settings, project_id),
        ) {
            Ok(c) => c,
            Err(e) => {
                error!(project_id, error = %e, "cannot start the project: its RetailCRM client could not be built");
                let now = self.deps.clock.now();
                self.deps.board.update(project_id, |p| {
                    p.state = LiveState::Failed;
                    p.last_error = Some(LiveError {
                        at: now,
                        message: e.to_string(),
                        permanent: true,
                    });
                });
                ctx.stop();
                return;
            }
        };
        let job_deps = JobDeps {
            store: self.deps.store.clone(),
            queue: self.deps.queue.clone(),
            client,
            integration: self.integration.clone(),
            page_size: self.deps.settings.sync.page_size,
            board: self.deps.board.clone(),
            clock: self.deps.clock.clone(),
            abort: self.deps.abort.clone(),
        };
        let sync = SyncActor::new(
            job_deps,
            self.deps.worker_id.clone(),
            self.deps.stop.clone(),
            self.deps.tracker.clone(),
            self.paused,
        )
        .start();
        let scheduler = Scheduler::new(SchedulerArgs {
            project_id,
            interval: self.interval(),
            queue: self.deps.queue.clone(),
            board: self.deps.board.clone(),
            clock: self.deps.clock.clone(),
            sync: sync.clone(),
            last_sync_at: self.integration.last_sync_at,
            paused: self.paused,
        })
        .start();
        self.sync = Some(sync);
        self.scheduler = Some(scheduler);
        info!(
            project_id,
            interval_secs = self.interval().as_secs(),
            "project started"
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(sync) = self.sync.take() {
            sync.do_send(StopSync);
        }
        if let Some(s) = self.scheduler.take() {
            s.do_send(StopScheduler);
        }
        self.deps.supervisor.do_send(ProjectStopped {
            project_id: self.integration.project_id,
            generation: self.generation,
            crashed: !self.told_to_stop,
        });
    }
}

impl Handler<StopProject> for ProjectActor {
    type Result = ();
    fn handle(&mut self, _: StopProject, ctx: &mut Context<Self>) {
        self.told_to_stop = true;
        ctx.stop();
    }
}

impl Handler<PauseProject> for ProjectActor {
    type Result = ();
    fn handle(&mut self, msg: PauseProject, _ctx: &mut Context<Self>) {
        self.paused = msg.0;
        if let Some(sync) = &self.sync {
            sync.do_send(SetPaused(msg.0));
        }
        if let Some(s) = &self.scheduler {
            s.do_send(SetSchedulePaused(msg.0));
        }
    }
}

impl Handler<WakeProject> for ProjectActor {
    type Result = ();
    fn handle(&mut self, _: WakeProject, _ctx: &mut Context<Self>) {
        if let Some(sync) = &self.sync {
            sync.do_send(Wake);
        }
    }
}
