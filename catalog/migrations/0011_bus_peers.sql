-- Other hubs this hub federates with: the default is none. A peer is a member (INSTANCE/
-- CLASS/MEMBER) with the base URL of its hub and the Ed25519 public keys its change-feed
-- seals must verify under (JSON array of hex).
CREATE TABLE bus_peers (
    member_id TEXT PRIMARY KEY,
    base_url TEXT NOT NULL,
    public_keys TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
