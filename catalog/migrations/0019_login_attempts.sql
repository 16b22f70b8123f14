-- Password attempts per user name and per source address, counted before each password is
-- checked, so that parallel guesses cannot pass the limit. Kept in the store (not in one
-- process's memory), so no flood of other names pushes a name's count out, and every hub
-- process sharing the store counts together.
CREATE TABLE login_attempts (
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    window_start TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    refusals BIGINT NOT NULL,
    PRIMARY KEY (kind, subject)
);
