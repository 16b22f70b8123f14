//! The HTTP server: shared state, the router, and start-up.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use metrics_exporter_prometheus::PrometheusHandle;
use simpul_catalog::{Catalog, SessionSettings};
use tokio::net::TcpListener;

use crate::config::Config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

/// The shared parts of [`AppState`].
pub struct AppInner {
    /// Datasets, the lake and the state store.
    pub catalog: Arc<Catalog>,
    /// The effective configuration.
    pub config: Config,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// Bundles the shared state.
    pub fn new(catalog: Arc<Catalog>, config: Config, metrics: PrometheusHandle) -> Self {
        Self(Arc::new(AppInner {
            catalog,
            config,
            metrics,
        }))
    }

    /// Session settings for SQL and records queries.
    pub fn session_settings(&self) -> SessionSettings {
        SessionSettings {
            batch_size: self.config.query.batch_size,
            ..SessionSettings::default()
        }
    }
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let body_limit = usize::try_from(state.config.http.body_limit_bytes).unwrap_or(usize::MAX);
    Router::new()
        .nest("/api/v1", crate::api::routes())
        .merge(crate::health::routes())
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .layer(axum::middleware::from_fn(crate::metrics::track_requests))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Binds the listener; port 0 picks a free port.
pub async fn bind(address: &str) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    Ok((listener, local))
}

/// Serves until SIGINT or SIGTERM, then lets running requests finish.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing running requests");
}

impl FromRef<AppState> for Arc<Catalog> {
    fn from_ref(state: &AppState) -> Self {
        state.catalog.clone()
    }
}
