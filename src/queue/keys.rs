//! Deleting every key under a prefix (the demo's and the bench's cleanup, the tests' isolation):
//! `SCAN ... MATCH` in batches and `UNLINK`, never the blocking `KEYS`, with the prefix's glob
//! characters escaped so a prefix is matched literally. One implementation, async and blocking
//! (for `Drop`).

/// Keys looked at per `SCAN` round.
const SCAN_COUNT: usize = 1000;

/// The `MATCH` pattern of every key starting with `prefix`.
pub fn prefix_pattern(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('*');
    p
}

/// Deletes every key whose name starts with `prefix`; returns how many.
pub async fn delete_prefix<C>(conn: &mut C, prefix: &str) -> redis::RedisResult<u64>
where
    C: redis::aio::ConnectionLike + Send,
{
    let pattern = prefix_pattern(prefix);
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// [`delete_prefix`] on a blocking connection (for `Drop` impls, which cannot await).
pub fn delete_prefix_blocking(
    conn: &mut redis::Connection,
    prefix: &str,
) -> redis::RedisResult<u64> {
    let pattern = prefix_pattern(prefix);
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(conn)?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK").arg(&keys).query(conn)?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_of_a_prefix_match_literally() {
        assert_eq!(prefix_pattern("rcs-test-1:"), "rcs-test-1:*");
        assert_eq!(prefix_pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
    }
}
