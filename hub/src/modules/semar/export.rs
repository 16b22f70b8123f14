//! Lands SEMAR's changed records in its datasets: `semar.residents`, `semar.units`,
//! `semar.calls`, `semar.dispatches` and `semar.events`, each bound to its canonical schema
//! and upserted by its key, through the same validate → commit path as every ingest.
//!
//! A row is marked exported only if it did not change after it was read, so a change made
//! during an export goes out in the next one. A record the schema refuses lands in the
//! dataset's rejects with its reason.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use simpul_catalog::{Classification, Contract, DatasetId, LakeTable, SchemaBinding, WriteMode};
use simpul_connectors::file::{FileFormat, open_bytes};
use simpul_pipelines::{DatasetDefaults, IngestOptions, SchemaChoice};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Semar;
use super::store::crew_steps;

/// Most rows of one table in one export round; the rest go in the next round.
const ROUND_ROWS: i64 = 5_000;
/// A dataset's small files are compacted once its table holds this many.
const COMPACT_AT_FILES: usize = 256;

/// One exported table.
struct Export {
    dataset: &'static str,
    schema: &'static str,
    major: u64,
    key: &'static str,
    title: &'static str,
    description: &'static str,
    classification: Classification,
    /// The state-store table and its key column.
    table: &'static str,
    table_key: &'static str,
    /// Whether rows change after they are written (then `updated_at` guards the mark).
    mutable: bool,
    select: &'static str,
    record: fn(&AnyRow) -> Result<Value, sqlx::Error>,
}

const EXPORTS: [Export; 5] = [
    Export {
        dataset: "semar.residents",
        schema: "pendaftaran_semar",
        major: 1,
        key: "nik",
        title: "Warga terdaftar SEMAR",
        description: "Warga yang mendaftar di aplikasi SEMAR dengan NIK, nama, telepon dan alamat KTP. \
                      Residents registered for the SEMAR app. Personal data: restricted.",
        classification: Classification::Restricted,
        table: "semar_residents",
        table_key: "nik",
        mutable: true,
        select: "nik, nama, telepon, alamat, kode_wilayah, verified, registered_at, updated_at",
        record: resident_record,
    },
    Export {
        dataset: "semar.units",
        schema: "ambulans",
        major: 1,
        key: "kode",
        title: "Armada ambulans SEMAR",
        description: "Unit ambulans SEMAR, status dan posisi terakhirnya. SEMAR's ambulances with their \
                      status and last position.",
        classification: Classification::Internal,
        table: "semar_units",
        table_key: "kode",
        mutable: true,
        select: "kode, nomor_polisi, jenis, pangkalan_faskes, di_aplikasi, status, lat, lng, updated_at",
        record: unit_record,
    },
    Export {
        dataset: "semar.calls",
        schema: "panggilan_darurat",
        major: 1,
        key: "id",
        title: "Panggilan darurat SEMAR",
        description: "Panggilan ambulans dari aplikasi, telepon dan SMS, dengan lokasi dan status. \
                      SEMAR's ambulance calls. The caller's NIK, name and phone are masked without a pii grant.",
        classification: Classification::Internal,
        table: "semar_calls",
        table_key: "id",
        mutable: true,
        select: "id, received_at, channel, nik, caller_name, caller_phone, complaint, kode_wilayah, lat, lng, \
                 location_source, status, updated_at",
        record: call_record,
    },
    Export {
        dataset: "semar.dispatches",
        schema: "dispatch",
        major: 1,
        key: "id",
        title: "Penugasan ambulans SEMAR",
        description: "Setiap penugasan unit ke panggilan dengan waktu tiap tahap (mirip NEMSIS). \
                      Every assignment of a unit to a call with the time of each step.",
        classification: Classification::Internal,
        table: "semar_dispatches",
        table_key: "id",
        mutable: true,
        select: "id, call_id, unit_kode, assigned_at, estimate_secs, distance_m, status, facility, notified, en_route, \
                 on_scene, at_patient, left_scene, at_facility, handed_over, back_in_service, cancelled, updated_at",
        record: dispatch_record,
    },
    Export {
        dataset: "semar.events",
        schema: "kejadian_dispatch",
        major: 1,
        key: "id",
        title: "Kejadian penugasan SEMAR",
        description: "Cap waktu dari aplikasi awak ambulans, satu baris per tahap. The crews' timestamps, \
                      one row per step.",
        classification: Classification::Internal,
        table: "semar_events",
        table_key: "id",
        mutable: false,
        select: "id, dispatch_id, call_id, unit_kode, event, at, received_at, facility, lat, lng, actor",
        record: event_record,
    },
];

fn resident_record(row: &AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "nik": row.try_get::<String, _>("nik")?,
        "nama": row.try_get::<String, _>("nama")?,
        "telepon": row.try_get::<String, _>("telepon")?,
        "alamat": row.try_get::<String, _>("alamat")?,
        "kode_wilayah": row.try_get::<String, _>("kode_wilayah")?,
        "terverifikasi": row.try_get::<i64, _>("verified")? == 1,
        "didaftarkan_pada": row.try_get::<String, _>("registered_at")?,
    }))
}

fn unit_record(row: &AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "kode": row.try_get::<String, _>("kode")?,
        "nomor_polisi": row.try_get::<String, _>("nomor_polisi")?,
        "jenis": row.try_get::<String, _>("jenis")?,
        "pangkalan_faskes": row.try_get::<String, _>("pangkalan_faskes")?,
        "status": row.try_get::<String, _>("status")?,
        "di_aplikasi": row.try_get::<i64, _>("di_aplikasi")? == 1,
        "lat": row.try_get::<f64, _>("lat")?,
        "lng": row.try_get::<f64, _>("lng")?,
    }))
}

fn call_record(row: &AnyRow) -> Result<Value, sqlx::Error> {
    // An SMS that named no place has none until the operator gives it.
    let placed = row.try_get::<String, _>("location_source")? != "unknown";
    let place = |value: Value| if placed { value } else { Value::Null };
    Ok(json!({
        "id": row.try_get::<String, _>("id")?,
        "waktu_panggilan": row.try_get::<String, _>("received_at")?,
        "kanal": row.try_get::<String, _>("channel")?,
        "nik_pemanggil": row.try_get::<Option<String>, _>("nik")?,
        "nama_pemanggil": row.try_get::<Option<String>, _>("caller_name")?,
        "telepon_pemanggil": row.try_get::<Option<String>, _>("caller_phone")?,
        "keluhan": row.try_get::<String, _>("complaint")?,
        "kode_wilayah": place(json!(row.try_get::<String, _>("kode_wilayah")?)),
        "lat": place(json!(row.try_get::<f64, _>("lat")?)),
        "lng": place(json!(row.try_get::<f64, _>("lng")?)),
        "status": row.try_get::<String, _>("status")?,
    }))
}

fn dispatch_record(row: &AnyRow) -> Result<Value, sqlx::Error> {
    let mut record = Map::new();
    record.insert("id".into(), row.try_get::<String, _>("id")?.into());
    record.insert(
        "panggilan_id".into(),
        row.try_get::<String, _>("call_id")?.into(),
    );
    record.insert(
        "ambulans_kode".into(),
        row.try_get::<String, _>("unit_kode")?.into(),
    );
    record.insert(
        "ditugaskan_pada".into(),
        row.try_get::<String, _>("assigned_at")?.into(),
    );
    for step in crew_steps() {
        record.insert(
            step.name().into(),
            row.try_get::<Option<String>, _>(step.name())?.into(),
        );
    }
    record.remove("cancelled");
    record.insert(
        "faskes_tujuan".into(),
        row.try_get::<Option<String>, _>("facility")?.into(),
    );
    record.insert("status".into(), row.try_get::<String, _>("status")?.into());
    record.insert(
        "estimasi_tempuh_detik".into(),
        json!(row.try_get::<f64, _>("estimate_secs")?.round()),
    );
    record.insert(
        "jarak_meter".into(),
        json!(row.try_get::<f64, _>("distance_m")?.round()),
    );
    Ok(Value::Object(record))
}

fn event_record(row: &AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "id": row.try_get::<String, _>("id")?,
        "dispatch_id": row.try_get::<String, _>("dispatch_id")?,
        "panggilan_id": row.try_get::<String, _>("call_id")?,
        "ambulans_kode": row.try_get::<String, _>("unit_kode")?,
        "kejadian": row.try_get::<String, _>("event")?,
        "waktu": row.try_get::<String, _>("at")?,
        "diterima_pada": row.try_get::<String, _>("received_at")?,
        "faskes": row.try_get::<Option<String>, _>("facility")?,
        "lat": row.try_get::<Option<f64>, _>("lat")?,
        "lng": row.try_get::<Option<f64>, _>("lng")?,
        "oleh": row.try_get::<String, _>("actor")?,
    }))
}

fn options(semar: &Semar, export: &Export, upsert: bool) -> Result<IngestOptions, String> {
    let dataset: DatasetId = export
        .dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
    Ok(IngestOptions {
        dataset,
        mode: WriteMode::Append,
        defaults: DatasetDefaults {
            title: export.title.into(),
            description: export.description.into(),
            owner: semar.config.owner.clone(),
            classification: export.classification,
            tags: vec!["semar".into(), "kesehatan".into(), "ambulans".into()],
            contract: Contract::Freeze,
        },
        schema: SchemaChoice::Canonical(SchemaBinding {
            name: export.schema.into(),
            major: export.major,
        }),
        actor: "semar".into(),
        source: "semar export".into(),
        upsert_keys: if upsert {
            vec![export.key.into()]
        } else {
            Vec::new()
        },
        run: None,
    })
}

async fn ingest(
    semar: &Semar,
    export: &Export,
    data: Vec<u8>,
    format: Option<FileFormat>,
    upsert: bool,
) -> Result<u64, String> {
    let format = format.unwrap_or(FileFormat::Ndjson);
    let reader =
        open_bytes("semar export", Bytes::from(data), &format).map_err(|e| e.to_string())?;
    let report = simpul_pipelines::ingest(&semar.catalog, reader, options(semar, export, upsert)?)
        .await
        .map_err(|e| format!("{}: {e}", export.dataset))?;
    if report.rows_rejected > 0 {
        tracing::warn!(
            dataset = export.dataset,
            rejected = report.rows_rejected,
            "SEMAR records refused by their schema; they are in the rejects table"
        );
    }
    Ok(report.rows_written + report.rows_rejected)
}

/// Makes the five datasets, empty, if they do not exist, so that grants and SQL can name
/// them before the first record.
pub async fn ensure_datasets(semar: &Arc<Semar>) -> Result<(), simpul_catalog::CatalogError> {
    for export in &EXPORTS {
        let id: DatasetId =
            export
                .dataset
                .parse()
                .map_err(|e: simpul_catalog::InvalidDatasetId| {
                    simpul_catalog::CatalogError::Invalid(e.to_string())
                })?;
        if semar.catalog.state.dataset(&id).await?.is_none() {
            // A header-only CSV: the schema's columns, no rows.
            let compiled = semar.schema(export.schema, export.major).await?;
            let header: Vec<&str> = compiled
                .arrow
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            let csv = format!("{}\n", header.join(","));
            ingest(
                semar,
                export,
                csv.into_bytes(),
                FileFormat::from_name("csv"),
                false,
            )
            .await
            .map_err(simpul_catalog::CatalogError::Invalid)?;
        }
    }
    Ok(())
}

/// One export round over every table; returns the records landed.
pub async fn run(semar: &Semar) -> Result<u64, String> {
    let mut landed = 0;
    for export in &EXPORTS {
        landed += export_table(semar, export).await?;
    }
    Ok(landed)
}

async fn export_table(semar: &Semar, export: &Export) -> Result<u64, String> {
    let pool = semar.catalog.state.pool();
    let mut landed = 0;
    loop {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM {} WHERE exported = 0 ORDER BY {} LIMIT {ROUND_ROWS}",
            export.select, export.table, export.table_key
        ))
        .fetch_all(pool)
        .await
        .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            break;
        }
        let mut ndjson = Vec::new();
        let mut marks: Vec<(String, Option<String>)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let record = (export.record)(row).map_err(|e| e.to_string())?;
            serde_json::to_writer(&mut ndjson, &record).map_err(|e| e.to_string())?;
            ndjson.push(b'\n');
            let key: String = row.try_get(export.table_key).map_err(|e| e.to_string())?;
            let updated = if export.mutable {
                Some(
                    row.try_get::<String, _>("updated_at")
                        .map_err(|e| e.to_string())?,
                )
            } else {
                None
            };
            marks.push((key, updated));
        }
        // Always by key, events too: rows landed by a round whose marks were lost (a crash
        // between the commit and the mark) land again as the same rows, not as copies.
        landed += ingest(semar, export, ndjson, None, true).await?;
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
        for (key, updated) in &marks {
            let query = match updated {
                Some(_) => format!(
                    "UPDATE {} SET exported = 1 WHERE {} = $1 AND updated_at = $2",
                    export.table, export.table_key
                ),
                None => format!(
                    "UPDATE {} SET exported = 1 WHERE {} = $1",
                    export.table, export.table_key
                ),
            };
            let mut statement = sqlx::query(&query).bind(key);
            if let Some(updated) = updated {
                statement = statement.bind(updated);
            }
            statement
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        compact_if_needed(semar, export).await;
        if (rows.len() as i64) < ROUND_ROWS {
            break;
        }
    }
    Ok(landed)
}

async fn compact_if_needed(semar: &Semar, export: &Export) {
    let Ok(id) = export.dataset.parse::<DatasetId>() else {
        return;
    };
    match semar.catalog.refresh_stats(&id).await {
        Ok(stats) if stats.files >= COMPACT_AT_FILES => {
            if let Err(e) = semar.catalog.lake.compact(&LakeTable::Data(id)).await {
                tracing::warn!(dataset = export.dataset, error = %e, "cannot compact a SEMAR dataset");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(dataset = export.dataset, error = %e, "no stats for a SEMAR dataset")
        }
    }
}
