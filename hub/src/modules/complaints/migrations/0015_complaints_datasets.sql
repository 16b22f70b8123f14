-- The complaints module lands its cases, events and SMS metadata in `complaints.*` datasets
-- (a row is marked once it landed), each event records the deadline it settled and whether
-- it was met, and evidence attachments are kept with their checksums.
ALTER TABLE complaint_cases ADD COLUMN exported BIGINT NOT NULL DEFAULT 0;
ALTER TABLE complaint_events ADD COLUMN exported BIGINT NOT NULL DEFAULT 0;
ALTER TABLE complaint_messages ADD COLUMN exported BIGINT NOT NULL DEFAULT 0;

-- The step whose deadline was running when the event happened, that deadline, who had to
-- act (agency or requester), whether the agency met it (1/0; NULL when the requester had the
-- turn), and the working days since the case was received.
ALTER TABLE complaint_events ADD COLUMN step TEXT;
ALTER TABLE complaint_events ADD COLUMN step_deadline TEXT;
ALTER TABLE complaint_events ADD COLUMN step_duty TEXT;
ALTER TABLE complaint_events ADD COLUMN within_sla BIGINT;
ALTER TABLE complaint_events ADD COLUMN working_days BIGINT;

CREATE INDEX complaint_cases_unexported ON complaint_cases (exported, id);
CREATE INDEX complaint_events_unexported ON complaint_events (exported, id);
CREATE INDEX complaint_messages_unexported ON complaint_messages (exported, id);

-- One file per (case, content): uploading the same bytes again returns the same attachment.
CREATE TABLE complaint_attachments (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    object_key TEXT NOT NULL,
    scan TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    UNIQUE (case_id, sha256)
);

CREATE INDEX complaint_attachments_case ON complaint_attachments (case_id, uploaded_at);
