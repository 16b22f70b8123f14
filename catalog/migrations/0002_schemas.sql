-- Schema registry: every version of every canonical schema, and each dataset's contract mode.

CREATE TABLE schema_versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    major BIGINT NOT NULL,
    minor BIGINT NOT NULL,
    patch BIGINT NOT NULL,
    document TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

ALTER TABLE datasets ADD COLUMN contract TEXT NOT NULL DEFAULT 'freeze';
