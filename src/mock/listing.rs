//! List requests of the mock (`/orders`, `/customers`): the filters RetailCRM documents, parsed
//! from the query (PHP-style `[]` and `[0]` array keys alike), and the sort order pages are served
//! in ([`ListOrder`]).
//!
//! Filters (combined with AND): `filter[ids][]`, `filter[externalIds][]`, `filter[sites][]` on
//! both lists; `filter[numbers][]`, `filter[createdAtFrom]`, `filter[createdAtTo]` on orders;
//! `filter[dateFrom]`, `filter[dateTo]` (creation window) on customers. Dates are `Y-m-d` or
//! `Y-m-d H:i:s` in the account timezone, both bounds inclusive, a date-only upper bound means
//! the end of that day; anything else is an input error (400). Unknown filters are ignored, as
//! RetailCRM does.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::data::fmt_time;

/// The order list pages are served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListOrder {
    /// Highest id first (the default, what RetailCRM appears to do).
    #[default]
    NewestFirst,
    /// Lowest id first.
    OldestFirst,
    /// Every request serves the matching entities in a different pseudo-random order (from
    /// `seed` and a per-request counter), like an unstable sort: paging by `page` over it may
    /// skip and repeat entities.
    Unstable {
        /// Seed of the permutations.
        seed: u64,
    },
}

impl std::str::FromStr for ListOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "newest" => Ok(ListOrder::NewestFirst),
            "oldest" => Ok(ListOrder::OldestFirst),
            "unstable" => Ok(ListOrder::Unstable { seed: 1 }),
            other => Err(format!(
                "unknown list order {other:?}: use newest, oldest or unstable"
            )),
        }
    }
}

/// A list filter that cannot be read (answered 400 `Errors in the input parameters`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    /// The parameter, e.g. `filter[createdAtFrom]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The filters of one list request. Empty vectors and `None` mean "no such filter".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ListFilter {
    /// `filter[ids][]`; `None` when absent (an empty list is absent too).
    pub ids: Option<Vec<i64>>,
    /// `filter[externalIds][]`.
    pub external_ids: Vec<String>,
    /// `filter[numbers][]` (orders).
    pub numbers: Vec<String>,
    /// `filter[sites][]`.
    pub sites: Vec<String>,
    /// Lower creation bound, `Y-m-d H:i:s` (inclusive).
    pub created_from: Option<String>,
    /// Upper creation bound, `Y-m-d H:i:s` (inclusive).
    pub created_to: Option<String>,
}

/// Values of the array parameter `name` (e.g. `filter[ids]`): `name[]=a` and `name[0]=a` alike.
pub fn array_param<'a>(q: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| {
            k.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('['))
                .and_then(|rest| rest.strip_suffix(']'))
                .is_some_and(|inner| inner.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|(_, v)| v.as_str())
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Parses `Y-m-d H:i:s` or `Y-m-d`; a date alone is the start of the day, or its end when
/// `end_of_day`.
pub fn parse_bound(field: &str, v: &str, end_of_day: bool) -> Result<NaiveDateTime, FilterError> {
    let v = v.trim();
    if let Ok(t) = NaiveDateTime::parse_from_str(v, crate::crm::decode::CRM_DATETIME_FORMAT) {
        return Ok(t);
    }
    let bad = || FilterError {
        field: field.to_string(),
        message: "This value is not a valid datetime.".to_string(),
    };
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| bad())?;
    let time = if end_of_day {
        NaiveTime::from_hms_opt(23, 59, 59)
    } else {
        NaiveTime::from_hms_opt(0, 0, 0)
    };
    Ok(d.and_time(time.ok_or_else(bad)?))
}

fn bound(
    q: &[(String, String)],
    field: &str,
    end_of_day: bool,
) -> Result<Option<String>, FilterError> {
    param(q, field)
        .map(|v| parse_bound(field, v, end_of_day).map(fmt_time))
        .transpose()
}

impl ListFilter {
    /// Reads the filters of `/orders` (`orders == true`) or `/customers`.
    pub fn parse(q: &[(String, String)], orders: bool) -> Result<ListFilter, FilterError> {
        let raw_ids = array_param(q, "filter[ids]");
        let ids = if raw_ids.is_empty() {
            None
        } else {
            Some(
                raw_ids
                    .iter()
                    .map(|s| s.trim().parse::<i64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| FilterError {
                        field: "filter[ids]".into(),
                        message: "This value is not valid.".into(),
                    })?,
            )
        };
        let strings = |name: &str| -> Vec<String> {
            array_param(q, name)
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        let (from, to) = if orders {
            ("filter[createdAtFrom]", "filter[createdAtTo]")
        } else {
            ("filter[dateFrom]", "filter[dateTo]")
        };
        Ok(ListFilter {
            ids,
            external_ids: strings("filter[externalIds]"),
            numbers: if orders {
                strings("filter[numbers]")
            } else {
                Vec::new()
            },
            sites: strings("filter[sites]"),
            created_from: bound(q, from, false)?,
            created_to: bound(q, to, true)?,
        })
    }

    /// True when the creation time `created_at` (`Y-m-d H:i:s`) is inside the window.
    pub fn created_ok(&self, created_at: &str) -> bool {
        self.created_from.as_deref().is_none_or(|f| created_at >= f)
            && self.created_to.as_deref().is_none_or(|t| created_at <= t)
    }

    /// True when the site is allowed.
    pub fn site_ok(&self, site: &str) -> bool {
        self.sites.is_empty() || self.sites.iter().any(|s| s == site)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The ids of one page out of `ids` (ascending), in `order`. `request` numbers the request
/// (it varies the unstable order). O(limit).
pub fn page_ids(ids: &[i64], page: u32, limit: u32, order: ListOrder, request: u64) -> Vec<i64> {
    let total = ids.len();
    let skip = (page.saturating_sub(1) as usize).saturating_mul(limit as usize);
    if skip >= total {
        return Vec::new();
    }
    let end = (skip + limit as usize).min(total);
    match order {
        ListOrder::NewestFirst => (skip..end).map(|k| ids[total - 1 - k]).collect(),
        ListOrder::OldestFirst => ids[skip..end].to_vec(),
        ListOrder::Unstable { seed } => {
            // An affine permutation k -> (a*k + b) mod n, a coprime to n: a different order per
            // request without touching the other entities.
            let n = total as u64;
            let mut rng = StdRng::seed_from_u64(seed ^ request.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut a = rng.random_range(1..=n.max(1));
            while gcd(a, n) != 1 {
                a = a % n + 1;
            }
            let b = rng.random_range(0..n.max(1));
            (skip..end)
                .map(|k| ids[((a as u128 * k as u128 + b as u128) % n as u128) as usize])
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn indexed_and_bracket_arrays() {
        let a = q(&[("filter[ids][0]", "5"), ("filter[ids][1]", "7")]);
        let b = q(&[("filter[ids][]", "5"), ("filter[ids][]", "7")]);
        assert_eq!(
            ListFilter::parse(&a, true).unwrap(),
            ListFilter::parse(&b, true).unwrap()
        );
        assert!(array_param(&q(&[("filter[idsx][]", "1")]), "filter[ids]").is_empty());
    }

    #[test]
    fn date_bounds() {
        let f = ListFilter::parse(
            &q(&[
                ("filter[createdAtFrom]", "2025-01-02"),
                ("filter[createdAtTo]", "2025-01-03"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(f.created_from.as_deref(), Some("2025-01-02 00:00:00"));
        assert_eq!(f.created_to.as_deref(), Some("2025-01-03 23:59:59"));
        assert!(f.created_ok("2025-01-03 23:59:59"));
        assert!(!f.created_ok("2025-01-04 00:00:00"));
        assert!(ListFilter::parse(&q(&[("filter[dateFrom]", "yesterday")]), false).is_err());
    }

    #[test]
    fn unstable_pages_are_permutations() {
        let ids: Vec<i64> = (1..=57).collect();
        let order = ListOrder::Unstable { seed: 3 };
        let mut all: Vec<i64> = (1..=3)
            .flat_map(|p| page_ids(&ids, p, 20, order, 9))
            .collect();
        all.sort_unstable();
        assert_eq!(all, ids);
        assert_ne!(
            page_ids(&ids, 1, 20, order, 1),
            page_ids(&ids, 1, 20, order, 2)
        );
    }
}
