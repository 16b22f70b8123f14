//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document of every route, written from the
//! tables the routers are built from (`crate::routes::all`).

use axum::Json;
use serde_json::{Map, Value, json};

use crate::auth::Caller;

pub(super) async fn document(_caller: Caller) -> Json<Value> {
    Json(build())
}

/// The document.
pub(crate) fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for operation in crate::routes::all() {
        let (path, method, summary) = (operation.path, operation.method, operation.summary);
        let key = operation.access == crate::routes::Access::Key;
        let parameters: Vec<Value> = path_parameters(path)
            .into_iter()
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        let mut operation = json!({
            "summary": summary,
            "operationId": operation_id(method, path),
            "tags": [tag(path)],
            "responses": responses(path, operation.access),
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if !key {
            operation["security"] = json!([]);
        }
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Simpul",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The data hub and interoperability bus of Kabupaten Purwakarta. Every /api/v1 route needs 'Authorization: Bearer <key>'."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "CkanError": {
                    "type": "object",
                    "required": ["success", "error"],
                    "properties": {
                        "help": {"type": "string"},
                        "success": {"const": false},
                        "error": {
                            "type": "object",
                            "properties": {"__type": {"type": "string"}, "message": {"type": "string"}}
                        }
                    }
                },
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"}
                    }
                }
            }
        }
    })
}

/// What an operation answers. The API answers errors as problem+json; web pages answer
/// them as pages (and redirect to the login form); the CKAN actions in CKAN's own envelope.
fn responses(path: &str, access: crate::routes::Access) -> Value {
    let success = json!({"description": "Success"});
    let page = access == crate::routes::Access::Page
        || ["/", "/data", "/layanan"]
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if page {
        return json!({
            "2XX": success,
            "3XX": {"description": "A redirect: to the login form, or after a login"},
            "default": {"description": "An error page", "content": {"text/html": {}}}
        });
    }
    if path.starts_with("/api/3/action/") {
        return json!({
            "2XX": success,
            "default": {
                "description": "A CKAN error: success false, with the error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CkanError"}}}
            }
        });
    }
    json!({
        "2XX": success,
        "default": {
            "description": "A problem (RFC 9457)",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        }
    })
}

/// The `{name}` parameters of a path, in order.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// `get_api_v1_datasets_id_records` for `GET /api/v1/datasets/{id}/records`.
fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim_matches(|c| c == '{' || c == '}')
                .replace(['.', '-'], "_")
        })
        .collect();
    format!("{method}_{}", words.join("_"))
}

/// The area a path belongs to: `datasets`, `bus`, `health`.
fn tag(path: &str) -> String {
    let rest = path
        .strip_prefix("/api/v1/")
        .unwrap_or(path.trim_start_matches('/'));
    rest.split(['/', '.']).next().unwrap_or("api").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_once_with_its_path_parameters() {
        let document = build();
        let paths = document["paths"].as_object().unwrap();
        let mut ids = std::collections::HashSet::new();
        let mut count = 0;
        for (path, operations) in paths {
            for (method, operation) in operations.as_object().unwrap() {
                count += 1;
                assert!(
                    ids.insert(operation["operationId"].as_str().unwrap().to_string()),
                    "{method} {path}: operationId repeats"
                );
                let declared: Vec<&str> = operation["parameters"]
                    .as_array()
                    .map(|p| p.iter().map(|p| p["name"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(declared, path_parameters(path), "{method} {path}");
            }
        }
        assert_eq!(count, crate::routes::all().count());
        assert_eq!(
            document["paths"]["/api/v1/bus/requests/{id}/{verb}"]["post"]["parameters"][1]["name"],
            "verb"
        );
        assert_eq!(
            document["paths"]["/health/live"]["get"]["security"],
            json!([])
        );
    }
}
