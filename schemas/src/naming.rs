use std::collections::BTreeSet;

/// Turns a header as agencies write it (`Nama Kabupaten/Kota`, `\u{feff}id`) into a SQL-friendly
/// column name (`nama_kabupaten_kota`, `id`): lowercase, every run of other characters one `_`.
pub fn normalize_column_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_underscore = false;
    for ch in raw.trim_start_matches('\u{feff}').trim().chars() {
        if ch.is_alphanumeric() {
            if pending_underscore && !out.is_empty() {
                out.push('_');
            }
            pending_underscore = false;
            out.extend(ch.to_lowercase());
        } else {
            pending_underscore = true;
        }
    }
    if out.is_empty() {
        return "column".to_string();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The columns of an input that do not line up with a table's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMismatch {
    /// Columns the table has and the input lacks.
    pub missing: Vec<String>,
    /// Columns the input has and the table lacks.
    pub unexpected: Vec<String>,
}

impl std::fmt::Display for ColumnMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing column(s): {}", self.missing.join(", ")));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!(
                "unexpected column(s): {}",
                self.unexpected.join(", ")
            ));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// Checks that an input carries exactly the table's columns (in any order).
pub fn check_columns<'a>(
    table: impl IntoIterator<Item = &'a str>,
    input: impl IntoIterator<Item = &'a str>,
) -> Result<(), ColumnMismatch> {
    let table: BTreeSet<&str> = table.into_iter().collect();
    let input: BTreeSet<&str> = input.into_iter().collect();
    let missing: Vec<String> = table.difference(&input).map(|s| s.to_string()).collect();
    let unexpected: Vec<String> = input.difference(&table).map(|s| s.to_string()).collect();
    if missing.is_empty() && unexpected.is_empty() {
        Ok(())
    } else {
        Err(ColumnMismatch {
            missing,
            unexpected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_agency_headers_to_snake_case() {
        assert_eq!(normalize_column_name("\u{feff}id"), "id");
        assert_eq!(
            normalize_column_name(" Nama Kabupaten/Kota "),
            "nama_kabupaten_kota"
        );
        assert_eq!(normalize_column_name("Jumlah (Jiwa)"), "jumlah_jiwa");
        assert_eq!(normalize_column_name("2024"), "_2024");
        assert_eq!(normalize_column_name("--"), "column");
    }

    #[test]
    fn column_mismatch_names_missing_and_unexpected_columns() {
        let err = check_columns(["a", "b", "c"], ["a", "c", "d"]).unwrap_err();
        assert_eq!(err.missing, vec!["b"]);
        assert_eq!(err.unexpected, vec!["d"]);
        assert_eq!(
            err.to_string(),
            "missing column(s): b; unexpected column(s): d"
        );
        assert!(check_columns(["a", "b"], ["b", "a"]).is_ok());
    }
}
