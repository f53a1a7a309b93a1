//! Test support shared by the integration tests: an isolated Postgres database and an isolated
//! Redis key prefix per test, against the real services (never mocks of them).
#![allow(dead_code)]

pub mod daemon;
pub mod pg;
pub mod proxy;
pub mod redis;
