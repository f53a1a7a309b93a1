//! retailcrm-sync: keeps a loyalty platform's Postgres database in step with its shops'
//! RetailCRM accounts.
//!
//! The crate is one library plus a thin binary (`src/main.rs`). Each top-level module owns one
//! concern; see `ARCHITECTURE.md` for the map and a walk-through of one job.

pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod crm;
pub mod daemon;
pub mod failpoint;
pub mod http;
pub mod metrics;
pub mod mock;
pub mod model;
pub mod queue;
pub mod secret;
pub mod store;
pub mod sync;
pub mod telemetry;
