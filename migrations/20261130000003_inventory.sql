-- Layers of each image (chain IDs and sizes, JSON), immutable per image ID:
-- a rescan of an unchanged daemon needs no per-image Engine calls.
CREATE TABLE image_layers (
    daemon_id INTEGER NOT NULL REFERENCES daemons (id) ON DELETE CASCADE,
    image_id  TEXT    NOT NULL,
    layers    TEXT    NOT NULL,
    PRIMARY KEY (daemon_id, image_id)
) STRICT;

-- Image history: which image was current for which ExApp, from when to when.
-- The memory AppAPI does not keep; it keeps ownership across a repository
-- move or a registry mirror.
CREATE TABLE exapp_images (
    daemon_id     INTEGER NOT NULL REFERENCES daemons (id) ON DELETE CASCADE,
    appid         TEXT    NOT NULL,
    image_id      TEXT    NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    PRIMARY KEY (daemon_id, appid, image_id)
) STRICT;

-- Repositories (normalised, without tag) an ExApp's current image came from.
CREATE TABLE exapp_repositories (
    daemon_id     INTEGER NOT NULL REFERENCES daemons (id) ON DELETE CASCADE,
    appid         TEXT    NOT NULL,
    repository    TEXT    NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    PRIMARY KEY (daemon_id, appid, repository)
) STRICT;

-- When each owned image was first seen outdated.
CREATE TABLE outdated_images (
    daemon_id INTEGER NOT NULL REFERENCES daemons (id) ON DELETE CASCADE,
    image_id  TEXT    NOT NULL,
    since     INTEGER NOT NULL,
    PRIMARY KEY (daemon_id, image_id)
) STRICT;

-- The last scan of each daemon: its inventory (JSON) and its last error.
CREATE TABLE daemon_scans (
    daemon_id   INTEGER PRIMARY KEY REFERENCES daemons (id) ON DELETE CASCADE,
    scanned_at  INTEGER,          -- last successful scan
    duration_ms INTEGER,
    inventory   TEXT,
    error       TEXT,             -- last failed scan, kept after success
    error_at    INTEGER,
    attempted_at INTEGER NOT NULL, -- last scan, successful or not
    generation  INTEGER NOT NULL DEFAULT 1 -- bumped by every write: caches compare it
) STRICT;
