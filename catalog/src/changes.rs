//! The change feed: the rows committed to a dataset after a version, from the Delta change
//! data feed (append commits read as inserts, merges as updates, overwrites as deletes and
//! inserts), through the caller's access: unreadable datasets are refused, personal columns
//! masked without a `pii` grant.

use std::sync::Arc;

use datafusion::logical_expr::{Expr, SortExpr, col, lit, when};
use datafusion::prelude::DataFrame;
use deltalake::delta_datafusion::DeltaCdfTableProvider;

use crate::dataset_id::DatasetId;
use crate::error::CatalogError;
use crate::lake::LakeTable;
use crate::mask::masked_provider;
use crate::session::{SessionSettings, SqlAccess};
use crate::{Catalog, plain_text};

/// The change-type column: `insert`, `update` or `delete`.
pub const CHANGE_TYPE: &str = "_change_type";
/// The commit version column.
pub const COMMIT_VERSION: &str = "_commit_version";
/// The commit time column.
pub const COMMIT_TIMESTAMP: &str = "_commit_timestamp";

/// One read of the change feed.
pub struct ChangeFeed {
    /// The first version covered (`since_version + 1`).
    pub from_version: i64,
    /// The last version covered: the table's version when the read started, or the end of a
    /// bounded read. Resume with `since_version = to_version`.
    pub to_version: i64,
    /// The plan of the rows, in commit order; `None` when no version is newer than
    /// `since_version`. The hub runs it through its read door.
    pub frame: Option<DataFrame>,
}

impl Catalog {
    /// The rows of `dataset` committed after `since_version`, at most `max_versions` commits of
    /// them, as `access` may see them.
    pub async fn changes(
        self: &Arc<Self>,
        dataset: &DatasetId,
        access: &SqlAccess,
        since_version: i64,
        max_versions: Option<i64>,
        settings: &SessionSettings,
    ) -> Result<ChangeFeed, CatalogError> {
        if since_version < 0 {
            return Err(CatalogError::Invalid(format!(
                "since_version must be 0 or more, not {since_version}"
            )));
        }
        let view = self.view(access).await?;
        if !view.sees(dataset) {
            return match self.state.dataset(dataset).await? {
                Some(_) => Err(CatalogError::Forbidden(format!(
                    "{} may not read {dataset}: it is restricted; ask its owner for a read grant",
                    access.client_id
                ))),
                None => Err(CatalogError::NotFound(dataset.to_string())),
            };
        }
        let table = self
            .lake
            .load_existing(&LakeTable::Data(dataset.clone()))
            .await?;
        let latest = table
            .version()
            .map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let from_version = since_version + 1;
        if from_version > latest {
            return Ok(ChangeFeed {
                from_version,
                to_version: latest.max(since_version),
                frame: None,
            });
        }
        let to_version = match max_versions {
            Some(n) if n > 0 => latest.min(since_version.saturating_add(n)),
            _ => latest,
        };
        let builder = table
            .scan_cdf()
            .with_starting_version(from_version.unsigned_abs())
            .with_ending_version(to_version.unsigned_abs());
        let provider = DeltaCdfTableProvider::try_new(builder)
            .map_err(|e| crate::lake::lake_error(&LakeTable::Data(dataset.clone()), e))?;
        let columns: Vec<String> = datafusion::catalog::TableProvider::schema(&provider)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| ![CHANGE_TYPE, COMMIT_VERSION, COMMIT_TIMESTAMP].contains(&n.as_str()))
            .collect();
        let mut provider: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(provider);
        if let Some(masks) = view.masks.get(&dataset.to_string()) {
            provider = masked_provider(&dataset.to_string(), provider, masks)?;
        }
        let runtime = settings.runtime()?;
        self.lake.register_object_store(&runtime)?;
        let ctx = settings.context(settings.session_config(), runtime);
        let quoted = |name: &str| col(format!("\"{name}\""));
        let mut projection: Vec<Expr> = columns.iter().map(|c| quoted(c)).collect();
        projection.push(
            when(
                quoted(CHANGE_TYPE).eq(lit("update_postimage")),
                lit("update"),
            )
            .otherwise(quoted(CHANGE_TYPE))?
            .alias(CHANGE_TYPE),
        );
        projection.push(quoted(COMMIT_VERSION));
        projection.push(quoted(COMMIT_TIMESTAMP));
        let frame = ctx
            .read_table(provider)?
            .filter(quoted(CHANGE_TYPE).not_eq(lit("update_preimage")))?
            .select(projection)?
            .sort(vec![SortExpr::new(quoted(COMMIT_VERSION), true, false)])?;
        Ok(ChangeFeed {
            from_version,
            to_version,
            frame: Some(plain_text(frame)?),
        })
    }
}
