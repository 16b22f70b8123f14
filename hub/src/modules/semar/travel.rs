//! Travel-time estimates: straight-line distance × a road factor ÷ a speed by default, or an
//! OSRM server's `table` service (durations on the road network) when one is configured.

use std::time::Duration;

use serde::Serialize;

use crate::config::SemarConfig;
use crate::geo::Point;

/// How an estimate was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateSource {
    /// Straight-line distance × road factor ÷ speed.
    StraightLine,
    /// OSRM's road-network duration.
    Osrm,
}

impl EstimateSource {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::StraightLine => "straight_line",
            Self::Osrm => "osrm",
        }
    }
}

/// One candidate's estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Straight-line distance, metres.
    pub distance_m: f64,
    /// Estimated travel time, seconds.
    pub seconds: f64,
    /// How `seconds` was made.
    pub source: EstimateSource,
}

/// Makes estimates.
#[derive(Debug, Clone)]
pub struct Travel {
    road_factor: f64,
    metres_per_second: f64,
    osrm: Option<Osrm>,
}

#[derive(Debug, Clone)]
struct Osrm {
    base: String,
    candidates: usize,
    client: reqwest::Client,
}

impl Travel {
    /// From the `[semar]` settings.
    pub fn new(config: &SemarConfig) -> Self {
        let osrm = (!config.osrm_url.trim().is_empty()).then(|| Osrm {
            base: config.osrm_url.trim().trim_end_matches('/').to_string(),
            candidates: config.osrm_candidates,
            client: reqwest::Client::builder()
                .timeout(Duration::from_millis(config.osrm_timeout_ms))
                .build()
                .unwrap_or_default(),
        });
        Self {
            road_factor: config.road_factor,
            metres_per_second: config.speed_kmh / 3.6,
            osrm,
        }
    }

    /// The straight-line estimate from `from` to `to`.
    pub fn straight(&self, from: Point, to: Point) -> Estimate {
        let distance_m = from.distance_m(to);
        Estimate {
            distance_m,
            seconds: distance_m * self.road_factor / self.metres_per_second,
            source: EstimateSource::StraightLine,
        }
    }

    /// Ranks `origins` by estimated travel time to `destination`, fastest first, as
    /// `(index into origins, estimate)`. With OSRM, the nearest few in a straight line are
    /// asked by road; origins OSRM cannot route, or all of them when OSRM fails, keep their
    /// straight-line estimate.
    pub async fn rank(&self, origins: &[Point], destination: Point) -> Vec<(usize, Estimate)> {
        self.rank_between(origins, destination, Direction::ToAnchor)
            .await
    }

    /// Ranks `destinations` by estimated travel time from `origin` (the patient to each
    /// facility), fastest first, the same way as [`Travel::rank`].
    pub async fn rank_from(&self, origin: Point, destinations: &[Point]) -> Vec<(usize, Estimate)> {
        self.rank_between(destinations, origin, Direction::FromAnchor)
            .await
    }

    async fn rank_between(
        &self,
        points: &[Point],
        anchor: Point,
        direction: Direction,
    ) -> Vec<(usize, Estimate)> {
        // The straight line is the same both ways.
        let mut ranked: Vec<(usize, Estimate)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (i, self.straight(*p, anchor)))
            .collect();
        ranked.sort_by(|a, b| a.1.seconds.total_cmp(&b.1.seconds).then(a.0.cmp(&b.0)));
        let Some(osrm) = &self.osrm else {
            return ranked;
        };
        let count = osrm.candidates.min(ranked.len());
        if count == 0 {
            return ranked;
        }
        let candidates: Vec<Point> = ranked[..count].iter().map(|(i, _)| points[*i]).collect();
        match osrm.durations(&candidates, anchor, direction).await {
            Ok(durations) => {
                for ((_, estimate), duration) in ranked[..count].iter_mut().zip(durations) {
                    if let Some(seconds) = duration {
                        estimate.seconds = seconds;
                        estimate.source = EstimateSource::Osrm;
                    }
                }
                // Road times first (OSRM said so); unroutable ones after, by straight line.
                ranked[..count].sort_by(|a, b| {
                    let routed = |e: &Estimate| e.source != EstimateSource::Osrm;
                    routed(&a.1)
                        .cmp(&routed(&b.1))
                        .then(a.1.seconds.total_cmp(&b.1.seconds))
                        .then(a.0.cmp(&b.0))
                });
            }
            Err(e) => {
                metrics::counter!("simpul_semar_osrm_failures_total").increment(1);
                tracing::warn!(error = %e, "OSRM failed; ranking units by straight line");
            }
        }
        ranked
    }
}

/// Which way the road durations go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// From each point to the anchor (units to the scene).
    ToAnchor,
    /// From the anchor to each point (the scene to facilities).
    FromAnchor,
}

impl Osrm {
    /// `GET /table/v1/driving/{points};{anchor}`, with the points as sources and the anchor
    /// (the last coordinate) as destination, or the other way round: the road duration
    /// between each point and the anchor, `None` where OSRM has no route.
    async fn durations(
        &self,
        points: &[Point],
        anchor: Point,
        direction: Direction,
    ) -> Result<Vec<Option<f64>>, String> {
        let coordinates: Vec<String> = points
            .iter()
            .chain(std::iter::once(&anchor))
            .map(|p| format!("{:.6},{:.6}", p.lng, p.lat))
            .collect();
        let indexes: Vec<String> = (0..points.len()).map(|i| i.to_string()).collect();
        let (sources, destinations) = match direction {
            Direction::ToAnchor => (indexes.join(";"), points.len().to_string()),
            Direction::FromAnchor => (points.len().to_string(), indexes.join(";")),
        };
        let url = format!(
            "{}/table/v1/driving/{}?sources={sources}&destinations={destinations}&annotations=duration",
            self.base,
            coordinates.join(";"),
        );
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("cannot reach OSRM at {}: {e}", self.base))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("OSRM answered {status} with a body that is not JSON: {e}"))?;
        if body["code"] != "Ok" {
            return Err(format!(
                "OSRM answered {status}, code {}: {}",
                body["code"], body["message"]
            ));
        }
        let rows = body["durations"]
            .as_array()
            .ok_or("OSRM's answer has no durations")?;
        let durations: Vec<Option<f64>> = match direction {
            Direction::ToAnchor => rows
                .iter()
                .map(|row| row.get(0).and_then(serde_json::Value::as_f64))
                .collect(),
            Direction::FromAnchor => rows
                .first()
                .and_then(serde_json::Value::as_array)
                .map(|row| row.iter().map(serde_json::Value::as_f64).collect())
                .unwrap_or_default(),
        };
        if durations.len() != points.len() {
            return Err(format!(
                "OSRM gave {} durations for {} points",
                durations.len(),
                points.len()
            ));
        }
        Ok(durations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_estimate_is_distance_times_road_factor_over_speed() {
        let travel = Travel::new(&SemarConfig::default());
        let a = Point::new(-6.5399, 107.4552).unwrap();
        let b = Point::new(-6.4876, 107.5086).unwrap();
        let estimate = travel.straight(a, b);
        // 1.4 × distance ÷ (40 km/h = 11.11 m/s).
        let expected = estimate.distance_m * 1.4 / (40.0 / 3.6);
        assert!((estimate.seconds - expected).abs() < 1e-9);
        assert_eq!(estimate.source, EstimateSource::StraightLine);
    }
}
