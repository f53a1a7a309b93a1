//! The long-running daemon (`retailcrm-sync run`): actors, lifecycle and process plumbing.
//!
//! - [`lifecycle`]: start-up (wait for Postgres/Redis, migrate, bind the socket), READY, exit;
//! - [`supervisor`]: the root actor; one place for every control call (socket and HTTP API),
//!   signal, reconcile and webhook burst (its `commands` submodule answers the commands);
//! - [`project`]: one actor per active integration, owning its client, scheduler and sync actor;
//! - [`scheduler`]: periodic `sync_all` per project, never piling jobs up;
//! - [`sync_actor`]: takes a project's jobs from Redis one at a time;
//! - [`job_runner`]: runs one leased job on the tokio pool (lease renewal, settle, panics);
//! - [`board`]: live per-project state for `status`;
//! - [`signals`]: SIGHUP / SIGTERM / SIGINT turned into one [`signals::Signal`] enum;
//! - [`outbox_listener`]: `LISTEN retailcrm_outbox`, so platform changes are pushed at once;
//! - [`notify`]: the systemd `sd_notify` protocol (READY, RELOADING, STOPPING, STATUS, watchdog).

pub mod board;
pub mod job_runner;
pub mod lifecycle;
pub mod notify;
pub mod outbox_listener;
pub mod project;
pub mod scheduler;
pub mod signals;
pub mod supervisor;
pub mod sync_actor;
