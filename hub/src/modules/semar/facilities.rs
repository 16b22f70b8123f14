//! Health facilities, read from the `fasilitas_kesehatan` dataset (refreshed every minute),
//! and SQL over the lake for the module.

use std::sync::{Arc, RwLock};

use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use serde::Serialize;
use serde_json::{Map, Value};
use simpul_catalog::{DatasetId, SqlAccess};

use super::Semar;
use crate::geo::Point;

/// One facility.
#[derive(Debug, Clone, Serialize)]
pub struct Facility {
    /// Facility code.
    pub kode: String,
    /// Name.
    pub nama: String,
    /// `rumah_sakit`, `puskesmas`, ….
    pub jenis: String,
    /// Its desa.
    pub kode_wilayah: String,
    /// Location.
    #[serde(flatten)]
    pub point: Point,
    /// Phone, E.164.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telepon: Option<String>,
    /// Whether the emergency room is open day and night.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub igd_24_jam: Option<bool>,
}

/// The facilities the module knows, with the dataset version they came from.
#[derive(Debug, Default)]
pub struct Index {
    held: RwLock<Arc<(Option<i64>, Vec<Facility>)>>,
}

impl Index {
    /// Reloads the facilities when the dataset has a newer version.
    pub async fn refresh(&self, semar: &Semar) -> Result<usize, String> {
        let id: DatasetId = semar
            .config
            .facilities_dataset
            .parse()
            .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
        let Some(meta) = semar
            .catalog
            .state
            .dataset(&id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(0);
        };
        if self.snapshot().0 == meta.current_version && meta.current_version.is_some() {
            return Ok(self.snapshot().1.len());
        }
        let rows = query_json(
            semar,
            &format!(
                "select kode, nama, jenis, kode_wilayah, lat, lng, telepon, igd_24_jam from {id} order by kode"
            ),
            Vec::new(),
        )
        .await?;
        let facilities: Vec<Facility> = rows
            .iter()
            .filter_map(|row| {
                Some(Facility {
                    kode: row.get("kode")?.as_str()?.to_string(),
                    nama: row.get("nama")?.as_str()?.to_string(),
                    jenis: row.get("jenis")?.as_str()?.to_string(),
                    kode_wilayah: row.get("kode_wilayah")?.as_str()?.to_string(),
                    point: Point::new(row.get("lat")?.as_f64()?, row.get("lng")?.as_f64()?)?,
                    telepon: row
                        .get("telepon")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    igd_24_jam: row.get("igd_24_jam").and_then(Value::as_bool),
                })
            })
            .collect();
        let count = facilities.len();
        *self.held.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new((meta.current_version, facilities));
        Ok(count)
    }

    fn snapshot(&self) -> Arc<(Option<i64>, Vec<Facility>)> {
        self.held.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One facility by code.
    pub fn get(&self, kode: &str) -> Option<Facility> {
        self.snapshot().1.iter().find(|f| f.kode == kode).cloned()
    }

    /// Every facility of `jenis` (all when `None`).
    pub fn of_kind(&self, jenis: Option<&str>) -> Vec<Facility> {
        self.snapshot()
            .1
            .iter()
            .filter(|f| jenis.is_none_or(|j| f.jenis == j))
            .cloned()
            .collect()
    }
}

/// Runs one of the module's own read-only queries over the lake (full access, recorded for
/// `semar`), with `$1…` parameters, and returns the rows as JSON objects.
pub async fn query_json(
    semar: &Semar,
    sql: &str,
    params: Vec<ScalarValue>,
) -> Result<Vec<Map<String, Value>>, String> {
    crate::modules::run_query(
        &semar.reads,
        "semar",
        "module",
        sql,
        ParamValues::from(params),
        &SqlAccess::full("semar"),
    )
    .await
}
