-- User accounts: people who log in to the web pages (and SQL) with a user name and a password
-- instead of an API key. Each account is an API client (its id is the user name, and its role,
-- member and subsystem decide what it may do, as for any key); this table adds the password's
-- Argon2id hash. The client row's key hash is that of a random key nobody was shown.
CREATE TABLE user_accounts (
    client_id TEXT PRIMARY KEY REFERENCES api_clients (id),
    password_hash TEXT NOT NULL,
    password_set_at TEXT NOT NULL
);
