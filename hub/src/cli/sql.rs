use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;

use crate::bootstrap;
use crate::config::Config;

/// Options of `simpul sql`.
#[derive(Debug, clap::Args)]
pub(super) struct SqlArgs {
    /// One read-only statement, e.g. "select count(*) from ref.wilayah".
    query: String,
    /// Output: table (default), csv or json (one object per line).
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    format: String,
    /// At most this many rows (default: query.row_limit).
    #[arg(long)]
    limit: Option<u64>,
}

pub(super) async fn run(config: Config, args: SqlArgs) -> Result<(), String> {
    let catalog = bootstrap::open_catalog(&config).await?;
    let settings = config.query.session_settings();
    // The CLI runs on the hub's own machine with the operator's file access: it sees all.
    let access = simpul_catalog::SqlAccess::full("cli");
    let limit = args.limit.unwrap_or(config.query.row_limit);
    let frame = catalog
        .plan_read_query(&args.query, &settings, &access)
        .await
        .map_err(|e| e.to_string())?
        .frame;
    let frame = simpul_catalog::limit_rows(frame, limit).map_err(|e| e.to_string())?;
    let timeout = std::time::Duration::from_secs(config.query.timeout_secs);
    let batches: Vec<RecordBatch> = tokio::time::timeout(timeout, async {
        frame.execute_stream().await?.try_collect().await
    })
    .await
    .map_err(|_| {
        format!(
            "the query did not finish within {} s (query.timeout_secs)",
            config.query.timeout_secs
        )
    })?
    .map_err(|e: datafusion::error::DataFusionError| e.find_root().to_string())?;
    print_batches(&batches, &args.format)
}

fn print_batches(batches: &[RecordBatch], format: &str) -> Result<(), String> {
    let stdout = std::io::stdout();
    match format {
        "csv" => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(stdout.lock());
            for batch in batches {
                writer.write(batch).map_err(|e| e.to_string())?;
            }
        }
        "json" => {
            let mut writer = arrow::json::LineDelimitedWriter::new(stdout.lock());
            for batch in batches {
                writer.write(batch).map_err(|e| e.to_string())?;
            }
            writer.finish().map_err(|e| e.to_string())?;
        }
        _ => {
            let table =
                arrow::util::pretty::pretty_format_batches(batches).map_err(|e| e.to_string())?;
            println!("{table}");
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            println!("({rows} row{})", if rows == 1 { "" } else { "s" });
        }
    }
    Ok(())
}
