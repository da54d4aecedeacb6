-- Docker endpoints the janitor manages, and what it last learned by contacting them.
CREATE TABLE daemons (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    endpoint       TEXT    NOT NULL,           -- unix:///…, tcp://host:port or https://host:port
    tls_ca         TEXT,                       -- absolute paths, only for https://
    tls_cert       TEXT,
    tls_key        TEXT,
    created_at     INTEGER NOT NULL,           -- unix seconds
    checked_at     INTEGER,                    -- last contact attempt
    reachable      INTEGER NOT NULL DEFAULT 0, -- outcome of that attempt
    engine_version TEXT,                       -- from the last successful contact
    api_version    TEXT,                       -- negotiated API version
    last_error     TEXT,                       -- the most recent failure, kept after recovery
    last_error_at  INTEGER
) STRICT;

-- Small facts about this installation (e.g. whether first-start setup ran).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
