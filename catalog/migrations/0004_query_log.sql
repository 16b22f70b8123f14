-- Every SQL query, by any protocol: who ran it, what it read, and how it ended.
CREATE TABLE query_log (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    client_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    sql_text TEXT NOT NULL,
    tables TEXT NOT NULL DEFAULT '[]',
    row_count BIGINT NOT NULL DEFAULT 0,
    byte_count BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,
    error TEXT
);

CREATE INDEX query_log_at ON query_log (at);
CREATE INDEX query_log_client ON query_log (client_id, at);
