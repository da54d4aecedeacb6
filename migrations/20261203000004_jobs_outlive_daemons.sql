-- Runs and jobs are history: removing a daemon keeps its past jobs (the
-- Runs page and the Prometheus totals never go backwards). The daemon's name
-- is kept on the job; the link becomes NULL. SQLite cannot change a foreign
-- key in place, so the table is rebuilt.
CREATE TABLE cleanup_jobs_kept (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES cleanup_runs (id) ON DELETE CASCADE,
    daemon_id        INTEGER REFERENCES daemons (id) ON DELETE SET NULL,
    daemon_name      TEXT    NOT NULL,
    image_id         TEXT    NOT NULL,
    image_refs       TEXT    NOT NULL,
    owner            TEXT,
    status           TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'skipped', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before       INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    error            TEXT,
    bytes_freed      INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    removal_layers   TEXT
) STRICT;

INSERT INTO cleanup_jobs_kept
SELECT j.id, j.run_id, j.daemon_id, COALESCE(d.name, '(removed)'), j.image_id, j.image_refs, j.owner,
       j.status, j.attempts, j.not_before, j.lease_owner, j.lease_expires_at, j.error, j.bytes_freed,
       j.started_at, j.finished_at, j.removal_layers
FROM cleanup_jobs j LEFT JOIN daemons d ON d.id = j.daemon_id;

DROP TABLE cleanup_jobs;
ALTER TABLE cleanup_jobs_kept RENAME TO cleanup_jobs;

CREATE UNIQUE INDEX cleanup_jobs_one_active_per_image
    ON cleanup_jobs (daemon_id, image_id) WHERE status IN ('queued', 'running');
CREATE INDEX cleanup_jobs_by_run ON cleanup_jobs (run_id);
CREATE INDEX cleanup_jobs_ready ON cleanup_jobs (status, daemon_id, not_before);
