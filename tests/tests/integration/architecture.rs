//! Architecture tests: the invariants ARCHITECTURE.md states about where code may do what,
//! checked against the source. Each rule names the calls it forbids and the only files
//! allowed to make them; a rule broken on purpose fails here with the file and line.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, depth first, in name order.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut files = Vec::new();
    for path in entries {
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The module folders under `hub/src/modules/`.
fn module_folders() -> Vec<String> {
    let modules: Vec<String> = std::fs::read_dir(root().join("hub/src/modules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(modules.len() >= 2, "no module folders found: {modules:?}");
    modules
}

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// `text` without its comments, with each method chain split over lines joined onto one
/// (`catalog\n    .lake\n    .commit(` reads `catalog.lake.commit(`).
fn code_of(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with('.') {
            code.push_str(trimmed);
        } else {
            code.push('\n');
            code.push_str(line);
        }
    }
    code
}

/// Where under `crate_dir/src` one of `calls` is made outside `allowed` (paths relative to
/// `src`; one ending in `/` allows a folder), as `file: code`. Comments are not calls.
fn violations(crate_dir: &str, calls: &[&str], allowed: &[&str]) -> Vec<String> {
    let src = root().join(crate_dir).join("src");
    let mut found = Vec::new();
    for file in sources(&src) {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let allowed = allowed.iter().any(|a| match a.strip_suffix('/') {
            Some(folder) => relative.starts_with(&format!("{folder}/")),
            None => relative == *a,
        });
        if allowed {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        for line in code.lines() {
            if calls.iter().any(|call| line.contains(call)) {
                found.push(format!("{crate_dir}/src/{relative}: {}", line.trim()));
            }
        }
    }
    found
}

/// Every read of the lake that a client asks for, through whichever protocol, is admitted,
/// limited, run and logged by the read door (`hub/src/read.rs`): no other file of the hub
/// admits a query, opens a query-log record, or runs a plan. The operator's `simpul sql` on
/// the hub's own machine is the one exception: it is not served to anyone, and it runs
/// after the hub's process may have gone.
#[test]
fn every_read_goes_through_the_read_door() {
    let found = violations(
        "hub",
        &[
            "admit_ticket(",
            "QueryTicket::new(",
            "simpul_catalog::execute(",
            "execute_stream(",
            "collect_partitioned(",
            ".collect().await",
            "limit_rows(",
        ],
        &["read.rs", "query.rs", "cli/sql.rs"],
    );
    assert!(
        found.is_empty(),
        "reads outside the read door (hub/src/read.rs):\n{}",
        found.join("\n")
    );
}

/// Every commit of rows to the lake goes through the write door
/// (`pipelines/src/land.rs`): ingest, pipeline runs, bus publishes, module exports and
/// seeds. No other file of the hub, the pipelines or the connectors commits, merges or
/// writes batches to a table. (Compaction, which rewrites files without changing a row, is
/// the catalog's own maintenance.)
#[test]
fn every_lake_commit_goes_through_the_write_door() {
    let calls = [
        "lake.commit(",
        "lake.merge(",
        "lake.write_batches(",
        ".commit(staged",
    ];
    let mut found = Vec::new();
    for krate in ["hub", "pipelines", "connectors"] {
        let allowed: &[&str] = if krate == "pipelines" {
            &["land.rs"]
        } else {
            &[]
        };
        found.extend(violations(krate, &calls, allowed));
    }
    assert!(
        found.is_empty(),
        "lake commits outside the write door (pipelines/src/land.rs):\n{}",
        found.join("\n")
    );
}

/// A module's types are its own: outside `hub/src/modules/`, the hub reaches a module only
/// through the seam (`modules::registry`: its registration, `AppState::module`), so adding a
/// module is one folder and one line in `REGISTRY`.
#[test]
fn nothing_outside_a_module_names_its_internals() {
    let modules = module_folders();
    let mut found = Vec::new();
    for module in &modules {
        let paths = [
            format!("modules::{module}::"),
            format!("modules::{module};"),
            format!("modules::{module} "),
        ];
        let calls: Vec<&str> = paths.iter().map(String::as_str).collect();
        found.extend(violations("hub", &calls, &["modules/"]));
    }
    assert!(
        found.is_empty(),
        "hub files that name a module's internals instead of the seam:\n{}",
        found.join("\n")
    );
}

/// A module's state-store tables are migrated from its own folder
/// (`hub/src/modules/<name>/migrations/`), not from the catalog's.
#[test]
fn module_migrations_live_in_their_module_folders() {
    let modules = module_folders();
    let catalog: Vec<String> = std::fs::read_dir(root().join("catalog/migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let misplaced: Vec<&String> = catalog
        .iter()
        .filter(|file| modules.iter().any(|m| file.contains(m.as_str())))
        .collect();
    assert!(
        misplaced.is_empty(),
        "module migrations in catalog/migrations: {misplaced:?}"
    );
    for module in &modules {
        let folder = root()
            .join("hub/src/modules")
            .join(module)
            .join("migrations");
        assert!(
            folder.is_dir(),
            "{module} has no migrations folder at {}",
            folder.display()
        );
    }
}
