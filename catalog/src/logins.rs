//! Password attempts per user name and per source address (`login_attempts`), for the hub's
//! login throttle. An attempt is reserved before its password is checked, so however many
//! arrive at once, at most the limit are checked in a window.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// What a login attempt is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// A user name.
    Name,
    /// A source address (an IPv4 address, or an IPv6 /64).
    Address,
}

impl AttemptKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Address => "address",
        }
    }
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt may go ahead; it is the `nth` of its window.
    Granted {
        /// 1 for the first attempt of the window.
        nth: i64,
    },
    /// The limit is reached until `until`; `first_refusal` is true once per window.
    Refused {
        /// When the window ends.
        until: DateTime<Utc>,
        /// Whether this is the window's first refused attempt.
        first_refusal: bool,
    },
}

impl StateStore {
    /// Reserves one attempt for `subject` within a window of `window` holding at most `max`.
    pub async fn reserve_login_attempt(
        &self,
        kind: AttemptKind,
        subject: &str,
        max: i64,
        window: Duration,
    ) -> Result<Reservation, CatalogError> {
        let now = Utc::now();
        let (now_text, cutoff) = (timestamp(now), timestamp(now - window));
        // A window that has passed starts again.
        sqlx::query(
            "INSERT INTO login_attempts (kind, subject, window_start, attempts, refusals) \
             VALUES ($1, $2, $3, 0, 0) ON CONFLICT (kind, subject) DO UPDATE SET \
             window_start = CASE WHEN login_attempts.window_start < $4 THEN $3 \
             ELSE login_attempts.window_start END, \
             attempts = CASE WHEN login_attempts.window_start < $4 THEN 0 \
             ELSE login_attempts.attempts END, \
             refusals = CASE WHEN login_attempts.window_start < $4 THEN 0 \
             ELSE login_attempts.refusals END",
        )
        .bind(kind.as_str())
        .bind(subject)
        .bind(&now_text)
        .bind(&cutoff)
        .execute(self.pool())
        .await?;
        let granted = sqlx::query(
            "UPDATE login_attempts SET attempts = attempts + 1 \
             WHERE kind = $1 AND subject = $2 AND attempts < $3 RETURNING attempts",
        )
        .bind(kind.as_str())
        .bind(subject)
        .bind(max)
        .fetch_optional(self.pool())
        .await?;
        if let Some(row) = granted {
            return Ok(Reservation::Granted {
                nth: row.try_get("attempts")?,
            });
        }
        let row = sqlx::query(
            "UPDATE login_attempts SET refusals = refusals + 1 \
             WHERE kind = $1 AND subject = $2 RETURNING refusals, window_start",
        )
        .bind(kind.as_str())
        .bind(subject)
        .fetch_one(self.pool())
        .await?;
        let started: String = row.try_get("window_start")?;
        let started = parse_timestamp(&started)
            .ok_or_else(|| CatalogError::State(format!("login window start '{started}'")))?;
        Ok(Reservation::Refused {
            until: started + window,
            first_refusal: row.try_get::<i64, _>("refusals")? == 1,
        })
    }

    /// Gives back one reserved attempt (a password that was right, or never checked).
    pub async fn refund_login_attempt(
        &self,
        kind: AttemptKind,
        subject: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE login_attempts SET attempts = attempts - 1 \
             WHERE kind = $1 AND subject = $2 AND attempts > 0",
        )
        .bind(kind.as_str())
        .bind(subject)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets `subject`'s attempts (a user name after its right password).
    pub async fn clear_login_attempts(
        &self,
        kind: AttemptKind,
        subject: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM login_attempts WHERE kind = $1 AND subject = $2")
            .bind(kind.as_str())
            .bind(subject)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes the counts whose window ended before `window` ago.
    pub async fn prune_login_attempts(&self, window: Duration) -> Result<u64, CatalogError> {
        let cutoff = timestamp(Utc::now() - window);
        let done = sqlx::query("DELETE FROM login_attempts WHERE window_start < $1")
            .bind(cutoff)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parallel_reservations_never_pass_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("state.db").display()
        ))
        .await
        .unwrap();
        let window = Duration::minutes(15);
        let tries = (0..40).map(|_| {
            let state = state.clone();
            async move {
                state
                    .reserve_login_attempt(AttemptKind::Name, "ani", 5, window)
                    .await
                    .unwrap()
            }
        });
        let answers = futures::future::join_all(tries).await;
        let granted = answers
            .iter()
            .filter(|a| matches!(a, Reservation::Granted { .. }))
            .count();
        assert_eq!(granted, 5);
        let first_refusals = answers
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Reservation::Refused {
                        first_refusal: true,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(first_refusals, 1, "one refusal of the window is the first");
        state
            .refund_login_attempt(AttemptKind::Name, "ani")
            .await
            .unwrap();
        assert!(matches!(
            state
                .reserve_login_attempt(AttemptKind::Name, "ani", 5, window)
                .await
                .unwrap(),
            Reservation::Granted { nth: 5 }
        ));
        assert!(
            matches!(
                state
                    .reserve_login_attempt(AttemptKind::Address, "ani", 5, window)
                    .await
                    .unwrap(),
                Reservation::Granted { nth: 1 }
            ),
            "names and addresses count apart"
        );
    }

    #[tokio::test]
    async fn a_flood_of_other_names_leaves_a_locked_name_locked() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("state.db").display()
        ))
        .await
        .unwrap();
        let window = Duration::minutes(15);
        for _ in 0..5 {
            state
                .reserve_login_attempt(AttemptKind::Name, "ani", 5, window)
                .await
                .unwrap();
        }
        for i in 0..10_000 {
            state
                .reserve_login_attempt(AttemptKind::Name, &format!("banjir{i}"), 5, window)
                .await
                .unwrap();
        }
        assert!(matches!(
            state
                .reserve_login_attempt(AttemptKind::Name, "ani", 5, window)
                .await
                .unwrap(),
            Reservation::Refused { .. }
        ));
    }
}
