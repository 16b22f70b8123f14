//! Backward compatibility between two versions of a schema.
//!
//! A new minor or patch version may only accept more: adding an optional property is fine;
//! removing a property, narrowing a type, adding or tightening a constraint, or making a
//! property required is not. Such changes need a new major version.

use std::collections::BTreeSet;

use serde_json::Value;

/// One change that would refuse data the older version accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// The property concerned, or `None` for the schema as a whole.
    pub property: Option<String>,
    /// What changed, in plain words.
    pub change: String,
}

impl std::fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.property {
            Some(p) => write!(f, "property '{p}': {}", self.change),
            None => write!(f, "{}", self.change),
        }
    }
}

/// Schema-level keywords whose change can refuse records.
const ROOT_RULES: [&str; 10] = [
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "x-koordinat",
];

/// Lists the changes from `old` to `new` that would refuse records `old` accepted.
pub fn check_compatible(old: &Value, new: &Value) -> Vec<Incompatibility> {
    let mut found = Vec::new();
    let schema_wide = |change: String| Incompatibility {
        property: None,
        change,
    };
    let empty = serde_json::Map::new();
    let old_props = old
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_props = new
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, old_schema) in old_props {
        match new_props.get(name) {
            None => found.push(Incompatibility {
                property: Some(name.clone()),
                change: "was removed".into(),
            }),
            Some(new_schema) => {
                for change in property_changes(old_schema, new_schema) {
                    found.push(Incompatibility {
                        property: Some(name.clone()),
                        change,
                    });
                }
            }
        }
    }
    let required = |schema: &Value| -> BTreeSet<String> {
        schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    for newly in required(new).difference(&required(old)) {
        found.push(Incompatibility {
            property: Some(newly.clone()),
            change: "became required".into(),
        });
    }
    let closed = |schema: &Value| schema.get("additionalProperties") == Some(&Value::Bool(false));
    if closed(new) && !closed(old) {
        found.push(schema_wide(
            "additionalProperties became false: extra columns are now refused".into(),
        ));
    }
    for keyword in ROOT_RULES {
        if old.get(keyword) != new.get(keyword) && new.get(keyword).is_some() {
            found.push(schema_wide(format!(
                "the schema-level rule \"{keyword}\" was added or changed"
            )));
        }
    }
    found
}

fn types(schema: &Value) -> BTreeSet<String> {
    match schema.get("type") {
        Some(Value::String(t)) => BTreeSet::from([t.clone()]),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => [
            "string", "integer", "number", "boolean", "array", "object", "null",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    }
}

fn property_changes(old: &Value, new: &Value) -> Vec<String> {
    let mut changes = Vec::new();
    let (old_types, new_types) = (types(old), types(new));
    for t in &old_types {
        let still_allowed =
            new_types.contains(t) || (t == "integer" && new_types.contains("number"));
        if !still_allowed {
            changes.push(format!("type narrowed: '{t}' is no longer allowed"));
        }
    }
    match (
        old.get("enum").and_then(Value::as_array),
        new.get("enum").and_then(Value::as_array),
    ) {
        (None, Some(_)) => changes.push("an enum was added".into()),
        (Some(old_values), Some(new_values)) => {
            let dropped: Vec<String> = old_values
                .iter()
                .filter(|v| !new_values.contains(v))
                .map(Value::to_string)
                .collect();
            if !dropped.is_empty() {
                changes.push(format!("enum values removed: {}", dropped.join(", ")));
            }
        }
        _ => {}
    }
    for keyword in ["const", "pattern", "format"] {
        if new.get(keyword).is_some() && old.get(keyword) != new.get(keyword) {
            changes.push(format!("\"{keyword}\" was added or changed"));
        }
    }
    let number = |schema: &Value, keyword: &str| schema.get(keyword).and_then(Value::as_f64);
    for keyword in ["minLength", "minimum", "exclusiveMinimum"] {
        if let Some(new_bound) = number(new, keyword)
            && number(old, keyword).is_none_or(|old_bound| new_bound > old_bound)
        {
            changes.push(format!("\"{keyword}\" was added or raised to {new_bound}"));
        }
    }
    for keyword in ["maxLength", "maximum", "exclusiveMaximum"] {
        if let Some(new_bound) = number(new, keyword)
            && number(old, keyword).is_none_or(|old_bound| new_bound < old_bound)
        {
            changes.push(format!("\"{keyword}\" was added or lowered to {new_bound}"));
        }
    }
    for keyword in [
        "items",
        "properties",
        "multipleOf",
        "minItems",
        "maxItems",
        "oneOf",
        "anyOf",
        "allOf",
        "$ref",
    ] {
        if new.get(keyword).is_some() && old.get(keyword) != new.get(keyword) {
            changes.push(format!("\"{keyword}\" was added or changed"));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v1() -> Value {
        json!({
            "type": "object",
            "required": ["nik"],
            "properties": {
                "nik": {"type": "string", "format": "nik"},
                "umur": {"type": "integer", "minimum": 0},
                "status": {"type": "string", "enum": ["a", "b"]},
                "catatan": {"type": ["string", "null"], "maxLength": 100}
            }
        })
    }

    #[test]
    fn adding_an_optional_property_or_widening_is_compatible() {
        let mut v2 = v1();
        v2["properties"]["telepon"] = json!({"type": "string"});
        v2["properties"]["umur"] = json!({"type": "number", "minimum": -1});
        v2["properties"]["status"]["enum"] = json!(["a", "b", "c"]);
        v2["properties"]["catatan"]["maxLength"] = json!(500);
        assert_eq!(check_compatible(&v1(), &v2), vec![]);
    }

    #[test]
    fn removing_narrowing_tightening_and_requiring_are_named() {
        let mut v2 = v1();
        v2["properties"].as_object_mut().unwrap().remove("status");
        v2["properties"]["umur"] = json!({"type": "integer", "minimum": 17});
        v2["properties"]["catatan"] = json!({"type": "string", "maxLength": 100});
        v2["required"] = json!(["nik", "umur"]);
        let mut found: Vec<String> = check_compatible(&v1(), &v2)
            .iter()
            .map(ToString::to_string)
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                "property 'catatan': type narrowed: 'null' is no longer allowed",
                "property 'status': was removed",
                "property 'umur': \"minimum\" was added or raised to 17",
                "property 'umur': became required",
            ]
        );
    }

    #[test]
    fn number_to_integer_is_narrowing() {
        let old = json!({"properties": {"x": {"type": "number"}}});
        let new = json!({"properties": {"x": {"type": "integer"}}});
        assert_eq!(check_compatible(&old, &new).len(), 1);
    }
}
