//! Schema names as people write them, and registering schema files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use simpul_catalog::{Catalog, Registration, SchemaBinding};
use simpul_schemas::{SchemaFile, load_schema_file};

/// Resolves `penduduk` (the newest major) or `penduduk@1` to a binding of a registered
/// schema.
pub async fn binding(catalog: &Arc<Catalog>, text: &str) -> Result<SchemaBinding, String> {
    catalog
        .resolve_binding(text)
        .await
        .map_err(|e| e.to_string())
}

/// The `*.schema.json` files named: files as given, directories by their contents.
pub fn schema_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".schema.json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Registers every schema file under `dir`; the first that fails stops the start, naming
/// the file and the reason.
pub async fn register_dir(
    catalog: &Arc<Catalog>,
    dir: &Path,
    actor: &str,
) -> Result<Vec<(SchemaFile, Registration)>, String> {
    let mut registered = Vec::new();
    for path in schema_files(&[dir.to_path_buf()])? {
        let file = load_schema_file(&path).map_err(|e| e.0)?;
        let outcome = catalog
            .state
            .register_schema(&file, actor)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        registered.push((file, outcome));
    }
    Ok(registered)
}
