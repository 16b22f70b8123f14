//! The PostgreSQL wire protocol endpoint, for psql, DBeaver, Metabase, Excel and Python.
//!
//! Built on `pgwire` directly, with `datafusion-pg-catalog` for `pg_catalog` and `arrow-pg`
//! for the wire encoding of Arrow values (both from the `datafusion-postgres` project).
//! `datafusion-postgres`'s own server serves one shared `SessionContext`; Simpul needs a
//! session per query, made for the caller (masking, operational tables) and at the newest
//! table versions, and the hub's own authentication, governance and query log.

mod catalog;
mod show;
mod startup;
mod statement;

use std::collections::HashMap;
use std::io::BufReader;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use datafusion_postgres::pgwire;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ConnectionManager, PgWireServerHandlers};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::PgConfig;
use crate::server::AppState;
use startup::KeyStartup;
use statement::SqlHandler;

/// Binds the PostgreSQL listener and prepares TLS. Cleartext passwords (the API key) are
/// accepted only over TLS or on a loopback listener, so a non-loopback address needs TLS.
pub async fn bind(
    config: &PgConfig,
) -> Result<(TcpListener, SocketAddr, Option<TlsAcceptor>), String> {
    let tls = tls_acceptor(config)?;
    let (listener, address) = crate::server::bind(&config.listen)
        .await
        .map_err(|e| format!("PostgreSQL endpoint: {e}"))?;
    if tls.is_none() && !address.ip().is_loopback() {
        return Err(format!(
            "the PostgreSQL endpoint listens on {address}, which is not loopback, without TLS: \
             API keys would cross the network in clear. Set pg.tls_cert and pg.tls_key, or \
             listen on 127.0.0.1"
        ));
    }
    Ok((listener, address, tls))
}

fn tls_acceptor(config: &PgConfig) -> Result<Option<TlsAcceptor>, String> {
    if config.tls_cert.is_empty() {
        return Ok(None);
    }
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let open = |path: &str| {
        std::fs::File::open(path)
            .map(BufReader::new)
            .map_err(|e| format!("cannot read {path}: {e}"))
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut open(&config.tls_cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate chain: {e}", config.tls_cert))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut open(&config.tls_key)?)
        .map_err(|e| format!("{} is not a PEM private key: {e}", config.tls_key))?
        .ok_or_else(|| format!("{} holds no private key", config.tls_key))?;
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("pg.tls_cert and pg.tls_key do not make a TLS identity: {e}"))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// For each open connection, by peer address: turns true when the client has gone away.
#[derive(Debug, Clone, Default)]
pub(crate) struct Departures(Arc<Mutex<HashMap<SocketAddr, watch::Receiver<bool>>>>);

impl Departures {
    /// Resolves when the client at `peer` has gone away; never, for an unknown peer.
    pub(crate) fn signal(
        &self,
        peer: SocketAddr,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let gone = self.0.lock().ok().and_then(|map| map.get(&peer).cloned());
        async move {
            match gone {
                Some(mut gone) => {
                    if gone.wait_for(|gone| *gone).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn insert(&self, peer: SocketAddr, gone: watch::Receiver<bool>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(peer, gone);
        }
    }

    fn remove(&self, peer: SocketAddr) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&peer);
        }
    }
}

/// How often a connection's socket is checked for a client that went away.
const DEPARTURE_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// Watches a second handle of the client's socket and says when the client has closed it.
/// pgwire reads the socket only between queries, so without this a client that goes away
/// during a long query would be noticed only when its rows are sent.
async fn watch_departure(socket: std::net::TcpStream, gone: watch::Sender<bool>) {
    let mut probe = [0u8; 1];
    loop {
        tokio::time::sleep(DEPARTURE_CHECK).await;
        match socket.peek(&mut probe) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    let _ = gone.send(true);
}

/// Splits off a handle of `socket` for [`watch_departure`].
fn departure_handle(socket: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let socket = socket.into_std()?;
    let watcher = socket.try_clone()?;
    Ok((TcpStream::from_std(socket)?, watcher))
}

/// The handlers of every connection.
struct Handlers {
    startup: Arc<KeyStartup>,
    sql: Arc<SqlHandler>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.sql.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.sql.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// Serves connections until `shutdown` resolves. Connections under way when it does end
/// with the process.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let connections = Arc::new(ConnectionManager::new());
    let departures = Departures::default();
    let handlers = Arc::new(Handlers {
        startup: Arc::new(KeyStartup::new(app.clone(), connections.clone())),
        sql: Arc::new(SqlHandler::new(app, departures.clone())),
        cancel: Arc::new(DefaultCancelHandler::new(connections)),
    });
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let (socket, watcher) = match departure_handle(socket) {
                    Ok(split) => split,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "cannot watch a PostgreSQL connection");
                        continue;
                    }
                };
                let (gone_tx, gone_rx) = watch::channel(false);
                departures.insert(peer, gone_rx);
                let handlers = handlers.clone();
                let tls = tls.clone();
                let departures = departures.clone();
                tokio::spawn(async move {
                    let watch = tokio::spawn(watch_departure(watcher, gone_tx));
                    if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                        tracing::debug!(%peer, error = %e, "PostgreSQL connection ended with an error");
                    }
                    watch.abort();
                    departures.remove(peer);
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot accept a PostgreSQL connection"),
        }
    }
}
