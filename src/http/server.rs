//! Binding the HTTP listener, its router and its limits, and serving until the daemon stops.
//!
//! Limits: a body above `http.body_limit_bytes` is answered 413 before it is read; a request
//! that takes longer than `http.request_timeout_secs` is answered 408. Each connection is its
//! own task (hyper), so a slow or hostile client costs one task and blocks nobody; handlers read
//! shared state or send one message to the supervisor, and never hold a lock across an await.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use super::{HttpShared, api, api_history, ops, ui, webhooks};
use crate::config::HttpSettings;

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is taken or not ours.
    #[error(
        "cannot listen for HTTP on {addr}: {source}; another process may hold the port \
         (`ss -ltnp | grep {port}`): change http.listen, or set it to \"\" to turn the listener off",
        port = addr.port()
    )]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// A bound listener, ready to [`serve`](HttpServer::serve).
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl HttpServer {
    /// Binds `addr` (port 0 picks a free port; see [`HttpServer::local_addr`]).
    pub async fn bind(addr: SocketAddr) -> Result<HttpServer, HttpError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(HttpServer { listener, addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` is cancelled; requests in flight then get a moment to finish.
    pub async fn serve(
        self,
        shared: Arc<HttpShared>,
        settings: HttpSettings,
        stop: CancellationToken,
    ) {
        let _ = shared.bound.set(self.addr);
        tracing::info!(listen = %self.addr, "HTTP listener ready (webhooks, API, /metrics)");
        let app = router(shared, &settings);
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the HTTP listener stopped");
        }
    }
}

/// The one router.
pub fn router(shared: Arc<HttpShared>, settings: &HttpSettings) -> Router {
    let api = Router::new()
        .route("/projects", get(api::projects))
        .route("/projects/{project_id}", get(api::project))
        .route(
            "/projects/{project_id}/jobs",
            get(api::list_jobs).post(api::create_job),
        )
        .route(
            "/projects/{project_id}/jobs/{job_id}/retry",
            post(api::retry_job),
        )
        .route("/projects/{project_id}/pause", post(api::pause))
        .route("/projects/{project_id}/resume", post(api::resume))
        .route("/reload", post(api::reload))
        .route("/projects/{project_id}/outbox", get(api::outbox))
        .route(
            "/projects/{project_id}/outbox/retry",
            post(api::outbox_retry),
        )
        .merge(api_history::routes(shared.clone()))
        // The token, except for the monitoring page's reads when `ui_anonymous_read` allows.
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            api_history::read_or_token,
        ))
        // The document is public: it describes the API, it does not use it.
        .route("/openapi.json", get(api::openapi));
    let body_limit = usize::try_from(settings.body_limit_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics_page))
        .route("/webhooks/retailcrm/{project_id}", post(webhooks::webhook))
        .merge(ui::routes())
        .nest("/api/v1", api)
        .fallback(api::no_route)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(settings.request_timeout_secs.max(1)),
        ))
        .with_state(shared)
}
