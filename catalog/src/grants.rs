//! Access rights on datasets: grants per dataset and right, to a subsystem or a group of
//! subsystems, with an optional expiry; and the policy every read path applies.
//!
//! The policy: `public` and `internal` datasets are readable by every registered member
//! (every key belongs to one), `restricted` ones by their owner's subsystems and by grantees
//! of `read`. Personal (`x-pii`) columns show unmasked only to admins and to grantees of
//! `pii`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::bus::check_part;
use crate::dataset_id::DatasetId;
use crate::error::CatalogError;
use crate::metadata::Classification;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// A right on a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Read its rows (SQL, records, change feed).
    Read,
    /// Publish records to it.
    Publish,
    /// Subscribe to its changes (webhooks).
    Subscribe,
    /// See its personal columns unmasked.
    Pii,
}

impl FromStr for Right {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "publish" => Ok(Self::Publish),
            "subscribe" => Ok(Self::Subscribe),
            "pii" => Ok(Self::Pii),
            other => Err(CatalogError::Invalid(format!(
                "right must be read, publish, subscribe or pii, not '{other}'"
            ))),
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Pii => "pii",
        })
    }
}

/// Who a grant is for: one subsystem, or every subsystem of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    /// A member's subsystem, by codes.
    Subsystem {
        /// The member code.
        member: String,
        /// The subsystem code.
        subsystem: String,
    },
    /// A group of subsystems, by code.
    Group(String),
}

/// The prefix of a group grantee in text form (`group:ANALIS-BAPPEDA`).
const GROUP_PREFIX: &str = "group:";

impl Grantee {
    /// The stored form: `MEMBER/SUBSYSTEM` or `group:CODE`.
    fn stored(&self) -> String {
        match self {
            Self::Subsystem { member, subsystem } => format!("{member}/{subsystem}"),
            Self::Group(code) => format!("{GROUP_PREFIX}{code}"),
        }
    }

    fn from_stored(text: &str) -> Result<Self, CatalogError> {
        if let Some(code) = text.strip_prefix(GROUP_PREFIX) {
            return Ok(Self::Group(code.to_string()));
        }
        match text.split_once('/') {
            Some((member, subsystem)) => Ok(Self::Subsystem {
                member: member.to_string(),
                subsystem: subsystem.to_string(),
            }),
            None => Err(CatalogError::State(format!(
                "a stored grantee '{text}' is malformed"
            ))),
        }
    }
}

/// A grant of one right on one dataset.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The grant's id.
    pub id: String,
    /// The dataset.
    pub dataset: DatasetId,
    /// Who has the right.
    pub grantee: Grantee,
    /// The right.
    pub right: Right,
    /// Who granted it.
    pub granted_by: String,
    /// When.
    pub granted_at: DateTime<Utc>,
    /// When it stops counting, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Grant {
    /// Whether the grant counts at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }
}

/// The subsystem a caller acts for, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The member code.
    pub member: String,
    /// The subsystem code.
    pub subsystem: String,
}

/// The rights a principal holds now, by dataset (ordered, so its `Debug` text is stable and
/// can be part of a cache key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights(BTreeMap<DatasetId, BTreeSet<Right>>);

impl Rights {
    /// Whether the principal holds `right` on `dataset`.
    pub fn has(&self, dataset: &DatasetId, right: Right) -> bool {
        self.0.get(dataset).is_some_and(|r| r.contains(&right))
    }

    /// The rights held on `dataset`.
    pub fn on(&self, dataset: &DatasetId) -> BTreeSet<Right> {
        self.0.get(dataset).cloned().unwrap_or_default()
    }
}

/// Whether `principal`, holding `rights`, may read a dataset of this classification and owner.
pub fn may_read(
    principal: &Principal,
    rights: &Rights,
    dataset: &DatasetId,
    classification: Classification,
    owner: &str,
) -> bool {
    match classification {
        Classification::Public | Classification::Internal => true,
        Classification::Restricted => owner == principal.member || rights.has(dataset, Right::Read),
    }
}

const GRANT_COLUMNS: &str =
    "id, dataset, grantee, right_name, granted_by, granted_at, expires_at, revoked_at";

impl StateStore {
    /// Registers a group of subsystems; fails if the code is taken.
    pub async fn insert_group(
        &self,
        code: &str,
        description: &str,
        actor: &str,
    ) -> Result<(), CatalogError> {
        check_part("group", code)?;
        let inserted = sqlx::query(
            "INSERT INTO bus_groups (code, description, created_at, created_by) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (code) DO NOTHING",
        )
        .bind(code)
        .bind(description)
        .bind(timestamp(Utc::now()))
        .bind(actor)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(CatalogError::Conflict(format!(
                "group {code} is already registered"
            )));
        }
        Ok(())
    }

    /// Adds a registered subsystem to a registered group (a no-op when it is in it).
    pub async fn add_to_group(
        &self,
        group: &str,
        principal: &Principal,
    ) -> Result<(), CatalogError> {
        self.require_group(group).await?;
        self.require_subsystem(&principal.member, &principal.subsystem)
            .await?;
        sqlx::query(
            "INSERT INTO bus_group_members (group_code, member, subsystem) VALUES ($1, $2, $3) \
             ON CONFLICT (group_code, member, subsystem) DO NOTHING",
        )
        .bind(group)
        .bind(&principal.member)
        .bind(&principal.subsystem)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn require_group(&self, group: &str) -> Result<(), CatalogError> {
        let found: Option<(String,)> =
            sqlx::query_as("SELECT code FROM bus_groups WHERE code = $1")
                .bind(group)
                .fetch_optional(self.pool())
                .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(CatalogError::UnknownMember(format!(
                "group {group} is not registered"
            ))),
        }
    }

    /// Stores a grant for a registered grantee and returns it.
    pub async fn insert_grant(
        &self,
        dataset: &DatasetId,
        grantee: &Grantee,
        right: Right,
        expires_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<Grant, CatalogError> {
        match grantee {
            Grantee::Subsystem { member, subsystem } => {
                self.require_subsystem(member, subsystem).await?
            }
            Grantee::Group(code) => self.require_group(code).await?,
        }
        let now = Utc::now();
        if expires_at.is_some_and(|t| t <= now) {
            return Err(CatalogError::Invalid(
                "expires_at is in the past: a grant must end after it starts".into(),
            ));
        }
        let grant = Grant {
            id: uuid::Uuid::now_v7().to_string(),
            dataset: dataset.clone(),
            grantee: grantee.clone(),
            right,
            granted_by: actor.to_string(),
            granted_at: now,
            expires_at,
            revoked_at: None,
        };
        sqlx::query(&format!(
            "INSERT INTO bus_grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"
        ))
        .bind(&grant.id)
        .bind(grant.dataset.to_string())
        .bind(grant.grantee.stored())
        .bind(grant.right.to_string())
        .bind(&grant.granted_by)
        .bind(timestamp(grant.granted_at))
        .bind(grant.expires_at.map(timestamp))
        .execute(self.pool())
        .await?;
        Ok(grant)
    }

    /// One grant by id.
    pub async fn grant(&self, id: &str) -> Result<Option<Grant>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM bus_grants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| grant_from_row(&r)).transpose()
    }

    /// Every grant, of one dataset when given, oldest first.
    pub async fn grants(&self, dataset: Option<&DatasetId>) -> Result<Vec<Grant>, CatalogError> {
        let rows = match dataset {
            Some(d) => sqlx::query(&format!(
                "SELECT {GRANT_COLUMNS} FROM bus_grants WHERE dataset = $1 ORDER BY granted_at, id"
            ))
            .bind(d.to_string())
            .fetch_all(self.pool())
            .await?,
            None => {
                sqlx::query(&format!(
                    "SELECT {GRANT_COLUMNS} FROM bus_grants ORDER BY granted_at, id"
                ))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(grant_from_row).collect()
    }

    /// Revokes a grant; false when there is no such grant in force.
    pub async fn revoke_grant(&self, id: &str) -> Result<bool, CatalogError> {
        let result = sqlx::query(
            "UPDATE bus_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The rights `principal` holds now: its own grants and its groups', not revoked and not
    /// expired.
    pub async fn rights_of(&self, principal: &Principal) -> Result<Rights, CatalogError> {
        let groups: Vec<(String,)> = sqlx::query_as(
            "SELECT group_code FROM bus_group_members WHERE member = $1 AND subsystem = $2",
        )
        .bind(&principal.member)
        .bind(&principal.subsystem)
        .fetch_all(self.pool())
        .await?;
        let mut grantees: BTreeSet<String> = groups
            .into_iter()
            .map(|(g,)| Grantee::Group(g).stored())
            .collect();
        grantees.insert(
            Grantee::Subsystem {
                member: principal.member.clone(),
                subsystem: principal.subsystem.clone(),
            }
            .stored(),
        );
        // Only this principal's grants are read (`bus_grants_grantee`), on every query.
        let placeholders: Vec<String> = (1..=grantees.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM bus_grants WHERE revoked_at IS NULL AND grantee IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for grantee in &grantees {
            query = query.bind(grantee);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let now = Utc::now();
        let mut rights = Rights::default();
        for grant in rows.iter().map(grant_from_row) {
            let grant = grant?;
            if grant.active(now) {
                rights
                    .0
                    .entry(grant.dataset.clone())
                    .or_default()
                    .insert(grant.right);
            }
        }
        Ok(rights)
    }
}

fn grant_from_row(row: &AnyRow) -> Result<Grant, CatalogError> {
    let dataset: String = row.try_get("dataset")?;
    let grantee: String = row.try_get("grantee")?;
    let right: String = row.try_get("right_name")?;
    let granted_at: String = row.try_get("granted_at")?;
    let expires_at: Option<String> = row.try_get("expires_at")?;
    let revoked_at: Option<String> = row.try_get("revoked_at")?;
    Ok(Grant {
        id: row.try_get("id")?,
        dataset: dataset.parse()?,
        grantee: Grantee::from_stored(&grantee)?,
        right: right.parse()?,
        granted_by: row.try_get("granted_by")?,
        granted_at: parse_timestamp(&granted_at).unwrap_or_default(),
        expires_at: expires_at.as_deref().and_then(parse_timestamp),
        revoked_at: revoked_at.as_deref().and_then(parse_timestamp),
    })
}

/// Where an access request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Waiting for the owner.
    Pending,
    /// Approved: its grants exist.
    Approved,
    /// Rejected, with a note.
    Rejected,
}

impl FromStr for RequestStatus {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "approved" => Ok(Self::Approved),
            "rejected" => Ok(Self::Rejected),
            other => Err(CatalogError::Invalid(format!(
                "status must be pending, approved or rejected, not '{other}'"
            ))),
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        })
    }
}

/// A subsystem's request for rights on a dataset.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRequest {
    /// The request's id.
    pub id: String,
    /// The dataset.
    pub dataset: DatasetId,
    /// Who asks: the subsystem the rights would go to.
    #[serde(skip)]
    pub principal: Principal,
    /// The rights asked for.
    pub rights: Vec<Right>,
    /// Why, in the requester's words.
    pub reason: String,
    /// Where it stands.
    pub status: RequestStatus,
    /// The client (or CLI user) that asked.
    pub requested_by: String,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// The decider's note.
    pub note: String,
}

const REQUEST_COLUMNS: &str = "id, dataset, member, subsystem, rights, reason, status, \
     requested_by, requested_at, decided_by, decided_at, note";

impl StateStore {
    /// Stores a pending request from a registered subsystem.
    pub async fn insert_access_request(
        &self,
        dataset: &DatasetId,
        principal: &Principal,
        rights: &[Right],
        reason: &str,
        actor: &str,
    ) -> Result<AccessRequest, CatalogError> {
        self.require_subsystem(&principal.member, &principal.subsystem)
            .await?;
        if rights.is_empty() {
            return Err(CatalogError::Invalid(
                "rights must name at least one of read, publish, subscribe, pii".into(),
            ));
        }
        let request = AccessRequest {
            id: uuid::Uuid::now_v7().to_string(),
            dataset: dataset.clone(),
            principal: principal.clone(),
            rights: rights.to_vec(),
            reason: reason.to_string(),
            status: RequestStatus::Pending,
            requested_by: actor.to_string(),
            requested_at: Utc::now(),
            decided_by: None,
            decided_at: None,
            note: String::new(),
        };
        let rights_text: Vec<String> = rights.iter().map(Right::to_string).collect();
        sqlx::query(&format!(
            "INSERT INTO bus_access_requests ({REQUEST_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, '')"
        ))
        .bind(&request.id)
        .bind(dataset.to_string())
        .bind(&principal.member)
        .bind(&principal.subsystem)
        .bind(rights_text.join(","))
        .bind(reason)
        .bind(request.status.to_string())
        .bind(actor)
        .bind(timestamp(request.requested_at))
        .execute(self.pool())
        .await?;
        Ok(request)
    }

    /// One request by id.
    pub async fn access_request(&self, id: &str) -> Result<Option<AccessRequest>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM bus_access_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| request_from_row(&r)).transpose()
    }

    /// Every request, oldest first, with one status when given.
    pub async fn access_requests(
        &self,
        status: Option<RequestStatus>,
    ) -> Result<Vec<AccessRequest>, CatalogError> {
        let rows =
            match status {
                Some(status) => {
                    sqlx::query(&format!(
                        "SELECT {REQUEST_COLUMNS} FROM bus_access_requests WHERE status = $1 \
                     ORDER BY requested_at, id"
                    ))
                    .bind(status.to_string())
                    .fetch_all(self.pool())
                    .await?
                }
                None => sqlx::query(&format!(
                    "SELECT {REQUEST_COLUMNS} FROM bus_access_requests ORDER BY requested_at, id"
                ))
                .fetch_all(self.pool())
                .await?,
            };
        rows.iter().map(request_from_row).collect()
    }

    /// Decides a pending request; false when it was not pending any more (another decision
    /// came first).
    pub async fn decide_access_request(
        &self,
        id: &str,
        status: RequestStatus,
        actor: &str,
        note: &str,
    ) -> Result<bool, CatalogError> {
        let result = sqlx::query(
            "UPDATE bus_access_requests SET status = $2, decided_by = $3, decided_at = $4, note = $5 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(status.to_string())
        .bind(actor)
        .bind(timestamp(Utc::now()))
        .bind(note)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Puts a request back to pending (when its approval could not create the grants).
    pub async fn reopen_access_request(&self, id: &str) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE bus_access_requests SET status = 'pending', decided_by = NULL, \
             decided_at = NULL, note = '' WHERE id = $1",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

fn request_from_row(row: &AnyRow) -> Result<AccessRequest, CatalogError> {
    let dataset: String = row.try_get("dataset")?;
    let rights: String = row.try_get("rights")?;
    let status: String = row.try_get("status")?;
    let requested_at: String = row.try_get("requested_at")?;
    let decided_at: Option<String> = row.try_get("decided_at")?;
    Ok(AccessRequest {
        id: row.try_get("id")?,
        dataset: dataset.parse()?,
        principal: Principal {
            member: row.try_get("member")?,
            subsystem: row.try_get("subsystem")?,
        },
        rights: rights
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?,
        reason: row.try_get("reason")?,
        status: status.parse()?,
        requested_by: row.try_get("requested_by")?,
        requested_at: parse_timestamp(&requested_at).unwrap_or_default(),
        decided_by: row.try_get("decided_by")?,
        decided_at: decided_at.as_deref().and_then(parse_timestamp),
        note: row.try_get("note")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Member, Subsystem};

    async fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("state.db").display()
        );
        let state = StateStore::connect(&url).await.unwrap();
        state
            .insert_member(&Member {
                code: "BAPPEDA".into(),
                name: "Bappeda".into(),
                created_at: Utc::now(),
                created_by: "uji".into(),
            })
            .await
            .unwrap();
        state
            .insert_subsystem(&Subsystem {
                member: "BAPPEDA".into(),
                code: "ANALISIS".into(),
                name: "analisis".into(),
                created_at: Utc::now(),
                created_by: "uji".into(),
            })
            .await
            .unwrap();
        (dir, state)
    }

    fn analyst() -> Principal {
        Principal {
            member: "BAPPEDA".into(),
            subsystem: "ANALISIS".into(),
        }
    }

    #[tokio::test]
    async fn expired_and_revoked_grants_stop_counting() {
        let (_dir, state) = store().await;
        let dataset: DatasetId = "dukcapil.penduduk".parse().unwrap();
        let grantee = Grantee::Subsystem {
            member: "BAPPEDA".into(),
            subsystem: "ANALISIS".into(),
        };
        let read = state
            .insert_grant(&dataset, &grantee, Right::Read, None, "uji")
            .await
            .unwrap();
        let pii = state
            .insert_grant(
                &dataset,
                &grantee,
                Right::Pii,
                Some(Utc::now() + chrono::Duration::hours(1)),
                "uji",
            )
            .await
            .unwrap();
        let rights = state.rights_of(&analyst()).await.unwrap();
        assert!(rights.has(&dataset, Right::Read) && rights.has(&dataset, Right::Pii));
        assert!(may_read(
            &analyst(),
            &rights,
            &dataset,
            Classification::Restricted,
            "DISDUKCAPIL"
        ));

        // The pii grant's hour passes.
        sqlx::query("UPDATE bus_grants SET expires_at = $2 WHERE id = $1")
            .bind(&pii.id)
            .bind(timestamp(Utc::now() - chrono::Duration::seconds(1)))
            .execute(state.pool())
            .await
            .unwrap();
        let rights = state.rights_of(&analyst()).await.unwrap();
        assert!(!rights.has(&dataset, Right::Pii), "expired");
        assert!(rights.has(&dataset, Right::Read));

        assert!(state.revoke_grant(&read.id).await.unwrap());
        assert!(!state.revoke_grant(&read.id).await.unwrap(), "once");
        let rights = state.rights_of(&analyst()).await.unwrap();
        assert_eq!(rights, Rights::default());
        assert!(!may_read(
            &analyst(),
            &rights,
            &dataset,
            Classification::Restricted,
            "DISDUKCAPIL"
        ));
        assert!(may_read(
            &analyst(),
            &rights,
            &dataset,
            Classification::Internal,
            "DISDUKCAPIL"
        ));
        assert!(
            may_read(
                &Principal {
                    member: "DISDUKCAPIL".into(),
                    subsystem: "SIAK".into()
                },
                &rights,
                &dataset,
                Classification::Restricted,
                "DISDUKCAPIL"
            ),
            "the owner's subsystems read their own data"
        );
        let refused = state
            .insert_grant(
                &dataset,
                &Grantee::Subsystem {
                    member: "BAPPEDA".into(),
                    subsystem: "TIDAK-ADA".into(),
                },
                Right::Read,
                None,
                "uji",
            )
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("not registered"), "{refused}");
    }
}
