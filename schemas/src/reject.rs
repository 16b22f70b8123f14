use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a record came from, so that a person can find it in the original input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// The input's name: a file path, a URL or a request id. Shared by every row of an input.
    pub source: Arc<str>,
    /// 1-based line number for text files, 1-based row number otherwise.
    pub line: u64,
}

/// One reason a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON pointer to the offending value (`/tahun`), or `""` for the whole record.
    pub pointer: String,
    /// The rule that failed, named after the JSON Schema keyword (`type`, `required`, …).
    pub keyword: String,
    /// The reason in plain words.
    pub message: String,
}

impl FieldError {
    /// An error about the whole record rather than one field.
    pub fn record(keyword: &str, message: impl Into<String>) -> Self {
        Self {
            pointer: String::new(),
            keyword: keyword.to_string(),
            message: message.into(),
        }
    }

    /// An error about one field.
    pub fn field(column: &str, keyword: &str, message: impl Into<String>) -> Self {
        Self {
            pointer: format!("/{}", column.replace('~', "~0").replace('/', "~1")),
            keyword: keyword.to_string(),
            message: message.into(),
        }
    }
}

/// A record that did not pass, kept with its original values and every reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedRow {
    /// Where the record came from.
    pub position: SourcePosition,
    /// The original values, as JSON (an object by column, or the raw text when unparseable).
    pub record: serde_json::Value,
    /// Every reason the record was refused.
    pub errors: Vec<FieldError>,
}

impl RejectedRow {
    /// One line that summarises the reasons, for tables and logs.
    pub fn reason(&self) -> String {
        reason_of(&self.errors)
    }
}

/// One line that summarises `errors`: `column: message` (or the message alone for the whole
/// record), joined by `; `.
pub fn reason_of(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.pointer.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.pointer.trim_start_matches('/'), e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
