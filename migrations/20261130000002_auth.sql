-- The admin's secrets, hashed: the password (argon2 PHC string) and the API
-- token (sha256 hex). The plain values are never stored.
CREATE TABLE credentials (
    kind   TEXT PRIMARY KEY CHECK (kind IN ('admin_password', 'api_token')),
    hash   TEXT    NOT NULL,
    set_at INTEGER NOT NULL
) STRICT;

-- Logged-in browser sessions. The cookie holds a random value; only its
-- sha256 is kept, so a copy of the database does not log anyone in.
CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) STRICT;
