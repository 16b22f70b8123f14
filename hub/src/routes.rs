//! Every route the hub serves is declared once, in a table per area ([`route_table!`]): the
//! table makes both the area's router and its list of operations, and `/api/v1/openapi.json`
//! is written from every list ([`all`]). A route cannot be served without being documented,
//! and the access-matrix test reads the document to find every path that must be checked.

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// An API key (`Authorization: Bearer`).
    Key,
    /// Anyone: the public portal, open data, Open311's reading routes, health.
    Open,
    /// A gateway that signs its body with a shared secret (HMAC), not a key.
    Signed,
    /// A web page: a login session, or anyone for a public page.
    Page,
}

/// One operation: a method on a path.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The path as served (`/api/v1/datasets/{id}`).
    pub path: &'static str,
    /// `get`, `post`, `put`, `patch` or `delete`.
    pub method: &'static str,
    /// What it does, for the document.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// Declares an area's routes once: `"/path" => { get handler [open]: "summary", … }`. The
/// access marker is `[open]`, `[signed]` or `[page]`; without one a key is needed. Makes
/// `routes()` and `OPERATIONS` from the same list; `prefix` is where the router is nested.
macro_rules! route_table {
    (prefix $prefix:literal; $( $path:literal => { $( $method:ident $handler:path $([$access:ident])? : $summary:literal ),+ $(,)? } )*) => {
        pub(crate) fn routes() -> axum::Router<crate::server::AppState> {
            axum::Router::new() $( .route($path, crate::routes::route_table!(@chain $( $method $handler ),+ )) )*
        }

        /// Every operation of this area, with its full path.
        pub(crate) const OPERATIONS: &[crate::routes::Operation] = &[
            $( $( crate::routes::Operation {
                path: concat!($prefix, $path),
                method: stringify!($method),
                summary: $summary,
                access: crate::routes::route_table!(@access $($access)?),
            }, )+ )*
        ];
    };
    (@access) => { crate::routes::Access::Key };
    (@access open) => { crate::routes::Access::Open };
    (@access signed) => { crate::routes::Access::Signed };
    (@access page) => { crate::routes::Access::Page };
    (@chain $first:ident $first_handler:path $(, $method:ident $handler:path)*) => {
        axum::routing::$first($first_handler) $( .$method($handler) )*
    };
}

pub(crate) use route_table;

/// Every operation the hub serves, area by area.
pub fn all() -> impl Iterator<Item = &'static Operation> {
    let modules = crate::modules::registry::REGISTRY
        .iter()
        .flat_map(|module| [module.api_operations, module.root_operations]);
    [crate::api::OPERATIONS]
        .into_iter()
        .chain(modules)
        .chain([
            crate::portal::OPERATIONS,
            crate::dashboards::OPERATIONS,
            crate::health::OPERATIONS,
        ])
        .flatten()
}
