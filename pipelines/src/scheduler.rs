//! The scheduler inside `simpul serve`: one tokio task that starts each pipeline when its
//! cron schedule comes due, in the pipeline's time zone.
//!
//! - Pipeline files are read again on every tick, so a new or changed file takes effect
//!   without a restart; a broken file is reported and skipped, the others keep running.
//! - A schedule time missed while the hub was down runs once, at start-up (not once per
//!   missed time). Times are counted from the pipeline's newest run, scheduled or manual; a
//!   pipeline that never ran waits for its first schedule time.
//! - Each schedule time gets a fixed delay of up to `jitter`, so pipelines due at the same
//!   minute do not all call their sources at once.
//! - Two runs of one pipeline never overlap (see the runner's lock and lease).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::definition::{PipelineDefinition, scan_dir};
use crate::runner::{RunError, Runner, Trigger, TriggerKind};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// The folder of pipeline files.
    pub dir: PathBuf,
    /// The largest delay added to a schedule time.
    pub jitter: std::time::Duration,
    /// How often the folder is read again, at the longest.
    pub tick: std::time::Duration,
}

/// When a pipeline should run next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Now, for this schedule time.
    Now(DateTime<Utc>),
    /// Not before this time.
    At(DateTime<Utc>),
    /// Never again (a schedule with no future time).
    Never,
}

/// Runs the schedule until `shutdown` turns true. Runs it started go on in the runner's
/// background; the caller drains them.
pub async fn run_schedule(
    runner: Arc<Runner>,
    settings: ScheduleSettings,
    env: impl Fn(&str) -> Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Utc::now();
    let mut first_seen: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut reported: Vec<String> = Vec::new();
    while !*shutdown.borrow() {
        let (definitions, errors) = scan_dir(&settings.dir, &env);
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for message in messages.iter().filter(|m| !reported.contains(m)) {
            tracing::error!(error = %message, "a pipeline file cannot be used; it is skipped");
        }
        reported = messages;
        let now = Utc::now();
        let mut wake = now + chrono::Duration::from_std(settings.tick).unwrap_or_default();
        for definition in definitions.iter().filter(|d| d.schedule.is_some()) {
            let seen = *first_seen.entry(definition.name.clone()).or_insert(started);
            let baseline = match runner.schedule_baseline(&definition.name).await {
                Ok(last) => last.unwrap_or(seen),
                Err(error) => {
                    tracing::warn!(pipeline = %definition.name, %error, "cannot read the run history");
                    continue;
                }
            };
            match due(definition, baseline, now, settings.jitter) {
                Due::Now(scheduled_for) => {
                    start_scheduled(&runner, definition, scheduled_for).await
                }
                Due::At(at) => wake = wake.min(at),
                Due::Never => {}
            }
        }
        let pause = (wake - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(pause.max(std::time::Duration::from_millis(50))) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!("the scheduler stopped starting runs");
}

async fn start_scheduled(
    runner: &Runner,
    definition: &PipelineDefinition,
    scheduled_for: DateTime<Utc>,
) {
    if runner.is_running(&definition.name) {
        return;
    }
    let trigger = Trigger {
        kind: TriggerKind::Schedule(scheduled_for),
        actor: "scheduler".into(),
    };
    match runner.start(definition, &trigger).await {
        Ok(started) => {
            tracing::info!(pipeline = %definition.name, run = started.record().run_number, %scheduled_for, "scheduled run started");
            // Its end is logged and recorded by the runner; nobody waits for it here.
            drop(runner.spawn(started));
        }
        Err(RunError::Busy(_)) => {}
        Err(error) => {
            tracing::warn!(pipeline = %definition.name, %error, "a scheduled run could not start");
        }
    }
}

/// Whether `definition` is due at `now`, given its schedule baseline (or when the scheduler
/// first saw it): the newest schedule time after `baseline` and not after `now`,
/// once its jitter has passed.
pub fn due(
    definition: &PipelineDefinition,
    baseline: DateTime<Utc>,
    now: DateTime<Utc>,
    jitter: std::time::Duration,
) -> Due {
    let (Some(Ok(schedule)), Ok(zone)) = (
        definition.cron(),
        definition.timezone.parse::<chrono_tz::Tz>(),
    ) else {
        return Due::Never;
    };
    let mut times = schedule
        .after(&baseline.with_timezone(&zone))
        .map(|t| t.with_timezone(&Utc));
    let Some(first) = times.next() else {
        return Due::Never;
    };
    if first > now {
        return Due::At(first + jitter_for(&definition.name, first, jitter));
    }
    // Several times were missed: the newest stands for them all.
    let latest = times
        .take(1_000_000)
        .take_while(|t| *t <= now)
        .last()
        .unwrap_or(first);
    let at = latest + jitter_for(&definition.name, latest, jitter);
    if at <= now {
        Due::Now(latest)
    } else {
        Due::At(at)
    }
}

/// A delay below `jitter`, fixed for one pipeline and schedule time, so that every tick
/// agrees on it.
fn jitter_for(
    pipeline: &str,
    time: DateTime<Utc>,
    jitter: std::time::Duration,
) -> chrono::Duration {
    let millis = jitter.as_millis() as u64;
    if millis == 0 {
        return chrono::Duration::zero();
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (pipeline, time.timestamp()).hash(&mut hasher);
    chrono::Duration::milliseconds((hasher.finish() % millis) as i64)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn pipeline(schedule: &str) -> PipelineDefinition {
        let text = format!(
            r#"
            name = "upah"
            schedule = "{schedule}"
            [source]
            connector = "opendata_jabar"
            url = "http://127.0.0.1:1/x"
            [target]
            dataset = "stats.upah"
            "#
        );
        PipelineDefinition::parse(Path::new("upah.toml"), &text, |_| None).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_next_time_is_in_the_pipelines_time_zone() {
        // 06:00 WIB is 23:00 UTC the day before.
        let daily = pipeline("0 6 * * *");
        assert_eq!(
            due(
                &daily,
                at("2026-03-02T00:00:00Z"),
                at("2026-03-02T01:00:00Z"),
                Default::default()
            ),
            Due::At(at("2026-03-02T23:00:00Z"))
        );
    }

    #[test]
    fn missed_times_run_once_for_the_newest() {
        let hourly = pipeline("0 * * * *");
        // Down from 02:30 to 07:10: five missed times, one run, for 07:00.
        assert_eq!(
            due(
                &hourly,
                at("2026-03-02T02:00:00Z"),
                at("2026-03-02T07:10:00Z"),
                Default::default()
            ),
            Due::Now(at("2026-03-02T07:00:00Z"))
        );
        // Once it ran for 07:00, the next is 08:00.
        assert_eq!(
            due(
                &hourly,
                at("2026-03-02T07:00:00Z"),
                at("2026-03-02T07:10:00Z"),
                Default::default()
            ),
            Due::At(at("2026-03-02T08:00:00Z"))
        );
    }

    #[test]
    fn jitter_delays_a_time_by_a_fixed_amount_below_the_limit() {
        let hourly = pipeline("0 * * * *");
        let limit = std::time::Duration::from_secs(600);
        let Due::At(first) = due(
            &hourly,
            at("2026-03-02T07:00:00Z"),
            at("2026-03-02T07:10:00Z"),
            limit,
        ) else {
            panic!("not due later");
        };
        assert!(first >= at("2026-03-02T08:00:00Z") && first < at("2026-03-02T08:10:00Z"));
        let again = due(
            &hourly,
            at("2026-03-02T07:00:00Z"),
            at("2026-03-02T07:20:00Z"),
            limit,
        );
        assert_eq!(again, Due::At(first));
        assert_eq!(
            due(&hourly, at("2026-03-02T07:00:00Z"), first, limit),
            Due::Now(at("2026-03-02T08:00:00Z"))
        );
    }

    #[test]
    fn standard_day_of_week_schedules_fire_on_that_day() {
        // 2026-03-02 is a Monday; "0 6 * * 1" is Monday 06:00 WIB = Sunday 23:00 UTC.
        let monday = pipeline("0 6 * * 1");
        assert_eq!(
            due(
                &monday,
                at("2026-03-02T00:00:00Z"),
                at("2026-03-02T00:00:01Z"),
                Default::default()
            ),
            Due::At(at("2026-03-08T23:00:00Z"))
        );
    }
}
