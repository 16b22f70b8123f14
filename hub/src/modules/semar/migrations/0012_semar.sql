-- SEMAR, the emergency ambulance module: its operational records. Every table has
-- `exported = 0` while a change is not yet in its lake dataset (semar.*); the exporter sets
-- it back to 1 only when the row it exported is still the row's newest state.

-- Residents registered for the app, by NIK.
CREATE TABLE semar_residents (
    nik TEXT PRIMARY KEY,
    nama TEXT NOT NULL,
    telepon TEXT NOT NULL,
    alamat TEXT NOT NULL,
    kode_wilayah TEXT NOT NULL,
    verified BIGINT NOT NULL,
    registered_at TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    exported BIGINT NOT NULL DEFAULT 0
);

-- The fleet. status: tersedia, bertugas, perawatan, tidak_aktif. The position is the last
-- ping (or the base until the first one).
CREATE TABLE semar_units (
    kode TEXT PRIMARY KEY,
    nomor_polisi TEXT NOT NULL,
    jenis TEXT NOT NULL,
    pangkalan_faskes TEXT NOT NULL,
    di_aplikasi BIGINT NOT NULL,
    status TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lng DOUBLE PRECISION NOT NULL,
    position_at TEXT,
    updated_at TEXT NOT NULL,
    exported BIGINT NOT NULL DEFAULT 0
);

-- Calls from the app, the phone and SMS. status: menunggu_konfirmasi, dikonfirmasi,
-- dalam_antrean, ditugaskan, selesai, dibatalkan.
CREATE TABLE semar_calls (
    id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    channel TEXT NOT NULL,
    nik TEXT,
    caller_name TEXT,
    caller_phone TEXT,
    complaint TEXT NOT NULL,
    kode_wilayah TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lng DOUBLE PRECISION NOT NULL,
    location_source TEXT NOT NULL,
    status TEXT NOT NULL,
    created_by TEXT NOT NULL,
    confirmed_at TEXT,
    confirmed_by TEXT,
    closed_at TEXT,
    close_reason TEXT,
    updated_at TEXT NOT NULL,
    exported BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX semar_calls_status ON semar_calls (status, confirmed_at);
CREATE INDEX semar_calls_exported ON semar_calls (exported);

-- One unit sent to one call. A call has at most one open dispatch and a unit at most one:
-- the two partial unique indexes make a double assignment impossible, even for two hub
-- processes on one PostgreSQL state store.
CREATE TABLE semar_dispatches (
    id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    unit_kode TEXT NOT NULL,
    assigned_at TEXT NOT NULL,
    estimate_secs DOUBLE PRECISION NOT NULL,
    distance_m DOUBLE PRECISION NOT NULL,
    estimate_source TEXT NOT NULL,
    status TEXT NOT NULL,
    open BIGINT NOT NULL,
    facility TEXT,
    notified TEXT,
    en_route TEXT,
    on_scene TEXT,
    at_patient TEXT,
    left_scene TEXT,
    at_facility TEXT,
    handed_over TEXT,
    back_in_service TEXT,
    cancelled TEXT,
    updated_at TEXT NOT NULL,
    exported BIGINT NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX semar_dispatches_open_call ON semar_dispatches (call_id) WHERE open = 1;
CREATE UNIQUE INDEX semar_dispatches_open_unit ON semar_dispatches (unit_kode) WHERE open = 1;
CREATE INDEX semar_dispatches_exported ON semar_dispatches (exported);

-- The crews' timestamps, one per dispatch and event: a replayed event finds its row.
CREATE TABLE semar_events (
    id TEXT PRIMARY KEY,
    dispatch_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    unit_kode TEXT NOT NULL,
    event TEXT NOT NULL,
    at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    facility TEXT,
    lat DOUBLE PRECISION,
    lng DOUBLE PRECISION,
    actor TEXT NOT NULL,
    exported BIGINT NOT NULL DEFAULT 0,
    UNIQUE (dispatch_id, event)
);

CREATE INDEX semar_events_exported ON semar_events (exported);

-- On-call doctors and midwives for Drupadi.
CREATE TABLE semar_oncall (
    id TEXT PRIMARY KEY,
    nama TEXT NOT NULL,
    profesi TEXT NOT NULL,
    telepon TEXT NOT NULL,
    kode_wilayah TEXT NOT NULL,
    faskes TEXT,
    on_call BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE INDEX semar_oncall_wilayah ON semar_oncall (kode_wilayah);

-- SMS in and out. An inbound message is kept once per (sender, received_at, text hash), so a
-- gateway's retry creates no second call.
CREATE TABLE semar_sms (
    id TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    at TEXT NOT NULL,
    dedup_key TEXT UNIQUE,
    call_id TEXT,
    status TEXT NOT NULL,
    error TEXT
);
