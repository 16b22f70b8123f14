//! The module seam. A module (SEMAR, complaints) is a public service built on the hub's
//! canonical layer. It registers once, in [`REGISTRY`], with a [`Registration`]: its name
//! (its config section, its datasets' namespace, what dashboards `require`), its routes and
//! their documentation, how it opens from the configuration, and the datasets it reads as
//! truth. An open module is a [`Module`]: the hub prepares it at start (KPI queries, demo
//! seed, first export), runs its background work, asks it to land its changed rows (before
//! a dashboard reads them, and at shutdown), and hands it the interrupted requests whose
//! intents it knows. Nothing outside its folder names its types.

use std::any::Any;
use std::sync::Arc;

use futures::future::BoxFuture;
use simpul_catalog::{Catalog, CatalogError, ExtraMigration};

use crate::config::Config;
use crate::read::ReadDoor;
use crate::routes::Operation;
use crate::server::AppState;

/// Every module the hub has, one line each.
pub const REGISTRY: &[Registration] =
    &[super::semar::REGISTRATION, super::complaints::REGISTRATION];

/// What a module opens with.
pub struct Opening<'a> {
    /// The catalog and the state store.
    pub catalog: &'a Arc<Catalog>,
    /// The whole configuration; each module reads its own section.
    pub config: &'a Config,
    /// The read door, for the module's own reads.
    pub reads: &'a ReadDoor,
}

/// Opens a module from the configuration: `None` when its section turns it off.
pub type Opener = for<'a> fn(&'a Opening<'a>) -> BoxFuture<'a, Opened>;

/// What [`Opener`] gives.
pub type Opened = Result<Option<Arc<dyn Module>>, CatalogError>;

/// How a module plugs into the hub.
pub struct Registration {
    /// Its name: its config section, the namespace of its datasets, what a dashboard's
    /// `requires` names.
    pub name: &'static str,
    /// How messages name it ("SEMAR", "the complaints module").
    pub title: &'static str,
    /// Its routes under `/api/v1`. They are always served: a module that is turned off
    /// answers 404 with the setting that turns it on.
    pub api_routes: fn() -> axum::Router<AppState>,
    /// Their documentation.
    pub api_operations: &'static [Operation],
    /// Its routes at the root (Open311's `/open311/v2`), if any.
    pub root_routes: fn() -> axum::Router<AppState>,
    /// Their documentation.
    pub root_operations: &'static [Operation],
    /// Opens the module, or `None` when its section turns it off.
    pub open: Opener,
    /// The datasets it reads as truth, with why, so that only an admin creates them.
    pub wired_datasets: fn(&Config) -> Vec<(String, &'static str)>,
    /// Its state-store tables: the migrations in its `migrations/` folder, each with a
    /// version no other migration has (the store refuses a repeated one).
    pub migrations: &'static [ExtraMigration],
}

/// Every module's state-store migrations, for opening the store.
pub fn migrations() -> Vec<ExtraMigration> {
    REGISTRY
        .iter()
        .flat_map(|module| module.migrations.iter().copied())
        .collect()
}

/// A module found by its type (`AppState::module`, `AppState::shared_module`); every module
/// has it.
pub trait AsAny: Any + Send + Sync {
    /// Itself, borrowed.
    fn as_any(&self) -> &dyn Any;
    /// Itself, shared.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Any + Send + Sync> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// An open module.
#[async_trait::async_trait]
pub trait Module: AsAny {
    /// Its registration's name.
    fn name(&self) -> &'static str;
    /// Registers its queries, seeds its demo (with `demo`) and lands what start-up changed.
    async fn prepare(self: Arc<Self>, demo: bool) -> Result<(), String>;
    /// Starts its background work (exports, sweeps, positions), for as long as the hub runs.
    fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()>;
    /// Lands its changed rows in its datasets now; how many.
    async fn export(&self) -> Result<u64, String>;
    /// The kinds of idempotency intents its requests store.
    fn intent_kinds(&self) -> &'static [&'static str] {
        &[]
    }
    /// The answer an interrupted request of `kind` would have sent, built from the row
    /// `id` it wrote; `None` when the row was never written.
    async fn stored_answer(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<(u16, String)>, CatalogError> {
        Err(CatalogError::Invalid(format!(
            "{} stores no requests of kind {kind} (row {id})",
            self.name()
        )))
    }
}

/// Opens every registered module that its configuration turns on.
pub async fn open_all(opening: &Opening<'_>) -> Result<Vec<Arc<dyn Module>>, CatalogError> {
    let mut open = Vec::new();
    for registration in REGISTRY {
        if let Some(module) = (registration.open)(opening).await? {
            open.push(module);
        }
    }
    Ok(open)
}

/// The registration named `name`.
pub fn registration(name: &str) -> Option<&'static Registration> {
    REGISTRY.iter().find(|r| r.name == name)
}

/// A router with no routes, for modules that serve nothing at the root.
pub fn no_routes() -> axum::Router<AppState> {
    axum::Router::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksums a hub of the release before the migrations moved into the module
    /// folders recorded in `_sqlx_migrations` (read from a state store it created): the store
    /// refuses to open when a recorded checksum changes, so these must never change.
    #[test]
    fn module_migrations_keep_the_checksums_earlier_releases_recorded() {
        use sha2::Digest;
        let recorded = [
            (
                12,
                "3E40135B0611F5EB1BC2AD887979DF7CD687FE0EF6623073C2B93D63124E871806BD3E18F5EFC5B5E0C9EAEBBB9237A4",
            ),
            (
                13,
                "5AE963CD5E5A28C9776B424D549B3A5EA0BF752341B8D0BE01F49D7FB44EF7EA2F357D38F655148179F2B0C00D36B211",
            ),
            (
                14,
                "CF9283FADD211D929C1421CF18D59447431466A73C1D3DD63B3E5BCD126EEE47BFCE918E477B9E935185E10C616682F8",
            ),
            (
                15,
                "0BF1F1118F14BED0244868F6170EC370E843667FD541EE2F66A17E4184FD736E9DD738B9332CD272D91A7B883131A4D4",
            ),
        ];
        let migrations = migrations();
        for (version, checksum) in recorded {
            let migration = migrations
                .iter()
                .find(|m| m.version == version)
                .unwrap_or_else(|| panic!("no module brings migration {version}"));
            assert_eq!(
                hex::encode_upper(sha2::Sha384::digest(migration.sql.as_bytes())),
                checksum,
                "migration {version} changed"
            );
        }
    }

    #[tokio::test]
    async fn a_store_migrates_with_the_modules_tables_and_refuses_a_repeated_version() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("state.db").display()
        );
        let store = simpul_catalog::StateStore::connect_with(&url, &migrations())
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM semar_calls")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 0);
        drop(store);
        // Opened again, as every start does: nothing to apply, nothing refused.
        simpul_catalog::StateStore::connect_with(&url, &migrations())
            .await
            .unwrap();
        let clash = [ExtraMigration {
            version: 1,
            description: "clash",
            sql: "SELECT 1",
        }];
        let Err(refused) = simpul_catalog::StateStore::connect_with(&url, &clash).await else {
            panic!("a repeated version is refused");
        };
        assert!(
            refused.to_string().contains("version of migration 1"),
            "{refused}"
        );
    }

    #[test]
    fn every_module_is_registered_once_under_its_own_name_and_namespace() {
        let mut names: Vec<&str> = REGISTRY.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len(), "a module is registered twice");
        for registration in REGISTRY {
            for operation in registration.api_operations {
                assert!(
                    operation
                        .path
                        .starts_with(&format!("/api/v1/{}", registration.name)),
                    "{} serves {} outside /api/v1/{}",
                    registration.name,
                    operation.path,
                    registration.name
                );
            }
        }
    }
}
