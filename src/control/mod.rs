//! The control plane: a Unix socket speaking NDJSON, through which operators (and
//! `retailcrm-sync ctl`) ask the daemon for status and tell it to trigger, reload, pause...
//!
//! - [`protocol`]: request/response types and the status payloads the supervisor fills;
//! - [`server`]: binds the socket (refusing a second daemon, cleaning a stale file), reads lines
//!   with a hard length limit, checks `SO_PEERCRED` for mutating commands and forwards every
//!   request as one [`server::ControlCall`] to the supervisor, which answers on a oneshot;
//! - [`client`]: the client side used by `ctl` and by tests;
//! - [`error`]: [`ControlError`], failures of binding, connecting and talking.
//!
//! Wiring it into the daemon (the supervisor owns the receiving end):
//!
//! ```no_run
//! use retailcrm_sync::control::{ControlServer, Request, Response};
//! use retailcrm_sync::control::protocol::Pong;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), retailcrm_sync::control::ControlError> {
//! let server = ControlServer::bind("/run/retailcrm-sync/control.sock".as_ref(), 0o660)?;
//! let (tx, mut calls) = tokio::sync::mpsc::channel(64);
//! let shutdown = CancellationToken::new();
//! tokio::spawn(server.serve(tx, shutdown.clone()));
//! while let Some(call) = calls.recv().await {
//!     let response = match call.request {
//!         Request::Ping => Response::ok(Pong { pong: true }),
//!         _ => Response::ok_empty(), // the supervisor answers every command here
//!     };
//!     let _ = call.reply.send(response);
//! }
//! # Ok(())
//! # }
//! ```

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
