-- A cleanup pass: what asked for it, and what it predicted to free.
CREATE TABLE cleanup_runs (
    id              INTEGER PRIMARY KEY,
    trigger         TEXT    NOT NULL CHECK (trigger IN ('manual', 'schedule', 'update')),
    requested_by    TEXT    NOT NULL,  -- "web", "api", "cli", "schedule", "update of <appid>"
    daemon          TEXT,              -- the daemon it was limited to, if any
    min_age_hours   INTEGER NOT NULL,
    bytes_predicted INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

-- One image to remove. A job is claimed by one worker at a time (lease), and
-- an image has at most one active job per daemon.
CREATE TABLE cleanup_jobs (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES cleanup_runs (id) ON DELETE CASCADE,
    daemon_id        INTEGER NOT NULL REFERENCES daemons (id) ON DELETE CASCADE,
    image_id         TEXT    NOT NULL,
    image_refs       TEXT    NOT NULL,  -- JSON array, as previewed
    owner            TEXT,
    status           TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'skipped', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before       INTEGER NOT NULL,  -- unix ms; retries wait (backoff)
    lease_owner      TEXT,
    lease_expires_at INTEGER,           -- unix ms
    error            TEXT,
    bytes_freed      INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER
) STRICT;

CREATE UNIQUE INDEX cleanup_jobs_one_active_per_image
    ON cleanup_jobs (daemon_id, image_id) WHERE status IN ('queued', 'running');
CREATE INDEX cleanup_jobs_by_run ON cleanup_jobs (run_id);
CREATE INDEX cleanup_jobs_ready ON cleanup_jobs (status, daemon_id, not_before);
