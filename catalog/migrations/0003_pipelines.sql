-- Pipeline runs, the lease that keeps two runs of one pipeline apart, lineage edges, and
-- each dataset's freshness SLA.

CREATE TABLE pipeline_runs (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    run_number BIGINT NOT NULL,
    dataset TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    scheduled_for TEXT,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    rows_read BIGINT NOT NULL DEFAULT 0,
    rows_committed BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0,
    bytes_read BIGINT NOT NULL DEFAULT 0,
    delta_version BIGINT,
    checkpoint TEXT,
    error TEXT,
    UNIQUE (pipeline, run_number)
);

CREATE INDEX pipeline_runs_started ON pipeline_runs (pipeline, started_at);

CREATE TABLE pipeline_leases (
    pipeline TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE lineage_edges (
    source TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    dataset TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (source, pipeline, dataset)
);

ALTER TABLE datasets ADD COLUMN freshness_sla TEXT;
ALTER TABLE datasets ADD COLUMN refreshed_at TEXT;
ALTER TABLE datasets ADD COLUMN publisher TEXT;
ALTER TABLE datasets ADD COLUMN license TEXT;
