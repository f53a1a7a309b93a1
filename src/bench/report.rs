//! The bench report: one serde structure per measured section (printed as JSON) and a readable
//! table that puts every figure next to its target. Targets are goals, not assertions: a missed
//! target is shown as `MISS`, never as a failure of the command.

use serde::Serialize;

use super::baseline::Baselines;
use super::daemon::CommitTime;
use crate::mock::MutationReport;

/// Bytes per MiB, for RSS figures.
const KIB_PER_MIB: f64 = 1024.0;

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / KIB_PER_MIB
}

/// Everything one bench run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// Whether `--quick` sizes were used.
    pub quick: bool,
    /// CPUs available to this machine.
    pub cpus: usize,
    /// Name of the (dropped) bench database.
    pub database: String,
    /// 1. Full sync through the daemon.
    pub full_sync: Option<FullSync>,
    /// 2. Raw Postgres baselines on the same rows.
    pub limits: Option<Limits>,
    /// 3. Sync against a throttled mock.
    pub api_bound: Option<ApiBound>,
    /// 4. Incremental sync after changes.
    pub incremental: Option<Incremental>,
    /// 5. Many projects on one daemon.
    pub many_projects: Option<ManyProjects>,
    /// 6. Peak RSS at two account sizes.
    pub memory: Option<MemoryFlatness>,
    /// 7. Time from a change in RetailCRM to its row committed, with and without webhooks.
    pub freshness: Option<Freshness>,
    /// 8. Two-way sync: outbox rows pushed against a throttled mock.
    pub push: Option<PushThroughput>,
    /// Sections that failed or were skipped, with the reason.
    pub errors: Vec<SectionError>,
    /// Every figure that has a target, with its verdict.
    pub targets: Vec<TargetRow>,
}

/// Section 8: outbox rows pushed to a mock at `rps` requests per second.
#[derive(Debug, Clone, Serialize)]
pub struct PushThroughput {
    /// Outbox rows written (one e-mail edit of a different user each).
    pub rows: u64,
    /// Rows that ended `sent`.
    pub sent: u64,
    /// Mock rate limit and daemon pacing.
    pub rps: f64,
    /// Seconds from the rows' commit until none was pending.
    pub wall_secs: f64,
    /// `rows / wall_secs`.
    pub rows_per_sec: f64,
    /// Requests the mock served meanwhile (edits and conflict-detection history pages).
    pub requests_served: u64,
    /// Requests answered 503.
    pub requests_rate_limited: u64,
    /// `requests_served / rps`.
    pub floor_secs: f64,
    /// `wall_secs / floor_secs`.
    pub ratio_to_floor: f64,
    /// `rows / rps`: one request per row.
    pub ideal_floor_secs: f64,
}

/// A section that did not produce figures.
#[derive(Debug, Clone, Serialize)]
pub struct SectionError {
    /// Section name (`full_sync`, ...).
    pub section: String,
    /// Why.
    pub message: String,
}

/// Section 1.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FullSync {
    /// Orders in the mock account.
    pub orders: u64,
    /// Customers in the mock account.
    pub customers: u64,
    /// Rows in `orders` for the project after the sync.
    pub orders_stored: u64,
    /// Rows in `users` for the project after the sync.
    pub users_stored: u64,
    /// Records set aside in `dead_records` (the mock generates a few unusable ones).
    pub poison_records: u64,
    /// Seconds from spawn to the daemon listing the project.
    pub ready_secs: f64,
    /// Seconds from `trigger sync_all` to the job finishing.
    pub wall_secs: f64,
    /// Orders / wall time of the whole `sync_all`.
    pub orders_per_sec: f64,
    /// Customers / wall time of the whole `sync_all`.
    pub customers_per_sec: f64,
    /// Seconds of the customers stream (trigger until the orders stream was seen).
    pub customers_stream_secs: Option<f64>,
    /// Seconds of the orders stream (first seen until the job finished).
    pub orders_stream_secs: Option<f64>,
    /// Orders / orders-stream time.
    pub orders_stream_per_sec: Option<f64>,
    /// Customers / customers-stream time.
    pub customers_stream_per_sec: Option<f64>,
    /// Requests the mock received during the job.
    pub http_requests: u64,
    /// Peak RSS of the daemon process (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// CPU seconds the daemon used during the job.
    pub daemon_cpu_secs: f64,
    /// CPU seconds the bench process (mock included) used during the job.
    pub bench_cpu_secs: f64,
    /// CPU seconds all `postgres` processes used during the job.
    pub postgres_cpu_secs: f64,
    /// `ANALYZE orders, users` runs the bench made during the job (`--analyze-every`).
    pub analyzes: Option<u64>,
    /// Per stream: batches, rows and the summed commit time, from the daemon's debug log.
    pub commit_times: std::collections::HashMap<String, CommitTime>,
}

/// Section 2.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Baseline rates.
    pub baselines: Baselines,
    /// Our orders rate used for the ratios (orders stream rate when known).
    pub our_orders_per_sec: f64,
    /// Our rate / batched upsert rate.
    pub ratio_to_upsert: f64,
    /// Our rate / COPY rate.
    pub ratio_to_copy: f64,
}

/// Section 3.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApiBound {
    /// Orders in the account.
    pub orders: u64,
    /// Customers in the account.
    pub customers: u64,
    /// Mock rate limit (requests per second).
    pub mock_rate_limit: f64,
    /// Daemon `sync.requests_per_second`.
    pub daemon_rps: f64,
    /// Seconds from trigger to finish.
    pub wall_secs: f64,
    /// Requests answered normally during the job (the work that had to be done).
    pub requests_served: u64,
    /// Requests answered 503 by the mock's limiter.
    pub requests_rate_limited: u64,
    /// `requests_served / mock_rate_limit`, seconds.
    pub floor_secs: f64,
    /// `wall_secs / floor_secs`.
    pub ratio_to_floor: f64,
    /// Whether the job succeeded.
    pub succeeded: bool,
}

/// Section 4.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Incremental {
    /// Changes applied to the mock.
    pub changes: u64,
    /// What they were.
    pub mutations: MutationReport,
    /// Seconds from trigger to the job finishing (rows committed).
    pub secs: f64,
    /// Requests the mock received during the job.
    pub http_requests: u64,
}

/// Section 5.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ManyProjects {
    /// Active integrations on the daemon.
    pub projects: u64,
    /// Orders in the shared mock account (each project syncs all of them).
    pub orders_per_project: u64,
    /// Customers in the shared mock account.
    pub customers_per_project: u64,
    /// Seconds from spawn to `status` listing every project out of `starting`.
    pub ready_secs: f64,
    /// Length of the idle window, seconds.
    pub idle_window_secs: f64,
    /// CPU used while idle, percent of one core.
    pub idle_cpu_percent: f64,
    /// RSS at the end of the idle window, MiB.
    pub idle_rss_mib: f64,
    /// Seconds from triggering every project to the last job finishing.
    pub sync_wall_secs: f64,
    /// Orders synced in total.
    pub total_orders: u64,
    /// Aggregate orders per second.
    pub orders_per_sec: f64,
    /// Aggregate customers per second.
    pub customers_per_sec: f64,
    /// Jobs that did not succeed.
    pub failed_jobs: u64,
    /// Peak RSS of the daemon, MiB.
    pub peak_rss_mib: f64,
}

/// Section 6.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryFlatness {
    /// Orders of the base run (section 1).
    pub base_orders: u64,
    /// Its peak RSS, MiB.
    pub base_peak_rss_mib: f64,
    /// Orders of the large run.
    pub large_orders: u64,
    /// Customers of the large run.
    pub large_customers: u64,
    /// Its peak RSS, MiB.
    pub large_peak_rss_mib: f64,
    /// Seconds of the large sync.
    pub large_wall_secs: f64,
    /// Orders per second of the large sync.
    pub large_orders_per_sec: f64,
    /// `(large / base - 1) * 100`.
    pub growth_percent: f64,
}

/// Section 7: how long after a change in RetailCRM its row is committed in Postgres.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Freshness {
    /// Orders in the mock account.
    pub orders: u64,
    /// Customers in the mock account.
    pub customers: u64,
    /// With the mock's trigger calling the daemon's webhook (`None`: that part failed).
    pub webhooks: Option<FreshnessRun>,
    /// Without webhooks: the periodic sync picks the changes up (`None`: failed or skipped).
    pub schedule: Option<FreshnessRun>,
}

/// One run of changes made one at a time, each awaited until committed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FreshnessRun {
    /// Changes made.
    pub changes: u64,
    /// Of which order status changes.
    pub status_changes: u64,
    /// Of which new orders.
    pub new_orders: u64,
    /// Of which customer edits (first name).
    pub customer_edits: u64,
    /// Changes seen committed within the timeout.
    pub committed: u64,
    /// Changes not seen committed within the timeout.
    pub misses: u64,
    /// The per-change timeout, seconds.
    pub timeout_secs: f64,
    /// True when the run stopped after several misses in a row (the rest was not made).
    pub stopped_early: bool,
    /// Median latency of the committed changes, seconds (nearest rank).
    pub p50_secs: f64,
    /// 99th percentile, seconds (nearest rank).
    pub p99_secs: f64,
    /// Slowest, seconds.
    pub max_secs: f64,
    /// Mean, seconds.
    pub mean_secs: f64,
    /// Sync runs (`sync_runs` rows) with the trigger below started during the run.
    pub history_walks: u64,
    /// The trigger of those runs: `webhook` or `schedule`.
    pub walk_trigger: String,
    /// `http.webhook_debounce_ms` of the daemon (webhook run).
    pub webhook_debounce_ms: Option<u64>,
    /// Trigger calls the mock sent and the daemon answered 2xx (webhook run).
    pub webhook_calls_sent: u64,
    /// Trigger calls that failed (webhook run).
    pub webhook_calls_failed: u64,
    /// The schedule's interval, seconds (schedule run: `sync_interval_minutes` 1 x
    /// `sync.minute_secs`).
    pub interval_secs: Option<f64>,
    /// Before each change the bench paused a fraction of this span (spread evenly over the
    /// changes), seconds, so the changes fall at every phase of the daemon's timers.
    pub pause_span_secs: f64,
    /// Every committed change's latency in the order made, milliseconds.
    pub latencies_ms: Vec<f64>,
}

impl FreshnessRun {
    /// Fills the latency figures from `latencies` (seconds, in the order made).
    pub fn set_latencies(&mut self, latencies: &[f64]) {
        let mut sorted = latencies.to_vec();
        sorted.sort_by(f64::total_cmp);
        self.committed = sorted.len() as u64;
        self.p50_secs = percentile(&sorted, 0.50);
        self.p99_secs = percentile(&sorted, 0.99);
        self.max_secs = sorted.last().copied().unwrap_or(0.0);
        self.mean_secs = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
        self.latencies_ms = latencies.iter().map(|s| (s * 1e6).round() / 1e3).collect();
    }
}

/// The nearest-rank `q` quantile of ascending `sorted` (0 when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One figure against its target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    /// What is measured.
    pub figure: String,
    /// The measured value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The target, as text (`>= 10000`).
    pub target: String,
    /// Whether the target is met.
    pub met: bool,
}

impl Report {
    /// Fills [`Report::targets`] from the sections present.
    pub fn evaluate(&mut self) {
        let mut rows = Vec::new();
        let mut row = |figure: &str, value: f64, unit: &str, target: String, met: bool| {
            rows.push(TargetRow {
                figure: figure.to_string(),
                value,
                unit: unit.to_string(),
                target,
                met,
            })
        };
        if let Some(f) = &self.full_sync {
            row(
                "full sync orders/s (whole sync_all)",
                f.orders_per_sec,
                "orders/s",
                ">= 10000".into(),
                f.orders_per_sec >= 10_000.0,
            );
            if let Some(rate) = f.orders_stream_per_sec {
                row(
                    "full sync orders/s (orders stream)",
                    rate,
                    "orders/s",
                    ">= 10000".into(),
                    rate >= 10_000.0,
                );
            }
        }
        if let Some(l) = &self.limits {
            row(
                "ours / raw batched upsert",
                l.ratio_to_upsert,
                "x",
                ">= 0.40".into(),
                l.ratio_to_upsert >= 0.40,
            );
            row("ours / COPY", l.ratio_to_copy, "x", "(info)".into(), true);
        }
        if let Some(a) = &self.api_bound {
            row(
                "API-bound time / floor",
                a.ratio_to_floor,
                "x",
                "<= 1.05".into(),
                a.succeeded && a.ratio_to_floor <= 1.05,
            );
        }
        if let Some(p) = &self.push {
            row(
                "push time / API floor",
                p.ratio_to_floor,
                "x",
                "<= 1.10".into(),
                p.sent == p.rows && p.ratio_to_floor <= 1.10,
            );
        }
        if let Some(i) = &self.incremental {
            row(
                "incremental changes committed",
                i.secs,
                "s",
                "< 3".into(),
                i.secs < 3.0,
            );
        }
        if let Some(m) = &self.many_projects {
            row(
                "projects READY",
                m.ready_secs,
                "s",
                "< 2".into(),
                m.ready_secs < 2.0,
            );
            row(
                "projects idle CPU",
                m.idle_cpu_percent,
                "% core",
                "< 1".into(),
                m.idle_cpu_percent < 1.0,
            );
            row(
                "projects idle RSS",
                m.idle_rss_mib,
                "MiB",
                "< 150".into(),
                m.idle_rss_mib < 150.0,
            );
        }
        if let Some(m) = &self.memory {
            row(
                &format!("peak RSS at {} orders", m.large_orders),
                m.large_peak_rss_mib,
                "MiB",
                "< 100".into(),
                m.large_peak_rss_mib < 100.0,
            );
            row(
                &format!(
                    "peak RSS growth {} -> {} orders",
                    m.base_orders, m.large_orders
                ),
                m.growth_percent,
                "%",
                "<= 10".into(),
                m.growth_percent <= 10.0,
            );
        }
        if let Some(f) = &self.freshness {
            if let Some(w) = &f.webhooks {
                let ok = w.misses == 0 && w.committed > 0;
                row(
                    "freshness p99 with webhooks",
                    w.p99_secs,
                    "s",
                    "< 2".into(),
                    ok && w.p99_secs < 2.0,
                );
                row(
                    "freshness p99 with webhooks (moonshot)",
                    w.p99_secs,
                    "s",
                    "< 1".into(),
                    ok && w.p99_secs < 1.0,
                );
            }
            if let Some(s) = &f.schedule {
                row(
                    &format!(
                        "freshness p50, schedule every {:.0} s",
                        s.interval_secs.unwrap_or(0.0)
                    ),
                    s.p50_secs,
                    "s",
                    "(info)".into(),
                    true,
                );
            }
        }
        self.targets = rows;
    }

    /// The readable report: each section's figures, then the targets table.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "retailcrm-sync bench ({}; {} CPUs; started {})",
            if self.quick { "quick" } else { "full sizes" },
            self.cpus,
            self.started_at
        );
        if let Some(f) = &self.full_sync {
            let _ = writeln!(
                out,
                "\n1. full sync ({} orders, {} customers; stored {} orders, {} users, {} poison)\n   \
                 wall {:.2} s: {:.0} orders/s, {:.0} customers/s overall\n   \
                 customers stream {} ({}), orders stream {} ({})\n   \
                 {} HTTP requests, daemon peak RSS {:.1} MiB, ready in {:.2} s\n   \
                 CPU during the job: daemon {:.2} s, Postgres {:.2} s, bench+mock {:.2} s",
                f.orders,
                f.customers,
                f.orders_stored,
                f.users_stored,
                f.poison_records,
                f.wall_secs,
                f.orders_per_sec,
                f.customers_per_sec,
                secs(f.customers_stream_secs),
                rate(f.customers_stream_per_sec, "customers/s"),
                secs(f.orders_stream_secs),
                rate(f.orders_stream_per_sec, "orders/s"),
                f.http_requests,
                f.peak_rss_mib,
                f.ready_secs,
                f.daemon_cpu_secs,
                f.postgres_cpu_secs,
                f.bench_cpu_secs,
            );
            if let Some(n) = f.analyzes {
                let _ = writeln!(
                    out,
                    "   experiment: the bench ran ANALYZE orders, users {n} times during the job"
                );
            }
            let mut streams: Vec<_> = f.commit_times.iter().collect();
            streams.sort_by(|a, b| a.0.cmp(b.0));
            for (stream, t) in streams {
                let _ = writeln!(
                    out,
                    "   {stream}: {} batches committed in {:.2} s of writer time ({:.1} ms per \
                     batch of {:.0} rows)",
                    t.batches,
                    t.millis as f64 / 1000.0,
                    t.millis as f64 / t.batches.max(1) as f64,
                    t.rows as f64 / t.batches.max(1) as f64,
                );
            }
        }
        if let Some(l) = &self.limits {
            let b = &l.baselines;
            let _ = writeln!(
                out,
                "\n2. physical limits ({} order rows, batch {})\n   \
                 batched upsert {:.2} s = {:.0} rows/s; COPY {:.2} s = {:.0} rows/s\n   \
                 ours {:.0} orders/s = {:.2}x upsert, {:.2}x COPY",
                b.rows,
                b.batch_size,
                b.upsert_secs,
                b.upsert_rows_per_sec,
                b.copy_secs,
                b.copy_rows_per_sec,
                l.our_orders_per_sec,
                l.ratio_to_upsert,
                l.ratio_to_copy,
            );
        }
        if let Some(a) = &self.api_bound {
            let _ = writeln!(
                out,
                "\n3. API-bound ({} orders, {} customers; mock {} rps, daemon {} rps)\n   \
                 {:.2} s for {} served requests ({} answered 503): floor {:.2} s, ratio {:.3}{}",
                a.orders,
                a.customers,
                a.mock_rate_limit,
                a.daemon_rps,
                a.wall_secs,
                a.requests_served,
                a.requests_rate_limited,
                a.floor_secs,
                a.ratio_to_floor,
                if a.succeeded { "" } else { " (JOB FAILED)" },
            );
        }
        if let Some(i) = &self.incremental {
            let m = &i.mutations;
            let _ = writeln!(
                out,
                "\n4. incremental ({} changes: {} status, {} customer edits, {} new orders, {} new \
                 customers, {} deleted orders)\n   committed {:.3} s after trigger, {} HTTP requests",
                i.changes,
                m.status_changes,
                m.customer_edits,
                m.orders_created,
                m.customers_created,
                m.orders_deleted,
                i.secs,
                i.http_requests,
            );
        }
        if let Some(m) = &self.many_projects {
            let _ = writeln!(
                out,
                "\n5. many projects ({} projects x {} orders / {} customers)\n   \
                 READY {:.2} s; idle {:.0} s: CPU {:.2}% of a core, RSS {:.1} MiB\n   \
                 all syncing: {:.2} s, {:.0} orders/s, {:.0} customers/s aggregate, {} failed, \
                 peak RSS {:.1} MiB",
                m.projects,
                m.orders_per_project,
                m.customers_per_project,
                m.ready_secs,
                m.idle_window_secs,
                m.idle_cpu_percent,
                m.idle_rss_mib,
                m.sync_wall_secs,
                m.orders_per_sec,
                m.customers_per_sec,
                m.failed_jobs,
                m.peak_rss_mib,
            );
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                out,
                "\n6. memory flatness\n   peak RSS {:.1} MiB at {} orders, {:.1} MiB at {} orders \
                 ({:+.1}%); large sync {:.1} s = {:.0} orders/s",
                m.base_peak_rss_mib,
                m.base_orders,
                m.large_peak_rss_mib,
                m.large_orders,
                m.growth_percent,
                m.large_wall_secs,
                m.large_orders_per_sec,
            );
        }
        if let Some(p) = &self.push {
            let _ = writeln!(
                out,
                "\n8. two-way sync push ({} outbox rows, one e-mail edit each; mock and daemon {} rps)\n   \
                 {:.2} s until none pending ({} sent): {:.1} rows/s; {} served requests ({} answered \
                 503): floor {:.2} s, ratio {:.3}; one request per row would be {:.2} s",
                p.rows,
                p.rps,
                p.wall_secs,
                p.sent,
                p.rows_per_sec,
                p.requests_served,
                p.requests_rate_limited,
                p.floor_secs,
                p.ratio_to_floor,
                p.ideal_floor_secs,
            );
        }
        if let Some(f) = &self.freshness {
            let _ = writeln!(
                out,
                "\n7. freshness ({} orders, {} customers; changes one at a time in turn: status \
                 change, new order, customer edit; each timed from just before the change to its \
                 row seen committed, polled every {} ms)",
                f.orders, f.customers, FRESHNESS_POLL_MS,
            );
            if let Some(w) = &f.webhooks {
                let _ = writeln!(
                    out,
                    "   with webhooks (debounce {} ms; before each change a pause of 0 to \
                     {:.0} ms, spread evenly): {}\n   {} webhook history walks; {} trigger \
                     calls sent, {} failed",
                    w.webhook_debounce_ms.unwrap_or(0),
                    w.pause_span_secs * 1000.0,
                    freshness_line(w),
                    w.history_walks,
                    w.webhook_calls_sent,
                    w.webhook_calls_failed,
                );
            }
            if let Some(s) = &f.schedule {
                let interval = s.interval_secs.unwrap_or(0.0);
                let _ = writeln!(
                    out,
                    "   without webhooks, schedule every {interval:.0} s (sync_interval_minutes 1 \
                     x minute_secs {interval:.0}; before each change a pause of 0 to \
                     {interval:.0} s, spread evenly; expected p50 about {:.1} s): {}\n   {} \
                     scheduled history walks",
                    interval / 2.0,
                    freshness_line(s),
                    s.history_walks,
                );
            }
        }
        for e in &self.errors {
            let _ = writeln!(out, "\n{}: NOT MEASURED: {}", e.section, e.message);
        }
        let _ = writeln!(
            out,
            "\n{:<44} {:>14}  {:<10} verdict",
            "figure", "value", "target"
        );
        for t in &self.targets {
            let _ = writeln!(
                out,
                "{:<44} {:>14}  {:<10} {}",
                t.figure,
                format!("{} {}", fmt_value(t.value), t.unit),
                t.target,
                if t.target == "(info)" {
                    "-"
                } else if t.met {
                    "ok"
                } else {
                    "MISS"
                }
            );
        }
        out
    }
}

/// How often the freshness section polls Postgres for a change's row, milliseconds.
pub const FRESHNESS_POLL_MS: u64 = 5;

/// `N changes (a status, b new orders, c customer edits): p50 .., p99 .., max ..; misses`.
fn freshness_line(r: &FreshnessRun) -> String {
    format!(
        "{} changes ({} status, {} new orders, {} customer edits): p50 {:.3} s, p99 {:.3} s, \
         max {:.3} s (mean {:.3} s); {} misses (timeout {:.0} s){}",
        r.changes,
        r.status_changes,
        r.new_orders,
        r.customer_edits,
        r.p50_secs,
        r.p99_secs,
        r.max_secs,
        r.mean_secs,
        r.misses,
        r.timeout_secs,
        if r.stopped_early {
            "; STOPPED EARLY after misses in a row"
        } else {
            ""
        },
    )
}

/// A value with sensible precision.
fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Optional seconds.
fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |s| format!("{s:.2} s"))
}

/// Optional rate.
fn rate(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "n/a".to_string(), |r| format!("{r:.0} {unit}"))
}
