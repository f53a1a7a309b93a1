//! SupervisorActor: runs exactly one ProjectActor per active integration and is the one place
//! where every outside event is handled: control-socket commands, signals (reload, terminate),
//! periodic reconciliation and project actors stopping.
//!
//! - **Reconcile** (on start, SIGHUP, `ctl reload`, every `daemon.reconcile_interval_secs`):
//!   reads the integrations, starts new ones, restarts only those whose settings changed (URL,
//!   key, switches, interval, mapping), stops deactivated ones and purges the queue of removed ones.
//! - **Restart budget** (OTP-style; actix's own `Supervisor` has none): a project that stops on
//!   its own is restarted with a growing delay, at most `daemon.restart_max` times per
//!   `daemon.restart_window_secs`; past that it is shown `failed` and tried again later.
//! - **Reload**: the new config is loaded and validated off to the side; on error the old one
//!   stays and `status` says why; on success live settings apply and projects restart.
//! - **Shutdown**: stop taking jobs, let running jobs finish within `shutdown.grace_seconds`,
//!   abort and hand back the rest, then signal the daemon to exit.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::board::{LiveState, StatusBoard};
use super::notify;
use super::project::{ProjectActor, ProjectDeps, ProjectStopped, StopProject};
use super::signals::Signal;

mod commands;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::control::server::ControlCall;
use crate::http::{HttpShared, Readiness, WebhookDue};
use crate::queue::JobQueue;
use crate::store::{Integration, Store};
pub use commands::parse_kind;

/// Delay before a project that failed its restart budget is tried again.
const FAILED_RETRY: Duration = Duration::from_secs(300);

/// Every outside event the daemon reacts to, handled in one place.
#[derive(Message)]
#[rtype(result = "()")]
pub enum DaemonEvent {
    /// A control-socket request with its reply channel.
    Control(ControlCall),
    /// A Unix signal.
    Signal(Signal),
    /// Re-read integrations now.
    Reconcile,
    /// RetailCRM triggers called a project's webhook (gathered by the HTTP side).
    Webhook(WebhookDue),
    /// The platform wrote the project's outbox (`NOTIFY retailcrm_outbox`).
    OutboxChanged(i64),
}

/// What the supervisor is built from.
pub struct SupervisorArgs {
    pub store: Store,
    pub queue: JobQueue,
    pub settings: Settings,
    pub config_path: PathBuf,
    pub clock: SharedClock,
    pub worker_id: String,
    /// What the start-up checks found for the operator to fix (shown in `status`).
    pub warnings: Vec<String>,
    /// Cancelled by the supervisor when the daemon may exit.
    pub done: CancellationToken,
    /// What the HTTP listener knows of the daemon (kept current by the supervisor).
    pub http: Arc<HttpShared>,
}

/// One project's place in the supervisor: outlives its actor (restarts, pauses and the
/// restart budget are remembered across them); removed only when the integration goes away.
struct Slot {
    /// The running ProjectActor; `None` between a stop and its restart (or while failed).
    addr: Option<Addr<ProjectActor>>,
    /// Hash of the integration's settings the actor was built from: a reconcile restarts the
    /// actor when it changes (0 forces a restart after a reload of `[sync]` or the queue).
    fingerprint: u64,
    /// Which start of the project the actor is; a `ProjectStopped` of an older generation
    /// (a restart raced it) is ignored.
    generation: u64,
    /// Set by `ctl pause`; survives restarts of the actor.
    paused: bool,
    /// Times of the unexpected stops within `daemon.restart_window_secs` (the budget).
    restarts: VecDeque<Instant>,
    /// Budget spent: not restarted before this instant, shown `failed`.
    failed_until: Option<Instant>,
    /// All unexpected stops since the daemon started (for `status`).
    total_restarts: u32,
}

/// The root actor.
///
/// Lifecycle of the three tokens every job sees (cloned into each ProjectActor, SyncActor and
/// job runner): `stop` is cancelled first on SIGTERM (no new jobs are taken, schedulers stop);
/// `abort` is cancelled when `shutdown.grace_seconds` run out or a second SIGTERM comes (running
/// jobs are cut and handed back to the queue without spending an attempt); `done` is cancelled
/// last, by the supervisor, when `tracker` (every job task, reservation included) is empty or
/// the grace and 10 more seconds are spent: `lifecycle::run` then closes the listeners and exits.
pub struct Supervisor {
    store: Store,
    /// The queue handle; swapped for one with new retry/lease options on reload.
    queue: JobQueue,
    /// The running config; replaced whole on a successful reload.
    settings: Arc<Settings>,
    config_path: PathBuf,
    clock: SharedClock,
    /// This process's identity in leases (`host:pid:random`).
    worker_id: String,
    /// Live per-project state written by the actors and read by `status`.
    board: StatusBoard,
    /// One per active integration.
    slots: HashMap<i64, Slot>,
    /// See the tokens above.
    stop: CancellationToken,
    abort: CancellationToken,
    done: CancellationToken,
    /// Every job task (reserve + run + settle), so shutdown can wait for them.
    tracker: TaskTracker,
    started_at: DateTime<Utc>,
    /// Why the last reload failed (the old config still runs); cleared by a good reload.
    config_error: Option<String>,
    /// Settings changed by the last reload that need a restart ([`restart_required`]).
    restart_required: Vec<String>,
    /// Problems of the environment an operator should fix (e.g. Redis without persistence),
    /// checked at start and on every reload.
    warnings: Vec<String>,
    /// The generation the next started actor gets.
    next_generation: u64,
    /// Set once on the first SIGTERM; from then on nothing is started or enqueued.
    shutting_down: bool,
    /// The periodic reconcile timer (re-armed when a reload changes its interval).
    reconcile_timer: Option<SpawnHandle>,
    /// What the HTTP listener knows of the daemon: readiness, webhook secrets, the API token.
    http: Arc<HttpShared>,
}

impl Supervisor {
    /// A supervisor; start it with `Actor::start`.
    pub fn new(args: SupervisorArgs) -> Self {
        let started_at = args.clock.now();
        Supervisor {
            store: args.store,
            queue: args.queue,
            settings: Arc::new(args.settings),
            config_path: args.config_path,
            clock: args.clock,
            worker_id: args.worker_id,
            board: StatusBoard::new(),
            slots: HashMap::new(),
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            done: args.done,
            tracker: TaskTracker::new(),
            started_at,
            config_error: None,
            restart_required: Vec::new(),
            warnings: args.warnings,
            next_generation: 1,
            shutting_down: false,
            reconcile_timer: None,
            http: args.http,
        }
    }

    fn fingerprint(i: &Integration) -> u64 {
        let mut h = DefaultHasher::new();
        i.api_url.hash(&mut h);
        i.api_key.expose().hash(&mut h);
        i.sync_orders.hash(&mut h);
        i.sync_customers.hash(&mut h);
        i.sync_interval_minutes.hash(&mut h);
        i.project_name.hash(&mut h);
        i.orders_created_from.hash(&mut h);
        let mapping: BTreeMap<_, _> = i
            .status_mapping
            .iter()
            .map(|(k, v)| (k, v.as_str()))
            .collect();
        mapping.hash(&mut h);
        h.finish()
    }

    fn start_project(&mut self, integration: Integration, ctx: &mut Context<Self>) {
        let project_id = integration.project_id;
        crate::metrics::metrics().project_started(project_id);
        let generation = self.next_generation;
        self.next_generation += 1;
        let deps = ProjectDeps {
            store: self.store.clone(),
            queue: self.queue.clone(),
            settings: self.settings.clone(),
            board: self.board.clone(),
            clock: self.clock.clone(),
            worker_id: self.worker_id.clone(),
            stop: self.stop.clone(),
            abort: self.abort.clone(),
            tracker: self.tracker.clone(),
            supervisor: ctx.address().recipient(),
        };
        let fingerprint = Self::fingerprint(&integration);
        let slot = self.slots.entry(project_id).or_insert_with(|| Slot {
            addr: None,
            fingerprint,
            generation,
            paused: false,
            restarts: VecDeque::new(),
            failed_until: None,
            total_restarts: 0,
        });
        slot.fingerprint = fingerprint;
        slot.generation = generation;
        slot.failed_until = None;
        let paused = slot.paused;
        slot.addr = Some(ProjectActor::new(integration, deps, generation, paused).start());
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        self.reconcile_then(ctx, |_, _| {});
    }

    /// Re-reads the integrations and applies them, then calls `then` with the outcome (so
    /// `ctl reload` answers only once the projects match the table).
    fn reconcile_then(
        &mut self,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, Result<(), String>) + 'static,
    ) {
        if self.shutting_down {
            then(self, Err("the daemon is stopping".to_string()));
            return;
        }
        let store = self.store.clone();
        ctx.spawn(
            async move { store.list_integrations().await }
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(all) => {
                        act.apply_integrations(all, ctx);
                        then(act, Ok(()));
                    }
                    Err(e) => {
                        warn!(error = %e, "could not read integrations; keeping the running projects");
                        then(act, Err(e.to_string()));
                    }
                }),
        );
    }

    fn apply_integrations(&mut self, all: Vec<Integration>, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let now = Instant::now();
        let known: HashMap<i64, bool> = all.iter().map(|i| (i.project_id, i.is_active)).collect();
        self.http.set_webhook_keys(
            all.iter()
                .filter(|i| i.is_active)
                .filter_map(|i| {
                    let hash = i.webhook_token_sha256.as_deref()?;
                    let key = crate::http::parse_token_hash(hash);
                    if key.is_none() {
                        warn!(
                            project_id = i.project_id,
                            "webhook_token_sha256 is not 64 hex digits; its webhooks are refused"
                        );
                    }
                    Some((i.project_id, key?))
                })
                .collect(),
        );
        // Stop what is gone or inactive.
        let gone: Vec<i64> = self
            .slots
            .keys()
            .filter(|id| known.get(id) != Some(&true))
            .copied()
            .collect();
        for project_id in gone {
            if let Some(slot) = self.slots.remove(&project_id)
                && let Some(addr) = slot.addr
            {
                addr.do_send(StopProject);
            }
            self.board.remove(project_id);
            if !known.contains_key(&project_id) {
                crate::metrics::metrics().forget_project(project_id);
                info!(
                    project_id,
                    "integration removed: project stopped and its queue purged"
                );
                let queue = self.queue.clone();
                ctx.spawn(
                    async move {
                        if let Err(e) = queue.purge(project_id).await {
                            warn!(project_id, error = %e, "could not purge the removed project's queue");
                        }
                    }
                    .into_actor(self),
                );
            } else {
                info!(project_id, "integration deactivated: project stopped");
            }
        }
        // Start what is new, restart what changed.
        for integration in all.into_iter().filter(|i| i.is_active) {
            let project_id = integration.project_id;
            for problem in &integration.status_mapping_errors {
                warn!(project_id, "status_mapping: {problem}");
            }
            let fingerprint = Self::fingerprint(&integration);
            match self.slots.get(&project_id) {
                None => self.start_project(integration, ctx),
                Some(slot) if slot.fingerprint != fingerprint => {
                    info!(project_id, "integration changed: restarting its project");
                    if let Some(addr) = &slot.addr {
                        addr.do_send(StopProject);
                    }
                    self.start_project(integration, ctx);
                }
                Some(slot) if slot.addr.is_none() && slot.failed_until.is_none_or(|t| t <= now) => {
                    self.start_project(integration, ctx);
                }
                Some(_) => {}
            }
        }
        notify::status(&self.status_line());
    }

    fn status_line(&self) -> String {
        format!(
            "{} projects, {} syncing{}",
            self.slots.len(),
            self.board.running_count(),
            if self.config_error.is_some() {
                "; last reload FAILED (see status)"
            } else {
                ""
            }
        )
    }

    fn reload(&mut self, ctx: &mut Context<Self>) -> Result<Vec<String>, String> {
        notify::reloading();
        let result = match Settings::load(&self.config_path, true) {
            Err(errors) => {
                let message = format!(
                    "reload of {} failed; still running on the previous config: {errors}",
                    self.config_path.display()
                );
                error!("{message}");
                self.config_error = Some(message.clone());
                Err(message)
            }
            Ok(new) => {
                let old = self.settings.clone();
                let restart = restart_required(&old, &new);
                if let Err(e) = self.http.apply_settings(&new.http) {
                    warn!("{e}");
                }
                if new.log.level != old.log.level
                    && let Err(e) = crate::telemetry::set_level(&new.log.level)
                {
                    warn!(error = %e, "could not change the log level");
                }
                let projects_affected = new.sync != old.sync;
                let reconcile_changed =
                    new.daemon.reconcile_interval_secs != old.daemon.reconcile_interval_secs;
                // Retry settings live in the queue handle: swap in one built with the new
                // values (same Redis and key prefix; those two need a restart).
                let mut queue_options = crate::queue::QueueOptions::from_settings(&new);
                queue_options.key_prefix = self.queue.options().key_prefix.clone();
                let queue_changed = queue_options != *self.queue.options();
                self.settings = Arc::new(new);
                if reconcile_changed {
                    self.arm_reconcile(ctx);
                }
                if queue_changed {
                    self.swap_queue(queue_options, old.redis.url.clone(), ctx);
                }
                self.config_error = None;
                self.restart_required = restart.clone();
                if !restart.is_empty() {
                    warn!(sections = ?restart, "these settings changed but apply only after a restart");
                }
                if projects_affected {
                    // Sync settings are baked into each project's client and scheduler.
                    for slot in self.slots.values_mut() {
                        slot.fingerprint = 0;
                    }
                }
                info!("config reloaded");
                Ok(restart)
            }
        };
        self.check_redis(ctx);
        notify::ready();
        notify::status(&self.status_line());
        result
    }

    /// Asks Redis again whether it keeps the queue on disk and does not evict it (an operator
    /// may have fixed it since); what is wrong goes to the log and to `status`.
    fn check_redis(&mut self, ctx: &mut Context<Self>) {
        let queue = self.queue.clone();
        ctx.spawn(
            async move { queue.durability_warnings().await }
                .into_actor(self)
                .map(|warnings, act, _| {
                    for w in &warnings {
                        warn!("{w}");
                    }
                    act.warnings = warnings;
                }),
        );
    }

    /// (Re)starts the periodic reconcile at `daemon.reconcile_interval_secs`.
    fn arm_reconcile(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.reconcile_timer.take() {
            ctx.cancel_future(timer);
        }
        let every = Duration::from_secs(self.settings.daemon.reconcile_interval_secs.max(1));
        self.reconcile_timer = Some(ctx.run_interval(every, |act, ctx| act.reconcile(ctx)));
    }

    /// Replaces the queue handle by one with new retry/lease options, then restarts the
    /// projects so their sync actors use it. On failure the old handle stays.
    fn swap_queue(
        &mut self,
        options: crate::queue::QueueOptions,
        redis_url: String,
        ctx: &mut Context<Self>,
    ) {
        let clock = self.clock.clone();
        ctx.spawn(
            async move { JobQueue::connect(&redis_url, options, clock).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(queue) => {
                        info!("queue retry and lease settings applied");
                        act.queue = queue;
                        for slot in act.slots.values_mut() {
                            slot.fingerprint = 0;
                        }
                        act.reconcile(ctx);
                    }
                    Err(e) => {
                        let message = format!(
                            "the new queue settings could not be applied ({e}); still using the previous ones"
                        );
                        warn!("{message}");
                        act.config_error = Some(message);
                    }
                }),
        );
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            // A second SIGTERM/SIGINT during the drain: stop waiting for the running jobs.
            if !self.abort.is_cancelled() {
                warn!("second stop signal: aborting running jobs now and handing them back");
                self.abort.cancel();
            }
            return;
        }
        self.shutting_down = true;
        self.http.set_readiness(Readiness::Stopping);
        notify::stopping();
        info!(
            grace_seconds = self.settings.shutdown.grace_seconds,
            "stopping: no new jobs; waiting for running ones"
        );
        self.stop.cancel();
        for slot in self.slots.values() {
            if let Some(addr) = &slot.addr {
                addr.do_send(StopProject);
            }
        }
        let tracker = self.tracker.clone();
        let abort = self.abort.clone();
        let done = self.done.clone();
        let grace = Duration::from_secs(self.settings.shutdown.grace_seconds);
        ctx.spawn(
            async move {
                tracker.close();
                if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
                    warn!("grace period over: aborting running jobs and handing them back to the queue");
                    abort.cancel();
                    let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
                }
                done.cancel();
            }
            .into_actor(self),
        );
    }
}

/// The settings that changed between `old` and `new` but apply only after a restart (shown
/// in `status` as `restart_required`); everything else applies live on reload.
pub fn restart_required(old: &Settings, new: &Settings) -> Vec<String> {
    let checks = [
        ("database", new.database != old.database),
        ("redis", new.redis != old.redis),
        ("control", new.control != old.control),
        ("log.format", new.log.format != old.log.format),
        ("http.listen", new.http.listen != old.http.listen),
        (
            "http.body_limit_bytes",
            new.http.body_limit_bytes != old.http.body_limit_bytes,
        ),
        (
            "http.request_timeout_secs",
            new.http.request_timeout_secs != old.http.request_timeout_secs,
        ),
        (
            "sync.push_sweep_secs",
            new.sync.push_sweep_secs != old.sync.push_sweep_secs,
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key.to_string())
        .collect()
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.reconcile(ctx);
        self.arm_reconcile(ctx);
        if let Some(period) = notify::watchdog_interval() {
            ctx.run_interval(period, |_, _| notify::watchdog());
        }
        ctx.run_interval(Duration::from_secs(10), |act, _| {
            notify::status(&act.status_line())
        });
        let sweep = Duration::from_secs(self.settings.sync.push_sweep_secs.max(1));
        ctx.run_later(Duration::from_secs(1), |act, ctx| act.sweep_outbox(ctx));
        ctx.run_interval(sweep, |act, ctx| act.sweep_outbox(ctx));
    }
}

impl Handler<DaemonEvent> for Supervisor {
    type Result = ();
    fn handle(&mut self, event: DaemonEvent, ctx: &mut Context<Self>) {
        match event {
            DaemonEvent::Control(call) => self.handle_control(call, ctx),
            DaemonEvent::Signal(Signal::Reload) => {
                let _ = self.reload(ctx);
                self.reconcile(ctx);
            }
            DaemonEvent::Signal(Signal::Terminate) => self.shutdown(ctx),
            DaemonEvent::Reconcile => self.reconcile(ctx),
            DaemonEvent::Webhook(due) => self.webhook(due, ctx),
            DaemonEvent::OutboxChanged(project_id) => self.enqueue_push(project_id, ctx),
        }
    }
}

impl Handler<ProjectStopped> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ProjectStopped, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(&msg.project_id) else {
            return;
        };
        if slot.generation != msg.generation {
            return; // an older start of this project; already replaced
        }
        slot.addr = None;
        if !msg.crashed || self.shutting_down {
            return;
        }
        let now = Instant::now();
        let window = Duration::from_secs(self.settings.daemon.restart_window_secs);
        while slot
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            slot.restarts.pop_front();
        }
        slot.restarts.push_back(now);
        slot.total_restarts += 1;
        let project_id = msg.project_id;
        if slot.restarts.len() as u32 > self.settings.daemon.restart_max {
            slot.failed_until = Some(now + FAILED_RETRY);
            self.board
                .update(project_id, |p| p.state = LiveState::Failed);
            error!(
                project_id,
                retry_in_secs = FAILED_RETRY.as_secs(),
                "project keeps failing; restart budget spent, marked failed"
            );
            ctx.run_later(FAILED_RETRY, |act, ctx| act.reconcile(ctx));
        } else {
            let delay = Duration::from_secs(1 << slot.restarts.len().min(5));
            warn!(
                project_id,
                restart_in_secs = delay.as_secs(),
                "project stopped unexpectedly; restarting"
            );
            self.board
                .update(project_id, |p| p.restarts = p.restarts.saturating_add(1));
            ctx.run_later(delay, |act, ctx| act.reconcile(ctx));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_required_names_only_what_cannot_change_live() {
        let old = Settings::default();
        assert!(restart_required(&old, &old).is_empty());
        let mut new = old.clone();
        new.log.level = "debug".into();
        new.sync.max_attempts = 7;
        new.http.webhook_debounce_ms = 50;
        assert!(restart_required(&old, &new).is_empty(), "these apply live");
        new.database.pool_size = 3;
        new.http.listen = "127.0.0.1:1".into();
        new.log.format = crate::config::LogFormat::Json;
        assert_eq!(
            restart_required(&old, &new),
            vec!["database", "log.format", "http.listen"]
        );
    }
}
