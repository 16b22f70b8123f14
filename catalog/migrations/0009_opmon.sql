-- Operational monitoring: one record per HTTP call, with X-Road's op-monitoring fields.
-- Metadata only, never bodies. Read by admins as simpul.opmon.
CREATE TABLE opmon (
    id TEXT PRIMARY KEY,
    request_in_ts TEXT NOT NULL,
    response_out_ts TEXT NOT NULL,
    client_id TEXT,
    member TEXT,
    subsystem TEXT,
    service TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    request_size BIGINT NOT NULL,
    response_size BIGINT NOT NULL,
    succeeded BIGINT NOT NULL,
    status BIGINT NOT NULL
);

CREATE INDEX opmon_request_in_ts ON opmon (request_in_ts);
