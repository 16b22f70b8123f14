use deltalake::DeltaTableError;

use crate::dataset_id::InvalidDatasetId;

/// Everything that can go wrong in the catalog, the lake or the state store.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// The state store could not be opened or migrated.
    #[error("{0}")]
    State(String),
    /// A state store query failed.
    #[error("state store error: {0}")]
    Sql(#[from] sqlx::Error),
    /// The dataset is not in the catalog.
    #[error("dataset {0} does not exist")]
    NotFound(String),
    /// The dataset id is malformed.
    #[error(transparent)]
    InvalidId(#[from] InvalidDatasetId),
    /// A request is not acceptable as given; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// A bus member or subsystem that is not registered.
    #[error("{0}")]
    UnknownMember(String),
    /// The caller may not do this; the message says which right it lacks.
    #[error("{0}")]
    Forbidden(String),
    /// The thing to create exists already.
    #[error("{0}")]
    Conflict(String),
    /// A table version or time that the table does not have.
    #[error("{0}")]
    NoSuchVersion(String),
    /// Object storage beside the tables (attachments) failed.
    #[error("object storage: {0}")]
    Objects(String),
    /// A Delta operation failed.
    #[error("lake error on {table}: {source}")]
    Lake {
        /// The table the operation was on.
        table: String,
        /// The underlying error.
        source: Box<DeltaTableError>,
    },
    /// An application transaction already committed this version (or a later one): the
    /// run it belongs to has landed, and committing again would apply it twice.
    #[error("{table} already has version {version} of {app_id}; not committing it twice")]
    AlreadyCommitted {
        /// The table.
        table: String,
        /// The application.
        app_id: String,
        /// The version already committed.
        version: i64,
    },
    /// The SQL text does not parse, or holds other than one statement.
    #[error("{0}")]
    SqlSyntax(String),
    /// The SQL would change something; SQL access is read-only.
    #[error("{0}")]
    ReadOnly(String),
    /// Planning or running a query failed.
    #[error(transparent)]
    DataFusion(Box<datafusion::error::DataFusionError>),
    /// Arrow data could not be built.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

impl From<datafusion::error::DataFusionError> for CatalogError {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        Self::DataFusion(Box::new(error))
    }
}
