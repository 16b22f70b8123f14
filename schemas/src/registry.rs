//! The schemas that ship with Simpul, and reading schema files with errors that name them.

use std::path::Path;

use serde_json::Value;

use crate::compile::{CompiledSchema, DRAFT_2020_12, SchemaError, parse_version};

/// A schema document, checked: its registry name, version and the document.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// The registry name (`penduduk`), from the file name and `$id`.
    pub name: String,
    /// `MAJOR.MINOR.PATCH` from `x-version`.
    pub version: String,
    /// The document as written.
    pub document: Value,
}

macro_rules! shipped {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../", $name, ".schema.json")))),*]
    };
}

/// The canonical schemas, embedded in the binary: `(name, document text)`.
pub const SHIPPED_SCHEMAS: [(&str, &str); 18] = shipped![
    "wilayah",
    "opd",
    "penduduk",
    "fasilitas_kesehatan",
    "ambulans",
    "panggilan_darurat",
    "dispatch",
    "kejadian_dispatch",
    "pendaftaran_semar",
    "pengaduan",
    "permohonan_informasi",
    "kejadian_pengaduan",
    "pesan_pengaduan",
    "jenis_izin",
    "permohonan_izin",
    "layanan_publik",
    "dokumen_hukum",
    "observasi_statistik",
];

/// Keywords every property must carry: Indonesian and English title and description.
const PROPERTY_DOCS: [&str; 4] = ["title", "x-title-en", "description", "x-description-en"];

/// Reads a `<name>.schema.json` file. Every error names the file.
pub fn load_schema_file(path: &Path) -> Result<SchemaFile, SchemaError> {
    let origin = path.display().to_string();
    let name = path
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| f.strip_suffix(".schema.json"))
        .ok_or_else(|| {
            SchemaError(format!(
                "{origin}: schema files are named <name>.schema.json"
            ))
        })?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| SchemaError(format!("{origin}: cannot read: {e}")))?;
    parse_schema_document(name, &origin, &text)
}

/// Checks a schema document for the registry: valid JSON, a valid JSON Schema 2020-12,
/// `$id` ending in `/<name>/<x-version>`, every property documented in Indonesian and
/// English, and compilable by the vectorized engine.
pub fn parse_schema_document(
    name: &str,
    origin: &str,
    text: &str,
) -> Result<SchemaFile, SchemaError> {
    let fail = |message: String| SchemaError(format!("{origin}: {message}"));
    let document: Value = serde_json::from_str(text).map_err(|e| {
        fail(format!(
            "not valid JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    if document.get("$schema").and_then(Value::as_str) != Some(DRAFT_2020_12) {
        return Err(fail(format!("\"$schema\" must be \"{DRAFT_2020_12}\"")));
    }
    let version = document
        .get("x-version")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("\"x-version\" (MAJOR.MINOR.PATCH) is missing".into()))?
        .to_string();
    parse_version(&version).map_err(|e| fail(e.0))?;
    let id = document
        .get("$id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !id.ends_with(&format!("/{name}/{version}")) {
        return Err(fail(format!(
            "\"$id\" must end with /{name}/{version} (the name and x-version), found '{id}'"
        )));
    }
    let undocumented: Vec<String> = document
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, schema)| {
                    PROPERTY_DOCS
                        .iter()
                        .any(|k| schema.get(k).and_then(Value::as_str).is_none())
                })
                .map(|(prop, _)| prop.clone())
                .collect()
        })
        .unwrap_or_default();
    if !undocumented.is_empty() {
        return Err(fail(format!(
            "these properties lack a title, x-title-en, description or x-description-en: {}",
            undocumented.join(", ")
        )));
    }
    CompiledSchema::compile(name, document.clone()).map_err(|e| fail(e.0))?;
    Ok(SchemaFile {
        name: name.to_string(),
        version,
        document,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_schema_loads_and_compiles() {
        for (name, text) in SHIPPED_SCHEMAS {
            let file = parse_schema_document(name, name, text).unwrap_or_else(|e| panic!("{e}"));
            // 1.1.0 added the `assigned` step and the estimate to dispatches, and the deadline
            // step, the location and the close time to complaints and information requests.
            let expected = match name {
                "dispatch" | "pengaduan" | "permohonan_informasi" => "1.1.0",
                _ => "1.0.0",
            };
            assert_eq!(file.version, expected, "{name}");
        }
    }

    #[test]
    fn pii_is_marked_on_residents() {
        let (_, text) = SHIPPED_SCHEMAS
            .iter()
            .find(|(n, _)| *n == "penduduk")
            .unwrap();
        let compiled =
            CompiledSchema::compile("penduduk", serde_json::from_str(text).unwrap()).unwrap();
        let pii: Vec<&str> = compiled.pii_columns().collect();
        assert_eq!(pii, vec!["nik", "no_kk", "nama", "alamat", "telepon"]);
    }

    #[test]
    fn bad_files_get_errors_that_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            load_schema_file(&path).unwrap_err().0
        };
        let not_json = write("rusak.schema.json", "{ \"type\": ");
        assert!(
            not_json.contains("rusak.schema.json: not valid JSON at line 1"),
            "{not_json}"
        );
        let bad_type = write(
            "x.schema.json",
            r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://e/x/1.0.0",
                "x-version": "1.0.0", "type": "object", "properties": {"a": {"type": "strin",
                "title": "a", "x-title-en": "a", "description": "a", "x-description-en": "a"}}}"#,
        );
        assert!(
            bad_type.contains("x.schema.json: not a valid JSON Schema"),
            "{bad_type}"
        );
        let wrong_id = write(
            "y.schema.json",
            r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://e/z/1.0.0",
                "x-version": "1.0.0", "type": "object", "properties": {}}"#,
        );
        assert!(wrong_id.contains("must end with /y/1.0.0"), "{wrong_id}");
    }
}
