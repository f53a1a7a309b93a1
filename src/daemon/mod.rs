//! The long-running daemon (`retailcrm-sync run`).
//!
//! For now this holds the process-level plumbing the supervisor builds on:
//! - [`signals`]: SIGHUP / SIGTERM / SIGINT turned into one [`signals::Signal`] enum on a
//!   channel, so signals and control commands are handled in one place;
//! - [`notify`]: the systemd `sd_notify` protocol (READY, RELOADING, STOPPING, STATUS, watchdog).

pub mod notify;
pub mod signals;
