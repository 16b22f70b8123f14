//! The public modules built on the hub's canonical layer (state store, catalog, validation,
//! audit), each under `/api/v1/<module>`.

pub mod complaints;
pub mod semar;

use axum::body::Bytes;
use serde_json::{Value, json};
use simpul_catalog::Catalog;
use simpul_connectors::file::{FileFormat, open_bytes};

use crate::api::ApiError;

/// Validates one record against the newest version of a canonical schema's major 1; every
/// error is in the answer.
pub(crate) async fn check_record(
    catalog: &Catalog,
    schema: &str,
    record: &Value,
) -> Result<(), ApiError> {
    let binding = simpul_catalog::SchemaBinding {
        name: schema.into(),
        major: 1,
    };
    let compiled = catalog.schemas.resolve(&catalog.state, &binding).await?;
    let mut line = serde_json::to_vec(record).map_err(ApiError::internal)?;
    line.push(b'\n');
    let reader = open_bytes("record", Bytes::from(line), &FileFormat::Ndjson)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let mut errors = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| ApiError::unprocessable(e.to_string()))?;
        let validation = compiled
            .validate(&batch.batch, &batch.positions)
            .map_err(ApiError::internal)?;
        for reject in batch.malformed.iter().chain(&validation.rejected) {
            for error in &reject.errors {
                errors.push(json!({"pointer": error.pointer, "keyword": error.keyword, "message": error.message}));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        let first = errors[0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Err(ApiError::unprocessable(format!(
            "the record does not match the {schema} schema: {first}"
        ))
        .with_member("errors", Value::Array(errors)))
    }
}
