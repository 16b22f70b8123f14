//! The regency's shared data model and the checks every record passes before it lands.
//!
//! Owns the canonical JSON Schemas (`schemas/*.schema.json`), the domain formats (NIK, kode
//! wilayah, telepon), schema compilation into an Arrow schema plus a plan of vectorized
//! checks, the validator that runs that plan over Arrow batches (falling back to the
//! `jsonschema` crate, row by row, only for what it does not vectorize), the registry of
//! shipped schemas, and the backward-compatibility rules between versions.
//!
//! Knows nothing about storage, HTTP or connectors: data enters as Arrow `RecordBatch`es of
//! raw cells and leaves as a typed `RecordBatch` plus [`RejectedRow`]s.

mod compat;
mod compile;
pub mod formats;
mod infer;
mod keywords;
mod naming;
mod parsed;
mod pattern;
mod raw;
mod registry;
mod reject;
mod validate;

#[cfg(test)]
mod differential_tests;
#[cfg(test)]
mod validate_tests;

pub use compat::{Incompatibility, check_compatible};
pub use compile::{
    Check, CompiledSchema, DRAFT_2020_12, Fallback, JsonKind, PropertyPlan, SchemaError,
    parse_version, reference_validator,
};
pub use infer::{delta_compatible_schema, infer_schema};
pub use naming::{ColumnMismatch, check_columns, normalize_column_name};
pub use raw::{RAW_ENCODING_JSON, RAW_ENCODING_KEY};
pub use registry::{SHIPPED_SCHEMAS, SchemaFile, load_schema_file, parse_schema_document};
pub use reject::{FieldError, RejectedRow, SourcePosition, reason_of};
pub use validate::{Validation, text_number};

/// Positions `first_line..` for a batch whose rows are consecutive lines.
pub fn consecutive_positions(source: &str, first_line: u64, rows: usize) -> Vec<SourcePosition> {
    let source: std::sync::Arc<str> = source.into();
    (0..rows as u64)
        .map(|i| SourcePosition {
            source: source.clone(),
            line: first_line + i,
        })
        .collect()
}
