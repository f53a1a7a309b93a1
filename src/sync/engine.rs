//! The sync algorithm for one project (DESIGN.md section 4).
//!
//! Per stream (orders, customers) the cursor in Postgres says where we are:
//! - never synced: remember the newest history id (the *anchor*, found by a bounded search:
//!   [`crate::crm::anchor`]), then read the full list window by window (`engine::snapshot`), one
//!   committed batch per window (`snapshot_from` records where the next window starts, so an
//!   interrupted snapshot resumes there), then walk history from the anchor so changes made
//!   during the snapshot are not missed;
//! - synced: walk `/history` with `filter[sinceId]`, collect the changed ids, re-fetch the current
//!   entities by `filter[ids][]`, upsert them, mark deletions, and advance the cursor **in the same
//!   transaction** as the rows (compare-and-set on the cursor version, so two runs of one project
//!   can never interleave their writes).
//!
//! Fetching and writing are pipelined: a producer fetches batch N+1 while the writer commits
//! batch N, through a channel of [`PIPELINE_DEPTH`] batches (merged into one commit of at most
//! [`MAX_COMMIT_ROWS`] when the writer falls behind), so memory stays flat however large
//! the account. Both halves run inside the job's own future (joined, not spawned): dropping the
//! future (abort, shutdown) stops both. Each batch transaction, however, runs on its own small
//! task that the job awaits: a dropped job never cuts a transaction off half-way (which would
//! leave it open on a pooled connection, holding the cursor's row lock). The commit in flight
//! finishes or rolls back by itself; if it lands after the next run read the cursor, that run
//! gets [`SyncError::Conflict`] and is retried.
//!
//! # The snapshot does not page
//! A first sync reads the list in windows of creation time, each returned whole by one request,
//! so entities created or deleted meanwhile cannot shift an unchanged one out of sight, whatever
//! the list's sort order; see `engine::snapshot` for the method and why it is complete.
//!
//! Files: this one (the job: streams, walk, fetch, commit), `snapshot` (the first read by
//! creation-time windows), `batch` (the writer's unit of work and its merging), `history`
//! (what the walk keeps of each history record).
//!
//! # Order -> user links are resolved when an order is written
//! Customers sharing an e-mail or phone are one user (the store's rule). If the customer owning
//! that user later changes its e-mail/phone, the other customer's existing orders keep that
//! user until they change themselves, and a customer merged that way has no user of its own
//! until it changes (the store records no link for it).

mod batch;
mod history;
mod snapshot;

use batch::{Batch, Records, apply_pending};
use history::{HistoryWalk, entries_of};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::error::SyncError;
use super::mapping::{MappingContext, account_phone_country, map_customer, map_order};
use super::progress::Progress;
use crate::crm::types::{Customer, Order};
use crate::crm::{CrmClient, CrmError, Decoded, PoisonItem};
use crate::model::{PhoneCountry, Stream};
use crate::store::{Cursor, Integration, PoisonRecord, Store, StoreError};

/// Batches fetched ahead of the writer. Two keeps both sides busy with bounded memory.
pub const PIPELINE_DEPTH: usize = 4;

/// Most entities the writer commits in one transaction. When the writer falls behind, batches
/// that are already fetched and waiting in the channel are merged into one commit (adaptive
/// batching): each transaction has a fixed cost of a few statements, so fewer, larger commits
/// let the writer catch up, while an idle writer still commits every page as soon as it lands.
pub const MAX_COMMIT_ROWS: usize = 400;

/// RetailCRM's largest page, used for history and `filter[ids][]` re-fetches.
const MAX_LIMIT: u32 = 100;

/// What a job asks the engine to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobSpec {
    /// Orders stream; `since_id` replays history from that id (the seed's parameter).
    Orders { since_id: Option<i64> },
    /// Customers stream.
    Customers { since_id: Option<i64> },
    /// Customers, then orders (customers first so orders link to their users).
    All { since_id: Option<i64> },
    /// One order by RetailCRM id.
    Order { id: i64 },
    /// One customer by RetailCRM id.
    Customer { id: i64 },
    /// Full refresh of one stream (`None`: both, customers first): its cursor is reset, then
    /// it syncs as on the first day (anchor, snapshot, history). Rows are upserted, never
    /// dropped first, so the platform keeps its data while the refresh runs.
    Resync { stream: Option<Stream> },
}

/// What one run did; stored in `sync_runs.counts` and shown by `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Entities received from RetailCRM (list pages and re-fetches).
    pub fetched: u64,
    /// Rows inserted (users for customers, orders for orders).
    pub created: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows marked deleted.
    pub deleted: u64,
    /// Orders whose status code is not mapped (stored raw, counted).
    pub unmapped_statuses: u64,
    /// Users created from an order's contact data.
    pub users_created_from_orders: u64,
    /// Records stored aside in `dead_records`.
    pub poison: u64,
    /// History records walked.
    pub history_records: u64,
    /// HTTP requests made to RetailCRM.
    pub requests: u64,
    /// Streams skipped because the integration has them switched off.
    pub skipped_streams: Vec<Stream>,
    /// Orders left out because they were created before the integration's
    /// `orders_created_from`.
    #[serde(default)]
    pub filtered_out: u64,
    /// What a `push` job did (two-way sync); `None` for pulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<crate::sync::push::PushCounts>,
}

/// What one batch commit changed, for either stream.
struct CommitOutcome {
    created: u64,
    updated: u64,
    deleted: u64,
    users_created: u64,
    cursor: Cursor,
}

/// Runs jobs of one project. Cheap to build per job: it holds clones of shared handles.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    client: CrmClient,
    integration: Integration,
    page_size: u32,
    /// The queue job this engine runs, when it runs one (marks a resync's cursor reset).
    job_id: Option<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("project_id", &self.integration.project_id)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for `integration`, reading through `client` and writing through `store`.
    /// `page_size` is the list page size (20, 50 or 100).
    pub fn new(store: Store, client: CrmClient, integration: Integration, page_size: u32) -> Self {
        Engine {
            store,
            client,
            integration,
            page_size,
            job_id: None,
        }
    }

    /// The same engine, running queue job `job_id`: a resync it runs resumes after a crash or
    /// a failed attempt instead of starting over.
    pub fn with_job_id(mut self, job_id: impl Into<String>) -> Self {
        self.job_id = Some(job_id.into());
        self
    }

    fn project_id(&self) -> i64 {
        self.integration.project_id
    }

    fn enabled(&self, stream: Stream) -> bool {
        match stream {
            Stream::Orders => self.integration.sync_orders,
            Stream::Customers => self.integration.sync_customers,
        }
    }

    /// Runs one job to the end. Safe to drop at any await point: every committed batch carries
    /// its cursor, so a re-run repeats at most one batch, and repeating is harmless.
    pub async fn run(&self, job: JobSpec, progress: &Progress) -> Result<RunCounts, SyncError> {
        if !self.integration.is_active {
            return Err(SyncError::Inactive(self.project_id()));
        }
        let started = Instant::now();
        let requests_before = self.client.request_count();
        let mut counts = RunCounts::default();
        let streams: Vec<(Stream, Option<i64>)> = match job {
            JobSpec::Orders { since_id } => vec![(Stream::Orders, since_id)],
            JobSpec::Customers { since_id } => vec![(Stream::Customers, since_id)],
            JobSpec::All { since_id } => Stream::ALL.iter().map(|s| (*s, since_id)).collect(),
            JobSpec::Resync { stream } => Stream::ALL
                .iter()
                .filter(|s| stream.is_none_or(|one| one == **s))
                .map(|s| (*s, None))
                .collect(),
            JobSpec::Order { id } => {
                self.sync_one(Stream::Orders, id, progress, &mut counts)
                    .await?;
                vec![]
            }
            JobSpec::Customer { id } => {
                self.sync_one(Stream::Customers, id, progress, &mut counts)
                    .await?;
                vec![]
            }
        };
        for (stream, since_id) in streams {
            if !self.enabled(stream) {
                counts.skipped_streams.push(stream);
                continue;
            }
            if matches!(job, JobSpec::Resync { .. }) {
                self.reset_cursor(stream).await?;
            }
            self.sync_stream(stream, since_id, progress, &mut counts)
                .await?;
        }
        counts.requests = self.client.request_count().saturating_sub(requests_before);
        info!(
            project_id = self.project_id(),
            duration_ms = started.elapsed().as_millis() as u64,
            fetched = counts.fetched,
            created = counts.created,
            updated = counts.updated,
            deleted = counts.deleted,
            poison = counts.poison,
            requests = counts.requests,
            "sync finished"
        );
        Ok(counts)
    }

    /// What order mapping needs from the account: its timezone, status groups and the country
    /// phones are read in.
    async fn mapping_context(&self) -> Result<MappingContext, SyncError> {
        let settings = self.client.settings().await?;
        let statuses = self.client.statuses().await?;
        Ok(MappingContext {
            default_currency: settings.default_currency,
            timezone: settings.timezone,
            status_mapping: self.integration.status_mapping.clone(),
            status_groups: statuses
                .into_iter()
                .filter_map(|(code, s)| s.group.map(|g| (code, g)))
                .collect(),
            phone_country: self.phone_country().await?,
        })
    }

    async fn context_for(&self, stream: Stream) -> Result<Option<MappingContext>, SyncError> {
        match stream {
            Stream::Orders => Ok(Some(self.mapping_context().await?)),
            Stream::Customers => Ok(Some(MappingContext::for_customers(
                self.phone_country().await?,
            ))),
        }
    }

    /// The country phones without a country code are read in: the integration's
    /// `default_phone_country`, else the account's (`/reference/sites`, see
    /// [`account_phone_country`]), else RU. A key without `reference_read` (a customers-only
    /// integration needs none) reads them as RU, with a warning.
    async fn phone_country(&self) -> Result<PhoneCountry, SyncError> {
        if let Some(country) = self.integration.default_phone_country {
            return Ok(country);
        }
        match self.client.sites().await {
            Ok(sites) => Ok(account_phone_country(&sites).unwrap_or_default()),
            Err(e @ CrmError::AccessDenied { .. }) => {
                warn!(
                    project_id = self.project_id(),
                    error = %e,
                    "cannot read the account's country; phones without a country code are read \
                     as Russian (set one with `integration set --phone-country`)"
                );
                Ok(PhoneCountry::RU)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `sync_order(id)` / `sync_customer(id)`: re-fetch one entity and upsert it; an entity the
    /// list no longer returns has been deleted in RetailCRM. The cursor is not moved.
    async fn sync_one(
        &self,
        stream: Stream,
        id: i64,
        progress: &Progress,
        counts: &mut RunCounts,
    ) -> Result<(), SyncError> {
        progress.begin(stream, "entity", 0, Some(1));
        let ctx = self.context_for(stream).await?;
        let mut batch = self.fetch_by_ids(stream, &[id], ctx.as_ref()).await?;
        if batch.records.len() == 0 && batch.poison.is_empty() {
            batch.deleted.push(id);
        }
        let cursor = self
            .store
            .load_cursor(self.project_id(), stream)
            .await
            .map_err(|e| self.store_err(e, stream))?;
        batch.next_since_id = cursor.since_id;
        batch.next_snapshot_page = cursor.snapshot_page;
        batch.next_snapshot_total = cursor.snapshot_total;
        batch.next_snapshot_from = cursor.snapshot_from.clone();
        self.commit(stream, &cursor, batch, progress, counts)
            .await?;
        Ok(())
    }

    /// Forgets where `stream` stands, so the sync that follows starts over with a snapshot.
    /// A compare-and-set like any commit: a concurrent run of the project gets a conflict.
    /// The reset is marked with the job's id: a retry of the same job (or its rerun after a
    /// crash) finds its own mark and resumes the snapshot it started instead of starting over.
    async fn reset_cursor(&self, stream: Stream) -> Result<(), SyncError> {
        let cursor = self
            .store
            .load_cursor(self.project_id(), stream)
            .await
            .map_err(|e| self.store_err(e, stream))?;
        if self.job_id.is_some() && cursor.snapshot_job == self.job_id {
            info!(project_id = self.project_id(), %stream, "resync resumes where its earlier attempt stopped");
            return Ok(());
        }
        if self.job_id.is_none() && cursor.since_id.is_none() && cursor.snapshot_page.is_none() {
            return Ok(()); // never synced
        }
        let fresh = Cursor {
            since_id: None,
            snapshot_page: None,
            snapshot_total: None,
            snapshot_from: None,
            snapshot_job: self.job_id.clone(),
            snapshot_until: None,
            version: cursor.version,
        };
        self.commit_cursor_only(stream, &cursor, &fresh).await?;
        info!(project_id = self.project_id(), %stream, was = ?cursor.since_id, "cursor reset for a full resync");
        Ok(())
    }

    /// Brings one stream up to date: snapshot if never synced (or resumed), then history.
    async fn sync_stream(
        &self,
        stream: Stream,
        replay_from: Option<i64>,
        progress: &Progress,
        counts: &mut RunCounts,
    ) -> Result<(), SyncError> {
        let project_id = self.project_id();
        let ctx = self.context_for(stream).await?;
        let mut cursor = self
            .store
            .load_cursor(project_id, stream)
            .await
            .map_err(|e| self.store_err(e, stream))?;

        if cursor.since_id.is_none() && cursor.snapshot_page.is_none() {
            // First sync: the anchor is taken before the first page, so every change made while
            // we page is in history after it.
            let found = self.client.history_anchor(stream).await?;
            let anchor = found.newest.unwrap_or(0);
            let next = Cursor {
                since_id: Some(anchor),
                snapshot_page: Some(1),
                snapshot_total: None,
                snapshot_from: None,
                snapshot_job: cursor.snapshot_job.clone(),
                snapshot_until: found.generated_at,
                version: cursor.version,
            };
            cursor = self.commit_cursor_only(stream, &cursor, &next).await?;
            info!(project_id, %stream, anchor, "first sync: snapshot starts");
        }

        if let Some(windows) = cursor.snapshot_page {
            progress.begin(stream, "snapshot", 0, None);
            debug!(project_id, %stream, windows_done = windows - 1, from = ?cursor.snapshot_from, "snapshot resumes");
            let at = cursor.clone();
            cursor = self
                .run_pipeline(stream, cursor.clone(), progress, counts, |tx| {
                    self.produce_windows(stream, &at, ctx.as_ref(), tx)
                })
                .await?;
        }

        let start = replay_from.or(cursor.since_id).unwrap_or(0);
        let stored = cursor.since_id;
        progress.begin(stream, "history", 0, None);
        self.run_pipeline(stream, cursor, progress, counts, |tx| {
            self.produce_history(stream, start, stored, ctx.as_ref(), tx)
        })
        .await?;
        Ok(())
    }

    /// Runs a producer and the writer side by side until the producer is done or either fails.
    /// Returns the last committed cursor.
    async fn run_pipeline<F, Fut>(
        &self,
        stream: Stream,
        mut cursor: Cursor,
        progress: &Progress,
        counts: &mut RunCounts,
        producer: F,
    ) -> Result<Cursor, SyncError>
    where
        F: FnOnce(mpsc::Sender<Batch>) -> Fut,
        Fut: std::future::Future<Output = Result<(), SyncError>>,
    {
        let (tx, mut rx) = mpsc::channel::<Batch>(PIPELINE_DEPTH);
        let produce = producer(tx);
        let write = async {
            while let Some(mut batch) = rx.recv().await {
                // Consecutive batches merge safely: the later cursor covers both, and the
                // store keeps the last version of an entity that appears twice.
                while batch.records.len() < MAX_COMMIT_ROWS {
                    match rx.try_recv() {
                        Ok(next) => batch.merge(next),
                        Err(_) => break,
                    }
                }
                match self.commit(stream, &cursor, batch, progress, counts).await {
                    Ok(next) => cursor = next,
                    Err(e) => {
                        // The receiver is only borrowed here, so returning would not drop it:
                        // close it, or a producer waiting for room in the full channel would
                        // wait forever (and the job with it).
                        rx.close();
                        return Err(e);
                    }
                }
            }
            Ok::<_, SyncError>(())
        };
        // A writer error closes the channel, which stops the producer at its next send; a
        // producer error closes the channel after the batches already fetched are written.
        let (produced, written) = tokio::join!(produce, write);
        written?;
        produced?;
        Ok(cursor)
    }

    /// Walks history from `start` (exclusive); each history page becomes one batch of re-fetched
    /// entities, whose cursor is the page's last record id (never behind `stored`).
    async fn produce_history(
        &self,
        stream: Stream,
        start: i64,
        stored: Option<i64>,
        ctx: Option<&MappingContext>,
        tx: mpsc::Sender<Batch>,
    ) -> Result<(), SyncError> {
        let mut since = start;
        loop {
            let walk = self.history_page(stream, since).await?;
            let Some(last_id) = walk.last_id else {
                if walk.records > 0 {
                    warn!(
                        project_id = self.project_id(),
                        %stream,
                        since,
                        records = walk.records,
                        "a history page had no record with a readable id, so the cursor cannot move past it; \
                         the RetailCRM account answers garbage here, check it"
                    );
                }
                return Ok(());
            };
            if last_id <= since {
                // `sinceId` is exclusive: a page that does not move forward would loop for ever.
                warn!(project_id = self.project_id(), %stream, since, last_id, "history did not advance past the cursor; stopping this walk");
                return Ok(());
            }
            let mut batch = self.fetch_by_ids(stream, &walk.changed, ctx).await?;
            self.filter_by_date(&mut batch, ctx);
            batch.deleted.extend(walk.deleted);
            batch.poison.extend(walk.poison);
            batch.touched = walk.touched;
            batch.history_records = walk.records;
            batch.next_since_id = Some(stored.map_or(last_id, |s| s.max(last_id)));
            batch.next_snapshot_page = None;
            batch.next_snapshot_total = None;
            batch.next_snapshot_from = None;
            if tx.send(batch).await.is_err() {
                return Ok(());
            }
            if !walk.more {
                return Ok(());
            }
            since = last_id;
        }
    }

    /// Writes one batch and its cursor in one transaction; returns the new cursor.
    async fn commit(
        &self,
        stream: Stream,
        expected: &Cursor,
        batch: Batch,
        progress: &Progress,
        counts: &mut RunCounts,
    ) -> Result<Cursor, SyncError> {
        let project_id = self.project_id();
        let next = Cursor {
            since_id: batch.next_since_id,
            snapshot_page: batch.next_snapshot_page,
            snapshot_total: batch.next_snapshot_total,
            snapshot_from: batch.next_snapshot_from.clone(),
            snapshot_job: expected.snapshot_job.clone(),
            snapshot_until: batch
                .next_snapshot_page
                .and(expected.snapshot_until.clone()),
            version: expected.version,
        };
        let started = Instant::now();
        let mut batch = batch;
        self.protect_pending(&mut batch.records, &batch.touched)
            .await?;
        let n = batch.records.len() as u64;
        let n_poison = batch.poison.len() as u64;
        let out = self
            .commit_detached(
                stream,
                expected.clone(),
                next,
                batch.records,
                batch.deleted,
                batch.poison,
            )
            .await?;
        counts.created += out.created;
        counts.updated += out.updated;
        counts.deleted += out.deleted;
        counts.users_created_from_orders += out.users_created;
        let m = crate::metrics::metrics();
        let table = match stream {
            Stream::Orders => "orders",
            Stream::Customers => "users",
        };
        m.rows(project_id, table, "created", out.created);
        m.rows(project_id, table, "updated", out.updated);
        m.rows(project_id, table, "deleted", out.deleted);
        m.rows(project_id, "users", "created", out.users_created);
        if n_poison > 0 {
            m.dead_records
                .inc_by(crate::metrics::ProjectLabel { project_id }, n_poison);
        }
        let cursor = out.cursor;
        counts.fetched += batch.fetched;
        counts.unmapped_statuses += batch.unmapped;
        counts.filtered_out += batch.filtered;
        counts.poison += n_poison;
        counts.history_records += batch.history_records;
        progress.advance(n + n_poison, batch.total);
        debug!(
            project_id,
            %stream,
            rows = n,
            duration_ms = started.elapsed().as_millis() as u64,
            since_id = ?cursor.since_id,
            snapshot_page = ?cursor.snapshot_page,
            "batch committed"
        );
        Ok(cursor)
    }

    /// Two-way sync: keeps a pull from overwriting platform changes still waiting in the
    /// outbox, and applies the conflict rule to fields RetailCRM changed too (see
    /// [`crate::sync::push::protect_pending`]).
    async fn protect_pending(
        &self,
        records: &mut Records,
        touched: &BTreeMap<i64, BTreeSet<String>>,
    ) -> Result<(), SyncError> {
        use crate::store::outbox::{CUSTOMER, ORDER};
        let project_id = self.project_id();
        let (entity, ids): (&str, Vec<i64>) = match &*records {
            Records::Orders(o) => (ORDER, o.iter().map(|r| r.retailcrm_id).collect()),
            Records::Customers(c) => (CUSTOMER, c.iter().map(|r| r.retailcrm_id).collect()),
        };
        if ids.is_empty() {
            return Ok(());
        }
        let pending = self
            .store
            .pending_fields(project_id, entity, &ids)
            .await
            .map_err(SyncError::Store)?;
        if pending.is_empty() {
            return Ok(());
        }
        let conflicts = crate::sync::push::protect_pending(
            &pending,
            touched,
            self.integration.conflict_rule,
            |id, field, value| apply_pending(records, id, field, value),
        );
        if !conflicts.is_empty() {
            warn!(
                project_id,
                entity,
                conflicts = conflicts.len(),
                "two-way sync: RetailCRM changed fields the platform changed too; RetailCRM wins, conflicts recorded"
            );
            for _ in &conflicts {
                crate::metrics::metrics().push(project_id, entity, "conflict");
            }
            self.store
                .note_pull_conflicts(&conflicts)
                .await
                .map_err(SyncError::Store)?;
        }
        Ok(())
    }

    async fn commit_cursor_only(
        &self,
        stream: Stream,
        expected: &Cursor,
        next: &Cursor,
    ) -> Result<Cursor, SyncError> {
        let out = self
            .commit_detached(
                stream,
                expected.clone(),
                next.clone(),
                Records::empty(stream),
                Vec::new(),
                Vec::new(),
            )
            .await?;
        Ok(out.cursor)
    }

    /// Runs one batch transaction on its own task and waits for it. Dropping the job's future
    /// (abort, shutdown, lease lost) then never cuts a transaction off half-way: the batch either
    /// commits with its cursor or rolls back, and its connection goes back to the pool clean.
    /// (A transaction dropped mid-way would stay open on a pooled connection, holding the
    /// cursor's row lock, until the pool happened to recycle that connection: the next run of
    /// the project could block on it.)
    async fn commit_detached(
        &self,
        stream: Stream,
        expected: Cursor,
        next: Cursor,
        records: Records,
        deleted: Vec<i64>,
        poison: Vec<PoisonRecord>,
    ) -> Result<CommitOutcome, SyncError> {
        let store = self.store.clone();
        let project_id = self.project_id();
        let task = tokio::spawn(async move {
            match records {
                Records::Orders(orders) => store
                    .commit_orders(project_id, &expected, &next, &orders, &deleted, &poison)
                    .await
                    .map(|o| CommitOutcome {
                        created: o.created,
                        updated: o.updated,
                        deleted: o.deleted,
                        users_created: o.users_created,
                        cursor: o.cursor,
                    }),
                Records::Customers(customers) => store
                    .commit_customers(project_id, &expected, &next, &customers, &deleted, &poison)
                    .await
                    .map(|o| CommitOutcome {
                        created: o.created,
                        updated: o.updated,
                        deleted: o.deleted,
                        users_created: 0,
                        cursor: o.cursor,
                    }),
            }
        });
        match task.await {
            Ok(result) => result.map_err(|e| self.store_err(e, stream)),
            Err(e) => Err(SyncError::Store(StoreError::Invalid(format!(
                "the {stream} batch commit task of project {project_id} did not finish ({e});                  nothing of it is assumed written, the job will be retried"
            )))),
        }
    }

    fn store_err(&self, e: StoreError, stream: Stream) -> SyncError {
        match e {
            StoreError::CursorConflict { .. } => SyncError::Conflict {
                project_id: self.project_id(),
                stream,
            },
            other => SyncError::Store(other),
        }
    }

    /// Current entities by id (at most 100 per request), mapped.
    async fn fetch_by_ids(
        &self,
        stream: Stream,
        ids: &[i64],
        ctx: Option<&MappingContext>,
    ) -> Result<Batch, SyncError> {
        let mut out = Batch::new(stream);
        for chunk in ids.chunks(MAX_LIMIT as usize) {
            let part = match stream {
                Stream::Orders => {
                    self.map_orders(self.client.orders_by_ids(chunk).await?.items, ctx)
                }
                Stream::Customers => {
                    self.map_customers(self.client.customers_by_ids(chunk).await?.items, ctx)
                }
            };
            out.absorb(part);
        }
        Ok(out)
    }

    /// Leaves out (and counts) orders created before the integration's `orders_created_from`,
    /// midnight in the account's timezone. The list is already filtered by RetailCRM; this
    /// also covers orders named by history. Orders with no creation time are kept.
    fn filter_by_date(&self, batch: &mut Batch, ctx: Option<&MappingContext>) {
        let (Some(from), Some(ctx), Records::Orders(rows)) = (
            self.integration.orders_created_from,
            ctx,
            &mut batch.records,
        ) else {
            return;
        };
        let Some(cutoff) = from
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(ctx.timezone).earliest())
            .map(|t| t.with_timezone(&chrono::Utc))
        else {
            return;
        };
        let before = rows.len();
        rows.retain(|r| r.ordered_at.is_none_or(|t| t >= cutoff));
        batch.filtered += (before - rows.len()) as u64;
    }

    fn map_orders(&self, items: Vec<Decoded<Order>>, ctx: Option<&MappingContext>) -> Batch {
        let mut batch = Batch::new(Stream::Orders);
        let Records::Orders(rows) = &mut batch.records else {
            unreachable!("Batch::new(Orders) holds orders")
        };
        for item in items {
            batch.fetched += 1;
            match item {
                Decoded::Ok(order) => match ctx.map(|c| map_order(&order, c)) {
                    Some(Ok((record, unmapped))) => {
                        batch.unmapped += u64::from(unmapped);
                        rows.push(record);
                    }
                    Some(Err(reason)) => batch.poison.push(poison_of(
                        Stream::Orders,
                        Some(order.id),
                        serde_json::to_value(&order).unwrap_or_default(),
                        reason,
                    )),
                    None => batch.poison.push(poison_of(
                        Stream::Orders,
                        Some(order.id),
                        serde_json::Value::Null,
                        "internal: order mapped without a mapping context".into(),
                    )),
                },
                Decoded::Poison(p) => batch.poison.push(poison_item(Stream::Orders, p)),
            }
        }
        batch
    }

    fn map_customers(&self, items: Vec<Decoded<Customer>>, ctx: Option<&MappingContext>) -> Batch {
        let mut batch = Batch::new(Stream::Customers);
        let Records::Customers(rows) = &mut batch.records else {
            unreachable!("Batch::new(Customers) holds customers")
        };
        for item in items {
            batch.fetched += 1;
            match item {
                Decoded::Ok(customer) => {
                    match ctx.map(|c| map_customer(&customer, c.phone_country)) {
                        Some(Ok(record)) => rows.push(record),
                        Some(Err(reason)) => batch.poison.push(poison_of(
                            Stream::Customers,
                            Some(customer.id),
                            serde_json::to_value(&customer).unwrap_or_default(),
                            reason,
                        )),
                        None => batch.poison.push(poison_of(
                            Stream::Customers,
                            Some(customer.id),
                            serde_json::Value::Null,
                            "internal: customer mapped without a mapping context".into(),
                        )),
                    }
                }
                Decoded::Poison(p) => batch.poison.push(poison_item(Stream::Customers, p)),
            }
        }
        batch
    }

    /// One page of history after `since`: which entities changed, which were deleted.
    async fn history_page(&self, stream: Stream, since: i64) -> Result<HistoryWalk, SyncError> {
        let mut walk = HistoryWalk::default();
        let mut changed = BTreeSet::new();
        let mut deleted = BTreeSet::new();
        let (pagination, entries) = match stream {
            Stream::Orders => {
                let page = self.client.orders_history(Some(since), MAX_LIMIT).await?;
                (page.pagination, entries_of(page.items))
            }
            Stream::Customers => {
                let page = self
                    .client
                    .customers_history(Some(since), MAX_LIMIT)
                    .await?;
                (page.pagination, entries_of(page.items))
            }
        };
        for entry in entries {
            walk.records += 1;
            if let Some(id) = entry.id {
                walk.last_id = Some(walk.last_id.map_or(id, |l: i64| l.max(id)));
            }
            if let Some(entity) = entry.entity {
                if entry.deleted {
                    deleted.insert(entity);
                } else {
                    changed.insert(entity);
                }
                if let Some(field) = entry.foreign_field {
                    walk.touched.entry(entity).or_default().insert(field);
                }
            }
            if let Some(target) = entry.also {
                changed.insert(target);
            }
            if let Some(p) = entry.poison {
                walk.poison.push(poison_item(stream, p));
            }
        }
        walk.changed = changed.difference(&deleted).copied().collect();
        walk.deleted = deleted.into_iter().collect();
        walk.more = pagination.current_page < pagination.total_page_count;
        Ok(walk)
    }
}

fn poison_item(stream: Stream, p: PoisonItem) -> PoisonRecord {
    PoisonRecord {
        stream,
        entity_id: p.id,
        raw: p.raw,
        reason: p.reason,
    }
}

fn poison_of(
    stream: Stream,
    id: Option<i64>,
    raw: serde_json::Value,
    reason: String,
) -> PoisonRecord {
    PoisonRecord {
        stream,
        entity_id: id,
        raw,
        reason,
    }
}
