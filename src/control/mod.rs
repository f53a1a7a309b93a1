//! The control plane: a Unix socket speaking NDJSON, through which operators (and
//! `retailcrm-sync ctl`) ask the daemon for status and tell it to trigger, reload, pause...
//!
//! - [`protocol`]: request/response types and the status payloads the supervisor fills;
//! - [`server`]: binds the socket (refusing a second daemon, cleaning a stale file), reads lines
//!   with a hard length limit, checks `SO_PEERCRED` for mutating commands and forwards every
//!   request as one [`server::ControlCall`] to the supervisor, which answers on a oneshot;
//! - [`client`]: the client side used by `ctl` and by tests;
//! - [`error`]: [`ControlError`], failures of binding, connecting and talking.

pub mod client;
pub mod error;
pub mod protocol;
pub mod server;

pub use client::ControlClient;
pub use error::ControlError;
pub use protocol::{ErrorCode, Request, Response};
pub use server::{ControlCall, ControlServer, PeerInfo, ServerOptions};

/// Default control socket path (overridden by `control.socket_path` in the config).
pub const DEFAULT_SOCKET_PATH: &str = "/run/retailcrm-sync/control.sock";
