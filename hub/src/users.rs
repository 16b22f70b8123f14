//! User accounts: people who log in to the web pages, and to SQL, with a user name and a
//! password instead of an API key.
//!
//! An account is an API client whose id is the user name; its member, subsystem and role
//! decide what it may do, exactly as for a key, and revoking it (`DELETE /api/v1/users/{id}` or
//! `/keys/{id}`) ends its sessions at the next page. Passwords are stored as Argon2id hashes
//! (the OWASP parameters: 19 MiB, two passes) and checked on a blocking thread. Five wrong
//! passwords for one user name, or from one source address, within 15 minutes lock that name
//! or address for the rest of the window, so a password cannot be guessed online
//! ([`LoginThrottle`]).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use chrono::Utc;
use rand::RngCore;
use simpul_catalog::{ApiClient, AttemptKind, CatalogError, Reservation, Role, StateStore};

use crate::auth::{
    audit_new_client, check_client_id, key_hash, new_client, registered_subsystem, revoke_client,
    valid_client_id,
};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted (hashing is costly; a megabyte password is an attack).
const MAX_PASSWORD_BYTES: usize = 1024;
/// Wrong passwords for one user name, and from one source address, allowed within
/// [`LOCK_WINDOW`].
const MAX_FAILURES: i64 = 5;
/// How long failures count, and how long a locked name stays locked.
const LOCK_WINDOW: Duration = Duration::from_secs(15 * 60);

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
    /// Too many wrong passwords for this user name, or from this address; try again after
    /// this long.
    Locked(Duration),
    /// Too many password checks are waiting; try again in a moment.
    Busy,
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
/// milliseconds.
const CONCURRENT_CHECKS: usize = 2;
/// Password checks that may wait for a slot, per lane; more are refused as busy.
const MAX_WAITING: usize = 64;

/// Where a login came from, as the throttle counts it: an IPv4 address, or an IPv6 /64
/// (one host holds a whole /64).
pub fn source_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The login throttle shared by `/login` and the PostgreSQL start-up.
///
/// - Attempts are counted in the state store before the password is checked, per user name
///   and per source address: at most [`MAX_FAILURES`] wrong passwords each in
///   [`LOCK_WINDOW`], however many arrive at once, and no flood of other names can push a
///   name's count out.
/// - Password checks (Argon2id) run [`CONCURRENT_CHECKS`] at a time. Attempts from an address
///   with no wrong password in its window wait in a lane of their own that is served first,
///   so a flood of guesses from other addresses delays a real user by at most the checks
///   already running and the other clean attempts ahead of it. Each lane holds at most
///   [`MAX_WAITING`]; past that an attempt is refused as busy at once.
pub struct LoginThrottle {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    running: usize,
    clean: VecDeque<tokio::sync::oneshot::Sender<()>>,
    suspect: VecDeque<tokio::sync::oneshot::Sender<()>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            slots: Mutex::new(Slots::default()),
        }
    }
}

/// An attempt waiting for a slot. Dropped before it took one that was handed to it (the
/// request went away), it gives that slot on.
struct Waiting<'a> {
    rx: Option<tokio::sync::oneshot::Receiver<()>>,
    throttle: &'a LoginThrottle,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.throttle.release();
            }
        }
    }
}

/// A held password-check slot; dropping it hands the slot to the next waiter.
struct Slot<'a>(&'a LoginThrottle);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl LoginThrottle {
    /// Waits for a password-check slot in the `clean` lane or the other; `None` when that
    /// lane is full.
    async fn slot(&self, clean: bool) -> Option<Slot<'_>> {
        let waiting = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            if slots.running < CONCURRENT_CHECKS {
                slots.running += 1;
                return Some(Slot(self));
            }
            let lane = if clean {
                &mut slots.clean
            } else {
                &mut slots.suspect
            };
            lane.retain(|w| !w.is_closed());
            if lane.len() >= MAX_WAITING {
                return None;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            lane.push_back(tx);
            rx
        };
        // The slot is handed over with `running` already counted for us; a waiter dropped
        // after the hand-over gives it back (`Waiting`'s drop).
        let mut waiting = Waiting {
            rx: Some(waiting),
            throttle: self,
        };
        let handed = match waiting.rx.as_mut() {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        waiting.rx = None;
        handed.then_some(Slot(self))
    }

    fn release(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let next = match slots.clean.pop_front() {
                Some(waiter) => Some(waiter),
                None => slots.suspect.pop_front(),
            };
            match next {
                // A waiter that went away cannot take the slot; try the next.
                Some(waiter) => {
                    if waiter.send(()).is_ok() {
                        return;
                    }
                }
                None => {
                    slots.running -= 1;
                    return;
                }
            }
        }
    }

    /// Checks a user name and password from `source`: the active client on success. Every
    /// attempt is audited, as `user.login` or `user.login_refused`, except the second and
    /// later tries on a locked name or address in a window.
    pub async fn login(
        &self,
        state: &StateStore,
        user: &str,
        password: &str,
        source: Option<IpAddr>,
        via: &str,
    ) -> Result<Result<ApiClient, LoginRefused>, CatalogError> {
        // What a caller typed is kept (in the counts and the audit) at most as long as a
        // valid user name; a longer one names no account anyway.
        let user: String = user.trim().to_lowercase().chars().take(64).collect();
        let window = chrono::Duration::from_std(LOCK_WINDOW).unwrap_or(chrono::Duration::MAX);
        let source = source.map(source_key);
        let refused = |until: chrono::DateTime<Utc>| {
            LoginRefused::Locked((until - Utc::now()).to_std().unwrap_or_default())
        };
        let audit_refusal = |reason: &'static str| {
            state.audit(
                &user,
                "user.login_refused",
                &user,
                serde_json::json!({"via": via, "reason": reason, "source": source}),
            )
        };
        match state
            .reserve_login_attempt(AttemptKind::Name, &user, MAX_FAILURES, window)
            .await?
        {
            Reservation::Granted { .. } => {}
            Reservation::Refused {
                until,
                first_refusal,
            } => {
                if first_refusal {
                    audit_refusal("locked").await?;
                }
                return Ok(Err(refused(until)));
            }
        }
        let clean = match &source {
            None => true,
            Some(address) => match state
                .reserve_login_attempt(AttemptKind::Address, address, MAX_FAILURES, window)
                .await?
            {
                Reservation::Granted { nth } => nth == 1,
                Reservation::Refused {
                    until,
                    first_refusal,
                } => {
                    state.refund_login_attempt(AttemptKind::Name, &user).await?;
                    if first_refusal {
                        audit_refusal("address_locked").await?;
                    }
                    return Ok(Err(refused(until)));
                }
            },
        };
        let account = if valid_client_id(&user) {
            state.active_user(&user).await?
        } else {
            None
        };
        // A password longer than any that can be set is wrong without hashing it.
        let matches = if password.len() > MAX_PASSWORD_BYTES {
            false
        } else {
            let Some(_slot) = self.slot(clean).await else {
                self.refund(state, &user, source.as_deref()).await?;
                return Ok(Err(LoginRefused::Busy));
            };
            let hash = account
                .as_ref()
                .map_or_else(|| decoy_hash().to_string(), |(_, h)| h.clone());
            let password = password.to_string();
            tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .map_err(|e| CatalogError::State(format!("the hashing task failed: {e}")))?
        };
        match account {
            Some((client, _)) if matches => {
                state.clear_login_attempts(AttemptKind::Name, &user).await?;
                if let Some(address) = &source {
                    state
                        .refund_login_attempt(AttemptKind::Address, address)
                        .await?;
                }
                state
                    .audit(
                        &client.id,
                        "user.login",
                        &client.id,
                        serde_json::json!({"via": via, "source": source}),
                    )
                    .await?;
                Ok(Ok(client))
            }
            _ => {
                audit_refusal("wrong").await?;
                Ok(Err(LoginRefused::Wrong))
            }
        }
    }

    /// Gives back the attempts reserved for a password that was never checked.
    async fn refund(
        &self,
        state: &StateStore,
        user: &str,
        source: Option<&str>,
    ) -> Result<(), CatalogError> {
        state.refund_login_attempt(AttemptKind::Name, user).await?;
        if let Some(address) = source {
            state
                .refund_login_attempt(AttemptKind::Address, address)
                .await?;
        }
        Ok(())
    }

    /// Forgets the counts whose window has passed; the hub calls it now and then.
    pub async fn prune(&self, state: &StateStore) -> Result<u64, CatalogError> {
        let window = chrono::Duration::from_std(LOCK_WINDOW).unwrap_or(chrono::Duration::MAX);
        state.prune_login_attempts(window).await
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
    fn a_source_is_an_ipv4_address_or_an_ipv6_64() {
        assert_eq!(source_key("10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(source_key("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(
            source_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            source_key("2001:db8:1:2:bbbb::9".parse().unwrap()),
            "one /64 is one source"
        );
    }

    #[tokio::test]
    async fn clean_attempts_take_the_next_free_slot_before_the_others() {
        use futures::FutureExt;
        let throttle = LoginThrottle::default();
        let mut held = Vec::new();
        for _ in 0..CONCURRENT_CHECKS {
            held.push(throttle.slot(false).await.unwrap());
        }
        let mut suspect = Box::pin(throttle.slot(false));
        assert!(suspect.as_mut().now_or_never().is_none(), "queued first");
        let mut clean = Box::pin(throttle.slot(true));
        assert!(clean.as_mut().now_or_never().is_none(), "queued second");
        held.pop();
        let clean_slot = clean.as_mut().now_or_never().flatten();
        assert!(
            clean_slot.is_some(),
            "the freed slot goes to the clean attempt"
        );
        assert!(suspect.as_mut().now_or_never().is_none());
        held.pop();
        assert!(suspect.as_mut().now_or_never().flatten().is_some());
        drop(clean_slot);
        // A waiter that went away after a slot was handed to it gives the slot on.
        let mut held = vec![throttle.slot(true).await.unwrap()];
        held.push(throttle.slot(true).await.unwrap());
        let mut gone = Box::pin(throttle.slot(true));
        assert!(gone.as_mut().now_or_never().is_none());
        let mut next = Box::pin(throttle.slot(true));
        assert!(next.as_mut().now_or_never().is_none());
        held.pop();
        drop(gone);
        assert!(next.as_mut().now_or_never().flatten().is_some());
    }
}
