//! Connection start-up: the password is the API key, the user name its client id.
//!
//! Only the key's SHA-256 is stored, which rules out SCRAM (it needs a verifier derived
//! from the password). The key travels as a cleartext password instead, which `bind` allows
//! only over TLS or on loopback.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, ConnectionHandle, ConnectionManager, METADATA_USER, PgWireConnectionState,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use simpul_catalog::{ApiClient, Role};

use super::catalog::ConnectionCatalog;
use crate::auth::key_hash;
use crate::server::AppState;
use crate::users::LoginRefused;

/// What a connection carries after authentication.
pub(super) struct PgSession {
    /// The authenticated API client.
    pub client: ApiClient,
    /// Fires when the client sends a cancel request for the running query.
    pub cancel: Arc<ConnectionHandle>,
    /// The connection's `pg_catalog`, whose OIDs hold from one query to the next.
    pub pg_catalog: ConnectionCatalog,
    _registered: pgwire::api::ConnectionGuard,
}

/// Authenticates connections against the hub's API keys.
pub(super) struct KeyStartup {
    app: AppState,
    connections: Arc<ConnectionManager>,
    parameters: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
}

impl KeyStartup {
    pub(super) fn new(app: AppState, connections: Arc<ConnectionManager>) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = format!("16.6 (Simpul {})", env!("CARGO_PKG_VERSION"));
        parameters.is_superuser = false;
        parameters.default_transaction_read_only = true;
        Self {
            app,
            connections,
            parameters,
            pids: RandomPidSecretKeyGenerator::default(),
        }
    }

    async fn authenticate(
        &self,
        user: &str,
        key: &str,
        source: std::net::IpAddr,
    ) -> PgWireResult<ApiClient> {
        let refused = |message: String| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                message,
            )))
        };
        let state = &self.app.catalog.state;
        let by_key = state
            .active_client_by_key_hash(&key_hash(key.trim()))
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let client = match by_key {
            Some(client) if client.id != user => {
                return Err(refused(format!(
                    "password authentication failed for user \"{user}\": this key belongs to \
                     client \"{}\"; connect with that user name",
                    client.id
                )));
            }
            Some(client) => client,
            // Not a key: a user account's password, then.
            None => match self
                .app
                .logins
                .login(state, user, key, Some(source), "postgres")
                .await
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?
            {
                Ok(client) => client,
                Err(LoginRefused::Wrong) => {
                    return Err(refused(format!(
                        "password authentication failed for user \"{user}\": the password must be \
                         an API key that is not revoked (simpul keys list shows the ids), or the \
                         password of user account \"{user}\""
                    )));
                }
                Err(LoginRefused::Busy) => {
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "53300".into(),
                        "too many password checks are waiting; try again in a moment".into(),
                    ))));
                }
                Err(LoginRefused::Locked(left)) => {
                    return Err(refused(format!(
                        "password authentication failed for user \"{user}\": too many wrong \
                         passwords for this user or from this address; try again in {} minutes",
                        left.as_secs().div_ceil(60).max(1)
                    )));
                }
            },
        };
        if client.role == Role::Producer {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "42501".into(),
                format!(
                    "client \"{user}\" has role producer; SQL needs a key with role analyst or admin"
                ),
            ))));
        }
        Ok(client)
    }
}

#[async_trait]
impl StartupHandler for KeyStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if !client.metadata().contains_key(METADATA_USER) {
                    return Err(PgWireError::UserNameRequired);
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let source = client.socket_addr().ip();
                let authenticated = match self.authenticate(&user, &password.password, source).await
                {
                    Ok(authenticated) => authenticated,
                    Err(e) => {
                        tracing::warn!(user = %user, peer = %client.socket_addr(), "PostgreSQL login refused");
                        return Err(e);
                    }
                };
                let pg_catalog =
                    ConnectionCatalog::new().map_err(|e| PgWireError::ApiError(e.into()))?;
                let (pid, secret) = self.pids.generate(client);
                client.set_pid_and_secret_key(pid, secret.clone());
                let (cancel, registered) = self.connections.register(pid, secret);
                client.session_extensions().insert(PgSession {
                    client: authenticated,
                    cancel,
                    pg_catalog,
                    _registered: registered,
                });
                finish_authentication(client, &self.parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
