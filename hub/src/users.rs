//! User accounts: people who log in to the web pages, and to SQL, with a user name and a
//! password instead of an API key.
//!
//! An account is an API client whose id is the user name; its member, subsystem and role
//! decide what it may do, exactly as for a key, and revoking it (`DELETE /api/v1/users/{id}` or
//! `/keys/{id}`) ends its sessions at the next page. Passwords are stored as Argon2id hashes
//! (the OWASP parameters: 19 MiB, two passes) and checked on a blocking thread. Five wrong
//! passwords for one user name within 15 minutes lock that name for the rest of the window, so
//! a password cannot be guessed online.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use rand::RngCore;
use simpul_catalog::{ApiClient, CatalogError, Role, StateStore};

use crate::auth::{
    audit_new_client, check_client_id, key_hash, new_client, registered_subsystem, revoke_client,
    valid_client_id,
};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted (hashing is costly; a megabyte password is an attack).
const MAX_PASSWORD_BYTES: usize = 1024;
/// Wrong passwords for one user name allowed within [`LOCK_WINDOW`].
const MAX_FAILURES: u32 = 5;
/// How long failures count, and how long a locked name stays locked.
const LOCK_WINDOW: Duration = Duration::from_secs(15 * 60);
/// At most this many user names are tracked; the oldest go first.
const MAX_TRACKED: usize = 10_000;

/// What is needed to make a user account.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The user name, which is also the client id: lowercase letters, digits, `-`, `_`.
    pub id: String,
    /// The member (OPD) code, `BAPPEDA`.
    pub member: String,
    /// The member's system the user acts for, `ANALISIS`.
    pub subsystem: String,
    /// What the user may do.
    pub role: Role,
    /// Who the user is (full name, unit).
    #[serde(default)]
    pub description: String,
    /// The first password; the user should change it.
    pub password: String,
}

/// Why a login failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// The user name or password is wrong, or the account is revoked. One answer for all, so
    /// that the answer does not tell which user names exist.
    Wrong,
    /// Too many wrong passwords for this user name; try again after this long.
    Locked(Duration),
}

/// Checks a new password against the policy.
pub fn check_password(password: &str) -> Result<(), CatalogError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CatalogError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(CatalogError::Invalid(format!(
            "a password may have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if password.trim() != password {
        return Err(CatalogError::Invalid(
            "a password may not begin or end with spaces".into(),
        ));
    }
    Ok(())
}

/// The Argon2id PHC string of `password`, with a fresh random salt.
fn hash_password(password: &str) -> Result<String, CatalogError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| CatalogError::State(format!("encoding a salt failed: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CatalogError::State(format!("hashing a password failed: {e}")))
}

/// Whether `password` matches the PHC string `hash`; a hash that does not parse matches nothing.
fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Hashes on a blocking thread: Argon2 takes tens of milliseconds of CPU by design.
async fn hash_blocking(password: &str) -> Result<String, CatalogError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| CatalogError::State(format!("the hashing task failed: {e}")))?
}

/// A hash that no password was ever given for, verified when the user name is unknown so
/// that an unknown name takes as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hash_password(&hex::encode(bytes)).unwrap_or_default()
    })
}

/// Makes a user account; returns its client.
pub async fn create_user(
    state: &StateStore,
    request: &NewUser,
    actor: &str,
) -> Result<ApiClient, CatalogError> {
    check_client_id("user name", &request.id)?;
    check_password(&request.password)?;
    let (member, subsystem) =
        registered_subsystem(state, &request.member, &request.subsystem).await?;
    let client = new_client(
        request.id.clone(),
        member,
        subsystem,
        request.role,
        &request.description,
    );
    let password_hash = hash_blocking(&request.password).await?;
    // The client row needs a key hash; this one is of a key that is made here and dropped,
    // so the account has no working API key.
    let unused_key = crate::auth::new_key();
    state
        .insert_user(&client, &key_hash(&unused_key), &password_hash)
        .await?;
    audit_new_client(state, actor, "user.create", &client).await?;
    Ok(client)
}

/// Sets an active user's password; false if there is no such active user.
pub async fn set_password(
    state: &StateStore,
    id: &str,
    password: &str,
    actor: &str,
) -> Result<bool, CatalogError> {
    check_password(password)?;
    if state.active_user(id).await?.is_none() {
        return Ok(false);
    }
    let hash = hash_blocking(password).await?;
    let set = state.set_user_password(id, &hash).await?;
    if set {
        state
            .audit(actor, "user.password", id, serde_json::json!({}))
            .await?;
    }
    Ok(set)
}

/// Revokes a user account (its client); false if there is no such active user. Its sessions
/// end at their next page.
pub async fn revoke_user(state: &StateStore, id: &str, actor: &str) -> Result<bool, CatalogError> {
    if state.active_user(id).await?.is_none() {
        return Ok(false);
    }
    revoke_client(state, id, actor, "user.revoke").await
}

/// Password checks running at once, at most: each takes 19 MiB and a core for tens of
/// milliseconds, so a flood of logins under many names queues instead of exhausting the hub.
const CONCURRENT_CHECKS: usize = 2;

/// Wrong passwords per user name, for locking names that are being guessed, and the permits
/// that bound how many passwords are checked at once.
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    checks: tokio::sync::Semaphore,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            failures: Mutex::default(),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
        }
    }
}

impl LoginThrottle {
    /// How much longer `user` stays locked, if it is, and whether this is the first attempt
    /// refused for it (so that a name hammered while locked is audited once, not per try).
    fn locked_for(&self, user: &str) -> Option<(Duration, bool)> {
        let mut held = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (count, first) = held.get_mut(user)?;
        let left = LOCK_WINDOW.checked_sub(first.elapsed())?;
        if *count < MAX_FAILURES {
            return None;
        }
        *count = count.saturating_add(1);
        Some((left, *count == MAX_FAILURES + 1))
    }

    fn fail(&self, user: &str) {
        let mut held = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|_, (_, first)| first.elapsed() < LOCK_WINDOW);
        if held.len() >= MAX_TRACKED
            && let Some(oldest) = held
                .iter()
                .min_by_key(|(_, (_, first))| *first)
                .map(|(k, _)| k.clone())
        {
            held.remove(&oldest);
        }
        let entry = held.entry(user.to_string()).or_insert((0, Instant::now()));
        entry.0 += 1;
    }

    fn succeed(&self, user: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
    }

    /// Checks a user name and password: the active client on success. Every attempt is
    /// audited, as `user.login` or `user.login_refused`, except the second and later tries
    /// on a locked name.
    pub async fn login(
        &self,
        state: &StateStore,
        user: &str,
        password: &str,
        via: &str,
    ) -> Result<Result<ApiClient, LoginRefused>, CatalogError> {
        // What a caller typed is kept (in the throttle and the audit) at most as long as a
        // valid user name; a longer one names no account anyway.
        let user: String = user.trim().to_lowercase().chars().take(64).collect();
        if let Some((left, first_refusal)) = self.locked_for(&user) {
            if first_refusal {
                state
                    .audit(
                        &user,
                        "user.login_refused",
                        &user,
                        serde_json::json!({"via": via, "reason": "locked"}),
                    )
                    .await?;
            }
            return Ok(Err(LoginRefused::Locked(left)));
        }
        let account = if valid_client_id(&user) {
            state.active_user(&user).await?
        } else {
            None
        };
        // A password longer than any that can be set is wrong without hashing it.
        let matches = password.len() <= MAX_PASSWORD_BYTES && {
            let hash = account
                .as_ref()
                .map_or_else(|| decoy_hash().to_string(), |(_, h)| h.clone());
            let password = password.to_string();
            let _permit =
                self.checks.acquire().await.map_err(|e| {
                    CatalogError::State(format!("the password checks stopped: {e}"))
                })?;
            tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .map_err(|e| CatalogError::State(format!("the hashing task failed: {e}")))?
        };
        match account {
            Some((client, _)) if matches => {
                self.succeed(&user);
                state
                    .audit(
                        &client.id,
                        "user.login",
                        &client.id,
                        serde_json::json!({"via": via}),
                    )
                    .await?;
                Ok(Ok(client))
            }
            _ => {
                self.fail(&user);
                state
                    .audit(
                        &user,
                        "user.login_refused",
                        &user,
                        serde_json::json!({"via": via, "reason": "wrong"}),
                    )
                    .await?;
                Ok(Err(LoginRefused::Wrong))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_to_salted_argon2id_and_verify() {
        let a = hash_password("kata sandi rahasia").unwrap();
        let b = hash_password("kata sandi rahasia").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(verify_password("kata sandi rahasia", &a));
        assert!(!verify_password("kata sandi rahasiA", &a));
        assert!(!verify_password("kata sandi rahasia", "not a phc string"));
    }

    #[test]
    fn the_password_policy_names_what_is_wrong() {
        assert!(check_password("cukup-panjang-1").is_ok());
        let short = check_password("pendek").unwrap_err().to_string();
        assert!(short.contains("at least 12"), "{short}");
        assert!(check_password(" spasi di depan").is_err());
        assert!(check_password(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn five_failures_lock_a_name_and_others_stay_open() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES - 1 {
            throttle.fail("ani");
        }
        assert_eq!(throttle.locked_for("ani"), None);
        throttle.fail("ani");
        let (left, first) = throttle
            .locked_for("ani")
            .expect("locked after five failures");
        assert!(left <= LOCK_WINDOW && left > LOCK_WINDOW - Duration::from_secs(60));
        assert!(first, "the first refusal is the one audited");
        assert!(!throttle.locked_for("ani").unwrap().1, "later ones are not");
        assert_eq!(throttle.locked_for("budi"), None);
        throttle.succeed("ani");
        assert_eq!(throttle.locked_for("ani"), None);
    }
}
