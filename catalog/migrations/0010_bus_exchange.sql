-- The bus's exchanges: how a dataset takes publishes, the hub's signing keys, the
-- hash-chained message log with its signed seals, and webhook subscriptions with their
-- deliveries.
ALTER TABLE datasets ADD COLUMN write_mode TEXT NOT NULL DEFAULT 'append';

-- Public halves of the hub's Ed25519 keys, newest active; retired keys stay so that old
-- receipts and seals remain verifiable. The private half never leaves the hub's data dir.
CREATE TABLE hub_keys (
    key_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT
);

-- One record per bus exchange, metadata only. hash = SHA-256(prev_hash || record), so a
-- changed, removed or inserted record breaks the chain from there on.
CREATE TABLE message_log (
    seq BIGINT PRIMARY KEY,
    message_id TEXT NOT NULL,
    at TEXT NOT NULL,
    service TEXT NOT NULL,
    client_id TEXT,
    peer TEXT,
    dataset TEXT,
    version BIGINT,
    request_bytes BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    status BIGINT NOT NULL,
    payload_sha256 TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX message_log_dataset ON message_log (dataset, seq);

-- The hub's signature over the chain's hash at the end of each written batch.
CREATE TABLE message_log_seals (
    last_seq BIGINT PRIMARY KEY,
    first_seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    sealed_at TEXT NOT NULL
);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    client_id TEXT NOT NULL,
    member TEXT NOT NULL,
    subsystem TEXT NOT NULL,
    max_attempts BIGINT NOT NULL,
    cursor_version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);

-- One delivery per webhook and committed version range; retried until delivered or dead.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    from_version BIGINT NOT NULL,
    to_version BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
