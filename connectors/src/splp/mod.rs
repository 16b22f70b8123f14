//! The `splp` source: a preset of `rest_json` for SPLP (Sistem Penghubung Layanan
//! Pemerintah), the national government service gateway.
//!
//! An SPLP service is published under its tenant (`https://<gateway>/<tenant>/<service
//! path>`) and called with the consumer's key in an `APIkey` header. Every other setting is
//! `rest_json`'s (record selector, pagination, cursor, retries, rate limit), so a service of
//! any shape can be read.

use serde::Deserialize;

use crate::raw::SourceError;
use crate::rest_json::{RestJson, RestJsonConfig};

/// The gateway's address when none is given.
pub const DEFAULT_GATEWAY: &str = "https://splp.layanan.go.id";

/// The settings only SPLP has; the rest of the table is `rest_json`'s.
#[derive(Debug, Clone, Deserialize, PartialEq)]
struct SplpPart {
    #[serde(default = "default_gateway")]
    gateway: String,
    tenant: String,
    path: String,
    api_key: String,
}

fn default_gateway() -> String {
    DEFAULT_GATEWAY.into()
}

const SPLP_KEYS: [&str; 4] = ["gateway", "tenant", "path", "api_key"];

/// Builds the `rest_json` configuration an SPLP pipeline's settings stand for.
pub fn rest_json_config(settings: &toml::Table) -> Result<RestJsonConfig, SourceError> {
    let invalid = |reason: String| SourceError::Config {
        connector: "splp".into(),
        reason,
    };
    if settings.contains_key("url") {
        return Err(invalid(
            "do not set url: SPLP builds it from gateway, tenant and path".into(),
        ));
    }
    let mut own = toml::Table::new();
    let mut rest = toml::Table::new();
    for (key, value) in settings {
        let side = if SPLP_KEYS.contains(&key.as_str()) {
            &mut own
        } else {
            &mut rest
        };
        side.insert(key.clone(), value.clone());
    }
    let part: SplpPart = toml::Value::Table(own)
        .try_into()
        .map_err(|e: toml::de::Error| invalid(e.message().to_string()))?;
    let tenant_ok = !part.tenant.is_empty()
        && part
            .tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !tenant_ok {
        return Err(invalid(format!(
            "tenant '{}' must be letters, digits, '-', '_' or '.'",
            part.tenant
        )));
    }
    if part.api_key.trim().is_empty() {
        return Err(invalid("api_key is empty".into()));
    }
    let url = format!(
        "{}/{}/{}",
        part.gateway.trim_end_matches('/'),
        part.tenant,
        part.path.trim_start_matches('/')
    );
    rest.insert("url".into(), toml::Value::String(url));
    let mut config: RestJsonConfig = toml::Value::Table(rest)
        .try_into()
        .map_err(|e: toml::de::Error| invalid(e.message().to_string()))?;
    config.headers.push(("APIkey".into(), part.api_key));
    Ok(config)
}

/// The source.
pub fn source(settings: &toml::Table) -> Result<RestJson, SourceError> {
    RestJson::new(rest_json_config(settings)?)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::rest_json::tests::{ids, read_all, serve};

    fn settings(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[tokio::test]
    async fn calls_the_tenants_service_with_the_api_key_header() {
        let router = Router::new().route(
            "/kemendagri/dukcapil/v1/agregat",
            get(|headers: HeaderMap| async move {
                if headers.get("APIkey").and_then(|v| v.to_str().ok()) != Some("kunci-opd") {
                    return (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"message": "Invalid Credentials"})),
                    );
                }
                (
                    StatusCode::OK,
                    Json(json!({"status": "OK", "content": [{"id": 1}, {"id": 2}]})),
                )
            }),
        );
        let gateway = serve(router).await;
        let config = settings(&format!(
            r#"
            gateway = "{gateway}"
            tenant = "kemendagri"
            path = "/dukcapil/v1/agregat"
            api_key = "kunci-opd"
            record_selector = "/content"
            "#
        ));
        let source = source(&config).unwrap();
        let (batches, _) = read_all(&source, None).await.unwrap();
        assert_eq!(ids(&batches), vec!["1", "2"]);

        let mut wrong = config.clone();
        wrong.insert("api_key".into(), "salah".into());
        let refused = source_error(&wrong).await;
        assert!(refused.contains("401"), "{refused}");
    }

    async fn source_error(config: &toml::Table) -> String {
        use crate::source::Source;
        source(config)
            .unwrap()
            .check()
            .await
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let base = r#"tenant = "kemendagri"
            path = "/x"
            api_key = "k""#;
        assert!(rest_json_config(&settings(base)).is_ok());
        let url = rest_json_config(&settings(base)).unwrap().url;
        assert_eq!(url, "https://splp.layanan.go.id/kemendagri/x");
        for bad in [
            "tenant = \"a/b\"\npath = \"/x\"\napi_key = \"k\"",
            "tenant = \"t\"\npath = \"/x\"\napi_key = \" \"",
            "tenant = \"t\"\npath = \"/x\"\napi_key = \"k\"\nurl = \"http://x\"",
            "tenant = \"t\"\npath = \"/x\"\napi_key = \"k\"\nunknown = 1",
            "path = \"/x\"\napi_key = \"k\"",
        ] {
            assert!(rest_json_config(&settings(bad)).is_err(), "{bad}");
        }
    }
}
