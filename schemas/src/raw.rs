//! How raw (not yet typed) columns are written.

/// Field metadata key on a raw `Utf8` column that says how its cells are written.
pub const RAW_ENCODING_KEY: &str = "simpul.encoding";

/// Cells are JSON texts (`"3214"`, `12`, `true`, `null`), so JSON types are kept exactly: a
/// quoted `"12"` is text, not a number. An absent key is a null cell, an explicit `null` is
/// the text `null`. Without this marker, cells are plain text as found in a file (CSV).
pub const RAW_ENCODING_JSON: &str = "json";
