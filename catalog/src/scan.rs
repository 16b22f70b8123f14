//! Reading a Delta table version with DataFusion's own Parquet scan.
//!
//! The tables Simpul writes are plain: reader protocol 1 (no deletion vectors, no column
//! mapping), no partition columns, every file path relative to the table. For those, a
//! version is exactly its list of Parquet files, so the scan hands the files to DataFusion's
//! Parquet source directly: text is decoded straight into `Utf8View` arrays (hashing and
//! comparing short codes such as `kode_kecamatan` is then cheap), and there is no per-batch
//! work to tag rows with their file. Any other table (written by another engine) is read
//! through delta-rs's provider, which knows every protocol feature.
//!
//! Views stay inside query plans: [`plain_text`] casts them back to `Utf8` at the top of
//! every plan, so clients see the types they always did.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, cast};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::prelude::DataFrame;
use deltalake::DeltaTable;
use object_store::path::Path;
use url::Url;

/// A provider for `delta`: the direct Parquet scan when the table is plain, delta-rs's
/// provider otherwise.
pub(crate) async fn table_provider(delta: &DeltaTable) -> DfResult<Arc<dyn TableProvider>> {
    match PlainDeltaScan::try_new(delta)? {
        Some(plain) => Ok(Arc::new(plain)),
        None => crate::session::delta_provider(delta).await,
    }
}

/// One file of the version: where it is, its size and its row count when the log has it.
#[derive(Debug, Clone)]
struct DataFile {
    path: Path,
    size: u64,
    rows: Option<usize>,
}

/// A plain Delta table version read as its Parquet files.
#[derive(Debug)]
pub(crate) struct PlainDeltaScan {
    /// The table's columns, text as views.
    schema: SchemaRef,
    store: ObjectStoreUrl,
    files: Vec<DataFile>,
}

impl PlainDeltaScan {
    /// The scan of `delta`'s loaded version, or `None` when the table uses a feature only
    /// delta-rs reads (deletion vectors, column mapping, partitions, absolute file paths,
    /// an in-memory store).
    fn try_new(delta: &DeltaTable) -> DfResult<Option<Self>> {
        let state = delta.snapshot()?;
        let snapshot = state.snapshot();
        if snapshot.protocol().min_reader_version() != 1
            || !snapshot.metadata().partition_columns().is_empty()
        {
            return Ok(None);
        }
        let root = delta.table_url();
        let Some(store) = store_url(root) else {
            return Ok(None);
        };
        let root_path = Path::from_url_path(root.path())?;
        let mut files = Vec::new();
        for file in state.log_data().iter() {
            let relative = file.path();
            if relative.contains("://") || relative.starts_with('/') {
                return Ok(None);
            }
            let mut path = root_path.clone();
            for part in relative.split('/').filter(|p| !p.is_empty()) {
                path = path.join(part);
            }
            files.push(DataFile {
                path,
                size: u64::try_from(file.size()).unwrap_or(0),
                rows: file.num_records(),
            });
        }
        Ok(Some(Self {
            schema: retyped(&snapshot.arrow_schema(), as_view),
            store,
            files,
        }))
    }

    fn statistics(&self) -> Statistics {
        let mut statistics = Statistics::new_unknown(&self.schema);
        let rows: Option<usize> = self.files.iter().map(|f| f.rows).sum();
        statistics.num_rows = rows.map_or(Precision::Absent, Precision::Exact);
        statistics.total_byte_size =
            Precision::Inexact(self.files.iter().map(|f| f.size as usize).sum());
        statistics
    }
}

/// The object store URL DataFusion finds this lake's store under: the local file system,
/// or the bucket [`crate::Lake::register_object_store`] registers.
fn store_url(root: &Url) -> Option<ObjectStoreUrl> {
    match root.scheme() {
        "file" => Some(ObjectStoreUrl::local_filesystem()),
        "memory" => None,
        scheme => ObjectStoreUrl::parse(format!("{scheme}://{}", root.host_str()?)).ok(),
    }
}

/// The view type a plain text or binary type is decoded as.
fn as_view(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 => Some(DataType::Utf8View),
        DataType::Binary | DataType::LargeBinary => Some(DataType::BinaryView),
        _ => None,
    }
}

/// The plain type clients get for a view type.
fn as_plain(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    }
}

/// `schema` with each top-level field `retype` gives a type for retyped.
fn retyped(schema: &Schema, retype: fn(&DataType) -> Option<DataType>) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match retype(f.data_type()) {
            Some(data_type) => f.as_ref().clone().with_data_type(data_type),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[async_trait]
impl TableProvider for PlainDeltaScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters are used to skip row groups and pages, and evaluated again above the scan.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(self.schema.clone().into());
        let partitions = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
        for (i, file) in self.files.iter().enumerate() {
            let mut partitioned = PartitionedFile::new(file.path.to_string(), file.size);
            partitioned.object_meta.location = file.path.clone();
            groups[i % partitions].push(partitioned);
        }
        let groups = groups
            .into_iter()
            .filter(|g| !g.is_empty())
            .map(FileGroup::new)
            .collect();
        let config = FileScanConfigBuilder::new(self.store.clone(), source)
            .with_file_groups(groups)
            .with_statistics(self.statistics())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(PlainDeltaScan::statistics(self))
    }
}

/// `schema` as clients see it: view-typed columns as `Utf8`/`Binary`.
pub fn plain_text_schema(schema: &Schema) -> SchemaRef {
    retyped(schema, as_plain)
}

/// `frame` with view-typed output columns cast back to `Utf8`/`Binary`; other frames are
/// returned as they are.
pub fn plain_text(frame: DataFrame) -> DfResult<DataFrame> {
    let schema = frame.schema().clone();
    if !schema
        .fields()
        .iter()
        .any(|f| as_plain(f.data_type()).is_some())
    {
        return Ok(frame);
    }
    let columns: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ));
            match as_plain(field.data_type()) {
                Some(plain) => {
                    cast(column, plain).alias_qualified(qualifier.cloned(), field.name())
                }
                None => column,
            }
        })
        .collect();
    frame.select(columns)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::Int64Type;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::lake::{CommitOptions, Lake, LakeTable, WriteMode};

    fn batch(schema: &SchemaRef, columns: Vec<Arc<dyn Array>>) -> RecordBatch {
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    }

    fn lake(dir: &tempfile::TempDir) -> Lake {
        Lake::new(&format!("file://{}", dir.path().display()), HashMap::new()).unwrap()
    }

    /// Runs `sql` over `provider` as table `t` the way the hub does: plain text at the top.
    async fn query(provider: Arc<dyn TableProvider>, sql: &str) -> Vec<RecordBatch> {
        let ctx = SessionContext::new();
        ctx.register_table("t", provider).unwrap();
        let frame = plain_text(ctx.sql(sql).await.unwrap()).unwrap();
        frame.collect().await.unwrap()
    }

    fn is_plain(provider: &Arc<dyn TableProvider>) -> bool {
        let any: &dyn std::any::Any = provider.as_ref();
        any.downcast_ref::<PlainDeltaScan>().is_some()
    }

    #[tokio::test]
    async fn a_plain_table_is_read_as_its_files_and_answers_in_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(&dir);
        let table = LakeTable::Data("stats.uji".parse().unwrap());
        let schema = Arc::new(Schema::new(vec![
            Field::new("kode_kecamatan", DataType::Utf8, true),
            Field::new("nilai", DataType::Int64, true),
        ]));
        for (codes, values) in [
            (vec!["32.14.01", "32.14.02"], vec![1, 2]),
            (vec!["32.14.01", "32.14.03"], vec![10, 20]),
        ] {
            let rows = batch(
                &schema,
                vec![
                    Arc::new(StringArray::from(codes)),
                    Arc::new(Int64Array::from(values)),
                ],
            );
            lake.write_batches(
                &table,
                schema.clone(),
                &[],
                vec![rows],
                WriteMode::Append,
                CommitOptions::default(),
            )
            .await
            .unwrap();
        }
        let delta = lake.load_existing(&table).await.unwrap();
        let provider = table_provider(&delta).await.unwrap();
        assert!(
            is_plain(&provider),
            "Simpul's own tables take the direct scan"
        );
        assert_eq!(
            provider.schema().field(0).data_type(),
            &DataType::Utf8View,
            "text is decoded as views inside plans"
        );

        let out = query(
            provider.clone(),
            "select kode_kecamatan, sum(nilai) as total from t group by kode_kecamatan order by kode_kecamatan",
        )
        .await;
        assert_eq!(out[0].schema().field(0).data_type(), &DataType::Utf8);
        let rows: Vec<(String, i64)> = out
            .iter()
            .flat_map(|b| {
                let codes = b.column(0).as_string::<i32>().clone();
                let totals = b.column(1).as_primitive::<Int64Type>().clone();
                (0..b.num_rows())
                    .map(move |i| (codes.value(i).to_string(), totals.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("32.14.01".to_string(), 11),
                ("32.14.02".to_string(), 2),
                ("32.14.03".to_string(), 20)
            ]
        );
        let counted = query(provider, "select count(*) from t where nilai > 1").await;
        assert_eq!(counted[0].column(0).as_primitive::<Int64Type>().value(0), 3);
    }

    #[tokio::test]
    async fn files_from_before_a_schema_evolution_read_the_new_column_as_null() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(&dir);
        let table = LakeTable::Data("stats.uji".parse().unwrap());
        let narrow = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let wide = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("catatan", DataType::Utf8, true),
        ]));
        let old = batch(&narrow, vec![Arc::new(Int64Array::from(vec![1]))]);
        lake.write_batches(
            &table,
            narrow,
            &[],
            vec![old],
            WriteMode::Append,
            CommitOptions::default(),
        )
        .await
        .unwrap();
        let new = batch(
            &wide,
            vec![
                Arc::new(Int64Array::from(vec![2])),
                Arc::new(StringArray::from(vec!["baru"])),
            ],
        );
        lake.write_batches(
            &table,
            wide.clone(),
            &[],
            vec![new],
            WriteMode::Append,
            CommitOptions {
                evolved_schema: Some(wide),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let delta = lake.load_existing(&table).await.unwrap();
        let provider = table_provider(&delta).await.unwrap();
        assert!(is_plain(&provider));
        let out = query(provider, "select n, catatan from t order by n").await;
        let out = arrow::compute::concat_batches(&out[0].schema(), &out).unwrap();
        let notes = out.column(1).as_string::<i32>();
        assert!(notes.is_null(0), "the old file has no catatan");
        assert_eq!(notes.value(1), "baru");
    }

    #[tokio::test]
    async fn a_partitioned_table_is_read_through_delta_rs() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("partisi")).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("tahun", DataType::Utf8, true),
            Field::new("nilai", DataType::Int64, true),
        ]));
        let rows = batch(
            &schema,
            vec![
                Arc::new(StringArray::from(vec!["2024", "2025", "2025"])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        );
        let delta = deltalake::DeltaTableBuilder::from_url(url)
            .unwrap()
            .build()
            .unwrap()
            .write(vec![rows])
            .with_partition_columns(["tahun"])
            .await
            .unwrap();
        let provider = table_provider(&delta).await.unwrap();
        assert!(!is_plain(&provider), "partitions need delta-rs");
        let out = query(provider, "select sum(nilai) from t where tahun = '2025'").await;
        assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 5);
    }
}
