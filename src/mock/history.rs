//! History queries of the mock: `filter[sinceId]`, `filter[startDate]`/`filter[endDate]`,
//! `page` and `limit` over one stream, whose records are a virtual *padding* (deep history that
//! costs no memory) followed by the real records.
//!
//! Padding ([`Padding`]) is a list of segments, oldest first, each `count` records with ids
//! `base, base + stride, ...`; the first segment starts at id 1. Its records are rendered only
//! when a page includes them: a `manager_comment` change by a user, about an entity id that no
//! longer exists (`VIRTUAL_ENTITY_BASE + n`), with a `createdAt` spread evenly (never
//! decreasing) over 2000-2015, older than any real record. Every query is O(log n + limit) over
//! the padding; over the real records it is O(log n + limit) without a date filter and one scan
//! of the real records with one.

use chrono::{Duration as ChronoDuration, NaiveDate, NaiveDateTime};
use serde_json::json;
use serde_json::value::RawValue;

use super::data::fmt_time;
use super::state::HistEntry;

/// Entity ids named by virtual records: `VIRTUAL_ENTITY_BASE + n % 100_000`, never live.
pub const VIRTUAL_ENTITY_BASE: i64 = 1_000_000_000;

/// Seconds of 2000-01-01 .. 2015-01-01 over which virtual `createdAt` values are spread.
const VIRTUAL_SPAN_SECS: u128 = 15 * 365 * 24 * 3600;

fn virtual_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// One run of virtual records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    count: u64,
    stride: u64,
}

/// The virtual records in front of a stream's real history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Padding {
    /// Oldest first.
    segments: Vec<Segment>,
}

impl Padding {
    /// Number of virtual records.
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.count).sum()
    }

    /// True without padding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id range the padding takes (`1..=span`); real ids are above it.
    pub fn span(&self) -> i64 {
        self.segments
            .iter()
            .map(|s| (s.count as i64).saturating_mul(s.stride as i64))
            .fold(0i64, i64::saturating_add)
    }

    /// Prepends `count` records spaced by `stride` (>= 1); returns how far every later id
    /// must shift (`count * stride`).
    pub fn prepend(&mut self, count: u64, stride: u64) -> i64 {
        if count == 0 {
            return 0;
        }
        let stride = stride.max(1);
        self.segments.insert(0, Segment { count, stride });
        (count as i64).saturating_mul(stride as i64)
    }

    /// `(first index, first id)` of each segment.
    fn bases(&self) -> impl Iterator<Item = (u64, i64, Segment)> + '_ {
        let mut index = 0u64;
        let mut id = 1i64;
        self.segments.iter().map(move |s| {
            let out = (index, id, *s);
            index += s.count;
            id = id.saturating_add((s.count as i64).saturating_mul(s.stride as i64));
            out
        })
    }

    /// Id of virtual record `p` (0-based, oldest first).
    pub fn id_at(&self, p: u64) -> i64 {
        for (index, id, s) in self.bases() {
            if p < index + s.count {
                return id + ((p - index) as i64) * s.stride as i64;
            }
        }
        self.span()
    }

    /// Index of the first virtual record with id > `since`.
    fn first_after(&self, since: i64) -> u64 {
        for (index, id, s) in self.bases() {
            if since < id {
                return index;
            }
            let within = ((since - id) / s.stride as i64) as u64 + 1;
            if within < s.count {
                return index + within;
            }
        }
        self.len()
    }

    /// `createdAt` of virtual record `p`: never decreasing in `p`.
    pub fn time_at(&self, p: u64) -> NaiveDateTime {
        let n = u128::from(self.len().max(1));
        let secs = u128::from(p) * VIRTUAL_SPAN_SECS / n;
        virtual_epoch() + ChronoDuration::seconds(secs as i64)
    }

    /// First index in `lo..hi` whose time is not before `t` (binary search).
    fn first_not_before(&self, t: NaiveDateTime, mut lo: u64, mut hi: u64) -> u64 {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time_at(mid) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Renders virtual record `p` (`entity_key` is `order` or `customer`).
    pub fn render(&self, p: u64, entity_key: &str, site: &str) -> Box<RawValue> {
        let entity_id = VIRTUAL_ENTITY_BASE + (p % 100_000) as i64;
        let mut entity = json!({"id": entity_id, "site": site});
        if entity_key == "order" {
            entity["status"] = json!("complete");
        }
        let record = json!({
            "id": self.id_at(p),
            "createdAt": fmt_time(self.time_at(p)),
            "source": "user",
            "user": {"id": 1},
            "field": "manager_comment",
            "oldValue": null,
            "newValue": format!("archived note {p}"),
            entity_key: entity,
        });
        serde_json::value::to_raw_value(&record).unwrap_or_default()
    }
}

/// What a history request asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistQuery {
    /// `filter[sinceId]` (exclusive).
    pub since_id: Option<i64>,
    /// `filter[startDate]` (inclusive), as `Y-m-d H:i:s` wall time.
    pub start: Option<NaiveDateTime>,
    /// `filter[endDate]` (inclusive).
    pub end: Option<NaiveDateTime>,
    /// 1-based page.
    pub page: u32,
    /// Page size.
    pub limit: u32,
}

/// One record of a page: virtual (by index) or real.
pub enum Slot<'a, E> {
    /// Virtual record `p`.
    Virtual(u64),
    /// A real record.
    Real(&'a HistEntry<E>),
}

/// A page of one stream: its records and the total number of matching records.
pub struct HistPage<'a, E> {
    /// The page, ascending by id.
    pub slots: Vec<Slot<'a, E>>,
    /// `totalCount`.
    pub total: u64,
}

/// Runs `q` over `pad` followed by `real` (ascending ids, all above the padding).
pub fn query<'a, E>(pad: &Padding, real: &'a [HistEntry<E>], q: &HistQuery) -> HistPage<'a, E> {
    let (v_lo, v_hi) = virtual_range(pad, q);
    let real_from = q
        .since_id
        .map_or(0, |s| real.partition_point(|h| h.id <= s));
    let dated = q.start.is_some() || q.end.is_some();
    let start = q.start.map(fmt_time);
    let end = q.end.map(fmt_time);
    let in_window = |h: &HistEntry<E>| {
        start.as_deref().is_none_or(|s| h.created_at.as_str() >= s)
            && end.as_deref().is_none_or(|e| h.created_at.as_str() <= e)
    };
    // With a date filter the real records are scanned (their createdAt is not monotonic).
    let real_hits: Option<Vec<usize>> = dated.then(|| {
        (real_from..real.len())
            .filter(|&i| in_window(&real[i]))
            .collect()
    });
    let v_count = v_hi - v_lo;
    let r_count = real_hits
        .as_ref()
        .map_or((real.len() - real_from) as u64, |h| h.len() as u64);
    let skip = u64::from(q.page.max(1) - 1) * u64::from(q.limit);
    let mut slots = Vec::with_capacity(q.limit as usize);
    let mut pos = skip;
    while slots.len() < q.limit as usize && pos < v_count + r_count {
        if pos < v_count {
            slots.push(Slot::Virtual(v_lo + pos));
        } else {
            let k = (pos - v_count) as usize;
            let i = real_hits.as_ref().map_or(real_from + k, |h| h[k]);
            slots.push(Slot::Real(&real[i]));
        }
        pos += 1;
    }
    HistPage {
        slots,
        total: v_count + r_count,
    }
}

/// The virtual indices `lo..hi` matching `q`'s id and date bounds.
fn virtual_range(pad: &Padding, q: &HistQuery) -> (u64, u64) {
    let n = pad.len();
    let mut lo = q.since_id.map_or(0, |s| pad.first_after(s));
    let mut hi = n;
    if let Some(t) = q.start {
        lo = lo.max(pad.first_not_before(t, 0, n));
    }
    if let Some(t) = q.end {
        // First index strictly after `t`.
        hi = pad.first_not_before(t + ChronoDuration::seconds(1), 0, n);
    }
    (lo.min(hi), hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_since_over_segments() {
        let mut p = Padding::default();
        assert_eq!(p.prepend(5, 10), 50);
        assert_eq!(p.prepend(3, 1), 3);
        // Segments: ids 1,2,3 then 4,14,24,34,44.
        let ids: Vec<i64> = (0..p.len()).map(|i| p.id_at(i)).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 14, 24, 34, 44]);
        assert_eq!(p.span(), 53);
        for since in -1..60 {
            let expect = ids.iter().position(|&id| id > since).unwrap_or(ids.len()) as u64;
            assert_eq!(p.first_after(since), expect, "since {since}");
        }
        assert!(p.time_at(0) <= p.time_at(7));
    }
}
