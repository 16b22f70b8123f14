//! Pipeline runs in the state store: the run history, the lease that keeps two runs of one
//! pipeline apart (across processes too), and the lineage edges source → pipeline → dataset.
//!
//! The lake, not this table, is the truth about what landed: a run's rows and cursor are in
//! one Delta commit carrying the pipeline's application transaction. These rows are the
//! history people read, repaired from the lake when a process died between the two.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Reading, validating or committing.
    Running,
    /// Committed (or found nothing new) and recorded.
    Succeeded,
    /// Stopped by an error; it committed nothing.
    Failed,
    /// Its process died or was stopped before it ended; it committed nothing.
    Interrupted,
}

impl RunStatus {
    /// The name as the state store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    fn parse(text: &str) -> Result<Self, CatalogError> {
        match text {
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            "interrupted" => Ok(Self::Interrupted),
            other => Err(CatalogError::State(format!("unknown run status '{other}'"))),
        }
    }
}

/// One run of a pipeline, as the history keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineRun {
    /// The run id, also in the commit's metadata and in every rejects row.
    pub id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The run's number within its pipeline: the Delta application transaction's version.
    pub run_number: i64,
    /// The target dataset.
    pub dataset: String,
    /// `schedule`, `manual` (CLI) or `api`.
    pub trigger: String,
    /// Who started it: `scheduler`, `cli`, an API client id.
    pub actor: String,
    /// The schedule time it stands for, for scheduled runs.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Where it is.
    pub status: RunStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Records read from the source, malformed ones included.
    pub rows_read: i64,
    /// Rows committed to the dataset.
    pub rows_committed: i64,
    /// Rows committed to the rejects table.
    pub rows_rejected: i64,
    /// Bytes of record text read.
    pub bytes_read: i64,
    /// The dataset version the run produced, if it committed.
    pub delta_version: Option<i64>,
    /// The source cursor the run landed with its commit (none when it committed nothing).
    pub checkpoint: Option<serde_json::Value>,
    /// Why it failed, in plain words.
    pub error: Option<String>,
}

/// What starting a run records.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The pipeline's name.
    pub pipeline: String,
    /// The target dataset.
    pub dataset: String,
    /// `schedule`, `manual` or `api`.
    pub trigger: String,
    /// Who started it.
    pub actor: String,
    /// The schedule time it stands for.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The run number must be above this (the lake's last landed run).
    pub after_number: i64,
}

/// What a run that ended recorded.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// Records read.
    pub rows_read: i64,
    /// Rows committed to the dataset.
    pub rows_committed: i64,
    /// Rows committed to the rejects table.
    pub rows_rejected: i64,
    /// Bytes of record text read.
    pub bytes_read: i64,
    /// The version produced.
    pub delta_version: Option<i64>,
    /// The cursor to resume from.
    pub checkpoint: Option<serde_json::Value>,
}

/// One edge of the lineage graph: data from `source` reaches `dataset` through `pipeline`.
#[derive(Debug, Clone, Serialize)]
pub struct LineageEdge {
    /// The source, as connector and address without credentials (`opendata_jabar https://…`).
    pub source: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The dataset.
    pub dataset: String,
    /// When a run first carried data along this edge.
    pub first_seen: DateTime<Utc>,
    /// When a run last did.
    pub last_seen: DateTime<Utc>,
}

const RUN_COLUMNS: &str = "id, pipeline, run_number, dataset, trigger_kind, actor, scheduled_for, \
     status, started_at, ended_at, rows_read, rows_committed, rows_rejected, bytes_read, \
     delta_version, checkpoint, error";

impl StateStore {
    /// Records a new run as `running`, numbered after every run of the pipeline so far and
    /// after `new.after_number`.
    pub async fn start_run(&self, new: &NewRun) -> Result<PipelineRun, CatalogError> {
        // Two processes may race for a number; the unique key makes one of them try again.
        for _ in 0..5 {
            let highest: Option<i64> =
                sqlx::query_scalar("SELECT MAX(run_number) FROM pipeline_runs WHERE pipeline = $1")
                    .bind(&new.pipeline)
                    .fetch_one(self.pool())
                    .await?;
            let number = highest.unwrap_or(0).max(new.after_number) + 1;
            let id = uuid::Uuid::now_v7().to_string();
            let inserted = sqlx::query(
                "INSERT INTO pipeline_runs (id, pipeline, run_number, dataset, trigger_kind, actor, \
                 scheduled_for, status, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8) \
                 ON CONFLICT (pipeline, run_number) DO NOTHING",
            )
            .bind(&id)
            .bind(&new.pipeline)
            .bind(number)
            .bind(&new.dataset)
            .bind(&new.trigger)
            .bind(&new.actor)
            .bind(new.scheduled_for.map(timestamp))
            .bind(timestamp(Utc::now()))
            .execute(self.pool())
            .await?;
            if inserted.rows_affected() == 1 {
                return self.run(&id).await?.ok_or_else(|| {
                    CatalogError::State(format!("run {id} vanished after it was recorded"))
                });
            }
        }
        Err(CatalogError::State(format!(
            "could not number a new run of pipeline {}: other runs keep taking the numbers",
            new.pipeline
        )))
    }

    /// Marks a run as succeeded with what it did.
    pub async fn finish_run(&self, id: &str, outcome: &RunOutcome) -> Result<(), CatalogError> {
        self.end_run(id, RunStatus::Succeeded, outcome, None).await
    }

    /// Marks a run as failed (or interrupted) with its error in plain words.
    pub async fn fail_run(
        &self,
        id: &str,
        status: RunStatus,
        outcome: &RunOutcome,
        error: &str,
    ) -> Result<(), CatalogError> {
        self.end_run(id, status, outcome, Some(error)).await
    }

    async fn end_run(
        &self,
        id: &str,
        status: RunStatus,
        outcome: &RunOutcome,
        error: Option<&str>,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE pipeline_runs SET status = $2, ended_at = $3, rows_read = $4, rows_committed = $5, \
             rows_rejected = $6, bytes_read = $7, delta_version = $8, checkpoint = $9, error = $10 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(timestamp(Utc::now()))
        .bind(outcome.rows_read)
        .bind(outcome.rows_committed)
        .bind(outcome.rows_rejected)
        .bind(outcome.bytes_read)
        .bind(outcome.delta_version)
        .bind(outcome.checkpoint.as_ref().map(ToString::to_string))
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One run by id.
    pub async fn run(&self, id: &str) -> Result<Option<PipelineRun>, CatalogError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    /// One run by its number within its pipeline.
    pub async fn run_by_number(
        &self,
        pipeline: &str,
        number: i64,
    ) -> Result<Option<PipelineRun>, CatalogError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE pipeline = $1 AND run_number = $2"
        );
        let row = sqlx::query(&sql)
            .bind(pipeline)
            .bind(number)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    /// A pipeline's runs, newest first.
    pub async fn runs(&self, pipeline: &str, limit: i64) -> Result<Vec<PipelineRun>, CatalogError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE pipeline = $1 \
             ORDER BY run_number DESC LIMIT {}",
            limit.clamp(1, 1000)
        );
        let rows = sqlx::query(&sql)
            .bind(pipeline)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The newest run of every pipeline that has run.
    pub async fn latest_runs(&self) -> Result<Vec<PipelineRun>, CatalogError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs r WHERE run_number = \
             (SELECT MAX(run_number) FROM pipeline_runs WHERE pipeline = r.pipeline) ORDER BY pipeline"
        );
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(run_from_row).collect()
    }

    /// What the pipeline's next schedule time is counted from: the newest schedule time a
    /// run stood for, or the newest start of any run, whichever is later.
    pub async fn schedule_baseline(
        &self,
        pipeline: &str,
    ) -> Result<Option<DateTime<Utc>>, CatalogError> {
        let at: Option<String> =
            sqlx::query_scalar("SELECT MAX(COALESCE(scheduled_for, started_at)) FROM pipeline_runs WHERE pipeline = $1")
                .bind(pipeline)
                .fetch_one(self.pool())
                .await?;
        Ok(at.as_deref().and_then(parse_timestamp))
    }

    /// Runs still marked `running`. Called by the holder of the pipeline's lease, so none of
    /// them is really running any more.
    pub async fn abandoned_runs(&self, pipeline: &str) -> Result<Vec<PipelineRun>, CatalogError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE pipeline = $1 AND status = 'running' \
             ORDER BY run_number"
        );
        let rows = sqlx::query(&sql)
            .bind(pipeline)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Takes the pipeline's lease for `ttl` if it is free, expired, already `holder`'s, or
    /// held by a holder that `is_dead` says is gone. Returns whether `holder` holds it now.
    pub async fn acquire_lease(
        &self,
        pipeline: &str,
        holder: &str,
        ttl: Duration,
        is_dead: impl Fn(&str) -> bool,
    ) -> Result<bool, CatalogError> {
        let now = Utc::now();
        let expires = timestamp(now + ttl);
        let inserted = sqlx::query(
            "INSERT INTO pipeline_leases (pipeline, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (pipeline) DO NOTHING",
        )
        .bind(pipeline)
        .bind(holder)
        .bind(&expires)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(true);
        }
        let current: Option<(String, String)> =
            sqlx::query("SELECT holder, expires_at FROM pipeline_leases WHERE pipeline = $1")
                .bind(pipeline)
                .fetch_optional(self.pool())
                .await?
                .map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?)))
                .transpose()?;
        let Some((current_holder, current_expiry)) = current else {
            // Released between the two statements: try once more from the start.
            return Box::pin(self.acquire_lease(pipeline, holder, ttl, is_dead)).await;
        };
        let expired = parse_timestamp(&current_expiry).is_none_or(|at| at < now);
        if !(expired || current_holder == holder || is_dead(&current_holder)) {
            return Ok(false);
        }
        // Only replaces the holder that was read, so two takers cannot both win.
        let taken = sqlx::query(
            "UPDATE pipeline_leases SET holder = $2, expires_at = $3 WHERE pipeline = $1 AND holder = $4",
        )
        .bind(pipeline)
        .bind(holder)
        .bind(&expires)
        .bind(&current_holder)
        .execute(self.pool())
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Extends a lease `holder` holds; returns false if it was lost.
    pub async fn renew_lease(
        &self,
        pipeline: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, CatalogError> {
        let renewed = sqlx::query(
            "UPDATE pipeline_leases SET expires_at = $3 WHERE pipeline = $1 AND holder = $2",
        )
        .bind(pipeline)
        .bind(holder)
        .bind(timestamp(Utc::now() + ttl))
        .execute(self.pool())
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives a lease back.
    pub async fn release_lease(&self, pipeline: &str, holder: &str) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM pipeline_leases WHERE pipeline = $1 AND holder = $2")
            .bind(pipeline)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records that a run carried data from `source` through `pipeline` into `dataset`.
    pub async fn record_lineage(
        &self,
        source: &str,
        pipeline: &str,
        dataset: &str,
    ) -> Result<(), CatalogError> {
        let now = timestamp(Utc::now());
        sqlx::query(
            "INSERT INTO lineage_edges (source, pipeline, dataset, first_seen, last_seen) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (source, pipeline, dataset) \
             DO UPDATE SET last_seen = $4",
        )
        .bind(source)
        .bind(pipeline)
        .bind(dataset)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The edges that end in `dataset`.
    pub async fn lineage(&self, dataset: &str) -> Result<Vec<LineageEdge>, CatalogError> {
        let rows = sqlx::query(
            "SELECT source, pipeline, dataset, first_seen, last_seen FROM lineage_edges \
             WHERE dataset = $1 ORDER BY pipeline, source",
        )
        .bind(dataset)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let first: String = row.try_get("first_seen")?;
                let last: String = row.try_get("last_seen")?;
                Ok(LineageEdge {
                    source: row.try_get("source")?,
                    pipeline: row.try_get("pipeline")?,
                    dataset: row.try_get("dataset")?,
                    first_seen: parse_timestamp(&first).unwrap_or_default(),
                    last_seen: parse_timestamp(&last).unwrap_or_default(),
                })
            })
            .collect()
    }
}

fn run_from_row(row: &AnyRow) -> Result<PipelineRun, CatalogError> {
    let time = |column: &str| -> Result<Option<DateTime<Utc>>, CatalogError> {
        let text: Option<String> = row.try_get(column)?;
        Ok(text.as_deref().and_then(parse_timestamp))
    };
    let status: String = row.try_get("status")?;
    let checkpoint: Option<String> = row.try_get("checkpoint")?;
    Ok(PipelineRun {
        id: row.try_get("id")?,
        pipeline: row.try_get("pipeline")?,
        run_number: row.try_get("run_number")?,
        dataset: row.try_get("dataset")?,
        trigger: row.try_get("trigger_kind")?,
        actor: row.try_get("actor")?,
        scheduled_for: time("scheduled_for")?,
        status: RunStatus::parse(&status)?,
        started_at: time("started_at")?.unwrap_or_default(),
        ended_at: time("ended_at")?,
        rows_read: row.try_get("rows_read")?,
        rows_committed: row.try_get("rows_committed")?,
        rows_rejected: row.try_get("rows_rejected")?,
        bytes_read: row.try_get("bytes_read")?,
        delta_version: row.try_get("delta_version")?,
        checkpoint: checkpoint.and_then(|text| serde_json::from_str(&text).ok()),
        error: row.try_get("error")?,
    })
}

/// Parses a freshness SLA: a whole number and a unit, `m` (minutes), `h`, `d` or `w`
/// (`30m`, `6h`, `1d`, `2w`).
pub fn parse_freshness(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || {
        format!("freshness '{text}' must be a whole number and a unit m, h, d or w (like 6h or 1d)")
    };
    let split = text.len().checked_sub(1).ok_or_else(invalid)?;
    if !text.is_char_boundary(split) {
        return Err(invalid());
    }
    let (number, unit) = text.split_at(split);
    let count: i64 = number.parse().map_err(|_| invalid())?;
    if count <= 0 {
        return Err(invalid());
    }
    let minutes = match unit {
        "m" => 1,
        "h" => 60,
        "d" => 60 * 24,
        "w" => 60 * 24 * 7,
        _ => return Err(invalid()),
    };
    count
        .checked_mul(minutes)
        .filter(|m| *m <= 60 * 24 * 366 * 10)
        .map(Duration::minutes)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        (dir, StateStore::connect(&url).await.unwrap())
    }

    fn new_run(after: i64) -> NewRun {
        NewRun {
            pipeline: "banjir".into(),
            dataset: "stats.banjir".into(),
            trigger: "manual".into(),
            actor: "cli".into(),
            scheduled_for: None,
            after_number: after,
        }
    }

    #[tokio::test]
    async fn runs_are_numbered_after_the_history_and_the_lake() {
        let (_dir, store) = store().await;
        assert_eq!(store.start_run(&new_run(0)).await.unwrap().run_number, 1);
        assert_eq!(store.start_run(&new_run(0)).await.unwrap().run_number, 2);
        let third = store.start_run(&new_run(7)).await.unwrap();
        assert_eq!(third.run_number, 8);
        assert_eq!(third.status, RunStatus::Running);
        let outcome = RunOutcome {
            rows_read: 3,
            rows_committed: 2,
            rows_rejected: 1,
            delta_version: Some(4),
            checkpoint: Some(serde_json::json!({"cursor": "2026-01-01"})),
            ..Default::default()
        };
        store.finish_run(&third.id, &outcome).await.unwrap();
        let done = store.run_by_number("banjir", 8).await.unwrap().unwrap();
        assert_eq!(done.status, RunStatus::Succeeded);
        assert_eq!(done.checkpoint.unwrap()["cursor"], "2026-01-01");
        assert_eq!(store.abandoned_runs("banjir").await.unwrap().len(), 2);
        assert_eq!(store.runs("banjir", 10).await.unwrap()[0].run_number, 8);
    }

    #[tokio::test]
    async fn a_lease_is_held_by_one_holder_until_it_expires_or_its_holder_dies() {
        let (_dir, store) = store().await;
        let minute = Duration::minutes(1);
        let alive = |_: &str| false;
        assert!(store.acquire_lease("p", "a", minute, alive).await.unwrap());
        assert!(!store.acquire_lease("p", "b", minute, alive).await.unwrap());
        assert!(
            store
                .acquire_lease("p", "b", minute, |h| h == "a")
                .await
                .unwrap()
        );
        assert!(!store.renew_lease("p", "a", minute).await.unwrap());
        store.release_lease("p", "b").await.unwrap();
        assert!(store.acquire_lease("p", "c", -minute, alive).await.unwrap());
        assert!(store.acquire_lease("p", "d", minute, alive).await.unwrap());
    }

    #[test]
    fn freshness_slas_parse_whole_units_only() {
        assert_eq!(parse_freshness("1d").unwrap(), Duration::days(1));
        assert_eq!(parse_freshness("6h").unwrap(), Duration::hours(6));
        assert_eq!(parse_freshness("30m").unwrap(), Duration::minutes(30));
        assert_eq!(parse_freshness("2w").unwrap(), Duration::weeks(2));
        for bad in ["", "d", "0d", "-1d", "1.5d", "1y", "1é", "99999999999999d"] {
            assert!(parse_freshness(bad).is_err(), "{bad}");
        }
    }
}
