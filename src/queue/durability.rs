//! Does the Redis behind the queue keep what it is given? A job is durable only as far as Redis
//! is: without persistence a Redis restart forgets every waiting job, retry and dead letter, and
//! under an evicting `maxmemory-policy` Redis may drop job keys when memory runs short. The
//! daemon checks this at start-up and reports it in the log and in `ctl status`, so an operator
//! learns it before a restart does the teaching.
//!
//! What is at stake: queued work (manual triggers, pending retries, dead-letter records), not
//! orders. Cursors live in Postgres, so the next scheduled `sync_all` still brings every change.

use std::collections::HashMap;

use super::{JobQueue, QueueError, Result};

/// The persistence settings of the queue's Redis, as `CONFIG GET` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisDurability {
    /// `appendonly`: the append-only file is on.
    pub appendonly: bool,
    /// `save`: the RDB snapshot schedule; empty when snapshots are off.
    pub save: String,
    /// `maxmemory-policy`: what Redis drops when `maxmemory` is reached.
    pub maxmemory_policy: String,
}

impl RedisDurability {
    /// Builds the settings from `CONFIG GET` pairs (missing keys read as Redis's defaults would
    /// not: as the least durable value, so a gap is reported rather than assumed fine).
    pub fn from_config(pairs: &HashMap<String, String>) -> Self {
        let get = |k: &str| {
            pairs
                .get(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        RedisDurability {
            appendonly: get("appendonly").eq_ignore_ascii_case("yes"),
            save: get("save"),
            maxmemory_policy: get("maxmemory-policy"),
        }
    }

    /// What is wrong for a job queue, each as a sentence that says what to do; empty when
    /// Redis is set up as the queue needs (AOF on, no eviction).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.appendonly {
            let lost = if self.save.is_empty() {
                "Redis keeps nothing on disk (appendonly no, no snapshots): a Redis restart \
                 forgets every queued job, pending retry and dead letter"
            } else {
                "Redis persists only by snapshots (appendonly no): a Redis crash forgets the jobs \
                 queued since the last snapshot"
            };
            out.push(format!(
                "{lost}. Orders are not lost (cursors are in Postgres; the next scheduled sync \
                 catches up), but manual triggers and retries are. Set `appendonly yes` in \
                 redis.conf (or `CONFIG SET appendonly yes` and `CONFIG REWRITE`)."
            ));
        }
        if !self.maxmemory_policy.is_empty() && self.maxmemory_policy != "noeviction" {
            out.push(format!(
                "Redis maxmemory-policy is `{}`: when memory runs short Redis may evict job keys \
                 and jobs vanish. Set `maxmemory-policy noeviction` (Redis then refuses writes \
                 instead, which the daemon reports and retries).",
                self.maxmemory_policy
            ));
        }
        out
    }
}

impl JobQueue {
    /// Reads the persistence settings of the queue's Redis. Fails when Redis cannot be reached
    /// or refuses `CONFIG` (managed services often rename or forbid it).
    pub async fn durability(&self) -> Result<RedisDurability> {
        let mut conn = self.conn.clone();
        let mut pairs: HashMap<String, String> = HashMap::new();
        for key in ["appendonly", "save", "maxmemory-policy"] {
            let got: HashMap<String, String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(|e| QueueError::from_redis(&self.addr, e))?;
            pairs.extend(got);
        }
        Ok(RedisDurability::from_config(&pairs))
    }

    /// Whether Redis answers a `PING` (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| QueueError::from_redis(&self.addr, e))?;
        Ok(())
    }

    /// [`RedisDurability::warnings`] of the queue's Redis; a Redis that cannot be asked is a
    /// warning too (the operator must then check by hand).
    pub async fn durability_warnings(&self) -> Vec<String> {
        match self.durability().await {
            Ok(durability) => durability.warnings(),
            Err(e) => vec![format!(
                "could not read the Redis persistence settings ({e}); make sure Redis runs \
                 with `appendonly yes` and `maxmemory-policy noeviction`, or queued jobs can be \
                 lost"
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(appendonly: &str, save: &str, policy: &str) -> RedisDurability {
        let pairs = [
            ("appendonly", appendonly),
            ("save", save),
            ("maxmemory-policy", policy),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        RedisDurability::from_config(&pairs)
    }

    #[test]
    fn aof_and_noeviction_is_quiet() {
        assert!(of("yes", "", "noeviction").warnings().is_empty());
        assert!(of("yes", "3600 1", "noeviction").warnings().is_empty());
    }

    #[test]
    fn no_persistence_says_jobs_are_forgotten_and_how_to_fix_it() {
        let w = of("no", "", "noeviction").warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("keeps nothing on disk"), "{}", w[0]);
        assert!(w[0].contains("appendonly yes"), "{}", w[0]);
    }

    #[test]
    fn snapshots_only_is_a_smaller_warning() {
        let w = of("no", "3600 1 300 100", "noeviction").warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("only by snapshots"), "{}", w[0]);
    }

    #[test]
    fn an_evicting_policy_is_reported() {
        let w = of("yes", "", "allkeys-lru").warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("allkeys-lru"), "{}", w[0]);
    }

    #[test]
    fn missing_answers_read_as_not_durable() {
        assert_eq!(
            RedisDurability::from_config(&HashMap::new())
                .warnings()
                .len(),
            1
        );
    }
}
