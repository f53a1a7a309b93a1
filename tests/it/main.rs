//! The integration suite as one test binary: every module below is one concern's tests, all
//! against the real Postgres and Redis (a database and a key prefix per test, so they run in
//! parallel). One binary instead of one per file: a single link of the crate and its
//! dependencies instead of twenty, which keeps CI's build time and disk use small.
//!
//! Three suites stay their own binaries because they change process-wide state: environment
//! variables (`control_notify`), signal dispositions (`control_signals`) and the global
//! `tracing` subscriber (`crm_secrets`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod sync_support;

mod bench_smoke;
mod config_example;
mod config_validate;
mod control_cli;
mod control_server;
mod crm_anchor;
mod crm_client;
mod crm_decode;
mod daemon_control;
mod daemon_sync;
mod http_api;
mod http_ui;
mod http_webhooks;
mod integration_test_cmd;
mod migrations;
mod mock_cli;
mod mock_server;
mod mock_strict;
mod mock_trigger;
mod papercuts;
mod push_sync;
mod queue_load;
mod queue_outage;
mod queue_semantics;
mod store_batches;
mod store_integration_cli;
mod store_integrations;
mod store_phones;
mod store_prepared;
mod store_throughput;
mod sync_engine;
mod sync_phones;
mod sync_resilience;
mod sync_snapshot;
mod systemd_unit;
