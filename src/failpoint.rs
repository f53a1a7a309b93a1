//! Crash points for the crash-safety tests: `RETAILCRM_SYNC_FAILPOINT=name:N` makes the N-th
//! passage through `hit("name")` abort the process at once (as `kill -9` would: no destructors,
//! no flush), so a test can stop the daemon at an exact instant (before or after a RetailCRM
//! call, before a commit) and check that a restart neither loses nor duplicates anything.
//! Unset (always, in production) a hit costs one relaxed atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the crash point.
pub const ENV: &str = "RETAILCRM_SYNC_FAILPOINT";

struct Point {
    name: String,
    at: u64,
    seen: AtomicU64,
}

fn point() -> Option<&'static Point> {
    static POINT: OnceLock<Option<Point>> = OnceLock::new();
    POINT
        .get_or_init(|| {
            let raw = std::env::var(ENV).ok()?;
            let (name, at) = raw.rsplit_once(':')?;
            Some(Point {
                name: name.to_string(),
                at: at.parse().ok()?,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Passes crash point `name`; aborts the process on its configured passage.
pub fn hit(name: &str) {
    let Some(p) = point() else {
        return;
    };
    if p.name == name && p.seen.fetch_add(1, Ordering::Relaxed) + 1 == p.at {
        eprintln!("failpoint {name}:{} reached: aborting", p.at);
        std::process::abort();
    }
}
