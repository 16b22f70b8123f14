-- Bus identity: the members (agencies) of this hub and their subsystems (systems). Full
-- identifiers (INSTANCE/CLASS/MEMBER/SUBSYSTEM) are made from the hub's configured instance
-- and member class. Every API client belongs to a registered subsystem.
CREATE TABLE bus_members (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE bus_subsystems (
    member TEXT NOT NULL REFERENCES bus_members (code),
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (member, code)
);

-- Clients issued before the registry existed keep working: their members and subsystems
-- are registered as they were used.
INSERT INTO bus_members (code, name, created_at, created_by)
SELECT member, member, MIN(created_at), 'migration' FROM api_clients GROUP BY member;

INSERT INTO bus_subsystems (member, code, name, created_at, created_by)
SELECT member, subsystem, subsystem, MIN(created_at), 'migration' FROM api_clients
GROUP BY member, subsystem;
