-- The admin's settings (one row, JSON) and when the interval was last set:
-- the schedule counts from there until the first scheduled run.
CREATE TABLE settings (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    settings         TEXT    NOT NULL,
    interval_set_at  INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
