use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::error::CatalogError;

/// The state store: metadata, API clients, audit records and other operational rows, in
/// SQLite (the default, a file under the data directory) or PostgreSQL (by URL).
#[derive(Clone, Debug)]
pub struct StateStore {
    pool: AnyPool,
    backend: Backend,
}

/// Which SQL database holds the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A migration that a part of the hub outside the catalog brings with it (a module's own
/// tables, kept in its folder). Its version is unique across the catalog's migrations and
/// every other part's; its text never changes once released, because the store keeps its
/// checksum.
#[derive(Debug, Clone, Copy)]
pub struct ExtraMigration {
    /// Its version: the number of its file.
    pub version: i64,
    /// Its description: its file name after the number, `_` as spaces.
    pub description: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

/// The catalog's migrations with `extra`, in version order; two migrations with one version
/// are refused.
fn migrator(extra: &[ExtraMigration]) -> Result<sqlx::migrate::Migrator, CatalogError> {
    let mut migrations: Vec<sqlx::migrate::Migration> = MIGRATOR.migrations.to_vec();
    for added in extra {
        if let Some(taken) = migrations.iter().find(|m| m.version == added.version) {
            return Err(CatalogError::Config(format!(
                "migration {} ({}) has the version of migration {} ({}); give it the next free number",
                added.version, added.description, taken.version, taken.description
            )));
        }
        migrations.push(sqlx::migrate::Migration::new(
            added.version,
            std::borrow::Cow::Borrowed(added.description),
            sqlx::migrate::MigrationType::Simple,
            std::borrow::Cow::Borrowed(added.sql),
            false,
        ));
    }
    migrations.sort_by_key(|m| m.version);
    Ok(sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(migrations),
        ..sqlx::migrate::Migrator::DEFAULT
    })
}

impl StateStore {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`) and applies the
    /// catalog's migrations.
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        Self::connect_with(url, &[]).await
    }

    /// [`StateStore::connect`] with the migrations of the hub's other parts (its modules),
    /// applied in version order with the catalog's.
    pub async fn connect_with(url: &str, extra: &[ExtraMigration]) -> Result<Self, CatalogError> {
        let migrator = migrator(extra)?;
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(CatalogError::Config(format!(
                "state_url must start with sqlite: or postgres:, got '{}'",
                redact_url(url)
            )));
        };
        let options = AnyConnectOptions::from_str(url).map_err(|e| state_connect_error(url, e))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            // A PostgreSQL connection can break with its server, so it is pinged before use;
            // an SQLite connection is a file handle in this process, and a ping would only
            // double the hops to its worker thread for every statement.
            .test_before_acquire(backend != Backend::Sqlite)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets the CLI and a running hub share the file; the busy timeout
                        // makes a writer wait for the other instead of failing at once.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| state_connect_error(url, e))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| CatalogError::State(format!("migrating the state store failed: {e}")))?;
        Ok(Self { pool, backend })
    }

    /// Which SQL database this is.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for the stores built on it.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Reads a hub setting.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, CatalogError> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM hub_settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(value)
    }

    /// Writes a hub setting only if it is not set yet; returns whether this call set it.
    pub async fn set_setting_once(&self, key: &str, value: &str) -> Result<bool, CatalogError> {
        let result = sqlx::query(
            "INSERT INTO hub_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records an action by a person or a system.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), CatalogError> {
        insert_audit(&self.pool, actor, action, target, detail).await
    }

    /// [`StateStore::audit`] inside `tx`, so that the action and its record are kept or
    /// lost together.
    pub async fn audit_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), CatalogError> {
        insert_audit(&mut **tx, actor, action, target, detail).await
    }
}

async fn insert_audit<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    actor: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), CatalogError> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(timestamp(Utc::now()))
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail.to_string())
    .execute(executor)
    .await?;
    Ok(())
}

impl StateStore {
    /// The `n`th (from 1) placeholder of a generated statement whose placeholders appear in
    /// order: `$n` on PostgreSQL, a bare `?` on SQLite. To bind a numbered parameter, sqlx
    /// asks SQLite for its name, which SQLite finds by scanning the statement's list of
    /// names, so binding the thousands of a multi-row insert by `$n` takes time quadratic
    /// in their number; a bare `?` has no name and binds by position.
    pub(crate) fn param(&self, n: usize) -> String {
        match self.backend {
            Backend::Sqlite => "?".to_string(),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// The `VALUES` list of a multi-row statement: `rows` groups of `columns` placeholders,
    /// `($1, $2), ($3, $4)` (see [`Self::param`]).
    pub(crate) fn values_placeholders(&self, rows: usize, columns: usize) -> String {
        (0..rows)
            .map(|r| {
                let params: Vec<String> =
                    (1..=columns).map(|c| self.param(r * columns + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Formats a time the way the state store keeps it: fixed-width RFC 3339 in UTC, so that text
/// order is time order on every backend.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a time the state store wrote.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn state_connect_error(url: &str, error: sqlx::Error) -> CatalogError {
    CatalogError::State(format!(
        "cannot open the state store at {}: {error}",
        redact_url(url)
    ))
}

/// Hides a password in a database URL before it reaches a log or an error.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_text() {
        let a = timestamp("2026-01-02T03:04:05Z".parse().unwrap());
        let b = timestamp("2026-01-02T03:04:05.5Z".parse().unwrap());
        assert_eq!(a, "2026-01-02T03:04:05.000000Z");
        assert!(a < b);
        assert_eq!(parse_timestamp(&b).unwrap().timestamp_subsec_millis(), 500);
    }

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://simpul:rahasia@db:5432/simpul"),
            "postgres://simpul:***@db:5432/simpul"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[tokio::test]
    async fn settings_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let store = StateStore::connect(&url).await.unwrap();
        assert!(store.set_setting_once("k", "1").await.unwrap());
        assert!(!store.set_setting_once("k", "2").await.unwrap());
        assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("1"));
    }
}
