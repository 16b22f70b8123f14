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
use simpul_catalog::{Catalog, CatalogError};

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
