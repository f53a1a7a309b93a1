//! The queue layer's error type. Every variant says what went wrong and what the caller (or the
//! operator reading the log) should do about it. Redis URLs are never echoed, because they may
//! carry a password.

/// Errors returned by [`crate::queue::JobQueue`].
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis could not be reached, refused the connection, dropped it or did not answer in time.
    /// Nothing acknowledged before the outage is lost; retry the call with backoff.
    #[error(
        "Redis at {addr} is unavailable ({source}); check that Redis is running and reachable \
         (locally: scripts/services.sh), then retry: queued jobs stay in Redis and nothing is lost"
    )]
    Unavailable {
        /// Host and port (or socket path) of the Redis server; never the full URL.
        addr: String,
        /// The underlying client error.
        #[source]
        source: redis::RedisError,
    },

    /// The Redis URL in the configuration could not be parsed.
    #[error(
        "the Redis URL is not valid ({reason}); use the form redis://[:password@]host:port[/db] \
         or unix:///path/to/redis.sock"
    )]
    InvalidUrl {
        /// Why the URL was rejected (never the URL itself).
        reason: String,
    },

    /// Queue options that cannot work (e.g. zero attempts or a zero lease).
    #[error(
        "invalid queue options: {0}; fix the retry settings in [sync] (max_attempts, backoff_base_secs, lease_secs, max_stalls) or [redis] key_prefix"
    )]
    InvalidOptions(String),

    /// The caller's lease is no longer valid: it expired and was reclaimed, the job was handed
    /// to another worker, or the project was purged. The caller must stop working on the job and
    /// must not report its result; the job runs again elsewhere (at-least-once delivery).
    #[error(
        "the lease on job {job_id} was lost (it expired, was handed to another worker or the \
         project was purged); stop working on this job, it will be run again"
    )]
    LeaseLost {
        /// The job whose lease was lost.
        job_id: String,
    },

    /// Redis answered with an error that is not a connectivity problem (e.g. a script error,
    /// out of memory, wrong key type under our prefix).
    #[error(
        "Redis at {addr} rejected a queue command ({source}); check the Redis log and that no \
         other program writes under the queue key prefix"
    )]
    Redis {
        /// Host and port (or socket path) of the Redis server.
        addr: String,
        /// The underlying client error.
        #[source]
        source: redis::RedisError,
    },

    /// Data under the queue prefix could not be decoded.
    #[error(
        "corrupt queue data at {key}: {detail}; inspect it with redis-cli, then requeue or purge \
         the project's queue"
    )]
    Corrupt {
        /// The Redis key holding the bad data.
        key: String,
        /// What was wrong with it.
        detail: String,
    },

    /// A job could not be serialised (should not happen for well-formed jobs).
    #[error("could not serialise job data: {0}; this is a bug, please report it")]
    Serialize(#[from] serde_json::Error),
}

impl QueueError {
    /// Classifies a Redis client error: connectivity problems become [`QueueError::Unavailable`].
    pub(crate) fn from_redis(addr: &str, source: redis::RedisError) -> Self {
        // A Redis that is still loading its data after a restart (LOADING), or a replica
        // being promoted (TRYAGAIN, MASTERDOWN), answers soon: that is unavailability too.
        let not_yet = matches!(
            source.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ClusterDown
            )
        );
        if source.is_io_error()
            || source.is_connection_refusal()
            || source.is_connection_dropped()
            || source.is_timeout()
            || not_yet
        {
            QueueError::Unavailable {
                addr: addr.to_owned(),
                source,
            }
        } else {
            QueueError::Redis {
                addr: addr.to_owned(),
                source,
            }
        }
    }

    /// True if the call may succeed when retried later (Redis was unreachable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Unavailable { .. })
    }
}
