//! The sync engine: runs one job (`sync_orders`, `sync_customers`, `sync_all`, `sync_order(id)`,
//! `sync_customer(id)`) for one project, RetailCRM -> Postgres.
//!
//! - `engine`: the algorithm (snapshot + history walk, pipelined fetch/write, cursor commits);
//! - `mapping`: wire entities -> domain records (pure);
//! - `progress`: live progress for `status` and the CLI bar;
//! - `error`: what failed and how the queue should treat it.

pub mod engine;
pub mod error;
pub mod mapping;
pub mod progress;
pub mod push;

pub use engine::{Engine, JobSpec, RunCounts};
pub use error::SyncError;
pub use progress::{Progress, ProgressSnapshot};
