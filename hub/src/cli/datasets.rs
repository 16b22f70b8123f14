use comfy_table::Table;
use simpul_catalog::{DatasetFilter, DatasetId, Lake, LakeTable};

use crate::bootstrap;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(super) enum DatasetsCommand {
    /// List datasets, optionally filtered.
    List {
        /// Words to find in the id, title, description or tags.
        #[arg(long)]
        q: Option<String>,
        /// Owner member code.
        #[arg(long)]
        owner: Option<String>,
        /// A tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Show one dataset: metadata, schema, statistics and recent versions (JSON).
    Show {
        /// The dataset id, namespace.name.
        id: String,
    },
}

pub(super) async fn run(config: Config, command: DatasetsCommand) -> Result<(), String> {
    let catalog = bootstrap::open_catalog(&config).await?;
    match command {
        DatasetsCommand::List { q, owner, tag } => {
            let filter = DatasetFilter {
                q,
                owner,
                tag,
                limit: Some(500),
                ..Default::default()
            };
            let (datasets, total) = catalog
                .state
                .list_datasets(&filter)
                .await
                .map_err(|e| e.to_string())?;
            let mut table = Table::new();
            table.set_header([
                "id",
                "title",
                "owner",
                "classification",
                "rows",
                "rejected",
                "version",
                "last commit",
            ]);
            for d in &datasets {
                table.add_row([
                    d.id.to_string(),
                    d.title.clone(),
                    d.owner.clone(),
                    d.classification.to_string(),
                    d.row_count.to_string(),
                    d.rejected_count.to_string(),
                    d.current_version.map_or("-".into(), |v| v.to_string()),
                    d.last_commit_at.map_or("-".into(), |t| t.to_rfc3339()),
                ]);
            }
            println!("{table}");
            println!("({total} dataset{})", if total == 1 { "" } else { "s" });
            Ok(())
        }
        DatasetsCommand::Show { id } => {
            let id: DatasetId = id
                .parse()
                .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
            let meta = catalog.dataset(&id).await.map_err(|e| e.to_string())?;
            let table = LakeTable::Data(id.clone());
            let delta = catalog
                .lake
                .load_existing(&table)
                .await
                .map_err(|e| e.to_string())?;
            let schema = Lake::arrow_schema(&delta).map_err(|e| e.to_string())?;
            let fields: Vec<serde_json::Value> = schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
                .collect();
            let versions = catalog
                .lake
                .history(&table, Some(10))
                .await
                .map_err(|e| e.to_string())?;
            let shown = serde_json::json!({
                "dataset": meta,
                "schema": {"fields": fields},
                "statistics": Lake::stats(&delta).map_err(|e| e.to_string())?,
                "recent_versions": versions,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).map_err(|e| e.to_string())?
            );
            Ok(())
        }
    }
}
