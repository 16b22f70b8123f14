-- Requests for access: a subsystem asks for rights on a dataset; the dataset's owner (or an
-- admin) approves, which creates the grants, or rejects, with a note.
CREATE TABLE bus_access_requests (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    member TEXT NOT NULL,
    subsystem TEXT NOT NULL,
    rights TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    note TEXT NOT NULL DEFAULT ''
);

CREATE INDEX bus_access_requests_dataset ON bus_access_requests (dataset);
