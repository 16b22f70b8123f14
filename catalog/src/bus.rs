//! Bus identity: the members (agencies) and subsystems (their systems) of this hub, named the
//! X-Road way, `INSTANCE/CLASS/MEMBER/SUBSYSTEM` (`ID-JABAR/GOV/DINKES/SEMAR`).
//!
//! The hub belongs to one instance and member class (`bus.instance`, `bus.member_class`), so
//! the registry stores members and subsystems by their codes and the full identifiers are
//! made from the hub's identity when shown or parsed. Every API client belongs to a
//! registered subsystem. Identifiers are case-insensitive and kept in upper case, as member
//! codes always were (`DINKES`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// The longest identifier part.
const MAX_PART: usize = 64;

/// Whether `part` is a valid identifier part: letters, digits, `-`, `_` and `.`, starting
/// with a letter or digit, at most 64 characters. Separators (`/`, `:`, `;`, `%`, `\`),
/// spaces and anything outside ASCII are refused, as in X-Road.
pub fn valid_part(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && part.len() <= MAX_PART
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks one identifier part, naming what it is in the error.
pub fn check_part(what: &str, part: &str) -> Result<(), CatalogError> {
    if valid_part(part) {
        return Ok(());
    }
    let shown: String = part.chars().take(80).collect();
    Err(CatalogError::Invalid(format!(
        "{what} '{shown}' is not valid: use letters, digits, '-', '_' or '.' (at most {MAX_PART}), starting with a letter or digit"
    )))
}

/// Where this hub sits in the bus: its instance and the class of its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusIdentity {
    /// The X-Road instance, `ID-JABAR`.
    pub instance: String,
    /// The class of this hub's members, `GOV`.
    pub member_class: String,
}

impl BusIdentity {
    /// The identity, with both parts checked.
    pub fn new(instance: &str, member_class: &str) -> Result<Self, CatalogError> {
        check_part("bus.instance", instance)?;
        check_part("bus.member_class", member_class)?;
        Ok(Self {
            instance: instance.to_uppercase(),
            member_class: member_class.to_uppercase(),
        })
    }

    /// `INSTANCE/CLASS/MEMBER`.
    pub fn member_id(&self, member: &str) -> String {
        format!("{}/{}/{member}", self.instance, self.member_class)
    }

    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM`.
    pub fn subsystem_id(&self, member: &str, subsystem: &str) -> String {
        format!("{}/{subsystem}", self.member_id(member))
    }

    /// The member code in `INSTANCE/CLASS/MEMBER`, checked to be this hub's.
    pub fn parse_member(&self, id: &str) -> Result<String, CatalogError> {
        match self.parse(id, 3)?.as_slice() {
            [member] => Ok(member.clone()),
            _ => unreachable!("parse returns the parts after the instance and class"),
        }
    }

    /// The member and subsystem codes in `INSTANCE/CLASS/MEMBER/SUBSYSTEM`, checked to be
    /// this hub's.
    pub fn parse_subsystem(&self, id: &str) -> Result<(String, String), CatalogError> {
        match self.parse(id, 4)?.as_slice() {
            [member, subsystem] => Ok((member.clone(), subsystem.clone())),
            _ => unreachable!("parse returns the parts after the instance and class"),
        }
    }

    /// The parts of `id` after the instance and class; `id` must have `parts` parts.
    fn parse(&self, id: &str, parts: usize) -> Result<Vec<String>, CatalogError> {
        let shape = if parts == 3 {
            "INSTANCE/CLASS/MEMBER"
        } else {
            "INSTANCE/CLASS/MEMBER/SUBSYSTEM"
        };
        let split: Vec<&str> = id.split('/').collect();
        if split.len() != parts {
            return Err(CatalogError::Invalid(format!(
                "'{}' is not an identifier of the form {shape} (for example {})",
                id.chars().take(120).collect::<String>(),
                if parts == 3 {
                    self.member_id("DINKES")
                } else {
                    self.subsystem_id("DINKES", "SEMAR")
                }
            )));
        }
        let names = ["instance", "member class", "member", "subsystem"];
        for (part, name) in split.iter().zip(names) {
            check_part(name, part)?;
        }
        let split: Vec<String> = split.iter().map(|s| s.to_uppercase()).collect();
        if split[0] != self.instance || split[1] != self.member_class {
            return Err(CatalogError::Invalid(format!(
                "'{id}' belongs to {}/{}, not to this hub's {}/{}; members of other instances join as federation peers",
                split[0], split[1], self.instance, self.member_class
            )));
        }
        Ok(split[2..].to_vec())
    }
}

/// A registered member (an OPD, or another government body).
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// The member code, `DINKES`.
    pub code: String,
    /// Its name, `Dinas Kesehatan`.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Who registered it.
    pub created_by: String,
}

/// A registered subsystem: one system of a member, which API clients belong to.
#[derive(Debug, Clone, Serialize)]
pub struct Subsystem {
    /// The member code.
    pub member: String,
    /// The subsystem code, `SEMAR`.
    pub code: String,
    /// What the system is.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Who registered it.
    pub created_by: String,
}

impl fmt::Display for Subsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.member, self.code)
    }
}

impl StateStore {
    /// Registers a member; fails if the code is taken.
    pub async fn insert_member(&self, member: &Member) -> Result<(), CatalogError> {
        check_part("member", &member.code)?;
        let inserted = sqlx::query(
            "INSERT INTO bus_members (code, name, created_at, created_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (code) DO NOTHING",
        )
        .bind(&member.code)
        .bind(&member.name)
        .bind(timestamp(member.created_at))
        .bind(&member.created_by)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(CatalogError::Conflict(format!(
                "member {} is already registered",
                member.code
            )));
        }
        Ok(())
    }

    /// Registers a subsystem of a registered member; fails if the member is unknown or the
    /// subsystem is taken.
    pub async fn insert_subsystem(&self, subsystem: &Subsystem) -> Result<(), CatalogError> {
        check_part("subsystem", &subsystem.code)?;
        if self.member(&subsystem.member).await?.is_none() {
            return Err(CatalogError::UnknownMember(format!(
                "member {} is not registered; register it first (POST /api/v1/bus/members or simpul bus members add)",
                subsystem.member
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO bus_subsystems (member, code, name, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (member, code) DO NOTHING",
        )
        .bind(&subsystem.member)
        .bind(&subsystem.code)
        .bind(&subsystem.name)
        .bind(timestamp(subsystem.created_at))
        .bind(&subsystem.created_by)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(CatalogError::Conflict(format!(
                "subsystem {subsystem} is already registered"
            )));
        }
        Ok(())
    }

    /// One member by code.
    pub async fn member(&self, code: &str) -> Result<Option<Member>, CatalogError> {
        let row = sqlx::query(
            "SELECT code, name, created_at, created_by FROM bus_members WHERE code = $1",
        )
        .bind(code)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| member_from_row(&r)).transpose()
    }

    /// Every member, by code.
    pub async fn members(&self) -> Result<Vec<Member>, CatalogError> {
        let rows =
            sqlx::query("SELECT code, name, created_at, created_by FROM bus_members ORDER BY code")
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// One subsystem by member and code.
    pub async fn subsystem(
        &self,
        member: &str,
        code: &str,
    ) -> Result<Option<Subsystem>, CatalogError> {
        let row = sqlx::query(
            "SELECT member, code, name, created_at, created_by FROM bus_subsystems \
             WHERE member = $1 AND code = $2",
        )
        .bind(member)
        .bind(code)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| subsystem_from_row(&r)).transpose()
    }

    /// Every subsystem, by member and code.
    pub async fn subsystems(&self) -> Result<Vec<Subsystem>, CatalogError> {
        let rows = sqlx::query(
            "SELECT member, code, name, created_at, created_by FROM bus_subsystems \
             ORDER BY member, code",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(subsystem_from_row).collect()
    }

    /// Fails unless `member`/`subsystem` is registered, saying which part is missing.
    pub async fn require_subsystem(
        &self,
        member: &str,
        subsystem: &str,
    ) -> Result<(), CatalogError> {
        if self.member(member).await?.is_none() {
            return Err(CatalogError::UnknownMember(format!(
                "member {member} is not registered; register it first (POST /api/v1/bus/members or simpul bus members add)"
            )));
        }
        if self.subsystem(member, subsystem).await?.is_none() {
            return Err(CatalogError::UnknownMember(format!(
                "subsystem {member}/{subsystem} is not registered; register it first (POST /api/v1/bus/subsystems or simpul bus subsystems add)"
            )));
        }
        Ok(())
    }
}

fn member_from_row(row: &AnyRow) -> Result<Member, CatalogError> {
    let created_at: String = row.try_get("created_at")?;
    Ok(Member {
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        created_at: parse_timestamp(&created_at).unwrap_or_default(),
        created_by: row.try_get("created_by")?,
    })
}

fn subsystem_from_row(row: &AnyRow) -> Result<Subsystem, CatalogError> {
    let created_at: String = row.try_get("created_at")?;
    Ok(Subsystem {
        member: row.try_get("member")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        created_at: parse_timestamp(&created_at).unwrap_or_default(),
        created_by: row.try_get("created_by")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> BusIdentity {
        BusIdentity::new("ID-JABAR", "GOV").unwrap()
    }

    #[test]
    fn identifiers_are_made_and_parsed_from_the_hub_identity() {
        let hub = hub();
        assert_eq!(hub.member_id("DINKES"), "ID-JABAR/GOV/DINKES");
        assert_eq!(
            hub.subsystem_id("PURWAKARTA-DINKES", "SEMAR"),
            "ID-JABAR/GOV/PURWAKARTA-DINKES/SEMAR"
        );
        assert_eq!(
            hub.parse_subsystem("ID-JABAR/GOV/PURWAKARTA-DINKES/SEMAR")
                .unwrap(),
            ("PURWAKARTA-DINKES".to_string(), "SEMAR".to_string())
        );
        assert_eq!(hub.parse_member("id-jabar/gov/Dinkes").unwrap(), "DINKES");
    }

    #[test]
    fn bad_identifiers_are_refused_naming_the_part() {
        let hub = hub();
        for (id, says) in [
            ("ID-JABAR/GOV/DINKES/SE MAR", "subsystem 'SE MAR'"),
            ("ID-JABAR/GOV/DIN:KES/SEMAR", "member 'DIN:KES'"),
            ("ID-JABAR/GOV/DINKES/SEMAR%2F", "subsystem 'SEMAR%2F'"),
            ("ID-JABAR/GOV/DINKES/-SEMAR", "subsystem '-SEMAR'"),
            ("ID-JABAR/GOV/DINKES/ŠEMAR", "subsystem 'ŠEMAR'"),
            ("ID-JABAR/GOV/DINKES", "INSTANCE/CLASS/MEMBER/SUBSYSTEM"),
            (
                "ID-JABAR/GOV/DINKES/SEMAR/X",
                "INSTANCE/CLASS/MEMBER/SUBSYSTEM",
            ),
            ("ID-JABAR//DINKES/SEMAR", "member class ''"),
            ("ID-JATENG/GOV/DINKES/SEMAR", "federation peers"),
            (
                "ID-JABAR/COM/DINKES/SEMAR",
                "not to this hub's ID-JABAR/GOV",
            ),
        ] {
            let error = hub.parse_subsystem(id).unwrap_err().to_string();
            assert!(error.contains(says), "{id}: {error}");
        }
        let long = "A".repeat(65);
        assert!(
            hub.parse_member(&format!("ID-JABAR/GOV/{long}"))
                .unwrap_err()
                .to_string()
                .contains("at most 64")
        );
        assert!(BusIdentity::new("ID JABAR", "GOV").is_err());
    }

    #[tokio::test]
    async fn clients_issued_before_the_registry_keep_their_member_and_subsystem() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("state.db").display()
        );
        {
            // The state store as it was before migration 6, with two clients of DINKES.
            let pool = sqlx::AnyPool::connect(&url).await.unwrap();
            let mut before = sqlx::migrate!("./migrations");
            before.migrations = std::borrow::Cow::Owned(
                before
                    .migrations
                    .iter()
                    .filter(|m| m.version < 6)
                    .cloned()
                    .collect(),
            );
            before.run(&pool).await.unwrap();
            for (id, subsystem, at) in [
                ("dinkes-semar", "SEMAR", "2026-01-02T00:00:00.000000Z"),
                ("dinkes-simpus", "SIMPUS", "2026-01-01T00:00:00.000000Z"),
            ] {
                sqlx::query(
                    "INSERT INTO api_clients (id, member, subsystem, role, key_hash, created_at) \
                     VALUES ($1, 'DINKES', $2, 'producer', $1, $3)",
                )
                .bind(id)
                .bind(subsystem)
                .bind(at)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let state = StateStore::connect(&url).await.unwrap();
        let members = state.members().await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].code, "DINKES");
        assert_eq!(
            members[0].created_at.to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        let subsystems: Vec<String> = state
            .subsystems()
            .await
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(subsystems, ["DINKES/SEMAR", "DINKES/SIMPUS"]);
        state.require_subsystem("DINKES", "SEMAR").await.unwrap();
    }
}
