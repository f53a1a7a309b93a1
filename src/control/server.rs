//! The control socket server.
//!
//! Shape (after mini-redis's `Listener`): one accept loop, one task per connection, a semaphore
//! capping open connections. Each connection reads request lines with a hard length limit (a
//! longer line is answered with `line_too_long` and skipped *without buffering it*), parses them
//! ([`Request::parse_line`]), checks the peer's credentials for mutating commands and forwards the
//! request as one [`ControlCall`] on an mpsc channel. The supervisor handles every call in one
//! place and answers on the call's oneshot. The server never interprets commands itself, and no
//! input can make it panic or stop: a bad line only earns a JSON error on that connection.
//!
//! A client that connects and says nothing costs one task until `first_line_timeout` (a few
//! seconds), and a connection that went quiet after a request is closed after `idle_timeout`,
//! so idle connections cannot lock the socket for long. When `max_connections` are open, a new
//! connection is answered `busy` and closed, except that the last `reserved` slots are kept for
//! the daemon's own user and root: the operator's `ctl status` (and systemd's `ctl reload`)
//! always get through whatever other users hold open.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::ControlError;
use super::protocol::{ErrorCode, MAX_REQUEST_LINE, Request, Response};

/// Who is on the other end of a connection (from `SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// Effective uid of the peer; `u32::MAX` (uid -1, never a real user) when unknown.
    pub uid: u32,
    /// Effective gid of the peer; `u32::MAX` when unknown.
    pub gid: u32,
    /// Process id of the peer, when the OS tells us.
    pub pid: Option<i32>,
}

impl PeerInfo {
    /// A peer whose credentials could not be read; it may run only read-only commands.
    pub const UNKNOWN: PeerInfo = PeerInfo {
        uid: u32::MAX,
        gid: u32::MAX,
        pid: None,
    };
}

/// One request on its way to the supervisor.
#[derive(Debug)]
pub struct ControlCall {
    /// The parsed, authorised request.
    pub request: Request,
    /// Who sent it.
    pub peer: PeerInfo,
    /// Where the answer goes. Dropping it answers `internal`.
    pub reply: oneshot::Sender<Response>,
}

/// Limits of the server. The defaults suit production; tests shorten the timeouts.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Connections open at once; more are answered `busy` and closed.
    pub max_connections: usize,
    /// Of `max_connections`, slots only the daemon's user and root may take (at most half).
    pub reserved: usize,
    /// A new connection that sends no complete line for this long is closed.
    pub first_line_timeout: Duration,
    /// A connection that sends no complete line for this long is closed.
    pub idle_timeout: Duration,
    /// How long a request may wait for the supervisor's answer before `unavailable`.
    pub handler_timeout: Duration,
    /// How long writing one response may take (a client that never reads is dropped).
    pub write_timeout: Duration,
    /// Longest accepted request line in bytes.
    pub max_line: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 256,
            reserved: 16,
            first_line_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            handler_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_line: MAX_REQUEST_LINE,
        }
    }
}

/// A bound control socket, ready to [`serve`](ControlServer::serve).
#[derive(Debug)]
pub struct ControlServer {
    /// The bound listener (std, non-blocking, so binding needs no runtime).
    listener: std::os::unix::net::UnixListener,
    /// Where it is bound.
    path: PathBuf,
    /// (device, inode) of the socket file we created; on shutdown we remove the file only if
    /// it is still ours (not one a newer daemon bound after us).
    identity: (u64, u64),
    /// Our effective uid; peers with this uid (or root) may run mutating commands.
    daemon_uid: u32,
    /// Limits.
    options: ServerOptions,
}

impl ControlServer {
    /// Binds the control socket at `path` with permissions `mode` (e.g. `0o660`).
    ///
    /// Refuses with [`ControlError::AlreadyRunning`] when a live daemon accepts a connection on
    /// `path`; removes a stale socket file (connection refused); creates the parent directory
    /// if it is missing; never deletes something that is not a socket.
    pub fn bind(path: &Path, mode: u32) -> Result<ControlServer, ControlError> {
        let bind_err = |action: &'static str| {
            move |source: io::Error| ControlError::Bind {
                action,
                path: path.to_path_buf(),
                source,
            }
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => {
                        return Err(ControlError::AlreadyRunning {
                            path: path.to_path_buf(),
                        });
                    }
                    Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                        tracing::info!(
                            socket = %path.display(),
                            "Removing stale control socket left by a previous run."
                        );
                        std::fs::remove_file(path).map_err(bind_err("remove the stale"))?;
                    }
                    Err(err) => return Err(bind_err("probe the existing")(err)),
                }
            }
            Ok(_) => {
                return Err(ControlError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(bind_err("inspect")(err)),
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(bind_err("create the directory of"))?;
        }
        let listener = std::os::unix::net::UnixListener::bind(path).map_err(bind_err("bind"))?;
        // The socket briefly has umask permissions between bind and chmod; its directory
        // (RuntimeDirectoryMode=0750) keeps strangers out during that window.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(bind_err("chmod"))?;
        listener
            .set_nonblocking(true)
            .map_err(bind_err("configure"))?;
        let meta = std::fs::metadata(path).map_err(bind_err("inspect"))?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            daemon_uid: effective_uid(),
            options: ServerOptions::default(),
        })
    }

    /// Replaces the limits.
    pub fn with_options(mut self, options: ServerOptions) -> ControlServer {
        self.options = options;
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until `shutdown` is cancelled, sending every well-formed, authorised
    /// request to `handler`. On shutdown, closes open connections (waiting up to a second for
    /// them) and removes the socket file if it is still ours.
    pub async fn serve(
        self,
        handler: mpsc::Sender<ControlCall>,
        shutdown: CancellationToken,
    ) -> Result<(), ControlError> {
        let ControlServer {
            listener,
            path,
            identity,
            daemon_uid,
            options,
        } = self;
        let listener =
            tokio::net::UnixListener::from_std(listener).map_err(|source| ControlError::Bind {
                action: "register",
                path: path.clone(),
                source,
            })?;
        let reserved = options.reserved.min(options.max_connections / 2);
        let general = Arc::new(Semaphore::new(options.max_connections - reserved));
        let privileged_only = Arc::new(Semaphore::new(reserved));
        let options = Arc::new(options);
        let tracker = TaskTracker::new();
        let mut accept_backoff = Duration::from_millis(10);
        tracing::info!(socket = %path.display(), "Control socket listening.");

        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _addr)) => {
                    accept_backoff = Duration::from_millis(10);
                    stream
                }
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning, keep serving.
                    tracing::warn!(error = %err, "Control socket accept failed; backing off.");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(accept_backoff) => {}
                    }
                    accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let options = Arc::clone(&options);
            let privileged = stream
                .peer_cred()
                .is_ok_and(|c| c.uid() == daemon_uid || c.uid() == 0);
            match slot_for(privileged, &general, &privileged_only) {
                Some(permit) => {
                    let handler = handler.clone();
                    let shutdown = shutdown.clone();
                    tracker.spawn(async move {
                        handle_connection(stream, handler, daemon_uid, &options, shutdown).await;
                        drop(permit);
                    });
                }
                None => {
                    tracker.spawn(async move {
                        let (_read, mut write) = stream.into_split();
                        let busy = Response::error(
                            ErrorCode::Busy,
                            "too many control connections are open; retry in a moment",
                        );
                        let _ = write_response(&mut write, &busy, options.write_timeout).await;
                    });
                }
            }
        }

        tracker.close();
        if tokio::time::timeout(Duration::from_secs(1), tracker.wait())
            .await
            .is_err()
        {
            tracing::debug!("Control connections still open at shutdown; dropping them.");
        }
        remove_if_ours(&path, identity);
        tracing::info!(socket = %path.display(), "Control socket closed.");
        Ok(())
    }
}

/// A slot for a new connection: a general one, else (for the daemon's user and root) a
/// reserved one; `None`: answer `busy`.
fn slot_for(
    privileged: bool,
    general: &Arc<Semaphore>,
    reserved: &Arc<Semaphore>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    Arc::clone(general).try_acquire_owned().ok().or_else(|| {
        privileged
            .then(|| Arc::clone(reserved).try_acquire_owned().ok())
            .flatten()
    })
}

/// Whether `peer` may run `request` on a daemon running as `daemon_uid`: read-only commands are
/// open to anyone who can connect (the socket's mode decides that); mutating ones need the
/// daemon's own uid or root.
pub fn authorize(request: &Request, peer: &PeerInfo, daemon_uid: u32) -> Result<(), Response> {
    if !request.is_mutating() || peer.uid == daemon_uid || peer.uid == 0 {
        return Ok(());
    }
    Err(Response::error(
        ErrorCode::Forbidden,
        format!(
            "`{}` changes the daemon and is allowed only to root or the daemon's user (uid \
             {daemon_uid}); you are uid {}: use `sudo` or `sudo -u retailcrm-sync`",
            request.name(),
            peer.uid
        ),
    ))
}

/// The process's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Serves one connection until EOF, an I/O error, the idle timeout or shutdown.
async fn handle_connection(
    stream: UnixStream,
    handler: mpsc::Sender<ControlCall>,
    daemon_uid: u32,
    options: &ServerOptions,
    shutdown: CancellationToken,
) {
    let peer = match stream.peer_cred() {
        Ok(cred) => PeerInfo {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        },
        Err(err) => {
            tracing::warn!(error = %err, "Cannot read control peer credentials; read-only access.");
            PeerInfo::UNKNOWN
        }
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(8 * 1024, read);
    let mut line = Vec::new();
    let mut answered = 0u64;
    loop {
        let wait = if answered == 0 {
            options.first_line_timeout.min(options.idle_timeout)
        } else {
            options.idle_timeout
        };
        answered += 1;
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            read = tokio::time::timeout(
                wait,
                read_line_bounded(&mut reader, &mut line, options.max_line),
            ) => read,
        };
        let response = match read {
            Err(_elapsed) => {
                tracing::debug!(peer_uid = peer.uid, "Closing idle control connection.");
                return;
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "Control connection read failed.");
                return;
            }
            Ok(Ok(LineRead::Eof)) => return,
            Ok(Ok(LineRead::TooLong)) => Response::error(
                ErrorCode::LineTooLong,
                format!(
                    "request line longer than {} bytes; requests are small JSON objects, one \
                     per line",
                    options.max_line
                ),
            ),
            Ok(Ok(LineRead::Line)) => {
                tokio::select! {
                    _ = shutdown.cancelled() => Response::error(
                        ErrorCode::Unavailable,
                        "the daemon is shutting down; retry after it restarts",
                    ),
                    response = answer(&line, peer, daemon_uid, &handler, options) => response,
                }
            }
        };
        if let Err(err) = write_response(&mut write, &response, options.write_timeout).await {
            tracing::debug!(error = %err, "Control connection write failed.");
            return;
        }
    }
}

/// Produces the response to one complete request line.
async fn answer(
    line: &[u8],
    peer: PeerInfo,
    daemon_uid: u32,
    handler: &mpsc::Sender<ControlCall>,
    options: &ServerOptions,
) -> Response {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Response::error(
            ErrorCode::Invalid,
            "empty request line; send a JSON object such as {\"cmd\":\"ping\"}",
        );
    }
    let request = match Request::parse_line(line) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if let Err(response) = authorize(&request, &peer, daemon_uid) {
        tracing::warn!(
            command = request.name(),
            peer_uid = peer.uid,
            peer_pid = peer.pid,
            "Refused a mutating control command from another user."
        );
        return response;
    }
    let command = request.name();
    let started = std::time::Instant::now();
    let (reply, answer) = oneshot::channel();
    let call = ControlCall {
        request,
        peer,
        reply,
    };
    let unavailable = || {
        Response::error(
            ErrorCode::Unavailable,
            "the daemon is not taking control commands right now (starting or stopping); retry \
             in a moment",
        )
    };
    let handled = tokio::time::timeout(options.handler_timeout, async {
        if handler.send(call).await.is_err() {
            return unavailable();
        }
        match answer.await {
            Ok(response) => response,
            Err(_) => Response::error(
                ErrorCode::Internal,
                "the daemon dropped this request without answering; see its log \
                 (`journalctl -u retailcrm-sync`)",
            ),
        }
    })
    .await;
    if let Ok(response) = &handled {
        tracing::debug!(
            command,
            peer_uid = peer.uid,
            peer_pid = peer.pid,
            ok = response.ok,
            duration_ms = started.elapsed().as_millis() as u64,
            "Control command answered."
        );
    }
    handled.unwrap_or_else(|_| {
        tracing::warn!(
            command,
            timeout_ms = options.handler_timeout.as_millis() as u64,
            "Control command timed out."
        );
        Response::error(
            ErrorCode::Unavailable,
            format!(
                "the daemon did not answer `{command}` within {:?}; it is busy, retry later",
                options.handler_timeout
            ),
        )
    })
}

/// Writes one response line within `limit`.
async fn write_response(
    write: &mut OwnedWriteHalf,
    response: &Response,
    limit: Duration,
) -> io::Result<()> {
    let line = response.to_line();
    match tokio::time::timeout(limit, write.write_all(&line)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client did not read its response",
        )),
    }
}

/// Result of [`read_line_bounded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRead {
    /// A line (without its `\n`) is in the buffer. A last line without `\n` counts too.
    Line,
    /// The line exceeded the limit; it was skipped up to and including its `\n` (or EOF).
    TooLong,
    /// The peer closed the connection and no data is pending.
    Eof,
}

/// Reads one `\n`-terminated line into `buf` (cleared first), holding at most `max` bytes: a
/// longer line is consumed and thrown away chunk by chunk as it arrives, so a 10 MB line costs
/// no more memory than a short one.
pub async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    buf.clear();
    let mut discarding = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if discarding {
                LineRead::TooLong
            } else if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (chunk_len, found_newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (available.len(), false),
        };
        if !discarding {
            if buf.len() + chunk_len > max {
                discarding = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&available[..chunk_len]);
            }
        }
        let consumed = if found_newline {
            chunk_len + 1
        } else {
            chunk_len
        };
        reader.consume(consumed);
        if found_newline {
            return Ok(if discarding {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

/// Removes the socket file at `path` if it is the one we bound (same device and inode).
fn remove_if_ours(path: &Path, identity: (u64, u64)) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if (meta.dev(), meta.ino()) == identity => {
            if let Err(err) = std::fs::remove_file(path) {
                tracing::warn!(socket = %path.display(), error = %err, "Cannot remove control socket.");
            }
        }
        Ok(_) => tracing::info!(
            socket = %path.display(),
            "Control socket was replaced by another process; leaving it."
        ),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_slots_are_for_the_daemons_user_and_root() {
        let general = Arc::new(Semaphore::new(1));
        let reserved = Arc::new(Semaphore::new(1));
        let a = slot_for(false, &general, &reserved).expect("a general slot");
        assert!(
            slot_for(false, &general, &reserved).is_none(),
            "others get busy"
        );
        let b = slot_for(true, &general, &reserved).expect("the owner gets the reserve");
        assert!(
            slot_for(true, &general, &reserved).is_none(),
            "the reserve is finite"
        );
        drop(a);
        assert!(slot_for(false, &general, &reserved).is_some());
        drop(b);
    }

    async fn lines(input: &[u8], max: usize) -> Vec<(LineRead, Vec<u8>)> {
        // A tiny buffer capacity forces lines to span many fill_buf calls.
        let mut reader = BufReader::with_capacity(3, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let r = read_line_bounded(&mut reader, &mut buf, max).await.unwrap();
            if r == LineRead::Eof {
                return out;
            }
            out.push((r, buf.clone()));
        }
    }

    #[tokio::test]
    async fn bounded_reader_splits_and_skips() {
        let got = lines(b"ab\nthis-is-too-long\ncd\nlast", 5).await;
        assert_eq!(
            got,
            vec![
                (LineRead::Line, b"ab".to_vec()),
                (LineRead::TooLong, vec![]),
                (LineRead::Line, b"cd".to_vec()),
                (LineRead::Line, b"last".to_vec()),
            ]
        );
        assert_eq!(lines(b"12345\n123456\n", 5).await.len(), 2);
        assert_eq!(lines(b"12345\n123456\n", 5).await[1].0, LineRead::TooLong);
        assert_eq!(lines(b"", 5).await, vec![]);
        assert_eq!(lines(b"toolongtail", 5).await[0].0, LineRead::TooLong);
    }

    proptest::proptest! {
        /// Whatever the input and limit, lines never exceed the limit or contain a newline,
        /// and every short line of the input comes back intact.
        #[test]
        fn bounded_reader_invariants(
            input in proptest::collection::vec(
                proptest::prop_oneof![proptest::num::u8::ANY, proptest::strategy::Just(b'\n')],
                0..300,
            ),
            max in 1usize..40,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(lines(&input, max));
            let expected: Vec<&[u8]> = {
                let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
                if input.last() == Some(&b'\n') || input.is_empty() {
                    parts.pop();
                }
                parts
            };
            proptest::prop_assert_eq!(got.len(), expected.len());
            for ((kind, line), want) in got.iter().zip(expected) {
                proptest::prop_assert!(line.len() <= max && !line.contains(&b'\n'));
                if want.len() <= max {
                    proptest::prop_assert_eq!(*kind, LineRead::Line);
                    proptest::prop_assert_eq!(line.as_slice(), want);
                } else {
                    proptest::prop_assert_eq!(*kind, LineRead::TooLong);
                }
            }
        }
    }

    #[test]
    fn authorisation_by_uid() {
        let daemon = 1000;
        let peer = |uid| PeerInfo {
            uid,
            gid: uid,
            pid: Some(1),
        };
        let reload = Request::Reload;
        let status = Request::Status { project_id: None };
        assert!(authorize(&reload, &peer(1000), daemon).is_ok());
        assert!(authorize(&reload, &peer(0), daemon).is_ok());
        let denied = authorize(&reload, &peer(1001), daemon).unwrap_err();
        assert_eq!(denied.error.unwrap().code, ErrorCode::Forbidden);
        assert!(authorize(&reload, &PeerInfo::UNKNOWN, daemon).is_err());
        assert!(authorize(&status, &peer(1001), daemon).is_ok());
        assert!(authorize(&status, &PeerInfo::UNKNOWN, daemon).is_ok());
        for mutating in [
            Request::Trigger {
                project_id: 1,
                kind: "sync_all".into(),
                entity_id: None,
                since_id: None,
            },
            Request::Retry {
                project_id: 1,
                job_id: "j".into(),
            },
            Request::Pause { project_id: 1 },
            Request::Resume { project_id: 1 },
        ] {
            assert!(authorize(&mutating, &peer(4242), daemon).is_err());
        }
    }
}
