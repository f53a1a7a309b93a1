//! The commands both listeners take (the control socket and the HTTP API): each [`Request`]
//! is answered here, in the supervisor's context, so `ctl`, `/api/v1/...` and `/metrics` see one
//! truth. The listeners only parse and authenticate; they never interpret a command themselves.

use std::time::Instant;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use super::Supervisor;
use crate::control::protocol::{
    DaemonStatus, ErrorCode, JobInfo, JobList, LastError, ProjectState, ProjectStatus, Request,
    Response, RunningJob, TriggerAccepted,
};
use crate::control::server::ControlCall;
use crate::daemon::board::LiveState;
use crate::daemon::project::{PauseProject, WakeProject};
use crate::http::WebhookDue;
use crate::queue::{Job, JobKind, NewJob, Trigger};

impl Supervisor {
    /// Enqueues a `push` job for the project (coalesced with a waiting one).
    pub(super) fn enqueue_push(&mut self, project_id: i64, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let Some(slot) = self.slots.get(&project_id) else {
            debug!(
                project_id,
                "outbox change for a project that is not running; it waits for it"
            );
            return;
        };
        let addr = slot.addr.clone();
        let queue = self.queue.clone();
        let job = NewJob {
            project_id,
            kind: JobKind::Push,
            since_id: None,
            trigger: Trigger::Outbox,
        };
        ctx.spawn(
            async move {
                match queue.enqueue(&job).await {
                    Ok(e) => {
                        debug!(project_id, job_id = %e.job_id, coalesced = e.coalesced, "push enqueued");
                        if let Some(addr) = addr {
                            addr.do_send(WakeProject);
                        }
                    }
                    Err(e) => warn!(project_id, error = %e, "could not enqueue a push; the outbox sweep tries again"),
                }
            }
            .into_actor(self),
        );
    }

    /// The outbox sweep: pushes what a missed NOTIFY left pending and refreshes the outbox
    /// counts of `status`.
    pub(super) fn sweep_outbox(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let store = self.store.clone();
        ctx.spawn(
            async move { (store.outbox_projects().await, store.outbox_counts().await) }
                .into_actor(self)
                .map(|(pending, counts), act, ctx| {
                    match counts {
                        Ok(counts) => {
                            let ids: Vec<i64> = act.slots.keys().copied().collect();
                            for id in ids {
                                let c = counts.get(&id).copied().unwrap_or_default();
                                act.board.update(id, |p| {
                                    p.outbox = Some(crate::control::protocol::OutboxDepth {
                                        pending: c.pending,
                                        sent: c.sent,
                                        failed: c.failed,
                                        conflict: c.conflict,
                                    })
                                });
                            }
                        }
                        Err(e) => debug!(error = %e, "outbox sweep: could not count rows"),
                    }
                    match pending {
                        Ok(ids) => {
                            for id in ids {
                                act.enqueue_push(id, ctx);
                            }
                        }
                        Err(e) => debug!(error = %e, "outbox sweep: could not read pending rows"),
                    }
                }),
        );
    }

    /// Enqueues the history walk a webhook burst asks for, coalesced with an identical
    /// waiting job. When Redis refuses, the burst goes back into the inbox and is tried again a
    /// second later, so a change is never left for the schedule alone.
    pub(super) fn webhook(&mut self, due: WebhookDue, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let project_id = due.project_id;
        let Some(slot) = self.slots.get(&project_id) else {
            debug!(
                project_id,
                "webhook for a project that is not running; ignored"
            );
            return;
        };
        let addr = slot.addr.clone();
        let kind = match (due.streams.orders, due.streams.customers) {
            (true, true) => JobKind::SyncAll,
            (true, false) => JobKind::SyncOrders,
            _ => JobKind::SyncCustomers,
        };
        let job = NewJob {
            project_id,
            kind,
            since_id: None,
            trigger: Trigger::Webhook,
        };
        let queue = self.queue.clone();
        let http = self.http.clone();
        ctx.spawn(
            async move {
                match queue.enqueue(&job).await {
                    Ok(e) => {
                        debug!(project_id, job_id = %e.job_id, coalesced = e.coalesced, calls = due.calls, "webhook: history walk enqueued");
                        if let Some(addr) = addr {
                            addr.do_send(WakeProject);
                        }
                    }
                    Err(e) => {
                        warn!(project_id, error = %e, "webhook: could not enqueue the history walk; trying again in 1 s");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        http.inbox.mark(project_id, due.streams);
                    }
                }
            }
            .into_actor(self),
        );
    }

    pub(super) fn handle_control(&mut self, call: ControlCall, ctx: &mut Context<Self>) {
        let ControlCall { request, reply, .. } = call;
        let answer = |resp: Response| {
            let _ = reply.send(resp);
        };
        match request {
            Request::Ping => answer(Response::ok(serde_json::json!({ "pong": true }))),
            Request::Version => answer(Response::ok(
                serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "pid": std::process::id() }),
            )),
            Request::Reload => {
                // Integrations are re-read even when the file is bad: they do not depend on it.
                let reloaded = self.reload(ctx);
                self.reconcile_then(ctx, move |_, integrations| {
                    answer(match (reloaded, integrations) {
                        (Err(message), _) => Response::error(ErrorCode::Invalid, message),
                        (Ok(_), Err(e)) => Response::error(
                            ErrorCode::Unavailable,
                            format!(
                                "config reloaded, but the integrations could not be read ({e}); \
                                 the running projects stay as they were"
                            ),
                        ),
                        (Ok(restart), Ok(())) => Response::ok(serde_json::json!({
                            "reloaded": true,
                            "restart_required": restart
                        })),
                    })
                });
            }
            Request::Status { project_id } => {
                if let Some(id) = project_id
                    && !self.slots.contains_key(&id)
                {
                    return answer(not_found(id));
                }
                let fut = self.status(project_id);
                ctx.spawn(async move { answer(Response::ok(fut.await)) }.into_actor(self));
            }
            Request::Trigger {
                project_id,
                kind,
                entity_id,
                since_id,
            } => {
                // A project between restarts (or failed) still takes jobs: they wait in the
                // queue and run when its actor is back.
                let Some(addr) = self.slots.get(&project_id).map(|s| s.addr.clone()) else {
                    return answer(not_found(project_id));
                };
                let kind = match parse_kind(&kind, entity_id) {
                    Ok(k) => k,
                    Err(msg) => return answer(Response::error(ErrorCode::Invalid, msg)),
                };
                let queue = self.queue.clone();
                let job = NewJob {
                    project_id,
                    kind,
                    since_id,
                    trigger: Trigger::Manual,
                };
                ctx.spawn(
                    async move {
                        match queue.enqueue(&job).await {
                            Ok(e) => {
                                if let Some(addr) = addr {
                                    addr.do_send(WakeProject);
                                }
                                answer(Response::ok(TriggerAccepted {
                                    job_id: e.job_id,
                                    coalesced: e.coalesced,
                                }));
                            }
                            Err(e) => {
                                answer(Response::error(ErrorCode::Unavailable, e.to_string()))
                            }
                        }
                    }
                    .into_actor(self),
                );
            }
            Request::Jobs { project_id, limit } => {
                if !self.slots.contains_key(&project_id) {
                    return answer(not_found(project_id));
                }
                let queue = self.queue.clone();
                let limit = limit.unwrap_or(20);
                ctx.spawn(
                    async move {
                        let res =
                            async {
                                let stats = queue.stats(project_id).await?;
                                let pending = queue.pending(project_id, limit).await?;
                                let completed = queue.completed(project_id, limit).await?;
                                let mut jobs: Vec<JobInfo> = stats
                                    .active
                                    .iter()
                                    .map(|a| {
                                        job_info(
                                            &a.job,
                                            "running",
                                            Some(a.deadline),
                                            a.job.last_error.clone(),
                                        )
                                    })
                                    .collect();
                                jobs.extend(pending.iter().map(|p| {
                                    let state = if p.delayed { "delayed" } else { "waiting" };
                                    job_info(&p.job, state, p.run_at, None)
                                }));
                                jobs.extend(completed.iter().map(|c| {
                                    job_info(&c.job, "completed", Some(c.finished_at), None)
                                }));
                                Ok::<_, crate::queue::QueueError>(JobList { project_id, jobs })
                            }
                            .await;
                        answer(match res {
                            Ok(v) => Response::ok(v),
                            Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
                        })
                    }
                    .into_actor(self),
                );
            }
            Request::Dead { project_id, limit } => {
                let queue = self.queue.clone();
                let limit = limit.unwrap_or(50);
                ctx.spawn(
                    async move {
                        answer(match queue.dead_jobs(project_id, limit).await {
                            Ok(dead) => Response::ok(JobList {
                                project_id,
                                jobs: dead
                                    .iter()
                                    .map(|d| {
                                        job_info(
                                            &d.job,
                                            "dead",
                                            Some(d.died_at),
                                            Some(format!("{:?}: {}", d.reason, d.error)),
                                        )
                                    })
                                    .collect(),
                            }),
                            Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
                        })
                    }
                    .into_actor(self),
                );
            }
            Request::Retry { project_id, job_id } => {
                let addr = self.slots.get(&project_id).and_then(|s| s.addr.clone());
                let queue = self.queue.clone();
                ctx.spawn(
                    async move {
                        answer(match queue.requeue_dead(project_id, &job_id).await {
                            Ok(true) => {
                                if let Some(addr) = addr {
                                    addr.do_send(WakeProject);
                                }
                                Response::ok(serde_json::json!({ "requeued": job_id }))
                            }
                            Ok(false) => Response::error(
                                ErrorCode::NotFound,
                                format!("no dead job {job_id} in project {project_id}; list them with `retailcrm-sync ctl dead {project_id}`"),
                            ),
                            Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
                        })
                    }
                    .into_actor(self),
                );
            }
            Request::Outbox { project_id, limit } => {
                let store = self.store.clone();
                let limit = limit.unwrap_or(50).clamp(1, 1000) as i64;
                ctx.spawn(
                    async move {
                        let res = async {
                            let counts = store.outbox_counts().await?;
                            let rows = store
                                .outbox_rows(project_id, &["failed", "conflict", "pending"], limit)
                                .await?;
                            Ok::<_, crate::store::StoreError>((counts, rows))
                        }
                        .await;
                        answer(match res {
                            Ok((counts, rows)) => Response::ok(serde_json::json!({
                                "project_id": project_id,
                                "counts": counts.get(&project_id).copied().unwrap_or_default(),
                                "rows": rows,
                            })),
                            Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
                        })
                    }
                    .into_actor(self),
                );
            }
            Request::OutboxRetry { project_id, ids } => {
                let store = self.store.clone();
                ctx.spawn(
                    async move { store.retry_outbox(project_id, ids.as_deref()).await }
                        .into_actor(self)
                        .map(move |res, act, ctx| match res {
                            Ok(n) => {
                                if n > 0 {
                                    act.enqueue_push(project_id, ctx);
                                }
                                answer(Response::ok(
                                    serde_json::json!({ "project_id": project_id, "requeued": n }),
                                ));
                            }
                            Err(e) => {
                                answer(Response::error(ErrorCode::Unavailable, e.to_string()))
                            }
                        }),
                );
            }
            Request::Pause { project_id } | Request::Resume { project_id } => {
                let pause = matches!(request, Request::Pause { .. });
                let Some(slot) = self.slots.get_mut(&project_id) else {
                    return answer(not_found(project_id));
                };
                slot.paused = pause;
                if let Some(addr) = &slot.addr {
                    addr.do_send(PauseProject(pause));
                }
                info!(
                    project_id,
                    paused = pause,
                    "project {}",
                    if pause { "paused" } else { "resumed" }
                );
                answer(Response::ok(
                    serde_json::json!({ "project_id": project_id, "paused": pause }),
                ));
            }
        }
    }

    /// Builds the `status` answer: the board, the slots and each project's queue counts.
    pub(super) fn status(
        &self,
        only: Option<i64>,
    ) -> impl std::future::Future<Output = DaemonStatus> + 'static {
        let mut ids: Vec<i64> = self
            .slots
            .keys()
            .copied()
            .filter(|id| only.is_none_or(|o| o == *id))
            .collect();
        ids.sort_unstable();
        let now = Instant::now();
        let slots: Vec<(i64, bool, bool, u32)> = ids
            .iter()
            .map(|id| {
                let s = &self.slots[id];
                (
                    *id,
                    s.paused,
                    s.failed_until.is_some_and(|t| t > now),
                    s.total_restarts,
                )
            })
            .collect();
        let board = self.board.clone();
        let queue = self.queue.clone();
        let base = DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            started_at: self.started_at,
            config_path: self.config_path.display().to_string(),
            config_error: self.config_error.clone(),
            restart_required: self.restart_required.clone(),
            warnings: self.warnings.clone(),
            http_listen: self.http.bound_addr().map(|a| a.to_string()),
            projects: Vec::new(),
        };
        async move {
            let mut status = base;
            for (project_id, paused, failed, restarts) in slots {
                let live = board.get(project_id);
                let stats = queue.stats(project_id).await.ok();
                let state = match (&live, paused, failed) {
                    (_, _, true) => ProjectState::Failed,
                    (Some(l), _, _) if l.running.is_some() => ProjectState::Running,
                    (_, true, _) => ProjectState::Paused,
                    (Some(l), _, _) if l.state == LiveState::Failed => ProjectState::Failed,
                    (Some(l), _, _) if l.state == LiveState::Starting => ProjectState::Starting,
                    _ => ProjectState::Idle,
                };
                status.projects.push(ProjectStatus {
                    project_id,
                    name: live.as_ref().and_then(|l| l.name.clone()),
                    state,
                    running_job: live.as_ref().and_then(|l| l.running.as_ref()).map(|j| {
                        let p = j.progress.snapshot();
                        RunningJob {
                            job_id: j.job_id.clone(),
                            kind: j.kind.clone(),
                            started_at: j.started_at,
                            progress: crate::control::protocol::Progress {
                                stream: p.stream.map(|s| s.to_string()),
                                done: p.done,
                                total: p.total,
                                phase: p.phase,
                            },
                        }
                    }),
                    last_success_at: live.as_ref().and_then(|l| l.last_success_at),
                    fresh_as_of: live.as_ref().and_then(|l| l.fresh_as_of()),
                    last_error: live.as_ref().and_then(|l| l.last_error.as_ref()).map(|e| {
                        LastError {
                            at: e.at,
                            message: e.message.clone(),
                            permanent: e.permanent,
                        }
                    }),
                    last_finished: live.as_ref().and_then(|l| l.last_finished.clone()),
                    next_run_at: live.as_ref().and_then(|l| l.next_run_at),
                    queue_depth: stats.as_ref().map_or(0, |s| s.waiting),
                    delayed: stats.as_ref().map_or(0, |s| s.delayed),
                    dead_jobs: stats.as_ref().map_or(0, |s| s.dead),
                    cursor_lag: live.as_ref().and_then(|l| l.cursor_lag),
                    restarts,
                    outbox: live.as_ref().and_then(|l| l.outbox),
                });
            }
            status
        }
    }
}
fn job_info(
    job: &Job,
    state: &str,
    run_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
) -> JobInfo {
    JobInfo {
        job_id: job.id.clone(),
        kind: job.kind.to_string(),
        state: state.to_string(),
        // The queue counts failed attempts; a running job is in one more, a completed job's
        // last attempt succeeded.
        attempts: if matches!(state, "running" | "completed") {
            job.attempts.saturating_add(1)
        } else {
            job.attempts
        },
        enqueued_at: Some(job.enqueued_at),
        run_at,
        last_error: last_error.or_else(|| job.last_error.clone()),
        entity_id: match job.kind {
            JobKind::SyncOrder { id } | JobKind::SyncCustomer { id } => Some(id),
            _ => None,
        },
    }
}

fn not_found(project_id: i64) -> Response {
    Response::error(
        ErrorCode::NotFound,
        format!(
            "no active project {project_id}; see `retailcrm-sync integration list` \
             (is the integration active? run `retailcrm-sync ctl reload` after changing it)"
        ),
    )
}

/// Parses a control-socket job kind.
pub fn parse_kind(kind: &str, entity_id: Option<i64>) -> Result<JobKind, String> {
    let need_id = |what: &str| {
        entity_id.ok_or_else(|| format!("`{what}` needs an entity id (--entity-id N)"))
    };
    Ok(match kind {
        "sync_orders" => JobKind::SyncOrders,
        "sync_customers" => JobKind::SyncCustomers,
        "sync_all" => JobKind::SyncAll,
        "sync_order" => JobKind::SyncOrder { id: need_id(kind)? },
        "sync_customer" => JobKind::SyncCustomer { id: need_id(kind)? },
        "resync_orders" => JobKind::ResyncOrders,
        "resync_customers" => JobKind::ResyncCustomers,
        "resync_all" => JobKind::ResyncAll,
        "push" => JobKind::Push,
        other => {
            return Err(format!(
                "unknown job kind `{other}`; use one of: {}",
                crate::control::protocol::TRIGGER_KINDS.join(", ")
            ));
        }
    })
}
