//! Isolated Redis key prefix per test against the real Redis (never a mock): every test gets its
//! own random prefix, so tests run in parallel without seeing each other's keys, and removes its
//! keys at the end: hold a [`PrefixGuard`] (cleans up even when the test panics) or call
//! [`cleanup`].

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use retailcrm_sync::clock::SharedClock;
use retailcrm_sync::queue::{JobQueue, QueueOptions};

/// Redis used by the tests: `RCSYNC_TEST_REDIS_URL`, else the local service.
pub fn redis_url() -> String {
    std::env::var("RCSYNC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A fresh, unique key prefix.
pub fn test_prefix() -> String {
    format!("rcsync-test-{}", uuid::Uuid::new_v4().simple())
}

/// Default queue options under a fresh prefix.
pub fn test_options() -> QueueOptions {
    QueueOptions {
        key_prefix: test_prefix(),
        ..QueueOptions::default()
    }
}

/// A queue with default options under a fresh prefix.
pub async fn test_queue(clock: SharedClock) -> JobQueue {
    test_queue_with(test_options(), clock).await
}

/// A queue with the given options (use [`test_options`] as the base so the prefix is unique).
pub async fn test_queue_with(opts: QueueOptions, clock: SharedClock) -> JobQueue {
    JobQueue::connect(&redis_url(), opts, clock)
        .await
        .expect("Redis must be running for the queue tests (scripts/services.sh)")
}

/// Deletes every key under the queue's prefix.
pub async fn cleanup(queue: &JobQueue) {
    drop_prefix(&queue.options().key_prefix).await;
}

/// Deletes every key under `prefix`.
pub async fn drop_prefix(prefix: &str) {
    let client = redis::Client::open(redis_url()).expect("test Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to test Redis");
    retailcrm_sync::queue::keys::delete_prefix(&mut conn, &format!("{prefix}:"))
        .await
        .expect("delete the test's keys");
}

/// Number of keys under `prefix` (to check cleanup and purge).
pub async fn count_keys(prefix: &str) -> usize {
    let client = redis::Client::open(redis_url()).expect("test Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to test Redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.len()
}

/// Deletes every key under a prefix when dropped, so a failing (panicking) test leaves nothing
/// behind either. Uses a blocking connection because `Drop` cannot await.
pub struct PrefixGuard {
    prefix: String,
}

impl PrefixGuard {
    /// Guards the queue's key prefix.
    pub fn new(queue: &JobQueue) -> Self {
        Self {
            prefix: queue.options().key_prefix.clone(),
        }
    }
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let _ = retailcrm_sync::queue::keys::delete_prefix_blocking(
            &mut conn,
            &format!("{}:", self.prefix),
        );
    }
}

/// A private redis-server child (AOF with `appendfsync always`, no eviction) for tests that
/// crash Redis or change its settings, so the shared Redis is never disturbed; killed on drop.
pub struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    pub fn start(dir: &Path, port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
            ])
            .args(["--dir", dir.to_str().expect("utf-8 temp dir")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child }
    }

    /// Like `kill -9`: no shutdown, no final save.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
