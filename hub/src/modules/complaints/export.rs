//! The module's datasets for analysts, landed by the shared exporter (`modules::export`):
//! `complaints.cases` (complaints, schema `pengaduan`), `complaints.information_requests`
//! (`permohonan_informasi`), `complaints.events` (every transition with the deadline it
//! settled, `kejadian_pengaduan`) and `complaints.messages` (SMS metadata without the text,
//! `pesan_pengaduan`). Identity columns are `x-pii`: masked in SQL without a pii grant.

use serde_json::{Value, json};
use simpul_catalog::Classification;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Complaints;
use crate::modules::export::{Export, Exporter};

const CASE_SELECT: &str = "id, channel, category, opd, description, anonymous, nik, nama, telepon, kode_wilayah, \
     lat, lng, address, status, received_at, deadline, deadline_step, deadline_duty, decision, exemption_reason, \
     closed_at, updated_at";

const EXPORTS: [Export; 4] = [
    Export {
        dataset: "complaints.cases",
        schema: "pengaduan",
        major: 1,
        key: "id",
        title: "Pengaduan masyarakat (PLIPMAS, La Pewarta)",
        description: "Setiap pengaduan dengan kanal, kategori, OPD, status, tenggat hari kerja dan waktu selesai. \
                      Every public complaint with its channel, category, agency, status, working-day deadline and \
                      close time. The complainant's identity is masked without a pii grant.",
        classification: Classification::Internal,
        table: "complaint_cases",
        table_key: "id",
        filter: "kind = 'complaint'",
        mutable: true,
        select: CASE_SELECT,
        record: complaint_record,
    },
    Export {
        dataset: "complaints.information_requests",
        schema: "permohonan_informasi",
        major: 1,
        key: "id",
        title: "Permohonan informasi publik (UU 14/2008)",
        description: "Setiap permohonan informasi dengan keputusan PPID, alasan pengecualian dan tenggat. \
                      Every information request with the PPID's decision, the exemption reason and the deadlines. \
                      The requester's identity is masked without a pii grant.",
        classification: Classification::Internal,
        table: "complaint_cases",
        table_key: "id",
        filter: "kind = 'information'",
        mutable: true,
        select: CASE_SELECT,
        record: request_record,
    },
    Export {
        dataset: "complaints.events",
        schema: "kejadian_pengaduan",
        major: 1,
        key: "id",
        title: "Langkah alur kerja pengaduan dan permohonan informasi",
        description: "Setiap langkah: siapa, kapan, tenggat yang diselesaikan dan apakah tepat waktu. \
                      Every workflow step: who, when, the deadline it settled and whether it was met.",
        classification: Classification::Internal,
        table: "complaint_events",
        table_key: "id",
        filter: "",
        mutable: false,
        select: "id, case_id, (SELECT kind FROM complaint_cases c WHERE c.id = complaint_events.case_id) AS kind, \
                 from_status, to_status, actor, at, deadline, step, step_deadline, step_duty, within_sla, working_days",
        record: event_record,
    },
    Export {
        dataset: "complaints.messages",
        schema: "pesan_pengaduan",
        major: 1,
        key: "id",
        title: "SMS La Pewarta (metadata)",
        description: "Setiap SMS masuk dan keluar, tanpa isi: arah, penerima, nomor, waktu, status kirim. \
                      Every SMS in and out, without the text. Numbers are masked without a pii grant.",
        classification: Classification::Internal,
        table: "complaint_messages",
        table_key: "id",
        filter: "",
        mutable: false,
        select: "id, case_id, direction, recipient, phone, text, at, status, error",
        record: message_record,
    },
];

fn text(row: &AnyRow, column: &str) -> Result<Value, sqlx::Error> {
    Ok(json!(row.try_get::<Option<String>, _>(column)?))
}

fn complaint_record(row: &AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "id": row.try_get::<String, _>("id")?,
        "kanal": row.try_get::<String, _>("channel")?,
        // A triage case has no category yet.
        "kategori": row.try_get::<Option<String>, _>("category")?.unwrap_or_else(|| "lainnya".into()),
        "isi": row.try_get::<String, _>("description")?,
        "status": row.try_get::<String, _>("status")?,
        "anonim": row.try_get::<i64, _>("anonymous")? == 1,
        "nik": text(row, "nik")?,
        "nama": text(row, "nama")?,
        "telepon": text(row, "telepon")?,
        "kode_wilayah": text(row, "kode_wilayah")?,
        "opd_tujuan": text(row, "opd")?,
        "diterima_pada": row.try_get::<String, _>("received_at")?,
        "tenggat": text(row, "deadline")?,
        "langkah_tenggat": text(row, "deadline_step")?,
        "pihak_tenggat": text(row, "deadline_duty")?,
        "lat": row.try_get::<Option<f64>, _>("lat")?,
        "lng": row.try_get::<Option<f64>, _>("lng")?,
        "alamat": text(row, "address")?,
        "ditutup_pada": text(row, "closed_at")?,
    }))
}

fn request_record(row: &AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "id": row.try_get::<String, _>("id")?,
        "nama_pemohon": row.try_get::<Option<String>, _>("nama")?.unwrap_or_default(),
        "nik_pemohon": text(row, "nik")?,
        "telepon": text(row, "telepon")?,
        "informasi_diminta": row.try_get::<String, _>("description")?,
        "status": row.try_get::<String, _>("status")?,
        "keputusan": text(row, "decision")?,
        "alasan_pengecualian": text(row, "exemption_reason")?,
        "diterima_pada": row.try_get::<String, _>("received_at")?,
        "tenggat": text(row, "deadline")?,
        "kanal": row.try_get::<String, _>("channel")?,
        "opd_tujuan": text(row, "opd")?,
        "langkah_tenggat": text(row, "deadline_step")?,
        "pihak_tenggat": text(row, "deadline_duty")?,
        "ditutup_pada": text(row, "closed_at")?,
    }))
}

fn event_record(row: &AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "id": row.try_get::<String, _>("id")?,
        "kasus_id": row.try_get::<String, _>("case_id")?,
        "jenis_kasus": row.try_get::<String, _>("kind")?,
        "dari_status": text(row, "from_status")?,
        "ke_status": row.try_get::<String, _>("to_status")?,
        "oleh": row.try_get::<String, _>("actor")?,
        "waktu": row.try_get::<String, _>("at")?,
        "tenggat_baru": text(row, "deadline")?,
        "langkah": text(row, "step")?,
        "tenggat_langkah": text(row, "step_deadline")?,
        "pihak": text(row, "step_duty")?,
        "tepat_waktu": row.try_get::<Option<i64>, _>("within_sla")?.map(|w| w == 1),
        "hari_kerja": row.try_get::<Option<i64>, _>("working_days")?,
    }))
}

fn message_record(row: &AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "id": row.try_get::<String, _>("id")?,
        "kasus_id": text(row, "case_id")?,
        "arah": row.try_get::<String, _>("direction")?,
        "penerima": row.try_get::<String, _>("recipient")?,
        "telepon": row.try_get::<String, _>("phone")?,
        "waktu": row.try_get::<String, _>("at")?,
        "status": row.try_get::<String, _>("status")?,
        "panjang": row.try_get::<String, _>("text")?.chars().count(),
        "galat": text(row, "error")?,
    }))
}

pub(super) fn exporter(complaints: &Complaints) -> Exporter<'_> {
    Exporter {
        catalog: &complaints.catalog,
        owner: &complaints.config.owner,
        tags: &["pengaduan", "plipmas", "la_pewarta", "kip"],
        actor: "complaints",
        exports: &EXPORTS,
    }
}
