//! Points, distances and Purwakarta's desa and kecamatan boundaries, shipped in the binary.
//!
//! Distances are great-circle (haversine) on a sphere of the Earth's mean radius, which is
//! within 0.5% of the ellipsoid at this latitude: enough to rank units and facilities.

use std::sync::OnceLock;

const DESA_GEOJSON: &str = include_str!("../reference/desa_3214.geojson");
const KECAMATAN_GEOJSON: &str = include_str!("../reference/kecamatan_3214.geojson");

/// Mean Earth radius, in metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A point closer than this to a desa's boundary, but inside none (the shipped polygons are
/// simplified, so neighbours leave slivers), counts as in the nearest desa.
const BORDER_TOLERANCE_M: f64 = 300.0;

/// A WGS 84 position.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lng: f64,
}

impl Point {
    /// A point, if both coordinates are finite and in range.
    pub fn new(lat: f64, lng: f64) -> Option<Self> {
        (lat.is_finite() && lng.is_finite() && lat.abs() <= 90.0 && lng.abs() <= 180.0)
            .then_some(Self { lat, lng })
    }

    /// The great-circle distance to `other`, in metres.
    pub fn distance_m(self, other: Point) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_phi = phi2 - phi1;
        let d_lambda = (other.lng - self.lng).to_radians();
        let a =
            (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

/// One desa or kelurahan with its boundary.
#[derive(Debug)]
pub struct Desa {
    /// Kemendagri code, `32.14.01.1001`.
    pub kode: String,
    /// Its name.
    pub nama: String,
    /// The centroid.
    pub centroid: Point,
    /// Rings of `(lng, lat)`; a point is inside when an odd number of rings contains it.
    rings: Vec<Vec<(f64, f64)>>,
    /// `(min_lng, min_lat, max_lng, max_lat)`.
    bbox: (f64, f64, f64, f64),
}

impl Desa {
    /// The kecamatan code, `32.14.01`.
    pub fn kecamatan(&self) -> &str {
        kecamatan_of(&self.kode)
    }

    /// The area inside the boundary, km², on the sphere (the shipped boundaries have no
    /// holes, so every ring adds).
    pub fn area_km2(&self) -> f64 {
        self.rings
            .iter()
            .map(|ring| ring_area_m2(ring))
            .sum::<f64>()
            / 1e6
    }

    /// The boundary's rings of `(lng, lat)`.
    pub fn rings(&self) -> &[Vec<(f64, f64)>] {
        &self.rings
    }

    /// `(min_lng, min_lat, max_lng, max_lat)`.
    pub fn bbox(&self) -> (f64, f64, f64, f64) {
        self.bbox
    }

    fn contains(&self, p: Point) -> bool {
        let (min_lng, min_lat, max_lng, max_lat) = self.bbox;
        if p.lng < min_lng || p.lng > max_lng || p.lat < min_lat || p.lat > max_lat {
            return false;
        }
        let mut inside = false;
        for ring in &self.rings {
            let mut j = ring.len().wrapping_sub(1);
            for i in 0..ring.len() {
                let (xi, yi) = ring[i];
                let (xj, yj) = ring[j];
                if (yi > p.lat) != (yj > p.lat) && p.lng < (xj - xi) * (p.lat - yi) / (yj - yi) + xi
                {
                    inside = !inside;
                }
                j = i;
            }
        }
        inside
    }

    /// The distance from `p` to the nearest edge, in metres (equirectangular, fine at a few
    /// kilometres).
    fn distance_to_edge_m(&self, p: Point) -> f64 {
        // Metres per degree of latitude, and of longitude at this latitude.
        let scale_y = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        let scale_x = p.lat.to_radians().cos() * scale_y;
        let local = |(lng, lat): (f64, f64)| ((lng - p.lng) * scale_x, (lat - p.lat) * scale_y);
        let mut best = f64::INFINITY;
        for ring in &self.rings {
            for pair in ring.windows(2) {
                let (ax, ay) = local(pair[0]);
                let (bx, by) = local(pair[1]);
                let (dx, dy) = (bx - ax, by - ay);
                let length = dx * dx + dy * dy;
                let t = if length == 0.0 {
                    0.0
                } else {
                    (-(ax * dx + ay * dy) / length).clamp(0.0, 1.0)
                };
                let (cx, cy) = (ax + t * dx, ay + t * dy);
                best = best.min((cx * cx + cy * cy).sqrt());
            }
        }
        best
    }
}

/// The area of one ring of `(lng, lat)` degrees on the sphere, m² (Chamberlain & Duquette,
/// "Some algorithms for polygons on a sphere", 2007).
fn ring_area_m2(ring: &[(f64, f64)]) -> f64 {
    let mut sum = 0.0;
    for (i, &(lng1, lat1)) in ring.iter().enumerate() {
        let (lng2, lat2) = ring[(i + 1) % ring.len()];
        sum +=
            (lng2 - lng1).to_radians() * (2.0 + lat1.to_radians().sin() + lat2.to_radians().sin());
    }
    (sum * EARTH_RADIUS_M * EARTH_RADIUS_M / 2.0).abs()
}

/// The kecamatan part of a desa code: `32.14.01.1001` → `32.14.01`.
pub fn kecamatan_of(kode: &str) -> &str {
    kode.get(..8).unwrap_or(kode)
}

/// The 192 desa and kelurahan of Kabupaten Purwakarta.
#[derive(Debug)]
pub struct Boundaries {
    desa: Vec<Desa>,
}

impl Boundaries {
    /// The shipped boundaries, parsed once.
    pub fn purwakarta() -> &'static Boundaries {
        static PARSED: OnceLock<Boundaries> = OnceLock::new();
        PARSED.get_or_init(|| {
            Boundaries::parse(DESA_GEOJSON).unwrap_or_else(|e| {
                // The file is part of the binary and checked by a unit test.
                tracing::error!(error = %e, "the shipped desa boundaries do not parse");
                Boundaries { desa: Vec::new() }
            })
        })
    }

    /// The 17 kecamatan, parsed once (the same shape: a [`Desa`] per kecamatan).
    pub fn kecamatan() -> &'static Boundaries {
        static PARSED: OnceLock<Boundaries> = OnceLock::new();
        PARSED.get_or_init(|| {
            Boundaries::parse(KECAMATAN_GEOJSON).unwrap_or_else(|e| {
                tracing::error!(error = %e, "the shipped kecamatan boundaries do not parse");
                Boundaries { desa: Vec::new() }
            })
        })
    }

    /// Reads a GeoJSON FeatureCollection of Polygons and MultiPolygons with `kode`, `nama`,
    /// `lat` and `lng` properties.
    pub fn parse(text: &str) -> Result<Self, String> {
        let document: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let features = document["features"].as_array().ok_or("no features array")?;
        let mut desa = Vec::with_capacity(features.len());
        for feature in features {
            let properties = &feature["properties"];
            let kode = properties["kode"]
                .as_str()
                .ok_or("a feature without kode")?;
            let centroid = Point::new(
                properties["lat"].as_f64().unwrap_or(f64::NAN),
                properties["lng"].as_f64().unwrap_or(f64::NAN),
            )
            .ok_or_else(|| format!("{kode}: no centroid"))?;
            let geometry = &feature["geometry"];
            let polygons: Vec<&serde_json::Value> = match geometry["type"].as_str() {
                Some("Polygon") => vec![&geometry["coordinates"]],
                Some("MultiPolygon") => geometry["coordinates"]
                    .as_array()
                    .map(|p| p.iter().collect())
                    .unwrap_or_default(),
                other => return Err(format!("{kode}: geometry {other:?} is not a polygon")),
            };
            let mut rings = Vec::new();
            for polygon in polygons {
                for ring in polygon.as_array().into_iter().flatten() {
                    let points: Vec<(f64, f64)> = ring
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                        .collect();
                    if points.len() >= 3 {
                        rings.push(points);
                    }
                }
            }
            if rings.is_empty() {
                return Err(format!("{kode}: an empty boundary"));
            }
            let mut bbox = (
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            );
            for &(lng, lat) in rings.iter().flatten() {
                bbox = (
                    bbox.0.min(lng),
                    bbox.1.min(lat),
                    bbox.2.max(lng),
                    bbox.3.max(lat),
                );
            }
            desa.push(Desa {
                kode: kode.to_string(),
                nama: properties["nama"].as_str().unwrap_or(kode).to_string(),
                centroid,
                rings,
                bbox,
            });
        }
        Ok(Self { desa })
    }

    /// The desa a point lies in; a point in a sliver between simplified boundaries goes to
    /// the nearest desa within 300 m. `None`: outside the regency.
    pub fn locate(&self, p: Point) -> Option<&Desa> {
        if let Some(found) = self.desa.iter().find(|d| d.contains(p)) {
            return Some(found);
        }
        self.desa
            .iter()
            .map(|d| (d.distance_to_edge_m(p), d))
            .filter(|(distance, _)| *distance <= BORDER_TOLERANCE_M)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, d)| d)
    }

    /// One desa by code.
    pub fn desa(&self, kode: &str) -> Option<&Desa> {
        self.desa.iter().find(|d| d.kode == kode)
    }

    /// Every desa, in file order.
    pub fn all(&self) -> &[Desa] {
        &self.desa
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kecamatan_and_the_desa_cover_the_same_regency() {
        let kecamatan: f64 = Boundaries::kecamatan()
            .all()
            .iter()
            .map(Desa::area_km2)
            .sum();
        let desa: f64 = Boundaries::purwakarta()
            .all()
            .iter()
            .map(Desa::area_km2)
            .sum();
        // BPS publishes 971.72 km²; the simplified boundaries give a little more.
        assert!((960.0..1010.0).contains(&kecamatan), "{kecamatan}");
        assert!(
            (kecamatan - desa).abs() / kecamatan < 0.01,
            "{kecamatan} vs {desa}"
        );
        assert_eq!(Boundaries::kecamatan().all().len(), 17);
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // Purwakarta town to Bandung (Gedung Sate): 43,039 m by the same formula in Python.
        let purwakarta = Point::new(-6.5569, 107.4433).unwrap();
        let bandung = Point::new(-6.9025, 107.6188).unwrap();
        let d = purwakarta.distance_m(bandung);
        assert!((d - 43_039.3).abs() < 1.0, "{d}");
        assert_eq!(purwakarta.distance_m(purwakarta), 0.0);
        assert!(Point::new(91.0, 0.0).is_none() && Point::new(f64::NAN, 0.0).is_none());
    }

    #[test]
    fn every_centroid_lies_in_its_own_desa() {
        let boundaries = Boundaries::purwakarta();
        assert_eq!(boundaries.all().len(), 192);
        let mut own = 0;
        for desa in boundaries.all() {
            let found = boundaries
                .locate(desa.centroid)
                .expect("inside the regency");
            if found.kode == desa.kode {
                own += 1;
            }
        }
        // A centroid of a crescent-shaped desa can fall in its neighbour; nearly all do not.
        assert!(own >= 185, "{own} of 192 centroids in their own desa");
    }

    #[test]
    fn points_outside_the_regency_are_refused() {
        let boundaries = Boundaries::purwakarta();
        // Bandung, Jakarta and the sea north of Karawang.
        for (lat, lng) in [(-6.9025, 107.6188), (-6.1754, 106.8272), (-5.9, 107.3)] {
            assert!(boundaries.locate(Point::new(lat, lng).unwrap()).is_none());
        }
        assert_eq!(kecamatan_of("32.14.01.1001"), "32.14.01");
    }
}
