//! The first full read of a stream (the snapshot), by windows of creation time.
//!
//! Paging a list by number is only as good as the list's order, which RetailCRM does not
//! document: served oldest first, a deletion on a page already read shifts the next unread
//! entity onto it, and that entity (unchanged, so named by no history record) is never stored;
//! an unstable order loses entities without any change at all. So the snapshot does not page.
//! It reads **windows of creation time** (`filter[createdAtFrom]`/`createdAtTo` for orders,
//! `filter[dateFrom]`/`dateTo` for customers), each small enough that one request returns all of
//! it: a window read in one request is a consistent picture of that window, whatever the sort
//! order and whatever is created or deleted meanwhile. Windows adapt: one that answers more
//! than a page is split (narrower), a sparse one makes the next wider. The last window is
//! open-ended (no upper bound), so it includes everything created up to the moment it is read;
//! what changes after the anchor is in history anyway.
//!
//! Why this is complete: an entity that existed when the anchor was taken and did not change
//! afterwards has a fixed creation time; the windows cover the time axis without gaps
//! (consecutive windows share their boundary, so an inclusive or an exclusive upper bound both
//! work), and the window holding it returned every entity it held. Entities created, changed or
//! deleted after the anchor are named by history, which the engine walks from the anchor right
//! after the snapshot.
//!
//! Where RetailCRM cannot narrow enough the window is read by pages and **verified**: more than
//! a page of entities in one second (a bulk import), a server that ignores the time part of the
//! filter (then windows are whole days, detected from the creation times it returns), or one
//! that ignores the filter altogether (one window, the whole list). Verification counts the
//! window (`totalCount`) and re-reads the ids seen, restricted to the same window: when fewer
//! of them are still there than the window holds, something was skipped, and the window is read
//! again (the ids seen accumulate) until they agree, at most [`MAX_ROUNDS`] times.
//!
//! The cursor records where the next window starts (`snapshot_from`), committed with each
//! window's rows, so an interrupted snapshot resumes there.

use std::collections::{BTreeSet, HashSet};

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Batch, Engine, MAX_LIMIT};
use crate::crm::decode::CRM_DATETIME_FORMAT;
use crate::crm::types::Pagination;
use crate::crm::{Decoded, ListWindow};
use crate::model::Stream;
use crate::sync::error::SyncError;
use crate::sync::mapping::MappingContext;

/// Times a window that needs pages is read before the job gives up (and is retried later).
pub(crate) const MAX_ROUNDS: u32 = 6;

/// Share of a page a window aims to fill: room for the estimate to be off.
const FILL: f64 = 0.85;

/// Where the windows start when nothing narrower is known: before any RetailCRM account.
fn floor() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap_or_default()
        .and_time(NaiveTime::MIN)
}

/// How finely the server filters by creation time (learnt from what it returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Granularity {
    /// `Y-m-d H:i:s` is honoured.
    Seconds,
    /// Only the date part is honoured.
    Days,
    /// The filter is ignored: one window, the whole list.
    Whole,
}

impl Granularity {
    fn coarser(self) -> Self {
        match self {
            Granularity::Seconds => Granularity::Days,
            _ => Granularity::Whole,
        }
    }

    fn min_width(self) -> Duration {
        match self {
            Granularity::Seconds => Duration::seconds(1),
            _ => Duration::days(1),
        }
    }

    fn align(self, t: NaiveDateTime) -> NaiveDateTime {
        match self {
            Granularity::Seconds => t,
            _ => t.date().and_time(NaiveTime::MIN),
        }
    }

    fn format(self, t: NaiveDateTime) -> String {
        match self {
            Granularity::Seconds => t.format(CRM_DATETIME_FORMAT).to_string(),
            _ => t.format("%Y-%m-%d").to_string(),
        }
    }
}

/// One window of creation time: `[from, to]`, open-ended when `to` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub from: NaiveDateTime,
    pub to: Option<NaiveDateTime>,
}

impl Window {
    /// The list request for this window.
    fn request(&self, g: Granularity, page: u32, limit: u32, ids: Vec<i64>) -> ListWindow {
        let (from, to) = match g {
            Granularity::Whole => (None, None),
            _ => (Some(g.format(self.from)), self.to.map(|t| g.format(t))),
        };
        ListWindow {
            from,
            to,
            ids,
            page,
            limit,
        }
    }

    /// True when a server honouring `g` may return an entity created at `t` for this window
    /// (bounds widened to whole days when only dates are honoured).
    fn admits(&self, g: Granularity, t: NaiveDateTime) -> bool {
        let (from, to) = match g {
            Granularity::Whole => return true,
            Granularity::Seconds => (self.from, self.to),
            Granularity::Days => (
                g.align(self.from),
                self.to.map(|t| g.align(t) + Duration::days(1)),
            ),
        };
        t >= from && to.is_none_or(|to| t <= to)
    }
}

/// The width of the next window after one of `width` held `count` entities (of a page of
/// `limit`): aim at [`FILL`] of a page, grow at most eightfold, shrink at most to a 64th.
pub(crate) fn next_width(width: Duration, count: u64, limit: u32, g: Granularity) -> Duration {
    let target = FILL * f64::from(limit);
    let factor = if count == 0 {
        8.0
    } else {
        (target / count as f64).clamp(1.0 / 64.0, 8.0)
    };
    let secs = (width.num_seconds() as f64 * factor) as i64;
    let max = Duration::days(366 * 30);
    Duration::seconds(secs).clamp(g.min_width(), max)
}

/// Half a duration, in whole seconds (the filters have no finer unit).
fn half(d: Duration) -> Duration {
    Duration::seconds(d.num_seconds() / 2)
}

/// What a window's first request showed, in a form independent of the stream.
struct Shown {
    batch: Batch,
    pagination: Pagination,
    /// Items in the response.
    items: u64,
    /// Ids of the entities (and of poison records whose id was readable).
    ids: Vec<i64>,
    /// Creation times that could be read, with their entity's id.
    created: Vec<(i64, NaiveDateTime)>,
}

impl Shown {
    fn has_pagination(&self) -> bool {
        self.pagination.total_page_count > 0 || self.pagination.total_count > 0
    }

    /// Entities in the window: `totalCount`, or what the page shows when there is none.
    fn count(&self) -> u64 {
        if self.has_pagination() {
            self.pagination.total_count.max(self.items)
        } else {
            self.items
        }
    }

    /// True when this one response holds the whole window.
    fn complete(&self, limit: u32) -> bool {
        if self.has_pagination() {
            self.count() <= u64::from(limit)
        } else {
            self.items < u64::from(limit)
        }
    }
}

/// Where a snapshot stands between windows.
struct Plan {
    from: NaiveDateTime,
    width: Duration,
    g: Granularity,
    /// Where the windows end: the account's clock at the anchor plus [`UNTIL_MARGIN`] (what is
    /// created later is in history after the anchor). `None` when RetailCRM gave no clock: the
    /// last window is then open-ended.
    until: Option<NaiveDateTime>,
    /// The account's clock at the anchor: windows starting after it hold nothing the history
    /// walk will not bring, so their verification may give up without failing the job.
    anchor_time: Option<NaiveDateTime>,
    /// Entities still to read (from the last window reaching the end), when known.
    remaining: Option<i64>,
    /// Windows committed so far (kept in `snapshot_page` for the operator).
    windows: i32,
    /// Size of the list when the snapshot started (for progress).
    total: Option<i64>,
    /// Empty windows in a row: the estimate is off, ask a window reaching the end.
    empty_run: u32,
    /// The end of the last window found too full, while it is still ahead: the next windows
    /// bisect towards it rather than grow past it again.
    overfull_to: Option<NaiveDateTime>,
    /// The last window read held entities, so its density predicts the next one's.
    dense: bool,
    /// Entities of the last window created in its final second (or day): the next window
    /// starts there too, and returns them again; they are not committed twice.
    boundary: HashSet<i64>,
}

/// How far past the anchor's clock the windows go, for clocks of RetailCRM's servers that
/// disagree a little (an entity stamped by one, the anchor's `generatedAt` by another).
const UNTIL_MARGIN: Duration = Duration::minutes(5);

impl Engine {
    /// Reads the whole list of `stream` window by window from `cursor.snapshot_from` (the
    /// start when `None`), sending one batch per window; the last batch ends the snapshot.
    pub(super) async fn produce_windows(
        &self,
        stream: Stream,
        cursor: &crate::store::Cursor,
        ctx: Option<&MappingContext>,
        tx: mpsc::Sender<Batch>,
    ) -> Result<(), SyncError> {
        let limit = self.page_size.max(20);
        debug_assert!(limit <= MAX_LIMIT);
        let start = self.snapshot_floor(stream);
        let parse = |s: Option<&String>| {
            s.and_then(|s| NaiveDateTime::parse_from_str(s.trim(), CRM_DATETIME_FORMAT).ok())
        };
        let resumed = parse(cursor.snapshot_from.as_ref());
        let anchor_time = parse(cursor.snapshot_until.as_ref());
        let mut plan = Plan {
            from: resumed.map_or(start, |r| r.max(start)),
            width: Duration::days(1),
            g: Granularity::Seconds,
            until: anchor_time.map(|t| t + UNTIL_MARGIN),
            anchor_time,
            remaining: None,
            windows: cursor.snapshot_page.unwrap_or(1).max(1) - 1,
            total: cursor.snapshot_total,
            empty_run: 0,
            overfull_to: None,
            dense: false,
            boundary: HashSet::new(),
        };
        let mut first_response = true;
        loop {
            if plan.until.is_some_and(|u| plan.from >= u) {
                // Resumed after the last window was read: only the end is left to commit.
                let mut batch = Batch::new(stream);
                self.stamp(&mut batch, cursor, &plan, None);
                let _ = tx.send(batch).await;
                return Ok(());
            }
            let to_end = plan.g == Granularity::Whole
                || (plan.until.is_none() && plan.empty_run >= 4)
                || plan
                    .remaining
                    .is_none_or(|r| r <= i64::from(limit) * 8 / 10);
            let to = if to_end {
                plan.until
            } else {
                let t = plan.from + plan.width;
                Some(plan.until.map_or(t, |u| t.min(u)))
            };
            let last = to == plan.until;
            let window = Window {
                from: plan.from,
                to,
            };
            let shown = self
                .read_window(stream, &window, plan.g, 1, limit, Vec::new(), ctx)
                .await?;
            if shown
                .created
                .iter()
                .any(|(_, t)| !window.admits(plan.g, *t))
            {
                let coarser = plan.g.coarser();
                warn!(
                    project_id = self.project_id(),
                    %stream,
                    was = ?plan.g,
                    now = ?coarser,
                    "RetailCRM returned entities outside the creation-time window asked for; \
                     reading in coarser windows"
                );
                plan.g = coarser;
                plan.from = coarser.align(plan.from);
                plan.width = plan.width.max(coarser.min_width());
                continue;
            }
            let count = shown.count();
            debug!(
                project_id = self.project_id(),
                %stream,
                from = %window.from,
                to = ?window.to,
                granularity = ?plan.g,
                count,
                remaining = ?plan.remaining,
                "snapshot window"
            );
            if last && plan.total.is_none() {
                plan.total = i64::try_from(count).ok();
            }
            let was_first = std::mem::replace(&mut first_response, false);
            if !shown.complete(limit) {
                if was_first {
                    // The first response shows some entities (which ones depends on the sort
                    // order): the first window ends just before the oldest of them, which
                    // skips an empty past in one request when the list is served oldest first.
                    if let Some(oldest) = shown.created.iter().map(|(_, t)| *t).min() {
                        let w = oldest - Duration::seconds(1) - plan.from;
                        if w > plan.g.min_width() {
                            plan.width = w;
                        }
                    }
                }
                let span = window.to.map(|t| t - window.from);
                if last {
                    // The window reaching the end holds more than a page: go on with bounded
                    // windows, narrower than this one.
                    plan.remaining = i64::try_from(count).ok();
                    plan.empty_run = 0;
                }
                let can_narrow =
                    plan.g != Granularity::Whole && span.is_none_or(|s| s > plan.g.min_width());
                if can_narrow {
                    plan.overfull_to = window.to;
                    plan.width = match span {
                        Some(s) if was_first => plan.width.min(s - plan.g.min_width()),
                        // Where the last window held entities, its density predicts this one.
                        Some(s) if plan.dense => next_width(s, count, limit, plan.g),
                        // Else (the start, or after empty windows) bisect.
                        Some(s) => half(s),
                        None => plan.width,
                    }
                    .max(plan.g.min_width());
                    continue;
                }
                // Cannot narrow further: read it by pages, verified.
                plan.boundary.clear();
                self.read_verified(stream, cursor, &window, &mut plan, shown, last, ctx, &tx)
                    .await?;
                if last {
                    return Ok(());
                }
                self.advance(&mut plan, &window, count, limit);
                continue;
            }
            let mut batch = shown.batch;
            batch.drop_ids(&plan.boundary);
            plan.boundary = match window.to {
                Some(to) if plan.g != Granularity::Whole => {
                    let edge = plan.g.align(to);
                    shown
                        .created
                        .iter()
                        .filter(|(_, t)| *t >= edge)
                        .map(|(id, _)| *id)
                        .collect()
                }
                _ => HashSet::new(),
            };
            plan.windows += 1;
            let next_from = if last { None } else { window.to };
            self.stamp(&mut batch, cursor, &plan, next_from);
            if tx.send(batch).await.is_err() {
                return Ok(()); // the writer stopped; its error is reported
            }
            if last {
                info!(project_id = self.project_id(), %stream, windows = plan.windows, "snapshot read");
                return Ok(());
            }
            self.advance(&mut plan, &window, count, limit);
        }
    }

    /// Moves the plan past a bounded window that held `count` entities.
    fn advance(&self, plan: &mut Plan, window: &Window, count: u64, limit: u32) {
        let count_i = i64::try_from(count).unwrap_or(i64::MAX);
        plan.remaining = plan.remaining.map(|r| r - count_i);
        plan.empty_run = if count == 0 { plan.empty_run + 1 } else { 0 };
        if let Some(to) = window.to {
            plan.width = next_width(to - window.from, count, limit, plan.g);
            plan.dense = count > 0;
            match plan.overfull_to {
                Some(b) if b > to && count == 0 => {
                    plan.width = half(b - to).max(plan.g.min_width());
                }
                Some(b) if b > to => {}
                _ => plan.overfull_to = None,
            }
            plan.from = to;
        }
    }

    /// Fills in where the cursor goes after a window's batch: `next_from` is the next window's
    /// start (`None`: this was the last window, the snapshot ends).
    fn stamp(
        &self,
        batch: &mut Batch,
        cursor: &crate::store::Cursor,
        plan: &Plan,
        next_from: Option<NaiveDateTime>,
    ) {
        batch.next_since_id = cursor.since_id;
        batch.total = plan.total.and_then(|t| u64::try_from(t).ok());
        match next_from {
            Some(from) => {
                batch.next_snapshot_page = Some(plan.windows + 1);
                batch.next_snapshot_total = plan.total;
                batch.next_snapshot_from = Some(from.format(CRM_DATETIME_FORMAT).to_string());
            }
            None => {
                batch.next_snapshot_page = None;
                batch.next_snapshot_total = None;
                batch.next_snapshot_from = None;
            }
        }
    }

    /// A window too full for one request, read by pages until the ids seen cover it: after
    /// each full read, the window is counted and the ids seen are re-read within it; fewer of
    /// them there than the window holds means a page skipped something (a deletion shifted the
    /// list, or its order is unstable), and it is read again. Rows are committed as they come;
    /// the cursor moves past the window only once it is verified.
    #[allow(clippy::too_many_arguments)]
    async fn read_verified(
        &self,
        stream: Stream,
        cursor: &crate::store::Cursor,
        window: &Window,
        plan: &mut Plan,
        first: Shown,
        last: bool,
        ctx: Option<&MappingContext>,
        tx: &mpsc::Sender<Batch>,
    ) -> Result<(), SyncError> {
        let mut seen: BTreeSet<i64> = BTreeSet::new();
        // The window's first page was read with the snapshot's page size: reuse it.
        let limit = first.pagination.limit.clamp(20, MAX_LIMIT);
        let limit = if crate::crm::ALLOWED_LIMITS.contains(&limit) {
            limit
        } else {
            self.page_size
        };
        let mut pending = Some(first);
        for round in 1..=MAX_ROUNDS {
            let mut page = 1u32;
            loop {
                let shown = match pending.take() {
                    Some(s) => s,
                    None => {
                        self.read_window(stream, window, plan.g, page, limit, Vec::new(), ctx)
                            .await?
                    }
                };
                seen.extend(shown.ids.iter().copied());
                let done = shown.items == 0
                    || shown.items < u64::from(limit)
                    || (shown.has_pagination() && page >= shown.pagination.total_page_count);
                let mut batch = shown.batch;
                self.stamp(&mut batch, cursor, plan, Some(window.from));
                if tx.send(batch).await.is_err() {
                    return Ok(());
                }
                if done {
                    break;
                }
                page += 1;
            }
            // A window that starts after the anchor's clock holds only what was created after
            // the anchor, which the history walk brings anyway: one read is enough.
            if plan.anchor_time.is_some_and(|a| window.from > a) {
                plan.windows += 1;
                let next = if last { None } else { window.to };
                let mut end = Batch::new(stream);
                self.stamp(&mut end, cursor, plan, next);
                let _ = tx.send(end).await;
                return Ok(());
            }
            // Verify: the window's count now, then how many of the ids seen are still in it.
            let now = self
                .read_window(stream, window, plan.g, 1, 20, Vec::new(), ctx)
                .await?
                .count();
            let mut present = 0u64;
            let ids: Vec<i64> = seen.iter().copied().collect();
            let mut refreshed = Batch::new(stream);
            for chunk in ids.chunks(MAX_LIMIT as usize) {
                let again = self
                    .read_window(stream, window, plan.g, 1, MAX_LIMIT, chunk.to_vec(), ctx)
                    .await?;
                present += again.ids.len() as u64;
                refreshed.absorb(again.batch);
            }
            debug!(project_id = self.project_id(), %stream, round, now, present, seen = seen.len(), "window verified?");
            if present >= now {
                plan.windows += 1;
                let next = if last { None } else { window.to };
                self.stamp(&mut refreshed, cursor, plan, next);
                let _ = tx.send(refreshed).await;
                return Ok(());
            }
            if tx.send(refreshed).await.is_err() {
                return Ok(());
            }
            info!(
                project_id = self.project_id(),
                %stream,
                round,
                in_window = now,
                seen_still_there = present,
                "a snapshot window was read incompletely (the list changed or its order is unstable); reading it again"
            );
        }
        Err(SyncError::ListUnstable {
            project_id: self.project_id(),
            stream,
            rounds: MAX_ROUNDS,
        })
    }

    /// Where the windows of `stream` start: the integration's `orders_created_from` for
    /// orders, else before any account existed.
    fn snapshot_floor(&self, stream: Stream) -> NaiveDateTime {
        match (stream, self.integration.orders_created_from) {
            (Stream::Orders, Some(d)) => d.and_time(NaiveTime::MIN),
            _ => floor(),
        }
    }

    /// One request for one window (page `page` of `limit`, optionally among `ids`), mapped.
    #[allow(clippy::too_many_arguments)]
    async fn read_window(
        &self,
        stream: Stream,
        window: &Window,
        g: Granularity,
        page: u32,
        limit: u32,
        ids: Vec<i64>,
        ctx: Option<&MappingContext>,
    ) -> Result<Shown, SyncError> {
        let req = window.request(g, page, limit, ids);
        let parse = |s: Option<&String>| {
            s.and_then(|s| NaiveDateTime::parse_from_str(s.trim(), CRM_DATETIME_FORMAT).ok())
        };
        match stream {
            Stream::Orders => {
                let p = self.client.orders_window(&req).await?;
                let (ids, created) = keys(&p.items, |o| (o.id, parse(o.created_at.as_ref())));
                let items = p.items.len() as u64;
                let mut batch = self.map_orders(p.items, ctx);
                self.filter_by_date(&mut batch, ctx);
                Ok(Shown {
                    batch,
                    pagination: p.pagination,
                    items,
                    ids,
                    created,
                })
            }
            Stream::Customers => {
                let p = self.client.customers_window(&req).await?;
                let (ids, created) = keys(&p.items, |c| (c.id, parse(c.created_at.as_ref())));
                Ok(Shown {
                    items: p.items.len() as u64,
                    batch: self.map_customers(p.items, ctx),
                    pagination: p.pagination,
                    ids,
                    created,
                })
            }
        }
    }
}

/// The ids and readable creation times of a page's items (poison items count by id).
type Keys = (Vec<i64>, Vec<(i64, NaiveDateTime)>);

fn keys<T>(items: &[Decoded<T>], key: impl Fn(&T) -> (i64, Option<NaiveDateTime>)) -> Keys {
    let mut ids = Vec::with_capacity(items.len());
    let mut created = Vec::new();
    for item in items {
        match item {
            Decoded::Ok(v) => {
                let (id, t) = key(v);
                ids.push(id);
                created.extend(t.map(|t| (id, t)));
            }
            Decoded::Poison(p) => ids.extend(p.id),
        }
    }
    (ids, created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, CRM_DATETIME_FORMAT).unwrap()
    }

    #[test]
    fn windows_admit_by_granularity() {
        let w = Window {
            from: t("2026-05-01 10:00:00"),
            to: Some(t("2026-05-01 11:00:00")),
        };
        assert!(w.admits(Granularity::Seconds, t("2026-05-01 10:00:00")));
        assert!(w.admits(Granularity::Seconds, t("2026-05-01 11:00:00")));
        assert!(!w.admits(Granularity::Seconds, t("2026-05-01 11:00:01")));
        assert!(!w.admits(Granularity::Seconds, t("2026-05-01 09:59:59")));
        assert!(w.admits(Granularity::Days, t("2026-05-01 23:00:00")));
        assert!(w.admits(Granularity::Days, t("2026-05-01 23:59:59")));
        assert!(!w.admits(Granularity::Days, t("2026-05-02 00:00:01")));
        assert!(!w.admits(Granularity::Days, t("2026-04-30 23:59:59")));
        let open = Window { to: None, ..w };
        assert!(open.admits(Granularity::Seconds, t("2030-01-01 00:00:00")));
        let req = w.request(Granularity::Days, 2, 100, vec![]);
        assert_eq!(req.from.as_deref(), Some("2026-05-01"));
        assert_eq!(req.to.as_deref(), Some("2026-05-01"));
        let req = w.request(Granularity::Whole, 1, 100, vec![]);
        assert_eq!((req.from, req.to), (None, None));
    }

    #[test]
    fn widths_adapt_within_bounds() {
        let day = Duration::days(1);
        assert_eq!(next_width(day, 0, 100, Granularity::Seconds), day * 8);
        assert_eq!(next_width(day, 85, 100, Granularity::Seconds), day);
        assert_eq!(next_width(day, 170, 100, Granularity::Seconds), day / 2);
        let tiny = next_width(Duration::seconds(2), 100_000, 100, Granularity::Seconds);
        assert_eq!(tiny, Duration::seconds(1));
        let tiny_day = next_width(day, 100_000, 100, Granularity::Days);
        assert_eq!(tiny_day, day);
        let huge = next_width(Duration::days(366 * 29), 0, 100, Granularity::Seconds);
        assert_eq!(huge, Duration::days(366 * 30));
    }
}
