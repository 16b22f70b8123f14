-- Crash consistency. A claimed idempotency key names the process holding it (`host:pid:id`)
-- and how long its lease runs; the holder renews the lease while it works. A key whose
-- holder is gone is settled by recovery: from the request's intent (what it was about to
-- commit, written before the lake commit) and the lake's own commits, it gets its answer
-- or is released. Rows from before this migration have no holder and are settled once
-- they are older than a lease.
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT;
ALTER TABLE idempotency_keys ADD COLUMN lease_until TEXT;
ALTER TABLE idempotency_keys ADD COLUMN intent TEXT;
CREATE INDEX idempotency_keys_state ON idempotency_keys (state);

-- Recovery and `messagelog verify` look records up by message id.
CREATE INDEX message_log_message ON message_log (message_id);
