//! The demo that `serve` seeds on embedded defaults, clearly labelled: a puskesmas at each
//! kecamatan's centroid and two hospitals, the 40 app ambulances based at them, demo
//! residents with valid-format NIKs, and a Drupadi roster. Loaded once.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use simpul_catalog::{Classification, Contract, DatasetId, SchemaBinding, WriteMode, timestamp};
use simpul_connectors::records::RecordsReader;
use simpul_pipelines::{DatasetDefaults, IngestOptions, SchemaChoice};

use super::Semar;
use super::store::UnitRow;
use crate::geo::{Boundaries, Point};

const WILAYAH_CSV: &str = include_str!("../../../reference/wilayah_3214.csv");
const DEMO_LOADED: &str = "semar_demo_loaded";

/// The demo's facilities: `(kode, nama, jenis, kelas, point, desa)`.
pub fn demo_facilities() -> Vec<serde_json::Value> {
    let boundaries = Boundaries::purwakarta();
    let mut facilities = Vec::new();
    for line in WILAYAH_CSV.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [kode, _, nama, level, _, lat, lng] = fields[..] else {
            continue;
        };
        if level != "kecamatan" {
            continue;
        }
        let (Ok(lat), Ok(lng)) = (lat.parse::<f64>(), lng.parse::<f64>()) else {
            continue;
        };
        let Some(point) = Point::new(lat, lng) else {
            continue;
        };
        let Some(desa) = boundaries.locate(point) else {
            continue;
        };
        let suffix = kode.replace('.', "");
        facilities.push(json!({
            "kode": format!("PKM-{suffix}"),
            "nama": format!("Puskesmas {nama} (demo)"),
            "jenis": "puskesmas",
            "kelas": null,
            "kode_wilayah": desa.kode,
            "alamat": format!("Titik tengah Kecamatan {nama} (data demo)"),
            "lat": lat,
            "lng": lng,
            "telepon": null,
            "tempat_tidur": 10,
            "igd_24_jam": true,
        }));
        let hospital = match nama {
            "Purwakarta" => Some(("RS-BAYUASIH", "RSUD Bayu Asih (demo)", "B", 0.004)),
            "Plered" => Some(("RS-PLERED", "Rumah Sakit Plered (demo)", "C", -0.004)),
            _ => None,
        };
        if let Some((code, name, kelas, offset)) = hospital {
            let point = Point::new(lat + offset, lng + offset).unwrap_or(point);
            let desa = boundaries.locate(point).unwrap_or(desa);
            facilities.push(json!({
                "kode": code,
                "nama": name,
                "jenis": "rumah_sakit",
                "kelas": kelas,
                "kode_wilayah": desa.kode,
                "alamat": format!("Dekat titik tengah Kecamatan {nama} (data demo)"),
                "lat": point.lat,
                "lng": point.lng,
                "telepon": null,
                "tempat_tidur": 150,
                "igd_24_jam": true,
            }));
        }
    }
    facilities
}

/// Seeds the demo once, when `demo_data` is on.
pub async fn seed_demo(semar: &Arc<Semar>) -> Result<(), String> {
    let state = &semar.catalog.state;
    if state
        .setting(DEMO_LOADED)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    let facilities = demo_facilities();
    let dataset: DatasetId = semar
        .config
        .facilities_dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
    if state
        .dataset(&dataset)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        let records = facilities
            .iter()
            .filter_map(|facility| facility.as_object().cloned())
            .collect();
        let reader = RecordsReader::new("SEMAR demo facilities", Vec::new(), records);
        let options = IngestOptions {
            dataset: dataset.clone(),
            mode: WriteMode::Overwrite,
            defaults: DatasetDefaults {
                title: "Fasilitas kesehatan Purwakarta (demo)".into(),
                description: "Demo: satu puskesmas di titik tengah tiap kecamatan dan dua rumah sakit. \
                              Demo facilities at the kecamatan centroids, for SEMAR; replace with Dinkes' register."
                    .into(),
                owner: semar.config.owner.clone(),
                classification: Classification::Public,
                tags: vec!["demo".into(), "kesehatan".into(), "semar".into()],
                contract: Contract::Freeze,
            },
            schema: SchemaChoice::Canonical(SchemaBinding {
                name: "fasilitas_kesehatan".into(),
                major: 1,
            }),
            actor: "simpul".into(),
            source: "SEMAR demo facilities (shipped with simpul)".into(),
            upsert_keys: Vec::new(),
            run: None,
        };
        simpul_pipelines::ingest(&semar.catalog, Box::new(reader), options)
            .await
            .map_err(|e| format!("loading the demo facilities failed: {e}"))?;
        if let Err(e) = semar.facilities.refresh(semar).await {
            tracing::warn!(error = %e, "the demo facilities are loaded but not read yet; retried every minute");
        }
    }
    for i in 0..40usize {
        let base = &facilities[i % facilities.len()];
        let unit = UnitRow {
            kode: format!("SEMAR-{:02}", i + 1),
            nomor_polisi: format!("T {} SM", 1001 + i),
            jenis: if i % 4 == 3 {
                "transport"
            } else {
                "gawat_darurat"
            }
            .into(),
            pangkalan_faskes: base["kode"].as_str().unwrap_or_default().into(),
            di_aplikasi: true,
            status: "tersedia".into(),
            lat: base["lat"].as_f64().unwrap_or_default(),
            lng: base["lng"].as_f64().unwrap_or_default(),
            position_at: None,
        };
        semar
            .put_unit(&unit, "simpul")
            .await
            .map_err(|e| e.detail().to_string())?;
    }
    let now = timestamp(Utc::now());
    let boundaries = Boundaries::purwakarta();
    for (i, desa) in boundaries.all().iter().step_by(24).take(8).enumerate() {
        let kecamatan = &desa.kode[6..8];
        let nik = format!(
            "3214{kecamatan}{:02}0{}8{}000{}",
            10 + i,
            1 + i % 9,
            i % 10,
            i + 1
        );
        sqlx::query(
            "INSERT INTO semar_residents (nik, nama, telepon, alamat, kode_wilayah, verified, registered_at, registered_by, updated_at, exported) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, 'simpul', $6, 0) ON CONFLICT (nik) DO NOTHING",
        )
        .bind(&nik)
        .bind(format!("Warga Demo {}", i + 1))
        .bind(format!("+628120000{:04}", i + 1))
        .bind(format!("Alamat demo {}, Desa {}", i + 1, desa.nama))
        .bind(&desa.kode)
        .bind(&now)
        .execute(state.pool())
        .await
        .map_err(|e| e.to_string())?;
        for (n, profesi) in ["dokter", "bidan"].into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO semar_oncall (id, nama, profesi, telepon, kode_wilayah, faskes, on_call, updated_at, updated_by) \
                 VALUES ($1, $2, $3, $4, $5, NULL, 1, $6, 'simpul') ON CONFLICT (id) DO NOTHING",
            )
            .bind(format!("demo-{}-{profesi}", i + 1))
            .bind(format!(
                "{} Demo {} ({})",
                if profesi == "dokter" { "dr." } else { "Bidan" },
                i + 1,
                desa.nama
            ))
            .bind(profesi)
            .bind(format!("+628130000{:02}{n}{}", i + 1, n))
            .bind(&desa.kode)
            .bind(&now)
            .execute(state.pool())
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    state
        .set_setting_once(DEMO_LOADED, &now)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        facilities = facilities.len(),
        units = 40,
        "SEMAR demo fleet seeded"
    );
    Ok(())
}
