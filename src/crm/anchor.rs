//! Finding the newest history record id of a stream with a bounded number of cheap requests.
//!
//! RetailCRM refuses history requests with a deep `page` (`Use the shift of the
//! filter[sinceId] instead of page parameter`, `retailcrm-api.md` 3b) and an account's history
//! holds millions of records, so "read the last page" is not an option. What the API does offer
//! is `filter[sinceId]=x`: the records with an id greater than `x`, oldest first, with the
//! number of them in `pagination.totalCount`. An empty answer proves that nothing is newer than
//! `x`; a non-empty one proves that the ids it shows exist. That is enough for a search:
//!
//! 1. one request without a filter gives the oldest records: a lower bound `lo` (an id that
//!    exists), the history's size and the density of its ids;
//! 2. each probe `sinceId = x` either is empty (`hi = x`: nothing newer than `x`) or moves `lo`
//!    to the newest id it shows; when it is the last page (it shows everything newer than `x`),
//!    its newest id is the answer;
//! 3. `x` is chosen by interpolation (where the `totalCount` records above `lo` should end,
//!    at the density seen so far), with galloping (jumps growing fourfold) while no upper bound
//!    is known and bisection whenever interpolation did not at least halve the interval. A
//!    dense or evenly sparse history is found in 2-4 requests; an adversarial one in about
//!    `2 * log2(range / limit)`.
//!
//! Nothing here reads a clock, so the account's clock need not agree with ours. Records
//! created while the search runs only move the true answer up: the result is always an id that
//! existed and was the newest at some instant of the search, which is what an anchor needs (a
//! change made later is at worst seen twice by the history walk, never missed). When the budget
//! runs out the best lower bound is returned, marked inexact: still a correct anchor, only a
//! longer walk.
//!
//! The search is generic over the probe (a closure doing one request) so it is unit-tested on
//! synthetic histories of any size without a server.

use std::future::Future;

/// What one history request showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// The ids of the records on the page (any order; poison records whose id was readable
    /// count too).
    pub ids: Vec<i64>,
    /// `pagination.totalCount`: the number of records matching the request, when the
    /// response carried a plausible one (at least as many as the page shows).
    pub total: Option<u64>,
    /// True when the page holds every matching record (`currentPage >= totalPageCount`, or
    /// fewer records than the limit).
    pub last: bool,
    /// The response's `generatedAt` (the account's clock), raw.
    pub generated_at: Option<String>,
}

impl Probe {
    fn max(&self) -> Option<i64> {
        self.ids.iter().copied().max()
    }

    /// Mean distance between neighbouring ids on the page (1.0 when it cannot tell).
    fn density(&self) -> Option<f64> {
        let (min, max) = (self.ids.iter().min()?, self.ids.iter().max()?);
        if self.ids.len() < 2 || max <= min {
            return None;
        }
        Some(((max - min) as f64 / (self.ids.len() - 1) as f64).max(1.0))
    }

    /// Records above the page's newest id, by `totalCount`.
    fn remaining(&self) -> Option<u64> {
        self.total.map(|t| t.saturating_sub(self.ids.len() as u64))
    }
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The newest id found (`None`: the history is empty).
    pub newest: Option<i64>,
    /// Requests spent.
    pub requests: u32,
    /// False when the budget ran out: `newest` is then only a lower bound (still a safe
    /// anchor, the history walk from it is longer).
    pub exact: bool,
    /// `generatedAt` of the last response (the account's clock when `newest` was the newest
    /// or later): every entity created before it has its creation record at or below
    /// `newest`, so it is in the list a snapshot reads; anything later is in history after it.
    pub generated_at: Option<String>,
}

/// Requests a search may spend before it settles for its best lower bound.
pub const DEFAULT_BUDGET: u32 = 40;

/// Finds the newest history id. `probe(None)` requests the history without a filter (page 1),
/// `probe(Some(x))` with `filter[sinceId]=x`; both with page size `limit`. Never more than
/// `budget` probes.
pub async fn newest_id<F, Fut, E>(mut probe: F, limit: u32, budget: u32) -> Result<Anchor, E>
where
    F: FnMut(Option<i64>) -> Fut,
    Fut: Future<Output = Result<Probe, E>>,
{
    let limit = i64::from(limit.max(1));
    let first = probe(None).await?;
    let mut seen_at = first.generated_at.clone();
    let mut requests = 1u32;
    let Some(mut lo) = first.max() else {
        return Ok(Anchor {
            newest: None,
            requests,
            exact: true,
            generated_at: seen_at.clone(),
        });
    };
    if first.last {
        return Ok(Anchor {
            newest: Some(lo),
            requests,
            exact: true,
            generated_at: seen_at.clone(),
        });
    }
    let mut density = first.density().unwrap_or(1.0);
    let mut remaining = first.remaining();
    // No record is newer than `hi` (an empty probe said so).
    let mut hi: Option<i64> = None;
    let mut gallop = (density * limit as f64).max(1.0) as i64;
    let mut bisect_next = false;
    // Interpolated probes that did not land on the end: after two, `totalCount` or the density
    // is not to be trusted here, and galloping plus bisection take over.
    let mut misses = 0u32;

    while requests < budget {
        let interp = remaining.filter(|_| misses < 2).map(|r| {
            // Aim a little below the end, so the probe shows the end on one page.
            let above = (r as i64 - limit / 2).max(0);
            (above as f64 * density) as i64
        });
        let x = match hi {
            Some(h) if h - lo <= limit => lo, // at most `limit` ids left: one page shows them
            Some(h) => {
                let mid = lo + (h - lo) / 2;
                match interp {
                    Some(d) if !bisect_next => (lo + d).clamp(lo + 1, h - 1),
                    _ => mid,
                }
            }
            None if remaining.is_some_and(|r| r <= limit as u64) => lo,
            None => {
                let jump = interp.unwrap_or(0).max(gallop);
                gallop = gallop.saturating_mul(4);
                lo.saturating_add(jump.max(1))
            }
        };
        let width_before = hi.map(|h| h - lo);
        let interpolated = interp.is_some() && !(hi.is_some() && bisect_next);
        let p = probe(Some(x)).await?;
        requests += 1;
        if p.generated_at.is_some() {
            seen_at.clone_from(&p.generated_at);
        }
        match p.max() {
            None => hi = Some(hi.map_or(x, |h| h.min(x))),
            Some(m) => {
                lo = lo.max(m);
                if p.last {
                    return Ok(Anchor {
                        newest: Some(lo),
                        requests,
                        exact: true,
                        generated_at: seen_at.clone(),
                    });
                }
                if interpolated {
                    misses += 1;
                }
                if let Some(d) = p.density() {
                    density = d;
                }
                remaining = p.remaining();
            }
        }
        if let Some(h) = hi {
            if h <= lo {
                // Nothing newer than `lo`, and `lo` exists.
                return Ok(Anchor {
                    newest: Some(lo),
                    requests,
                    exact: true,
                    generated_at: seen_at.clone(),
                });
            }
            // Interpolation that did not halve the interval gives way to bisection once.
            bisect_next = !bisect_next && width_before.is_some_and(|w| (h - lo) * 2 > w);
        }
    }
    Ok(Anchor {
        newest: Some(lo),
        requests,
        exact: false,
        generated_at: seen_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A synthetic history: sorted ids, served like RetailCRM serves `sinceId` pages.
    struct History {
        ids: RefCell<Vec<i64>>,
        with_total: bool,
        /// Ids appended after every probe (records created while the search runs).
        grow_per_probe: i64,
    }

    impl History {
        fn new(ids: Vec<i64>) -> Self {
            History {
                ids: RefCell::new(ids),
                with_total: true,
                grow_per_probe: 0,
            }
        }

        fn probe(&self, since: Option<i64>, limit: usize) -> Probe {
            let ids = self.ids.borrow();
            let start = since.map_or(0, |s| ids.partition_point(|&i| i <= s));
            let rest = &ids[start..];
            let page: Vec<i64> = rest.iter().take(limit).copied().collect();
            let out = Probe {
                generated_at: Some(format!("2026-01-01 00:00:{:02}", rest.len() % 60)),
                last: rest.len() <= limit,
                total: self.with_total.then_some(rest.len() as u64),
                ids: page,
            };
            drop(ids);
            if self.grow_per_probe > 0 {
                let mut ids = self.ids.borrow_mut();
                let top = ids.last().copied().unwrap_or(0);
                ids.extend((1..=self.grow_per_probe).map(|k| top + k));
            }
            out
        }

        fn newest(&self) -> Option<i64> {
            self.ids.borrow().last().copied()
        }
    }

    fn search(h: &History, limit: u32) -> Anchor {
        let fut = newest_id(
            |since| {
                let p = h.probe(since, limit as usize);
                async move { Ok::<_, ()>(p) }
            },
            limit,
            DEFAULT_BUDGET,
        );
        futures::executor::block_on(fut).unwrap()
    }

    #[test]
    fn empty_and_tiny_histories() {
        assert_eq!(search(&History::new(vec![]), 20).newest, None);
        let one = search(&History::new(vec![42]), 20);
        assert_eq!((one.newest, one.requests, one.exact), (Some(42), 1, true));
        let full_page = History::new((1..=20).collect());
        assert_eq!(search(&full_page, 20).newest, Some(20));
        let two_pages = History::new((1..=21).collect());
        assert_eq!(search(&two_pages, 20).newest, Some(21));
    }

    #[test]
    fn ten_million_dense_records_take_a_handful_of_requests() {
        let h = History::new((1..=10_000_000).collect());
        let a = search(&h, 20);
        assert_eq!(a.newest, Some(10_000_000));
        assert!(a.exact);
        assert!(a.requests <= 5, "{a:?}");
    }

    #[test]
    fn sparse_and_clustered_ids_stay_within_the_budget() {
        // Evenly sparse.
        let h = History::new((1..=2_000_000).map(|i| i * 37).collect());
        let a = search(&h, 20);
        assert_eq!(a.newest, h.newest());
        assert!(a.requests <= 6, "{a:?}");
        // Clustered: a dense old block, a huge gap, then a burst (density misleads).
        let mut ids: Vec<i64> = (1..=1_000_000).collect();
        ids.extend((0..500_000).map(|i| 9_000_000_000 + i * 3));
        ids.extend((0..3_000).map(|i| 40_000_000_000 + i));
        let h = History::new(ids);
        let a = search(&h, 20);
        assert_eq!(a.newest, h.newest());
        assert!(a.exact && a.requests <= DEFAULT_BUDGET, "{a:?}");
    }

    #[test]
    fn without_total_count_galloping_and_bisection_find_it() {
        let mut h = History::new((1..=10_000_000).map(|i| i * 3).collect());
        h.with_total = false;
        let a = search(&h, 20);
        assert_eq!(a.newest, h.newest());
        assert!(a.exact && a.requests <= DEFAULT_BUDGET, "{a:?}");
    }

    #[test]
    fn records_arriving_during_the_search_still_give_an_id_that_exists() {
        let mut h = History::new((1..=3_000_000).collect());
        h.grow_per_probe = 7;
        let before = h.newest().unwrap();
        let a = search(&h, 20);
        let newest = a.newest.unwrap();
        assert!(newest >= before, "{a:?}");
        assert!(h.ids.borrow().binary_search(&newest).is_ok());
    }

    #[test]
    fn a_lying_total_count_costs_requests_not_correctness() {
        struct Liar(History);
        let h = Liar(History::new((1..=5_000_000).map(|i| i * 11).collect()));
        let fut = newest_id(
            |since| {
                let mut p = h.0.probe(since, 20);
                p.total = p.total.map(|t| t / 1000); // far too small
                async move { Ok::<_, ()>(p) }
            },
            20,
            DEFAULT_BUDGET,
        );
        let a = futures::executor::block_on(fut).unwrap();
        assert_eq!(a.newest, h.0.newest(), "{a:?}");
        assert!(a.exact);
    }

    #[test]
    fn an_exhausted_budget_returns_a_lower_bound() {
        let mut h = History::new((1..=10_000_000).map(|i| i * 3).collect());
        h.with_total = false;
        let fut = newest_id(
            |since| {
                let p = h.probe(since, 20);
                async move { Ok::<_, ()>(p) }
            },
            20,
            3,
        );
        let a = futures::executor::block_on(fut).unwrap();
        assert!(!a.exact);
        assert_eq!(a.requests, 3);
        let lo = a.newest.unwrap();
        assert!(lo < h.newest().unwrap() && h.ids.borrow().binary_search(&lo).is_ok());
    }
}
