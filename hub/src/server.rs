//! The HTTP server: shared state, the router, and start-up.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::serve::ListenerExt;
use metrics_exporter_prometheus::PrometheusHandle;
use simpul_catalog::{Catalog, SessionSettings};
use simpul_pipelines::Runner;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::saved_queries::ResultCache;

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
    /// Runs pipelines, for the scheduler and the API.
    pub runner: Arc<Runner>,
    /// The one read door: the query gate, the limits and the query log of every read.
    pub reads: crate::read::ReadDoor,
    /// Results of saved queries, keyed on the table versions they read.
    pub query_cache: ResultCache,
    /// Where every HTTP call's op-monitoring record goes.
    pub opmon: crate::opmon::Recorder,
    /// The hub's signing key, for receipts, feeds and the message log.
    pub signer: Arc<simpul_catalog::Signer>,
    /// The hash-chained log of bus exchanges.
    pub messagelog: crate::messagelog::MessageLog,
    /// Lands bus publishes in group commits.
    pub publisher: crate::publish::Publisher,
    /// The modules their configuration turns on (`modules::registry`).
    pub modules: Vec<Arc<dyn crate::modules::registry::Module>>,
    /// The web pages' login sessions.
    pub sessions: crate::dashboards::session::Sessions,
    /// Wrong passwords per user name, shared by the login form and SQL.
    pub logins: crate::users::LoginThrottle,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// Bundles the shared state: loads (or makes) the signing key and starts the message log's
    /// writer.
    pub async fn new(
        catalog: Arc<Catalog>,
        config: Config,
        metrics: PrometheusHandle,
    ) -> Result<Self, simpul_catalog::CatalogError> {
        let reads = crate::read::ReadDoor::new(catalog.clone(), &config.query);
        let query_cache = ResultCache::new(
            usize::try_from(config.query.cache_mb * 1024 * 1024).unwrap_or(usize::MAX),
        );
        let opmon = crate::opmon::Recorder::start(catalog.state.clone());
        let signer = Arc::new(
            simpul_catalog::Signer::open(&config.data_dir.join("keys"), &catalog.state).await?,
        );
        let messagelog =
            crate::messagelog::MessageLog::start(catalog.state.clone(), signer.clone()).await?;
        let runner = Arc::new(
            Runner::new(catalog.clone(), &config.default_owner)
                .with_observer(crate::federation::observer(messagelog.clone())),
        );
        let publisher = crate::publish::Publisher::new(
            catalog.clone(),
            signer.clone(),
            messagelog.clone(),
            config.bus.group_commit_max_rows,
        );
        let modules = crate::modules::registry::open_all(&crate::modules::registry::Opening {
            catalog: &catalog,
            config: &config,
            reads: &reads,
        })
        .await?;
        Ok(Self(Arc::new(AppInner {
            modules,
            sessions: crate::dashboards::session::Sessions::default(),
            logins: crate::users::LoginThrottle::default(),
            opmon,
            signer,
            messagelog,
            publisher,
            catalog,
            config,
            metrics,
            runner,
            reads,
            query_cache,
        })))
    }

    /// Why callers may not write `id` through the API, if they may not: the modules' own
    /// namespaces are written by their modules only, and the datasets a module reads as
    /// truth (the population SEMAR checks NIKs against, the facilities it dispatches to, the
    /// service standards Saluyu shows) may be created by admins only, so that no producer
    /// claims one first. `creating` says whether the dataset does not exist yet.
    pub fn write_refusal(
        &self,
        caller: &crate::auth::Caller,
        id: &simpul_catalog::DatasetId,
        creating: bool,
    ) -> Option<String> {
        if let Some(module) = crate::modules::registry::registration(id.namespace()) {
            return Some(format!("{id} is written by {} only", module.title));
        }
        let mut wired: Vec<(String, &str)> = crate::modules::registry::REGISTRY
            .iter()
            .flat_map(|module| (module.wired_datasets)(&self.config))
            .collect();
        wired.push((
            self.config.portal.services_dataset.clone(),
            "the portal shows it as the service standards",
        ));
        let reason = wired
            .iter()
            .find(|(wired, _)| *wired == id.to_string())
            .map(|(_, reason)| *reason)?;
        (creating && caller.0.role != simpul_catalog::Role::Admin)
            .then(|| format!("{id} does not exist yet, and only an admin may create it: {reason}"))
    }

    /// The open module of type `T`, if its configuration turns it on.
    pub fn module<T: 'static>(&self) -> Option<&T> {
        self.modules
            .iter()
            .find_map(|module| module.as_any().downcast_ref::<T>())
    }

    /// [`AppState::module`], shared, for work that outlives the request.
    pub fn shared_module<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.modules
            .iter()
            .find_map(|module| module.clone().into_any().downcast::<T>().ok())
    }

    /// The open module named `name`, if its configuration turns it on.
    pub fn module_named(&self, name: &str) -> Option<&Arc<dyn crate::modules::registry::Module>> {
        self.modules.iter().find(|module| module.name() == name)
    }

    /// Session settings for SQL and records queries.
    pub fn session_settings(&self) -> SessionSettings {
        self.config.query.session_settings()
    }
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let body_limit = usize::try_from(state.config.http.body_limit_bytes).unwrap_or(usize::MAX);
    let mut api = crate::api::routes();
    let mut router = Router::new();
    for module in crate::modules::registry::REGISTRY {
        api = api.merge((module.api_routes)());
        router = router.merge((module.root_routes)());
    }
    router
        .nest("/api/v1", api)
        .merge(crate::dashboards::routes())
        .merge(crate::portal::routes())
        .merge(crate::health::routes())
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(crate::metrics::track_requests))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::opmon::record,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// The content security policy of every answer: the pages load their style sheet from the
/// hub and run no script; they fetch from the hub only; nothing may frame them; forms post
/// back to the hub only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers every answer carries: no framing (clickjacking), no content sniffing (a CSV or
/// JSON answer is never run as a page), no referrer to other sites, and the policy above.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
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

/// Serves until `shutdown` resolves, then lets running requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Without TCP_NODELAY a small response waits for the client's delayed ACK (about 40 ms).
    let listener = listener.tap_io(|socket| {
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // The peer's address reaches handlers (login limits per address) as `ConnectInfo`.
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
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
    tracing::info!("shutting down: finishing running requests and pipeline commits");
}

impl FromRef<AppState> for Arc<Catalog> {
    fn from_ref(state: &AppState) -> Self {
        state.catalog.clone()
    }
}
