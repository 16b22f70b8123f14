//! Logging in to the web pages: an API key or a user name and password (`crate::users`), given
//! once in a form, becomes a session cookie (`HttpOnly`, `SameSite=Strict`). Sessions live in
//! the process (a restart logs everyone out) and keep only the client id, which is looked up
//! at every page, so revoking a key or an account ends its sessions at the next page.
//! Forms carry a CSRF token: the login form's matches a cookie set with the form
//! (double submit), the logout form's is the session's own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::{Caller, key_hash};
use crate::server::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "simpul_session";
/// The login form's CSRF cookie.
pub const CSRF_COOKIE: &str = "simpul_csrf";
/// A session ends this long after it was made.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// At most this many sessions are held; the oldest go first.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    client_id: String,
    csrf: String,
    made: Instant,
}

/// The sessions of this process.
#[derive(Default)]
pub struct Sessions {
    held: Mutex<HashMap<String, Session>>,
}

/// A random token, URL-safe.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Sessions {
    /// A new session for the client `client_id`: `(cookie token, CSRF token)`.
    pub fn open(&self, client_id: String) -> (String, String) {
        let (cookie, csrf) = (token(), token());
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|_, s| s.made.elapsed() < LIFETIME);
        if held.len() >= MAX_SESSIONS
            && let Some(oldest) = held
                .iter()
                .min_by_key(|(_, s)| s.made)
                .map(|(k, _)| k.clone())
        {
            held.remove(&oldest);
        }
        held.insert(
            digest(&cookie),
            Session {
                client_id,
                csrf: csrf.clone(),
                made: Instant::now(),
            },
        );
        (cookie, csrf)
    }

    /// The client id and CSRF token of a live session.
    fn find(&self, cookie: &str) -> Option<(String, String)> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&digest(cookie))
            .filter(|s| s.made.elapsed() < LIFETIME)
            .map(|s| (s.client_id.clone(), s.csrf.clone()))
    }

    /// Ends a session.
    pub fn close(&self, cookie: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&digest(cookie));
    }
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Who is looking: a `Bearer` key, or a session cookie; `None` for anyone else. With the
/// session comes its CSRF token.
pub async fn viewer(app: &AppState, headers: &HeaderMap) -> Option<(Caller, Option<String>)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|k| key_hash(k.trim()));
    let state = &app.catalog.state;
    match bearer {
        Some(hash) => {
            let client = state.active_client_by_key_hash(&hash).await.ok()??;
            Some((Caller(client), None))
        }
        None => {
            let (id, csrf) = app.sessions.find(&cookie(headers, SESSION_COOKIE)?)?;
            let client = state
                .client(&id)
                .await
                .ok()?
                .filter(|c| c.revoked_at.is_none())?;
            Some((Caller(client), Some(csrf)))
        }
    }
}

/// Whether requests come in over HTTPS (directly or through a proxy that says so): then
/// cookies are `Secure`.
pub fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends_when_closed() {
        let sessions = Sessions::default();
        let (cookie, csrf) = sessions.open("bappeda-analis".into());
        assert_eq!(
            sessions.find(&cookie),
            Some(("bappeda-analis".into(), csrf))
        );
        assert_eq!(sessions.find("not-a-session"), None);
        sessions.close(&cookie);
        assert_eq!(sessions.find(&cookie), None);
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; simpul_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
