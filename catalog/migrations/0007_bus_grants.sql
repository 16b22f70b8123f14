-- Access rights on datasets. A grant gives one right (read, publish, subscribe, pii) on one
-- dataset to a subsystem ('MEMBER/SUBSYSTEM') or to a group ('group:CODE'), until it
-- expires or is revoked. Grants are never deleted, so the history stays.
CREATE TABLE bus_groups (
    code TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE bus_group_members (
    group_code TEXT NOT NULL REFERENCES bus_groups (code),
    member TEXT NOT NULL,
    subsystem TEXT NOT NULL,
    PRIMARY KEY (group_code, member, subsystem)
);

CREATE TABLE bus_grants (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    grantee TEXT NOT NULL,
    right_name TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);

CREATE INDEX bus_grants_grantee ON bus_grants (grantee);
CREATE INDEX bus_grants_dataset ON bus_grants (dataset);
