//! The client side of the control socket, used by `retailcrm-sync ctl` and by tests: connect,
//! send one request line, read one response line, with a timeout on every step and a clear
//! message when no daemon is running.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::error::ControlError;
use super::protocol::{Request, Response};
use super::server::{LineRead, read_line_bounded};

/// Longest response line we accept (a `status` of thousands of projects fits easily).
const MAX_RESPONSE_LINE: usize = 64 * 1024 * 1024;

/// Default time allowed for one request/response round trip: longer than the server's own
/// 30 s handler timeout, so a slow supervisor shows up as the server's `unavailable` answer
/// rather than a client-side timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(40);

/// A connection to a running daemon.
#[derive(Debug)]
pub struct ControlClient {
    /// Socket path, for error messages.
    path: PathBuf,
    /// Buffered read half.
    reader: BufReader<OwnedReadHalf>,
    /// Write half.
    writer: OwnedWriteHalf,
    /// Time allowed per call.
    timeout: Duration,
    /// Reused line buffer.
    line: Vec<u8>,
}

impl ControlClient {
    /// Connects to the daemon at `path`. No socket (or nobody listening) is
    /// [`ControlError::NotRunning`].
    pub async fn connect(path: &Path) -> Result<ControlClient, ControlError> {
        let connect = tokio::time::timeout(DEFAULT_TIMEOUT, UnixStream::connect(path));
        let stream = match connect.await {
            Err(_) => return Err(ControlError::Timeout(DEFAULT_TIMEOUT)),
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                return Err(match err.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                        ControlError::NotRunning {
                            path: path.to_path_buf(),
                        }
                    }
                    io::ErrorKind::PermissionDenied => ControlError::PermissionDenied {
                        path: path.to_path_buf(),
                    },
                    _ => ControlError::Io {
                        action: "connect",
                        path: path.to_path_buf(),
                        source: err,
                    },
                });
            }
        };
        let (read, writer) = stream.into_split();
        Ok(ControlClient {
            path: path.to_path_buf(),
            reader: BufReader::new(read),
            writer,
            timeout: DEFAULT_TIMEOUT,
            line: Vec::new(),
        })
    }

    /// Sets the time allowed per call.
    pub fn with_timeout(mut self, timeout: Duration) -> ControlClient {
        self.timeout = timeout;
        self
    }

    /// Sends `request` and waits for its response. A response with `ok: false` is still
    /// `Ok(response)`; `Err` means the conversation itself failed.
    pub async fn call(&mut self, request: &Request) -> Result<Response, ControlError> {
        let mut line = serde_json::to_vec(request)
            .map_err(|err| ControlError::BadResponse(format!("cannot encode request: {err}")))?;
        line.push(b'\n');
        self.call_raw(&line).await
    }

    /// Sends raw bytes (normally one JSON line) and reads one response line. For tests and
    /// debugging; [`call`](Self::call) is the normal entry point.
    pub async fn call_raw(&mut self, bytes: &[u8]) -> Result<Response, ControlError> {
        let timeout = self.timeout;
        let path = self.path.clone();
        let io_err = |action: &'static str| {
            let path = path.clone();
            move |source: io::Error| ControlError::Io {
                action,
                path,
                source,
            }
        };
        tokio::time::timeout(timeout, self.writer.write_all(bytes))
            .await
            .map_err(|_| ControlError::Timeout(timeout))?
            .map_err(io_err("write"))?;
        self.read_response().await
    }

    /// Reads the next response line (also used after sending garbage by hand).
    pub async fn read_response(&mut self) -> Result<Response, ControlError> {
        let timeout = self.timeout;
        let read = tokio::time::timeout(
            timeout,
            read_line_bounded(&mut self.reader, &mut self.line, MAX_RESPONSE_LINE),
        )
        .await
        .map_err(|_| ControlError::Timeout(timeout))?
        .map_err(|source| ControlError::Io {
            action: "read",
            path: self.path.clone(),
            source,
        })?;
        match read {
            LineRead::Eof => Err(ControlError::Closed),
            LineRead::TooLong => Err(ControlError::BadResponse(format!(
                "response line longer than {MAX_RESPONSE_LINE} bytes"
            ))),
            LineRead::Line => serde_json::from_slice(&self.line)
                .map_err(|err| ControlError::BadResponse(err.to_string())),
        }
    }
}
