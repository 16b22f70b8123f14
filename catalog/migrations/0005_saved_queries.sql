-- Named, parameterized read-only SQL for dashboards and systems.
CREATE TABLE saved_queries (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    sql_text TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
