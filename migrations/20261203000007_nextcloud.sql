-- The Nextcloud connection (issue #20): at most one row. The app password
-- is a secret like daemons.harp_key: stored here (the file is 0600), never
-- shown. `snapshot` is the last good answer of AppAPI (JSON: its daemons
-- and installed ExApps), kept when Nextcloud later fails to answer, so
-- that "no answer" is never read as "every ExApp was uninstalled".
CREATE TABLE nextcloud (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL,
    user_name TEXT NOT NULL,
    app_password TEXT NOT NULL,
    connected_at INTEGER NOT NULL,
    -- The last contact: when, and its error in words (NULL when it worked).
    checked_at INTEGER,
    check_error TEXT,
    nextcloud_version TEXT,
    app_api_version TEXT,
    snapshot TEXT,
    snapshot_at INTEGER
);

-- The admin's answer to each AppAPI daemon the janitor proposed: nothing
-- is added without one. A daemon with no row here is still proposed.
CREATE TABLE nextcloud_proposals (
    appapi_daemon TEXT PRIMARY KEY,
    decision TEXT NOT NULL CHECK (decision IN ('accepted', 'refused')),
    -- The janitor daemon it became (accepted only).
    janitor_daemon TEXT,
    decided_at INTEGER NOT NULL
);
