//! SEMAR's datasets: `semar.residents`, `semar.units`, `semar.calls`, `semar.dispatches` and
//! `semar.events`, each bound to its canonical schema and landed by the shared exporter
//! (`modules::export`).

use std::sync::Arc;

use serde_json::{Map, Value, json};
use simpul_catalog::Classification;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Semar;
use super::store::crew_steps;
use crate::modules::export::{Export, Exporter};

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
        filter: "",
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
        filter: "",
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
        filter: "",
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
        filter: "",
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
        filter: "",
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

fn exporter(semar: &Semar) -> Exporter<'_> {
    Exporter {
        catalog: &semar.catalog,
        owner: &semar.config.owner,
        tags: &["semar", "kesehatan", "ambulans"],
        actor: "semar",
        exports: &EXPORTS,
    }
}

/// Makes the five datasets, empty, if they do not exist, so that grants and SQL can name
/// them before the first record.
pub async fn ensure_datasets(semar: &Arc<Semar>) -> Result<(), simpul_catalog::CatalogError> {
    exporter(semar).ensure_datasets().await
}

/// One export round over every table; returns the records landed.
pub async fn run(semar: &Semar) -> Result<u64, String> {
    exporter(semar).run().await
}
