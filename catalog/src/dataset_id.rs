use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Suffix of the table that keeps a dataset's rejected rows.
pub const REJECTS_SUFFIX: &str = "__rejects";

/// Namespaces that belong to SQL engines and to the hub itself, never to datasets.
const RESERVED_NAMESPACES: [&str; 4] = ["information_schema", "pg_catalog", "simpul", "public"];

/// A dataset's id, `namespace.name` in lowercase snake_case (`stats.kemiskinan`).
/// In SQL it is `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetId {
    namespace: String,
    name: String,
}

impl DatasetId {
    /// The namespace (SQL schema).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name within the namespace (SQL table).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table name of this dataset's rejects table.
    pub fn rejects_name(&self) -> String {
        format!("{}{REJECTS_SUFFIX}", self.name)
    }
}

/// Why a dataset id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid dataset id '{id}': {reason}")]
pub struct InvalidDatasetId {
    id: String,
    reason: &'static str,
}

fn valid_part(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some('a'..='z'))
        && part.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

impl FromStr for DatasetId {
    type Err = InvalidDatasetId;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidDatasetId {
            id: id.to_string(),
            reason,
        };
        let (namespace, name) = id
            .split_once('.')
            .ok_or_else(|| invalid("expected namespace.name, for example stats.kemiskinan"))?;
        if !valid_part(namespace) || !valid_part(name) {
            return Err(invalid(
                "namespace and name must be lowercase snake_case: a letter, then letters, digits or _ (at most 63)",
            ));
        }
        if RESERVED_NAMESPACES.contains(&namespace) {
            return Err(invalid("this namespace is reserved"));
        }
        if name.ends_with(REJECTS_SUFFIX) {
            return Err(invalid(
                "names ending in __rejects are reserved for rejects tables",
            ));
        }
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

impl TryFrom<String> for DatasetId {
    type Error = InvalidDatasetId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<DatasetId> for String {
    fn from(id: DatasetId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_namespace_and_name() {
        let id: DatasetId = "stats.garis_kemiskinan".parse().unwrap();
        assert_eq!(id.namespace(), "stats");
        assert_eq!(id.name(), "garis_kemiskinan");
        assert_eq!(id.rejects_name(), "garis_kemiskinan__rejects");
    }

    #[test]
    fn refuses_malformed_and_reserved_ids() {
        for bad in [
            "stats",
            "Stats.x",
            "stats.x-y",
            "stats.1x",
            "stats.x.y",
            "simpul.audit",
            "stats.x__rejects",
            "../etc.passwd",
        ] {
            assert!(bad.parse::<DatasetId>().is_err(), "{bad} should be refused");
        }
    }
}
