//! Errors of the control layer (binding the socket, talking to the daemon). Each message says
//! what went wrong and what to do about it; request-level failures travel as
//! [`crate::control::protocol::Response`] errors instead and never become a `ControlError`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A failure of the control server or client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Another daemon answers on the socket.
    #[error(
        "another retailcrm-sync daemon is already running on {path} (it accepted a connection); \
         stop it first (`systemctl stop retailcrm-sync`) or use a different control.socket_path"
    )]
    AlreadyRunning {
        /// The socket path.
        path: PathBuf,
    },

    /// Something that is not a socket sits at the socket path; we will not delete it.
    #[error(
        "{path} exists and is not a Unix socket; refusing to remove it: move it away or choose \
         another control.socket_path"
    )]
    NotASocket {
        /// The path.
        path: PathBuf,
    },

    /// Creating, binding or configuring the socket failed.
    #[error(
        "cannot {action} control socket {path}: {source}; check that the directory exists and \
         is writable by the daemon's user (systemd creates it with RuntimeDirectory=)"
    )]
    Bind {
        /// What we were doing (`bind`, `chmod`, `create the directory of`, ...).
        action: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// No daemon listens on the socket.
    #[error(
        "daemon is not running (no socket at {path}) — start it with \
         `systemctl start retailcrm-sync` or `retailcrm-sync run`"
    )]
    NotRunning {
        /// The socket path.
        path: PathBuf,
    },

    /// The socket exists but we may not connect.
    #[error(
        "permission denied on control socket {path}; run as root, as the retailcrm-sync user, or \
         as a member of its group (`usermod -aG retailcrm-sync $USER`)"
    )]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },

    /// Connecting, reading or writing failed.
    #[error("control socket {path}: {action} failed: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The daemon did not answer in time.
    #[error(
        "the daemon did not answer within {0:?}; it may be overloaded or stuck: check \
         `journalctl -u retailcrm-sync`"
    )]
    Timeout(Duration),

    /// The daemon closed the connection without answering.
    #[error(
        "the daemon closed the connection without answering; it may be shutting down: check \
         `journalctl -u retailcrm-sync`"
    )]
    Closed,

    /// The daemon's answer was not a valid response line.
    #[error(
        "the daemon's answer is not a valid response ({0}); are `ctl` and the daemon the same \
         version?"
    )]
    BadResponse(String),
}
