-- Who first saved each query (analysts change only their own), and every version a saved
-- query has had: each save that changed it and each delete, with who did it and when.
ALTER TABLE saved_queries ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
UPDATE saved_queries SET created_by = updated_by WHERE created_by = '';

CREATE TABLE saved_query_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    action TEXT NOT NULL,
    definition TEXT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
