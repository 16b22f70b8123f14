//! The regency's shared data model and the checks every record passes before it lands.
//!
//! Owns: column naming rules, type inference for untyped sources, and the vectorized coercion
//! of raw columns into a dataset's Arrow schema, with a reason kept for every rejected row.
//!
//! Knows nothing about storage, HTTP or connectors: data enters as Arrow `RecordBatch`es and
//! leaves as a valid `RecordBatch` plus [`RejectedRow`]s.

mod coerce;
mod infer;
mod naming;
mod reject;

pub use coerce::{CoercedBatch, coerce_batch, consecutive_positions};
pub use infer::{JSON_QUOTED_METADATA_KEY, delta_compatible_schema, infer_schema};
pub use naming::{ColumnMismatch, check_columns, normalize_column_name};
pub use reject::{FieldError, RejectedRow, SourcePosition};
