//! Prometheus metrics of the daemon (`GET /metrics`), built on `prometheus-client`.
//!
//! One process-wide [`Metrics`] ([`metrics()`]): the places that see an event count it where it
//! happens (the job runner, the RetailCRM client, the sync engine's commits, the webhook
//! handler), without threading a handle through every layer, which is how the field's metric
//! crates are used. Gauges that describe *state* (queue sizes, history lag, last success,
//! freshness) are set from the supervisor's `status` answer when `/metrics` is scraped
//! ([`Metrics::observe_status`]), so they are never stale and a removed project's series vanish
//! with it. Counters of a removed project are dropped by [`Metrics::forget_project`].
//!
//! Every name is prefixed `retailcrm_sync_`; README.md ("Metrics") documents each family with
//! an example alert.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::control::protocol::DaemonStatus;
use crate::model::Stream;

/// `{project_id}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectLabel {
    pub project_id: i64,
}

/// `{project_id, kind, outcome}` of `jobs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub project_id: i64,
    pub kind: String,
    pub outcome: String,
}

/// `{kind}` of `job_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// `{project_id, state}` of `queue_jobs`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub project_id: i64,
    pub state: String,
}

/// `{project_id, endpoint, status}` of `crm_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CrmLabels {
    pub project_id: i64,
    pub endpoint: String,
    pub status: String,
}

/// `{project_id, table, op}` of `rows_written_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RowLabels {
    pub project_id: i64,
    pub table: String,
    pub op: String,
}

/// `{project_id, stream}` of `history_lag`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub project_id: i64,
    pub stream: String,
}

/// `{project_id, outcome}` of `webhooks_total`; `project_id` is `-1` for calls naming a project
/// that does not exist (so a prober cannot grow the series without bound).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub project_id: i64,
    pub outcome: String,
}

/// `{project_id, entity, outcome}` of `push_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    pub project_id: i64,
    pub entity: String,
    pub outcome: String,
}

/// `{project_id, state}` of `outbox_rows`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboxLabels {
    pub project_id: i64,
    pub state: String,
}

/// The project a label set belongs to, for [`Metrics::forget_project`].
pub trait OfProject {
    /// The `project_id` label.
    fn project_id_of(&self) -> i64;
}

macro_rules! of_project {
    ($($t:ty),*) => { $(impl OfProject for $t { fn project_id_of(&self) -> i64 { self.project_id } })* };
}
of_project!(
    ProjectLabel,
    JobLabels,
    QueueLabels,
    CrmLabels,
    RowLabels,
    StreamLabels,
    WebhookLabels,
    PushLabels
);

/// A counter family that remembers its label sets, so one project's series can be dropped
/// (`prometheus-client` families have `remove` but no way to list what they hold).
pub struct ProjectCounters<L: Clone + Hash + Eq> {
    family: Family<L, Counter>,
    seen: Mutex<HashSet<L>>,
}

impl<L> ProjectCounters<L>
where
    L: Clone + Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static + OfProject,
{
    fn new() -> Self {
        ProjectCounters {
            family: Family::default(),
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// Adds `by` to the series `labels`.
    pub fn inc_by(&self, labels: L, by: u64) {
        self.family.get_or_create(&labels).inc_by(by);
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(labels);
    }

    /// Adds one to the series `labels`.
    pub fn inc(&self, labels: L) {
        self.inc_by(labels, 1);
    }

    /// The current value of a series (0 when absent); for tests and the bench.
    pub fn get(&self, labels: &L) -> u64 {
        self.family.get(labels).map_or(0, |c| c.get())
    }

    fn forget(&self, project_id: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|l| {
            if l.project_id_of() == project_id {
                self.family.remove(l);
                false
            } else {
                true
            }
        });
    }
}

type DurationFamily = Family<KindLabel, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 50 ms .. ~14 min
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

/// Every family the daemon exports.
pub struct Metrics {
    registry: Registry,
    /// `jobs_total{project_id,kind,outcome}`: job attempts by how they ended.
    pub jobs: ProjectCounters<JobLabels>,
    /// `job_duration_seconds{kind}`.
    pub job_duration: DurationFamily,
    /// `crm_requests_total{project_id,endpoint,status}`.
    pub crm_requests: ProjectCounters<CrmLabels>,
    /// `crm_rate_limited_total{project_id}`.
    pub crm_rate_limited: ProjectCounters<ProjectLabel>,
    /// `rows_written_total{project_id,table,op}`.
    pub rows_written: ProjectCounters<RowLabels>,
    /// `dead_records_total{project_id}`: records set aside in `dead_records`.
    pub dead_records: ProjectCounters<ProjectLabel>,
    /// `webhooks_total{project_id,outcome}`.
    pub webhooks: ProjectCounters<WebhookLabels>,
    /// `push_total{project_id,entity,outcome}`: outbox entities pushed (two-way sync).
    pub pushes: ProjectCounters<PushLabels>,
    /// `history_lag{project_id,stream}`: history records RetailCRM has beyond our cursor.
    pub history_lag: Family<StreamLabels, Gauge>,
    outbox_rows: Family<OutboxLabels, Gauge>,
    last_success: Family<ProjectLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    freshness: Family<ProjectLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue_jobs: Family<QueueLabels, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("retailcrm_sync");
        let m = Metrics {
            registry: Registry::default(),
            jobs: ProjectCounters::new(),
            job_duration: Family::new_with_constructor(duration_histogram),
            crm_requests: ProjectCounters::new(),
            crm_rate_limited: ProjectCounters::new(),
            rows_written: ProjectCounters::new(),
            dead_records: ProjectCounters::new(),
            webhooks: ProjectCounters::new(),
            pushes: ProjectCounters::new(),
            history_lag: Family::default(),
            outbox_rows: Family::default(),
            last_success: Family::default(),
            freshness: Family::default(),
            queue_jobs: Family::default(),
        };
        // Counters get `_total` appended by the encoder; units are appended as a suffix.
        registry.register(
            "jobs",
            "Job attempts by project, kind and outcome (succeeded, retrying, dead, handed_back, lease_lost)",
            m.jobs.family.clone(),
        );
        registry.register_with_unit(
            "job_duration",
            "Time one job attempt took, by kind",
            Unit::Seconds,
            m.job_duration.clone(),
        );
        registry.register(
            "crm_requests",
            "HTTP requests to RetailCRM by project, endpoint and HTTP status (or `error` when no answer came)",
            m.crm_requests.family.clone(),
        );
        registry.register(
            "crm_rate_limited",
            "RetailCRM answers that asked us to slow down (429 or 503)",
            m.crm_rate_limited.family.clone(),
        );
        registry.register(
            "rows_written",
            "Rows the sync committed to Postgres by project, table (orders, users) and op (created, updated, deleted)",
            m.rows_written.family.clone(),
        );
        registry.register(
            "dead_records",
            "RetailCRM records that could not be applied and were set aside in dead_records",
            m.dead_records.family.clone(),
        );
        registry.register(
            "webhooks",
            "Webhook calls by project and outcome (accepted, unauthorized, not_ready, too_large); project_id -1: no such project",
            m.webhooks.family.clone(),
        );
        registry.register(
            "history_lag",
            "History records RetailCRM has beyond our cursor, measured after each successful run",
            m.history_lag.clone(),
        );
        registry.register_with_unit(
            "last_success_timestamp",
            "Unix time of the project's last successful job",
            Unit::Seconds,
            m.last_success.clone(),
        );
        registry.register_with_unit(
            "freshness",
            "Age of the newest point in time up to which every RetailCRM change is known to be committed (start of the last successful walk of the stalest stream)",
            Unit::Seconds,
            m.freshness.clone(),
        );
        registry.register(
            "push",
            "Outbox entities pushed to RetailCRM by project, entity (customer, order) and outcome (sent, failed, conflict)",
            m.pushes.family.clone(),
        );
        registry.register(
            "outbox_rows",
            "Rows of the two-way sync outbox by project and state (pending, sent, failed, conflict)",
            m.outbox_rows.clone(),
        );
        registry.register(
            "queue_jobs",
            "Jobs in the project's queue by state (waiting, delayed, running, dead)",
            m.queue_jobs.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the state gauges from a `status` answer taken at `now`; projects not in it lose
    /// their gauge series.
    pub fn observe_status(&self, status: &DaemonStatus, now: DateTime<Utc>) {
        self.last_success.clear();
        self.freshness.clear();
        self.queue_jobs.clear();
        self.outbox_rows.clear();
        for p in &status.projects {
            if let Some(o) = &p.outbox {
                for (state, n) in [
                    ("pending", o.pending),
                    ("sent", o.sent),
                    ("failed", o.failed),
                    ("conflict", o.conflict),
                ] {
                    self.outbox_rows
                        .get_or_create(&OutboxLabels {
                            project_id: p.project_id,
                            state: state.to_string(),
                        })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            let project = ProjectLabel {
                project_id: p.project_id,
            };
            if let Some(at) = p.last_success_at {
                self.last_success
                    .get_or_create(&project)
                    .set(at.timestamp_millis() as f64 / 1000.0);
            }
            if let Some(at) = p.fresh_as_of {
                let age = (now - at).num_milliseconds().max(0) as f64 / 1000.0;
                self.freshness.get_or_create(&project).set(age);
            }
            let running = u64::from(p.running_job.is_some());
            for (state, n) in [
                ("waiting", p.queue_depth),
                ("delayed", p.delayed),
                ("running", running),
                ("dead", p.dead_jobs),
            ] {
                self.queue_jobs
                    .get_or_create(&QueueLabels {
                        project_id: p.project_id,
                        state: state.to_string(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// Records the history lag of one stream.
    pub fn set_history_lag(&self, project_id: i64, stream: Stream, lag: i64) {
        self.history_lag
            .get_or_create(&StreamLabels {
                project_id,
                stream: stream.to_string(),
            })
            .set(lag);
    }

    /// Records one finished job attempt.
    pub fn job_finished(&self, project_id: i64, kind: &str, outcome: &str, took: Duration) {
        self.jobs.inc(JobLabels {
            project_id,
            kind: kind.to_string(),
            outcome: outcome.to_string(),
        });
        self.job_duration
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records one request to RetailCRM; `status` is the HTTP status, `None` when no answer came.
    pub fn crm_request(&self, project_id: Option<i64>, endpoint: &str, status: Option<u16>) {
        let Some(project_id) = project_id else {
            return;
        };
        self.crm_requests.inc(CrmLabels {
            project_id,
            endpoint: endpoint.to_string(),
            status: status.map_or_else(|| "error".to_string(), |s| s.to_string()),
        });
        if matches!(status, Some(429 | 503)) {
            self.crm_rate_limited.inc(ProjectLabel { project_id });
        }
    }

    /// Records rows a commit wrote.
    pub fn rows(&self, project_id: i64, table: &str, op: &str, n: u64) {
        if n > 0 {
            self.rows_written.inc_by(
                RowLabels {
                    project_id,
                    table: table.to_string(),
                    op: op.to_string(),
                },
                n,
            );
        }
    }

    /// Records one webhook call.
    pub fn webhook(&self, project_id: Option<i64>, outcome: &str) {
        self.webhooks.inc(WebhookLabels {
            project_id: project_id.unwrap_or(-1),
            outcome: outcome.to_string(),
        });
    }

    /// Creates a project's counters at zero (so `rate()` and alerts see them before the first
    /// event).
    pub fn project_started(&self, project_id: i64) {
        self.crm_rate_limited.inc_by(ProjectLabel { project_id }, 0);
        self.dead_records.inc_by(ProjectLabel { project_id }, 0);
    }

    /// Records one pushed outbox entity (`outcome`: sent, failed, conflict).
    pub fn push(&self, project_id: i64, entity: &str, outcome: &str) {
        self.pushes.inc(PushLabels {
            project_id,
            entity: entity.to_string(),
            outcome: outcome.to_string(),
        });
    }

    /// Drops every series of a removed project.
    pub fn forget_project(&self, project_id: i64) {
        self.jobs.forget(project_id);
        self.crm_requests.forget(project_id);
        self.crm_rate_limited.forget(project_id);
        self.rows_written.forget(project_id);
        self.dead_records.forget(project_id);
        self.webhooks.forget(project_id);
        self.pushes.forget(project_id);
        for stream in Stream::ALL {
            self.history_lag.remove(&StreamLabels {
                project_id,
                stream: stream.to_string(),
            });
        }
    }

    /// The whole registry in the OpenMetrics text format (which Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forget_project_drops_only_its_series() {
        let m = Metrics::new();
        m.job_finished(7, "sync_all", "succeeded", Duration::from_millis(20));
        m.job_finished(8, "sync_all", "succeeded", Duration::from_millis(20));
        m.crm_request(Some(7), "/api/v5/orders", Some(503));
        m.rows(7, "orders", "created", 3);
        let before = m.encode();
        assert!(before.contains("project_id=\"7\""), "{before}");
        m.forget_project(7);
        let after = m.encode();
        assert!(!after.contains("project_id=\"7\""), "{after}");
        assert!(
            after.contains("retailcrm_sync_jobs_total{project_id=\"8\""),
            "{after}"
        );
    }

    #[test]
    fn rate_limited_answers_are_counted() {
        let m = Metrics::new();
        m.crm_request(Some(1), "/api/v5/orders/history", Some(200));
        m.crm_request(Some(1), "/api/v5/orders/history", Some(429));
        m.crm_request(Some(1), "/api/v5/orders/history", None);
        assert_eq!(m.crm_rate_limited.get(&ProjectLabel { project_id: 1 }), 1);
        let error = CrmLabels {
            project_id: 1,
            endpoint: "/api/v5/orders/history".into(),
            status: "error".into(),
        };
        assert_eq!(m.crm_requests.get(&error), 1);
    }
}
