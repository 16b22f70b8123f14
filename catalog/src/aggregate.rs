//! Published aggregates: saved queries whose answers may be shown to callers who cannot read
//! the rows behind them, because only counts over enough records leave the hub.
//!
//! Such a query reads every dataset the way an analyst without `pii` grants would see it
//! (personal columns masked), its plan must end in an aggregation (`GROUP BY` or a bare
//! aggregate, with only projections, sorts, limits and `HAVING` after it), and every output
//! row that counts fewer than `min_count` records is suppressed: all its columns but the
//! declared keys become null. This is the threshold rule of statistical disclosure control.
//! It does not protect against differencing (a total minus the published cells), so a
//! query's author should not publish a total beside suppressed cells. Only admins and the
//! hub's own files define these queries.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, new_null_array};
use arrow::compute::kernels::cmp::lt;
use arrow::compute::{cast, nullif};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use serde::{Deserialize, Serialize};

use crate::error::CatalogError;
use crate::session::SqlAccess;

/// The smallest threshold allowed: below it, suppression protects nobody.
pub const MIN_THRESHOLD: u64 = 3;

fn default_min_count() -> u64 {
    10
}

/// How a saved query's answer is published as an aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateRule {
    /// The output column that counts the records behind each row (`count(*)`).
    pub count: String,
    /// Rows whose count is below this are suppressed. At least 3; 10 when not given.
    #[serde(default = "default_min_count")]
    pub min_count: u64,
    /// The output columns that name a row (region code, region name) and stay when it is
    /// suppressed. Every other column is nulled.
    #[serde(default)]
    pub keys: Vec<String>,
}

impl AggregateRule {
    /// Checks the rule on its own.
    pub fn check(&self, query: &str) -> Result<(), CatalogError> {
        if self.min_count < MIN_THRESHOLD {
            return Err(CatalogError::Invalid(format!(
                "{query}: aggregate.min_count must be at least {MIN_THRESHOLD}, not {}",
                self.min_count
            )));
        }
        if self.keys.contains(&self.count) {
            return Err(CatalogError::Invalid(format!(
                "{query}: the count column '{}' cannot also be a key",
                self.count
            )));
        }
        Ok(())
    }

    /// Checks the rule against a planned query: the plan ends in an aggregation, the count
    /// column is a whole number, and every named column is in the output.
    pub fn check_plan(&self, query: &str, plan: &LogicalPlan) -> Result<(), CatalogError> {
        self.check(query)?;
        if !ends_in_aggregate(plan) {
            return Err(CatalogError::Invalid(format!(
                "{query}: an aggregate query must end in GROUP BY or an aggregate such as \
                 count(*), with nothing after it but projections, ORDER BY, LIMIT and HAVING"
            )));
        }
        let schema = plan.schema().as_arrow();
        let field = schema.field_with_name(&self.count).map_err(|_| {
            CatalogError::Invalid(format!(
                "{query}: the count column '{}' is not in the result",
                self.count
            ))
        })?;
        if !field.data_type().is_integer() {
            return Err(CatalogError::Invalid(format!(
                "{query}: the count column '{}' must be a whole number, not {}",
                self.count,
                field.data_type()
            )));
        }
        if let Some(key) = self
            .keys
            .iter()
            .find(|k| schema.field_with_name(k).is_err())
        {
            return Err(CatalogError::Invalid(format!(
                "{query}: key column '{key}' is not in the result"
            )));
        }
        Ok(())
    }

    /// The schema of a suppressed result: every column but the keys may be null.
    pub fn output_schema(&self, schema: &Schema) -> SchemaRef {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                let keep = self.keys.iter().any(|k| k == f.name());
                f.as_ref().clone().with_nullable(f.is_nullable() || !keep)
            })
            .collect();
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    /// The batch with its small cells suppressed, as `schema` ([`Self::output_schema`]).
    pub fn suppress(
        &self,
        batch: &RecordBatch,
        schema: &SchemaRef,
    ) -> Result<RecordBatch, CatalogError> {
        let index = batch.schema().index_of(&self.count).map_err(|_| {
            CatalogError::Invalid(format!("the count column '{}' is missing", self.count))
        })?;
        let counts = cast(batch.column(index), &DataType::Int64)?;
        let threshold = Int64Array::new_scalar(i64::try_from(self.min_count).unwrap_or(i64::MAX));
        let small: BooleanArray = lt(&counts, &threshold)?;
        let columns: Vec<ArrayRef> = if small.true_count() == 0 {
            batch.columns().to_vec()
        } else {
            schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, column)| {
                    if self.keys.iter().any(|k| k == field.name()) {
                        column.clone()
                    } else {
                        // Types nullif does not take (nested ones) are nulled whole.
                        nullif(column, &small)
                            .unwrap_or_else(|_| new_null_array(column.data_type(), column.len()))
                    }
                })
                .collect()
        };
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// Whether `plan` ends in an aggregation: only projections, sorts, limits, filters (HAVING)
/// and aliases above an `Aggregate`.
fn ends_in_aggregate(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(_) => true,
        LogicalPlan::Projection(p) => ends_in_aggregate(&p.input),
        LogicalPlan::Sort(s) => ends_in_aggregate(&s.input),
        LogicalPlan::Limit(l) => ends_in_aggregate(&l.input),
        LogicalPlan::Filter(f) => ends_in_aggregate(&f.input),
        LogicalPlan::SubqueryAlias(a) => ends_in_aggregate(&a.input),
        _ => false,
    }
}

impl SqlAccess {
    /// A published aggregate's reader: every dataset, personal columns masked, no
    /// operational tables.
    pub fn aggregate(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_string(),
            pii: false,
            operational: false,
            principal: None,
            public_only: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, StringArray};

    fn rule() -> AggregateRule {
        AggregateRule {
            count: "penduduk".into(),
            min_count: 10,
            keys: vec!["kode".into()],
        }
    }

    #[test]
    fn small_cells_lose_everything_but_their_keys() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("kode", DataType::Utf8, false),
            Field::new("penduduk", DataType::Int64, false),
            Field::new("rata_umur", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["32.14.01", "32.14.02", "32.14.03"])),
                Arc::new(Int64Array::from(vec![12, 9, 10])),
                Arc::new(Float64Array::from(vec![Some(30.5), Some(41.0), None])),
            ],
        )
        .unwrap();
        let rule = rule();
        let schema = rule.output_schema(&batch.schema());
        let out = rule.suppress(&batch, &schema).unwrap();
        let kode = out
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let count = out.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let age = out
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(kode.value(1), "32.14.02", "the key stays");
        assert_eq!(
            (count.value(0), count.is_null(1), count.value(2)),
            (12, true, 10)
        );
        assert!(age.is_null(1) && age.value(0) == 30.5);
        assert!(out.schema().field(1).is_nullable() && !out.schema().field(0).is_nullable());
    }

    #[test]
    fn rules_refuse_low_thresholds_and_a_key_that_is_the_count() {
        let mut low = rule();
        low.min_count = 2;
        assert!(
            low.check("q")
                .unwrap_err()
                .to_string()
                .contains("at least 3")
        );
        let mut keyed = rule();
        keyed.keys.push("penduduk".into());
        assert!(keyed.check("q").is_err());
    }
}
