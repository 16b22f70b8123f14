-- PLIPMAS and La Pewarta: complaints and information requests, every transition, and every
-- message in and out. `version` grows with each transition, so that of two officials acting
-- on one case at once exactly one wins.
CREATE TABLE complaint_cases (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    category TEXT,
    opd TEXT,
    description TEXT NOT NULL,
    anonymous BIGINT NOT NULL,
    nik TEXT,
    nama TEXT,
    telepon TEXT,
    kode_wilayah TEXT,
    lat DOUBLE PRECISION,
    lng DOUBLE PRECISION,
    address TEXT,
    status TEXT NOT NULL,
    received_at TEXT NOT NULL,
    deadline TEXT,
    deadline_step TEXT,
    deadline_duty TEXT,
    decision TEXT,
    exemption_reason TEXT,
    closed_at TEXT,
    created_by TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX complaint_cases_open ON complaint_cases (status, deadline);
CREATE INDEX complaint_cases_opd ON complaint_cases (opd, status);

CREATE TABLE complaint_events (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT,
    at TEXT NOT NULL,
    deadline TEXT
);

CREATE INDEX complaint_events_case ON complaint_events (case_id, at);

CREATE TABLE complaint_messages (
    id TEXT PRIMARY KEY,
    case_id TEXT,
    direction TEXT NOT NULL,
    recipient TEXT NOT NULL,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    at TEXT NOT NULL,
    dedup_key TEXT UNIQUE,
    status TEXT NOT NULL,
    error TEXT
);

CREATE INDEX complaint_messages_case ON complaint_messages (case_id, at);
